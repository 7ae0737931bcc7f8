package features

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/vigil-fraud/vigil/engine/event"
)

// TestSetIndexMatchesScans runs the same streams through sets that index
// themselves past a few values and through sets that never do (they scan
// every value on every event), and requires the same value for every
// feature of every event: exact sets, and sketch-mode sets whose most
// recently seen values, forgetting, cached estimates and pruning depend on
// the order the index keeps. (The brute-force property test checks exact
// sets against a reference; this one covers sketch mode, which has no
// exact reference.) Event times are distinct seconds, so "least recently
// seen" is never a tie the two may break differently; with late, some
// events are up to the lateness (5 min) behind, a few beyond it. Sets that
// idle for days are pruned down and drop their index.
func TestSetIndexMatchesScans(t *testing.T) {
	const exact = `
features:
  - {name: d, entity: card.token, aggregate: distinct, field: merchant.id, windows: [10m, 1h, 24h], exact_up_to: 4096}
  - {name: f, entity: card.token, aggregate: distinct, field: merchant.id, filter: 'channel == "ecommerce"', windows: [1h], exact_up_to: 4096}
`
	const sketch = `
features:
  - {name: d, entity: card.token, aggregate: distinct, field: merchant.id, windows: [10m, 1h, 24h], exact_up_to: 48, precision: 8}
  - {name: f, entity: card.token, aggregate: distinct, field: merchant.id, filter: 'channel == "ecommerce"', windows: [1h], exact_up_to: 40}
`
	for _, tc := range []struct {
		name string
		defs string
		late bool
	}{
		{"exact", exact, false}, {"exact/late", exact, true},
		{"sketch", sketch, false}, {"sketch/late", sketch, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			evs := indexStream(20_000, tc.late)
			lateness := time.Duration(-1)
			if tc.late {
				lateness = 5 * time.Minute
			}
			var seed *Engine // both engines hash values alike
			run := func(index bool) [][]any {
				e := mustEngine(t, tc.defs, Options{Lateness: lateness})
				if seed == nil {
					seed = e
				}
				e.valueSeed = seed.valueSeed
				for _, k := range e.kinds {
					for _, sp := range k.sets {
						if index {
							sp.indexFrom = 8
						} else {
							sp.indexFrom = math.MaxInt
						}
					}
				}
				s := e.Schema()
				v, pv := NewVector(s), NewVector(s)
				var out [][]any
				for i, ev := range evs {
					row := make([]any, 0, 2*len(s.Fields))
					if i%7 == 0 { // a peek a second later
						pe := *ev
						pe.Time = pe.Time.Add(time.Second)
						e.Peek(&pe, pv)
						for j := range s.Fields {
							row = append(row, pv.Value(s, j))
						}
					}
					e.Observe(ev, v)
					if err := checkIndexes(e); err != nil {
						t.Fatalf("event %d: %v", i, err)
					}
					for j := range s.Fields {
						row = append(row, v.Value(s, j))
					}
					out = append(out, row)
				}
				if index && tc.defs == sketch && e.Stats().Sketches == 0 {
					t.Fatal("no set reached sketch mode")
				}
				return out
			}
			scan, indexed := run(false), run(true)
			for i := range scan {
				if fmt.Sprint(scan[i]) != fmt.Sprint(indexed[i]) {
					t.Fatalf("event %d (%s at %s): scans %v, index %v", i, evs[i].Card.Token, evs[i].Time.Format(time.TimeOnly), scan[i], indexed[i])
				}
			}
		})
	}
}

// indexStream: three cards, hundreds of merchants each, events at distinct
// seconds 2–60 s apart with idle days (windows and sets empty out); with
// late, an event in six is behind the newest by up to 5 min, one in sixty
// by more (late events at odd seconds, never one already used).
func indexStream(n int, late bool) []*event.Event {
	rng := rand.New(rand.NewPCG(11, 3))
	at := t0
	used := map[time.Time]bool{}
	var evs []*event.Event
	for i := range n {
		at = at.Add(time.Duration(2+2*rng.IntN(30)) * time.Second)
		if i%5000 == 4999 {
			at = at.Add(3 * Day)
		}
		et := at
		if late {
			switch r := rng.IntN(60); {
			case r < 10:
				et = at.Add(-time.Duration(1+2*rng.IntN(150)) * time.Second)
			case r < 11:
				et = at.Add(-time.Duration(301+2*rng.IntN(300)) * time.Second)
			}
			for used[et] {
				et = et.Add(-2 * time.Second)
			}
		}
		used[et] = true
		ch := "pos"
		if rng.IntN(2) == 0 {
			ch = "ecommerce"
		}
		pool := 40 + 400*(i/2500%2) // stretches of few and of many merchants
		evs = append(evs, &event.Event{
			ID: fmt.Sprint(i), Time: et, Amount: 100, Currency: "USD", Channel: ch,
			Card:     event.Card{Token: fmt.Sprint("tok_", rng.IntN(3))},
			Merchant: event.Merchant{ID: fmt.Sprint("m_", rng.IntN(pool))},
		})
	}
	return evs
}

// checkIndexes checks every indexed set of e against its values: the order
// holds exactly the live values by latest occurrence, the table finds each,
// and each window's count and oldest slot are what a scan finds.
func checkIndexes(e *Engine) error {
	var err error
	for _, k := range e.kinds {
		for i := range k.shards {
			sh := &k.shards[i]
			sh.t.sample(0, sh.t.len(), func(_ uint64, en *entity) {
				if en.x == nil || err != nil {
					return
				}
				for _, sp := range k.sets {
					if err == nil {
						err = sp.checkIndex(en.x.set(sp.index))
					}
				}
			})
		}
	}
	return err
}

func (p *setPlan) checkIndex(s *valueSet) error {
	ix := s.ix
	if ix == nil {
		return nil
	}
	n, prev := 0, uint32(0)
	for i := ix.head; i >= 0; i = ix.link[i].next {
		switch {
		case s.vals[i].last == 0:
			return fmt.Errorf("free slot %d in the order", i)
		case s.vals[i].last < prev:
			return fmt.Errorf("slot %d (latest %d) after one at %d", i, s.vals[i].last, prev)
		case ix.lookup(s.vals, s.vals[i].h) != i:
			return fmt.Errorf("slot %d not found by its value", i)
		}
		prev = s.vals[i].last
		n++
	}
	if n != s.live {
		return fmt.Errorf("%d values in the order, %d live", n, s.live)
	}
	for j, c := range ix.wins {
		lo := int64(ix.at) - p.wins[j]
		want, first := int32(0), int32(-1)
		for i := ix.head; i >= 0; i = ix.link[i].next {
			if int64(s.vals[i].last) > lo {
				if first < 0 {
					first = i
				}
				want++
			}
		}
		if c.n != want || c.first != first {
			return fmt.Errorf("window %d: %d values from slot %d, a scan finds %d from %d", j, c.n, c.first, want, first)
		}
	}
	return nil
}

// TestSetIndexDroppedWhenPruned: a set that held many values and is pruned
// down to a few gives its index and its large storage back.
func TestSetIndexDroppedWhenPruned(t *testing.T) {
	e := mustEngine(t, `
features:
  - {name: d, entity: card.token, aggregate: distinct, field: merchant.id, windows: [1h]}
`, Options{})
	v := NewVector(e.Schema())
	card := event.Card{Token: "c"}
	for i := range 400 {
		e.Observe(&event.Event{Time: t0.Add(time.Duration(i) * time.Second), Card: card, Merchant: event.Merchant{ID: fmt.Sprint(i)}}, v)
	}
	set := func() *valueSet {
		k := e.kinds[0]
		key, _ := k.key.of(&evctx{ev: &event.Event{Card: card}})
		return k.shardOf(key).t.get(key).x.set(0)
	}
	if s := set(); s.ix == nil || s.live != 400 {
		t.Fatalf("400 values: index %v, %d live", s.ix != nil, s.live)
	}
	e.Observe(&event.Event{Time: t0.Add(10 * Day), Card: card, Merchant: event.Merchant{ID: "x"}}, v)
	if s := set(); s.ix != nil || s.live != 1 || cap(s.vals) > setInline {
		t.Fatalf("pruned to %d: index %v, capacity %d", s.live, s.ix != nil, cap(s.vals))
	}
	if d, _ := num(t, e, v, "d_1h"); d != 1 {
		t.Fatalf("d_1h = %v, want 1", d)
	}
}

// TestSetCompactsWhenPruned: an unindexed set whose values come and go
// keeps its live values at the front and no more slots than it holds
// values (the scans of record and count read len(vals)), with late
// occurrences still pointing at their values. After a burst of 20
// merchants the card sees a new one every 5 hours: its 24h set holds 5
// values, where a set without compaction would keep the burst's 20 slots.
func TestSetCompactsWhenPruned(t *testing.T) {
	for _, lateness := range []time.Duration{-1, 10 * time.Minute} {
		e := mustEngine(t, `
features:
  - {name: d, entity: card.token, aggregate: distinct, field: merchant.id, windows: [1h, 24h]}
`, Options{Lateness: lateness})
		v := NewVector(e.Schema())
		card := event.Card{Token: "c"}
		set := func() *valueSet {
			k := e.kinds[0]
			key, _ := k.key.of(&evctx{ev: &event.Event{Card: card}})
			return k.shardOf(key).t.get(key).x.set(0)
		}
		at := t0
		for i := range 20 { // a burst: 20 values at once
			at = at.Add(time.Minute)
			e.Observe(&event.Event{Time: at, Card: card, Merchant: event.Merchant{ID: fmt.Sprint("burst", i)}}, v)
		}
		for i := range 200 {
			at = at.Add(5 * time.Hour)
			e.Observe(&event.Event{Time: at, Card: card, Merchant: event.Merchant{ID: fmt.Sprint(i)}}, v)
			if d, _ := num(t, e, v, "d_24h"); i >= 5 && d != 5 {
				t.Fatalf("lateness %v, event %d: d_24h = %v, want 5", lateness, i, d)
			}
			if lateness > 0 && i%3 == 0 { // a late repeat of this merchant
				e.Observe(&event.Event{Time: at.Add(-time.Minute), Card: card, Merchant: event.Merchant{ID: fmt.Sprint(i)}}, v)
			}
			s := set()
			if i >= 5 && len(s.vals) > s.live+1 { // at most the value just recorded before the next prune
				t.Fatalf("lateness %v, event %d: %d slots for %d live values", lateness, i, len(s.vals), s.live)
			}
			for _, o := range s.recent[s.rhead:] {
				if int(o.vi) >= len(s.vals) || s.vals[o.vi].last < o.t {
					t.Fatalf("lateness %v, event %d: recent occurrence at %d points at slot %d of %d", lateness, i, o.t, o.vi, len(s.vals))
				}
			}
		}
	}
}
