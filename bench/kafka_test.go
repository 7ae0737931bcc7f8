package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/segmentio/kafka-go"

	"github.com/vigil-fraud/vigil/engine/stream"
	"github.com/vigil-fraud/vigil/engine/stream/loadgen"
	"github.com/vigil-fraud/vigil/engine/stream/producer"
)

// Kafka benchmarks: run once each (-benchtime 1x) against the broker of
// deploy/kafka/kafka.sh, on the same machine:
//
//	deploy/kafka/kafka.sh up; export $(deploy/kafka/kafka.sh env)
//	go test -run '^$' -bench 'Kafka' -benchtime 1x ./bench/
//
// VIGIL_BENCH_EVENTS sets the events of the throughput run (default
// 300000); VIGIL_BENCH_RATE and VIGIL_BENCH_SECONDS the latency run's
// rate and length (default 10000/s for 20 s); VIGIL_BENCH_CPUPROFILE a file
// for a CPU profile of the throughput run's measured phase.

func benchKafka(b *testing.B) string {
	addr := os.Getenv("VIGIL_TEST_KAFKA")
	if addr == "" {
		b.Skip("VIGIL_TEST_KAFKA is not set: deploy/kafka/kafka.sh up; export $(deploy/kafka/kafka.sh env)")
	}
	return addr
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// benchConfig is a consumer configuration with fresh names.
func benchConfig(addr string) stream.Config {
	c := stream.DefaultConfig()
	c.Brokers = []string{addr}
	id := make([]byte, 4)
	rand.Read(id)
	base := "bench-" + hex.EncodeToString(id)
	c.Group = base
	c.Topics.Transactions, c.Topics.Decisions, c.Topics.DeadLetter = base+".tx", base+".decisions", base+".dlq"
	c.Topics.Partitions = 6
	return c
}

func createBenchTopics(b *testing.B, c stream.Config) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := &kafka.Client{Addr: kafka.TCP(c.Brokers...), Timeout: 30 * time.Second}
	if _, err := stream.EnsureTopics(ctx, client, stream.Topic{Name: c.Topics.Transactions, Partitions: 6},
		stream.Topic{Name: c.Topics.Decisions, Partitions: 6}, stream.Topic{Name: c.Topics.DeadLetter, Partitions: 6}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { // a broker full of old bench topics gets slower
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		client.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: []string{c.Topics.Transactions, c.Topics.Decisions, c.Topics.DeadLetter}})
	})
}

// startBenchConsumer runs a consumer on the default features and rules.
func startBenchConsumer(b *testing.B, c stream.Config) (*stream.Consumer, *prometheus.Registry, func()) {
	reg := prometheus.NewRegistry()
	cons, err := stream.New(c, newDefaultEngine(b, nil), stream.Options{Registerer: reg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { cons.Run(ctx); close(done) }()
	return cons, reg, func() { cancel(); <-done }
}

func counterValue(b *testing.B, reg *prometheus.Registry, name string) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			v := 0.0
			for _, m := range mf.Metric {
				v += m.GetCounter().GetValue()
			}
			return v
		}
	}
	return 0
}

func histogram(reg *prometheus.Registry, name, label string) *dto.Histogram {
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.Metric {
			for _, l := range m.Label {
				if l.GetValue() == label {
					return m.GetHistogram()
				}
			}
		}
	}
	return nil
}

// BenchmarkKafkaThroughput measures sustained topic-to-decision events/s:
// a backlog of synthetic events is produced first, then a consumer scores
// them all and produces every decision (acknowledged by the broker, acks
// all). The time runs from the consumer's start to the last decision
// acknowledged. A broker just started spends 2–4× its usual CPU per event
// until its JIT has compiled the hot paths: run a few million events
// through it first (bench/RESULTS.md, Kafka commands).
func BenchmarkKafkaThroughput(b *testing.B) {
	c, n := backlog(b)
	b.ResetTimer()
	t1 := time.Now()
	cpu0, broker0 := processCPU(), brokerCPU()
	stopProfile := profileCPU(b)
	_, reg, stop := startBenchConsumer(b, c)
	defer stop()
	deadline := time.Now().Add(10 * time.Minute)
	var tFirst, t10, t90 time.Duration
	for v := counterValue(b, reg, "vigil_kafka_decisions_produced_total"); v < float64(n); v = counterValue(b, reg, "vigil_kafka_decisions_produced_total") {
		if v > 0 && tFirst == 0 {
			tFirst = time.Since(t1)
		}
		if v >= 0.1*float64(n) && t10 == 0 {
			t10 = time.Since(t1)
		}
		if v >= 0.9*float64(n) && t90 == 0 {
			t90 = time.Since(t1)
		}
		if time.Now().After(deadline) {
			b.Fatalf("only %v of %d decided in 10 minutes", counterValue(b, reg, "vigil_kafka_decisions_produced_total"), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	el := time.Since(t1)
	b.Logf("first decision after %s; 10%%..90%% in %s: %.0f events/s", tFirst, t90-t10, 0.8*float64(n)/(t90-t10).Seconds())
	cpu, broker := processCPU()-cpu0, brokerCPU()-broker0
	stopProfile()
	b.StopTimer()
	b.ReportMetric(float64(n)/el.Seconds(), "events/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(n), "vigil-cpu-us/event")
	b.ReportMetric(0, "ns/op")
	b.Logf("%d events from topic to acknowledged decision in %s: %.0f events/s", n, el.Round(time.Millisecond), float64(n)/el.Seconds())
	b.Logf("CPU per event: vigil %.1f µs, broker %.1f µs (broker pid from %s); ceiling on 2 idle cores: %.0f events/s",
		float64(cpu.Microseconds())/float64(n), float64(broker.Microseconds())/float64(n), brokerPidFile(),
		2e6/(float64((cpu+broker).Microseconds())/float64(n)))
}

// backlog creates fresh topics and fills the transactions topic with
// VIGIL_BENCH_EVENTS synthetic events (default 300,000).
func backlog(b *testing.B) (stream.Config, int) {
	n := envInt("VIGIL_BENCH_EVENTS", 300_000)
	c := benchConfig(benchKafka(b))
	createBenchTopics(b, c)
	g, err := loadgen.NewGenerator(loadgen.Config{Seed: 3, IDPrefix: c.Group + "_"})
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now().Add(-time.Duration(n) * 10 * time.Microsecond)
	i := 0
	src := &loadgen.GeneratorSource{Gen: g, Clock: func() time.Time { i++; return start.Add(time.Duration(i) * 10 * time.Microsecond) }}
	sink := loadgen.NewKafkaSink(c.Brokers, c.Topics.Transactions, nil)
	t0 := time.Now()
	if _, err := loadgen.Run(context.Background(), src, sink, loadgen.Limits{Count: int64(n), Batch: 5000}); err != nil {
		b.Fatal(err)
	}
	sink.Close()
	b.Logf("produced a backlog of %d events in %s", n, time.Since(t0).Round(time.Millisecond))
	settle(b)
	return c, n
}

// settle waits (at most 20 s) until the local broker is idle: below 5 %
// of a core over half a second. Creating topics and taking the backlog
// leave it compiling (its JIT) and collecting for a few seconds, work
// that would otherwise be counted in the measured phase.
func settle(b *testing.B) {
	t0 := time.Now()
	prev := brokerCPU()
	for time.Since(t0) < 20*time.Second {
		time.Sleep(500 * time.Millisecond)
		cur := brokerCPU()
		if cur-prev < 25*time.Millisecond {
			b.Logf("broker idle after %s", time.Since(t0).Round(100*time.Millisecond))
			return
		}
		prev = cur
	}
	b.Logf("broker still busy after %s; measuring anyway", time.Since(t0).Round(100*time.Millisecond))
}

// BenchmarkKafkaPassThrough is the baseline of BenchmarkKafkaThroughput:
// the same backlog, read by per-partition kafka-go readers configured as
// the consumer's and written to a decisions topic by the same producer,
// but nothing decoded or scored (each event is copied out as its own
// "decision"): what the broker and the Kafka client alone cost here.
func BenchmarkKafkaPassThrough(b *testing.B) {
	c, n := backlog(b)
	b.ResetTimer()
	t1 := time.Now()
	cpu0, broker0 := processCPU(), brokerCPU()
	w := &producer.Writer{
		Client:   &kafka.Client{Addr: kafka.TCP(c.Brokers...), Timeout: 10 * time.Second},
		Balancer: kafka.Murmur2Balancer{}, Acks: kafka.RequireAll,
		BatchSize: c.Producer.BatchSize, Timeout: 10 * time.Second,
	}
	ctx, cancel := context.WithCancel(context.Background())
	var (
		done atomic.Int64
		wg   sync.WaitGroup
	)
	for p := range c.Topics.Partitions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := kafka.NewReader(kafka.ReaderConfig{
				Brokers: c.Brokers, Topic: c.Topics.Transactions, Partition: p,
				QueueCapacity: c.BatchSize, MinBytes: 1, MaxBytes: 8 << 20, MaxWait: 250 * time.Millisecond,
				IsolationLevel: kafka.ReadCommitted,
			})
			defer r.Close()
			msgs := make(chan kafka.Message, c.BatchSize)
			go func() {
				defer close(msgs)
				for {
					m, err := r.FetchMessage(ctx)
					if err != nil {
						return
					}
					msgs <- m
				}
			}()
			out := make([]kafka.Message, 0, c.BatchSize)
			for m := range msgs { // as the consumer batches: what has arrived, up to BatchSize
				out = append(out[:0], kafka.Message{Topic: c.Topics.Decisions, Key: m.Key, Value: m.Value})
			drain:
				for len(out) < c.BatchSize {
					select {
					case m, ok := <-msgs:
						if !ok {
							break drain
						}
						out = append(out, kafka.Message{Topic: c.Topics.Decisions, Key: m.Key, Value: m.Value})
					default:
						break drain
					}
				}
				if err := w.WriteMessages(ctx, out...); err != nil {
					if ctx.Err() == nil {
						b.Error(err)
					}
					return
				}
				done.Add(int64(len(out)))
			}
		}()
	}
	deadline := time.Now().Add(10 * time.Minute)
	for done.Load() < int64(n) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	el := time.Since(t1)
	cpu, broker := processCPU()-cpu0, brokerCPU()-broker0
	cancel()
	wg.Wait()
	b.StopTimer()
	if got := done.Load(); got < int64(n) {
		b.Fatalf("only %d of %d passed through in 10 minutes", got, n)
	}
	b.ReportMetric(float64(n)/el.Seconds(), "events/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(n), "client-cpu-us/event")
	b.ReportMetric(0, "ns/op")
	b.Logf("%d events copied topic to topic in %s: %.0f events/s; CPU per event: client %.1f µs, broker %.1f µs",
		n, el.Round(time.Millisecond), float64(n)/el.Seconds(),
		float64(cpu.Microseconds())/float64(n), float64(broker.Microseconds())/float64(n))
}

// profileCPU writes a CPU profile of the measured phase (not of the
// backlog's production) to $VIGIL_BENCH_CPUPROFILE when it is set.
func profileCPU(b *testing.B) (stop func()) {
	path := os.Getenv("VIGIL_BENCH_CPUPROFILE")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}

// processCPU is this process's user+system CPU time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func brokerPidFile() string {
	dir := os.Getenv("VIGIL_KAFKA_DIR")
	if dir == "" {
		dir = "/tmp/vigil-kafka"
	}
	return dir + "/broker.pid"
}

// brokerCPU is the local test broker's user+system CPU time (0 if it is
// not found).
func brokerCPU() time.Duration {
	pid, err := os.ReadFile(brokerPidFile())
	if err != nil {
		return 0
	}
	stat, err := os.ReadFile("/proc/" + strings.TrimSpace(string(pid)) + "/stat")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+2:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // clock ticks (USER_HZ = 100)
}

// BenchmarkKafkaLatency produces synthetic events at a steady rate (each
// stamped with the time it was made) and reads the decisions topic: the
// end-to-end latency is from the event's time to its decision being read
// back by a consumer of the decisions topic.
func BenchmarkKafkaLatency(b *testing.B) {
	addr := benchKafka(b)
	rate := envInt("VIGIL_BENCH_RATE", 10_000)
	secs := envInt("VIGIL_BENCH_SECONDS", 20)
	c := benchConfig(addr)
	createBenchTopics(b, c)
	cons, reg, stop := startBenchConsumer(b, c)
	defer stop()
	for !cons.Ready() {
		time.Sleep(10 * time.Millisecond)
	}

	// Read the decisions back as a downstream service would.
	var mu sync.Mutex
	var lat, in, out []time.Duration // event → read back; event → decided_at; decided_at → read back
	slow := map[int64]int{}          // events over 50 ms, by second of their event time
	var got atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for p := range 6 {
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: c.Brokers, Topic: c.Topics.Decisions, Partition: p, MinBytes: 1, MaxBytes: 8 << 20, MaxWait: 500 * time.Millisecond})
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer r.Close()
			for {
				m, err := r.FetchMessage(ctx)
				if err != nil {
					return
				}
				now := time.Now()
				var d struct {
					EventTime time.Time `json:"event_time"`
					DecidedAt time.Time `json:"decided_at"`
				}
				if json.Unmarshal(m.Value, &d) == nil {
					mu.Lock()
					lat = append(lat, now.Sub(d.EventTime))
					in = append(in, d.DecidedAt.Sub(d.EventTime))
					out = append(out, now.Sub(d.DecidedAt))
					if now.Sub(d.EventTime) > 50*time.Millisecond {
						slow[d.EventTime.Unix()]++
					}
					mu.Unlock()
					got.Add(1)
				}
			}
		}()
	}
	time.Sleep(500 * time.Millisecond) // let the readers connect

	g, err := loadgen.NewGenerator(loadgen.Config{Seed: 5, IDPrefix: c.Group + "_"})
	if err != nil {
		b.Fatal(err)
	}
	sink := loadgen.NewKafkaSink(c.Brokers, c.Topics.Transactions, nil)
	b.ResetTimer()
	sent, err := loadgen.Run(context.Background(), &loadgen.GeneratorSource{Gen: g}, sink, loadgen.Limits{Rate: float64(rate), Duration: time.Duration(secs) * time.Second, Batch: 200})
	if err != nil {
		b.Fatal(err)
	}
	sink.Close()
	deadline := time.Now().Add(30 * time.Second)
	for got.Load() < sent && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	b.StopTimer()
	cancel()
	wg.Wait()
	if got.Load() < sent {
		b.Fatalf("%d decisions read of %d events sent", got.Load(), sent)
	}
	slices.Sort(lat)
	slices.Sort(in)
	slices.Sort(out)
	pctOf := func(l []time.Duration, q float64) time.Duration { return l[min(len(l)-1, int(q*float64(len(l))))] }
	pct := func(q float64) time.Duration { return pctOf(lat, q) }
	b.ReportMetric(float64(pct(0.50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(pct(0.99).Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(pct(0.999).Microseconds())/1000, "p99.9-ms")
	b.ReportMetric(0, "ns/op")
	h := histogram(reg, "vigil_kafka_end_to_end_seconds", "append_time")
	inside := ""
	if h != nil && h.GetSampleCount() > 0 {
		inside = fmt.Sprintf("; vigil's own mean from append to acknowledged decision %.2f ms", 1000*h.GetSampleSum()/float64(h.GetSampleCount()))
	}
	b.Logf("%d events at %d/s for %ds: end-to-end p50 %s, p99 %s, p99.9 %s, max %s%s", sent, rate, secs,
		pct(0.5).Round(10*time.Microsecond), pct(0.99).Round(10*time.Microsecond), pct(0.999).Round(10*time.Microsecond), lat[len(lat)-1].Round(10*time.Microsecond), inside)
	secs0 := slices.Sorted(maps.Keys(slow))
	var spread []string
	for _, s := range secs0 {
		spread = append(spread, fmt.Sprintf("%s:%d", time.Unix(s, 0).UTC().Format("15:04:05"), slow[s]))
	}
	b.Logf("events over 50 ms by second (clustered: stalls, not steady queueing): %s", strings.Join(spread, " "))
	// Where the time goes: until vigil starts scoring the event's batch
	// (produce, append, fetch, queues), and from then until the decision is
	// read back (scoring, produce with acks=all, the downstream fetch).
	b.Logf("event → decided_at: p50 %s, p99 %s, max %s; decided_at → read back: p50 %s, p99 %s, max %s",
		pctOf(in, 0.5).Round(10*time.Microsecond), pctOf(in, 0.99).Round(10*time.Microsecond), in[len(in)-1].Round(10*time.Microsecond),
		pctOf(out, 0.5).Round(10*time.Microsecond), pctOf(out, 0.99).Round(10*time.Microsecond), out[len(out)-1].Round(10*time.Microsecond))
}
