package stream

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"reflect"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/vigil-fraud/vigil/engine"
	"github.com/vigil-fraud/vigil/engine/event"
	"github.com/vigil-fraud/vigil/engine/stream/loadgen"
	"github.com/vigil-fraud/vigil/features"
	"github.com/vigil-fraud/vigil/rules"
)

// kafkaAddr is the test broker, or the test is skipped.
func kafkaAddr(t testing.TB) string {
	t.Helper()
	addr := os.Getenv("VIGIL_TEST_KAFKA")
	if addr == "" {
		t.Skip("VIGIL_TEST_KAFKA is not set: start a broker with `deploy/kafka/kafka.sh up` and `export $(deploy/kafka/kafka.sh env)` (make test does it)")
	}
	return addr
}

// newEngine wires the embedded default features and rules.
func newEngine(t testing.TB) *engine.Engine {
	t.Helper()
	return newEngineWith(t, engine.Options{})
}

// newEngineWith is newEngine with engine options.
func newEngineWith(t testing.TB, o engine.Options) *engine.Engine {
	t.Helper()
	f, err := features.Parse(features.DefaultFileName, features.DefaultFile)
	if err != nil {
		t.Fatal(err)
	}
	fe, err := features.New(f, features.Options{FingerprintKey: []byte("vigil-stream-test-fingerprint-key"), Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	srcs, err := rules.ReadDir(rules.DefaultFS, rules.DefaultDir, "")
	if err != nil {
		t.Fatal(err)
	}
	set, err := rules.Compile(srcs, fe.Schema())
	if err != nil {
		t.Fatal(err)
	}
	e, err := engine.New(fe, rules.NewManager(set), o)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// uniq returns a name unique to this run.
func uniq(prefix string) string {
	b := make([]byte, 4)
	rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// testConfig is a consumer configuration for the test broker with fresh
// topic and group names.
func testConfig(addr, name string) Config {
	c := DefaultConfig()
	c.Brokers = []string{addr}
	c.Group = uniq(name + "-group")
	base := uniq(name)
	c.Topics.Transactions = base + ".tx"
	c.Topics.Decisions = base + ".decisions"
	c.Topics.DeadLetter = base + ".dlq"
	c.Topics.Partitions = 4
	c.CommitInterval = d(200 * time.Millisecond)
	c.SessionTimeout = d(6 * time.Second)
	c.RebalanceTimeout = d(6 * time.Second)
	c.HeartbeatInterval = d(500 * time.Millisecond)
	c.JoinGroupBackoff = d(500 * time.Millisecond)
	c.CloseTimeout = d(8 * time.Second)
	return c
}

func testClient(addr string) *kafka.Client {
	return &kafka.Client{Addr: kafka.TCP(addr), Timeout: 10 * time.Second}
}

// createTopics creates the configuration's topics with 4 partitions.
func createTopics(t testing.TB, c Config) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := EnsureTopics(ctx, testClient(c.Brokers[0]),
		Topic{Name: c.Topics.Transactions, Partitions: 4}, Topic{Name: c.Topics.Decisions, Partitions: 4}, Topic{Name: c.Topics.DeadLetter, Partitions: 4})
	if err != nil {
		t.Fatal(err)
	}
}

// testEvents makes n events of an isolated synthetic stream (every
// feature of an event depends only on its card's events, so on one
// partition's order) over about n*step of event time ending now.
func testEvents(t testing.TB, n int, seed uint64, step time.Duration) []loadgen.Event {
	t.Helper()
	g, err := loadgen.NewGenerator(loadgen.Config{Seed: seed, Cards: 300, Accounts: 300, Merchants: 300, Fraud: 0.03, Isolated: true, IDPrefix: fmt.Sprintf("t%d_", seed)})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(-time.Duration(n) * step)
	out := make([]loadgen.Event, n)
	for i := range out {
		out[i] = g.Next(start.Add(time.Duration(i) * step))
	}
	return out
}

// produce sends events to a topic, retrying while the broker is away.
func produce(t testing.TB, addr, topic string, evs []loadgen.Event) {
	t.Helper()
	sink := loadgen.NewKafkaSink([]string{addr}, topic, nil)
	defer sink.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for i := 0; i < len(evs); i += 500 {
		batch := make([]loadgen.Message, 0, 500)
		for _, ev := range evs[i:min(i+500, len(evs))] {
			batch = append(batch, loadgen.Message{Key: ev.Key, JSON: ev.JSON})
		}
		for {
			err := sink.Send(ctx, batch)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("produce: %v", err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

// topicReader collects every message of a topic, from the start, in the
// background.
type topicReader struct {
	mu     sync.Mutex
	msgs   []kafka.Message
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func readTopic(t testing.TB, addr, topic string, partitions int) *topicReader {
	ctx, cancel := context.WithCancel(context.Background())
	tr := &topicReader{cancel: cancel}
	for p := range partitions {
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{addr}, Topic: topic, Partition: p, MinBytes: 1, MaxBytes: 4 << 20,
			MaxWait: 100 * time.Millisecond, MaxAttempts: 100, ReadBackoffMin: 100 * time.Millisecond, ReadBackoffMax: 500 * time.Millisecond})
		tr.wg.Add(1)
		go func() {
			defer tr.wg.Done()
			defer r.Close()
			for {
				m, err := r.FetchMessage(ctx)
				if ctx.Err() != nil {
					return
				}
				if err != nil {
					time.Sleep(100 * time.Millisecond)
					continue
				}
				tr.mu.Lock()
				tr.msgs = append(tr.msgs, m)
				tr.mu.Unlock()
			}
		}()
	}
	t.Cleanup(tr.stop)
	return tr
}

func (tr *topicReader) stop() { tr.cancel(); tr.wg.Wait() }

func (tr *topicReader) snapshot() []kafka.Message {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return append([]kafka.Message(nil), tr.msgs...)
}

// decisions returns the decision records read so far, by event id.
func (tr *topicReader) decisions(t testing.TB) map[string][]DecisionRecord {
	t.Helper()
	out := map[string][]DecisionRecord{}
	for _, m := range tr.snapshot() {
		var d DecisionRecord
		if err := json.Unmarshal(m.Value, &d); err != nil {
			t.Fatalf("decision record %q: %v", m.Value, err)
		}
		out[d.ID] = append(out[d.ID], d)
	}
	return out
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// replay scores the events in order on a fresh engine: the reference the
// streaming path must equal.
func replay(t testing.TB, evs []loadgen.Event) (*engine.Engine, map[string]*engine.Decision) {
	t.Helper()
	e := newEngine(t)
	out := map[string]*engine.Decision{}
	for _, ev := range evs {
		x, err := event.Decode(ev.JSON, time.Now())
		if err != nil {
			t.Fatalf("replay %s: %v", ev.ID, err)
		}
		d, err := e.ScoreFrom(context.Background(), x, engine.SourceKafka)
		if err != nil {
			t.Fatal(err)
		}
		out[ev.ID] = d
	}
	return e, out
}

// probes are events of the last event of each card, with a new id, at a
// time after every event: scoring one shows the card's windows.
func probes(evs []loadgen.Event, max int) [][]byte {
	last := map[string]loadgen.Event{}
	var keys []string
	end := time.Time{}
	for _, ev := range evs {
		if _, ok := last[ev.Key]; !ok {
			keys = append(keys, ev.Key)
		}
		last[ev.Key] = ev
		if ev.Time.After(end) {
			end = ev.Time
		}
	}
	sort.Strings(keys)
	var out [][]byte
	for i, k := range keys {
		if i == max {
			break
		}
		var m map[string]any
		json.Unmarshal(last[k].JSON, &m)
		m["id"] = "probe_" + k
		m["time"] = end.Add(time.Second).Format(time.RFC3339Nano)
		b, _ := json.Marshal(m)
		out = append(out, b)
	}
	return out
}

// explainFeatures computes a probe's features without recording it (the
// features engine's Peek), as JSON-normal values.
func explainFeatures(t testing.TB, e *engine.Engine, probe []byte) map[string]any {
	t.Helper()
	ev, err := event.Decode(probe, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	schema := e.Features().Schema()
	vec := features.NewVector(schema)
	e.Features().Peek(ev, vec)
	out := make(map[string]any, schema.Len())
	for i, f := range schema.Fields {
		out[f.Name] = vec.Value(schema, i)
	}
	return normal(t, out)
}

// probeKey is the card token of a probe.
func probeKey(p []byte) string {
	var m struct {
		Card struct{ Token string } `json:"card"`
	}
	json.Unmarshal(p, &m)
	return m.Card.Token
}

func normal(t testing.TB, v any) map[string]any {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	json.Unmarshal(b, &out)
	return out
}

// sameFeatures fails the test if two feature maps differ, naming the
// differences.
func sameFeatures(t testing.TB, what string, got, want map[string]any) {
	t.Helper()
	if reflect.DeepEqual(got, want) {
		return
	}
	var diffs []string
	for k, w := range want {
		if g := got[k]; !reflect.DeepEqual(g, w) {
			diffs = append(diffs, fmt.Sprintf("%s: got %v, want %v", k, g, w))
		}
	}
	sort.Strings(diffs)
	t.Errorf("%s: features differ from the in-process replay:\n%v", what, diffs)
}

// sameDecision compares the decision content (not latency or replayed).
func sameDecision(a, b *engine.Decision) bool {
	return a.Decision == b.Decision && a.Score == b.Score && a.Ruleset == b.Ruleset && reflect.DeepEqual(reasons(a), reasons(b))
}

func reasons(d *engine.Decision) []engine.Reason {
	if len(d.Reasons) == 0 {
		return nil
	}
	return d.Reasons
}

func quietLogger() *slog.Logger {
	if os.Getenv("VIGIL_TEST_VERBOSE") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}
