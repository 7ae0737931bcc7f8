package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/vigil-fraud/vigil/engine"
	"github.com/vigil-fraud/vigil/engine/event"
	"github.com/vigil-fraud/vigil/engine/stream/loadgen"
	"github.com/vigil-fraud/vigil/features"
	"github.com/vigil-fraud/vigil/rules"
)

// newDefaultEngine wires the embedded default features and rules.
func newDefaultEngine(b *testing.B, sink engine.Sink) *engine.Engine {
	b.Helper()
	f, err := features.Parse(features.DefaultFileName, features.DefaultFile)
	if err != nil {
		b.Fatal(err)
	}
	fe, err := features.New(f, features.Options{FingerprintKey: []byte("bench fingerprint key 0123")})
	if err != nil {
		b.Fatal(err)
	}
	srcs, err := rules.ReadDir(rules.DefaultFS, rules.DefaultDir, "")
	if err != nil {
		b.Fatal(err)
	}
	set, err := rules.Compile(srcs, fe.Schema())
	if err != nil {
		b.Fatal(err)
	}
	e, err := engine.New(fe, rules.NewManager(set), engine.Options{Sink: sink, IdempotencyMaxEntries: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	return e
}

var benchStart = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

// benchEvent is the i-th event of a stream over 10,000 cards and 50,000
// accounts, one event per 100 ms of event time.
func benchEvent(i int) []byte {
	return []byte(fmt.Sprintf(`{"id":"b%d","time":%q,"amount":%d,"currency":"USD","channel":"ecommerce",`+
		`"card":{"token":"tok_%d","bin":"424242","country":"US"},"account":{"id":"acct_%d"},`+
		`"merchant":{"id":"m_%d","mcc":"5411","country":"US"},"device":{"ip":"203.0.%d.%d","user_agent":"Mozilla/5.0"},`+
		`"billing":{"country":"US","lat":40.7,"lon":-74.0}}`,
		i, benchStart.Add(time.Duration(i)*100*time.Millisecond).Format(time.RFC3339Nano), 500+i%20000,
		i%10000, i%50000, i%2000, (i/256)%256, i%256))
}

// BenchmarkScore measures Engine.Score (features, rules, decision,
// idempotency store) on decoded events, without HTTP: sink=none without
// signals, sink=record with a sink that drops each record (what building
// the signal costs the scoring goroutine).
func BenchmarkScore(b *testing.B) {
	for _, c := range []struct {
		name string
		sink engine.Sink
	}{{"none", nil}, {"record", discard{}}} {
		b.Run("sink="+c.name, func(b *testing.B) { benchScore(b, c.sink) })
	}
}

func benchScore(b *testing.B, sink engine.Sink) {
	e := newDefaultEngine(b, sink)
	evs := make([]*event.Event, 1<<14)
	for i := range evs {
		ev, err := event.Decode(benchEvent(i), time.Time{})
		if err != nil {
			b.Fatal(err)
		}
		evs[i] = ev
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ev := *evs[i%len(evs)]
		ev.ID = fmt.Sprint("s", i) // fresh ids: every scoring counts
		if _, err := e.Score(ctx, &ev, false); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecode measures the strict event decoder with PAN scanning.
func BenchmarkDecode(b *testing.B) {
	data := benchEvent(42)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for i := 0; i < b.N; i++ {
		if _, err := event.Decode(data, time.Time{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeLoadgen decodes the richer events of vigil produce
// (device attributes, billing and shipping blocks): the decoding part of
// BenchmarkKafkaThroughput without Kafka.
func BenchmarkDecodeLoadgen(b *testing.B) {
	g, err := loadgen.NewGenerator(loadgen.Config{Seed: 3})
	if err != nil {
		b.Fatal(err)
	}
	msgs := make([][]byte, 1<<12)
	size := 0
	t := benchStart
	for i := range msgs {
		t = t.Add(10 * time.Millisecond)
		msgs[i] = g.Next(t).JSON
		size += len(msgs[i])
	}
	b.ReportAllocs()
	b.SetBytes(int64(size / len(msgs)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := event.Decode(msgs[i%len(msgs)], time.Time{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHTTPScore measures POST /v1/score through net/http (in-process
// server on loopback), one request at a time.
func BenchmarkHTTPScore(b *testing.B) {
	post, stop := newHTTPScorer(b, newDefaultEngine(b, nil), "h")
	defer stop()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		post(i)
	}
}

// newHTTPScorer serves an engine's API on loopback and returns a function
// that posts the i-th bench event (id prefixed) through a real HTTP client.
func newHTTPScorer(b *testing.B, e *engine.Engine, prefix string) (post func(i int), stop func()) {
	const secret = "vgl_bench_secret_0123456789"
	api, err := engine.NewAPI(e, engine.NewKeyringFromSecret("bench", secret), slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(api.Handler())
	client := srv.Client()
	bodies := make([][]byte, 1<<12)
	for i := range bodies {
		bodies[i] = benchEvent(i)
	}
	return func(i int) {
		body := bytes.Replace(bodies[i%len(bodies)], []byte(`"id":"b`), []byte(fmt.Sprintf(`"id":"%s%d_`, prefix, i)), 1)
		req, _ := http.NewRequest("POST", srv.URL+"/v1/score", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+secret)
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}, srv.Close
}

// BenchmarkScoreLoadgen measures Engine.Score on the synthetic stream the
// Kafka benchmarks use (vigil produce: device attributes, billing and
// shipping blocks, fraud patterns), decoded beforehand: the scoring part
// of BenchmarkKafkaThroughput without Kafka.
func BenchmarkScoreLoadgen(b *testing.B) {
	g, err := loadgen.NewGenerator(loadgen.Config{Seed: 3})
	if err != nil {
		b.Fatal(err)
	}
	evs := make([]*event.Event, 1<<16)
	t := benchStart
	for i := range evs {
		t = t.Add(10 * time.Millisecond)
		ev, err := event.Decode(g.Next(t).JSON, time.Time{})
		if err != nil {
			b.Fatal(err)
		}
		evs[i] = ev
	}
	e := newDefaultEngine(b, nil)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ev := *evs[i%len(evs)]
		ev.ID = fmt.Sprint("g", i)
		// later laps move on in event time, as the stream would
		ev.Time = ev.Time.Add(time.Duration(i/len(evs)) * time.Duration(len(evs)) * 10 * time.Millisecond)
		if _, err := e.Score(ctx, &ev, false); err != nil {
			b.Fatal(err)
		}
	}
}
