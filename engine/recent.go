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
//
// The store holds up to millions of decisions for a day, so it holds them
// without pointers (the garbage collector does not scan it): an id is
// known by two 64-bit hashes (a map from the first to the entry's slot,
// the second checked in the slot), the slot keeps the content the id was
// first scored with (to tell a retry from a reused id), and each decision
// is encoded (in a dozen bytes or so: see recentcodec.go) in a byte ring
// in the order the slots are, so that expiring the oldest frees the oldest
// bytes. Only ids being scored right now have an object (recentEntry), for
// their waiters.
type recentDecisions struct {
	base      time.Time // times are kept as durations since it: monotonic, as time.Time.Sub is
	seeds     [2]maphash.Seed
	retention time.Duration
	perShard  int
	shards    [recentShards]recentShard
}

const recentShards = 64

type recentShard struct {
	mu      sync.Mutex
	m       map[uint64]uint64       // id hash → seq of its slot
	pending map[uint64]*recentEntry // ids being scored, by id hash
	order   []recentSlot            // FIFO ring in the order decisions were finished
	head    int                     // index of the oldest slot in order
	n       int                     // slots in order
	next    uint64                  // seq of the next slot; the oldest is next-n
	arena   recentArena
	names   recentNames // rulesets and reasons, numbered
	scratch []byte      // encoding buffer
}

// recentSlot is one remembered decision: the id's hashes, its content
// (flat: timed fits beside size, where a content field would take 8 more
// bytes), its claim time, and where its encoded decision is in the arena.
type recentSlot struct {
	key, check uint64
	digest     uint64
	time       int64
	created    time.Duration // claim time, since the store's base
	off        int
	size       uint32
	timed      bool
}

func (sl *recentSlot) content() content {
	return content{digest: sl.digest, time: sl.time, timed: sl.timed}
}

// recentEntry is a claim handed to the scorer and to concurrent scorers
// of the same id. Its state is guarded by its shard's lock; content never
// changes.
type recentEntry struct {
	shard      *recentShard
	content    content // of the first scoring, to detect a reused id
	key, check uint64
	created    time.Duration
	aged       bool // remembered as of its event's time (a rebuild), not of its scoring
	done       bool // finished or abandoned
	d          *Decision
	waiters    chan struct{} // made by the first waiter while not done, closed when done
}

func newRecentDecisions(retention time.Duration, maxEntries int) *recentDecisions {
	r := &recentDecisions{base: time.Now(), seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()},
		retention: retention, perShard: max(1, maxEntries/recentShards)}
	for i := range r.shards {
		r.shards[i].m = map[uint64]uint64{}
		r.shards[i].pending = map[uint64]*recentEntry{}
		r.shards[i].names.max = maxRecentNames
	}
	return r
}

// claim returns the entry of id. first is true when the caller must score
// the event and then call finish (or abandon); otherwise the caller waits on
// the entry with wait.
//
// Two different ids share both 64-bit hashes with a chance of 2^-128; if
// only the first matches (2^-64 per pair), the newer id replaces the older
// one, which is then forgotten early.
func (r *recentDecisions) claim(id string, c content, now time.Time) (e *recentEntry, first bool) {
	key, check := maphash.String(r.seeds[0], id), maphash.String(r.seeds[1], id)
	s := &r.shards[key%recentShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expire(now.Sub(r.base) - r.retention)
	if e := s.pending[key]; e != nil && e.check == check {
		return e, false
	}
	if seq, ok := s.m[key]; ok {
		if sl := s.slot(seq); sl.check == check {
			return &recentEntry{shard: s, content: sl.content(), key: key, check: check, done: true,
				d: s.names.decodeDecision(id, s.arena.bytes(sl.off, sl.size))}, false
		}
	}
	e = &recentEntry{shard: s, content: c, key: key, check: check, created: now.Sub(r.base)}
	s.pending[key] = e
	return e, true
}

// finish publishes the decision of a claimed entry, waking its waiters,
// and remembers it.
func (r *recentDecisions) finish(e *recentEntry, d *Decision) {
	s := e.shard
	s.mu.Lock()
	if s.pending[e.key] == e {
		delete(s.pending, e.key)
	}
	s.scratch = s.names.appendDecision(s.scratch[:0], d)
	s.push(e, r.perShard)
	e.d = d
	e.settle()
	s.mu.Unlock()
}

// abandon forgets a claimed entry whose scoring failed, waking waiters
// (they get no decision).
func (r *recentDecisions) abandon(e *recentEntry) {
	s := e.shard
	s.mu.Lock()
	if s.pending[e.key] == e {
		delete(s.pending, e.key)
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

// slot returns the slot of a live seq.
func (s *recentShard) slot(seq uint64) *recentSlot {
	oldest := s.next - uint64(s.n)
	return &s.order[(s.head+int(seq-oldest))%len(s.order)]
}

// push remembers e's decision, encoded in s.scratch, as the newest slot
// (unless it is a rebuild's and the shard is full of newer ones).
func (s *recentShard) push(e *recentEntry, limit int) {
	if s.n >= limit {
		if e.aged && e.created < s.order[s.head].created {
			// Full, and a rebuild's event older than the oldest held:
			// the newer ones stay.
			return
		}
		s.evictOldest()
	}
	if s.n == len(s.order) { // the ring is full: grow it
		grown := make([]recentSlot, min(limit, max(64, 2*len(s.order))))
		for i := 0; i < s.n; i++ {
			grown[i] = s.order[(s.head+i)%len(s.order)]
		}
		s.order, s.head = grown, 0
	}
	i := (s.head + s.n) % len(s.order)
	s.order[i] = recentSlot{key: e.key, check: e.check, digest: e.content.digest, time: e.content.time, timed: e.content.timed, created: e.created}
	s.n++
	off := s.arena.put(s.scratch, s)
	s.order[i].off, s.order[i].size = off, uint32(len(s.scratch))
	s.m[e.key] = s.next
	s.next++
}

// evictOldest forgets the oldest decision.
func (s *recentShard) evictOldest() {
	sl := s.order[s.head]
	oldest := s.next - uint64(s.n)
	if seq, ok := s.m[sl.key]; ok && seq == oldest {
		delete(s.m, sl.key)
	}
	s.head = (s.head + 1) % len(s.order)
	s.n--
	if s.n == 0 {
		s.arena.start, s.arena.end = 0, 0
	} else {
		s.arena.start = s.order[s.head].off
	}
}

// expire forgets the decisions claimed at or before limit. Slots are in
// the order decisions were finished, and carry their claim time: one
// claimed before the head but finished after it stays longer than the
// retention by at most the time it was being scored.
func (s *recentShard) expire(limit time.Duration) {
	for s.n > 0 && s.order[s.head].created <= limit {
		s.evictOldest()
	}
}

// recentArena is a byte ring holding the encoded decisions of a shard's
// slots, in slot order: [start, end) when end >= start, else [start,
// len(buf)) and [0, end). A record never wraps: one that does not fit
// before the end of buf goes to its start.
type recentArena struct {
	buf        []byte
	start, end int
}

func (a *recentArena) bytes(off int, size uint32) []byte { return a.buf[off : off+int(size)] }

// put stores rec (the newest slot of s, not yet placed, is the last of
// s's n slots) and returns its offset; it grows the ring when rec does
// not fit, moving the other records.
func (a *recentArena) put(rec []byte, s *recentShard) int {
	n := len(rec)
	var at int
	switch {
	case a.end >= a.start && a.end+n <= len(a.buf):
		at = a.end
	case a.end >= a.start && n < a.start:
		at = 0
	case a.end < a.start && a.end+n < a.start:
		at = a.end
	default:
		at = a.grow(n, s)
	}
	copy(a.buf[at:], rec)
	a.end = at + n
	return at
}

// grow moves the records of s's slots (all but the newest) to the start
// of a larger buffer, with room for n more bytes after them, and returns
// where those go.
func (a *recentArena) grow(n int, s *recentShard) int {
	used := 0
	for i := 0; i < s.n-1; i++ {
		used += int(s.order[(s.head+i)%len(s.order)].size)
	}
	buf := make([]byte, max(4096, 2*(used+n)))
	at := 0
	for i := 0; i < s.n-1; i++ {
		sl := &s.order[(s.head+i)%len(s.order)]
		copy(buf[at:], a.bytes(sl.off, sl.size))
		sl.off = at
		at += int(sl.size)
	}
	a.buf, a.start = buf, 0
	return at
}

// size returns the number of remembered decisions (and of ids being
// scored).
func (r *recentDecisions) size() int {
	n := 0
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.Lock()
		n += len(s.m) + len(s.pending)
		s.mu.Unlock()
	}
	return n
}
