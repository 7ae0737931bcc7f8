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
	order []string // FIFO ring of ids in insertion order
	head  int      // index of the oldest id in order
	n     int      // ids in order
}

type recentEntry struct {
	done    chan struct{}
	d       *Decision
	digest  uint64 // of the event's content, to detect a reused id
	created time.Time
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
	e = &recentEntry{done: make(chan struct{}), digest: digest, created: now}
	s.m[id] = e
	s.push(id, r.perShard)
	return e, true
}

// finish publishes the decision of a claimed entry.
func (r *recentDecisions) finish(e *recentEntry, d *Decision) {
	e.d = d
	close(e.done)
}

// abandon removes a claimed entry whose scoring failed, waking waiters.
func (r *recentDecisions) abandon(id string, e *recentEntry) {
	s := &r.shards[maphash.String(r.seed, id)%recentShards]
	s.mu.Lock()
	if s.m[id] == e {
		delete(s.m, id)
	}
	s.mu.Unlock()
	close(e.done)
}

// wait returns the decision of an entry once it is known; nil if the first
// scoring failed.
func (e *recentEntry) wait(ctx context.Context) (*Decision, error) {
	select {
	case <-e.done:
		return e.d, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (s *recentShard) push(id string, limit int) {
	if s.n >= limit {
		s.evictOldest()
	}
	if s.n == len(s.order) { // the ring is full: grow it
		grown := make([]string, min(limit, max(64, 2*len(s.order))))
		for i := 0; i < s.n; i++ {
			grown[i] = s.order[(s.head+i)%len(s.order)]
		}
		s.order, s.head = grown, 0
	}
	s.order[(s.head+s.n)%len(s.order)] = id
	s.n++
}

// evictOldest forgets the oldest id. An id still being scored is forgotten
// too (its scorer and waiters hold the entry): that only happens when the
// store is far too small for the traffic.
func (s *recentShard) evictOldest() {
	id := s.order[s.head]
	s.order[s.head] = ""
	s.head = (s.head + 1) % len(s.order)
	s.n--
	delete(s.m, id)
}

func (s *recentShard) expire(now time.Time, retention time.Duration) {
	for s.n > 0 {
		e := s.m[s.order[s.head]]
		if e != nil && now.Sub(e.created) < retention {
			return
		}
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
