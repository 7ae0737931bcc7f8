package features

import (
	"math"
	"math/bits"
	"unsafe"

	"github.com/axiomhq/hyperloglog"
)

// A distinct count keeps, per entity, the set of values seen (as 64-bit
// keyed hashes) with each value's latest occurrence: the distinct count over
// (t-w, t] is the number of values whose latest occurrence at or before t
// is after t-w. That is exact, costs 16 bytes per value, and serves every
// window of the definition. Values older than the longest window (plus the
// lateness) are pruned.
//
// Late events: to answer "latest occurrence at or before t" for a t behind
// the set's newest, each value also keeps `settled`, its latest occurrence
// at or before newest-lateness, and the set keeps the occurrences of the
// last `lateness` seconds. Without lateness both stay empty.
//
// Beyond exactUpTo values the set becomes a sketch: per window, sub-window
// HyperLogLog sketches (see setSketch). The set keeps the exactUpTo most
// recently seen values beside it (their latest occurrence only): a window
// that none of the values forgotten since reaches is still counted exactly
// from them, so that only the windows holding more than exactUpTo values
// pay for an estimate, and a value seen again does not age the cached
// estimate.
type setPlan struct {
	field     fieldSpec
	filter    int
	wins      []int64 // seconds, ascending
	exactUpTo int
	indexFrom int // see setIndex
	precision uint8
	keep      int64 // seconds of history kept: longest window + lateness
	lateness  int64
	base, sig string // identity and layout across engines (see seriesPlan)
	frozen    bool   // a predecessor's layout (see seriesPlan)
	outs      []setOut
	index     int
	key       string
}

type setOut struct {
	wl   int64 // window length, seconds
	win  int   // its index in wins
	slot int
}

type valueSet struct {
	inline    [setInline]setVal // vals' first storage: small sets need no other allocation
	rinline   [2]setOcc         // recent's first storage (a pointer less to follow per event)
	newest    uint32
	lastPrune uint32
	live      int      // values in use in vals
	vals      []setVal // an indexed set's slots never move while live; prune compacts the others (recent follows)
	recent    []setOcc // occurrences newer than newest-lateness, sorted by time, from rhead
	rhead     int
	sk        *setSketch
	ix        *setIndex // sets of more than indexFrom values
	forgot    uint32    // sketch mode: the latest occurrence of any value dropped from vals
}

// setInline values are kept inside the entity's state before vals spills
// to its own allocation.
const setInline = 4

func (s *valueSet) init() {
	s.vals = s.inline[:0:setInline]
	s.recent = s.rinline[:0:len(s.rinline)]
}

// moveTo moves the set to d (an initialized set that is then its only
// copy): its storage inside the set itself moves with it.
func (s *valueSet) moveTo(d *valueSet) {
	*d = *s
	if unsafe.SliceData(s.vals) == &s.inline[0] {
		d.vals = d.inline[:len(s.vals):setInline]
	}
	if unsafe.SliceData(s.recent) == &s.rinline[0] {
		d.recent = d.rinline[:len(s.recent):len(d.rinline)]
	}
	*s = valueSet{}
	s.init()
}

type setVal struct {
	h       uint64
	last    uint32 // 0: free slot
	settled uint32
}

type setOcc struct {
	t  uint32
	vi uint32 // slot in vals
}

func (s *valueSet) find(h uint64) int {
	for i := range s.vals {
		if s.vals[i].h == h && s.vals[i].last != 0 {
			return i
		}
	}
	return -1
}

// count is window j's exact distinct count over (t-w, t]; with hasExtra,
// the value h of an event not recorded is counted too.
func (p *setPlan) count(s *valueSet, t uint32, j int, h uint64, hasExtra bool) int {
	if s.ix != nil {
		if t >= s.ix.at {
			return p.countIndexed(s, t, j, h, hasExtra)
		}
		return p.countIndexedLate(s, t, j, h, hasExtra)
	}
	lo := int64(t) - p.wins[j]
	if t >= s.newest {
		var n [countAllMax]int64
		countInOrder(s, t, p.wins[j:j+1], h, hasExtra, &n)
		return int(n[0])
	}
	// A late anchor: a value counts if it has an occurrence in (lo, t]:
	// its latest if that is at or before t, else its settled one or one of
	// the recent occurrences. One pass over each, marking slots.
	var in [MaxExactUpTo/64 + 1]uint64
	for i := range s.vals {
		v := &s.vals[i]
		switch {
		case v.last == 0:
		case v.last <= t:
			if int64(v.last) > lo {
				in[i>>6] |= 1 << (i & 63)
			}
		case v.settled != 0 && v.settled <= t && int64(v.settled) > lo:
			in[i>>6] |= 1 << (i & 63)
		}
	}
	for _, o := range s.recent[s.rhead:] {
		if o.t > t {
			break
		}
		if int64(o.t) > lo {
			in[o.vi>>6] |= 1 << (o.vi & 63)
		}
	}
	n := 0
	for _, w := range in {
		n += bits.OnesCount64(w)
	}
	if hasExtra {
		if i := s.find(h); i < 0 || in[i>>6]&(1<<(i&63)) == 0 {
			n++
		}
	}
	return n
}

// record adds an occurrence of h at t.
func (p *setPlan) record(s *valueSet, t uint32, h uint64) {
	if s.sk != nil && t > s.newest && s.sk.empty(uint32(max(int64(t)-max(p.lateness, 0), 0))) {
		// Every sketched value has left every window, also of a late event
		// to come: exact again (checked before this value goes in, which
		// would keep its sub-window).
		*s = valueSet{newest: s.newest}
		s.init()
	}
	if s.sk != nil {
		prev, _ := p.touch(s, t, h)
		s.sk.insert(t, h, prev)
		if t > s.newest {
			s.newest = t
			if int64(s.newest-s.lastPrune) >= max(1, p.keep/16) {
				p.prune(s)
			}
		}
		return
	}
	_, i := p.touch(s, t, h)
	if p.lateness > 0 {
		if int64(t) <= int64(s.newest)-p.lateness {
			s.vals[i].settled = max(s.vals[i].settled, t)
		} else {
			s.addRecent(setOcc{t: t, vi: uint32(i)})
		}
	}
	if t > s.newest {
		s.newest = t
		p.settle(s)
	}
	if s.live > p.exactUpTo {
		p.prune(s)
		if s.live > p.exactUpTo {
			p.toSketch(s)
		}
	}
	if s.ix == nil && s.live > p.indexFrom {
		p.buildIndex(s)
	}
}

// touch records h at t among the set's values — in sketch mode a full set
// first forgets its least recently seen one — and returns h's previous
// latest occurrence (0: a new value) and its slot.
func (p *setPlan) touch(s *valueSet, t uint32, h uint64) (prev uint32, i int) {
	if s.ix != nil {
		prev, j := p.touchIndexed(s, t, h)
		return prev, int(j)
	}
	i, free := -1, -1
	for j := range s.vals {
		switch v := &s.vals[j]; {
		case v.last == 0:
			if free < 0 {
				free = j
			}
		case v.h == h:
			i = j
		}
		if i >= 0 {
			break
		}
	}
	if i >= 0 {
		prev = s.vals[i].last
		s.vals[i].last = max(prev, t)
		return prev, i
	}
	if s.sk != nil && s.live >= p.exactUpTo {
		free = p.forget(s)
	}
	if free < 0 {
		s.vals = append(s.vals, setVal{})
		free = len(s.vals) - 1
	}
	s.vals[free] = setVal{h: h, last: t}
	s.live++
	return 0, free
}

// addRecent inserts o in time order (at the end for an event in order).
func (s *valueSet) addRecent(o setOcc) {
	if len(s.recent) == cap(s.recent) && s.rhead > 0 {
		n := copy(s.recent, s.recent[s.rhead:])
		s.recent, s.rhead = s.recent[:n], 0
	}
	s.recent = append(s.recent, o)
	for i := len(s.recent) - 1; i > s.rhead && s.recent[i-1].t > o.t; i-- {
		s.recent[i], s.recent[i-1] = s.recent[i-1], s.recent[i]
	}
}

// settle folds occurrences older than the lateness into their values'
// settled time, and now and then prunes values older than every window.
func (p *setPlan) settle(s *valueSet) {
	lim := int64(s.newest) - p.lateness
	for s.rhead < len(s.recent) && int64(s.recent[s.rhead].t) <= lim {
		o := s.recent[s.rhead]
		v := &s.vals[o.vi]
		v.settled = max(v.settled, o.t)
		s.rhead++
	}
	if s.rhead == len(s.recent) {
		s.recent, s.rhead = s.recent[:0], 0
	}
	if int64(s.newest-s.lastPrune) >= max(1, p.keep/16) {
		p.prune(s)
	}
}

// prune frees the slots of values older than every window.
func (p *setPlan) prune(s *valueSet) {
	s.lastPrune = s.newest
	old := int64(s.newest) - p.keep
	if ix := s.ix; ix != nil {
		// The oldest values are at the front of the order.
		for ix.head >= 0 && int64(s.vals[ix.head].last) <= old {
			i := ix.head
			p.drop(s, i)
			s.vals[i] = setVal{}
			s.live--
		}
		if s.live <= p.indexFrom/2 {
			p.unindex(s)
		}
	} else {
		p.compact(s, old)
	}
	if s.live == 0 && s.rhead == len(s.recent) {
		s.vals, s.recent, s.rhead, s.ix = s.vals[:0], s.recent[:0], 0, nil
		if cap(s.vals) > 16 {
			s.init()
		}
	}
}

// compact frees the values of an unindexed set last seen at or before old
// and moves the others to the front, in order, so that the scans of the
// set (record, count) read its live values only: without it a set keeps
// as many slots as it ever held values at once. Recent occurrences follow
// their values' slots (their values are live: newer than any window's
// start).
func (p *setPlan) compact(s *valueSet, old int64) {
	var remap [64]uint32
	small := len(s.vals) <= len(remap)
	j := 0
	for i := range s.vals {
		v := s.vals[i]
		if v.last == 0 {
			continue
		}
		if int64(v.last) <= old {
			s.live--
			continue
		}
		if small {
			remap[i] = uint32(j)
		} else if i != j {
			// Slots only move down, in order: an occurrence moved here
			// cannot be taken for one of a later slot.
			for k := s.rhead; k < len(s.recent); k++ {
				if s.recent[k].vi == uint32(i) {
					s.recent[k].vi = uint32(j)
				}
			}
		}
		s.vals[j] = v
		j++
	}
	if j == len(s.vals) {
		return
	}
	clear(s.vals[j:])
	s.vals = s.vals[:j]
	if small {
		for k := s.rhead; k < len(s.recent); k++ {
			s.recent[k].vi = remap[s.recent[k].vi]
		}
	}
}

func (p *setPlan) toSketch(s *valueSet) {
	sk := newSetSketch(p)
	for i := range s.vals {
		if v := &s.vals[i]; v.last != 0 {
			sk.insert(v.last, v.h, 0)
			if v.settled != 0 {
				sk.insert(v.settled, v.h, 0)
			}
			v.settled = 0
		}
	}
	for _, o := range s.recent[s.rhead:] {
		sk.insert(o.t, s.vals[o.vi].h, 0)
	}
	s.sk, s.recent, s.rhead = sk, nil, 0
	for s.live > p.exactUpTo {
		p.forget(s)
	}
}

// forget drops the least recently seen value and returns its slot (an
// indexed set keeps it on its free list).
func (p *setPlan) forget(s *valueSet) int {
	o := -1
	if s.ix != nil {
		o = int(s.ix.head)
		s.forgot = max(s.forgot, s.vals[o].last)
		p.drop(s, int32(o))
	} else {
		for j := range s.vals {
			if v := &s.vals[j]; v.last != 0 && (o < 0 || v.last < s.vals[o].last) {
				o = j
			}
		}
		s.forgot = max(s.forgot, s.vals[o].last)
	}
	s.vals[o] = setVal{}
	s.live--
	return o
}

// countAllMax is the most windows values counts in one pass over a set.
const countAllMax = 8

// values writes every window's distinct count at t into out (out[j] for
// window j), with hasExtra as value. An unindexed exact set read at or
// after its newest occurrence is counted in one pass for all windows
// (countInOrder); the other forms ask value per window.
func (p *setPlan) values(s *valueSet, t uint32, h uint64, hasExtra bool, out *[countAllMax]float64) {
	w := len(p.wins)
	if s == nil || s.sk != nil || s.ix != nil || t < s.newest || w > countAllMax {
		for j := range min(w, countAllMax) {
			out[j] = p.value(s, t, j, h, hasExtra)
		}
		return
	}
	var n [countAllMax]int64
	countInOrder(s, t, p.wins, h, hasExtra, &n)
	for j := range w {
		out[j] = float64(n[j])
	}
}

// countInOrder sets n[j] to the distinct count of an unindexed set over
// (t-wins[j], t] for every window (at most countAllMax), t being at or
// after the set's newest occurrence (every latest occurrence is at or
// before it); with hasExtra, h counts in each window that does not hold
// it. One pass over the values for all windows, without branches on
// their times, which no predictor learns.
func countInOrder(s *valueSet, t uint32, wins []int64, h uint64, hasExtra bool, n *[countAllMax]int64) {
	w := len(wins)
	var lo [countAllMax]int64
	for j, wl := range wins {
		// A free slot's time is 0: with lo ≥ 0 it is never counted.
		lo[j] = max(int64(t)-wl, 0)
	}
	if w <= 4 {
		// The common case in registers: windows past w never count.
		for j := w; j < 4; j++ {
			lo[j] = math.MaxInt64
		}
		l0, l1, l2, l3 := lo[0], lo[1], lo[2], lo[3]
		var n0, n1, n2, n3 int64
		for i := range s.vals {
			last := int64(s.vals[i].last)
			n0 += b2i(last > l0)
			n1 += b2i(last > l1)
			n2 += b2i(last > l2)
			n3 += b2i(last > l3)
		}
		n[0], n[1], n[2], n[3] = n0, n1, n2, n3
	} else {
		for i := range s.vals {
			last := int64(s.vals[i].last)
			for j := range lo[:w] {
				n[j] += b2i(last > lo[j])
			}
		}
	}
	if hasExtra {
		extra := s.find(h)
		for j := range w {
			if extra < 0 || int64(s.vals[extra].last) <= lo[j] {
				n[j]++
			}
		}
	}
}

// b2i is 1 for true and 0 for false (a SETcc, not a branch).
func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// value is window j's distinct count at t; with hasExtra, the value h of an
// event not recorded is counted in (in sketch mode it is left out: the
// estimate's error covers it).
func (p *setPlan) value(s *valueSet, t uint32, j int, h uint64, hasExtra bool) float64 {
	if s == nil {
		if hasExtra {
			return 1
		}
		return 0
	}
	if s.sk != nil {
		if w := p.wins[j]; t >= s.newest && int64(s.forgot) <= int64(t)-w {
			// Every value in the window is remembered: exact.
			return float64(p.count(s, t, j, h, hasExtra))
		}
		return float64(s.sk.estimate(t, j))
	}
	return float64(p.count(s, t, j, h, hasExtra))
}

// sketchSubs is the number of sub-windows a window's sketch is split into:
// the sketch covers the window plus at most one sub-window (w/8) more of
// the past.
const sketchSubs = 8

// setSketch is the HyperLogLog form of a large set: per window, a ring of
// sketches of consecutive sub-windows of length w/8 — sketchSubs+1 of
// them, plus as many as the lateness spans, so that a late event still
// finds the sub-windows of its own window — and their
// union over the current window, kept up to date on insert and rebuilt
// when the window slides past a sub-window. The union's estimate is cached
// and recomputed only after enough inserts of values it may not hold to
// move it by 1/32 (a dense estimate costs tens of microseconds).
type setSketch struct {
	wins []sketchWin
}

type sketchWin struct {
	g      int64
	subs   []*hyperloglog.Sketch // the ring, allocated as sub-windows fill
	idx    []int64               // each ring slot's sub-window index, -1 none
	union  *hyperloglog.Sketch
	hi     int64 // sub-window index of the union's newest sub-window, -1 none
	est    uint64
	dirty  uint64
	precis uint8
}

func newSetSketch(p *setPlan) *setSketch {
	sk := &setSketch{wins: make([]sketchWin, len(p.wins))}
	for j, w := range p.wins {
		sw := &sketchWin{g: (w + sketchSubs - 1) / sketchSubs, hi: -1, precis: p.precision}
		n := sketchSubs + 1 + int((max(p.lateness, 0)+sw.g-1)/sw.g)
		sw.subs, sw.idx = make([]*hyperloglog.Sketch, n), make([]int64, n)
		for i := range sw.idx {
			sw.idx[i] = -1
		}
		sk.wins[j] = *sw
	}
	return sk
}

func (w *sketchWin) newSketch() *hyperloglog.Sketch {
	s, err := hyperloglog.NewSketch(w.precis, false)
	if err != nil { // precision is validated to 4..16
		panic(err)
	}
	return s
}

// insert adds h at t; prev is h's previous latest occurrence when the set
// remembers it (0 if not): a value already in a union does not age its
// estimate.
func (sk *setSketch) insert(t uint32, h uint64, prev uint32) {
	for j := range sk.wins {
		w := &sk.wins[j]
		i := int64(t) / w.g
		r := i % int64(len(w.idx))
		if w.idx[r] < i {
			if w.subs[r] == nil {
				w.subs[r] = w.newSketch()
			} else {
				w.subs[r].Reset()
			}
			w.idx[r] = i
		}
		if w.idx[r] != i {
			continue // older than the ring holds
		}
		w.subs[r].InsertHash(h)
		if w.hi >= 0 && i <= w.hi && i >= w.hi-sketchSubs {
			w.union.InsertHash(h)
			if pi := int64(prev) / w.g; prev == 0 || pi > w.hi || pi < w.hi-sketchSubs {
				w.dirty++
			}
		}
	}
}

// empty reports whether every sub-window is out of every window at t.
func (sk *setSketch) empty(t uint32) bool {
	for j := range sk.wins {
		w := &sk.wins[j]
		lo := int64(t)/w.g - sketchSubs
		for _, i := range w.idx {
			if i >= lo {
				return false
			}
		}
	}
	return true
}

func (sk *setSketch) estimate(t uint32, j int) uint64 {
	w := &sk.wins[j]
	hi := int64(t) / w.g
	if hi != w.hi {
		if w.union == nil {
			w.union = w.newSketch()
		} else {
			w.union.Reset()
		}
		for r, i := range w.idx {
			if i >= hi-sketchSubs && i <= hi {
				_ = w.union.Merge(w.subs[r]) // same precision by construction
			}
		}
		w.hi, w.dirty = hi, 0
		w.est = w.union.Estimate()
		return w.est
	}
	if w.dirty > 0 && (w.dirty*32 >= w.est || w.est < 32) {
		w.est, w.dirty = w.union.Estimate(), 0
	}
	return w.est
}
