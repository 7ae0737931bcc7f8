package features

import (
	"math/rand/v2"
	"testing"
	"unsafe"
)

// TestTableAgainstMap runs random inserts and deletes, with keys crowded
// into few home slots (long probe runs, wrap-around), against a map.
func TestTableAgainstMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var tb table
	ref := map[uint64]uint32{}
	for i := range 200_000 {
		key := uint64(rng.IntN(3000)) * 0x9e3779b97f4a7c15 // collide in low bits often
		if i%7 == 0 {
			key = uint64(rng.IntN(64)) // tiny keys: same home slots, and key 0
		}
		switch en := tb.get(key); {
		case rng.IntN(3) == 0:
			if (en != nil) != (ref[fixKey(key)] != 0) {
				t.Fatalf("step %d: presence of %x differs", i, key)
			}
			tb.delete(key)
			delete(ref, fixKey(key))
		case en == nil:
			if _, ok := ref[fixKey(key)]; ok {
				t.Fatalf("step %d: %x lost", i, key)
			}
			tb.insert(key).newest = uint32(i + 1)
			ref[fixKey(key)] = uint32(i + 1)
		default:
			if en.newest != ref[fixKey(key)] {
				t.Fatalf("step %d: %x = %d, want %d", i, key, en.newest, ref[fixKey(key)])
			}
		}
		if tb.len() != len(ref) {
			t.Fatalf("step %d: len %d, want %d", i, tb.len(), len(ref))
		}
		// The view prefetch reads without the lock follows every resize.
		if v := tb.view.Load(); len(tb.slots) > 0 && (v == nil || v.base != uintptr(unsafe.Pointer(&tb.slots[0])) || v.mask != uint64(len(tb.slots)-1)) {
			t.Fatalf("step %d: stale view after a resize", i)
		}
	}
	for k, v := range ref {
		if en := tb.get(k); en == nil || en.newest != v {
			t.Fatalf("final: %x", k)
		}
	}
	n := 0
	tb.sample(12345, 1<<30, func(uint64, *entity) { n++ })
	if n != len(ref) {
		t.Fatalf("sample saw %d of %d", n, len(ref))
	}
}
