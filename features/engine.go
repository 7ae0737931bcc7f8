package features

import (
	"crypto/rand"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-fraud/vigil/engine/event"
)

// Engine computes features for events and records events in its state. It
// is safe for concurrent use: state is split by entity kind and, within a
// kind, into 256 shards each with its own lock; an event takes one shard
// lock per entity kind it has a key for, never a global one.
//
// Window semantics: a window feature over w of an event at time t covers
// the entity's recorded events with time in (t − w, t], the event itself
// included, at the definition's bucket resolution. See docs/features.md.
type Engine struct {
	schema    *Schema
	kinds     []*kind
	stateless []statelessPlan
	filters   filters
	geo       *geoDB
	fp        *fingerprinter
	valueSeed maphash.Seed
	m         *metrics // shared with successors
	log       *slog.Logger
	opts      Options // as given, with defaults: a successor's

	maxEntities int64
	lateness    int64 // seconds
	retention   int64 // seconds
	randomKey   bool
	horizon     int64 // seconds: longest window + lateness

	labels     []*labelPlan // label_rate features (labels.go)
	labelsSeen atomic.Bool  // whether ObserveLabel was ever called
	labelsOn   bool         // Options.Labels: keep label_rate state

	tracked  *atomic.Int64 // entities of every kind; shared with successors
	newest2  atomic.Uint64 // the two newest event times seen, packed (see advance)
	lastWarn atomic.Int64
	current  *atomic.Pointer[Engine] // the live engine once a successor is activated; shared (successor.go)
	prev     *Engine                 // the engine this one succeeds, until activated
}

// statelessPlan is a feature of the event alone: value, distance, mismatch.
type statelessPlan struct {
	kind     Kind
	field    fieldSpec
	a, b     fieldSpec
	from, to func(*evctx) (float64, float64, bool)
	slot     int
}

// anomalyOut is an anomaly feature read from a series.
type anomalyOut struct {
	measure    string
	wl         int64 // window length in buckets
	win        int   // its index in the series' windows
	minHistory int
	slot       int
}

// New builds an engine for the definitions, with at most one Options (the
// zero Options when none). It returns an error, never panics, for invalid
// options, an unreadable geo database, or definitions that need one.
func New(f *File, opts ...Options) (*Engine, error) {
	if f == nil {
		return nil, errors.New("features: no definitions")
	}
	if len(opts) > 1 {
		return nil, errors.New("features: at most one Options")
	}
	var o Options
	if len(opts) == 1 {
		o = opts[0]
	}
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("features: %w", err)
	}
	o = o.withDefaults()
	e := newEngine(o)
	e.valueSeed, e.m, e.tracked, e.current = maphash.MakeSeed(), new(metrics), new(atomic.Int64), new(atomic.Pointer[Engine])
	key := o.FingerprintKey
	if key == nil {
		key = make([]byte, 32)
		_, _ = rand.Read(key)
		e.randomKey = true
	}
	e.fp = newFingerprinter(key)
	if err := e.compile(f, nil); err != nil {
		return nil, fmt.Errorf("features: %w", err)
	}
	geo, err := openGeo([]string{o.GeoIPDatabase, o.ASNDatabase}, o.GeoCacheSize, e.m)
	if err != nil {
		return nil, fmt.Errorf("features: %w", err)
	}
	e.geo = geo
	return e, nil
}

// newEngine is an engine for options o (with defaults), without
// definitions, keys or databases.
func newEngine(o Options) *Engine {
	return &Engine{opts: o, log: o.Logger, maxEntities: int64(o.MaxEntities), lateness: int64(o.Lateness.Seconds()),
		retention: int64(o.Retention.Seconds()), labelsOn: o.Labels}
}

// Close releases the geo databases, which an engine shares with its
// successors: close one of them, once none is used any more.
func (e *Engine) Close() error {
	e.geo.close()
	return nil
}

// Schema lists the features the engine computes.
func (e *Engine) Schema() *Schema { return e.schema }

// Horizon is how much event-time history the windows read: the longest
// window plus the lateness. Replaying this much history before an event
// rebuilds the window features it sees.
func (e *Engine) Horizon() time.Duration { return time.Duration(e.horizon) * time.Second }

// Lateness is the configured lateness bound.
func (e *Engine) Lateness() time.Duration { return time.Duration(e.lateness) * time.Second }

// compile turns definitions into per-kind plans and the schema. With
// prev (a successor's predecessor), a window of a definition that one of
// prev's series or sets already keeps is served by a copy of it, as it is
// (frozen), so that its state carries over; the rest gets plans of its own.
func (e *Engine) compile(f *File, prev *Engine) error {
	var fields []Field
	kinds := map[string]*kind{}
	kindOf := func(d *Definition) *kind {
		name := d.EntityName()
		if k, ok := kinds[name]; ok {
			return k
		}
		k := &kind{name: name, key: newEntityKey(d.Entity), kindState: &kindState{late: new(lateCounts)}}
		for _, p := range prev.kindList() {
			if p.name == name {
				k.prevLayout = p
			}
		}
		kinds[name] = k
		e.kinds = append(e.kinds, k)
		return k
	}
	filterOf := func(d *Definition) (int, error) {
		if d.Filter == "" {
			return -1, nil
		}
		return e.filters.index(d.Filter)
	}
	usesFP := false
	for di := range f.Features {
		d := &f.Features[di]
		outs := d.Outputs()
		base := len(fields)
		fields = append(fields, outs...)
		fi, err := filterOf(d)
		if err != nil {
			return fmt.Errorf("%s: feature %q: %w", d.Pos, d.Name, err)
		}
		for _, p := range append(append([]string{d.Field}, d.Entity...), d.Fields...) {
			if p == "device.fingerprint" {
				usesFP = true
			}
		}
		switch d.Kind {
		case KindWindow:
			k := kindOf(d)
			for j, w := range d.Windows {
				if d.Aggregate == Distinct {
					sp := e.setPlanFor(k, d, fi, int64(w.Length.Seconds()))
					sp.outs = append(sp.outs, setOut{wl: int64(w.Length.Seconds()), slot: base + j})
					continue
				}
				wl := int64(w.Length / d.Resolution)
				sp := e.seriesPlanFor(k, d, fi, wl)
				sp.outs = append(sp.outs, seriesOut{agg: d.Aggregate, wl: wl, slot: base + j})
			}
		case KindAnomaly:
			k := kindOf(d)
			for j, w := range d.Windows {
				wl := int64(w.Length / d.Resolution)
				sp := e.seriesPlanFor(k, d, fi, wl)
				sp.anom = append(sp.anom, anomalyOut{measure: d.Measure, wl: wl, minHistory: d.MinHistory, slot: base + j})
			}
		case KindRecency:
			k := kindOf(d)
			k.recency = append(k.recency, recencyPlan{measure: d.Measure, slot: base})
			if d.Measure == SinceLast && e.lateness > 0 {
				k.needRecent = true
			}
		case KindNovelty:
			k := kindOf(d)
			fs, _ := lookupField(d.Field)
			k.seen = append(k.seen, &seenPlan{field: fs, filter: fi, lookback: int64(d.Lookback.Seconds()),
				capacity: d.Capacity, slot: base, index: len(k.seen), sig: fmt.Sprintf("%s|%q|%d|%d", d.Field, d.Filter, d.Lookback, d.Capacity)})
		case KindTravel:
			k := kindOf(d)
			loc, _ := locationSource(d.Location)
			k.travel = append(k.travel, &travelPlan{loc: loc, slot: base, index: len(k.travel), sig: d.Location})
		case KindHourOfDay:
			k := kindOf(d)
			k.hours = append(k.hours, &hourPlan{filter: fi, minHistory: d.MinHistory, slot: base, index: len(k.hours), sig: fmt.Sprintf("%q", d.Filter)})
		case KindLabelRate:
			e.labels = append(e.labels, newLabelPlan(d, base))
		case KindValue:
			fs, _ := lookupField(d.Field)
			e.stateless = append(e.stateless, statelessPlan{kind: d.Kind, field: fs, slot: base})
		case KindMismatch:
			a, _ := lookupField(d.Fields[0])
			b, _ := lookupField(d.Fields[1])
			e.stateless = append(e.stateless, statelessPlan{kind: d.Kind, a: a, b: b, slot: base})
		case KindDistance:
			from, _ := locationSource(d.From)
			to, _ := locationSource(d.To)
			e.stateless = append(e.stateless, statelessPlan{kind: d.Kind, from: from, to: to, slot: base})
		default:
			return fmt.Errorf("%s: feature %q: unknown kind %q", d.Pos, d.Name, d.Kind)
		}
	}
	longest := int64(0)
	for _, k := range e.kinds {
		for _, sp := range k.series {
			sp.keepB = sp.wins[len(sp.wins)-1] + (e.lateness+sp.res-1)/sp.res + 1
			sp.layout()
			for i := range sp.outs {
				sp.outs[i].win = indexOf(sp.wins, sp.outs[i].wl)
			}
			slices.SortStableFunc(sp.outs, func(a, b seriesOut) int { return a.win - b.win })
			for i := range sp.anom {
				sp.anom[i].win = indexOf(sp.wins, sp.anom[i].wl)
			}
			k.windowSec = max(k.windowSec, sp.wins[len(sp.wins)-1]*sp.res)
		}
		for _, sp := range k.sets {
			sp.keep = sp.wins[len(sp.wins)-1] + e.lateness
			sp.lateness = e.lateness
			sp.sig = fmt.Sprintf("%s|%v|%d|%d|%d", sp.base, sp.wins, sp.keep, sp.lateness, sp.indexFrom)
			for i := range sp.outs {
				sp.outs[i].win = indexOf(sp.wins, sp.outs[i].wl)
			}
			k.windowSec = max(k.windowSec, sp.wins[len(sp.wins)-1])
		}
		k.extSpan = k.readSpan()
		k.needExt = k.extSpan > 0
		k.history = len(k.recency) > 0 || len(k.seen) > 0 || len(k.travel) > 0 || len(k.hours) > 0
		k.sig = k.stateSig()
		longest = max(longest, k.windowSec)
	}
	e.horizon = longest + e.lateness
	if e.retention < longest+e.lateness {
		return fmt.Errorf("retention %ds is shorter than the longest window plus the lateness (%ds)", e.retention, longest+e.lateness)
	}
	if usesFP && e.randomKey && prev == nil { // a successor keeps its predecessor's key
		e.log.Warn("features: no fingerprint key configured; derived device fingerprints use a random key and change at restart")
	}
	s, err := NewSchema(fields)
	if err != nil {
		return err
	}
	s.Digest = f.Digest()
	e.schema = s
	return nil
}

func indexOf(xs []int64, x int64) int {
	for i, v := range xs {
		if v == x {
			return i
		}
	}
	return -1
}

// insertSorted adds x to a sorted set.
func insertSorted(xs []int64, x int64) []int64 {
	for i, v := range xs {
		if v == x {
			return xs
		}
		if v > x {
			return append(xs[:i], append([]int64{x}, xs[i:]...)...)
		}
	}
	return append(xs, x)
}

// seriesPlanFor finds or adds the series that serves window wl (in
// buckets) of d: a predecessor's series that keeps it (see compile), else
// the one of d's entity, filter, field and resolution, which definitions
// share and extend.
func (e *Engine) seriesPlanFor(k *kind, d *Definition, fi int, wl int64) *seriesPlan {
	field := d.Field
	if d.Aggregate == Count && d.Kind == KindWindow {
		field = "amount" // always present: a count shares the amount series
	}
	base := fmt.Sprintf("%s|%q|%d", field, d.Filter, d.Resolution)
	need := statsOf(d)
	if p := k.prevLayout; p != nil {
		for _, s := range k.series {
			if s.frozen && s.base == base && s.covers(wl, need) {
				return s
			}
		}
		for _, s := range p.series {
			if s.base == base && s.covers(wl, need) {
				sp := newSeriesPlan(k, field, d, fi, "", base)
				sp.wins, sp.sum, sp.sq, sp.mm, sp.frozen = slices.Clone(s.wins), s.sum, s.sq, s.mm, true
				return sp
			}
		}
	}
	key := fmt.Sprintf("%s|%d|%d", field, fi, d.Resolution)
	var sp *seriesPlan
	for _, s := range k.series {
		if !s.frozen && s.key == key {
			sp = s
		}
	}
	if sp == nil {
		sp = newSeriesPlan(k, field, d, fi, key, base)
	}
	sp.wins = insertSorted(sp.wins, wl)
	sp.sum, sp.sq, sp.mm = sp.sum || need.sum, sp.sq || need.sq, sp.mm || need.mm
	return sp
}

func newSeriesPlan(k *kind, field string, d *Definition, fi int, key, base string) *seriesPlan {
	sp := &seriesPlan{key: key, base: base, res: int64(d.Resolution.Seconds()), filter: fi, scale: 1, index: len(k.series)}
	if field != "" {
		fs, _ := lookupField(field)
		sp.value = fs.num
		if field == "amount" {
			sp.value, sp.scale = amountStored, amountScale
		}
	}
	k.series = append(k.series, sp)
	return sp
}

// setPlanFor is seriesPlanFor for distinct counts (w in seconds).
func (e *Engine) setPlanFor(k *kind, d *Definition, fi int, w int64) *setPlan {
	base := fmt.Sprintf("%s|%q|%d|%d", d.Field, d.Filter, d.ExactUpTo, d.Precision)
	if p := k.prevLayout; p != nil {
		for _, s := range k.sets {
			if s.frozen && s.base == base && slices.Contains(s.wins, w) {
				return s
			}
		}
		for _, s := range p.sets {
			if s.base == base && slices.Contains(s.wins, w) {
				sp := newSetPlan(k, d, fi, "", base)
				sp.wins, sp.frozen = slices.Clone(s.wins), true
				return sp
			}
		}
	}
	key := fmt.Sprintf("%s|%d|%d|%d", d.Field, fi, d.ExactUpTo, d.Precision)
	var sp *setPlan
	for _, s := range k.sets {
		if !s.frozen && s.key == key {
			sp = s
		}
	}
	if sp == nil {
		sp = newSetPlan(k, d, fi, key, base)
	}
	sp.wins = insertSorted(sp.wins, w)
	return sp
}

func newSetPlan(k *kind, d *Definition, fi int, key, base string) *setPlan {
	fs, _ := lookupField(d.Field)
	sp := &setPlan{key: key, base: base, field: fs, filter: fi, exactUpTo: d.ExactUpTo, indexFrom: defaultIndexFrom,
		precision: uint8(d.Precision), index: len(k.sets)}
	k.sets = append(k.sets, sp)
	return sp
}

// Observe computes the features of ev into v, ev itself included in every
// window, and records ev in the state. Safe for concurrent use; no
// allocation in steady state.
func (e *Engine) Observe(ev *event.Event, v *Vector) { e.run(ev, v, true) }

// Peek computes the same values Observe would, but records nothing (except
// caches: HyperLogLog estimates, geo lookups).
func (e *Engine) Peek(ev *event.Event, v *Vector) { e.run(ev, v, false) }

// advance records t among the two newest event times seen. The
// watermark, which decides when entities are idle or expired, is the
// second newest (watermark): one event dated far ahead of the others (the
// API accepts some clock skew, a replay any time) cannot make every entity
// look idle, and a sparse stream is followed event by event.
func (e *Engine) advance(t uint32) {
	for {
		old := e.newest2.Load()
		first, second := uint32(old>>32), uint32(old)
		switch {
		case t > first:
			first, second = t, first
		case t > second: // below the newest, or a second event at its time
			second = t
		default:
			return
		}
		if e.newest2.CompareAndSwap(old, uint64(first)<<32|uint64(second)) {
			return
		}
	}
}

// watermark is the second newest event time seen (0 before two).
func (e *Engine) watermark() uint32 { return uint32(e.newest2.Load()) }

func (e *Engine) run(ev *event.Event, v *Vector, record bool) {
	v.Reset()
	// The context escapes (features call through func values): pool it.
	c, _ := ctxPool.Get().(*evctx)
	if c == nil {
		c = new(evctx)
	}
	defer ctxPool.Put(c)
	if c.init(e, ev) {
		if record {
			e.advance(c.t)
		}
		e.prefetch(c)
		for i, k := range e.kinds {
			key, ok := c.keyOf(i, k)
			if ok {
				e.process(k, key, c, v, record)
			}
		}
		if e.labelsOn {
			for _, lp := range e.labels {
				lp.observe(e, c, v, record)
			}
		}
	}
	for i := range e.stateless {
		e.stateless[i].compute(c, v)
	}
	c.releaseFilters()
	*c = evctx{}
}

var ctxPool sync.Pool

// noEntity stands for an entity not tracked (read only: Peek, or a kind
// whose key the event lacks).
var noEntity entity

func (p *statelessPlan) compute(c *evctx, v *Vector) {
	switch p.kind {
	case KindValue:
		if p.field.str != nil {
			v.SetStr(p.slot, p.field.str(c))
		} else if x, ok := p.field.num(c); ok {
			v.SetNum(p.slot, x)
		}
	case KindMismatch:
		a, b := p.a.str(c), p.b.str(c)
		if a != "" && b != "" {
			v.SetBool(p.slot, !strings.EqualFold(a, b))
		}
	case KindDistance:
		lat1, lon1, ok1 := p.from(c)
		lat2, lon2, ok2 := p.to(c)
		if ok1 && ok2 {
			v.SetNum(p.slot, haversineKm(lat1, lon1, lat2, lon2))
		}
	}
}

// Timing of an event for one entity.
const (
	inOrder = iota // at or after the entity's newest event (or a new entity)
	late           // behind it, within the lateness: recorded
	tooLate        // behind it beyond the lateness: not recorded
)

// process computes and (when record) records the features of kind k.
func (e *Engine) process(k *kind, key uint64, c *evctx, v *Vector, record bool) {
	sh := k.shardOf(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.pending {
		e.takeKey(k, sh, int(key>>56), key)
	}
	en := sh.t.get(key)
	if sh.moved || (en == nil && sh.handing) || (en != nil && isTomb(en)) { // a successor took the state while this event was under way
		if record {
			e.m.reloadUnrecorded.Add(1)
		}
		record, en = false, nil
	}
	found := en != nil
	if !found {
		en = &noEntity
	}
	t := c.t
	timing := inOrder
	if found && t < en.newest {
		timing = late
		if int64(t) < int64(en.newest)-e.lateness {
			timing = tooLate
		}
	}
	rec := record && timing != tooLate
	if record {
		switch timing {
		case late:
			k.late.accepted.Add(1)
		case tooLate:
			k.late.dropped.Add(1)
		}
	}
	if rec && !found {
		en = e.create(k, sh, key)
	}
	anchor := t
	if timing == tooLate {
		anchor = en.newest
	}
	hadHistory := en.newest != 0
	x := en.x

	// Window series and the anomaly features read from them.
	for _, sp := range k.series {
		val, has := 0.0, true
		if sp.value != nil {
			val, has = sp.value(c)
		}
		pass := has && c.pass(sp.filter)
		B := int64(anchor) / sp.res
		b := en.blob(sp.index)
		if rec {
			if pass {
				b = sp.record(b, B, val)
				en.setBlob(sp.index, b)
			} else if b != nil && B > anchorOf(b) {
				b = sp.advance(b, B)
				en.setBlob(sp.index, b)
			}
		}
		// Outputs are grouped by window: one read per window.
		var a agg
		var s span
		win := -1
		for _, o := range sp.outs {
			if o.win != win {
				win = o.win
				a, s = sp.at(b, B, win)
				if pass && !rec {
					a.add(one(val))
					s.add(span{val, val})
				}
			}
			sp.output(v, o.slot, o.agg, a, s)
		}
		for _, o := range sp.anom {
			a := sp.aggAt(b, B, o.win)
			if pass && rec {
				a.sub(one(val)) // history: without this event
			}
			if has {
				anomaly(v, o, a, val, sp.scale)
			}
		}
	}
	// Distinct counts.
	for _, sp := range k.sets {
		h, has := sp.field.hash(c, e.valueSeed)
		pass := has && c.pass(sp.filter)
		var s *valueSet
		if x != nil {
			s = x.set(sp.index)
		}
		if rec && pass {
			wasSketch := s.sk != nil
			sp.record(s, t, h)
			if !wasSketch && s.sk != nil {
				e.m.sketches.Add(1)
			}
		}
		var counts [countAllMax]float64
		sp.values(s, anchor, h, pass && !rec, &counts)
		for _, o := range sp.outs {
			if o.win < countAllMax {
				v.SetNum(o.slot, counts[o.win])
			} else {
				v.SetNum(o.slot, sp.value(s, anchor, o.win, h, pass && !rec))
			}
		}
	}
	// Novelty.
	for _, sp := range k.seen {
		h, has := sp.field.hash(c, e.valueSeed)
		if !has {
			continue
		}
		var s *seenSet
		if x != nil {
			s = &x.seen[sp.index]
		}
		if isNew, ok := sp.isNew(s, anchor, h); ok {
			v.SetBool(sp.slot, isNew)
		}
		if rec && c.pass(sp.filter) {
			sp.record(s, t, h)
		}
	}
	// Recency.
	for _, rp := range k.recency {
		switch rp.measure {
		case SinceFirst:
			if hadHistory {
				v.SetNum(rp.slot, float64(int64(anchor)-int64(min(en.first, anchor))))
			} else {
				v.SetNum(rp.slot, 0)
			}
		case SinceLast:
			if hadHistory {
				var r *recentTimes
				if x != nil {
					r = &x.recent
				}
				if prev, ok := prevAt(r, en.newest, anchor); ok {
					v.SetNum(rp.slot, float64(anchor-prev))
				}
			}
		}
	}
	// Travel.
	for _, tp := range k.travel {
		lat, lon, ok := tp.loc(c)
		if !ok {
			continue
		}
		var s *travelState
		if x != nil {
			s = &x.travel[tp.index]
		}
		if kmh, ok := tp.speed(s, anchor, lat, lon); ok {
			v.SetNum(tp.slot, kmh)
		}
		if rec {
			tp.record(s, t, lat, lon)
		}
	}
	// Hour of day.
	for _, hp := range k.hours {
		var h *hourHist
		if x != nil {
			h = &x.hours[hp.index]
		}
		if u, ok := hp.unusualness(h, anchor); ok {
			v.SetNum(hp.slot, u)
		}
		if rec && c.pass(hp.filter) {
			hp.record(h, t)
		}
	}
	if rec {
		if en.first == 0 || t < en.first {
			en.first = t
		}
		if t > en.newest {
			en.newest = t
		}
		if k.needRecent {
			x.recent.record(t, en.newest, e.lateness)
		}
	}
}

func prevAt(r *recentTimes, newest, t uint32) (uint32, bool) {
	if t >= newest || r == nil {
		return newest, t >= newest
	}
	return r.prevAt(newest, t)
}

// anomaly writes a z-score or ratio of x (stored units) against the
// history aggregate a. The standard deviation is floored at 1% of the
// mean's magnitude and at 0.01 of the field's unit, so that a constant
// history gives a large, finite score.
func anomaly(v *Vector, o anomalyOut, a agg, x, scale float64) {
	if a.n < uint64(o.minHistory) || a.n == 0 {
		return
	}
	n := float64(a.n)
	mean := a.sum / n
	switch o.measure {
	case Ratio:
		if mean > 0 {
			v.SetNum(o.slot, x/mean)
		}
	case ZScore:
		sd := math.Sqrt(math.Max(0, a.sq/n-mean*mean))
		sd = math.Max(sd, math.Max(0.01*math.Abs(mean), 0.01*scale))
		v.SetNum(o.slot, (x-mean)/sd)
	}
}
