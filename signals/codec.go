package signals

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"slices"
	"time"

	"github.com/vigil-fraud/vigil/engine"
)

// The spill's on-disk format. A segment file starts with segmentMagic,
// then holds frames, each one record:
//
//	uint32 LE payload length | uint32 LE CRC-32C of the payload | payload
//
// The payload is recordVersion then the record's fields: strings and
// slices length-prefixed (uvarint), integers as varints, floats as 8-byte
// IEEE 754 LE, times as varint Unix nanoseconds (0 for the zero time).
const (
	segmentMagic  = "VGLSIG\x00\x01"
	frameHeader   = 8
	recordVersion = 1
	// maxFrame bounds one record's payload: a record is a few KiB; a larger
	// length is corruption.
	maxFrame = 4 << 20
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// Errors of the decoder.
var (
	errShortFrame   = errors.New("spill: truncated frame")
	errBadChecksum  = errors.New("spill: checksum mismatch")
	errBadFrame     = errors.New("spill: malformed record")
	errFrameTooLong = errors.New("spill: frame length over the limit")
)

// appendFrame appends r's frame to buf.
func appendFrame(buf []byte, r *engine.Record) []byte {
	start := len(buf)
	buf = append(buf, 0, 0, 0, 0, 0, 0, 0, 0)
	buf = append(buf, recordVersion)
	buf = appendString(buf, r.EventID)
	buf = appendTime(buf, r.EventTime)
	buf = appendTime(buf, r.DecidedAt)
	buf = appendString(buf, r.Source)
	buf = binary.AppendVarint(buf, r.Amount)
	buf = appendString(buf, r.Currency)
	buf = appendFloat(buf, r.AmountMajor)
	for _, s := range [...]string{r.Channel, r.CardToken, r.CardBIN, r.CardCountry, r.AccountID, r.EmailHash,
		r.MerchantID, r.MCC, r.MerchantCountry, r.DeviceID, r.DeviceFingerprint, r.IP, r.BillingCountry,
		r.ShippingCountry, r.Decision} {
		buf = appendString(buf, s)
	}
	buf = binary.AppendVarint(buf, int64(r.Score))
	buf = appendString(buf, r.Ruleset)
	buf = appendStrings(buf, r.Hits)
	buf = appendStrings(buf, r.Ignored)
	buf = binary.AppendVarint(buf, r.LatencyUS)
	n := min(len(r.FeatureNames), len(r.FeatureValues))
	buf = appendStrings(buf, r.FeatureNames[:n])
	for _, v := range r.FeatureValues[:n] {
		buf = appendFloat(buf, v)
	}
	sn, sv := stringFeatures(r.FeatureStrings)
	buf = appendStrings(buf, sn)
	buf = appendStrings(buf, sv)
	payload := buf[start+frameHeader:]
	binary.LittleEndian.PutUint32(buf[start:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(buf[start+4:], crc32.Checksum(payload, crcTable))
	return buf
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendStrings(b []byte, ss []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(ss)))
	for _, s := range ss {
		b = appendString(b, s)
	}
	return b
}

func appendFloat(b []byte, f float64) []byte {
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(f))
}

func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return binary.AppendVarint(b, 0)
	}
	return binary.AppendVarint(b, t.UnixNano())
}

// readFrame splits the first frame off data: its payload, checked, and
// the rest. On errBadChecksum rest is past the damaged frame (its length
// is plausible), so that a reader can skip it. io-free so that the fuzz
// target exercises it directly.
func readFrame(data []byte) (payload, rest []byte, err error) {
	if len(data) < frameHeader {
		return nil, data, errShortFrame
	}
	n := binary.LittleEndian.Uint32(data)
	if n > maxFrame {
		return nil, data, errFrameTooLong
	}
	if uint64(len(data)-frameHeader) < uint64(n) {
		return nil, data, errShortFrame
	}
	payload = data[frameHeader : frameHeader+int(n)]
	if crc32.Checksum(payload, crcTable) != binary.LittleEndian.Uint32(data[4:]) {
		return nil, data[frameHeader+int(n):], errBadChecksum
	}
	return payload, data[frameHeader+int(n):], nil
}

// decoder decodes payloads into records, interning the strings that repeat
// from record to record (feature and rule names, rulesets, countries).
type decoder struct {
	intern map[string]string
}

func (d *decoder) internStr(b []byte) string {
	if d.intern == nil {
		d.intern = map[string]string{}
	}
	if s, ok := d.intern[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(d.intern) < 1<<16 {
		d.intern[s] = s
	}
	return s
}

// payloadReader reads a payload; the first error sticks.
type payloadReader struct {
	b   []byte
	err error
	d   *decoder
}

func (p *payloadReader) fail() {
	if p.err == nil {
		p.err = errBadFrame
	}
	p.b = nil
}

func (p *payloadReader) uvarint() uint64 {
	v, n := binary.Uvarint(p.b)
	if n <= 0 {
		p.fail()
		return 0
	}
	p.b = p.b[n:]
	return v
}

func (p *payloadReader) varint() int64 {
	v, n := binary.Varint(p.b)
	if n <= 0 {
		p.fail()
		return 0
	}
	p.b = p.b[n:]
	return v
}

func (p *payloadReader) bytes() []byte {
	n := p.uvarint()
	if n > uint64(len(p.b)) {
		p.fail()
		return nil
	}
	s := p.b[:n]
	p.b = p.b[n:]
	return s
}

func (p *payloadReader) str() string { return string(p.bytes()) }

func (p *payloadReader) interned() string {
	b := p.bytes()
	if len(b) == 0 {
		return ""
	}
	return p.d.internStr(b)
}

func (p *payloadReader) float() float64 {
	if len(p.b) < 8 {
		p.fail()
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(p.b))
	p.b = p.b[8:]
	return v
}

func (p *payloadReader) time() time.Time {
	ns := p.varint()
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

// count reads a slice length, bounded by what is left (each element takes
// at least min bytes).
func (p *payloadReader) count(minSize int) int {
	n := p.uvarint()
	if n > uint64(len(p.b)/minSize) {
		p.fail()
		return 0
	}
	return int(n)
}

func (p *payloadReader) strs(intern bool) []string {
	n := p.count(1)
	if n == 0 {
		return nil
	}
	out := make([]string, n)
	for i := range out {
		if intern {
			out[i] = p.interned()
		} else {
			out[i] = p.str()
		}
	}
	return out
}

// decode decodes one payload.
func (d *decoder) decode(payload []byte) (*engine.Record, error) {
	p := &payloadReader{b: payload, d: d}
	if len(p.b) == 0 || p.b[0] != recordVersion {
		return nil, errBadFrame
	}
	p.b = p.b[1:]
	r := &engine.Record{}
	r.EventID = p.str()
	r.EventTime = p.time()
	r.DecidedAt = p.time()
	r.Source = p.interned()
	r.Amount = p.varint()
	r.Currency = p.interned()
	r.AmountMajor = p.float()
	r.Channel = p.interned()
	r.CardToken = p.str()
	r.CardBIN = p.interned()
	r.CardCountry = p.interned()
	r.AccountID = p.str()
	r.EmailHash = p.str()
	r.MerchantID = p.interned()
	r.MCC = p.interned()
	r.MerchantCountry = p.interned()
	r.DeviceID = p.str()
	r.DeviceFingerprint = p.str()
	r.IP = p.str()
	r.BillingCountry = p.interned()
	r.ShippingCountry = p.interned()
	r.Decision = p.interned()
	score := p.varint()
	if score < math.MinInt32 || score > math.MaxInt32 {
		p.fail()
	}
	r.Score = int(score)
	r.Ruleset = p.interned()
	r.Hits = p.strs(true)
	r.Ignored = p.strs(true)
	r.LatencyUS = p.varint()
	r.FeatureNames = p.strs(true)
	if len(r.FeatureNames) > 0 {
		if uint64(len(p.b)) < uint64(len(r.FeatureNames))*8 {
			p.fail()
		} else {
			r.FeatureValues = make([]float64, len(r.FeatureNames))
			for i := range r.FeatureValues {
				r.FeatureValues[i] = p.float()
			}
		}
	}
	sn := p.strs(true)
	sv := p.strs(false)
	if len(sn) != len(sv) {
		p.fail()
	}
	if p.err == nil && len(sn) > 0 {
		r.FeatureStrings = make(map[string]string, len(sn))
		for i, k := range sn {
			r.FeatureStrings[k] = sv[i]
		}
	}
	if p.err == nil && len(p.b) != 0 {
		p.fail()
	}
	if p.err != nil {
		return nil, p.err
	}
	return r, nil
}

// recordsEqual reports whether two records carry the same data (tests,
// fuzzing).
func recordsEqual(a, b *engine.Record) bool {
	fe := func(x, y []float64) bool {
		return slices.EqualFunc(x, y, func(p, q float64) bool { return math.Float64bits(p) == math.Float64bits(q) })
	}
	ne := func(x, y []string) bool { return len(x) == len(y) && (len(x) == 0 || slices.Equal(x, y)) }
	ma := func(x, y map[string]string) bool {
		if len(x) != len(y) {
			return false
		}
		for k, v := range x {
			if w, ok := y[k]; !ok || w != v {
				return false
			}
		}
		return true
	}
	return a.EventID == b.EventID && a.EventTime.Equal(b.EventTime) && a.DecidedAt.Equal(b.DecidedAt) &&
		a.Source == b.Source && a.Amount == b.Amount && a.Currency == b.Currency &&
		math.Float64bits(a.AmountMajor) == math.Float64bits(b.AmountMajor) && a.Channel == b.Channel &&
		a.CardToken == b.CardToken && a.CardBIN == b.CardBIN && a.CardCountry == b.CardCountry &&
		a.AccountID == b.AccountID && a.EmailHash == b.EmailHash && a.MerchantID == b.MerchantID &&
		a.MCC == b.MCC && a.MerchantCountry == b.MerchantCountry && a.DeviceID == b.DeviceID &&
		a.DeviceFingerprint == b.DeviceFingerprint && a.IP == b.IP && a.BillingCountry == b.BillingCountry &&
		a.ShippingCountry == b.ShippingCountry && a.Decision == b.Decision && a.Score == b.Score &&
		a.Ruleset == b.Ruleset && ne(a.Hits, b.Hits) && ne(a.Ignored, b.Ignored) && a.LatencyUS == b.LatencyUS &&
		ne(a.FeatureNames, b.FeatureNames) && fe(a.FeatureValues, b.FeatureValues) && ma(a.FeatureStrings, b.FeatureStrings)
}
