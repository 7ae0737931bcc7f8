package features

import (
	"fmt"
	"hash/maphash"
	"sync"

	"github.com/vigil-fraud/vigil/engine/event"
)

// Engine computes features for events and records them in its state. It is
// safe for concurrent use.
//
// Window semantics: a feature over window w of the event at time t covers
// the entity's events with time in (t − w, t], the current event included.
type Engine struct {
	schema *Schema
	defs   []compiled
	seed   maphash.Seed
	shards [numShards]shard
}

const numShards = 256

type compiled struct {
	def    Definition
	key    func(*event.Event) string
	slots  []int // one per window
	series int   // index of the entity's series
}

type shard struct {
	mu       sync.Mutex
	entities map[string]*entity
}

// entity is the naive state of one entity: its recent events.
type entity struct {
	times  []int64
	values []float64
}

// New builds an engine for the definitions.
func New(f *File) (*Engine, error) {
	var fields []Field
	e := &Engine{seed: maphash.MakeSeed()}
	for i := range e.shards {
		e.shards[i].entities = map[string]*entity{}
	}
	for i, d := range f.Features {
		key, _ := event.StringField(d.Entity)
		c := compiled{def: d, key: key, series: i}
		for _, w := range d.Windows {
			c.slots = append(c.slots, len(fields))
			fields = append(fields, Field{Name: d.Name + "_" + w.String(), Type: Number, Help: d.Help})
		}
		e.defs = append(e.defs, c)
	}
	s, err := NewSchema(fields)
	if err != nil {
		return nil, fmt.Errorf("features: %w", err)
	}
	e.schema = s
	return e, nil
}

// Schema lists the features the engine computes.
func (e *Engine) Schema() *Schema { return e.schema }

// Observe computes the features of ev into v, the event itself included,
// and records ev in the state.
func (e *Engine) Observe(ev *event.Event, v *Vector) {
	v.Reset()
	t := ev.Time.UnixNano()
	amount := event.MajorUnits(ev.Amount, ev.Currency)
	for _, c := range e.defs {
		k := c.key(ev)
		if k == "" {
			continue
		}
		k = fmt.Sprintf("%d\x00%s", c.series, k)
		sh := &e.shards[maphash.String(e.seed, k)%numShards]
		sh.mu.Lock()
		en := sh.entities[k]
		if en == nil {
			en = &entity{}
			sh.entities[k] = en
		}
		en.times = append(en.times, t)
		en.values = append(en.values, amount)
		for wi, w := range c.def.Windows {
			from := t - int64(w.Length)
			n, sum := 0, 0.0
			for j, et := range en.times {
				if et > from && et <= t {
					n++
					sum += en.values[j]
				}
			}
			switch c.def.Aggregate {
			case Count:
				v.SetNum(c.slots[wi], float64(n))
			case Sum:
				v.SetNum(c.slots[wi], sum)
			case Avg:
				v.SetNum(c.slots[wi], sum/float64(n))
			}
		}
		sh.mu.Unlock()
	}
}
