package stream

import (
	"encoding/json"
	"reflect"
	"strconv"
	"time"

	"github.com/vigil-fraud/vigil/engine"
	"github.com/vigil-fraud/vigil/engine/event"
)

// DecisionRecord is the value of a message on the decisions topic: the
// API's decision (id, decision, score, reasons, ruleset, latency_us,
// replayed) plus the event's time and when it was decided.
type DecisionRecord struct {
	engine.Decision
	// EventTime is the event's own time (its "time", or the message
	// timestamp when it had none).
	EventTime time.Time `json:"event_time"`
	// DecidedAt is when this record was made.
	DecidedAt time.Time `json:"decided_at"`
}

// PrimaryKey is the key of an event's decision record: its card token, or
// its account id when it has no card token. Records of one card stay in
// order on one partition.
func PrimaryKey(ev *event.Event) string {
	if ev.Card.Token != "" {
		return ev.Card.Token
	}
	return ev.Account.ID
}

// encodeDecision encodes a decision record, byte for byte as json.Marshal
// of a DecisionRecord does (TestEncodeDecisionMatchesMarshal), without
// reflection.
func encodeDecision(d *engine.Decision, ev *event.Event, now time.Time) ([]byte, error) {
	return appendDecision(make([]byte, 0, decisionSize(d)), d, ev, now)
}

// decisionSize is about the encoded size of d's record.
func decisionSize(d *engine.Decision) int {
	n := 256 + len(d.ID) + len(d.Ruleset) // the fixed part is about 210 bytes
	for _, r := range d.Reasons {
		n += 32 + len(r.Rule) + len(r.Code) + len(r.Message)
	}
	return n
}

// appendDecision appends d's record to b (see encodeDecision).
func appendDecision(b []byte, d *engine.Decision, ev *event.Event, now time.Time) ([]byte, error) {
	evTime, decided := ev.Time.UTC(), now.UTC()
	if !fastDecisionLayout || d.Explain != nil || !jsonYear(evTime) || !jsonYear(decided) {
		q, err := json.Marshal(&DecisionRecord{Decision: *d, EventTime: evTime, DecidedAt: decided})
		return append(b, q...), err
	}
	b = append(b, `{"id":`...)
	b = appendJSONString(b, d.ID)
	b = append(b, `,"decision":`...)
	b = appendJSONString(b, string(d.Decision))
	b = append(b, `,"score":`...)
	b = strconv.AppendInt(b, int64(d.Score), 10)
	b = append(b, `,"reasons":`...)
	if d.Reasons == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, r := range d.Reasons {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"rule":`...)
			b = appendJSONString(b, r.Rule)
			b = append(b, `,"code":`...)
			b = appendJSONString(b, r.Code)
			if r.Message != "" {
				b = append(b, `,"message":`...)
				b = appendJSONString(b, r.Message)
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = append(b, `,"ruleset":`...)
	b = appendJSONString(b, d.Ruleset)
	b = append(b, `,"latency_us":`...)
	b = strconv.AppendInt(b, d.LatencyUS, 10)
	if d.Replayed {
		b = append(b, `,"replayed":true`...)
	}
	b = append(b, `,"event_time":"`...)
	b = evTime.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","decided_at":"`...)
	b = decided.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `"}`...)
	return b, nil
}

// jsonYear reports whether time.Time.MarshalJSON accepts t's year.
func jsonYear(t time.Time) bool { y := t.Year(); return y >= 0 && y <= 9999 }

// appendJSONString appends s quoted as encoding/json does: plain
// printable ASCII is copied, anything else (escapes, HTML characters,
// non-ASCII) goes through json.Marshal.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if !jsonPlain[s[i]] {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// jsonPlain marks the bytes encoding/json copies as they are.
var jsonPlain = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// fastDecisionLayout is true when engine.Decision and engine.Reason have
// the fields encodeDecision writes. If they change, encodeDecision falls
// back to json.Marshal (and its test fails, to update it).
var fastDecisionLayout = layoutIs(reflect.TypeOf(engine.Decision{}),
	"ID string json:\"id\"", "Decision rules.Action json:\"decision\"", "Score int json:\"score\"",
	"Reasons []engine.Reason json:\"reasons\"", "Ruleset string json:\"ruleset\"",
	"LatencyUS int64 json:\"latency_us\"", "Replayed bool json:\"replayed,omitempty\"",
	"Explain *engine.Explain json:\"explain,omitempty\"") &&
	layoutIs(reflect.TypeOf(engine.Reason{}),
		"Rule string json:\"rule\"", "Code string json:\"code\"", "Message string json:\"message,omitempty\"") &&
	layoutIs(reflect.TypeOf(DecisionRecord{}),
		"Decision engine.Decision ", "EventTime time.Time json:\"event_time\"", "DecidedAt time.Time json:\"decided_at\"")

// layoutIs reports whether struct type t has exactly the fields described
// as "Name type tag".
func layoutIs(t reflect.Type, fields ...string) bool {
	if t.NumField() != len(fields) {
		return false
	}
	for i, want := range fields {
		f := t.Field(i)
		if f.Name+" "+f.Type.String()+" "+string(f.Tag) != want {
			return false
		}
	}
	return true
}
