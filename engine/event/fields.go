package event

import (
	"encoding/json"
	"strconv"
	"time"
)

// Fields is the event as expressions see it — rule `when` conditions and
// feature filters alike: its fields under their JSON names, the amount in
// major units (`amount`) and in minor units (`amount_minor`), and the
// attributes with numbers as float64. One definition, so that rules and
// filters can never disagree on a name. A Fields belongs to one goroutine
// at a time.
type Fields struct {
	ID          string         `expr:"id"`
	Time        time.Time      `expr:"time"`
	Amount      float64        `expr:"amount"`
	AmountMinor int64          `expr:"amount_minor"`
	Currency    string         `expr:"currency"`
	Channel     string         `expr:"channel"`
	Card        Card           `expr:"card"`
	Account     Account        `expr:"account"`
	Merchant    Merchant       `expr:"merchant"`
	Device      Device         `expr:"device"`
	Billing     Location       `expr:"billing"`
	Shipping    Location       `expr:"shipping"`
	Attributes  map[string]any `expr:"attributes"`

	rawAttrs map[string]any // the event's attributes, numbers as json.Number
	attrs    map[string]any // reused for Attributes with numbers as float64
}

// Set copies an event's values; the event may be reused afterwards. The
// attributes keep their JSON numbers until PrepareAttributes.
func (f *Fields) Set(ev *Event) {
	f.ID = ev.ID
	f.Time = ev.Time
	f.Amount = MajorUnits(ev.Amount, ev.Currency)
	f.AmountMinor = ev.Amount
	f.Currency = ev.Currency
	f.Channel = ev.Channel
	f.Card = ev.Card
	f.Account = ev.Account
	f.Merchant = ev.Merchant
	f.Device = ev.Device
	f.Billing = ev.Billing
	f.Shipping = ev.Shipping
	f.Attributes, f.rawAttrs = ev.Attributes, ev.Attributes
}

// PrepareAttributes converts the attributes' JSON numbers to float64, so
// that attributes.x > 3 compares numbers. It costs nothing for events
// without numeric attributes; call it only when an expression reads them.
func (f *Fields) PrepareAttributes() {
	raw := f.rawAttrs
	if raw == nil {
		return
	}
	f.rawAttrs = nil
	numbers := false
	for _, v := range raw {
		if _, ok := v.(json.Number); ok {
			numbers = true
			break
		}
	}
	if !numbers {
		return
	}
	if f.attrs == nil {
		f.attrs = make(map[string]any, len(raw))
	}
	clear(f.attrs)
	for k, v := range raw {
		if n, ok := v.(json.Number); ok {
			if x, err := strconv.ParseFloat(string(n), 64); err == nil {
				v = x
			}
		}
		f.attrs[k] = v
	}
	f.Attributes = f.attrs
}

// Reset drops the references to the last event (keeping the buffers).
func (f *Fields) Reset() {
	attrs := f.attrs
	clear(attrs)
	*f = Fields{attrs: attrs}
}
