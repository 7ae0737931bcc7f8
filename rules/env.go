// Package rules loads analyst rule files, compiles their expressions
// against a typed environment once, and evaluates them into decisions.
package rules

import (
	"time"

	"github.com/vigil-fraud/vigil/engine/event"
	"github.com/vigil-fraud/vigil/features"
)

// Env is what a rule's `when` expression sees: the event's fields under
// their JSON names (card.country, merchant.mcc, ...), amount in major units,
// and every declared feature by name. Feature names are rewritten at compile
// time into indexes of the typed slices below, so evaluation never looks a
// name up in a map. An Env belongs to one goroutine at a time.
type Env struct {
	ID          string            `expr:"id"`
	Time        time.Time         `expr:"time"`
	Amount      float64           `expr:"amount"`
	AmountMinor int64             `expr:"amount_minor"`
	Currency    string            `expr:"currency"`
	Channel     string            `expr:"channel"`
	Card        event.Card        `expr:"card"`
	Account     event.Account     `expr:"account"`
	Merchant    event.Merchant    `expr:"merchant"`
	Device      event.Device      `expr:"device"`
	Billing     event.Location    `expr:"billing"`
	Shipping    event.Location    `expr:"shipping"`
	Attributes  map[string]any    `expr:"attributes"`
	Num         []float64         `expr:"__num"`
	Bool        []bool            `expr:"__bool"`
	Str         []string          `expr:"__str"`
	Has         []bool            `expr:"__has"`
	Lists       []map[string]bool `expr:"__lists"`
}

// Set fills the environment from an event and its feature vector. It copies
// the event's values, so the event may be reused afterwards.
func (e *Env) Set(ev *event.Event, v *features.Vector) {
	e.ID = ev.ID
	e.Time = ev.Time
	e.Amount = event.MajorUnits(ev.Amount, ev.Currency)
	e.AmountMinor = ev.Amount
	e.Currency = ev.Currency
	e.Channel = ev.Channel
	e.Card = ev.Card
	e.Account = ev.Account
	e.Merchant = ev.Merchant
	e.Device = ev.Device
	e.Billing = ev.Billing
	e.Shipping = ev.Shipping
	e.Attributes = ev.Attributes
	e.Num, e.Bool, e.Str, e.Has = v.Num, v.Bool, v.Str, v.Has
}
