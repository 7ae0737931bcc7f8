package features

import "sort"

// Recency features read the entity's first and newest recorded times.
// since_first is t minus the first recorded time (0 for the first event);
// since_last is t minus the latest recorded event at or before t, before
// this one is recorded (missing when there is none).
//
// To answer since_last exactly for a late event, the entity keeps the
// times of its events of the last `lateness` seconds and the latest time
// before them (recentTimes).
type recencyPlan struct {
	measure string
	slot    int
}

type recentTimes struct {
	times   []uint32 // times newer than newest-lateness, sorted, from head
	head    int
	settled uint32 // the latest time at or before newest-lateness
}

// prevAt returns the latest recorded time at or before t, given the
// entity's newest time; ok false when there is none.
func (r *recentTimes) prevAt(newest, t uint32) (uint32, bool) {
	if t >= newest {
		return newest, true
	}
	live := r.times[r.head:]
	i := sort.Search(len(live), func(i int) bool { return live[i] > t })
	if i > 0 {
		return live[i-1], true
	}
	if r.settled != 0 && r.settled <= t {
		return r.settled, true
	}
	return 0, false
}

// record adds t, newest being the entity's newest time after it.
func (r *recentTimes) record(t, newest uint32, lateness int64) {
	lim := int64(newest) - lateness
	if int64(t) <= lim {
		r.settled = max(r.settled, t)
	} else {
		if len(r.times) == cap(r.times) && r.head > 0 {
			n := copy(r.times, r.times[r.head:])
			r.times, r.head = r.times[:n], 0
		}
		r.times = append(r.times, t)
		for i := len(r.times) - 1; i > r.head && r.times[i-1] > t; i-- {
			r.times[i], r.times[i-1] = r.times[i-1], r.times[i]
		}
	}
	for r.head < len(r.times) && int64(r.times[r.head]) <= lim {
		r.settled = max(r.settled, r.times[r.head])
		r.head++
	}
	if r.head == len(r.times) {
		r.times, r.head = r.times[:0], 0
	}
}
