package stream

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/vigil-fraud/vigil/engine"
	"github.com/vigil-fraud/vigil/engine/event"
)

func TestEncodeDecisionMatchesMarshal(t *testing.T) {
	if !fastDecisionLayout {
		t.Fatal("engine.Decision, engine.Reason or DecisionRecord changed: update encodeDecision and fastDecisionLayout")
	}
	at := time.Date(2026, 11, 22, 8, 11, 55, 790_000_000, time.UTC)
	paris := time.FixedZone("CET", 3600)
	for _, tc := range []struct {
		name string
		d    engine.Decision
		ev   time.Time
		now  time.Time
	}{
		{"plain", engine.Decision{ID: "tx_1", Decision: "allow", Ruleset: "starter@5d31bd2b76a8", LatencyUS: 41}, at, at.Add(time.Millisecond)},
		{"nil reasons", engine.Decision{ID: "tx_1", Decision: "allow", Reasons: nil}, at, at},
		{"empty reasons", engine.Decision{ID: "tx_1", Decision: "allow", Reasons: []engine.Reason{}}, at, at},
		{"reasons", engine.Decision{ID: "tx_1001", Decision: "step_up", Score: 40, Ruleset: "r",
			Reasons: []engine.Reason{{Rule: "large_amount", Code: "LARGE_AMOUNT"}, {Rule: "b", Code: "B", Message: "amount > 1000"}}}, at, at},
		{"replayed", engine.Decision{ID: "tx_1", Decision: "deny", Score: -3, Replayed: true, LatencyUS: -1}, at, at},
		{"escapes", engine.Decision{ID: "a\"b\\c\n\td<e>&f\u2028g\x7fh\xffi", Decision: "ü", Ruleset: "\x01"}, at, at},
		{"zone and whole seconds", engine.Decision{ID: "x"}, time.Date(2026, 1, 2, 3, 4, 5, 0, paris), time.Date(2026, 1, 2, 3, 4, 5, 1, paris)},
		{"zero times", engine.Decision{ID: "x"}, time.Time{}, time.Time{}},
		{"year out of range", engine.Decision{ID: "x"}, time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), at},
		{"explain", engine.Decision{ID: "x", Explain: &engine.Explain{Features: map[string]any{"a": 1}}}, at, at},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := &event.Event{Time: tc.ev}
			got, gerr := encodeDecision(&tc.d, ev, tc.now)
			want, werr := json.Marshal(&DecisionRecord{Decision: tc.d, EventTime: tc.ev.UTC(), DecidedAt: tc.now.UTC()})
			if (gerr == nil) != (werr == nil) {
				t.Fatalf("error %v, json.Marshal %v", gerr, werr)
			}
			if string(got) != string(want) {
				t.Errorf("encodeDecision:\n%s\njson.Marshal:\n%s", got, want)
			}
			// appended after other records (the worker's batch buffer),
			// into a buffer too small for it: the prefix is kept.
			prefix := []byte(`{"earlier":1}k`)
			got, gerr = appendDecision(prefix[:len(prefix):len(prefix)], &tc.d, ev, tc.now)
			if (gerr == nil) != (werr == nil) || string(got) != string(prefix)+string(want) {
				t.Errorf("appendDecision after %q:\n%s (error %v)", prefix, got, gerr)
			}
		})
	}
}

// TestAppendJSONStringEveryByte: each byte value inside a string is
// quoted as encoding/json quotes it.
func TestAppendJSONStringEveryByte(t *testing.T) {
	for c := range 256 {
		s := "a" + string([]byte{byte(c)}) + "b"
		want, _ := json.Marshal(s)
		if got := appendJSONString(nil, s); string(got) != string(want) {
			t.Errorf("byte %#x: %s, json.Marshal %s", c, got, want)
		}
	}
}

func BenchmarkEncodeDecision(b *testing.B) {
	d := &engine.Decision{ID: "tx_1001", Decision: "step_up", Score: 40, Ruleset: "starter@5d31bd2b76a8", LatencyUS: 41,
		Reasons: []engine.Reason{{Rule: "large_amount", Code: "LARGE_AMOUNT"}}}
	ev := &event.Event{Time: time.Now()}
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := encodeDecision(d, ev, now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncodeDecisionMarshal is the json.Marshal encodeDecision replaces.
func BenchmarkEncodeDecisionMarshal(b *testing.B) {
	d := &engine.Decision{ID: "tx_1001", Decision: "step_up", Score: 40, Ruleset: "starter@5d31bd2b76a8", LatencyUS: 41,
		Reasons: []engine.Reason{{Rule: "large_amount", Code: "LARGE_AMOUNT"}}}
	ev := &event.Event{Time: time.Now()}
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(&DecisionRecord{Decision: *d, EventTime: ev.Time.UTC(), DecidedAt: now.UTC()}); err != nil {
			b.Fatal(err)
		}
	}
}
