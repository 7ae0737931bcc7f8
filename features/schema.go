// Package features computes the per-transaction features that rules read:
// event-time velocity windows, distinct counts, recency, device, geography
// and anomaly features, over in-memory state with bounded memory.
package features

import "fmt"

// Type is the value type of a feature as rules see it.
type Type uint8

// Feature value types.
const (
	Number Type = iota // float64; NaN when missing
	Bool               // bool; false when missing
	String             // string; "" when missing
)

func (t Type) String() string {
	switch t {
	case Number:
		return "number"
	case Bool:
		return "bool"
	case String:
		return "string"
	}
	return fmt.Sprintf("Type(%d)", uint8(t))
}

// Field is one feature: its stable name, type and a one-line description.
type Field struct {
	Name string
	Type Type
	Help string
}

// Schema lists the features an engine computes. Field i of the schema is
// slot i of every Vector the engine fills. A Schema is immutable.
type Schema struct {
	Fields []Field
	// Digest identifies the definitions the schema came from (File.Digest;
	// "" for a schema built by NewSchema): rulesets compiled against it
	// include it in their version.
	Digest string
	index  map[string]int
}

// NewSchema builds a schema; names must be unique.
func NewSchema(fields []Field) (*Schema, error) {
	s := &Schema{Fields: fields, index: make(map[string]int, len(fields))}
	for i, f := range fields {
		if _, dup := s.index[f.Name]; dup {
			return nil, fmt.Errorf("feature %q defined twice", f.Name)
		}
		s.index[f.Name] = i
	}
	return s, nil
}

// Lookup returns the slot of a feature name.
func (s *Schema) Lookup(name string) (int, bool) {
	i, ok := s.index[name]
	return i, ok
}

// Len is the number of features.
func (s *Schema) Len() int { return len(s.Fields) }
