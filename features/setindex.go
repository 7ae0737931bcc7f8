package features

import "slices"

// A setIndex makes a large distinct set's work per event independent of
// its size: a hash table from value to slot, the live slots linked in
// order of their latest occurrence (oldest first), and per window the
// oldest slot inside it and how many are inside, positioned at the set's
// newest time. Without it, recording a value and counting a window scan
// every value: fine for the few values most entities hold, a cost that
// grows with the set on busy ones. A set builds its index when it grows
// past setPlan.indexFrom values and drops it (moving its values into storage of
// their size) when pruning leaves half as many.
//
// A value is inside window j (length w) when its latest occurrence is
// after newest-w. Recording in order (t ≥ newest) first moves every
// window to t (values leave from the front of the order), then moves the
// value to the back; a late occurrence moves it back to its place in time
// order (a short walk: later values are within the lateness). A count at a
// late time reads the values between the two times and the two window
// starts only (countIndexedLate).
type setIndex struct {
	table []int32    // slot+1; 0 empty, -1 deleted; linear probing on the value's hash
	used  int        // table entries that are not empty (live or deleted)
	link  []setLink  // per slot of vals
	head  int32      // the live slot with the oldest latest occurrence, -1 none
	tail  int32      // the newest, -1 none
	free  int32      // free slots, linked through link.next, -1 none
	wins  []setCount // per window of the plan, positioned at at
	at    uint32     // the time the windows are at: the set's newest
}

type setLink struct{ prev, next int32 }

type setCount struct {
	first int32 // oldest live slot inside the window, -1 none
	n     int32 // live values inside the window
}

// defaultIndexFrom is the set size from which a set keeps a setIndex
// (setPlan.indexFrom; tests change it to compare with the scans).
const defaultIndexFrom = 32

// buildIndex indexes s's live values (every slot of vals live or free).
func (p *setPlan) buildIndex(s *valueSet) {
	ix := &setIndex{head: -1, tail: -1, free: -1, wins: make([]setCount, len(p.wins)), at: s.newest}
	ix.link = make([]setLink, len(s.vals), cap(s.vals))
	ix.rehash(s.vals)
	order := make([]int32, 0, s.live)
	for i := range s.vals {
		if s.vals[i].last != 0 {
			order = append(order, int32(i))
		} else {
			ix.link[i].next, ix.free = ix.free, int32(i)
		}
	}
	slices.SortStableFunc(order, func(a, b int32) int { return int(s.vals[a].last) - int(s.vals[b].last) })
	for _, i := range order {
		ix.pushBack(i)
	}
	for j := range ix.wins {
		ix.wins[j] = setCount{first: -1}
		lo := int64(s.newest) - p.wins[j]
		for _, i := range order {
			if int64(s.vals[i].last) > lo {
				if ix.wins[j].first < 0 {
					ix.wins[j].first = i
				}
				ix.wins[j].n++
			}
		}
	}
	s.ix = ix
}

// rehash rebuilds the table for the live values of vals, sized for twice
// vals' capacity.
func (ix *setIndex) rehash(vals []setVal) {
	size := 64
	for size < 2*cap(vals) {
		size *= 2
	}
	if len(ix.table) == size {
		clear(ix.table)
	} else {
		ix.table = make([]int32, size)
	}
	ix.used = 0
	for i := range vals {
		if vals[i].last != 0 {
			ix.put(vals, int32(i))
		}
	}
}

// lookup returns h's slot, or -1.
func (ix *setIndex) lookup(vals []setVal, h uint64) int32 {
	mask := uint64(len(ix.table) - 1)
	for k := h & mask; ; k = (k + 1) & mask {
		switch e := ix.table[k]; {
		case e == 0:
			return -1
		case e > 0 && vals[e-1].h == h:
			return e - 1
		}
	}
}

// put enters slot i (a value not in the table).
func (ix *setIndex) put(vals []setVal, i int32) {
	mask := uint64(len(ix.table) - 1)
	for k := vals[i].h & mask; ; k = (k + 1) & mask {
		if e := ix.table[k]; e <= 0 {
			if e == 0 {
				ix.used++
			}
			ix.table[k] = i + 1
			return
		}
	}
}

// del removes slot i's value from the table.
func (ix *setIndex) del(vals []setVal, i int32) {
	mask := uint64(len(ix.table) - 1)
	for k := vals[i].h & mask; ; k = (k + 1) & mask {
		if ix.table[k] == i+1 {
			ix.table[k] = -1
			return
		}
	}
}

func (ix *setIndex) unlink(i int32) {
	l := ix.link[i]
	if l.prev >= 0 {
		ix.link[l.prev].next = l.next
	} else {
		ix.head = l.next
	}
	if l.next >= 0 {
		ix.link[l.next].prev = l.prev
	} else {
		ix.tail = l.prev
	}
	for j := range ix.wins {
		if ix.wins[j].first == i {
			ix.wins[j].first = l.next
		}
	}
}

func (ix *setIndex) pushBack(i int32) {
	ix.link[i] = setLink{prev: ix.tail, next: -1}
	if ix.tail >= 0 {
		ix.link[ix.tail].next = i
	} else {
		ix.head = i
	}
	ix.tail = i
}

// place links slot i (latest occurrence t) after every slot whose latest
// occurrence is at or before t.
func (ix *setIndex) place(vals []setVal, i int32, t uint32) {
	after := ix.tail
	for after >= 0 && vals[after].last > t {
		after = ix.link[after].prev
	}
	if after == ix.tail {
		ix.pushBack(i)
		return
	}
	next := ix.head
	if after >= 0 {
		next = ix.link[after].next
		ix.link[after].next = i
	} else {
		ix.head = i
	}
	ix.link[i] = setLink{prev: after, next: next}
	ix.link[next].prev = i
}

// advanceIndex moves every window to a newest time t: values whose
// latest occurrence is at or before t-w leave window w.
func (p *setPlan) advanceIndex(s *valueSet, t uint32) {
	ix := s.ix
	ix.at = t
	for j := range ix.wins {
		c := &ix.wins[j]
		lo := int64(t) - p.wins[j]
		for c.first >= 0 && int64(s.vals[c.first].last) <= lo {
			c.n--
			c.first = ix.link[c.first].next
		}
	}
}

// moved re-links slot i whose latest occurrence went from old (0: a new
// value) to vals[i].last (at or before ix.at), and counts it into the
// windows it entered.
func (p *setPlan) moved(s *valueSet, i int32, old uint32) {
	ix := s.ix
	t := s.vals[i].last
	if old != 0 {
		ix.unlink(i)
	}
	ix.place(s.vals, i, t)
	for j := range ix.wins {
		c := &ix.wins[j]
		lo := int64(ix.at) - p.wins[j]
		if int64(t) <= lo {
			continue
		}
		if old == 0 || int64(old) <= lo {
			c.n++
		}
		if c.first < 0 || s.vals[c.first].last > t {
			c.first = i
		}
	}
}

// drop unlinks and frees live slot i, taking it out of the windows it is in.
func (p *setPlan) drop(s *valueSet, i int32) {
	ix := s.ix
	for j := range ix.wins {
		if int64(s.vals[i].last) > int64(ix.at)-p.wins[j] {
			ix.wins[j].n--
		}
	}
	ix.unlink(i)
	ix.del(s.vals, i)
	ix.link[i].next, ix.free = ix.free, i
}

// slot returns a free slot of s for a new value, growing vals (and the
// table) when none is free.
func (ix *setIndex) slot(s *valueSet) int32 {
	if i := ix.free; i >= 0 {
		ix.free = ix.link[i].next
		return i
	}
	s.vals = append(s.vals, setVal{})
	ix.link = append(ix.link, setLink{})
	if 2*cap(s.vals) > len(ix.table) {
		ix.rehash(s.vals)
	}
	return int32(len(s.vals) - 1)
}

// enter adds the new value h at t to the table (its slot i is set up).
func (ix *setIndex) enter(vals []setVal, i int32) {
	if 4*(ix.used+1) > 3*len(ix.table) {
		ix.rehash(vals) // deleted entries pile up: start over
		if ix.lookup(vals, vals[i].h) == i {
			return
		}
	}
	ix.put(vals, i)
}

// countIndexed is window j's distinct count at t ≥ ix.at; with hasExtra,
// the value h of an event not recorded is counted too.
func (p *setPlan) countIndexed(s *valueSet, t uint32, j int, h uint64, hasExtra bool) int {
	ix := s.ix
	c := ix.wins[j]
	lo := int64(t) - p.wins[j]
	n := int(c.n)
	for i := c.first; i >= 0 && int64(s.vals[i].last) <= lo; i = ix.link[i].next {
		n-- // in the window at newest, out of it at t
	}
	if hasExtra {
		if i := ix.lookup(s.vals, h); i < 0 || int64(s.vals[i].last) <= lo {
			n++
		}
	}
	return n
}

// touchIndexed records h at t in an indexed set and returns its previous
// latest occurrence (0: a new value) and its slot; in sketch mode a full
// set first forgets its least recently seen value.
func (p *setPlan) touchIndexed(s *valueSet, t uint32, h uint64) (prev uint32, i int32) {
	ix := s.ix
	if t > ix.at {
		p.advanceIndex(s, t)
	}
	if i = ix.lookup(s.vals, h); i >= 0 {
		prev = s.vals[i].last
		if t > prev {
			s.vals[i].last = t
			p.moved(s, i, prev)
		}
		return prev, i
	}
	if s.sk != nil && s.live >= p.exactUpTo {
		p.forget(s)
	}
	i = ix.slot(s)
	s.vals[i] = setVal{h: h, last: t}
	s.live++
	ix.enter(s.vals, i)
	p.moved(s, i, 0)
	return 0, i
}

// unindex drops the index of a set pruned down to a few values and moves
// them into storage of their size (the slots of recent occurrences follow
// their values).
func (p *setPlan) unindex(s *valueSet) {
	old := s.vals
	if s.live <= setInline {
		s.vals = s.inline[:0:setInline]
	} else {
		s.vals = make([]setVal, 0, 2*s.live)
	}
	for i := s.ix.head; i >= 0; i = s.ix.link[i].next {
		s.vals = append(s.vals, old[i])
	}
	for k := s.rhead; k < len(s.recent); k++ {
		o := &s.recent[k]
		h := old[o.vi].h
		for j := range s.vals {
			if s.vals[j].h == h {
				o.vi = uint32(j)
				break
			}
		}
	}
	s.ix = nil
}

// countIndexedLate is window j's distinct count at a late anchor t before
// ix.at, as the scan in count finds it: the values whose latest occurrence
// is after lo = t-w (the window's count at ix.at, plus the values between
// the two window starts, read from the order), less those touched after t
// that have no occurrence in (lo, t] (settled or recent). Only the values
// touched between the two anchors and the two window starts are read.
func (p *setPlan) countIndexedLate(s *valueSet, t uint32, j int, h uint64, hasExtra bool) int {
	ix := s.ix
	lo := int64(t) - p.wins[j]
	n := int(ix.wins[j].n)
	i := ix.tail
	if f := ix.wins[j].first; f >= 0 {
		i = ix.link[f].prev
	}
	for ; i >= 0 && int64(s.vals[i].last) > lo; i = ix.link[i].prev {
		n++
	}
	var in [MaxExactUpTo/64 + 1]uint64 // slots with a recent occurrence in (lo, t]
	for _, o := range s.recent[s.rhead:] {
		if o.t > t {
			break
		}
		if int64(o.t) > lo {
			in[o.vi>>6] |= 1 << (o.vi & 63)
		}
	}
	inRange := func(i int32) bool {
		v := &s.vals[i]
		if v.last <= t {
			return int64(v.last) > lo
		}
		return (v.settled != 0 && v.settled <= t && int64(v.settled) > lo) || in[i>>6]&(1<<(i&63)) != 0
	}
	for i := ix.tail; i >= 0 && s.vals[i].last > t; i = ix.link[i].prev {
		if !inRange(i) {
			n--
		}
	}
	if hasExtra {
		if i := ix.lookup(s.vals, h); i < 0 || !inRange(i) {
			n++
		}
	}
	return n
}
