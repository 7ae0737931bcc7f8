package engine

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"reflect"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vigil-fraud/vigil/engine/event"
	"github.com/vigil-fraud/vigil/rules"
)

func TestRecentDecisions(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	d := &Decision{ID: "a", Decision: "approve"}
	c := content{digest: 7, time: t0.Add(-time.Minute).UnixNano(), timed: true}
	for _, tc := range []struct {
		name      string
		retention time.Duration
		max       int
		run       func(t *testing.T, r *recentDecisions)
	}{
		{"a finished id is answered", time.Hour, 1000, func(t *testing.T, r *recentDecisions) {
			e, first := r.claim("a", c, t0)
			if !first {
				t.Fatal("first claim not first")
			}
			r.finish(e, d)
			e2, first := r.claim("a", c, t0.Add(time.Minute))
			if first || e2.content != c {
				t.Fatalf("second claim: first=%v content %+v, want %+v", first, e2.content, c)
			}
			if got, err := e2.wait(context.Background()); !reflect.DeepEqual(got, d) || err != nil {
				t.Fatalf("wait %+v %v", got, err)
			}
		}},
		{"retention expires", time.Hour, 1000, func(t *testing.T, r *recentDecisions) {
			e, _ := r.claim("a", c, t0)
			r.finish(e, d)
			if _, first := r.claim("a", c, t0.Add(time.Hour-time.Second)); first {
				t.Fatal("forgotten before the retention")
			}
			if _, first := r.claim("a", c, t0.Add(time.Hour)); !first {
				t.Fatal("remembered after the retention")
			}
		}},
		{"capacity evicts the oldest", 24 * time.Hour, recentShards * 2, func(t *testing.T, r *recentDecisions) {
			for i := range 1000 {
				e, first := r.claim(fmt.Sprint("id", i), c, t0)
				if !first {
					t.Fatalf("id%d not first", i)
				}
				r.finish(e, d)
			}
			if n := r.size(); n > recentShards*2 {
				t.Fatalf("%d remembered, cap %d", n, recentShards*2)
			}
			if _, first := r.claim("id999", c, t0); first {
				t.Fatal("the newest id was evicted")
			}
			if _, first := r.claim("id0", c, t0); !first {
				t.Fatal("the oldest id was kept")
			}
		}},
		{"a waiter gets the decision once it is finished", time.Hour, 1000, func(t *testing.T, r *recentDecisions) {
			e, _ := r.claim("a", c, t0)
			got := make(chan *Decision)
			for range 3 {
				go func() {
					w, first := r.claim("a", c, t0)
					if first {
						got <- nil
						return
					}
					v, _ := w.wait(context.Background())
					got <- v
				}()
			}
			time.Sleep(10 * time.Millisecond) // let them wait (or not yet: both are fine)
			r.finish(e, d)
			for range 3 {
				if v := <-got; v != d {
					t.Fatalf("waiter got %v", v)
				}
			}
		}},
		{"a waiter gives up with its context", time.Hour, 1000, func(t *testing.T, r *recentDecisions) {
			r.claim("a", c, t0)
			w, _ := r.claim("a", c, t0)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			defer cancel()
			if v, err := w.wait(ctx); v != nil || !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("wait %v %v", v, err)
			}
		}},
		{"an abandoned id wakes its waiters and is scored again", time.Hour, 1000, func(t *testing.T, r *recentDecisions) {
			e, _ := r.claim("a", c, t0)
			w, _ := r.claim("a", c, t0)
			done := make(chan error)
			go func() {
				v, err := w.wait(context.Background())
				if v != nil {
					err = fmt.Errorf("got %v", v)
				}
				done <- err
			}()
			r.abandon(e)
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			e2, first := r.claim("a", c, t0.Add(30*time.Minute))
			if !first {
				t.Fatal("abandoned id still remembered")
			}
			r.finish(e2, d)
			// the abandoned entry's slot expires; the new entry stays
			if _, first := r.claim("a", c, t0.Add(61*time.Minute)); first {
				t.Fatal("the expiry of the abandoned entry removed the new one")
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, newRecentDecisions(tc.retention, tc.max)) })
	}
}

// TestRecentDecisionsMatchReference runs random claims, finishes and
// abandons (decisions of random sizes, so that the byte ring wraps and
// grows) against a plain model of the store: per shard, a list of finished
// decisions in order, cut at the capacity and the retention.
func TestRecentDecisionsMatchReference(t *testing.T) {
	type fin struct {
		id      string
		content content
		d       *Decision
		created time.Time
	}
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 99))
		const retention = 10 * time.Minute
		// half the seeds: few ids, small shards, most entries expire; the
		// other half: many ids, shards of 100 that fill (the ring grows)
		perShard, ids, tick := 1+int(seed%5), 300, 4000
		if seed >= 10 {
			perShard, ids, tick = 100, 20_000, 40
		}
		r := newRecentDecisions(retention, perShard*recentShards)
		if seed%3 == 0 { // tables of names that fill: names written out
			for i := range r.shards {
				r.shards[i].names.max = 3
			}
		}
		shardOf := func(id string) int { return int(maphash.String(r.seeds[0], id) % recentShards) }
		model := make([][]fin, recentShards)
		pending := map[string]*recentEntry{}
		now := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
		names := []string{"", "large_amount", "LARGE_AMOUNT", "starter@014126c3bbd6", "Too many attempts.", "é→"}
		randString := func() string {
			if rng.IntN(2) == 0 { // the few names of a ruleset
				return names[rng.IntN(len(names))]
			}
			b := make([]byte, rng.IntN(4)*rng.IntN(120))
			for i := range b {
				b[i] = byte('a' + rng.IntN(26))
			}
			if rng.IntN(10) == 0 {
				return string(b) + "é→"
			}
			return string(b)
		}
		for step := range 20_000 {
			now = now.Add(time.Duration(rng.IntN(tick)) * time.Millisecond)
			id := fmt.Sprint("id", rng.IntN(ids))
			c := content{digest: uint64(len(id))}
			if rng.IntN(50) == 0 {
				c.digest++ // a reused id
			}
			if rng.IntN(2) == 0 { // sent a time: kept as is in the slot
				c.time, c.timed = now.Add(-time.Duration(rng.Int64N(int64(time.Hour)))).UnixNano(), true
			}
			// the model: expire the claimed shard, then look the id up
			sh := shardOf(id)
			for len(model[sh]) > 0 && now.Sub(model[sh][0].created) >= retention {
				model[sh] = model[sh][1:]
			}
			var want *fin
			for i := range model[sh] {
				if model[sh][i].id == id {
					want = &model[sh][i]
				}
			}
			e, first := r.claim(id, c, now)
			switch p := pending[id]; {
			case p != nil:
				if first || e != p {
					t.Fatalf("seed %d step %d: %s is being scored: first=%v same=%v", seed, step, id, first, e == p)
				}
			case want != nil:
				got, _ := e.wait(context.Background())
				if first || e.content != want.content || !reflect.DeepEqual(got, want.d) {
					t.Fatalf("seed %d step %d: %s: first=%v content %+v want %+v\ngot  %+v\nwant %+v", seed, step, id, first, e.content, want.content, got, want.d)
				}
			default:
				if !first {
					t.Fatalf("seed %d step %d: %s answered, the model forgot it", seed, step, id)
				}
				pending[id] = e
			}
			// settle some of the pending ones, in any order
			for pid, pe := range pending {
				if rng.IntN(3) != 0 {
					continue
				}
				delete(pending, pid)
				if rng.IntN(10) == 0 {
					r.abandon(pe)
					continue
				}
				d := &Decision{ID: pid, Decision: rules.Action([]string{"approve", "step_up", "pause", "deny", ""}[rng.IntN(5)]),
					Score: rng.IntN(201) - 100, LatencyUS: rng.Int64N(1 << 40), Ruleset: randString()}
				if rng.IntN(8) != 0 {
					d.Reasons = make([]Reason, rng.IntN(5))
					for i := range d.Reasons {
						d.Reasons[i] = Reason{Rule: randString(), Code: randString(), Message: randString()}
					}
				}
				r.finish(pe, d)
				ps := shardOf(pid)
				if len(model[ps]) >= perShard {
					model[ps] = model[ps][1:]
				}
				model[ps] = append(model[ps], fin{pid, pe.content, d, r.base.Add(pe.created)})
				checkArena(t, &r.shards[ps])
			}
		}
		n := len(pending)
		for _, m := range model {
			n += len(m)
		}
		if got := r.size(); got != n {
			t.Fatalf("seed %d: size %d, model %d", seed, got, n)
		}
	}
}

// checkArena checks that a shard's records lie in its byte ring in slot
// order without overlapping: increasing offsets, wrapping to the front at
// most once, the ring's start and end at the first and last.
func checkArena(t *testing.T, s *recentShard) {
	t.Helper()
	a := &s.arena
	if s.n == 0 {
		return
	}
	wrapped := false
	prevEnd := -1
	for i := 0; i < s.n; i++ {
		sl := s.order[(s.head+i)%len(s.order)]
		off, end := sl.off, sl.off+int(sl.size)
		switch {
		case end > len(a.buf):
			t.Fatalf("slot %d: [%d,%d) outside a ring of %d", i, off, end, len(a.buf))
		case i == 0 && off != a.start:
			t.Fatalf("start %d, oldest record at %d", a.start, off)
		case i > 0 && off < prevEnd:
			if wrapped {
				t.Fatalf("slot %d at %d wraps a second time", i, off)
			}
			wrapped = true
		}
		if wrapped && end > a.start {
			t.Fatalf("slot %d: [%d,%d) overlaps the oldest record at %d", i, off, end, a.start)
		}
		prevEnd = end
	}
	if prevEnd != a.end {
		t.Fatalf("end %d, newest record ends at %d", a.end, prevEnd)
	}
}

// BenchmarkRecentDecisionsHeld fills the store with 1,000,000 decisions
// (two reasons each, as a pause of the starter rules has) and reports the
// heap they take, the heap objects and what a full garbage collection
// then costs. Run it with -benchtime 1x.
func BenchmarkRecentDecisionsHeld(b *testing.B) {
	const n = 1_000_000
	t0 := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	for range b.N {
		r := newRecentDecisions(24*time.Hour, n)
		var m0, m1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m0)
		for i := range n {
			id := fmt.Sprintf("tx_%d_%08d", i%7, i)
			e, _ := r.claim(id, content{digest: 1, time: t0.UnixNano(), timed: true}, t0)
			r.finish(e, &Decision{ID: id, Decision: "pause", Score: 90, Ruleset: "starter@014126c3bbd6", LatencyUS: 120,
				Reasons: []Reason{{Rule: "card_velocity_10m", Code: "CARD_VELOCITY_10M", Message: "Too many attempts with this card in a short time."},
					{Rule: "large_amount", Code: "LARGE_AMOUNT"}}})
		}
		runtime.GC()
		runtime.ReadMemStats(&m1)
		start := time.Now()
		runtime.GC()
		gc := time.Since(start)
		b.ReportMetric(float64(m1.HeapAlloc-m0.HeapAlloc)/n, "heap-B/decision")
		b.ReportMetric(float64(m1.HeapObjects-m0.HeapObjects), "heap-objects")
		b.ReportMetric(float64(gc.Microseconds())/1000, "full-gc-ms")
		runtime.KeepAlive(r)
	}
}

// TestRecentCodecCoversDecision fails when Decision or Reason gain or
// lose a field: the recent-decisions store encodes them field by field
// (recentcodec.go), and a field it does not know would be lost on a
// replay. Update appendDecision and decodeDecision, then this list. The
// same for content, which a slot keeps flat (recentSlot.content, push).
func TestRecentCodecCoversDecision(t *testing.T) {
	fields := func(v any) string {
		var names []string
		rt := reflect.TypeOf(v)
		for i := range rt.NumField() {
			names = append(names, rt.Field(i).Name)
		}
		return fmt.Sprint(names)
	}
	// ID is the claim's; Replayed and Explain are set on the answer, never stored.
	if got, want := fields(Decision{}), "[ID Decision Score Reasons Ruleset LatencyUS Replayed Explain]"; got != want {
		t.Errorf("Decision fields %s, the codec knows %s", got, want)
	}
	if got, want := fields(Reason{}), "[Rule Code Message]"; got != want {
		t.Errorf("Reason fields %s, the codec knows %s", got, want)
	}
	if got, want := fields(content{}), "[digest time timed]"; got != want {
		t.Errorf("content fields %s, recentSlot keeps %s", got, want)
	}
}

// TestPanicInScoringGivesUpTheID: a scoring that panics between claiming
// its id and finishing does not leave the id claimed: a retry is scored
// instead of waiting for a decision that will never come.
func TestPanicInScoringGivesUpTheID(t *testing.T) {
	e := newTestEngine(t)
	ev := func() *event.Event {
		ev, err := event.Decode([]byte(`{"id":"p1","time":"2026-11-22T10:00:00Z","amount":100,"currency":"USD","card":{"token":"tok_p"}}`), testNow)
		if err != nil {
			t.Fatal(err)
		}
		return ev
	}
	counters := e.metrics.decisionByName
	e.metrics.decisionByName = map[string]prometheus.Counter{} // recording the decision panics
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("no panic")
			}
		}()
		e.Score(context.Background(), ev(), false)
	}()
	e.metrics.decisionByName = counters
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d, err := e.Score(ctx, ev(), false)
	if err != nil || d.Replayed || d.Decision == "" {
		t.Fatalf("retry: %+v, %v", d, err)
	}
}

// TestRebuildRemembersOnlyWithinRetention: a rebuild re-reads history; an
// event within the idempotency retention is remembered as of its own time
// (a later scoring of the id is a replay), an older one is not remembered
// at all (it would push the decisions of the last day out of the store),
// and a rebuild counts no decision, rule hit or latency in the metrics.
func TestRebuildRemembersOnlyWithinRetention(t *testing.T) {
	e := newTestEngine(t)
	now := testNow
	e.now = func() time.Time { return now }
	tx := func(id string, at time.Time) *event.Event {
		ev, err := event.Decode(fmt.Appendf(nil, `{"id":%q,"time":%q,"amount":100,"currency":"USD","card":{"token":"tok_rb"}}`,
			id, at.Format(time.RFC3339Nano)), now)
		if err != nil {
			t.Fatal(err)
		}
		return ev
	}
	decisions := func() float64 {
		var n float64
		for _, c := range e.metrics.decisionByName {
			n += testutil.ToFloat64(c)
		}
		return n
	}
	ctx := context.Background()
	retention := e.IdempotencyRetention()
	recent, old := now.Add(-time.Hour), now.Add(-retention-time.Hour)
	for _, ev := range []*event.Event{tx("rb_recent", recent), tx("rb_old", old)} {
		if _, err := e.ScoreFrom(ctx, ev, SourceRebuild); err != nil {
			t.Fatal(err)
		}
	}
	if n := decisions(); n != 0 {
		t.Errorf("a rebuild counted %v decisions", n)
	}
	if d, err := e.ScoreFrom(ctx, tx("rb_recent", recent), SourceKafka); err != nil || !d.Replayed {
		t.Errorf("an id rebuilt within the retention: %+v, %v (want a replay)", d, err)
	}
	if d, err := e.ScoreFrom(ctx, tx("rb_old", old), SourceKafka); err != nil || d.Replayed {
		t.Errorf("an id rebuilt beyond the retention: %+v, %v (want a fresh scoring)", d, err)
	}
	// remembered as of its own time: it expires a retention after it
	now = recent.Add(retention + time.Minute)
	if d, err := e.ScoreFrom(ctx, tx("rb_recent", recent), SourceKafka); err != nil || d.Replayed {
		t.Errorf("after its retention: %+v, %v (want a fresh scoring)", d, err)
	}
}

// TestRebuildKeepsNewerDecisions: a rebuild of more events than the store
// holds does not push out the decisions scored now (the review's case: a
// rebalance re-reading a partition evicted an id scored seconds before, so
// its retry was counted twice).
func TestRebuildKeepsNewerDecisions(t *testing.T) {
	e := newTestEngineWith(t, Options{IdempotencyMaxEntries: 640})
	e.now = func() time.Time { return testNow }
	tx := func(id string, at time.Time) *event.Event {
		ev, err := event.Decode(fmt.Appendf(nil, `{"id":%q,"time":%q,"amount":100,"currency":"USD","card":{"token":"tok_%s"}}`,
			id, at.Format(time.RFC3339Nano), id), testNow)
		if err != nil {
			t.Fatal(err)
		}
		return ev
	}
	ctx := context.Background()
	if _, err := e.ScoreFrom(ctx, tx("live_x", testNow), SourceHTTP); err != nil {
		t.Fatal(err)
	}
	for i := range 5000 {
		if _, err := e.ScoreFrom(ctx, tx(fmt.Sprint("rb_", i), testNow.Add(-time.Hour+time.Duration(i)*time.Millisecond)), SourceRebuild); err != nil {
			t.Fatal(err)
		}
	}
	if d, err := e.ScoreFrom(ctx, tx("live_x", testNow), SourceHTTP); err != nil || !d.Replayed {
		t.Fatalf("the id scored before the rebuild: %+v, %v (want a replay)", d, err)
	}
}

// TestRetryTimeCompared: the same id is the same transaction when its
// content without the time is the same and either scoring sent no time
// (a retry without one is the same transaction), or both sent the same
// one; two different times are two transactions (409 id_reused), and so
// is other content. The first scoring is what a retry is compared with.
func TestRetryTimeCompared(t *testing.T) {
	e := newTestEngine(t)
	e.now = func() time.Time { return testNow }
	const (
		t1       = `"time":"2026-11-22T11:59:00Z",`
		t1Offset = `"time":"2026-11-22T13:59:00+02:00",` // the same instant
		t2       = `"time":"2026-11-22T11:58:00Z",`
	)
	type req struct {
		time   string // a "time" member, or "" for none
		amount int
		want   string // fresh, replay or reused
	}
	for i, tc := range []struct {
		name string
		reqs []req
	}{
		{"a time, then none", []req{{t1, 100, "fresh"}, {"", 100, "replay"}}},
		{"none, then a time", []req{{"", 100, "fresh"}, {t1, 100, "replay"}}},
		{"none twice", []req{{"", 100, "fresh"}, {"", 100, "replay"}}},
		{"the same time", []req{{t1, 100, "fresh"}, {t1, 100, "replay"}}},
		{"the same instant in another zone", []req{{t1, 100, "fresh"}, {t1Offset, 100, "replay"}}},
		{"two times", []req{{t1, 100, "fresh"}, {t2, 100, "reused"}}},
		{"a time, none, another time", []req{{t1, 100, "fresh"}, {"", 100, "replay"}, {t2, 100, "reused"}}},
		{"none, then two times", []req{{"", 100, "fresh"}, {t1, 100, "replay"}, {t2, 100, "replay"}}},
		{"another amount, no times", []req{{"", 100, "fresh"}, {"", 101, "reused"}}},
		{"another amount, a time then none", []req{{t1, 100, "fresh"}, {"", 101, "reused"}}},
		{"another amount, the same time", []req{{t1, 100, "fresh"}, {t1, 101, "reused"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := fmt.Sprint("rt_", i)
			for n, r := range tc.reqs {
				ev := mustEvent(t, fmt.Sprintf(`{"id":%q,%s"amount":%d,"currency":"USD","card":{"token":"tok_rt"}}`, id, r.time, r.amount))
				d, err := e.Score(context.Background(), ev, false)
				got := "fresh"
				switch {
				case errors.Is(err, ErrIDReused):
					got = "reused"
				case err != nil:
					t.Fatalf("scoring %d: %v", n+1, err)
				case d.Replayed:
					got = "replay"
				}
				if got != r.want {
					t.Errorf("scoring %d (%s amount %d): %s, want %s", n+1, r.time, r.amount, got, r.want)
				}
			}
		})
	}
}
