// Package rules loads analyst rule files, compiles their expressions once
// against a typed environment, evaluates them into decisions, reloads them
// atomically and tests them. The CLI (vigil rules ...) and the server share
// it; docs/rules.md is the analysts' reference.
package rules

import (
	"time"

	"github.com/vigil-fraud/vigil/engine/event"
	"github.com/vigil-fraud/vigil/features"
	"github.com/vigil-fraud/vigil/rules/presence"
)

// Env is what a rule's `when` expression sees: the event's fields under
// their JSON names (card.country, merchant.mcc, ...), amount in major units,
// and every declared feature by name. Feature names are rewritten at compile
// time into indexes of the typed slices below, so evaluation never looks a
// name up in a map. An Env belongs to one goroutine at a time.
type Env struct {
	event.Fields
	Num        []float64         `expr:"__num"`
	Bool       []bool            `expr:"__bool"`
	Str        []string          `expr:"__str"`
	Has        []bool            `expr:"__has"`
	Lists      []map[string]bool `expr:"__lists"` // for x in @list
	ListValues [][]string        `expr:"__listv"` // for any(@list, ...), len(@list)

}

// Set fills the environment from an event and its feature vector. It copies
// the event's values, so the event may be reused afterwards; the vector's
// slices are shared, so the vector must not change until evaluation ends.
func (e *Env) Set(ev *event.Event, v *features.Vector) {
	e.Fields.Set(ev)
	e.Num, e.Bool, e.Str, e.Has = v.Num, v.Bool, v.Str, v.Has
}

// fieldKind is the type of an event field as rules see it.
type fieldKind uint8

const (
	kindString fieldKind = iota
	kindFloat            // float64
	kindInt              // int64, int in expressions
	kindTime
)

// eventField is an event field rules can read, with a typed accessor used
// by compiled predicates (no reflection at run time).
type eventField struct {
	Path string
	kind fieldKind
	str  func(*Env) string
	num  func(*Env) float64
	tm   func(*Env) time.Time
}

// present reports whether the field has a value: strings are missing when
// empty, times when zero; numbers are always present.
func (f *eventField) present(e *Env) bool {
	switch f.kind {
	case kindString:
		return f.str(e) != ""
	case kindTime:
		return !f.tm(e).IsZero()
	}
	return true
}

// presenceKind is the field's kind for its presence test.
func (f *eventField) presenceKind() presence.Kind {
	switch f.kind {
	case kindString:
		return presence.String
	case kindTime:
		return presence.Time
	}
	return presence.Number
}

// value returns the field's value for explain output (nil when missing).
func (f *eventField) value(e *Env) any {
	if !f.present(e) {
		return nil
	}
	switch f.kind {
	case kindString:
		return f.str(e)
	case kindTime:
		return f.tm(e)
	}
	return f.num(e)
}

func strField(path string, get func(*Env) string) eventField {
	return eventField{Path: path, kind: kindString, str: get}
}

// eventFields lists every event field of Env except attributes; a test
// checks it against Env's expr tags.
var eventFields = []eventField{
	strField("id", func(e *Env) string { return e.ID }),
	{Path: "time", kind: kindTime, tm: func(e *Env) time.Time { return e.Time }},
	{Path: "amount", kind: kindFloat, num: func(e *Env) float64 { return e.Amount }},
	{Path: "amount_minor", kind: kindInt, num: func(e *Env) float64 { return float64(e.AmountMinor) }},
	strField("currency", func(e *Env) string { return e.Currency }),
	strField("channel", func(e *Env) string { return e.Channel }),
	strField("card.token", func(e *Env) string { return e.Card.Token }),
	strField("card.bin", func(e *Env) string { return e.Card.BIN }),
	strField("card.country", func(e *Env) string { return e.Card.Country }),
	strField("account.id", func(e *Env) string { return e.Account.ID }),
	{Path: "account.created", kind: kindTime, tm: func(e *Env) time.Time { return e.Account.Created }},
	strField("account.email_hash", func(e *Env) string { return e.Account.EmailHash }),
	strField("merchant.id", func(e *Env) string { return e.Merchant.ID }),
	strField("merchant.mcc", func(e *Env) string { return e.Merchant.MCC }),
	strField("merchant.country", func(e *Env) string { return e.Merchant.Country }),
	strField("device.id", func(e *Env) string { return e.Device.ID }),
	strField("device.fingerprint", func(e *Env) string { return e.Device.Fingerprint }),
	strField("device.user_agent", func(e *Env) string { return e.Device.UserAgent }),
	strField("device.ip", func(e *Env) string { return e.Device.IP }),
	strField("device.language", func(e *Env) string { return e.Device.Language }),
	strField("device.timezone", func(e *Env) string { return e.Device.Timezone }),
	strField("device.screen", func(e *Env) string { return e.Device.Screen }),
	strField("device.platform", func(e *Env) string { return e.Device.Platform }),
	strField("billing.country", func(e *Env) string { return e.Billing.Country }),
	strField("shipping.country", func(e *Env) string { return e.Shipping.Country }),
}

var eventFieldIndex = func() map[string]*eventField {
	m := make(map[string]*eventField, len(eventFields))
	for i := range eventFields {
		m[eventFields[i].Path] = &eventFields[i]
	}
	return m
}()

// envRoots are Env's top-level names (id, card, attributes, __num, ...).
var envRoots = map[string]bool{
	"id": true, "time": true, "amount": true, "amount_minor": true, "currency": true, "channel": true,
	"card": true, "account": true, "merchant": true, "device": true, "billing": true, "shipping": true,
	"attributes": true, "__num": true, "__bool": true, "__str": true, "__has": true, "__lists": true, "__listv": true,
}

// FieldPaths lists the event fields rules can read (attributes.NAME aside).
func FieldPaths() []string {
	out := make([]string, len(eventFields))
	for i, f := range eventFields {
		out[i] = f.Path
	}
	return out
}
