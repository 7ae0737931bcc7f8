package stream

import (
	"encoding/json"
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

// encodeDecision encodes a decision record.
func encodeDecision(d *engine.Decision, ev *event.Event, now time.Time) ([]byte, error) {
	return json.Marshal(&DecisionRecord{Decision: *d, EventTime: ev.Time.UTC(), DecidedAt: now.UTC()})
}
