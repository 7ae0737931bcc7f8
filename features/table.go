package features

// table is an open-addressing hash table (linear probing) from a keyed
// 64-bit hash to an entity stored inline in its slot: finding an entity is
// one random memory access, where a Go map of that size takes three (its
// directory, table and group). Keys are hashes, so the slot index is taken
// from their low bits directly. Pointers into the table stay valid until
// the next insert or delete. Not safe for concurrent use (shards lock).
type table struct {
	slots []slot
	n     int
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

func (t *table) grow() {
	old := t.slots
	t.slots = make([]slot, max(tableMinSize, 2*len(old)))
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
	t.slots = make([]slot, len(old)/2)
	t.n = 0
	for j := range old {
		if old[j].key != 0 {
			*t.insert(old[j].key) = old[j].en
		}
	}
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
