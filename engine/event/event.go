// Package event defines vigil's transaction event (schema v1), its strict
// decoder and its validation, including the refusal of raw card numbers.
package event

import (
	"time"
)

// SchemaVersion is the version of the event schema this package decodes.
const SchemaVersion = "v1"

// Event is one transaction to score. Amounts are integers in the currency's
// minor unit (1099 with USD is 10.99). Every identifier is a token or a keyed
// hash chosen by the integrator: raw card numbers and raw e-mail addresses are
// refused by Validate.
type Event struct {
	ID         string         `json:"id" expr:"id"`
	Time       time.Time      `json:"time" expr:"time"`
	Amount     int64          `json:"amount" expr:"amount_minor"`
	Currency   string         `json:"currency" expr:"currency"`
	Channel    string         `json:"channel,omitempty" expr:"channel"`
	Card       Card           `json:"card" expr:"card"`
	Account    Account        `json:"account" expr:"account"`
	Merchant   Merchant       `json:"merchant" expr:"merchant"`
	Device     Device         `json:"device" expr:"device"`
	Billing    Location       `json:"billing" expr:"billing"`
	Shipping   Location       `json:"shipping" expr:"shipping"`
	Attributes map[string]any `json:"attributes,omitempty" expr:"attributes"`

	// What the JSON held where a Go zero value cannot tell, set by the
	// decoders. An event built in Go has its amount, and a zero Time is
	// no time.
	timeSent      bool // a time (not null), the zero time included
	amountMissing bool // no amount, or null

	timeDefaulted bool
}

// TimeDefaulted reports whether the event came without a time and Validate
// gave it the receiver's clock.
func (e *Event) TimeDefaulted() bool { return e.timeDefaulted }

// timeAbsent reports whether the event has no time: none was sent (an
// explicit time, even the zero time, is checked like any other).
func (e *Event) timeAbsent() bool { return e.Time.IsZero() && !e.timeSent }

// Card identifies the payment card by token, never by number.
type Card struct {
	Token   string `json:"token" expr:"token"`
	BIN     string `json:"bin,omitempty" expr:"bin"`
	Country string `json:"country,omitempty" expr:"country"`
}

// Account is the customer account paying.
type Account struct {
	ID        string    `json:"id,omitempty" expr:"id"`
	Created   time.Time `json:"created,omitzero" expr:"created"`
	EmailHash string    `json:"email_hash,omitempty" expr:"email_hash"`
}

// Merchant is the merchant or terminal receiving the payment.
type Merchant struct {
	ID      string `json:"id,omitempty" expr:"id"`
	MCC     string `json:"mcc,omitempty" expr:"mcc"`
	Country string `json:"country,omitempty" expr:"country"`
}

// Device describes the device the payment comes from. Fingerprint is the
// integrator's own device fingerprint; when it is empty vigil derives one from
// the normalized attributes (see the features package).
type Device struct {
	ID          string `json:"id,omitempty" expr:"id"`
	Fingerprint string `json:"fingerprint,omitempty" expr:"fingerprint"`
	UserAgent   string `json:"user_agent,omitempty" expr:"user_agent"`
	IP          string `json:"ip,omitempty" expr:"ip"`
	Language    string `json:"language,omitempty" expr:"language"`
	Timezone    string `json:"timezone,omitempty" expr:"timezone"`
	Screen      string `json:"screen,omitempty" expr:"screen"`
	Platform    string `json:"platform,omitempty" expr:"platform"`
}

// Location is a billing or shipping place. Lat and Lon are optional and
// travel together.
type Location struct {
	Country string   `json:"country,omitempty" expr:"country"`
	Lat     *float64 `json:"lat,omitempty" expr:"-"`
	Lon     *float64 `json:"lon,omitempty" expr:"-"`
}

// HasCoordinates reports whether the location carries latitude and longitude.
func (l *Location) HasCoordinates() bool { return l.Lat != nil && l.Lon != nil }

// Channels lists the accepted values of Event.Channel.
var Channels = []string{"ecommerce", "pos", "atm", "moto", "recurring"}

// Value returns the string value of a dotted field path such as "card.token"
// or "device.ip" ("ip" is accepted as an alias of "device.ip"). ok is false
// for an unknown path. Feature definitions use it to name entity keys.
func (e *Event) Value(path string) (v string, ok bool) {
	f, ok := StringField(path)
	if !ok {
		return "", false
	}
	return f(e), true
}

// StringField returns an accessor for a dotted string field path, so that
// callers resolve a path once and read it without a lookup per event.
func StringField(path string) (func(*Event) string, bool) {
	f, ok := stringFields[path]
	return f, ok
}

// StringFieldPaths lists the paths StringField accepts, sorted.
func StringFieldPaths() []string { return sortedKeys(stringFields) }

var stringFields = map[string]func(*Event) string{
	"id":                 func(e *Event) string { return e.ID },
	"currency":           func(e *Event) string { return e.Currency },
	"channel":            func(e *Event) string { return e.Channel },
	"card.token":         func(e *Event) string { return e.Card.Token },
	"card.bin":           func(e *Event) string { return e.Card.BIN },
	"card.country":       func(e *Event) string { return e.Card.Country },
	"account.id":         func(e *Event) string { return e.Account.ID },
	"account.email_hash": func(e *Event) string { return e.Account.EmailHash },
	"merchant.id":        func(e *Event) string { return e.Merchant.ID },
	"merchant.mcc":       func(e *Event) string { return e.Merchant.MCC },
	"merchant.country":   func(e *Event) string { return e.Merchant.Country },
	"device.id":          func(e *Event) string { return e.Device.ID },
	"device.fingerprint": func(e *Event) string { return e.Device.Fingerprint },
	"device.user_agent":  func(e *Event) string { return e.Device.UserAgent },
	"device.ip":          func(e *Event) string { return e.Device.IP },
	"ip":                 func(e *Event) string { return e.Device.IP },
	"billing.country":    func(e *Event) string { return e.Billing.Country },
	"shipping.country":   func(e *Event) string { return e.Shipping.Country },
}
