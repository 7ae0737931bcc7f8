package stream

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"github.com/vigil-fraud/vigil/engine"
	"github.com/vigil-fraud/vigil/engine/stream/loadgen"
)

// running is a consumer running in this process.
type running struct {
	c    *Consumer
	eng  *engine.Engine
	reg  *prometheus.Registry
	stop context.CancelFunc
	done chan error
}

func startConsumer(t testing.TB, cfg Config, eng *engine.Engine) *running {
	t.Helper()
	reg := prometheus.NewRegistry()
	c, err := New(cfg, eng, Options{Logger: quietLogger(), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{c: c, eng: eng, reg: reg, stop: cancel, done: make(chan error, 1)}
	go func() { r.done <- c.Run(ctx) }()
	t.Cleanup(func() { r.close(t) })
	return r
}

// close stops the consumer and checks that Run returns within the close
// timeout.
func (r *running) close(t testing.TB) {
	if r.stop == nil {
		return
	}
	r.stop()
	r.stop = nil
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(time.Duration(r.c.cfg.CloseTimeout) + 2*time.Second):
		t.Errorf("Run did not return within the close timeout")
	}
}

// committed returns the group's committed offsets of the transactions
// topic, by partition.
func committed(t testing.TB, cfg Config, partitions int) map[int]int64 {
	t.Helper()
	ps := make([]int, partitions)
	for i := range ps {
		ps[i] = i
	}
	res, err := testClient(cfg.Brokers[0]).OffsetFetch(context.Background(), &kafka.OffsetFetchRequest{GroupID: cfg.Group, Topics: map[string][]int{cfg.Topics.Transactions: ps}})
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]int64{}
	for _, p := range res.Topics[cfg.Topics.Transactions] {
		out[p.Partition] = p.CommittedOffset
	}
	return out
}

// TestEveryEventDecidedOnce produces a stream, consumes it, and checks that
// every event has exactly one decision on the decisions topic, equal to an
// in-process replay of the same events, with the same windows; and that
// stopping commits every offset.
func TestEveryEventDecidedOnce(t *testing.T) {
	addr := kafkaAddr(t)
	cfg := testConfig(addr, "once")
	createTopics(t, cfg)
	const n = 3000
	evs := testEvents(t, n, 11, 20*time.Millisecond)
	produce(t, addr, cfg.Topics.Transactions, evs)

	out := readTopic(t, addr, cfg.Topics.Decisions, 4)
	r := startConsumer(t, cfg, newEngine(t))
	waitFor(t, 60*time.Second, "a decision per event", func() bool { return len(out.decisions(t)) >= n })
	waitFor(t, 10*time.Second, "readiness", r.c.Ready)

	_, want := replay(t, evs)
	got := out.decisions(t)
	for _, ev := range evs {
		ds := got[ev.ID]
		if len(ds) != 1 {
			t.Fatalf("event %s: %d decisions, want exactly 1", ev.ID, len(ds))
		}
		if !sameDecision(&ds[0].Decision, want[ev.ID]) {
			t.Errorf("event %s: decided %+v, the replay decided %+v", ev.ID, ds[0].Decision, *want[ev.ID])
		}
		if !ds[0].EventTime.Equal(ev.Time) {
			t.Errorf("event %s: event_time %s, want %s", ev.ID, ds[0].EventTime, ev.Time)
		}
	}
	if len(out.snapshot()) != n {
		t.Errorf("%d decision records, want %d", len(out.snapshot()), n)
	}
	checkWindows(t, r.eng, evs)

	if got := testutil.ToFloat64(r.c.m.decided); got != n {
		t.Errorf("vigil_kafka_events_total{outcome=decided} = %v, want %d", got, n)
	}
	// every decision acknowledged: no lag left (it counts from the
	// acknowledged offset, not from the last message read)
	for p := range 4 {
		if got := testutil.ToFloat64(r.c.m.lag.WithLabelValues(partLabel(p))); got != 0 {
			t.Errorf("partition %d: lag %v after every decision", p, got)
		}
	}
	r.close(t)
	ends := endOffsets(t, cfg)
	offs := committed(t, cfg, 4)
	for p, end := range ends {
		if offs[p] != end {
			t.Errorf("partition %d: committed %d after close, want the end %d", p, offs[p], end)
		}
	}
}

// checkWindows compares the windows of a scorer's engine with an
// in-process replay, through probe events of every card.
func checkWindows(t testing.TB, eng *engine.Engine, evs []loadgen.Event) {
	t.Helper()
	ref, _ := replay(t, evs)
	for _, p := range probes(evs, 1000) {
		sameFeatures(t, string(p[:40]), explainFeatures(t, eng, p), explainFeatures(t, ref, p))
	}
}

func endOffsets(t testing.TB, cfg Config) map[int]int64 {
	t.Helper()
	c := &Consumer{cfg: cfg, client: testClient(cfg.Brokers[0])}
	out := map[int]int64{}
	for p := range 4 {
		_, last, err := c.bounds(context.Background(), p)
		if err != nil {
			t.Fatal(err)
		}
		out[p] = last
	}
	return out
}

// TestPoisonMessagesDeadLettered checks that undecodable, invalid and
// card-number-bearing messages land in the dead-letter topic with their
// reason and coordinates — the card numbers never copied — and that the
// partition keeps flowing.
func TestPoisonMessagesDeadLettered(t *testing.T) {
	addr := kafkaAddr(t)
	cfg := testConfig(addr, "poison")
	createTopics(t, cfg)
	good := func(id string) []byte {
		return []byte(`{"id":"` + id + `","amount":1200,"currency":"EUR","card":{"token":"tok_same"}}`)
	}
	msgs := []struct {
		value []byte
		code  string // "" for a good event
	}{
		{good("g1"), ""},
		{[]byte(`this is not json`), CodeInvalid},
		{[]byte(`{"id":"p1","amount":100,"currency":"USD","card":{"token":"4111111111111111"}}`), CodePAN},
		{[]byte(`{"id":"p2","amount":100,"note":"card 4111 1111 1111 1111`), CodePAN}, // truncated: the decoder cannot say, the raw scan does
		{[]byte(`{"id":"bad","amount":"ten","currency":"USD","card":{"token":"tok_same"}}`), CodeInvalid},
		{good("g2"), ""},
		{[]byte(`{"id":"g1","amount":999,"currency":"EUR","card":{"token":"tok_same"}}`), CodeIDReused},
		{good("g3"), ""},
	}
	w := &kafka.Writer{Addr: kafka.TCP(addr), Topic: cfg.Topics.Transactions, Balancer: kafka.Murmur2Balancer{}, BatchTimeout: time.Millisecond, RequiredAcks: kafka.RequireAll}
	var km []kafka.Message
	for _, m := range msgs {
		km = append(km, kafka.Message{Key: []byte("tok_same"), Value: m.value, Partition: 0})
	}
	if err := w.WriteMessages(context.Background(), km...); err != nil {
		t.Fatal(err)
	}
	w.Close()

	decisions := readTopic(t, addr, cfg.Topics.Decisions, 4)
	dlq := readTopic(t, addr, cfg.Topics.DeadLetter, 4)
	r := startConsumer(t, cfg, newEngine(t))
	waitFor(t, 30*time.Second, "the good events' decisions", func() bool { return len(decisions.decisions(t)) == 3 })
	waitFor(t, 10*time.Second, "the dead letters", func() bool { return len(dlq.snapshot()) == 5 })

	byOffset := map[int64]kafka.Message{}
	for _, m := range dlq.snapshot() {
		h := headers(m)
		off, _ := strconv.ParseInt(h[HeaderSourceOffset], 10, 64)
		byOffset[off] = m
		if h[HeaderSourceTopic] != cfg.Topics.Transactions || h[HeaderError] == "" {
			t.Errorf("dead letter at offset %d: headers %v", off, h)
		}
	}
	base := int64(-1)
	for off := range byOffset {
		if base < 0 || off-1 < base {
			base = off - 1 // the first poison message follows g1
		}
	}
	for i, m := range msgs {
		if m.code == "" {
			continue
		}
		dl, ok := byOffset[base+int64(i)]
		if !ok {
			t.Errorf("message %d (%s): no dead letter", i, m.code)
			continue
		}
		h := headers(dl)
		if h[HeaderErrorCode] != m.code {
			t.Errorf("message %d: code %q, want %q (%s)", i, h[HeaderErrorCode], m.code, h[HeaderError])
		}
		if m.code == CodePAN {
			if len(dl.Value) != 0 || len(dl.Key) != 0 || h[HeaderRedacted] != "card_number" {
				t.Errorf("message %d: a card number was copied to the dead-letter topic: key %q value %q headers %v", i, dl.Key, dl.Value, h)
			}
		} else if string(dl.Value) != string(m.value) {
			t.Errorf("message %d: dead letter value %q, want the original %q", i, dl.Value, m.value)
		}
	}
	for code, want := range map[string]float64{CodeInvalid: 2, CodePAN: 2, CodeIDReused: 1} {
		if got := testutil.ToFloat64(r.c.m.deadLettered.WithLabelValues(code)); got != want {
			t.Errorf("vigil_kafka_dead_lettered_total{code=%q} = %v, want %v", code, got, want)
		}
	}
	if got := testutil.ToFloat64(r.c.m.events.WithLabelValues("dead_lettered")); got != 5 {
		t.Errorf(`vigil_kafka_events_total{outcome="dead_lettered"} = %v, want 5`, got)
	}
}

func headers(m kafka.Message) map[string]string {
	out := map[string]string{}
	for _, h := range m.Headers {
		out[h.Key] = string(h.Value)
	}
	return out
}

// TestMissingTopicRefused: with topics.create off, a topic that does not
// exist stops Run with an error naming it (a missing dead-letter topic
// used to stop its partition silently, every produce failing).
func TestMissingTopicRefused(t *testing.T) {
	addr := kafkaAddr(t)
	cfg := testConfig(addr, "missing")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := EnsureTopics(ctx, testClient(addr), Topic{Name: cfg.Topics.Transactions, Partitions: 4},
		Topic{Name: cfg.Topics.Decisions, Partitions: 4}); err != nil {
		t.Fatal(err)
	}
	cfg.Topics.Create = false
	c, err := New(cfg, newEngine(t), Options{Logger: quietLogger(), Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "these topics do not exist: "+cfg.Topics.DeadLetter+" (") {
		t.Fatalf("Run: %v", err)
	}
}

// TestLagWhileDecisionsStuck: when the decisions cannot be produced (here
// the topic refuses records over 150 bytes), the lag counts the events not
// decided and nothing is counted as decided — it used to read 0 (every
// message had been read) while nothing went out.
func TestLagWhileDecisionsStuck(t *testing.T) {
	addr := kafkaAddr(t)
	cfg := testConfig(addr, "stuck")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := testClient(addr)
	if _, err := EnsureTopics(ctx, client, Topic{Name: cfg.Topics.Transactions, Partitions: 4}, Topic{Name: cfg.Topics.DeadLetter, Partitions: 4}); err != nil {
		t.Fatal(err)
	}
	res, err := client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{Topic: cfg.Topics.Decisions,
		NumPartitions: 4, ReplicationFactor: -1, ConfigEntries: []kafka.ConfigEntry{{ConfigName: "max.message.bytes", ConfigValue: "150"}}}}})
	if err != nil || res.Errors[cfg.Topics.Decisions] != nil {
		t.Fatalf("create: %v %v", err, res.Errors)
	}
	const n = 40
	evs := testEvents(t, n, 7, 10*time.Millisecond)
	r := startConsumer(t, cfg, newEngine(t))
	produce(t, addr, cfg.Topics.Transactions, evs)
	lag := func() float64 {
		var sum float64
		for p := range 4 {
			sum += testutil.ToFloat64(r.c.m.lag.WithLabelValues(partLabel(p)))
		}
		return sum
	}
	waitFor(t, 20*time.Second, "the lag to count every undecided event", func() bool { return lag() == n })
	if d, s := testutil.ToFloat64(r.c.m.decided), testutil.ToFloat64(r.c.m.decisionsSent); d != 0 || s != 0 {
		t.Errorf("decided %v, produced %v while no decision could be produced", d, s)
	}
}
