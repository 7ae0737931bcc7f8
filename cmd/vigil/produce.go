package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vigil-fraud/vigil/engine/stream"
	"github.com/vigil-fraud/vigil/engine/stream/loadgen"
)

const produceUsage = `usage: vigil produce [flags]

Sends a transaction stream to Kafka (default) or to the HTTP API: a
synthetic stream with injected fraud (card testing bursts, account
takeover from a new device and country, impossible travel), or a JSONL or
CSV file replayed in event-time order. Stops at --count, --duration, the
end of the file, or Ctrl-C.

Examples:
  vigil produce --brokers 127.0.0.1:9092 --rate 2000 --duration 1m
  vigil produce --to http --url http://127.0.0.1:8080 --rate 200 --count 1000   # key in $VIGIL_API_KEY
  vigil produce --replay day.csv --rate 0

Flags:
`

func cmdProduce(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("produce", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, produceUsage); fs.PrintDefaults() }
	to := fs.String("to", "kafka", "where to send: kafka or http")
	brokers := fs.String("brokers", envOr("VIGIL_KAFKA_BROKERS", "127.0.0.1:9092"), "Kafka bootstrap addresses, comma-separated (default $VIGIL_KAFKA_BROKERS)")
	topic := fs.String("topic", stream.DefaultTransactions, "Kafka topic")
	kafkaConfig := fs.String("config", "", "vigil config file whose kafka: section gives the connection (brokers, client_id, tls, sasl; overrides --brokers) and the transactions topic (unless --topic is given)")
	createTopic := fs.Bool("create-topic", true, "create the topic when it does not exist")
	partitions := fs.Int("partitions", 6, "partitions of a created topic")
	url := fs.String("url", "http://127.0.0.1:8080", "vigil's API address (--to http)")
	keyFile := fs.String("api-key-file", "", "file holding the API key with the score scope (default $VIGIL_API_KEY)")
	conns := fs.Int("conns", 16, "concurrent HTTP connections (--to http)")
	replayFile := fs.String("replay", "", "replay this .jsonl or .csv file (\"-\": JSONL on standard input) in event-time order instead of a synthetic stream")
	rate := fs.Float64("rate", 1000, "events per second; 0: as fast as possible")
	count := fs.Int64("count", 0, "stop after this many events (0: no limit; a synthetic stream needs --count or --duration)")
	duration := fs.Duration("duration", 0, "stop after this long (0: no limit)")
	var gen loadgen.Config
	fs.Uint64Var(&gen.Seed, "seed", 1, "random seed of the synthetic stream")
	fs.IntVar(&gen.Cards, "cards", 10_000, "cards")
	fs.IntVar(&gen.Accounts, "accounts", 8_000, "accounts (at most the cards)")
	fs.IntVar(&gen.Merchants, "merchants", 1_000, "merchants")
	fs.Float64Var(&gen.Fraud, "fraud", 0.002, "probability that an event starts a fraud pattern")
	patterns := fs.String("patterns", "card_testing,account_takeover,impossible_travel", "fraud patterns to inject")
	fs.BoolVar(&gen.Label, "label", false, "add attributes.pattern (the injected pattern, or none) to every event")
	fs.StringVar(&gen.IDPrefix, "id-prefix", "", "event id prefix (default tx_<seed>_<start time>_)")
	if code := parseFlags(fs, args, stderr); code >= 0 {
		return code
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var src loadgen.Source
	what := "synthetic stream"
	if *replayFile != "" {
		recs, err := readReplay(*replayFile)
		if err != nil {
			fmt.Fprintln(stderr, "vigil produce:", err)
			return 1
		}
		loadgen.SortByTime(recs)
		src, what = &loadgen.ReplaySource{Records: recs}, fmt.Sprintf("%d events of %s", len(recs), *replayFile)
	} else {
		if *count <= 0 && *duration <= 0 {
			fmt.Fprintln(stderr, "vigil produce: a synthetic stream is endless: set --count or --duration")
			return 2
		}
		gen.Patterns = nil
		for _, p := range strings.Split(*patterns, ",") {
			if p = strings.TrimSpace(p); p != "" {
				gen.Patterns = append(gen.Patterns, loadgen.Pattern(p))
			}
		}
		if gen.Patterns == nil {
			gen.Fraud = -1
		}
		if gen.IDPrefix == "" {
			gen.IDPrefix = fmt.Sprintf("tx_%d_%d_", gen.Seed, time.Now().Unix())
		}
		g, err := loadgen.NewGenerator(gen)
		if err != nil {
			fmt.Fprintln(stderr, "vigil produce:", err)
			return 2
		}
		src = &loadgen.GeneratorSource{Gen: g}
	}

	var sink loadgen.Sink
	var httpSink *loadgen.HTTPSink
	switch *to {
	case "kafka":
		conn := stream.Connection{Brokers: splitList(*brokers)}
		if *kafkaConfig != "" {
			c, err := loadConfig(*kafkaConfig)
			if err != nil {
				fmt.Fprintln(stderr, "vigil produce:", err)
				return 1
			}
			conn = c.Kafka.Connection
			if !flagSet(fs, "topic") && c.Kafka.Topics.Transactions != "" {
				*topic = c.Kafka.Topics.Transactions // the topic vigil serve reads
			}
		}
		if err := conn.Validate(); err != nil {
			fmt.Fprintln(stderr, "vigil produce:", err)
			return 1
		}
		tr, err := conn.Transport()
		if err != nil {
			fmt.Fprintln(stderr, "vigil produce:", err)
			return 1
		}
		if *createTopic {
			if err := stream.CreateTopic(ctx, conn, tr, stream.Topic{Name: *topic, Partitions: *partitions, ReplicationFactor: -1}); err != nil {
				fmt.Fprintln(stderr, "vigil produce:", err)
				return 1
			}
		}
		sink = loadgen.NewKafkaSink(conn.Brokers, *topic, tr)
		what += fmt.Sprintf(" to Kafka %s topic %s", strings.Join(conn.Brokers, ","), *topic)
	case "http":
		key, err := apiKey(*keyFile)
		if err != nil {
			fmt.Fprintln(stderr, "vigil produce:", err)
			return 2
		}
		httpSink = loadgen.NewHTTPSink(strings.TrimRight(*url, "/"), key, *conns)
		sink = httpSink
		what += " to " + *url
	default:
		fmt.Fprintf(stderr, "vigil produce: --to %q: want kafka or http\n", *to)
		return 2
	}
	defer sink.Close()

	fmt.Fprintf(stderr, "vigil produce: sending %s at %s\n", what, rateText(*rate))
	counted := &countingSink{Sink: sink}
	progress := time.NewTicker(5 * time.Second)
	defer progress.Stop()
	done := make(chan struct{})
	start := time.Now()
	go func() {
		for {
			select {
			case <-done:
				return
			case <-progress.C:
				n := counted.n.Load()
				fmt.Fprintf(stderr, "vigil produce: %d events sent (%.0f/s)\n", n, float64(n)/time.Since(start).Seconds())
			}
		}
	}()
	n, err := loadgen.Run(ctx, src, counted, loadgen.Limits{Rate: *rate, Count: *count, Duration: *duration})
	close(done)
	el := time.Since(start)
	fmt.Fprintf(stdout, "sent %d events in %s (%.0f/s)\n", n, el.Round(time.Millisecond), float64(n)/max(el.Seconds(), 1e-9))
	if httpSink != nil {
		fmt.Fprintf(stdout, "HTTP responses by status: %v\n", httpSink.Statuses())
	}
	if err != nil {
		fmt.Fprintln(stderr, "vigil produce:", err)
		return 1
	}
	return 0
}

// countingSink counts what went through, for progress reports.
type countingSink struct {
	loadgen.Sink
	n atomic.Int64
}

func (c *countingSink) Send(ctx context.Context, msgs []loadgen.Message) error {
	err := c.Sink.Send(ctx, msgs)
	if err == nil {
		c.n.Add(int64(len(msgs)))
	}
	return err
}

func readReplay(name string) ([]loadgen.Record, error) {
	if name == "-" {
		return loadgen.ReadJSONL(os.Stdin)
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	recs, err := loadgen.ReadFile(name, f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return recs, nil
}

// flagSet reports whether the flag name was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// apiKey reads the bearer key from a file or VIGIL_API_KEY.
func apiKey(file string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", err
		}
		if k := strings.TrimSpace(string(b)); k != "" {
			return k, nil
		}
		return "", fmt.Errorf("%s is empty", file)
	}
	if k := os.Getenv("VIGIL_API_KEY"); k != "" {
		return k, nil
	}
	return "", errors.New("--to http needs an API key with the score scope: --api-key-file or VIGIL_API_KEY")
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func rateText(r float64) string {
	if r <= 0 {
		return "full speed"
	}
	return fmt.Sprintf("%.0f events/s", r)
}
