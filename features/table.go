package features

import (
	"sync/atomic"
	"unsafe"
)

// table is an open-addressing hash table (linear probing) from a keyed
// 64-bit hash to an entity stored inline in its slot: finding an entity is
// one random memory access, where a Go map of that size takes three (its
// directory, table and group). Keys are hashes, so the slot index is taken
// from their low bits directly. Pointers into the table stay valid until
// the next insert or delete. Not safe for concurrent use (shards lock).
type table struct {
	slots []slot
	n     int
	view  atomic.Pointer[tableView] // for prefetch, read without the lock
}

// tableView is where the slots are, published on every resize so that
// prefetch can find a key's slot without taking the shard's lock. The
// address is a plain number: it keeps nothing alive, and after a resize it
// points at memory that prefetching may touch but nothing reads.
type tableView struct {
	base uintptr
	mask uint64
}

type slot struct {
	key uint64 // 0: empty (a zero hash is stored as 1)
	en  entity
}

const tableMinSize = 16

func fixKey(key uint64) uint64 {
	if key == 0 {
		return 1
	}
	return key
}

func (t *table) len() int { return t.n }

// get returns the entity of key, nil when absent.
func (t *table) get(key uint64) *entity {
	if t.n == 0 {
		return nil
	}
	key = fixKey(key)
	mask := uint64(len(t.slots) - 1)
	for i := key & mask; ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.key == key {
			return &s.en
		}
		if s.key == 0 {
			return nil
		}
	}
}

// insert adds key (absent) with a zero entity and returns it.
func (t *table) insert(key uint64) *entity {
	if (t.n+1)*4 > len(t.slots)*3 {
		t.grow()
	}
	key = fixKey(key)
	mask := uint64(len(t.slots) - 1)
	i := key & mask
	for t.slots[i].key != 0 {
		i = (i + 1) & mask
	}
	t.slots[i] = slot{key: key}
	t.n++
	return &t.slots[i].en
}

// resize replaces the slots by n empty ones and publishes their view.
func (t *table) resize(n int) {
	t.slots = make([]slot, n)
	t.view.Store(&tableView{base: uintptr(unsafe.Pointer(&t.slots[0])), mask: uint64(n - 1)})
}

// prefetch hints that key's slot will be read soon. Safe without the lock.
func (t *table) prefetch(key uint64) {
	if v := t.view.Load(); v != nil {
		prefetch(v.base + uintptr(fixKey(key)&v.mask)*unsafe.Sizeof(slot{}))
	}
}

func (t *table) grow() {
	old := t.slots
	t.resize(max(tableMinSize, 2*len(old)))
	mask := uint64(len(t.slots) - 1)
	for j := range old {
		if k := old[j].key; k != 0 {
			i := k & mask
			for t.slots[i].key != 0 {
				i = (i + 1) & mask
			}
			t.slots[i] = old[j]
		}
	}
}

// delete removes key, shifting later entries of its probe run back so
// that lookups never need tombstones.
func (t *table) delete(key uint64) {
	key = fixKey(key)
	mask := uint64(len(t.slots) - 1)
	i := key & mask
	for t.slots[i].key != key {
		if t.slots[i].key == 0 {
			return
		}
		i = (i + 1) & mask
	}
	for j := (i + 1) & mask; t.slots[j].key != 0; j = (j + 1) & mask {
		home := t.slots[j].key & mask
		// Move j back to i unless its home lies cyclically in (i, j].
		if (j > i && (home <= i || home > j)) || (j < i && home <= i && home > j) {
			t.slots[i] = t.slots[j]
			i = j
		}
	}
	t.slots[i] = slot{}
	t.n--
	if len(t.slots) > 1024 && t.n*8 < len(t.slots) {
		t.shrink()
	}
}

func (t *table) shrink() {
	old := t.slots
	t.resize(len(old) / 2)
	t.n = 0
	for j := range old {
		if old[j].key != 0 {
			*t.insert(old[j].key) = old[j].en
		}
	}
}

// each calls fn on every entry. fn must not insert or delete.
func (t *table) each(fn func(key uint64, en *entity)) {
	for i := range t.slots {
		if s := &t.slots[i]; s.key != 0 {
			fn(s.key, &s.en)
		}
	}
}

// clear drops every entry and the slots.
func (t *table) clear() {
	t.slots, t.n = nil, 0
	t.view.Store(nil)
}

// sample calls fn on up to n entries starting at a pseudo-random slot.
func (t *table) sample(start uint64, n int, fn func(key uint64, en *entity)) {
	if t.n == 0 {
		return
	}
	mask := uint64(len(t.slots) - 1)
	seen := 0
	for i, k := start&mask, 0; k < len(t.slots) && seen < n; i, k = (i+1)&mask, k+1 {
		if s := &t.slots[i]; s.key != 0 {
			fn(s.key, &s.en)
			seen++
		}
	}
}
