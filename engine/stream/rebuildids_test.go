package stream

import (
	"fmt"
	"testing"
	"time"
)

func TestRebuildIDs(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := newRebuildIDs(time.Hour, 3)
	for _, tc := range []struct {
		id    string
		at    time.Duration
		again bool
	}{
		{"a", 0, false},
		{"a", time.Minute, true}, // a redelivered copy
		{"b", 2 * time.Minute, false},
		{"a", 59 * time.Minute, true},
		{"a", 61 * time.Minute, false}, // beyond the retention of its first reading: a new transaction, as live
		{"c", 62 * time.Minute, false},
		{"d", 63 * time.Minute, false}, // the fourth id: the oldest (b) is forgotten
		{"b", 64 * time.Minute, false},
		{"d", 65 * time.Minute, true},
	} {
		if got := r.again(tc.id, t0.Add(tc.at)); got != tc.again {
			t.Errorf("%s at %v: again = %v, want %v", tc.id, tc.at, got, tc.again)
		}
	}
	if len(r.order) > 3 || len(r.seen) != len(r.order) {
		t.Errorf("%d ids, %d in order", len(r.seen), len(r.order))
	}
	// bounded: a long rebuild keeps at most max ids
	for i := range 1000 {
		r.again(fmt.Sprint("x", i), t0.Add(70*time.Minute))
	}
	if len(r.seen) != 3 || len(r.order) != 3 {
		t.Errorf("%d ids held", len(r.seen))
	}
}
