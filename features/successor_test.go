package features

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-fraud/vigil/engine/event"
)

// sortedStream is a genStream stream sorted by time: a feature that starts
// empty at a reload is then compared with an engine that saw only the
// events after it (with late events, "late" would depend on the history
// the other features of the entity kept).
func sortedStream(seed uint64, n int) []*event.Event {
	evs, _ := genStream(seed, n, 300)
	slices.SortStableFunc(evs, func(a, b *event.Event) int { return a.Time.Compare(b.Time) })
	return evs
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// successor is e's successor for defs, and what it takes over.
func successor(t testing.TB, e *Engine, defs string) (*Engine, *Takeover) {
	t.Helper()
	f, err := Parse("b.yaml", []byte(defs))
	if err != nil {
		t.Fatal(err)
	}
	n, tk, err := e.Successor(f)
	if err != nil {
		t.Fatal(err)
	}
	return n, tk
}

// entities counts the entities in e's tables.
func entities(e *Engine) int64 {
	var n int64
	for _, k := range e.kinds {
		for i := range k.shards {
			n += int64(k.shards[i].t.len())
		}
	}
	return n
}

// TestSuccessorKeepsState reloads the property test's definitions into
// variants and checks every feature after the reload: one whose state
// was kept equals an engine with the new definitions that saw every
// event; one that starts empty (Takeover.Fresh) equals one that saw only
// the events after the reload. Events also arrive between Successor and
// Activate (on the old engine, still live) and on the successor before
// Activate (its shards are taken over on first use).
func TestSuccessorKeepsState(t *testing.T) {
	sub := func(old, new string) func(string) string {
		return func(s string) string {
			if !strings.Contains(s, old) {
				panic("no " + old)
			}
			return strings.Replace(s, old, new, 1)
		}
	}
	for _, tc := range []struct {
		name          string
		edit          func(string) string
		shared, moved []string
		fresh         []string
		dropped       []string
	}{
		{name: "names and help only", edit: func(s string) string {
			s = sub("{name: c, entity", "{name: count, help: renamed, entity")(s)
			return s + "  - {name: amt, kind: value, field: amount}\n"
		}, shared: []string{"card.token", "merchant.id"}},
		{name: "new entity kind", edit: func(s string) string {
			return s + "  - {name: ic, entity: device.ip, aggregate: count, windows: [10m]}\n"
		}, shared: []string{"card.token", "merchant.id"}, fresh: []string{"ic_10m"}},
		{name: "a distinct count sharing a set", edit: func(s string) string {
			return s + "  - {name: dm, entity: card.token, aggregate: distinct, field: device.ip, windows: [10m]}\n"
		}, shared: []string{"card.token", "merchant.id"}},
		{name: "new distinct set on a kind", edit: func(s string) string {
			return s + "  - {name: dch, entity: card.token, aggregate: distinct, field: channel, windows: [10m]}\n"
		}, shared: []string{"merchant.id"}, moved: []string{"card.token"}, fresh: []string{"dch_10m"}},
		{name: "a window of a shared series changed", edit: sub("{name: mc, entity: merchant.id, aggregate: count, windows: [10m]}",
			"{name: mc, entity: merchant.id, aggregate: count, windows: [20m]}"),
			shared: []string{"card.token"}, moved: []string{"merchant.id"}, fresh: []string{"mc_20m"}},
		{name: "a filter changed", edit: sub(`{name: fd, entity: card.token, aggregate: distinct, field: merchant.id, filter: 'channel == "ecommerce"'`,
			`{name: fd, entity: card.token, aggregate: distinct, field: merchant.id, filter: 'channel == "pos"'`),
			shared: []string{"merchant.id"}, moved: []string{"card.token"}, fresh: []string{"fd_10m"}},
		{name: "min added beside a count: a series of its own", edit: func(s string) string {
			return s + "  - {name: mmin, entity: merchant.id, aggregate: min, field: amount, windows: [10m]}\n"
		}, shared: []string{"card.token"}, moved: []string{"merchant.id"}, fresh: []string{"mmin_10m"}},
		{name: "a window added to a definition", edit: sub("{name: c, entity: card.token, aggregate: count, windows: [1m, 10m, 1h]}",
			"{name: c, entity: card.token, aggregate: count, windows: [1m, 10m, 1h, 24h]}"),
			shared: []string{"merchant.id"}, moved: []string{"card.token"}, fresh: []string{"c_24h"}},
		{name: "novelty and hour of day removed, kind dropped", edit: func(s string) string {
			s = sub("  - {name: newm10, kind: novelty, entity: card.token, field: merchant.id, lookback: 10m}\n", "")(s)
			s = sub("  - {name: hour, kind: hour_of_day, entity: card.token, min_history: 3}\n", "")(s)
			return sub("  - {name: mc, entity: merchant.id, aggregate: count, windows: [10m]}\n", "")(s)
		}, moved: []string{"card.token"}, dropped: []string{"merchant.id"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defsB := tc.edit(propertyDefs)
			o := Options{Lateness: 5 * time.Minute}
			evs := sortedStream(3, 3000)
			pre, mid, early, post := evs[:1500], evs[1500:1700], evs[1700:1720], evs[1720:]

			a := mustEngine(t, propertyDefs, o)
			full := mustEngine(t, defsB, o)
			after := mustEngine(t, defsB, o)
			va, vf := NewVector(a.Schema()), NewVector(full.Schema())
			for _, ev := range append(slices.Clone(pre), mid...) {
				full.Observe(ev, vf)
			}
			for _, ev := range pre {
				a.Observe(ev, va)
			}
			b, tk := successor(t, a, defsB)
			for _, ev := range mid { // the old engine is still the live one
				a.Observe(ev, va)
			}
			if !slices.Equal(tk.Shared, orEmpty(tc.shared)) || !slices.Equal(tk.Moved, orEmpty(tc.moved)) || !slices.Equal(tk.Fresh, orEmpty(tc.fresh)) ||
				!slices.Equal(tk.Dropped, orEmpty(tc.dropped)) {
				t.Fatalf("takeover %+v, want shared %v moved %v fresh %v dropped %v", tk, tc.shared, tc.moved, tc.fresh, tc.dropped)
			}
			fresh := map[string]bool{}
			for _, n := range tk.Fresh {
				fresh[n] = true
			}
			vb, vafter := NewVector(b.Schema()), NewVector(after.Schema())
			for i, ev := range append(slices.Clone(early), post...) {
				if i == len(early) {
					b.Activate()
				}
				b.Observe(ev, vb)
				full.Observe(ev, vf)
				after.Observe(ev, vafter)
				for j, f := range b.Schema().Fields {
					ref, refV := full, vf
					if fresh[f.Name] {
						ref, refV = after, vafter
					}
					want, got := refV.Value(ref.Schema(), j), vb.Value(b.Schema(), j)
					if !close(want, got) {
						t.Fatalf("event %d (%s): %s = %v, want %v", i, ev.Card.Token, f.Name, got, want)
					}
				}
			}
			if got, want := b.tracked.Load(), entities(b); got != want {
				t.Errorf("tracked %d, tables hold %d", got, want)
			}
			// The old engine now hands its metrics and labels on.
			if a.live() != b || a.Stats() != b.Stats() {
				t.Error("the replaced engine does not follow its successor")
			}
		})
	}
}

// TestSuccessorNotActivated: a successor that is never activated (its
// rules failed to compile, say) leaves the engine as it was.
func TestSuccessorNotActivated(t *testing.T) {
	o := Options{Lateness: 5 * time.Minute}
	a := mustEngine(t, propertyDefs, o)
	ref := mustEngine(t, propertyDefs, o)
	va, vr := NewVector(a.Schema()), NewVector(ref.Schema())
	evs := sortedStream(5, 1000)
	for _, ev := range evs[:500] {
		a.Observe(ev, va)
		ref.Observe(ev, vr)
	}
	f, err := Parse("b.yaml", []byte(propertyDefs+"  - {name: dm, entity: card.token, aggregate: distinct, field: device.ip, windows: [10m]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Successor(f); err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs[500:] {
		a.Observe(ev, va)
		ref.Observe(ev, vr)
		for j, f := range a.Schema().Fields {
			if want, got := vr.Value(ref.Schema(), j), va.Value(a.Schema(), j); !close(want, got) {
				t.Fatalf("event %s: %s = %v, want %v: the engine changed under a successor never activated", ev.ID, f.Name, got, want)
			}
		}
	}
}

// TestSuccessorUnderLoad reloads back and forth between two definitions
// while goroutines score through whichever engine is live, as vigil serve
// does (run with -race by make test), all events at one time (none is
// late). The card kind is the same in both:
// no card event may be lost. The merchant kind moves at each reload: an
// event under way on the replaced engine may go unrecorded, and is then
// counted as such.
func TestSuccessorUnderLoad(t *testing.T) {
	const cardDefs = "features:\n  - {name: c, entity: card.token, aggregate: count, windows: [24h]}\n" +
		"  - {name: cd, entity: card.token, aggregate: distinct, field: merchant.id, windows: [24h]}\n"
	defs := [2]string{
		cardDefs + "  - {name: m, entity: merchant.id, aggregate: count, windows: [1h]}\n",
		cardDefs + "  - {name: m, entity: merchant.id, aggregate: sum, field: amount, windows: [1h]}\n" +
			"  - {name: mn, kind: novelty, entity: merchant.id, field: card.token}\n",
	}
	var files [2]*File
	for i, d := range defs {
		f, err := Parse("d.yaml", []byte(d))
		if err != nil {
			t.Fatal(err)
		}
		files[i] = f
	}
	first := mustEngine(t, defs[0], Options{})
	var live atomic.Pointer[Engine]
	live.Store(first)
	const workers, perWorker, cards = 4, 3000, 16
	var wg sync.WaitGroup
	var done atomic.Bool
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				e := live.Load()
				v := NewVector(e.Schema())
				e.Observe(&event.Event{ID: fmt.Sprint(w, i), Time: t0, Amount: 100, Currency: "USD",
					Card: event.Card{Token: fmt.Sprint("tok_", (w*perWorker+i)%cards)}, Merchant: event.Merchant{ID: fmt.Sprint("m_", i%7)}}, v)
			}
		}()
	}
	go func() { wg.Wait(); done.Store(true) }()
	reloads := 0
	for !done.Load() || reloads < 4 {
		cur := live.Load()
		next, _, err := cur.Successor(files[(reloads+1)%2])
		if err != nil {
			t.Fatal(err)
		}
		live.Store(next)
		next.Activate()
		reloads++
	}
	wg.Wait()
	e := live.Load()
	if got, want := e.tracked.Load(), entities(e); got != want {
		t.Errorf("tracked %d, tables hold %d", got, want)
	}
	v := NewVector(e.Schema())
	total := 0.0
	for c := range cards {
		e.Peek(&event.Event{ID: "peek", Time: t0, Amount: 1, Currency: "USD", Card: event.Card{Token: fmt.Sprint("tok_", c)}}, v)
		n, _ := num(t, e, v, "c_24h")
		total += n - 1 // Peek counts the peeked event
	}
	if total != workers*perWorker {
		t.Errorf("cards counted %v events, want %d (%d reloads)", total, workers*perWorker, reloads)
	}
	t.Logf("%d reloads, %d merchant events unrecorded", reloads, e.m.reloadUnrecorded.Load())
}

// TestMovedSetKeepsInlineStorage: a distinct set that moves to a new
// entity takes its values stored inside the set with it (the old copy is
// left empty, and writing to one never shows in the other).
func TestMovedSetKeepsInlineStorage(t *testing.T) {
	var a, b valueSet
	a.init()
	b.init()
	a.vals = append(a.vals, setVal{h: 1, last: 10}, setVal{h: 2, last: 11})
	a.recent = append(a.recent, setOcc{t: 11})
	a.live = 2
	a.moveTo(&b)
	if len(b.vals) != 2 || b.vals[1].h != 2 || len(b.recent) != 1 || b.live != 2 {
		t.Fatalf("moved set %+v", b)
	}
	if &b.vals[0] != &b.inline[0] || &b.recent[0] != &b.rinline[0] {
		t.Error("the moved set's values still live in the old set")
	}
	if len(a.vals) != 0 || a.live != 0 || &a.vals[:1][0] != &a.inline[0] {
		t.Errorf("the old set was not reset: %+v", a)
	}
}

// TestSuccessorKeepsLabelsAndTravel: label_rate history is shared when its
// definition is unchanged, labels given to the replaced engine reach its
// successor, and a travel history moves with its entity.
func TestSuccessorKeepsLabelsAndTravel(t *testing.T) {
	const defs = labelDefs + `  - {name: travel, kind: travel, entity: card.token, location: billing}
  - {name: cc, entity: card.token, aggregate: count, windows: [1h]}
`
	day := 24 * time.Hour
	a := mustEngine(t, defs, Options{Labels: true})
	va := NewVector(a.Schema())
	ev := func(id string, at time.Duration, lat, lon float64) *event.Event {
		return &event.Event{ID: id, Time: t0.Add(at), Amount: 100, Currency: "EUR", Merchant: event.Merchant{ID: "m1"},
			Card: event.Card{Token: "tok"}, Billing: event.Location{Lat: &lat, Lon: &lon}}
	}
	first, second := ev("a", 0, 40.7, -74.0), ev("b", time.Hour, 40.7, -74.0)
	a.Observe(first, va)
	a.Observe(second, va)
	b, tk := successor(t, a, defs+"  - {name: cs, entity: card.token, aggregate: sum, field: amount, windows: [1h]}\n")
	if want := []string{"cs_1h"}; !slices.Equal(tk.Fresh, want) { // cc keeps its series, cs gets one of its own
		t.Fatalf("fresh %v, want %v", tk.Fresh, want)
	}
	b.Activate()
	a.ObserveLabel(first, true, t0.Add(2*time.Hour)) // to the replaced engine
	vb := NewVector(b.Schema())
	b.Observe(ev("c", 2*day+90*time.Minute, 51.5, -0.1), vb) // London, two days later
	if got := value(t, b, vb, "merchant_fraud_rate_1d"); !close(0.5, got) {
		t.Errorf("fraud rate %v, want 0.5 (a fraud, b not)", got)
	}
	if got, _ := num(t, b, vb, "travel"); got < 100 || got > 200 { // ~5,570 km in 47.5 h
		t.Errorf("travel %v km/h, want ~117", got)
	}
	if got, _ := num(t, b, vb, "cc_1h"); got != 1 {
		t.Errorf("cc_1h %v, want 1", got)
	}
}

// TestReplacedEngineRecordsNothing: events still under way on the replaced
// engine once its state moved record nothing anywhere and are counted; an
// entity it created while the successor already had the key is dropped
// when its shard moves, counted the same way; the entity counts stay
// those of the tables.
func TestReplacedEngineRecordsNothing(t *testing.T) {
	const defs = "features:\n  - {name: c, entity: card.token, aggregate: count, windows: [1h]}\n"
	a := mustEngine(t, defs, Options{})
	ev := func(card string, s int) *event.Event {
		return &event.Event{ID: card, Time: t0.Add(time.Duration(s) * time.Second), Amount: 100, Currency: "USD",
			Card: event.Card{Token: card}, Merchant: event.Merchant{ID: "m"}}
	}
	va := NewVector(a.Schema())
	a.Observe(ev("x", 0), va)
	b, _ := successor(t, a, defs+"  - {name: d, entity: card.token, aggregate: distinct, field: merchant.id, windows: [1h]}\n")
	vb := NewVector(b.Schema())
	b.Observe(ev("z", 1), vb) // the successor is live (its rules are) before Activate
	a.Observe(ev("z", 2), va) // an event under way on the replaced engine: a second z there
	b.Activate()
	a.Observe(ev("x", 3), va) // under way still: x moved
	a.Observe(ev("y", 4), va) // a new card of a moved shard
	if got := a.m.reloadUnrecorded.Load(); got != 3 {
		t.Errorf("unrecorded %d, want 3 (z dropped, x and y not recorded)", got)
	}
	for card, want := range map[string]float64{"x": 2, "y": 1, "z": 2} {
		b.Peek(ev(card, 5), vb)
		if got, _ := num(t, b, vb, "c_1h"); got != want {
			t.Errorf("%s: c_1h %v, want %v (the peeked event included)", card, got, want)
		}
	}
	if got, want := b.tracked.Load(), entities(b); got != want || got != 2 {
		t.Errorf("tracked %d, tables %d, want 2", got, want)
	}
}

// TestSuccessorDropsRemovedKind: the entities of a kind no definition keys
// on any more are freed (the first engine stays referenced, as vigil serve
// keeps it), the entity total goes down by them, and an event under way
// on the replaced engine records nothing there.
func TestSuccessorDropsRemovedKind(t *testing.T) {
	const card = "features:\n  - {name: c, entity: card.token, aggregate: count, windows: [1h]}\n"
	const merch = "  - {name: m, entity: merchant.id, aggregate: distinct, field: card.token, windows: [1h]}\n"
	first := mustEngine(t, card, Options{MaxEntities: 1 << 22})
	b, _ := successor(t, first, card+merch)
	b.Activate()
	ev := func(i int) *event.Event {
		return &event.Event{ID: "x", Time: t0, Amount: 1, Currency: "USD", Card: event.Card{Token: "tok"}, Merchant: event.Merchant{ID: fmt.Sprint("m_", i)}}
	}
	v := NewVector(b.Schema())
	for i := range 100_000 {
		b.Observe(ev(i), v)
	}
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	c, _ := successor(t, b, card)
	c.Activate()
	b.Observe(ev(-1), v) // under way on the replaced engine
	b = nil
	if after := heap(); after > before/2 {
		t.Errorf("heap %d MB before dropping the merchants, %d MB after", before>>20, after>>20)
	}
	if got, want := c.tracked.Load(), entities(c); got != want || got != 1 {
		t.Errorf("tracked %d, tables %d, want 1", got, want)
	}
	runtime.KeepAlive(first)
}

// TestSuccessorSinceLastAdded: since_last added to a kind that kept no
// recent times reads them for late events: it is listed as starting
// empty. Late-event counters go on across the move.
func TestSuccessorSinceLastAdded(t *testing.T) {
	const a = "features:\n  - {name: c, entity: card.token, aggregate: count, windows: [1h]}\n"
	e := mustEngine(t, a, Options{Lateness: 5 * time.Minute})
	v := NewVector(e.Schema())
	for _, s := range []int{100, 50} { // the second is late
		e.Observe(&event.Event{ID: "x", Time: t0.Add(time.Duration(s) * time.Second), Amount: 1, Currency: "USD", Card: event.Card{Token: "tok"}}, v)
	}
	n, tk := successor(t, e, a+"  - {name: last, kind: recency, entity: card.token, measure: since_last}\n")
	n.Activate()
	if !slices.Equal(tk.Fresh, []string{"last"}) {
		t.Errorf("fresh %v, want [last]", tk.Fresh)
	}
	if got := n.Stats().LateAccepted; got != 1 {
		t.Errorf("late accepted %d after the reload, want 1", got)
	}
}

// TestReloadsKeepNoHistory: reloading back and forth keeps no trace of
// the engines replaced (their kinds, their emptied shards): the heap does
// not grow with the number of reloads.
func TestReloadsKeepNoHistory(t *testing.T) {
	const card = "features:\n  - {name: c, entity: card.token, aggregate: count, windows: [1h]}\n"
	defs := [2]string{card, card + "  - {name: d, entity: card.token, aggregate: distinct, field: merchant.id, windows: [1h]}\n"}
	first := mustEngine(t, defs[0], Options{})
	e := first
	v := NewVector(e.Schema())
	for i := range 1000 {
		e.Observe(cardEvent(fmt.Sprint("c", i), 0), v)
	}
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	var at20 uint64
	for r := range 120 {
		e, _ = successor(t, e, defs[(r+1)%2])
		e.Activate()
		if r == 19 {
			at20 = heap()
		}
	}
	if grown := int64(heap()) - int64(at20); grown > 1<<20 {
		t.Errorf("100 more reloads grew the heap by %d KB", grown>>10)
	}
	runtime.KeepAlive(first) // vigil serve keeps the first engine
}

// TestFreshAfterFilterRoundTrip: a window added by one reload has history
// only from then on; a definition that leaves its series (a filter added)
// and comes back to it (the filter removed) reads that window again, so
// the second return names it fresh — it was named kept, and undercounted
// silently for up to its length.
func TestFreshAfterFilterRoundTrip(t *testing.T) {
	const (
		f1 = `features:
  - {name: cc, entity: card.token, aggregate: count, windows: [10m, 1h]}
  - {name: cs, entity: card.token, aggregate: sum, field: amount, windows: [1h]}
`
		plain = `features:
  - {name: cc, entity: card.token, aggregate: count, windows: [5m, 10m, 1h]}
  - {name: cs, entity: card.token, aggregate: sum, field: amount, windows: [2h]}
`
		help = `features:
  - {name: cc, help: x, entity: card.token, aggregate: count, windows: [5m, 10m, 1h]}
  - {name: cs, entity: card.token, aggregate: sum, field: amount, windows: [2h]}
`
		filtered = `features:
  - {name: cc, help: x, entity: card.token, aggregate: count, filter: 'amount > 5', windows: [5m, 10m, 1h]}
  - {name: cs, entity: card.token, aggregate: sum, field: amount, windows: [2h]}
`
	)
	t0 := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	e := mustEngine(t, f1, Options{Lateness: 5 * time.Minute})
	at := func(s int) { // one event at t0+s seconds
		e.Observe(&event.Event{Time: t0.Add(time.Duration(s) * time.Second), Amount: 100000, Currency: "USD", Card: event.Card{Token: "c"}}, NewVector(e.Schema()))
	}
	reload := func(defs string, fresh ...string) {
		t.Helper()
		n, tk := successor(t, e, defs)
		n.Activate()
		if !slices.Equal(orEmpty(tk.Fresh), orEmpty(fresh)) {
			t.Errorf("fresh %v, want %v", tk.Fresh, fresh)
		}
		e = n
	}
	for _, s := range []int{0, 60, 400, 700} {
		at(s)
	}
	reload(plain, "cc_5m", "cs_2h")
	at(760)
	reload(help)
	reload(filtered, "cc_5m", "cc_10m", "cc_1h")
	at(800)
	reload(help, "cc_5m", "cc_10m", "cc_1h") // back on the series whose 5m window started at the first reload
}
