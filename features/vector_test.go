package features

import (
	"math"
	"testing"
)

func TestVectorSetNum(t *testing.T) {
	s := &Schema{Fields: []Field{{Name: "x", Type: Number}}}
	f := func(x float64, has bool) {
		t.Helper()
		v := NewVector(s)
		v.SetNum(0, x)
		if v.Has[0] != has || (has && v.Num[0] != x) {
			t.Fatalf("SetNum(%v): has %v num %v, want has %v", x, v.Has[0], v.Num[0], has)
		}
	}
	f(0, true)
	f(-1.5, true)
	f(math.MaxFloat64, true)
	f(-math.MaxFloat64, true)
	f(math.SmallestNonzeroFloat64, true)
	f(math.NaN(), false)
	f(math.Inf(1), false)
	f(math.Inf(-1), false)
}
