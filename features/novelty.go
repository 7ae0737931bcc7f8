package features

// A novelty feature tells whether a field's value (a device, a card, a
// country) is new for the entity: not among the values the entity was seen
// with before this event (in arrival order), or, with a lookback, not seen
// within it. Each entity remembers its most recent `capacity` values; a
// value pushed out by newer ones counts as new again.
type seenPlan struct {
	field    fieldSpec
	filter   int
	lookback int64 // seconds; 0: since tracked
	capacity int
	slot     int
	index    int
	sig      string // the state's layout across engines
}

type seenSet struct {
	vals []seenVal
}

type seenVal struct {
	h    uint64
	last uint32
}

// isNew reports whether h is new at t; ok is false when the entity has no
// history for this feature (missing, not "new").
func (p *seenPlan) isNew(s *seenSet, t uint32, h uint64) (isNew, ok bool) {
	if s == nil || len(s.vals) == 0 {
		return false, false
	}
	for _, v := range s.vals {
		if v.h == h {
			return p.lookback > 0 && int64(v.last)+p.lookback < int64(t), true
		}
	}
	return true, true
}

func (p *seenPlan) record(s *seenSet, t uint32, h uint64) {
	oldest := -1
	for i := range s.vals {
		v := &s.vals[i]
		if v.h == h {
			if t > v.last {
				v.last = t
			}
			return
		}
		if oldest < 0 || v.last < s.vals[oldest].last {
			oldest = i
		}
	}
	if len(s.vals) >= p.capacity {
		s.vals[oldest] = seenVal{h: h, last: t}
		return
	}
	s.vals = append(s.vals, seenVal{h: h, last: t})
}
