package features

import "math"

// Vector holds one event's feature values. Every slice has one slot per
// schema field; a field of type Number lives in Num, Bool in Bool, String in
// Str, and Has tells whether the value is present at all. A Vector belongs to
// one goroutine at a time.
type Vector struct {
	Num  []float64
	Bool []bool
	Str  []string
	Has  []bool
}

// NewVector allocates a vector for a schema.
func NewVector(s *Schema) *Vector {
	n := s.Len()
	v := &Vector{Num: make([]float64, n), Bool: make([]bool, n), Str: make([]string, n), Has: make([]bool, n)}
	v.Reset()
	return v
}

// Reset marks every value missing.
func (v *Vector) Reset() {
	nan := math.NaN()
	for i := range v.Num {
		v.Num[i] = nan
	}
	clear(v.Bool)
	clear(v.Str)
	clear(v.Has)
}

// SetNum stores a number: present unless NaN or infinite (a sum that
// overflowed is not a value a rule can compare, nor one JSON can carry).
func (v *Vector) SetNum(i int, x float64) {
	v.Num[i], v.Has[i] = x, x-x == 0 // NaN and ±Inf give NaN
}

// SetBool stores a present bool.
func (v *Vector) SetBool(i int, b bool) { v.Bool[i], v.Has[i] = b, true }

// SetStr stores a string; an empty string is missing.
func (v *Vector) SetStr(i int, s string) { v.Str[i], v.Has[i] = s, s != "" }

// Value returns slot i as a JSON-friendly value (nil when missing), for
// explain output.
func (v *Vector) Value(s *Schema, i int) any {
	if !v.Has[i] {
		return nil
	}
	switch s.Fields[i].Type {
	case Bool:
		return v.Bool[i]
	case String:
		return v.Str[i]
	}
	return v.Num[i]
}
