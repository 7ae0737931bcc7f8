package features

import (
	"encoding/json"
	"hash/maphash"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/vigil-fraud/vigil/engine/event"
)

// fieldSpec describes an event field path that definitions may name: as an
// entity key, the field of a distinct count or a novelty set, the value of
// a numeric aggregate, or a `value` feature.
type fieldSpec struct {
	path string
	typ  Type // String or Number: the type of a value feature on it
	// str returns the field as a string ("" when absent). Nil for numbers.
	str func(*evctx) string
	// num returns a numeric field, ok false when absent. Nil for strings.
	num func(*evctx) (float64, bool)
	// geo and fp tell whether the field needs the IP lookup or the
	// derived device fingerprint.
	geo, fp bool
}

// hash returns a keyed 64-bit hash of the field's value, ok false when the
// value is absent. Numbers hash their bits.
func (f *fieldSpec) hash(c *evctx, seed maphash.Seed) (uint64, bool) {
	if f.str != nil {
		if f.path == "device.fingerprint" && c.ev.Device.Fingerprint == "" {
			return c.fingerprintHash(seed)
		}
		s := f.str(c)
		if s == "" {
			return 0, false
		}
		return maphash.String(seed, s), true
	}
	x, ok := f.num(c)
	if !ok {
		return 0, false
	}
	return mix64(math.Float64bits(x) ^ maphash.String(seed, "#")), true
}

// mix64 is the SplitMix64 finalizer.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// Virtual and derived string fields, on top of event.StringFieldPaths.
var derivedFields = map[string]fieldSpec{
	"device.fingerprint": {typ: String, fp: true, str: func(c *evctx) string { return c.fingerprint() }},
	"ip.country":         {typ: String, geo: true, str: func(c *evctx) string { return c.geoInfo().country }},
	"geo.country": {typ: String, geo: true, str: func(c *evctx) string {
		if g := c.geoInfo(); g.country != "" {
			return g.country
		}
		return c.ev.Billing.Country
	}},
	"ip.asn": {typ: Number, geo: true, num: func(c *evctx) (float64, bool) {
		g := c.geoInfo()
		return float64(g.asn), g.asn != 0
	}},
	"amount": {typ: Number, num: func(c *evctx) (float64, bool) {
		return event.MajorUnits(c.ev.Amount, c.ev.Currency), true
	}},
}

// lookupField resolves a field path: an event string field (event.StringField),
// a derived field (device.fingerprint, ip.country, ip.asn, geo.country,
// amount) or attributes.NAME.
func lookupField(path string) (fieldSpec, bool) {
	if f, ok := derivedFields[path]; ok {
		f.path = path
		return f, true
	}
	if name, ok := strings.CutPrefix(path, "attributes."); ok && name != "" {
		return fieldSpec{path: path, typ: String,
			str: func(c *evctx) string { return attrString(c.ev.Attributes[name]) },
			num: func(c *evctx) (float64, bool) { return attrNumber(c.ev.Attributes[name]) }}, true
	}
	if get, ok := event.StringField(path); ok {
		return fieldSpec{path: path, typ: String, str: func(c *evctx) string { return get(c.ev) }}, true
	}
	return fieldSpec{}, false
}

// fieldPaths lists the accepted field paths for error messages.
func fieldPaths() string {
	seen := map[string]bool{}
	for _, p := range event.StringFieldPaths() {
		seen[p] = true
	}
	for p := range derivedFields {
		seen[p] = true
	}
	out := make([]string, 0, len(seen)+1)
	for p := range seen {
		out = append(out, p)
	}
	sort.Strings(out)
	return strings.Join(append(out, "attributes.NAME"), ", ")
}

// locationSource returns an event's position for a location name: ip (the
// IP's geolocation), billing or shipping (the event's coordinates).
func locationSource(name string) (func(*evctx) (lat, lon float64, ok bool), bool) {
	switch name {
	case "ip":
		return func(c *evctx) (float64, float64, bool) {
			g := c.geoInfo()
			return g.lat, g.lon, g.located
		}, true
	case "billing":
		return func(c *evctx) (float64, float64, bool) { return coords(&c.ev.Billing) }, true
	case "shipping":
		return func(c *evctx) (float64, float64, bool) { return coords(&c.ev.Shipping) }, true
	}
	return nil, false
}

func coords(l *event.Location) (float64, float64, bool) {
	if !l.HasCoordinates() {
		return 0, 0, false
	}
	return *l.Lat, *l.Lon, true
}

// attrString is an attribute as a string, for keys, distinct values,
// value features and mismatches: strings as they are, booleans as
// true/false, numbers by value — 1, 1.0 and 1e0 are "1" (a JSON integer
// as written, so that ids beyond 2^53 stay apart; other numbers in their
// shortest form); "" when absent or null. A string and a number of the
// same text are one value ("1" and 1).
func attrString(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case json.Number:
		if isIntLiteral(string(v)) {
			if v == "-0" {
				return "0"
			}
			return string(v)
		}
		x, err := strconv.ParseFloat(string(v), 64)
		if err != nil {
			return string(v)
		}
		return numberString(x)
	case float64:
		return numberString(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case int:
		return strconv.Itoa(v)
	case bool:
		if v {
			return "true"
		}
		return "false"
	}
	return ""
}

// isIntLiteral reports a JSON number written without fraction or exponent.
func isIntLiteral(s string) bool {
	s = strings.TrimPrefix(s, "-")
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// numberString is x's text as attrString gives it: whole numbers below
// 2^53 as integers, others in the shortest form that reads back as x.
func numberString(x float64) string {
	if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
		return strconv.FormatInt(int64(x), 10)
	}
	return strconv.FormatFloat(x, 'g', -1, 64)
}

// attrNumber is a numeric attribute (a boolean is 0 or 1).
func attrNumber(v any) (float64, bool) {
	switch v := v.(type) {
	case json.Number:
		x, err := strconv.ParseFloat(string(v), 64)
		return x, err == nil && !math.IsInf(x, 0)
	case float64:
		return v, !math.IsNaN(v) && !math.IsInf(v, 0)
	case int64:
		return float64(v), true
	case int:
		return float64(v), true
	case bool:
		if v {
			return 1, true
		}
		return 0, true
	}
	return 0, false
}
