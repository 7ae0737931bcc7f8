package features

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-fraud/vigil/engine/event"
)

const labelDefs = `
features:
  - {name: merchant_fraud_rate, kind: label_rate, entity: merchant.id, windows: [1d, 7d], delay: 2d}
`

// TestLabelRate walks one merchant through a hand-computed history.
func TestLabelRate(t *testing.T) {
	day := 24 * time.Hour
	type step struct {
		at     time.Duration // event or label time from t0
		id     string        // transaction id (an event), or the labelled one
		label  string        // "fraud" or "legit": a label of id known at at
		want1d any           // merchant_fraud_rate_1d of the event; nil missing
		want7d any
	}
	steps := []step{
		{at: 0, id: "a", want1d: nil, want7d: nil},                      // no label ever received: missing
		{at: time.Hour, id: "b", want1d: nil, want7d: nil},              // idem
		{at: 2 * time.Hour, id: "a", label: "fraud"},                    // a known to be fraud, early
		{at: 3 * time.Hour, id: "c", want1d: nil, want7d: nil},          // labels seen, but nothing matured (t-2d before t0)
		{at: 2*day + 30*time.Minute, id: "d", want1d: 1.0, want7d: 1.0}, // matured: (t-3d, t-2d] holds a only
		{at: 2*day + 90*time.Minute, id: "e", want1d: 0.5, want7d: 0.5}, // a and b matured, a fraud
		{at: 2*day + 3*time.Hour, id: "e2", want1d: 1.0 / 3, want7d: 1.0 / 3},
		{at: 3*day + 30*time.Minute, id: "f", want1d: 0.0, want7d: 1.0 / 3}, // 1d: (t-3d, t-2d] = b c; 7d: a b c
		{at: 3*day + 31*time.Minute, id: "d", label: "fraud"},               // d is not matured yet
		{at: 3*day + 32*time.Minute, id: "g", want1d: 0.0, want7d: 1.0 / 3},
		{at: 3*day + 33*time.Minute, id: "e", label: "legit"},                // changes nothing
		{at: 4*day + 31*time.Minute, id: "h", want1d: 1.0, want7d: 2.0 / 4},  // 1d: d; 7d: a b c d
		{at: 4*day + 3*time.Hour, id: "i", want1d: 1.0 / 3, want7d: 2.0 / 6}, // 1d: (1d+3h, 2d+3h] = d e e2; 7d: a b c d e e2
	}
	e := mustEngine(t, labelDefs, Options{Labels: true})
	v := NewVector(e.Schema())
	evs := map[string]*event.Event{}
	for _, s := range steps {
		if s.label != "" {
			e.ObserveLabel(evs[s.id], s.label == "fraud", t0.Add(s.at))
			continue
		}
		ev := &event.Event{ID: s.id, Time: t0.Add(s.at), Amount: 100, Currency: "EUR", Merchant: event.Merchant{ID: "m1"}}
		evs[s.id] = ev
		e.Observe(ev, v)
		if got := value(t, e, v, "merchant_fraud_rate_1d"); !close(s.want1d, got) {
			t.Errorf("%s at %s: rate_1d = %v, want %v", s.id, s.at, got, s.want1d)
		}
		if got := value(t, e, v, "merchant_fraud_rate_7d"); !close(s.want7d, got) {
			t.Errorf("%s at %s: rate_7d = %v, want %v", s.id, s.at, got, s.want7d)
		}
	}
}

// TestLabelRateKnownAt: a label counts only from its known_at on, even
// when it is received earlier.
func TestLabelRateKnownAt(t *testing.T) {
	e := mustEngine(t, labelDefs, Options{Labels: true})
	v := NewVector(e.Schema())
	a := &event.Event{ID: "a", Time: t0, Amount: 100, Currency: "EUR", Merchant: event.Merchant{ID: "m"}}
	e.Observe(a, v)
	e.ObserveLabel(a, true, t0.Add(5*Day)) // received now, known in 5 days
	for _, c := range []struct {
		at   time.Duration
		want any
	}{{2*Day + time.Hour, 0.0}, {5*Day - time.Second, 0.0}, {5 * Day, 0.5}} {
		ev := &event.Event{ID: "x", Time: t0.Add(c.at), Amount: 100, Currency: "EUR", Merchant: event.Merchant{ID: "m"}}
		e.Peek(ev, v)
		if got := value(t, e, v, "merchant_fraud_rate_7d"); !close(c.want, got) {
			t.Errorf("at %s: %v, want %v", c.at, got, c.want)
		}
		e.Observe(ev, v) // one more transaction, too recent to matter
	}
}

// TestLabelRateTooLate: a transaction more than the lateness behind the
// merchant's newest is not counted, and is computed at that newest time.
func TestLabelRateTooLate(t *testing.T) {
	e := mustEngine(t, labelDefs, Options{Lateness: 5 * time.Minute, Labels: true})
	v := NewVector(e.Schema())
	tx := func(id string, at time.Duration) *event.Event {
		ev := &event.Event{ID: id, Time: t0.Add(at), Amount: 100, Currency: "EUR", Merchant: event.Merchant{ID: "m"}}
		e.Observe(ev, v)
		return ev
	}
	a := tx("a", 0)
	e.ObserveLabel(a, true, t0.Add(time.Hour))
	tx("b", 2*Day)              // newest
	tx("late", 2*Day-time.Hour) // too late: not recorded
	tx("ok", 2*Day-time.Minute) // within the lateness: recorded
	tx("c", 4*Day)
	// (t-3d, t-2d] = (1d, 2d]: b and ok, no fraud; 7d: a, b, ok.
	if got := value(t, e, v, "merchant_fraud_rate_1d"); !close(0.0, got) {
		t.Errorf("rate_1d %v, want 0", got)
	}
	if got := value(t, e, v, "merchant_fraud_rate_7d"); !close(1.0/3, got) {
		t.Errorf("rate_7d %v, want 1/3", got)
	}
	// At the newest time of the merchant (4d): the same values.
	e.Observe(&event.Event{ID: "old", Time: t0.Add(3 * Day), Amount: 1, Currency: "EUR", Merchant: event.Merchant{ID: "m"}}, v)
	if got := value(t, e, v, "merchant_fraud_rate_7d"); !close(1.0/3, got) {
		t.Errorf("too-late event: rate_7d %v, want 1/3 (computed at 4d)", got)
	}
}

func TestLabelRateDefinitions(t *testing.T) {
	for _, c := range []struct{ defs, err string }{
		{`{name: r, kind: label_rate, entity: merchant.id, windows: [7d]}`, ""},
		{`{name: r, kind: label_rate, entity: merchant.id, windows: [7d], delay: 1d, resolution: 1h}`, ""},
		{`{name: r, kind: label_rate, windows: [7d]}`, "requires entity"},
		{`{name: r, kind: label_rate, entity: merchant.id}`, "requires windows"},
		{`{name: r, kind: label_rate, entity: merchant.id, windows: [7d], delay: 0s}`, "delay"},
		{`{name: r, kind: label_rate, entity: merchant.id, windows: [7d], delay: 90m, resolution: 1h}`, "does not divide delay"},
		{`{name: r, kind: label_rate, entity: merchant.id, windows: [7d], filter: "amount > 1"}`, `key "filter" does not apply`},
		{`{name: r, entity: merchant.id, aggregate: count, windows: [7d], delay: 1d}`, `key "delay" does not apply`},
	} {
		f, err := Parse("t.yaml", []byte("features:\n  - "+c.defs+"\n"))
		if c.err == "" {
			if err != nil {
				t.Errorf("%s: %v", c.defs, err)
			} else if _, err := New(f); err != nil {
				t.Errorf("%s: New: %v", c.defs, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s: error %v, want %q", c.defs, err, c.err)
		}
	}
}

// TestLabelRateBruteForce compares label_rate with a brute-force
// computation over random streams of transactions (a little out of order)
// and labels received at random times, known at random times.
func TestLabelRateBruteForce(t *testing.T) {
	defs := `
features:
  - {name: fr, kind: label_rate, entity: merchant.id, windows: [1h, 6h], delay: 2h}
  - {name: frc, kind: label_rate, entity: [merchant.id, card.token], windows: [3h], delay: 30m, resolution: 10m}
`
	for seed := range uint64(4) {
		r := rand.New(rand.NewPCG(seed, 7))
		e := mustEngine(t, defs, Options{Lateness: 5 * time.Minute, Labels: true})
		v := NewVector(e.Schema())
		type tx struct {
			ev    *event.Event
			fraud bool
			known time.Time // zero: no label yet
		}
		var seen []*tx
		type pending struct {
			tx    *tx
			recv  time.Time
			known time.Time
		}
		var queue []pending
		now := t0
		labelled := false
		for i := range 3000 {
			now = now.Add(time.Duration(r.IntN(120)) * time.Second)
			// deliver the labels due
			slices.SortFunc(queue, func(a, b pending) int { return a.recv.Compare(b.recv) })
			for len(queue) > 0 && !queue[0].recv.After(now) {
				p := queue[0]
				queue = queue[1:]
				e.ObserveLabel(p.tx.ev, p.tx.fraud, p.known)
				p.tx.known = p.known
				labelled = true
			}
			at := now.Add(-time.Duration(r.IntN(240)) * time.Second) // late within the lateness
			ev := &event.Event{ID: fmt.Sprint(i), Time: at, Amount: 100, Currency: "EUR",
				Merchant: event.Merchant{ID: fmt.Sprint("m", r.IntN(4))}, Card: event.Card{Token: fmt.Sprint("c", r.IntN(3))}}
			x := &tx{ev: ev, fraud: r.IntN(5) == 0}
			e.Observe(ev, v)
			seen = append(seen, x)
			check := func(name string, w, delay, res int64, same func(*tx) bool) {
				t.Helper()
				var want any
				if labelled {
					end := (at.Unix() - delay) / res
					n, f := 0, 0
					for _, s := range seen {
						b := s.ev.Time.Unix() / res
						if !same(s) || b <= end-w/res || b > end {
							continue
						}
						n++
						if s.fraud && !s.known.IsZero() && !s.known.After(at) {
							f++
						}
					}
					if n > 0 {
						want = float64(f) / float64(n)
					}
				}
				if got := value(t, e, v, name); !close(want, got) {
					t.Fatalf("seed %d event %d at %s: %s = %v, want %v", seed, i, at, name, got, want)
				}
			}
			m, c := ev.Merchant.ID, ev.Card.Token
			check("fr_1h", 3600, 7200, 1, func(s *tx) bool { return s.ev.Merchant.ID == m })
			check("fr_6h", 6*3600, 7200, 1, func(s *tx) bool { return s.ev.Merchant.ID == m })
			check("frc_3h", 3*3600, 1800, 600, func(s *tx) bool { return s.ev.Merchant.ID == m && s.ev.Card.Token == c })
			if r.IntN(3) == 0 { // labelled some time later, known around then
				recv := at.Add(time.Duration(r.IntN(3*3600)) * time.Second)
				known := recv.Add(time.Duration(r.IntN(1800)-900) * time.Second)
				queue = append(queue, pending{x, recv, known})
			}
		}
	}
}

// BenchmarkObserveLabelRate: the default definitions, whose merchant and
// account label_rate features have labels, over a steady stream.
func BenchmarkObserveLabelRate(b *testing.B) {
	f, err := Parse(DefaultFileName, DefaultFile)
	if err != nil {
		b.Fatal(err)
	}
	e, err := New(f, Options{FingerprintKey: []byte("0123456789abcdef"), Labels: true})
	if err != nil {
		b.Fatal(err)
	}
	v := NewVector(e.Schema())
	evs := make([]event.Event, 1024)
	for i := range evs {
		evs[i] = event.Event{ID: "x", Amount: int64(1000 + i), Currency: "EUR",
			Card: event.Card{Token: fmt.Sprint("c", i%97)}, Account: event.Account{ID: fmt.Sprint("c", i%97)},
			Merchant: event.Merchant{ID: fmt.Sprint("t", i%31)}}
	}
	at := t0
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		ev := &evs[i%len(evs)]
		at = at.Add(30 * time.Second)
		ev.Time = at
		e.Observe(ev, v)
		if i%10 == 0 {
			e.ObserveLabel(ev, i%20 == 0, at.Add(7*Day))
		}
	}
}

// TestLabelRateOffKeepsNoState: without Options.Labels (vigil serve), a
// label_rate feature is missing and no per-entity state is kept, labels
// or not.
func TestLabelRateOffKeepsNoState(t *testing.T) {
	e := mustEngine(t, labelDefs, Options{})
	lp := e.labels[0]
	v := NewVector(e.Schema())
	for i := range 50 {
		ev := &event.Event{ID: fmt.Sprint("x", i), Time: time.Unix(1_700_000_000+int64(i)*3600, 0).UTC(), Amount: 100, Currency: "EUR",
			Merchant: event.Merchant{ID: fmt.Sprint("m", i%5)}}
		v.Reset()
		e.Observe(ev, v)
		e.ObserveLabel(ev, true, ev.Time)
	}
	for i := range lp.shards {
		if n := len(lp.shards[i].m); n != 0 {
			t.Fatalf("shard %d holds %d entities with labels off", i, n)
		}
	}
	for _, slot := range lp.slots {
		if v.Has[slot] {
			t.Errorf("%s has a value with labels off", e.Schema().Fields[slot].Name)
		}
	}
}
