package engine

import (
	"encoding/binary"

	"github.com/vigil-fraud/vigil/rules"
)

// The recent-decisions store keeps a decision as bytes (no pointers for the
// garbage collector to follow): its action, score and latency, its ruleset
// and whether it has a reasons slice and each reason. A ruleset and a
// reason (rule, code, message) are written once in the shard's table of
// names and referred to by number: a decision takes a dozen bytes. Numbers
// are varints; an action other than the three, or a name once the table is
// full, is written out (a uvarint length and the bytes). The id is the
// claim's and Explain is never stored.

// maxRecentNames bounds each of a shard's tables of rulesets and reasons
// (a table only grows: one entry per distinct reason of every ruleset the
// shard saw); names beyond it are written out in each decision.
const maxRecentNames = 4096

// recentNames numbers the rulesets and reasons of a shard's decisions.
// Guarded by the shard's lock.
type recentNames struct {
	max      int // per table: maxRecentNames
	rulesets numbering[string]
	reasons  numbering[Reason]
}

// numbering gives values numbers from 1 in the order first seen.
type numbering[K comparable] struct {
	ids  map[K]uint64
	vals []K
}

// id returns k's number, 0 when k is new and the table holds max values.
func (n *numbering[K]) id(k K, max int) uint64 {
	if id, ok := n.ids[k]; ok {
		return id
	}
	if len(n.vals) >= max {
		return 0
	}
	if n.ids == nil {
		n.ids = map[K]uint64{}
	}
	n.vals = append(n.vals, k)
	n.ids[k] = uint64(len(n.vals))
	return uint64(len(n.vals))
}

// actionCodes are the actions stored as one byte (0 means written out).
var actionCodes = [...]rules.Action{1: rules.Approve, 2: rules.StepUp, 3: rules.Pause}

// appendDecision appends the encoding of d to b.
func (t *recentNames) appendDecision(b []byte, d *Decision) []byte {
	code := byte(0)
	for i := 1; i < len(actionCodes); i++ {
		if actionCodes[i] == d.Decision {
			code = byte(i)
		}
	}
	b = append(b, code)
	if code == 0 {
		b = appendRecentString(b, string(d.Decision))
	}
	b = binary.AppendVarint(b, int64(d.Score))
	b = binary.AppendVarint(b, d.LatencyUS)
	b = appendRef(b, t.rulesets.id(d.Ruleset, t.max), func(b []byte) []byte { return appendRecentString(b, d.Ruleset) })
	if d.Reasons == nil {
		return append(b, 0)
	}
	b = append(b, 1)
	b = binary.AppendUvarint(b, uint64(len(d.Reasons)))
	for _, r := range d.Reasons {
		b = appendRef(b, t.reasons.id(r, t.max), func(b []byte) []byte {
			b = appendRecentString(b, r.Rule)
			b = appendRecentString(b, r.Code)
			return appendRecentString(b, r.Message)
		})
	}
	return b
}

// appendRef appends a name's number plus one, or 0 and the name written
// out (id 0: the table is full).
func appendRef(b []byte, id uint64, spell func([]byte) []byte) []byte {
	b = binary.AppendUvarint(b, id)
	if id == 0 {
		b = spell(b)
	}
	return b
}

func appendRecentString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decodeDecision decodes what appendDecision encoded, for id.
func (t *recentNames) decodeDecision(id string, b []byte) *Decision {
	r := recentReader{b: b}
	d := &Decision{ID: id}
	if code := r.byte(); code != 0 {
		d.Decision = actionCodes[code]
	} else {
		d.Decision = rules.Action(r.string())
	}
	d.Score = int(r.varint())
	d.LatencyUS = r.varint()
	if n := r.uvarint(); n != 0 {
		d.Ruleset = t.rulesets.vals[n-1]
	} else {
		d.Ruleset = r.string()
	}
	if r.byte() == 1 {
		d.Reasons = make([]Reason, r.uvarint())
		for i := range d.Reasons {
			if n := r.uvarint(); n != 0 {
				d.Reasons[i] = t.reasons.vals[n-1]
			} else {
				d.Reasons[i] = Reason{Rule: r.string(), Code: r.string(), Message: r.string()}
			}
		}
	}
	return d
}

// recentReader reads an encoded decision; the bytes are the store's own,
// so they are well formed.
type recentReader struct {
	b []byte
	i int
}

func (r *recentReader) byte() byte { c := r.b[r.i]; r.i++; return c }

func (r *recentReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b[r.i:])
	r.i += n
	return v
}

func (r *recentReader) varint() int64 {
	v, n := binary.Varint(r.b[r.i:])
	r.i += n
	return v
}

func (r *recentReader) string() string {
	n := int(r.uvarint())
	s := string(r.b[r.i : r.i+n])
	r.i += n
	return s
}
