package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-fraud/vigil/engine"
	"github.com/vigil-fraud/vigil/engine/event"
	"github.com/vigil-fraud/vigil/signals"
)

// newSignalsWriter runs a writer into a fresh database of the ClickHouse
// named by VIGIL_TEST_CLICKHOUSE (deploy/clickhouse/clickhouse.sh up); the
// database is dropped at the end.
func newSignalsWriter(b *testing.B, batch int) (*signals.Writer, func()) {
	if s := os.Getenv("VIGIL_BENCH_BATCH"); s != "" {
		fmt.Sscan(s, &batch)
	}
	b.Helper()
	addr := os.Getenv("VIGIL_TEST_CLICKHOUSE")
	if addr == "" {
		b.Skip("VIGIL_TEST_CLICKHOUSE not set: deploy/clickhouse/clickhouse.sh up; export $(deploy/clickhouse/clickhouse.sh env)")
	}
	var r [6]byte
	rand.Read(r[:])
	cfg := signals.DefaultConfig()
	cfg.Addr, cfg.Database, cfg.Spill.Dir = addr, "vigil_bench_"+hex.EncodeToString(r[:]), b.TempDir()
	cfg.Queue.BatchSize, cfg.Queue.Size = batch, 1<<20
	cfg.Retention.Days = 0
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	w, err := signals.NewWriter(cfg, log, prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	return w, func() {
		cancel()
		<-done
		w.Conn().Exec(context.Background(), "DROP DATABASE IF EXISTS "+cfg.Database)
		w.Close()
	}
}

// benchRecord is a record shaped like the engine's for the default rules.
func benchRecord(i int) *engine.Record {
	t := benchStart.Add(time.Duration(i) * time.Millisecond)
	return &engine.Record{
		EventID: fmt.Sprintf("r%d", i), EventTime: t, DecidedAt: t, Source: engine.SourceHTTP,
		Amount: int64(500 + i%20000), Currency: "USD", AmountMajor: float64(500+i%20000) / 100, Channel: "ecommerce",
		CardToken: fmt.Sprintf("tok_%d", i%10000), CardBIN: "424242", CardCountry: "US", AccountID: fmt.Sprintf("acct_%d", i%50000),
		MerchantID: fmt.Sprintf("m_%d", i%2000), MCC: "5411", MerchantCountry: "US", IP: "203.0.113.7", BillingCountry: "US",
		Decision: "approve", Score: i % 30, Ruleset: "starter@5d31bd2b76a8", LatencyUS: 60,
		Hits:          []string{"card_spend_spike_24h"},
		FeatureNames:  []string{"card_count_10m", "card_amount_sum_24h", "account_count_24h", "account_amount_avg_30d", "ip_count_1h"},
		FeatureValues: []float64{float64(i % 5), float64(i % 7000), float64(i % 3), math.NaN(), float64(i % 40)},
	}
}

// BenchmarkSignalsInsert measures rows/s from Writer.Put into ClickHouse
// (batches of 100,000 rows, the real server): rows/s end to end, and
// insert-rows/s counting only the time inside INSERTs.
func BenchmarkSignalsInsert(b *testing.B) {
	w, stop := newSignalsWriter(b, 100_000)
	defer stop()
	const rows = 500_000
	recs := make([]*engine.Record, 100_000) // about what a busy writer holds
	for i := range recs {
		recs[i] = benchRecord(i) // reused: the table deduplicates them
		recs[i].IP = ""          // so the writer does not rewrite the shared records
	}
	b.ResetTimer()
	var total time.Duration
	for n := 0; n < b.N; n++ {
		before := w.Stats()
		start := time.Now()
		for i := 0; i < rows; i++ {
			w.Put(recs[i%len(recs)])
		}
		for w.Stats().Written < before.Written+rows {
			time.Sleep(time.Millisecond)
		}
		total += time.Since(start)
	}
	st := w.Stats()
	b.ReportMetric(float64(b.N*rows)/total.Seconds(), "rows/s")
	b.ReportMetric(float64(st.Written)/st.InsertTime.Seconds(), "insert-rows/s")
	b.ReportMetric(0, "ns/op")
}

// discard is a sink that drops records: engine.Score with it costs what
// building the Record costs (engine/record.go), without the writer.
type discard struct{}

func (discard) Put(r *engine.Record) { r.Release() } // as the writer does once a row is sent

// BenchmarkScoreSignalsOverhead measures engine.Score without a sink (off),
// with a sink that discards (record: the engine's cost of building each
// Record) and with the signals writer inserting into ClickHouse (on), in
// the same run, interleaved in rounds, at full speed (one scoring after
// the other; the writer and ClickHouse share this machine's two cores).
// signalsEngines returns three engines on the default features and rules —
// signals off, a sink that only builds records, the writer into
// ClickHouse — and decoded bench events.
func signalsEngines(b *testing.B) ([]*engine.Engine, []*event.Event, func()) {
	w, stop := newSignalsWriter(b, 20_000)
	engines := []*engine.Engine{newDefaultEngine(b, nil), newDefaultEngine(b, discard{}), newDefaultEngine(b, w)}
	evs := make([]*event.Event, 1<<14)
	for i := range evs {
		ev, err := event.Decode(benchEvent(i), time.Time{})
		if err != nil {
			b.Fatal(err)
		}
		evs[i] = ev
	}
	return engines, evs, stop
}

func BenchmarkScoreSignalsOverhead(b *testing.B) {
	engines, evs, stop := signalsEngines(b)
	defer stop()
	ctx := context.Background()
	var t [3]time.Duration
	const round = 2000
	b.ResetTimer()
	for done := 0; done < b.N; done += round {
		for j := range engines {
			k := (j + done/round) % len(engines) // rotate the order: no engine always runs first
			e := engines[k]
			start := time.Now()
			for i := done; i < done+round; i++ {
				ev := *evs[i%len(evs)]
				ev.ID = fmt.Sprint("s", i)
				if _, err := e.Score(ctx, &ev, false); err != nil {
					b.Fatal(err)
				}
			}
			t[k] += time.Since(start)
		}
	}
	n := float64((b.N + round - 1) / round * round)
	b.ReportMetric(float64(t[0].Nanoseconds())/n, "ns/score-off")
	b.ReportMetric(float64(t[1].Nanoseconds())/n, "ns/score-record")
	b.ReportMetric(float64(t[2].Nanoseconds())/n, "ns/score-on")
	b.ReportMetric(100*(float64(t[2])/float64(t[0])-1), "overhead-%")
	b.ReportMetric(100*(float64(t[2])/float64(t[1])-1), "writer-overhead-%")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkScoreLatencySignals measures the per-call latency of
// engine.Score at a steady 5,000 scorings/s (a realistic load, leaving the
// writer its share of the cores) without a sink (off), with a discarding
// sink (record) and with the writer (on): p50 and p99 of each.
func BenchmarkScoreLatencySignals(b *testing.B) {
	engines, evs, stop := signalsEngines(b)
	defer stop()
	ctx := context.Background()
	lat := [3][]time.Duration{}
	const perRound = 500 // 100 ms at 5,000/s
	b.ResetTimer()
	for done := 0; done < b.N; done += perRound {
		for j := range engines {
			k := (j + done/perRound) % len(engines) // rotate the order: no engine always runs first
			e := engines[k]
			tick := time.NewTicker(200 * time.Microsecond)
			for i := done; i < done+perRound; i++ {
				<-tick.C
				ev := *evs[i%len(evs)]
				ev.ID = fmt.Sprint("l", i)
				start := time.Now()
				if _, err := e.Score(ctx, &ev, false); err != nil {
					b.Fatal(err)
				}
				lat[k] = append(lat[k], time.Since(start))
			}
			tick.Stop()
		}
	}
	q := func(d []time.Duration, p float64) float64 {
		s := slices.Clone(d)
		slices.Sort(s)
		return float64(s[int(float64(len(s)-1)*p)].Nanoseconds())
	}
	b.ReportMetric(q(lat[0], 0.5), "p50-ns-off")
	b.ReportMetric(q(lat[1], 0.5), "p50-ns-record")
	b.ReportMetric(q(lat[2], 0.5), "p50-ns-on")
	b.ReportMetric(q(lat[0], 0.99), "p99-ns-off")
	b.ReportMetric(q(lat[1], 0.99), "p99-ns-record")
	b.ReportMetric(q(lat[2], 0.99), "p99-ns-on")
	b.ReportMetric(100*(q(lat[2], 0.5)/q(lat[0], 0.5)-1), "p50-overhead-%")
	b.ReportMetric(100*(q(lat[2], 0.5)/q(lat[1], 0.5)-1), "p50-writer-overhead-%")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkHTTPScoreSignals measures what the authorization path sees:
// POST /v1/score through a real HTTP client, signals off and on (the
// writer inserting into ClickHouse), interleaved in rounds whose order
// rotates.
func BenchmarkHTTPScoreSignals(b *testing.B) {
	w, stop := newSignalsWriter(b, 20_000)
	defer stop()
	off, stopOff := newHTTPScorer(b, newDefaultEngine(b, nil), "off")
	defer stopOff()
	on, stopOn := newHTTPScorer(b, newDefaultEngine(b, w), "on")
	defer stopOn()
	posts := []func(int){off, on}
	var t [2]time.Duration
	const round = 500
	b.ResetTimer()
	for done := 0; done < b.N; done += round {
		for j := range posts {
			k := (j + done/round) % len(posts)
			start := time.Now()
			for i := done; i < done+round; i++ {
				posts[k](i)
			}
			t[k] += time.Since(start)
		}
	}
	n := float64((b.N + round - 1) / round * round)
	b.ReportMetric(float64(t[0].Nanoseconds())/n, "ns/req-off")
	b.ReportMetric(float64(t[1].Nanoseconds())/n, "ns/req-on")
	b.ReportMetric(100*(float64(t[1])/float64(t[0])-1), "overhead-%")
	b.ReportMetric(0, "ns/op")
}
