package engine

import (
	"context"
	"hash/maphash"
	"sync"
	"time"
)

// recentDecisions remembers the decisions of recently scored ids so that a
// transaction scored again gets the same answer and is not counted twice in
// any window. An entry is kept for the retention period or until the store
// holds maxEntries newer ones, whichever comes first; scoring the same id
// after that counts it again. Concurrent scorings of one id wait for the
// first.
type recentDecisions struct {
	seed      maphash.Seed
	retention time.Duration
	perShard  int
	shards    [recentShards]recentShard
}

const recentShards = 64

type recentShard struct {
	mu    sync.Mutex
	m     map[string]*recentEntry
	order []recentSlot // FIFO ring in insertion order
	head  int          // index of the oldest slot in order
	n     int          // slots in order
}

// recentSlot is an id in the insertion-order ring, with its entry and the
// entry's creation time: expiring the oldest ids needs no map lookup, and a
// slot only ever removes its own entry (an id abandoned and claimed again
// has two slots).
type recentSlot struct {
	id      string
	e       *recentEntry
	created time.Time
}

// recentEntry is one remembered scoring. Its state is guarded by its
// shard's lock; digest never changes.
type recentEntry struct {
	shard   *recentShard
	digest  uint64 // of the event's content, to detect a reused id
	done    bool   // finished or abandoned
	d       *Decision
	waiters chan struct{} // made by the first waiter while not done, closed when done
}

func newRecentDecisions(retention time.Duration, maxEntries int) *recentDecisions {
	r := &recentDecisions{seed: maphash.MakeSeed(), retention: retention, perShard: max(1, maxEntries/recentShards)}
	for i := range r.shards {
		r.shards[i].m = map[string]*recentEntry{}
	}
	return r
}

// claim returns the entry of id. first is true when the caller must score
// the event and then call finish (or abandon); otherwise the caller waits on
// the entry with wait.
func (r *recentDecisions) claim(id string, digest uint64, now time.Time) (e *recentEntry, first bool) {
	s := &r.shards[maphash.String(r.seed, id)%recentShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expire(now, r.retention)
	if e := s.m[id]; e != nil {
		return e, false
	}
	e = &recentEntry{shard: s, digest: digest}
	s.m[id] = e
	s.push(recentSlot{id: id, e: e, created: now}, r.perShard)
	return e, true
}

// finish publishes the decision of a claimed entry, waking its waiters.
func (r *recentDecisions) finish(e *recentEntry, d *Decision) {
	e.shard.mu.Lock()
	e.d = d
	e.settle()
	e.shard.mu.Unlock()
}

// abandon removes a claimed entry whose scoring failed, waking waiters
// (they get no decision).
func (r *recentDecisions) abandon(id string, e *recentEntry) {
	s := e.shard
	s.mu.Lock()
	if s.m[id] == e {
		delete(s.m, id)
	}
	e.settle()
	s.mu.Unlock()
}

// settle marks e done and wakes its waiters; the shard lock is held.
func (e *recentEntry) settle() {
	e.done = true
	if e.waiters != nil {
		close(e.waiters)
	}
}

// wait returns the decision of an entry once it is known; nil if the first
// scoring failed.
func (e *recentEntry) wait(ctx context.Context) (*Decision, error) {
	s := e.shard
	s.mu.Lock()
	if e.done {
		d := e.d
		s.mu.Unlock()
		return d, nil
	}
	if e.waiters == nil { // only a concurrent duplicate pays for a channel
		e.waiters = make(chan struct{})
	}
	ch := e.waiters
	s.mu.Unlock()
	select {
	case <-ch:
		s.mu.Lock()
		d := e.d
		s.mu.Unlock()
		return d, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (s *recentShard) push(slot recentSlot, limit int) {
	if s.n >= limit {
		s.evictOldest()
	}
	if s.n == len(s.order) { // the ring is full: grow it
		grown := make([]recentSlot, min(limit, max(64, 2*len(s.order))))
		for i := 0; i < s.n; i++ {
			grown[i] = s.order[(s.head+i)%len(s.order)]
		}
		s.order, s.head = grown, 0
	}
	s.order[(s.head+s.n)%len(s.order)] = slot
	s.n++
}

// evictOldest forgets the oldest id. An id still being scored is forgotten
// too (its scorer and waiters hold the entry): that only happens when the
// store is far too small for the traffic.
func (s *recentShard) evictOldest() {
	slot := s.order[s.head]
	s.order[s.head] = recentSlot{}
	s.head = (s.head + 1) % len(s.order)
	s.n--
	if s.m[slot.id] == slot.e {
		delete(s.m, slot.id)
	}
}

func (s *recentShard) expire(now time.Time, retention time.Duration) {
	for s.n > 0 && now.Sub(s.order[s.head].created) >= retention {
		s.evictOldest()
	}
}

// size returns the number of remembered decisions.
func (r *recentDecisions) size() int {
	n := 0
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}
