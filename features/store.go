package features

import (
	"sync"
	"sync/atomic"
	"time"
)

// numShards is the number of independently locked parts of each entity
// kind's state. Entities are placed by the top byte of their keyed hash.
const numShards = 256

// kind is the state of one entity kind (card.token, account.id,
// account.id+device.fingerprint, ...): every feature keyed on it reads and
// updates one entity record per key, under one shard lock per event.
type kind struct {
	name string
	key  entityKey

	series  []*seriesPlan
	sets    []*setPlan
	seen    []*seenPlan
	recency []recencyPlan
	travel  []*travelPlan
	hours   []*hourPlan

	needRecent bool    // keeps recent times for since_last of late events
	needExt    bool    // entities carry an entityExt (extSpan > 0)
	extSpan    uintptr // bytes of the extension that processing reads (prefetch); 0: none
	windowSec  int64   // longest window, seconds
	history    bool    // keeps state past its windows: first seen, novelty, hours, travel

	// sig identifies the layout of the kind's state: engines whose kinds
	// have the same sig can share the state (see successor.go).
	sig string
	// from is the predecessor's kind whose state this kind takes over,
	// shard by shard (nil: nothing to take over); plans maps this kind's
	// plans to its.
	from  *kind
	plans planMap
	// prevLayout is the predecessor's kind of the same name while a
	// successor compiles (series and sets it can keep as they are).
	prevLayout *kind

	*kindState
}

// lateCounts counts a kind's late events.
type lateCounts struct{ accepted, dropped atomic.Uint64 }

// kindState is the entities of a kind and their counters: what a
// successor engine shares when the kind's state layout is unchanged.
type kindState struct {
	tracked atomic.Int64
	cursor  atomic.Uint32 // eviction probe cursor
	late    *lateCounts   // shared with the kind's successors, whatever their state

	shards [numShards]shard
}

// shard holds the entities of a kind whose keyed hash has a given top
// byte. The entity record lives in the table's own slots (one probe finds
// everything but the series data), and eviction samples the table instead
// of keeping a list, so that recording an event touches no other entity.
type shard struct {
	mu      sync.Mutex
	t       table
	creates uint32 // entities created, to pace the retention sweep
	// pending: entities of the predecessor's shard are still to be taken
	// over (an event takes its own first), from slot cursor on. handing: a
	// successor is taking this shard's entities, it creates none any more;
	// moved: it has taken them all.
	pending, handing, moved bool
	cursor                  int
	_                       [64]byte
}

// entity is one tracked key. Raw keys are never stored: the table key is a
// keyed 64-bit hash of the key's text.
type entity struct {
	first  uint32   // first recorded event time, Unix seconds (0: none yet)
	newest uint32   // newest recorded event time
	s0     []uint64 // the kind's first series (see seriesPlan)
	x      *entityExt
}

// entityExt is the state beyond one series, allocated for kinds that have
// it. The first distinct set is inline (one pointer less to follow).
type entityExt struct {
	set0   valueSet
	series [][]uint64 // series 1..n-1
	sets   []valueSet // sets 1..n-1
	seen   []seenSet
	recent recentTimes
	travel []travelState
	hours  []hourHist
}

func (en *entity) blob(i int) []uint64 {
	if i == 0 {
		return en.s0
	}
	if en.x == nil {
		return nil
	}
	return en.x.series[i-1]
}

func (en *entity) setBlob(i int, b []uint64) {
	if i == 0 {
		en.s0 = b
	} else {
		en.x.series[i-1] = b
	}
}

func (x *entityExt) set(i int) *valueSet {
	if i == 0 {
		return &x.set0
	}
	return &x.sets[i-1]
}

func (k *kind) shardOf(key uint64) *shard { return &k.shards[key>>56] }

// evictSample is how many entities of a shard are looked at to pick a
// victim; evictProbes how many other shards are tried for an idle one
// before an active entity is dropped.
const (
	evictSample = 16
	evictProbes = 16
	sweepEvery  = 8 // creations per shard between two retention sweeps
)

// oldest samples sh and returns the key of the entity with the oldest
// newest event among the sample.
func (sh *shard) oldest(start uint64) (key uint64, newest uint32, ok bool) {
	sh.t.sample(start, evictSample, func(k uint64, en *entity) {
		if isTomb(en) { // its state moved to a successor
			return
		}
		if !ok || en.newest < newest {
			key, newest, ok = k, en.newest, true
		}
	})
	return key, newest, ok
}

func (e *Engine) remove(k *kind, sh *shard, key uint64) {
	sh.t.delete(key)
	k.tracked.Add(-1)
	e.tracked.Add(-1)
}

// create adds an entity for key in sh (locked), first making room: now and
// then entities past the retention go; at the cap, one entity goes.
func (e *Engine) create(k *kind, sh *shard, key uint64) *entity {
	wm := int64(e.watermark())
	sh.creates++
	if sh.creates%sweepEvery == 0 {
		var expired [evictSample]uint64
		n := 0
		sh.t.sample(mix64(key), evictSample, func(k uint64, en *entity) {
			if int64(en.newest)+e.retention < wm {
				expired[n] = k
				n++
			}
		})
		for _, x := range expired[:n] {
			e.remove(k, sh, x)
			e.m.evictExpired.Add(1)
		}
	}
	if e.tracked.Load() >= e.maxEntities {
		e.makeRoom(k, sh, key, wm)
	}
	en := sh.t.insert(key)
	if k.needExt {
		en.x = k.newExt()
	}
	k.tracked.Add(1)
	e.tracked.Add(1)
	return en
}

// makeRoom drops one entity of kind k, sh being locked: the least recently
// active of a sample of sh if it is idle (its longest window has expired),
// else the same from other shards (tried without waiting, from a rotating
// cursor so that successive probes cover every shard), else the sampled
// one of sh (or of any shard), counted as an active eviction.
func (e *Engine) makeRoom(k *kind, sh *shard, newKey uint64, wm int64) {
	idle := func(newest uint32) bool { return int64(newest)+k.windowSec+e.lateness < wm }
	// An idle entity of a kind with history (first seen, novelty, hours,
	// travel) holds no window count but loses that history: "stale".
	evicted := &e.m.evictIdle
	if k.history {
		evicted = &e.m.evictStale
	}
	start := mix64(newKey)
	e.settle(k, sh, int(newKey>>56))
	key, newest, ok := sh.oldest(start)
	if ok && idle(newest) {
		evicted.Add(1)
		e.remove(k, sh, key)
		return
	}
	var other *shard
	for range evictProbes {
		oi := int(k.cursor.Add(1) % numShards)
		o := &k.shards[oi]
		if o == sh || !o.mu.TryLock() {
			continue
		}
		e.settle(k, o, oi)
		if okey, onewest, ok := o.oldest(start); ok && idle(onewest) {
			evicted.Add(1)
			e.remove(k, o, okey)
			o.mu.Unlock()
			return
		}
		o.mu.Unlock()
	}
	if !ok {
		// This shard is empty (the kind has few entities): drop from
		// another one, an idle entity if any shard's oldest is.
		from := k.cursor.Add(1)
		for j := range numShards { // every shard once
			oi := int((from + uint32(j)) % numShards)
			o := &k.shards[oi]
			if o == sh || !o.mu.TryLock() {
				continue
			}
			e.settle(k, o, oi)
			okey, onewest, ok := o.oldest(start)
			if ok && idle(onewest) {
				if other != nil {
					other.mu.Unlock()
				}
				evicted.Add(1)
				e.remove(k, o, okey)
				o.mu.Unlock()
				return
			}
			if ok && other == nil {
				other, key = o, okey // the first non-empty one, kept locked
				continue
			}
			o.mu.Unlock()
		}
		if other == nil {
			return // nothing to drop without waiting: exceed the cap by one
		}
		defer other.mu.Unlock()
		sh = other
	}
	e.m.evictActive.Add(1)
	e.warnActiveEviction(k)
	e.remove(k, sh, key)
}

func (k *kind) newExt() *entityExt {
	x := &entityExt{}
	x.set0.init()
	if n := len(k.series); n > 1 {
		x.series = make([][]uint64, n-1)
	}
	if n := len(k.sets); n > 1 {
		x.sets = make([]valueSet, n-1)
		for i := range x.sets {
			x.sets[i].init()
		}
	}
	if n := len(k.seen); n > 0 {
		x.seen = make([]seenSet, n)
	}
	if n := len(k.travel); n > 0 {
		x.travel = make([]travelState, n)
	}
	if n := len(k.hours); n > 0 {
		x.hours = make([]hourHist, n)
	}
	return x
}

func (e *Engine) warnActiveEviction(k *kind) {
	now := time.Now().Unix()
	last := e.lastWarn.Load()
	if now-last >= 60 && e.lastWarn.CompareAndSwap(last, now) {
		e.log.Warn("features: max_entities reached, dropping an active entity (its windows lose history); raise max_entities",
			"entity", k.name, "max_entities", e.maxEntities, "evicted_active_total", e.m.evictActive.Load())
	}
}
