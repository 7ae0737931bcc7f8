package stream

import (
	"hash/maphash"
	"time"
)

// rebuildIDs dedupes the events of a rebuild that are older than the
// idempotency retention, which the engine does not remember (see
// engine.Engine.IdempotencyRetention): an id seen again within the
// retention of event time is skipped, as live scoring skipped it then. It
// holds a retention's worth of the partition's ids (two words each), at
// most max of them, and is dropped when the rebuild ends.
type rebuildIDs struct {
	seed      maphash.Seed
	retention time.Duration
	max       int
	seen      map[uint64]struct{}
	order     []rebuildID // FIFO in the order seen
}

type rebuildID struct {
	key uint64
	at  int64 // event time, Unix nanoseconds
}

func newRebuildIDs(retention time.Duration, max int) *rebuildIDs {
	return &rebuildIDs{seed: maphash.MakeSeed(), retention: retention, max: max, seen: map[uint64]struct{}{}}
}

// again reports whether id was seen within the retention before t, and
// remembers it.
func (r *rebuildIDs) again(id string, t time.Time) bool {
	at := t.UnixNano()
	for len(r.order) > 0 && (r.order[0].at < at-int64(r.retention) || len(r.order) >= r.max) {
		delete(r.seen, r.order[0].key)
		r.order = r.order[1:]
	}
	key := maphash.String(r.seed, id)
	if _, ok := r.seen[key]; ok {
		return true
	}
	r.seen[key] = struct{}{}
	r.order = append(r.order, rebuildID{key, at})
	return false
}
