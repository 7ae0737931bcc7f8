package features

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/vigil-fraud/vigil/engine/event"
)

func TestAttrString(t *testing.T) {
	f := func(v any, want string) {
		t.Helper()
		if got := attrString(v); got != want {
			t.Errorf("attrString(%#v) = %q, want %q", v, got, want)
		}
	}
	// numbers by value
	f(json.Number("1"), "1")
	f(json.Number("1.0"), "1")
	f(json.Number("1e0"), "1")
	f(json.Number("100"), "100")
	f(json.Number("1E2"), "100")
	f(json.Number("-0"), "0")
	f(json.Number("-0.0"), "0")
	f(json.Number("2.50"), "2.5")
	f(json.Number("-3.25e1"), "-32.5")
	f(1.0, "1")
	f(2.5, "2.5")
	f(int64(7), "7")
	f(7, "7")
	// integers as written: ids beyond 2^53 stay apart
	f(json.Number("9007199254740993"), "9007199254740993")
	f(json.Number("9007199254740992"), "9007199254740992")
	f(json.Number("1e999"), "1e999") // out of range: as written
	// strings and booleans as they are
	f("1.0", "1.0")
	f(true, "true")
	f(false, "false")
	f(nil, "")
}

// TestAttributeValues: a distinct count and an entity key over an
// attribute see numbers by value, as rules do.
func TestAttributeValues(t *testing.T) {
	e := mustEngine(t, `
features:
  - {name: codes, entity: card.token, aggregate: distinct, field: attributes.v, windows: [1h]}
  - {name: per_ref, entity: attributes.ref, aggregate: count, windows: [1h]}
`, Options{})
	v := NewVector(e.Schema())
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, x := range []any{json.Number("1"), json.Number("1.0"), json.Number("1e0"), json.Number("2"), json.Number("2.00")} {
		e.Observe(&event.Event{Time: t0.Add(time.Duration(i) * time.Second), Card: event.Card{Token: "t"},
			Attributes: map[string]any{"v": x, "ref": []json.Number{"10", "1e1", "10.0", "10", "10"}[i]}}, v)
	}
	if n, _ := num(t, e, v, "codes_1h"); n != 2 {
		t.Errorf("distinct of 1, 1.0, 1e0, 2, 2.00 = %v, want 2", n)
	}
	if n, _ := num(t, e, v, "per_ref_1h"); n != 5 {
		t.Errorf("count per ref 10, 1e1, 10.0, 10, 10 = %v, want 5 (one entity)", n)
	}
}
