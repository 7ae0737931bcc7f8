package features

import (
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/vigil-fraud/vigil/engine/event"
)

// KindLabelRate is the share of an entity's matured transactions that are
// known to be fraud: the label-based feature kind (see labelPlan).
const KindLabelRate Kind = "label_rate"

// DefaultLabelDelay is the maturity delay of a label_rate feature without
// a delay key.
const DefaultLabelDelay = 7 * Day

// labelShards is the number of independently locked parts of a label_rate
// feature's state.
const labelShards = 64

// labelPlan computes one label_rate definition. For an event at time t and
// a window w, its value is
//
//	fraud / transactions
//
// over the entity's transactions with time in (t − delay − w, t − delay]
// (buckets of resolution seconds), where fraud counts only those whose fraud
// label was received (ObserveLabel) with known_at ≤ t. The value is missing
// when that range holds no transaction, and for every event until the
// engine has received its first label: live serving, which receives no
// labels, sees it missing, never a made-up 0. Its state is pruned on its
// own (buckets older than delay + the longest window + the lateness) and is
// not part of Horizon or Retention: labels cannot be rebuilt by replaying
// events.
type labelPlan struct {
	key   entityKey
	wins  []int64 // window lengths in buckets, increasing
	slots []int   // output slot per window
	delay int64   // seconds
	res   int64   // seconds
	sig   string  // the state's layout: equal sigs can share the state

	*labelState
}

// labelState is a label_rate plan's per-entity history: what a successor
// engine shares when the plan is unchanged.
type labelState struct {
	shards [labelShards]labelShard
}

type labelShard struct {
	mu sync.Mutex
	m  map[uint64]*labelHist
	_  [40]byte
}

// labelHist is one entity's transactions and fraud labels, by bucket of
// transaction time, oldest first.
type labelHist struct {
	tx     []bucketCount
	fraud  []fraudMark
	newest uint32 // newest recorded transaction time
}

type bucketCount struct{ b, n uint32 }

// fraudMark is one fraud label: the bucket of its transaction's time and
// when it became known (Unix seconds).
type fraudMark struct{ b, known uint32 }

func newLabelPlan(d *Definition, base int) *labelPlan {
	lp := &labelPlan{key: newEntityKey(d.Entity), delay: int64(d.Delay.Seconds()), res: int64(d.Resolution.Seconds()), labelState: new(labelState)}
	for j, w := range d.Windows {
		lp.wins = append(lp.wins, int64(w.Length/d.Resolution))
		lp.slots = append(lp.slots, base+j)
	}
	lp.sig = fmt.Sprintf("%s|%d|%d|%v", d.EntityName(), lp.delay, lp.res, lp.wins)
	for i := range lp.shards {
		lp.shards[i].m = map[uint64]*labelHist{}
	}
	return lp
}

// observe computes the plan's features of the event in c and, when record,
// records the transaction.
func (lp *labelPlan) observe(e *Engine, c *evctx, v *Vector, record bool) {
	key, ok := lp.key.of(c)
	if !ok {
		return
	}
	sh := &lp.shards[key>>58]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	h := sh.m[key]
	// As for the other kinds, an event more than the lateness behind the
	// entity's newest is not recorded and is computed at that newest time.
	t := c.t
	if h != nil && int64(t) < int64(h.newest)-e.lateness {
		t, record = h.newest, false
	}
	if record {
		if h == nil {
			h = &labelHist{}
			sh.m[key] = h
		}
		h.addTx(uint32(int64(t) / lp.res))
		h.newest = max(h.newest, t)
		lp.prune(h, int64(h.newest), e.lateness)
	}
	if h == nil || !e.labelsSeen.Load() {
		return
	}
	if int64(t) < lp.delay {
		return
	}
	end := (int64(t) - lp.delay) / lp.res // newest matured bucket
	// One pass backwards from end: windows are increasing, so each one
	// extends the previous one's counts.
	j := sort.Search(len(h.tx), func(i int) bool { return int64(h.tx[i].b) > end }) - 1
	k := sort.Search(len(h.fraud), func(i int) bool { return int64(h.fraud[i].b) > end }) - 1
	var n, f uint32
	for i, wl := range lp.wins {
		lo := end - wl // exclusive
		for ; j >= 0 && int64(h.tx[j].b) > lo; j-- {
			n += h.tx[j].n
		}
		for ; k >= 0 && int64(h.fraud[k].b) > lo; k-- {
			if h.fraud[k].known <= t {
				f++
			}
		}
		if n > 0 {
			v.SetNum(lp.slots[i], float64(f)/float64(n))
		}
	}
}

// label records a fraud label of the transaction in c, known at known.
func (lp *labelPlan) label(c *evctx, known uint32) {
	key, ok := lp.key.of(c)
	if !ok {
		return
	}
	sh := &lp.shards[key>>58]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	h := sh.m[key]
	if h == nil {
		h = &labelHist{}
		sh.m[key] = h
	}
	m := fraudMark{b: uint32(int64(c.t) / lp.res), known: known}
	i := len(h.fraud)
	for i > 0 && h.fraud[i-1].b > m.b {
		i--
	}
	h.fraud = slices.Insert(h.fraud, i, m)
}

// addTx counts one transaction in bucket b, keeping the buckets sorted (a
// late transaction goes in its own place).
func (h *labelHist) addTx(b uint32) {
	i := len(h.tx)
	for i > 0 && h.tx[i-1].b > b {
		i--
	}
	if i > 0 && h.tx[i-1].b == b {
		h.tx[i-1].n++
		return
	}
	h.tx = slices.Insert(h.tx, i, bucketCount{b: b, n: 1})
}

// prune drops buckets no window can read any more at time t (allowing for
// late events), moving the rest down so that capacity is reused.
func (lp *labelPlan) prune(h *labelHist, t, lateness int64) {
	oldest := (t-lateness-lp.delay)/lp.res - lp.wins[len(lp.wins)-1]
	if oldest <= 0 {
		return
	}
	i := 0
	for i < len(h.tx) && int64(h.tx[i].b) <= oldest {
		i++
	}
	if i > 0 {
		h.tx = h.tx[:copy(h.tx, h.tx[i:])]
	}
	i = 0
	for i < len(h.fraud) && int64(h.fraud[i].b) <= oldest {
		i++
	}
	if i > 0 {
		h.fraud = h.fraud[:copy(h.fraud, h.fraud[i:])]
	}
}

// ObserveLabel receives the outcome of a transaction seen before (ev is
// that transaction, as scored): fraud or not, and when it became known.
// label_rate features of later events count a fraud label only when their
// time is at or after knownAt. The first label received, fraud or not,
// switches label_rate features on (they are missing before: an engine fed
// no labels cannot tell a clean entity from an unknown one). Safe for
// concurrent use with Observe.
func (e *Engine) ObserveLabel(ev *event.Event, fraud bool, knownAt time.Time) {
	e = e.live()
	if !e.labelsOn {
		return // Options.Labels is off: no label_rate state is kept
	}
	e.labelsSeen.Store(true)
	if !fraud || len(e.labels) == 0 {
		return
	}
	k := knownAt.Unix()
	if k < 0 {
		k = 0
	}
	c, _ := ctxPool.Get().(*evctx)
	if c == nil {
		c = new(evctx)
	}
	defer ctxPool.Put(c)
	if c.init(e, ev) {
		for _, lp := range e.labels {
			lp.label(c, uint32(min(k, int64(^uint32(0)))))
		}
	}
	c.releaseFilters()
	*c = evctx{}
}
