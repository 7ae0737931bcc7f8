package stream

import (
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/vigil-fraud/vigil/engine"
	"github.com/vigil-fraud/vigil/engine/stream/loadgen"
)

// TestRebalanceRebuilds runs two instances in one group: partitions that
// move to the second are rebuilt there, and when they come back to the
// first (the second stops) the first rebuilds only what it has not seen.
// After each phase, the windows of each partition's owner equal an
// in-process replay.
func TestRebalanceRebuilds(t *testing.T) {
	addr := kafkaAddr(t)
	cfg := testConfig(addr, "rebalance")
	createTopics(t, cfg)
	const third = 1500
	evs := testEvents(t, 3*third, 41, 10*time.Millisecond)
	out := readTopic(t, addr, cfg.Topics.Decisions, 4)
	decided := func(n int) func() bool { return func() bool { return len(out.decisions(t)) >= n } }

	// The first instance remembers only 64 decisions (a dedupe horizon
	// far shorter than the stream): when its partitions come back, only
	// its own record of what it scored keeps it from counting them twice.
	a := startConsumer(t, cfg, newEngineWith(t, engine.Options{IdempotencyMaxEntries: 64}))
	produce(t, addr, cfg.Topics.Transactions, evs[:third])
	waitFor(t, 30*time.Second, "the first third's decisions", decided(third))

	b := startConsumer(t, cfg, newEngine(t))
	waitFor(t, 30*time.Second, "both instances assigned and ready", func() bool {
		return len(assignedTo(a.c)) > 0 && len(assignedTo(b.c)) > 0 && a.c.Ready() && b.c.Ready()
	})
	produce(t, addr, cfg.Topics.Transactions, evs[third:2*third])
	waitFor(t, 30*time.Second, "the second third's decisions", decided(2*third))
	owners := map[int]*engine.Engine{}
	for _, p := range assignedTo(a.c) {
		owners[p] = a.eng
	}
	for _, p := range assignedTo(b.c) {
		owners[p] = b.eng
	}
	t.Logf("after the first rebalance: a has %v, b has %v", assignedTo(a.c), assignedTo(b.c))
	checkOwners(t, "two instances", owners, evs[:2*third])

	b.close(t)
	waitFor(t, 30*time.Second, "the first instance owning every partition again", func() bool { return len(assignedTo(a.c)) == 4 && a.c.Ready() })
	produce(t, addr, cfg.Topics.Transactions, evs[2*third:])
	waitFor(t, 30*time.Second, "every decision", decided(3*third))
	checkOwners(t, "partitions back", map[int]*engine.Engine{0: a.eng, 1: a.eng, 2: a.eng, 3: a.eng}, evs)
	for id, ds := range out.decisions(t) {
		for _, d := range ds[1:] {
			if !sameDecision(&d.Decision, &ds[0].Decision) {
				t.Errorf("event %s decided twice, differently: %+v then %+v", id, ds[0].Decision, d.Decision)
			}
		}
	}
}

func assignedTo(c *Consumer) []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []int
	for p := range 4 {
		if _, ok := c.assigned[p]; ok {
			out = append(out, p)
		}
	}
	return out
}

// checkOwners compares, for every card, the windows of the engine owning
// the card's partition with an in-process replay.
func checkOwners(t *testing.T, phase string, owners map[int]*engine.Engine, evs []loadgen.Event) {
	t.Helper()
	ref, _ := replay(t, evs)
	parts := []int{0, 1, 2, 3}
	for _, p := range probes(evs, 1000) {
		key := probeKey(p)
		part := kafka.Murmur2Balancer{}.Balance(kafka.Message{Key: []byte(key)}, parts...)
		eng := owners[part]
		if eng == nil {
			t.Fatalf("%s: partition %d has no owner", phase, part)
		}
		sameFeatures(t, phase+" "+key, explainFeatures(t, eng, p), explainFeatures(t, ref, p))
	}
}
