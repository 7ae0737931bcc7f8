package features

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
)

// A reload of the definitions builds a successor engine (Successor) that
// keeps the state of what did not change:
//
//   - an entity kind whose state layout is unchanged (same definitions
//     but for names, help texts and outputs that keep no state) is shared
//     as it is: the successor reads and updates the very same entities;
//   - a kind whose layout changed gets new entities, into which every
//     entity of the predecessor moves when the successor is activated
//     (Activate), carrying each piece of state whose own layout is
//     unchanged (a series with the same field, filter, resolution and
//     windows; a distinct set, novelty set, travel or hour-of-day history
//     likewise; first and last seen times always) — the other pieces start
//     empty;
//   - label_rate history is shared when its definition is unchanged.
//
// Between Successor and Activate the predecessor stays the live engine
// and the successor may be dropped (a rule that no longer compiles, say):
// Successor changes nothing in the predecessor.

// Takeover says what a successor keeps of its predecessor's state.
type Takeover struct {
	Shared  []string // entity kinds whose state is shared as it is
	Moved   []string // entity kinds whose entities move, keeping what they can
	Dropped []string // entity kinds no definition keys on any more: freed
	// Fresh lists the features whose state starts empty: their windows
	// count only events from now on (a restart does the same to all).
	Fresh []string
}

// planMap maps a kind's plans to its predecessor's (-1: none, the state
// starts empty).
type planMap struct {
	series, sets, seen, travel, hours []int
	recent                            bool // recent times carry over
}

// signed is a plan with a state layout signature (its sig field).
type signed interface{ layoutSig() string }

func (p *seriesPlan) layoutSig() string { return p.sig }
func (p *setPlan) layoutSig() string    { return p.sig }
func (p *seenPlan) layoutSig() string   { return p.sig }
func (p *travelPlan) layoutSig() string { return p.sig }
func (p *hourPlan) layoutSig() string   { return p.sig }

// stateSig identifies the layout of a kind's state.
func (k *kind) stateSig() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s|%t|%t|%t|%d", k.name, k.needRecent, k.needExt, k.history, k.windowSec)
	writeSigs(&b, "s", k.series)
	writeSigs(&b, "d", k.sets)
	writeSigs(&b, "n", k.seen)
	writeSigs(&b, "t", k.travel)
	writeSigs(&b, "h", k.hours)
	return b.String()
}

func writeSigs[P signed](b *strings.Builder, tag string, ps []P) {
	for _, p := range ps {
		b.WriteString("\x00" + tag + p.layoutSig())
	}
}

// match maps each plan of cur to an unused plan of old with the same
// signature (-1: none).
func match[P signed](cur, old []P) []int {
	used := make([]bool, len(old))
	m := make([]int, len(cur))
	for j, p := range cur {
		m[j] = -1
		for i, o := range old {
			if !used[i] && o.layoutSig() == p.layoutSig() {
				m[j], used[i] = i, true
				break
			}
		}
	}
	return m
}

func mapPlans(old, k *kind) planMap {
	return planMap{
		series: match(k.series, old.series),
		sets:   match(k.sets, old.sets),
		seen:   match(k.seen, old.seen),
		travel: match(k.travel, old.travel),
		hours:  match(k.hours, old.hours),
		recent: old.needRecent && k.needRecent,
	}
}

// Computes reports whether f defines what e computes, help texts
// included: a file that differs from e's only in comments, layout or
// order of keys, which needs no successor.
func (e *Engine) Computes(f *File) bool {
	if f.Digest() != e.schema.Digest {
		return false
	}
	for i := range f.Features {
		for _, o := range f.Features[i].Outputs() {
			j, ok := e.schema.Lookup(o.Name)
			if !ok || e.schema.Fields[j] != o {
				return false
			}
		}
	}
	return true
}

// Successor compiles f into an engine that takes over this engine's state
// where its layout is unchanged (see above). It shares this engine's
// options, keys, geo databases and counters. Nothing changes in e: until
// the successor is activated, e stays the live engine.
func (e *Engine) Successor(f *File) (*Engine, *Takeover, error) {
	if f == nil {
		return nil, nil, errors.New("features: no definitions")
	}
	n := newEngine(e.opts)
	n.valueSeed, n.m, n.tracked, n.fp, n.randomKey, n.geo, n.current = e.valueSeed, e.m, e.tracked, e.fp, e.randomKey, e.geo, e.current
	if err := n.compile(f, e); err != nil {
		return nil, nil, fmt.Errorf("features: %w", err)
	}
	n.prev = e
	for _, k := range n.kinds {
		k.prevLayout = nil // compiled: keeps no predecessor alive
	}
	prev := map[string]*kind{}
	for _, k := range e.kinds {
		prev[k.name] = k
	}
	t := &Takeover{Shared: []string{}, Moved: []string{}, Dropped: []string{}, Fresh: []string{}}
	fresh := make([]bool, n.schema.Len())
	freshSlots := func(slots ...int) {
		for _, s := range slots {
			fresh[s] = true
		}
	}
	for _, k := range n.kinds {
		p := prev[k.name]
		switch {
		case p == nil:
			k.freshOutputs(freshSlots, nil)
			continue
		case k.sig == p.sig:
			k.key, k.kindState = p.key, p.kindState
			t.Shared = append(t.Shared, k.name)
			continue
		}
		k.key, k.from, k.plans = p.key, p, mapPlans(p, k)
		for i := range k.shards {
			k.shards[i].pending = true
		}
		k.late = p.late // counters go on
		t.Moved = append(t.Moved, k.name)
		k.freshOutputs(freshSlots, &k.plans)
	}
	for _, p := range e.kinds {
		if !slices.ContainsFunc(n.kinds, func(k *kind) bool { return k.name == p.name }) {
			t.Dropped = append(t.Dropped, p.name)
		}
	}
	used := make([]bool, len(e.labels))
	for _, lp := range n.labels {
		found := false
		for i, old := range e.labels {
			if !used[i] && old.sig == lp.sig {
				lp.key, lp.labelState, used[i], found = old.key, old.labelState, true, true
				break
			}
		}
		if !found {
			freshSlots(lp.slots...)
		}
	}
	for i, f := range n.schema.Fields {
		if fresh[i] {
			t.Fresh = append(t.Fresh, f.Name)
		}
	}
	return n, t, nil
}

// freshOutputs calls fresh with the output slots of every plan of k that m maps
// to no plan of the predecessor (every plan when m is nil). Recency
// features read first and last seen times, which carry over whenever the
// kind existed.
func (k *kind) freshOutputs(fresh func(slots ...int), m *planMap) {
	var pm planMap
	if m != nil {
		pm = *m
	}
	none := func(mm []int, j int) bool { return m == nil || mm[j] < 0 }
	for j, p := range k.series {
		if none(pm.series, j) {
			for _, o := range p.outs {
				fresh(o.slot)
			}
			for _, o := range p.anom {
				fresh(o.slot)
			}
			continue
		}
		// A series kept for other definitions may hold a window that no
		// output of the predecessor read — one added by an earlier reload,
		// with history only since then — so an output is kept only where
		// the predecessor's series had the same aggregate over the same
		// window: else it is reported fresh (at worst a false alarm).
		old := k.from.series[pm.series[j]]
		for _, o := range p.outs {
			if !slices.ContainsFunc(old.outs, func(x seriesOut) bool { return x.agg == o.agg && x.wl == o.wl }) {
				fresh(o.slot)
			}
		}
	}
	for j, p := range k.sets {
		if none(pm.sets, j) {
			for _, o := range p.outs {
				fresh(o.slot)
			}
		}
	}
	for j, p := range k.seen {
		if none(pm.seen, j) {
			fresh(p.slot)
		}
	}
	for j, p := range k.travel {
		if none(pm.travel, j) {
			fresh(p.slot)
		}
	}
	for j, p := range k.hours {
		if none(pm.hours, j) {
			fresh(p.slot)
		}
	}
	for _, p := range k.recency {
		// First and last seen times always carry over, but since_last of a
		// late event reads the recent times, which a kind without it kept
		// none of.
		if m == nil || (p.measure == SinceLast && k.needRecent && !m.recent) {
			fresh(p.slot)
		}
	}
}

// Activate makes the successor e the live engine in place of the engine
// it succeeds: the predecessor's metrics and label feed follow e, and the
// entities of the kinds whose layout changed move into e — a few at a
// time under the two shards' locks, and each entity that an event of e
// reaches first then — so that scoring goes on meanwhile. It returns once
// every entity has moved. The predecessor may still be finishing events
// begun before: one whose entity already moved is scored without that
// history and not recorded (counted in
// vigil_features_reload_unrecorded_total). Call it once, after the rules
// compiled against e's schema went live.
func (e *Engine) Activate() {
	p := e.prev
	if p == nil {
		return
	}
	nw := p.newest2.Load()
	e.advance(uint32(nw >> 32))
	e.advance(uint32(nw))
	if p.labelsSeen.Load() {
		e.labelsSeen.Store(true)
	}
	e.current.Store(e)
	kept := map[*kindState]bool{}
	for _, k := range e.kinds {
		kept[k.kindState] = true
		if k.from != nil {
			kept[k.from.kindState] = true
		}
	}
	for _, k := range p.kinds {
		if !kept[k.kindState] { // a kind no definition keys on any more
			e.drop(k)
		}
	}
	keptLabels := map[*labelState]bool{}
	for _, lp := range e.labels {
		keptLabels[lp.labelState] = true
	}
	for _, lp := range p.labels {
		if !keptLabels[lp.labelState] {
			for i := range lp.shards {
				sh := &lp.shards[i]
				sh.mu.Lock()
				clear(sh.m)
				sh.mu.Unlock()
			}
		}
	}
	for _, k := range e.kinds {
		if k.from == nil {
			continue
		}
		for i := range k.shards {
			sh := &k.shards[i]
			for done := false; !done; {
				sh.mu.Lock()
				done = !sh.pending || e.drain(k, sh, i, moveChunk)
				sh.mu.Unlock()
			}
		}
		k.from = nil // every shard taken over (read only while one is pending)
	}
	e.prev = nil // nothing to take over any more: let the predecessor go
}

// drop frees the entities of p, a predecessor's kind that no definition
// keys on any more: its shards end as moved ones do (an event under way
// on the predecessor records nothing there).
func (e *Engine) drop(p *kind) {
	for i := range p.shards {
		sh := &p.shards[i]
		sh.mu.Lock()
		n := int64(sh.t.len())
		sh.t.clear()
		sh.moved = true
		p.tracked.Add(-n)
		e.tracked.Add(-n)
		sh.mu.Unlock()
	}
}

// moveChunk is how many slots of a predecessor's shard Activate moves per
// hold of the locks: a few microseconds of waiting for an event.
const moveChunk = 64

// tombTime marks an entity whose state moved to a successor (first and
// newest both): its slot stays until its shard is drained, so that the
// predecessor's lookups still find the entities after it, and an event of
// the predecessor that finds it records nothing.
const tombTime = math.MaxUint32

func tomb(en *entity) { *en = entity{first: tombTime, newest: tombTime} }

func isTomb(en *entity) bool {
	return en.newest == tombTime && en.first == tombTime && en.s0 == nil && en.x == nil
}

// drain moves up to n slots of the predecessor's shard i into sh (shard i
// of k, locked), from where the last call stopped. At the end it moves any
// entity it passed by (the predecessor's inserts and deletes move slots),
// frees the predecessor's shard and reports true.
func (e *Engine) drain(k *kind, sh *shard, i, n int) bool {
	old := &k.from.shards[i]
	old.mu.Lock()
	defer old.mu.Unlock()
	old.handing = true
	slots := old.t.slots
	for ; sh.cursor < len(slots) && n > 0; sh.cursor++ {
		if sl := &slots[sh.cursor]; sl.key != 0 {
			e.moveEntity(k, sh, sl.key, &sl.en)
			n--
		}
	}
	if sh.cursor < len(slots) {
		return false
	}
	old.t.each(func(key uint64, en *entity) { e.moveEntity(k, sh, key, en) })
	old.t.clear()
	old.moved = true
	sh.pending = false
	return true
}

// settle moves what is left of the predecessor's shard i into sh (shard i
// of k, locked), when it is pending: eviction must see those entities
// (the idle ones the cap should drop are there).
func (e *Engine) settle(k *kind, sh *shard, i int) {
	if sh.pending {
		for !e.drain(k, sh, i, math.MaxInt) {
		}
	}
}

// takeKey moves the entity of key, if the predecessor's shard i still has
// it, into sh (shard i of k, locked): an event reached it first.
func (e *Engine) takeKey(k *kind, sh *shard, i int, key uint64) {
	old := &k.from.shards[i]
	old.mu.Lock()
	old.handing = true // no entity it lacks now may appear there after
	if en := old.t.get(key); en != nil {
		e.moveEntity(k, sh, key, en)
	}
	old.mu.Unlock()
}

// moveEntity moves en (of the predecessor, whose shard is locked, as sh
// is) into sh and leaves a tomb in its place. An entity that sh has
// already is dropped, counted as unrecorded (it cannot happen: the
// predecessor creates none in a shard being handed over).
func (e *Engine) moveEntity(k *kind, sh *shard, key uint64, en *entity) {
	if isTomb(en) {
		return
	}
	k.from.tracked.Add(-1)
	if sh.t.get(key) != nil {
		e.tracked.Add(-1)
		e.m.reloadUnrecorded.Add(1)
	} else {
		k.convert(en, sh.t.insert(key))
		k.tracked.Add(1)
	}
	tomb(en)
}

// convert fills en (new, of k) with what it keeps of old (of k.from).
func (k *kind) convert(old, en *entity) {
	en.first, en.newest = old.first, old.newest
	if k.needExt {
		en.x = k.newExt()
	}
	m := &k.plans
	for j, i := range m.series {
		if i >= 0 {
			en.setBlob(j, old.blob(i))
		}
	}
	ox, x := old.x, en.x
	if ox == nil || x == nil {
		return
	}
	for j, i := range m.sets {
		if i >= 0 {
			ox.set(i).moveTo(x.set(j))
		}
	}
	for j, i := range m.seen {
		if i >= 0 {
			x.seen[j] = ox.seen[i]
		}
	}
	for j, i := range m.travel {
		if i >= 0 {
			x.travel[j] = ox.travel[i]
		}
	}
	for j, i := range m.hours {
		if i >= 0 {
			x.hours[j] = ox.hours[i]
		}
	}
	if m.recent {
		x.recent = ox.recent
	}
}

// live is the engine that replaced e (through any number of reloads), or
// e: where metrics and labels go. Engines share the pointer to it, so that
// one kept (vigil serve keeps the first) keeps no other alive.
func (e *Engine) live() *Engine {
	if n := e.current.Load(); n != nil {
		return n
	}
	return e
}

// kindList is e's kinds (none for a nil engine).
func (e *Engine) kindList() []*kind {
	if e == nil {
		return nil
	}
	return e.kinds
}
