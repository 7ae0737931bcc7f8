package event

import (
	"encoding/binary"
	"encoding/json"
	"math/bits"
	"strconv"
	"sync/atomic"
	"time"
	"unicode/utf8"
	"unsafe"
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
		f := topField(key)
		bit := uint32(1) << f
		if f == fieldUnknown || seen&bit != 0 {
			return false
		}
		seen |= bit
		switch f {
		case fieldID:
			return p.str(&ev.ID, false)
		case fieldTime:
			return p.time(&ev.Time)
		case fieldAmount:
			return p.int64(&ev.Amount)
		case fieldCurrency:
			return p.str(&ev.Currency, true)
		case fieldChannel:
			return p.str(&ev.Channel, true)
		case fieldCard:
			return p.card(&ev.Card)
		case fieldAccount:
			return p.account(&ev.Account)
		case fieldMerchant:
			return p.merchant(&ev.Merchant)
		case fieldDevice:
			return p.device(&ev.Device)
		case fieldBilling:
			return p.location(&ev.Billing)
		case fieldShipping:
			return p.location(&ev.Shipping)
		default:
			return p.attributes(&ev.Attributes)
		}
	}) {
		return nil, false
	}
	p.ws()
	if p.i != len(p.data) {
		return nil, false
	}
	p.copyStrings()
	// null (absent, for encoding/json) is left to the reference decoder.
	ev.timeSent = seen&(1<<fieldTime) != 0
	ev.amountMissing = seen&(1<<fieldAmount) == 0
	return ev, true
}

// The top-level fields, numbered for a bit each in a set of those seen:
// a duplicate (which encoding/json merges) is left to the reference
// decoder.
const (
	fieldID = iota
	fieldTime
	fieldAmount
	fieldCurrency
	fieldChannel
	fieldCard
	fieldAccount
	fieldMerchant
	fieldDevice
	fieldBilling
	fieldShipping
	fieldAttributes
	fieldUnknown
)

// topField numbers a top-level key (a switch: cheaper than hashing it).
func topField(key []byte) int {
	switch string(key) {
	case "id":
		return fieldID
	case "time":
		return fieldTime
	case "amount":
		return fieldAmount
	case "currency":
		return fieldCurrency
	case "channel":
		return fieldChannel
	case "card":
		return fieldCard
	case "account":
		return fieldAccount
	case "merchant":
		return fieldMerchant
	case "device":
		return fieldDevice
	case "billing":
		return fieldBilling
	case "shipping":
		return fieldShipping
	case "attributes":
		return fieldAttributes
	}
	return fieldUnknown
}

// parser is a cursor over the raw event.
type parser struct {
	data []byte
	i    int
	// Identifiers read (not interned), copied out together at the end by
	// copyStrings: one allocation for all of an event's instead of one each.
	strs [16]pendingString
	n    int
	// coords holds the event's coordinates (billing and shipping lat and
	// lon): one allocation for all of them; nc are taken.
	coords *[4]float64
	nc     int
}

// pendingString is a string value still pointing into the input.
type pendingString struct {
	dst *string
	b   []byte
}

// copyStrings copies the pending strings into one new buffer and points
// their fields at it. The buffer is never written again, so the strings
// are immutable like any other. Keeping one of them keeps the event's
// identifiers (a hundred bytes or so) alive: nothing in vigil keeps them
// past the event (features and the recent-decisions store keep hashes).
func (p *parser) copyStrings() {
	total := 0
	for _, ps := range p.strs[:p.n] {
		total += len(ps.b)
	}
	buf := make([]byte, 0, total)
	for _, ps := range p.strs[:p.n] {
		at := len(buf)
		buf = append(buf, ps.b...)
		*ps.dst = unsafe.String(unsafe.SliceData(buf[at:]), len(ps.b))
	}
	p.n = 0
}

func (p *parser) ws() {
	if p.i < len(p.data) && p.data[p.i] > ' ' { // compact JSON: no whitespace
		return
	}
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
	j := start
	// Eight bytes at a time up to the first byte that is not plain
	// printable ASCII other than '"' and '\\'; the loop below then takes
	// over from it.
	for ; j+8 <= len(p.data); j += 8 {
		if m := specialBytes(binary.LittleEndian.Uint64(p.data[j:])); m != 0 {
			j += bits.TrailingZeros64(m) / 8
			break
		}
	}
	for ; j < len(p.data); j++ {
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

// specialBytes marks (high bit of each byte) the bytes of w that end or
// interrupt a plain string: control characters, '"', '\\' and non-ASCII.
// Only the lowest mark is exact (borrows may mark bytes above it), which
// is all rawString uses.
func specialBytes(w uint64) uint64 {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	hasZero := func(v uint64) uint64 { return (v - lo) & ^v }
	return (hasZero(w^(lo*'"')) | hasZero(w^(lo*'\\')) | (w-lo*0x20) & ^w | w) & hi
}

// str reads a string value into *dst; intern shares copies of frequent
// short values (codes, channels, device attributes).
func (p *parser) str(dst *string, intern bool) bool {
	b, ok := p.rawString()
	if !ok {
		return false
	}
	switch {
	case intern:
		*dst = internBytes(b)
	case len(b) == 0:
		*dst = ""
	case p.n < len(p.strs):
		p.strs[p.n] = pendingString{dst, b}
		p.n++
	default:
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

func (p *parser) float() (float64, bool) {
	lit, _, ok := p.number()
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseFloat(string(lit), 64)
	return v, err == nil
}

// time reads a string through time.Time's own UnmarshalJSON, as
// encoding/json does.
func (p *parser) time(dst *time.Time) bool {
	start := p.i
	if _, ok := p.rawString(); !ok {
		return false
	}
	// Decoding drops a time's text, where a card number may hide (in the
	// fraction of a second, the only run of digits a valid time can make
	// long): such a run leaves the time to the reference decoder, which
	// scans it.
	run, longest := 0, 0
	for _, c := range p.data[start:p.i] {
		if isDigit(c) {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	return longest < panMinDigits && dst.UnmarshalJSON(p.data[start:p.i]) == nil
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
	var pair []float64 // lat and lon, from the event's coordinates
	return p.fields(locationKeys, func(k int) bool {
		if k == 0 {
			return p.str(&l.Country, true)
		}
		v, ok := p.float()
		if !ok {
			return false
		}
		if pair == nil {
			pair = p.coordPair()
		}
		pair[k-1] = v
		if k == 1 {
			l.Lat = &pair[0]
		} else {
			l.Lon = &pair[1]
		}
		return true
	})
}

// coordPair returns room for one location's lat and lon.
func (p *parser) coordPair() []float64 {
	if p.coords == nil || p.nc+2 > len(p.coords) {
		p.coords, p.nc = new([4]float64), 0
	}
	p.nc += 2
	return p.coords[p.nc-2 : p.nc : p.nc]
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
		if _, dup := m[string(key)]; dup {
			return false // refused by the reference decoder, with its path
		}
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
// collision replaces the slot, so memory stays bounded. A value holding a
// card number is never stored.
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
	if !ContainsPAN(s) { // the event will be refused: nothing of it is kept
		slot.Store(&s)
	}
	return s
}
