package engine

import (
	"encoding/binary"

	"github.com/vigil-fraud/vigil/rules"
)

// The recent-decisions store keeps a decision as bytes (no pointers for the
// garbage collector to follow): its action, score, latency and ruleset,
// whether it has a reasons slice and each reason's rule, code and message.
// Strings are a uvarint length and the bytes; numbers are varints. The id
// is the claim's and Explain is never stored.

// appendDecision appends the encoding of d to b.
func appendDecision(b []byte, d *Decision) []byte {
	b = appendRecentString(b, string(d.Decision))
	b = binary.AppendVarint(b, int64(d.Score))
	b = binary.AppendVarint(b, d.LatencyUS)
	b = appendRecentString(b, d.Ruleset)
	if d.Reasons == nil {
		return append(b, 0)
	}
	b = append(b, 1)
	b = binary.AppendUvarint(b, uint64(len(d.Reasons)))
	for _, r := range d.Reasons {
		b = appendRecentString(b, r.Rule)
		b = appendRecentString(b, r.Code)
		b = appendRecentString(b, r.Message)
	}
	return b
}

func appendRecentString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decodeDecision decodes what appendDecision encoded, for id.
func decodeDecision(id string, b []byte) *Decision {
	r := recentReader{b: b}
	d := &Decision{ID: id}
	d.Decision = rules.Action(r.string())
	d.Score = int(r.varint())
	d.LatencyUS = r.varint()
	d.Ruleset = r.string()
	if r.byte() == 1 {
		d.Reasons = make([]Reason, r.uvarint())
		for i := range d.Reasons {
			d.Reasons[i] = Reason{Rule: r.string(), Code: r.string(), Message: r.string()}
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
