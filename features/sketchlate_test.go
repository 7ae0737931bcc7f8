package features

import (
	"fmt"
	"testing"
	"time"

	"github.com/vigil-fraud/vigil/engine/event"
)

// TestSketchLateEvent: a late event (within the lateness) of a set in
// sketch mode finds the sub-windows of its own window — the ring holds as
// many more as the lateness spans (it used to reuse their slots, and the
// count fell to 1 for 4 values) — and, as documented, may count values up
// to one sub-window (w/8) after it.
func TestSketchLateEvent(t *testing.T) {
	defs := "features:\n  - {name: d, entity: card.token, aggregate: distinct, field: merchant.id, windows: [8m], exact_up_to: 2}\n"
	base := time.Unix(1_700_000_040, 0) // a multiple of 60 s: sub-windows of 60 s start on it
	type ev struct {
		s int
		m string
	}
	for _, tc := range []struct {
		name    string
		evs     []ev
		lo, hi  float64
		comment string
	}{
		{"ring slot of the late event's window", []ev{{0, "a"}, {1, "b"}, {2, "c"}, {540, "n1"}, {299, "z"}}, 3, 4, "(299-480, 299] = a, b, c, z (an estimate: two values may share a register)"},
		{"values after it in its sub-window", []ev{{0, "a"}, {1, "b"}, {2, "c"}, {70, "n1"}, {71, "n2"}, {72, "n3"}, {73, "n4"}, {74, "n5"}, {61, "a"}}, 3, 8,
			"(61-480, 61] = a, b, c; n1..n5 share its sub-window [60, 120)"},
		{"in order", []ev{{0, "a"}, {1, "b"}, {2, "c"}, {299, "z"}}, 3, 4, "an estimate too: only 2 values are kept beside the sketch"},
	} {
		e := mustEngine(t, defs, Options{Lateness: 5 * time.Minute})
		v := NewVector(e.Schema())
		for _, x := range tc.evs {
			e.Observe(&event.Event{Time: base.Add(time.Duration(x.s) * time.Second), Card: event.Card{Token: "c"}, Merchant: event.Merchant{ID: x.m}}, v)
		}
		if d, _ := num(t, e, v, "d_8m"); d < tc.lo || d > tc.hi {
			t.Errorf("%s: d_8m = %v, want %v..%v %s", tc.name, d, tc.lo, tc.hi, tc.comment)
		}
	}
}

// TestSketchAgesOut: a set whose sketched values have all left every
// window is exact again, its sketches freed.
func TestSketchAgesOut(t *testing.T) {
	e := mustEngine(t, "features:\n  - {name: d, entity: card.token, aggregate: distinct, field: merchant.id, windows: [1h], exact_up_to: 8}\n", Options{})
	v := NewVector(e.Schema())
	for i := range 50 {
		e.Observe(&event.Event{Time: t0.Add(time.Duration(i) * time.Second), Card: event.Card{Token: "c"}, Merchant: event.Merchant{ID: fmt.Sprint("m", i)}}, v)
	}
	e.Observe(&event.Event{Time: t0.Add(Day), Card: event.Card{Token: "c"}, Merchant: event.Merchant{ID: "x"}}, v)
	k := e.kinds[0]
	key, _ := k.key.of(&evctx{e: e, ev: &event.Event{Card: event.Card{Token: "c"}}})
	if en := k.shardOf(key).t.get(key); en.x.set0.sk != nil {
		t.Error("a day later, the set is still a sketch")
	}
	if d, _ := num(t, e, v, "d_1h"); d != 1 {
		t.Errorf("d_1h = %v, want 1", d)
	}
}
