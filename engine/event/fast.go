package event

import (
	"encoding/json"
	"strconv"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// decodeFast decodes the common shape of an event without reflection: one
// JSON object of known fields with values of the right types, strings
// without escapes, no duplicate keys (outside attributes), nothing but
// whitespace after it. For anything else it returns ok false and Decode
// falls back to the reference decoder (encoding/json), which then
// produces the event or the error. When ok is true the event is exactly
// what the reference decoder would have produced (FuzzDecodeFast checks
// it), before validation.
func decodeFast(data []byte) (ev *Event, ok bool) {
	p := parser{data: data}
	p.ws()
	if !p.consume('{') {
		return nil, false
	}
	ev = new(Event)
	var seen uint32
	if !p.object(func(key []byte) bool {
		bit, ok := topBits[string(key)]
		if !ok || seen&bit != 0 {
			return false
		}
		seen |= bit
		switch string(key) {
		case "id":
			return p.str(&ev.ID, false)
		case "time":
			return p.time(&ev.Time)
		case "amount":
			return p.int64(&ev.Amount)
		case "currency":
			return p.str(&ev.Currency, true)
		case "channel":
			return p.str(&ev.Channel, true)
		case "card":
			return p.card(&ev.Card)
		case "account":
			return p.account(&ev.Account)
		case "merchant":
			return p.merchant(&ev.Merchant)
		case "device":
			return p.device(&ev.Device)
		case "billing":
			return p.location(&ev.Billing)
		case "shipping":
			return p.location(&ev.Shipping)
		case "attributes":
			return p.attributes(&ev.Attributes)
		}
		return false
	}) {
		return nil, false
	}
	p.ws()
	if p.i != len(p.data) {
		return nil, false
	}
	return ev, true
}

// topBits gives each top-level field a bit, to refuse duplicates (which
// encoding/json merges: the reference decoder handles them).
var topBits = map[string]uint32{
	"id": 1 << 0, "time": 1 << 1, "amount": 1 << 2, "currency": 1 << 3, "channel": 1 << 4,
	"card": 1 << 5, "account": 1 << 6, "merchant": 1 << 7, "device": 1 << 8,
	"billing": 1 << 9, "shipping": 1 << 10, "attributes": 1 << 11,
}

// parser is a cursor over the raw event.
type parser struct {
	data []byte
	i    int
}

func (p *parser) ws() {
	for p.i < len(p.data) {
		switch p.data[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// consume skips whitespace and then c, reporting whether c was there.
func (p *parser) consume(c byte) bool {
	p.ws()
	if p.i < len(p.data) && p.data[p.i] == c {
		p.i++
		return true
	}
	return false
}

// object parses the members of an object whose '{' was consumed, calling
// field with each key (the cursor then at the value, which field must
// consume). A key is valid only until field returns.
func (p *parser) object(field func(key []byte) bool) bool {
	if p.consume('}') {
		return true
	}
	for {
		p.ws()
		key, ok := p.rawString()
		if !ok || !p.consume(':') {
			return false
		}
		p.ws()
		if !field(key) {
			return false
		}
		if p.consume(',') {
			continue
		}
		return p.consume('}')
	}
}

// rawString reads a string without escapes and returns its bytes, which
// are valid UTF-8 (encoding/json would replace invalid sequences).
func (p *parser) rawString() ([]byte, bool) {
	if p.i >= len(p.data) || p.data[p.i] != '"' {
		return nil, false
	}
	start := p.i + 1
	ascii := true
	for j := start; j < len(p.data); j++ {
		c := p.data[j]
		switch {
		case c == '"':
			s := p.data[start:j]
			if !ascii && !utf8.Valid(s) {
				return nil, false
			}
			p.i = j + 1
			return s, true
		case c == '\\' || c < 0x20:
			return nil, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return nil, false
}

// str reads a string value into *dst; intern shares copies of frequent
// short values (codes, channels, device attributes).
func (p *parser) str(dst *string, intern bool) bool {
	b, ok := p.rawString()
	if !ok {
		return false
	}
	if intern {
		*dst = internBytes(b)
	} else {
		*dst = string(b)
	}
	return true
}

// number reads a JSON number literal and reports whether it is an
// integer (no fraction, no exponent).
func (p *parser) number() (lit []byte, integer bool, ok bool) {
	d, start := p.data, p.i
	j := start
	if j < len(d) && d[j] == '-' {
		j++
	}
	switch {
	case j < len(d) && d[j] == '0':
		j++
	case j < len(d) && d[j] >= '1' && d[j] <= '9':
		for j < len(d) && isDigit(d[j]) {
			j++
		}
	default:
		return nil, false, false
	}
	integer = true
	if j < len(d) && d[j] == '.' {
		integer = false
		j++
		k := j
		for j < len(d) && isDigit(d[j]) {
			j++
		}
		if j == k {
			return nil, false, false
		}
	}
	if j < len(d) && (d[j] == 'e' || d[j] == 'E') {
		integer = false
		j++
		if j < len(d) && (d[j] == '+' || d[j] == '-') {
			j++
		}
		k := j
		for j < len(d) && isDigit(d[j]) {
			j++
		}
		if j == k {
			return nil, false, false
		}
	}
	p.i = j
	return d[start:j], integer, true
}

func (p *parser) int64(dst *int64) bool {
	lit, integer, ok := p.number()
	if !ok || !integer {
		return false
	}
	v, err := strconv.ParseInt(string(lit), 10, 64)
	if err != nil {
		return false
	}
	*dst = v
	return true
}

func (p *parser) float(dst **float64) bool {
	lit, _, ok := p.number()
	if !ok {
		return false
	}
	v, err := strconv.ParseFloat(string(lit), 64)
	if err != nil {
		return false
	}
	*dst = &v
	return true
}

// time reads a string through time.Time's own UnmarshalJSON, as
// encoding/json does.
func (p *parser) time(dst *time.Time) bool {
	start := p.i
	if _, ok := p.rawString(); !ok {
		return false
	}
	return dst.UnmarshalJSON(p.data[start:p.i]) == nil
}

// fields parses a nested object whose members are all known, each key at
// most once; set consumes the value of the key with index k in keys.
func (p *parser) fields(keys []string, set func(k int) bool) bool {
	if !p.consume('{') {
		return false
	}
	var seen uint32
	return p.object(func(key []byte) bool {
		for k, name := range keys {
			if string(key) == name {
				if seen&(1<<k) != 0 {
					return false
				}
				seen |= 1 << k
				return set(k)
			}
		}
		return false
	})
}

var cardKeys = []string{"token", "bin", "country"}

func (p *parser) card(c *Card) bool {
	return p.fields(cardKeys, func(k int) bool {
		switch k {
		case 0:
			return p.str(&c.Token, false)
		case 1:
			return p.str(&c.BIN, true)
		default:
			return p.str(&c.Country, true)
		}
	})
}

var accountKeys = []string{"id", "created", "email_hash"}

func (p *parser) account(a *Account) bool {
	return p.fields(accountKeys, func(k int) bool {
		switch k {
		case 0:
			return p.str(&a.ID, false)
		case 1:
			return p.time(&a.Created)
		default:
			return p.str(&a.EmailHash, false)
		}
	})
}

var merchantKeys = []string{"id", "mcc", "country"}

func (p *parser) merchant(m *Merchant) bool {
	return p.fields(merchantKeys, func(k int) bool {
		switch k {
		case 0:
			return p.str(&m.ID, false)
		case 1:
			return p.str(&m.MCC, true)
		default:
			return p.str(&m.Country, true)
		}
	})
}

var deviceKeys = []string{"id", "fingerprint", "user_agent", "ip", "language", "timezone", "screen", "platform"}

func (p *parser) device(d *Device) bool {
	return p.fields(deviceKeys, func(k int) bool {
		switch k {
		case 0:
			return p.str(&d.ID, false)
		case 1:
			return p.str(&d.Fingerprint, false)
		case 2:
			return p.str(&d.UserAgent, true)
		case 3:
			return p.str(&d.IP, false)
		case 4:
			return p.str(&d.Language, true)
		case 5:
			return p.str(&d.Timezone, true)
		case 6:
			return p.str(&d.Screen, true)
		default:
			return p.str(&d.Platform, true)
		}
	})
}

var locationKeys = []string{"country", "lat", "lon"}

func (p *parser) location(l *Location) bool {
	return p.fields(locationKeys, func(k int) bool {
		switch k {
		case 0:
			return p.str(&l.Country, true)
		case 1:
			return p.float(&l.Lat)
		default:
			return p.float(&l.Lon)
		}
	})
}

// attributes reads flat attributes: strings, numbers (as json.Number,
// the decoder uses UseNumber), booleans and nulls. Objects and arrays
// (refused by Validate) are left to the reference decoder.
func (p *parser) attributes(dst *map[string]any) bool {
	if !p.consume('{') {
		return false
	}
	m := make(map[string]any)
	*dst = m
	return p.object(func(key []byte) bool {
		var v any
		d := p.data
		switch {
		case p.i >= len(d):
			return false
		case d[p.i] == '"':
			b, ok := p.rawString()
			if !ok {
				return false
			}
			v = string(b)
		case d[p.i] == 't' && hasPrefixAt(d, p.i, "true"):
			p.i += 4
			v = true
		case d[p.i] == 'f' && hasPrefixAt(d, p.i, "false"):
			p.i += 5
			v = false
		case d[p.i] == 'n' && hasPrefixAt(d, p.i, "null"):
			p.i += 4
		default:
			lit, _, ok := p.number()
			if !ok {
				return false
			}
			v = json.Number(lit)
		}
		m[string(key)] = v
		return true
	})
}

func hasPrefixAt(d []byte, i int, s string) bool {
	return len(d)-i >= len(s) && string(d[i:i+len(s)]) == s
}

// internTable shares the strings of low-cardinality fields (currency and
// country codes, channel, BIN, MCC, device attributes) between events:
// fewer allocations per event. It is a fixed-size, lock-free cache: a
// collision replaces the slot, so memory stays bounded.
var internTable [4096]atomic.Pointer[string]

const maxInterned = 96 // longer values are copied

func internBytes(b []byte) string {
	if len(b) > maxInterned {
		return string(b)
	}
	h := uint32(2166136261) // FNV-1a
	for _, c := range b {
		h = (h ^ uint32(c)) * 16777619
	}
	slot := &internTable[h%uint32(len(internTable))]
	if s := slot.Load(); s != nil && *s == string(b) {
		return *s
	}
	s := string(b)
	slot.Store(&s)
	return s
}
