package features

import (
	"fmt"
	"math"
	"slices"
	"sort"
)

// A series is the window state of one (entity, filter, field, resolution):
// a sparse deque of non-empty time buckets shared by all the windows and
// aggregates declared on it, plus, per window, a running aggregate of the
// buckets inside the window and the index of its oldest bucket. Recording
// an event in order and reading every window is amortized O(1): buckets
// enter at the end and leave each window's running aggregate once.
//
// A series lives in one []uint64 (the blob) so that an entity costs one
// allocation per series and no pointers inside:
//
//	word 0            head (low 32) | n buckets (high 32)
//	word 1            anchor bucket number (low 32) | 1<<32 once set
//	per window j      start index (low 32) | count (high 32), then sum, sumsq, min, max as declared,
//	                  then with min and max the window's ties: how many of its buckets hold its
//	                  least value (low 32) and its greatest (high 32)
//	buckets           bucket number (low 32) | count (high 32), then sum, sumsq, min, max as declared
//
// The anchor is the newest bucket the windows are positioned at. Bucket
// numbers are unix seconds / resolution (uint32).
//
// A window's least and greatest values cannot be subtracted: when the last
// of the buckets holding one leaves the window (the ties count it), the
// window's buckets are scanned again. Counting ties keeps that rare when
// values repeat (a merchant's many 1.00 transactions), where a scan on
// every departure of a bucket holding the least value would cost a hot
// entity's whole window on most events.
type seriesPlan struct {
	res     int64   // bucket length, seconds
	wins    []int64 // window lengths in buckets, ascending
	sum     bool    // keeps sums (sum, avg, stddev, anomaly)
	sq      bool    // keeps sums of squares (stddev, zscore)
	mm      bool    // keeps min and max
	stride  int     // words per bucket
	wstride int     // words per window aggregate: stride, plus the ties with min and max
	oSq     int     // word offset of sumsq
	oMin    int     // word offset of min (max follows)
	hdr     int     // words before the first bucket
	keepB   int64   // buckets kept behind the anchor: longest window + lateness
	value   func(*evctx) (float64, bool)
	scale   float64 // stored value / scale = value in the field's unit
	filter  int     // index of the filter, -1 for none
	outs    []seriesOut
	anom    []anomalyOut
	index   int // position among the kind's series
	// key identifies a series so that definitions share it.
	key string
	// base identifies the series across engines (key holds an engine's
	// filter index): field, filter text and resolution; sig (set by
	// layout) adds what each bucket and window keeps: the state's layout.
	base, sig string
	// frozen: the layout of a predecessor's series, kept by a successor
	// engine (successor.go): definitions use it as it is, never extend it.
	frozen bool
}

// stats is what a definition needs a series to keep.
type stats struct{ sum, sq, mm bool }

func statsOf(d *Definition) stats {
	switch {
	case d.Kind == KindAnomaly, d.Aggregate == StdDev:
		return stats{sum: true, sq: true}
	case d.Aggregate == Sum || d.Aggregate == Avg:
		return stats{sum: true}
	case d.Aggregate == Min || d.Aggregate == Max:
		return stats{mm: true}
	}
	return stats{}
}

// covers reports whether the series keeps window wl (in buckets) and the
// statistics need.
func (p *seriesPlan) covers(wl int64, need stats) bool {
	return slices.Contains(p.wins, wl) && (p.sum || !need.sum) && (p.sq || !need.sq) && (p.mm || !need.mm)
}

type seriesOut struct {
	agg  Aggregate
	wl   int64 // window length in buckets
	win  int   // its index in wins
	slot int
}

func (p *seriesPlan) layout() {
	p.stride = 1
	if p.sum {
		p.stride++
	}
	p.oSq = p.stride
	if p.sq {
		p.stride++
	}
	p.oMin = p.stride
	if p.mm {
		p.stride += 2
	}
	p.wstride = p.stride
	if p.mm {
		p.wstride++
	}
	p.hdr = 2 + len(p.wins)*p.wstride
	p.sig = fmt.Sprintf("%s|%v|%t|%t|%t|%d|%g", p.base, p.wins, p.sum, p.sq, p.mm, p.keepB, p.scale)
}

// agg is the count, sum and sum of squares of some buckets, in stored
// units; span is their least and greatest value. They are two types of at
// most 32 bytes rather than one because the compiler keeps such values in
// registers: a larger struct lives in memory, and copying it right after
// writing its fields stalls on store forwarding (measured: a fifth of the
// time of an event).
type agg struct {
	n       uint64
	sum, sq float64
}

type span struct{ min, max float64 }

func emptySpan() span { return span{math.Inf(1), math.Inf(-1)} }

func (a *agg) add(b agg) {
	a.n += b.n
	a.sum += b.sum
	a.sq += b.sq
}

// sub removes b (a span cannot: callers rescan).
func (a *agg) sub(b agg) {
	a.n -= b.n
	if a.n == 0 {
		*a = agg{}
		return
	}
	a.sum -= b.sum
	a.sq -= b.sq
}

func (s *span) add(b span) { s.min, s.max = math.Min(s.min, b.min), math.Max(s.max, b.max) }

func one(x float64) agg { return agg{n: 1, sum: x, sq: x * x} }

func (p *seriesPlan) load(w []uint64) agg {
	n := w[0] >> 32
	var sum, sq float64
	if p.sum {
		sum = math.Float64frombits(w[1])
	}
	if p.sq {
		sq = math.Float64frombits(w[p.oSq])
	}
	return agg{n, sum, sq}
}

// loadSpan reads the span of w (series that keep min and max only).
func (p *seriesPlan) loadSpan(w []uint64) span {
	return span{math.Float64frombits(w[p.oMin]), math.Float64frombits(w[p.oMin+1])}
}

// store writes a into w, keeping w's low 32 bits (start or bucket number).
func (p *seriesPlan) store(w []uint64, a agg) {
	w[0] = uint64(uint32(w[0])) | a.n<<32
	if p.sum {
		w[1] = math.Float64bits(a.sum)
	}
	if p.sq {
		w[p.oSq] = math.Float64bits(a.sq)
	}
}

func (p *seriesPlan) storeSpan(w []uint64, s span) {
	w[p.oMin] = math.Float64bits(s.min)
	w[p.oMin+1] = math.Float64bits(s.max)
}

// ties reads how many buckets of window ww hold its least and its greatest
// value.
func (p *seriesPlan) ties(ww []uint64) (lo, hi uint32) {
	t := ww[p.stride]
	return uint32(t), uint32(t >> 32)
}

func (p *seriesPlan) setTies(ww []uint64, lo, hi uint32) {
	ww[p.stride] = uint64(lo) | uint64(hi)<<32
}

// enter updates window ww's span and ties for one of its buckets whose span
// grew from old to cur (old is empty for a bucket just opened).
func (p *seriesPlan) enter(ww []uint64, old, cur span) {
	t := tied{s: p.loadSpan(ww)}
	t.lo, t.hi = p.ties(ww)
	t.grow(old, cur)
	p.storeSpan(ww, t.s)
	p.setTies(ww, t.lo, t.hi)
}

// tied is the span of some buckets and how many of them hold its least
// (lo) and greatest (hi) value.
type tied struct {
	s      span
	lo, hi uint32
}

// grow accounts for one of the buckets whose span grew from old to cur
// (old is empty for a bucket not counted yet).
func (t *tied) grow(old, cur span) {
	switch {
	case cur.min < t.s.min:
		t.s.min, t.lo = cur.min, 1
	case cur.min == t.s.min && old.min > cur.min:
		t.lo++
	}
	switch {
	case cur.max > t.s.max:
		t.s.max, t.hi = cur.max, 1
	case cur.max == t.s.max && old.max < cur.max:
		t.hi++
	}
}

// extremes returns the span of the buckets numbered in (lo, hi] and how
// many of them hold its least and greatest value.
func (p *seriesPlan) extremes(b []uint64, lo, hi int64) (s span, nlo, nhi uint32) {
	if hi <= lo {
		return emptySpan(), 0, 0
	}
	return p.extremesFrom(b, p.search(b, lo), hi)
}

// extremesFrom is extremes over the buckets from index i numbered up to hi.
func (p *seriesPlan) extremesFrom(b []uint64, i int, hi int64) (s span, nlo, nhi uint32) {
	t := tied{s: emptySpan()}
	_, n := hn(b)
	for ; i < n; i++ {
		w := p.bucket(b, i)
		if bnum(w) > hi {
			break
		}
		t.grow(emptySpan(), p.loadSpan(w))
	}
	return t.s, t.lo, t.hi
}

func hn(b []uint64) (head, n int) { return int(uint32(b[0])), int(b[0] >> 32) }

func setHN(b []uint64, head, n int) { b[0] = uint64(uint32(head)) | uint64(n)<<32 }

func anchorOf(b []uint64) int64 { return int64(uint32(b[1])) }

func (p *seriesPlan) capacity(b []uint64) int { return (len(b) - p.hdr) / p.stride }

// bucket returns the words of bucket i (0 = oldest).
func (p *seriesPlan) bucket(b []uint64, i int) []uint64 {
	head, _ := hn(b)
	o := p.hdr + (head+i)*p.stride
	return b[o : o+p.stride : o+p.stride]
}

func bnum(w []uint64) int64 { return int64(uint32(w[0])) }

func (p *seriesPlan) win(b []uint64, j int) []uint64 {
	o := 2 + j*p.wstride
	return b[o : o+p.wstride : o+p.wstride]
}

func (p *seriesPlan) newBlob(buckets int, anchor int64) []uint64 {
	b := make([]uint64, p.hdr+buckets*p.stride)
	b[1] = uint64(uint32(anchor)) | 1<<32
	if p.mm {
		for j := range p.wins {
			p.storeSpan(p.win(b, j), emptySpan())
		}
	}
	return b
}

// search returns the index of the first bucket whose number is > after.
func (p *seriesPlan) search(b []uint64, after int64) int {
	_, n := hn(b)
	// Most searches look near the end: try the last bucket first.
	if n == 0 || bnum(p.bucket(b, n-1)) <= after {
		return n
	}
	return sort.Search(n, func(i int) bool { return bnum(p.bucket(b, i)) > after })
}

// rangeAgg aggregates the buckets with number in (lo, hi].
func (p *seriesPlan) rangeAgg(b []uint64, lo, hi int64) agg {
	var a agg
	if hi <= lo {
		return a
	}
	_, n := hn(b)
	for i := p.search(b, lo); i < n; i++ {
		w := p.bucket(b, i)
		if bnum(w) > hi {
			break
		}
		a.add(p.load(w))
	}
	return a
}

// record adds the value x at bucket B, which is at least anchor-lateness
// buckets back (the caller checks). It returns the blob, reallocated if it
// grew.
func (p *seriesPlan) record(b []uint64, B int64, x float64) []uint64 {
	if b == nil {
		b = p.newBlob(2, B)
	}
	if B > anchorOf(b) {
		b = p.advance(b, B)
	}
	anchor := anchorOf(b)
	_, n := hn(b)
	pos, merged := n, false
	if n > 0 {
		switch last := bnum(p.bucket(b, n-1)); {
		case last == B:
			pos, merged = n-1, true
		case last > B:
			pos = p.search(b, B-1)
			merged = pos < n && bnum(p.bucket(b, pos)) == B
		}
	}
	if !merged {
		b = p.insertAt(b, pos, B)
	}
	ox := one(x)
	w := p.bucket(b, pos)
	a := p.load(w)
	a.add(ox)
	p.store(w, a)
	var old, cur span
	if p.mm {
		old = p.loadSpan(w)
		cur = old
		cur.add(span{x, x})
		p.storeSpan(w, cur)
	}
	for j, wl := range p.wins {
		ww := p.win(b, j)
		if B > anchor-wl {
			a := p.load(ww)
			a.add(ox)
			p.store(ww, a)
			if p.mm {
				p.enter(ww, old, cur)
			}
		} else if !merged {
			ww[0]++ // an older bucket went in before the window's start
		}
	}
	return b
}

// insertAt opens an empty bucket numbered B at index pos.
func (p *seriesPlan) insertAt(b []uint64, pos int, B int64) []uint64 {
	head, n := hn(b)
	if head+n == p.capacity(b) {
		if head > 0 && head*4 >= n {
			copy(b[p.hdr:], b[p.hdr+head*p.stride:p.hdr+(head+n)*p.stride])
			head = 0
		} else {
			c := p.capacity(b)
			nb := make([]uint64, p.hdr+(c+c/4+2)*p.stride)
			copy(nb, b[:p.hdr])
			copy(nb[p.hdr:], b[p.hdr+head*p.stride:p.hdr+(head+n)*p.stride])
			b, head = nb, 0
		}
		setHN(b, head, n)
	}
	o := p.hdr + (head+pos)*p.stride
	end := p.hdr + (head+n)*p.stride
	copy(b[o+p.stride:end+p.stride], b[o:end])
	w := b[o : o+p.stride]
	clear(w)
	w[0] = uint64(uint32(B))
	if p.mm {
		p.storeSpan(w, emptySpan())
	}
	setHN(b, head, n+1)
	return b
}

// advance moves the anchor forward to B: buckets leave the windows they
// fall out of, and buckets older than every window (and the lateness) go.
func (p *seriesPlan) advance(b []uint64, B int64) []uint64 {
	if uintptr(len(b))*8 > prefetchWhole { // else brought in whole (prefetch.go)
		p.prefetchEdges(b)
	}
	_, n := hn(b)
	for j, wl := range p.wins {
		ww := p.win(b, j)
		a := p.load(ww)
		var ws span
		var lo, hi uint32
		if p.mm {
			ws = p.loadSpan(ww)
			lo, hi = p.ties(ww)
		}
		s := int(uint32(ww[0]))
		s0 := s
		rescan := false
		for ; s < n; s++ {
			w := p.bucket(b, s)
			if bnum(w) > B-wl {
				break
			}
			a.sub(p.load(w))
			if p.mm {
				x := p.loadSpan(w)
				if x.min <= ws.min {
					rescan = rescan || lo <= 1
					lo--
				}
				if x.max >= ws.max {
					rescan = rescan || hi <= 1
					hi--
				}
			}
		}
		ww[0] = uint64(uint32(s))
		p.store(ww, a)
		switch {
		case rescan:
			// The last bucket holding the least or greatest value left:
			// scan the buckets still in.
			sp, lo, hi := emptySpan(), uint32(0), uint32(0)
			if a.n > 0 {
				sp, lo, hi = p.extremesFrom(b, s, B)
			}
			p.storeSpan(ww, sp)
			p.setTies(ww, lo, hi)
		case p.mm && s > s0:
			p.setTies(ww, lo, hi)
		}
	}
	b[1] = uint64(uint32(B)) | 1<<32
	// Drop buckets no window nor a late event can reach. They are the
	// oldest: count them from the head (a binary search would touch a hot
	// entity's long series all over on every new bucket).
	drop := 0
	for drop < n && bnum(p.bucket(b, drop)) <= B-p.keepB {
		drop++
	}
	if drop > 0 {
		head, n := hn(b)
		for j := range p.wins {
			ww := p.win(b, j)
			ww[0] -= uint64(drop)
		}
		head, n = head+drop, n-drop
		if n == 0 {
			head = 0
		}
		setHN(b, head, n)
		if c := p.capacity(b); c > 16 && n*4 < c {
			nb := make([]uint64, p.hdr+max(2*n, 4)*p.stride)
			copy(nb, b[:p.hdr])
			copy(nb[p.hdr:], b[p.hdr+head*p.stride:p.hdr+(head+n)*p.stride])
			setHN(nb, 0, n)
			b = nb
		}
	}
	return b
}

// at returns window j's aggregate and span with the windows positioned at
// bucket B (without any event not recorded). B may be behind the anchor (a
// late event) or ahead of it (a peek, an event that the filter leaves out).
func (p *seriesPlan) at(b []uint64, B int64, j int) (agg, span) {
	if b == nil {
		return agg{}, emptySpan()
	}
	a := p.aggAt(b, B, j)
	switch anchor := anchorOf(b); {
	case !p.mm:
		return a, span{}
	case B == anchor:
		return a, p.loadSpan(p.win(b, j))
	default:
		return a, p.spanAt(b, anchor, B, j)
	}
}

// aggAt is at without the span (anomaly features read only counts and sums).
func (p *seriesPlan) aggAt(b []uint64, B int64, j int) agg {
	if b == nil {
		return agg{}
	}
	anchor, wl := anchorOf(b), p.wins[j]
	a := p.load(p.win(b, j))
	switch {
	case B == anchor:
		return a
	case B < anchor:
		// (B-wl, B] = (anchor-wl, anchor] + (B-wl, anchor-wl] - (B, anchor],
		// adding first so that no count goes below zero.
		older := p.rangeAgg(b, B-wl, anchor-wl)
		newer := p.rangeAgg(b, B, anchor)
		a.add(older)
		a.sub(newer)
		return a
	case B-wl >= anchor:
		return agg{}
	}
	a.sub(p.rangeAgg(b, anchor-wl, B-wl))
	return a
}

// spanAt is window j's span over (B-wl, B] for a B other than the anchor:
// the window's span, unless every bucket holding its least or greatest
// value is among those (B-wl, B] leaves out, and the buckets it adds; a
// scan of (B-wl, B] otherwise. Only the buckets between the two windows'
// ends are read in the common case: a late event of a hot entity does not
// scan its whole window.
func (p *seriesPlan) spanAt(b []uint64, anchor, B int64, j int) span {
	wl := p.wins[j]
	if B-wl >= anchor || B <= anchor-wl { // no bucket in common
		s, _, _ := p.extremes(b, B-wl, B)
		return s
	}
	ww := p.win(b, j)
	ws := p.loadSpan(ww)
	lo, hi := p.ties(ww)
	// The buckets of the window that (B-wl, B] leaves out.
	rlo, rhi := B, anchor
	if B > anchor {
		rlo, rhi = anchor-wl, B-wl
	}
	out, nlo, nhi := p.extremes(b, rlo, rhi)
	if lo == 0 || (out.min == ws.min && nlo >= lo) || (out.max == ws.max && nhi >= hi) {
		s, _, _ := p.extremes(b, B-wl, B)
		return s
	}
	if B < anchor {
		older, _, _ := p.extremes(b, B-wl, anchor-wl)
		ws.add(older)
	}
	return ws
}

// output writes the value of aggregate g of a and s into slot.
func (p *seriesPlan) output(v *Vector, slot int, g Aggregate, a agg, s span) {
	switch g {
	case Count:
		v.SetNum(slot, float64(a.n))
	case Sum:
		v.SetNum(slot, a.sum/p.scale)
	case Avg:
		if a.n > 0 {
			v.SetNum(slot, a.sum/float64(a.n)/p.scale)
		}
	case Min:
		if a.n > 0 {
			v.SetNum(slot, s.min/p.scale)
		}
	case Max:
		if a.n > 0 {
			v.SetNum(slot, s.max/p.scale)
		}
	case StdDev:
		if a.n > 0 {
			m := a.sum / float64(a.n)
			v.SetNum(slot, math.Sqrt(math.Max(0, a.sq/float64(a.n)-m*m))/p.scale)
		}
	}
}
