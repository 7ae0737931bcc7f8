package features

// An event reads one entity per kind, each a cache and TLB miss in a large
// state. Looked up one after the other, the misses add up; the engine
// instead asks the CPU for every entity's table slot first, then for every
// entity's series and extension, so that the misses of one event overlap.
// prefetch is a hint: it never faults and loads nothing into registers,
// so a stale address (a table that has since grown) is harmless.

import "unsafe"

// prefetchWhole is the size in bytes up to which a series is brought in
// whole.
const prefetchWhole = 512

// prefetchLines hints that the cache lines of [p, p+n) will be read soon:
// every line the range touches, also when p is not at a line's start.
func prefetchLines(p unsafe.Pointer, n uintptr) {
	first, end := lineSpan(uintptr(p), n)
	for a := first; a < end; a += 64 {
		prefetch(a)
	}
}

// lineSpan is the span of whole 64-byte lines holding [p, p+n).
func lineSpan(p, n uintptr) (first, end uintptr) {
	if n == 0 {
		return p &^ 63, p &^ 63
	}
	return p &^ 63, (p + n + 63) &^ 63
}

// prefetch hashes the event's keys (remembered in c) and brings in the
// state of their entities in three waves: the table slots of every kind;
// then, under each shard's lock, the first series and the extension of
// every entity found; then the values of their distinct sets. Processing
// then finds its entities in cache.
func (e *Engine) prefetch(c *evctx) {
	n := min(len(e.kinds), keyCache)
	for i, k := range e.kinds[:n] {
		h, ok := k.key.of(c)
		c.keys[i] = kindKey{h, ok}
		if ok {
			k.shardOf(h).t.prefetch(h)
		}
	}
	for i, k := range e.kinds[:n] {
		if !c.keys[i].ok {
			continue
		}
		sh := k.shardOf(c.keys[i].h)
		sh.mu.Lock()
		if en := sh.t.get(c.keys[i].h); en != nil {
			en.prefetch(k.extSpan)
		}
		sh.mu.Unlock()
	}
	// Third wave, from the extensions the second brought in: the values of
	// the distinct sets — all of a small set's, which recording scans; a
	// large (indexed) set's index slot and window edges.
	for i, k := range e.kinds[:n] {
		if !c.keys[i].ok || len(k.sets) == 0 {
			continue
		}
		sh := k.shardOf(c.keys[i].h)
		sh.mu.Lock()
		if en := sh.t.get(c.keys[i].h); en != nil && en.x != nil {
			for _, sp := range k.sets {
				s := en.x.set(sp.index)
				switch {
				case s.ix != nil:
					if h, ok := sp.field.hash(c, e.valueSeed); ok {
						s.ix.prefetch(s.vals, h)
					}
				case len(s.vals) > setInline: // at most indexFrom values: 512 bytes
					prefetchLines(unsafe.Pointer(unsafe.SliceData(s.vals)), min(uintptr(len(s.vals))*unsafe.Sizeof(setVal{}), prefetchWhole))
				}
			}
		}
		sh.mu.Unlock()
	}
}

// prefetch brings in what recording h reads: h's table slot, the newest
// value and each window's oldest.
func (ix *setIndex) prefetch(vals []setVal, h uint64) {
	if len(ix.table) > 0 {
		prefetch(uintptr(unsafe.Pointer(&ix.table[h&uint64(len(ix.table)-1)])))
	}
	pv := func(i int32) {
		if i >= 0 && int(i) < len(vals) && int(i) < len(ix.link) {
			prefetch(uintptr(unsafe.Pointer(&vals[i])))
			prefetch(uintptr(unsafe.Pointer(&ix.link[i])))
		}
	}
	pv(ix.tail)
	for j := range ix.wins {
		pv(ix.wins[j].first)
	}
}

// prefetch brings in the first series — whole when it is small, as most
// entities' are; else its header and last buckets — and the first span
// bytes of the extension (kind.extSpan).
func (en *entity) prefetch(span uintptr) {
	if b := en.s0; len(b) > 0 {
		p := unsafe.Pointer(unsafe.SliceData(b))
		if n := uintptr(len(b)) * 8; n <= prefetchWhole {
			prefetchLines(p, n)
		} else {
			prefetchLines(p, 128)
		}
		prefetch(uintptr(p) + uintptr(len(b)-1)*8)
	}
	if en.x != nil {
		prefetchLines(unsafe.Pointer(en.x), span)
	}
}

// readSpan is how many leading bytes of an entityExt processing an event of
// k reads: up to the end of the last field its definitions use (the first
// distinct set alone for most kinds), so that prefetching leaves the
// others out. 0: the kind needs no extension.
func (k *kind) readSpan() uintptr {
	var x entityExt
	n := uintptr(0)
	for _, f := range [...]struct {
		used     bool
		off, len uintptr
	}{
		{len(k.sets) > 0, unsafe.Offsetof(x.set0), unsafe.Sizeof(x.set0)},
		{len(k.series) > 1, unsafe.Offsetof(x.series), unsafe.Sizeof(x.series)},
		{len(k.sets) > 1, unsafe.Offsetof(x.sets), unsafe.Sizeof(x.sets)},
		{len(k.seen) > 0, unsafe.Offsetof(x.seen), unsafe.Sizeof(x.seen)},
		{k.needRecent, unsafe.Offsetof(x.recent), unsafe.Sizeof(x.recent)},
		{len(k.travel) > 0, unsafe.Offsetof(x.travel), unsafe.Sizeof(x.travel)},
		{len(k.hours) > 0, unsafe.Offsetof(x.hours), unsafe.Sizeof(x.hours)},
	} {
		if f.used {
			n = max(n, f.off+f.len)
		}
	}
	return n
}

// prefetchEdges asks, before a long series moves its windows, for the
// buckets that moving reads: the newest, each window's oldest and the
// series' oldest. They lie apart in a long series; asked for together,
// their misses overlap instead of following one another. (A series of up
// to prefetchWhole bytes was brought in whole by the second wave.)
func (p *seriesPlan) prefetchEdges(b []uint64) {
	head, n := hn(b)
	if n == 0 {
		return
	}
	// Bucket i is at base + i*size (as seriesPlan.bucket finds it, without
	// building a slice per bucket).
	base := uintptr(unsafe.Pointer(unsafe.SliceData(b))) + uintptr(p.hdr+head*p.stride)*8
	size := uintptr(p.stride) * 8
	prefetch(base + uintptr(n-1)*size)
	prefetch(base)
	for j := range p.wins {
		if s := uintptr(uint32(p.win(b, j)[0])); s < uintptr(n) { // the window's oldest bucket
			prefetch(base + s*size)
		}
	}
}
