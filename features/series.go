package features

import (
	"math"
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
//	per window j      start index (low 32) | count (high 32), then sum, sumsq, min, max as declared
//	buckets           bucket number (low 32) | count (high 32), then sum, sumsq, min, max as declared
//
// The anchor is the newest bucket the windows are positioned at. Bucket
// numbers are unix seconds / resolution (uint32).
type seriesPlan struct {
	res    int64   // bucket length, seconds
	wins   []int64 // window lengths in buckets, ascending
	sum    bool    // keeps sums (sum, avg, stddev, anomaly)
	sq     bool    // keeps sums of squares (stddev, zscore)
	mm     bool    // keeps min and max
	stride int     // words per bucket and per window aggregate
	oSq    int     // word offset of sumsq
	oMin   int     // word offset of min (max follows)
	hdr    int     // words before the first bucket
	keepB  int64   // buckets kept behind the anchor: longest window + lateness
	value  func(*evctx) (float64, bool)
	scale  float64 // stored value / scale = value in the field's unit
	filter int     // index of the filter, -1 for none
	outs   []seriesOut
	anom   []anomalyOut
	index  int // position among the kind's series
	// key identifies a series so that definitions share it.
	key string
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
	p.hdr = 2 + len(p.wins)*p.stride
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
	o := 2 + j*p.stride
	return b[o : o+p.stride : o+p.stride]
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

// rangeAgg aggregates the buckets with number in (lo, hi]; their span
// too when the series keeps one.
func (p *seriesPlan) rangeAgg(b []uint64, lo, hi int64) (agg, span) {
	var a agg
	s := emptySpan()
	if hi <= lo {
		return a, s
	}
	_, n := hn(b)
	for i := p.search(b, lo); i < n; i++ {
		w := p.bucket(b, i)
		if bnum(w) > hi {
			break
		}
		a.add(p.load(w))
		if p.mm {
			s.add(p.loadSpan(w))
		}
	}
	return a, s
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
	ox, sx := one(x), span{x, x}
	w := p.bucket(b, pos)
	a := p.load(w)
	a.add(ox)
	p.store(w, a)
	if p.mm {
		s := p.loadSpan(w)
		s.add(sx)
		p.storeSpan(w, s)
	}
	for j, wl := range p.wins {
		ww := p.win(b, j)
		if B > anchor-wl {
			a := p.load(ww)
			a.add(ox)
			p.store(ww, a)
			if p.mm {
				s := p.loadSpan(ww)
				s.add(sx)
				p.storeSpan(ww, s)
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
	_, n := hn(b)
	for j, wl := range p.wins {
		ww := p.win(b, j)
		a := p.load(ww)
		var ws span
		if p.mm {
			ws = p.loadSpan(ww)
		}
		s := int(uint32(ww[0]))
		rescan := false
		for ; s < n; s++ {
			w := p.bucket(b, s)
			if bnum(w) > B-wl {
				break
			}
			a.sub(p.load(w))
			if p.mm {
				if x := p.loadSpan(w); x.min <= ws.min || x.max >= ws.max {
					rescan = true
				}
			}
		}
		ww[0] = uint64(uint32(s))
		p.store(ww, a)
		if rescan {
			// The least or greatest value left: rescan the buckets still in.
			sp := emptySpan()
			for i := s; i < n && a.n > 0; i++ {
				sp.add(p.loadSpan(p.bucket(b, i)))
			}
			p.storeSpan(ww, sp)
		}
	}
	b[1] = uint64(uint32(B)) | 1<<32
	// Drop buckets no window nor a late event can reach.
	drop := p.search(b, B-p.keepB)
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
	anchor, wl := anchorOf(b), p.wins[j]
	if B == anchor {
		w := p.win(b, j)
		if p.mm {
			return p.load(w), p.loadSpan(w)
		}
		return p.load(w), span{}
	}
	if p.mm {
		return p.rangeAgg(b, B-wl, B)
	}
	a := p.load(p.win(b, j))
	if B < anchor {
		// (B-wl, B] = (anchor-wl, anchor] + (B-wl, anchor-wl] - (B, anchor],
		// adding first so that no count goes below zero.
		older, _ := p.rangeAgg(b, B-wl, anchor-wl)
		newer, _ := p.rangeAgg(b, B, anchor)
		a.add(older)
		a.sub(newer)
		return a, span{}
	}
	if B-wl >= anchor {
		return agg{}, span{}
	}
	gone, _ := p.rangeAgg(b, anchor-wl, B-wl)
	a.sub(gone)
	return a, span{}
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
