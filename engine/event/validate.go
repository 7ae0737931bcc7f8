package event

import (
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Limits on event values.
const (
	MaxIDLen          = 128
	MaxStringLen      = 512
	MaxAttributes     = 64
	MaxAmount         = 1_000_000_000_000_000 // minor units
	MaxFutureSkew     = 5 * time.Minute       // how far ahead of the receiver's clock an event time may be: within the features' default lateness, so that one skewed event cannot make the next ones of its entity too late
	minEmailHashChars = 16
)

// Validate checks and normalizes an event: it upper-cases country and
// currency codes, fills Time with now when the event has none, and reports
// every problem at once. When now is the zero time (offline replay) the time
// is required and not compared with a clock. A decoded event has no time
// when its JSON had none (or null): an explicit zero time is too old, like
// any time before 2000. A decoded event without an amount (or with null) is
// refused; an explicit 0 is valid.
func (e *Event) Validate(now time.Time) error {
	var errs Error
	e.normalize()
	// Raw card numbers first: a field holding one gets only that reason.
	long := e.scanStrings(&errs)
	if errs.PAN {
		return errs.escape()
	}
	switch {
	case e.ID == "":
		errs.add("id", "required")
	case len(e.ID) > MaxIDLen:
		errs.add("id", fmt.Sprintf("longer than %d bytes", MaxIDLen))
	case !printableNoSpace(e.ID):
		errs.add("id", "must be printable ASCII without spaces")
	}
	switch {
	case e.timeAbsent() && now.IsZero():
		errs.add("time", "required")
	case e.timeAbsent():
		e.Time, e.timeDefaulted = now.UTC(), true
	case !now.IsZero() && e.Time.After(now.Add(MaxFutureSkew)):
		errs.add("time", fmt.Sprintf("more than %s in the future", MaxFutureSkew))
	case e.Time.Year() < 2000:
		errs.add("time", "before the year 2000")
	}
	if e.Amount >= 1e12 && IsPAN(strconv.AppendInt(nil, e.Amount, 10)) {
		errs.PAN = true
		errs.add("amount", panReason)
		return errs.escape()
	}
	switch {
	case e.amountMissing: // 0 is a valid amount: only its absence tells
		errs.add("amount", "required (an integer in the currency's minor unit)")
	case e.Amount < 0:
		errs.add("amount", "must not be negative")
	case e.Amount > MaxAmount:
		errs.add("amount", "too large")
	}
	if e.Currency == "" {
		errs.add("currency", "required (ISO 4217 code such as USD)")
	} else if _, ok := CurrencyExponent(e.Currency); !ok || !upperAlpha(e.Currency) {
		errs.add("currency", "not an ISO 4217 currency code")
	}
	if e.Channel != "" && !slices.Contains(Channels, e.Channel) {
		errs.add("channel", "must be one of "+strings.Join(Channels, ", "))
	}
	if e.Card.Token == "" && e.Account.ID == "" {
		errs.add("card.token", "card.token or account.id is required")
	}
	if b := e.Card.BIN; b != "" && (!allDigits(b) || (len(b) != 6 && len(b) != 8)) {
		errs.add("card.bin", "must be 6 or 8 digits")
	}
	checkCountry(&errs, "card.country", e.Card.Country)
	checkCountry(&errs, "merchant.country", e.Merchant.Country)
	checkCountry(&errs, "billing.country", e.Billing.Country)
	checkCountry(&errs, "shipping.country", e.Shipping.Country)
	if h := e.Account.EmailHash; h != "" {
		if strings.Contains(h, "@") {
			errs.add("account.email_hash", "looks like a raw e-mail address; send a keyed hash of it instead")
		} else if len(h) < minEmailHashChars {
			errs.add("account.email_hash", fmt.Sprintf("too short for a hash (at least %d characters)", minEmailHashChars))
		}
	}
	if !e.Account.Created.IsZero() && !e.Time.IsZero() && e.Account.Created.After(e.Time) {
		errs.add("account.created", "after the event time")
	}
	if m := e.Merchant.MCC; m != "" && (len(m) != 4 || !allDigits(m)) {
		errs.add("merchant.mcc", "must be 4 digits")
	}
	if ip := e.Device.IP; ip != "" {
		if _, err := netip.ParseAddr(ip); err != nil {
			errs.add("device.ip", "not an IPv4 or IPv6 address")
		}
	}
	checkLocation(&errs, "billing", &e.Billing)
	checkLocation(&errs, "shipping", &e.Shipping)
	slices.Sort(long)
	for _, p := range long {
		errs.add(p, fmt.Sprintf("longer than %d bytes", MaxStringLen))
	}
	if len(e.Attributes) > MaxAttributes {
		errs.add("attributes", fmt.Sprintf("more than %d attributes", MaxAttributes))
	}
	for _, k := range sortedKeys(e.Attributes) {
		switch v := e.Attributes[k].(type) {
		case nil, bool:
		case json.Number:
			if _, err := strconv.ParseFloat(string(v), 64); err != nil { // 1e999: no rule or feature could read it
				errs.add("attributes."+safeKey(k), "number out of range (beyond ±1.8e308)")
			}
		case string:
			if len(v) > MaxStringLen {
				errs.add("attributes."+k, fmt.Sprintf("longer than %d bytes", MaxStringLen))
			}
		default:
			errs.add("attributes."+k, "must be a string, number, boolean or null")
		}
	}
	if len(errs.Fields) > 0 {
		return errs.escape()
	}
	return nil
}

func (e *Event) normalize() {
	up := func(s *string) {
		if *s != "" && !upperAlpha(*s) {
			*s = strings.ToUpper(*s)
		}
	}
	up(&e.Currency)
	up(&e.Card.Country)
	up(&e.Merchant.Country)
	up(&e.Billing.Country)
	up(&e.Shipping.Country)
	if !e.Time.IsZero() {
		e.Time = e.Time.UTC()
	}
}

// strings calls f with the path and value of every string in the event,
// attribute keys and numbers included.
func (e *Event) strings(f func(path, v string)) {
	for _, sf := range stringFieldList {
		if v := sf.get(e); v != "" {
			f(sf.path, v)
		}
	}
	f("device.language", e.Device.Language)
	f("device.timezone", e.Device.Timezone)
	f("device.screen", e.Device.Screen)
	f("device.platform", e.Device.Platform)
	for k, v := range e.Attributes {
		path := "attributes." + safeKey(k)
		f(path, k)
		attributeStrings(path, v, f)
	}
}

// attributeStrings calls f with the strings and numbers of an attribute
// value, and of the keys and values inside it when it is an object or an
// array (refused, but scanned for card numbers like the rest).
func attributeStrings(path string, v any, f func(path, v string)) {
	switch v := v.(type) {
	case string:
		f(path, v)
	case json.Number:
		f(path, string(v))
		// a whole number written with a fraction or an exponent
		// (4.111111111111111e15) is scanned as the digits it stands for:
		// features key and show numbers by value
		if x, err := strconv.ParseFloat(string(v), 64); err == nil && x == math.Trunc(x) && math.Abs(x) >= 1e11 && math.Abs(x) < 1e20 {
			if s := strconv.FormatFloat(math.Abs(x), 'f', 0, 64); s != strings.TrimPrefix(string(v), "-") {
				f(path, s)
			}
		}
	case map[string]any:
		for k, x := range v {
			p := path + "." + safeKey(k)
			f(p, k)
			attributeStrings(p, x, f)
		}
	case []any:
		for i, x := range v {
			attributeStrings(path+"["+strconv.Itoa(i)+"]", x, f)
		}
	}
}

// stringFieldList is stringFields without the "ip" alias, as a slice:
// iterating a map costs more than scanning the strings.
var stringFieldList = func() []stringField {
	var l []stringField
	for _, path := range StringFieldPaths() {
		if path != "ip" {
			l = append(l, stringField{path, stringFields[path]})
		}
	}
	return l
}()

type stringField struct {
	path string
	get  func(*Event) string
}

// scanStrings reads every string of the event once: a raw card number
// in any of them is an error (errs.PAN), and it returns the paths of the
// fields (not attributes, checked on their own) longer than MaxStringLen.
func (e *Event) scanStrings(errs *Error) (long []string) {
	e.strings(func(path, v string) {
		if ContainsPAN(v) && !slices.ContainsFunc(errs.Fields, func(f FieldError) bool { return f.Path == path }) {
			errs.PAN = true
			errs.add(path, panReason)
		}
		if len(v) > MaxStringLen && !strings.HasPrefix(path, "attributes.") {
			long = append(long, path)
		}
	})
	slices.SortFunc(errs.Fields, func(a, b FieldError) int { return strings.Compare(a.Path, b.Path) })
	return long
}

func checkCountry(errs *Error, path, c string) {
	if c != "" && (len(c) != 2 || !upperAlpha(c)) {
		errs.add(path, "must be an ISO 3166-1 alpha-2 country code such as US")
	}
}

func checkLocation(errs *Error, path string, l *Location) {
	if (l.Lat == nil) != (l.Lon == nil) {
		errs.add(path, "lat and lon must be given together")
		return
	}
	if l.Lat != nil && (*l.Lat < -90 || *l.Lat > 90) {
		errs.add(path+".lat", "must be between -90 and 90")
	}
	if l.Lon != nil && (*l.Lon < -180 || *l.Lon > 180) {
		errs.add(path+".lon", "must be between -180 and 180")
	}
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return s != ""
}

func upperAlpha(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
}

func printableNoSpace(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}
