package signals

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"math"
	"slices"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/vigil-fraud/vigil/engine"
)

// block is a batch of records laid out by column, appended to an insert
// one column at a time (much faster than row by row). It is reused from
// batch to batch.
type block struct {
	eventID, source, currency, channel                           []string
	eventTime, decidedAt                                         []time.Time
	eventTimeMs, decidedAtMs                                     []uint16
	amountMinor                                                  []int64
	amount                                                       []float64
	cardToken, cardBIN, cardCountry, accountID, emailHash        []string
	merchantID, mcc, merchantCountry, deviceID, deviceFP, ipHash []string
	billingCountry, shippingCountry, decision, ruleset           []string
	score                                                        []uint8
	hits, shadow, featNames, featStrNames, featStrValues         [][]string
	featValues                                                   [][]float64
	latency                                                      []uint32

	// Array elements are handed to the driver as pointers: it boxes each
	// element in an interface, which allocates for a string or a float64
	// but not for a pointer (30 features a row made 3 million allocations
	// per 100,000-row batch, and the garbage collector's work slowed
	// scoring down). Reused from batch to batch.
	strPtrs      []*string
	strRows      [][]*string
	floatPtrs    []*float64
	floatPtrRows [][]*float64
}

// ipHasher computes the keyed hash under which an IP is stored.
type ipHasher struct {
	mac hash.Hash
	sum []byte
	hex []byte
}

func newIPHasher(key []byte) *ipHasher {
	if len(key) == 0 {
		return nil
	}
	return &ipHasher{mac: hmac.New(sha256.New, key), hex: make([]byte, 32)}
}

// hash returns the first 128 bits of HMAC-SHA256(key, ip) in hex; "" for
// no IP or no key (the IP is then not stored at all).
func (h *ipHasher) hash(ip string) string {
	if h == nil || ip == "" {
		return ""
	}
	h.mac.Reset()
	h.mac.Write([]byte(ip))
	h.sum = h.mac.Sum(h.sum[:0])
	hex.Encode(h.hex, h.sum[:16])
	return string(h.hex)
}

func (b *block) reset() {
	for _, s := range []*[]string{&b.eventID, &b.source, &b.currency, &b.channel, &b.cardToken, &b.cardBIN, &b.cardCountry,
		&b.accountID, &b.emailHash, &b.merchantID, &b.mcc, &b.merchantCountry, &b.deviceID, &b.deviceFP, &b.ipHash,
		&b.billingCountry, &b.shippingCountry, &b.decision, &b.ruleset} {
		clear(*s)
		*s = (*s)[:0]
	}
	for _, s := range []*[][]string{&b.hits, &b.shadow, &b.featNames, &b.featStrNames, &b.featStrValues} {
		clear(*s)
		*s = (*s)[:0]
	}
	clear(b.featValues)
	clear(b.strPtrs)
	clear(b.strRows)
	clear(b.floatPtrs)
	clear(b.floatPtrRows)
	b.eventTime, b.decidedAt, b.eventTimeMs, b.decidedAtMs = b.eventTime[:0], b.decidedAt[:0], b.eventTimeMs[:0], b.decidedAtMs[:0]
	b.amountMinor, b.amount, b.score, b.featValues, b.latency = b.amountMinor[:0], b.amount[:0], b.score[:0], b.featValues[:0], b.latency[:0]
}

func (b *block) len() int { return len(b.eventID) }

func ms(t time.Time) uint16 { return uint16(t.Nanosecond() / 1e6) }

// add appends one record.
func (b *block) add(r *engine.Record) {
	b.eventID = append(b.eventID, r.EventID)
	b.eventTime = append(b.eventTime, r.EventTime.UTC())
	b.eventTimeMs = append(b.eventTimeMs, ms(r.EventTime))
	b.decidedAt = append(b.decidedAt, r.DecidedAt.UTC())
	b.decidedAtMs = append(b.decidedAtMs, ms(r.DecidedAt))
	b.source = append(b.source, r.Source)
	b.amountMinor = append(b.amountMinor, r.Amount)
	b.currency = append(b.currency, r.Currency)
	amount := r.AmountMajor
	if math.IsNaN(amount) || math.IsInf(amount, 0) {
		amount = 0
	}
	b.amount = append(b.amount, amount)
	b.channel = append(b.channel, r.Channel)
	b.cardToken = append(b.cardToken, r.CardToken)
	b.cardBIN = append(b.cardBIN, r.CardBIN)
	b.cardCountry = append(b.cardCountry, r.CardCountry)
	b.accountID = append(b.accountID, r.AccountID)
	b.emailHash = append(b.emailHash, r.EmailHash)
	b.merchantID = append(b.merchantID, r.MerchantID)
	b.mcc = append(b.mcc, r.MCC)
	b.merchantCountry = append(b.merchantCountry, r.MerchantCountry)
	b.deviceID = append(b.deviceID, r.DeviceID)
	b.deviceFP = append(b.deviceFP, r.DeviceFingerprint)
	b.ipHash = append(b.ipHash, r.IP) // already the keyed hash: see Writer.Put
	b.billingCountry = append(b.billingCountry, r.BillingCountry)
	b.shippingCountry = append(b.shippingCountry, r.ShippingCountry)
	b.decision = append(b.decision, r.Decision)
	b.score = append(b.score, uint8(min(max(r.Score, 0), 255)))
	b.ruleset = append(b.ruleset, r.Ruleset)
	b.hits = append(b.hits, nonNil(r.Hits))
	b.shadow = append(b.shadow, nonNil(r.Ignored))
	names, values := r.FeatureNames, r.FeatureValues
	if len(values) != len(names) { // never from the engine; keep the arrays parallel
		n := min(len(names), len(values))
		names, values = names[:n], values[:n]
	}
	b.featNames = append(b.featNames, nonNil(names))
	if values == nil {
		values = []float64{}
	}
	b.featValues = append(b.featValues, values)
	sn, sv := stringFeatures(r.FeatureStrings)
	b.featStrNames = append(b.featStrNames, sn)
	b.featStrValues = append(b.featStrValues, sv)
	b.latency = append(b.latency, uint32(min(max(r.LatencyUS, 0), math.MaxUint32)))
}

var empty = []string{}

func nonNil(s []string) []string {
	if s == nil {
		return empty
	}
	return s
}

// stringFeatures returns the string features as parallel arrays sorted by
// name.
func stringFeatures(m map[string]string) (names, values []string) {
	if len(m) == 0 {
		return empty, empty
	}
	names = make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	values = make([]string, len(names))
	for i, k := range names {
		values[i] = m[k]
	}
	return names, values
}

// appendTo appends every column to an insert prepared with
// layout.insertSQL, in the same order.
func (b *block) appendTo(batch driver.Batch, l layout) error {
	cols := []any{b.eventID, b.eventTime}
	if l.msColumns {
		cols = append(cols, b.eventTimeMs)
	}
	cols = append(cols, b.decidedAt)
	if l.msColumns {
		cols = append(cols, b.decidedAtMs)
	}
	cols = append(cols, b.source, b.amountMinor, b.currency, b.amount, b.channel,
		b.cardToken, b.cardBIN, b.cardCountry, b.accountID, b.emailHash,
		b.merchantID, b.mcc, b.merchantCountry, b.deviceID, b.deviceFP, b.ipHash,
		b.billingCountry, b.shippingCountry, b.decision, b.score, b.ruleset,
		b.hits, b.shadow, b.featNames, b.featValues, b.featStrNames, b.featStrValues, b.latency)
	if n := len(l.insertColumns()); n != len(cols) {
		return fmt.Errorf("signals: %d columns built for %d in the insert", len(cols), n)
	}
	for i, c := range cols {
		var err error
		col := batch.Column(i)
		// Arrays row by row: the driver appends a typed row without
		// reflection, a whole [][]T column with it (several times slower).
		switch c := c.(type) {
		case [][]string:
			for _, row := range b.stringRows(c) {
				if err = col.AppendRow(row); err != nil {
					break
				}
			}
		case [][]float64:
			for _, row := range b.floatRows(c) {
				if err = col.AppendRow(row); err != nil {
					break
				}
			}
		default:
			err = col.Append(c)
		}
		if err != nil {
			return fmt.Errorf("signals: column %s: %w", l.insertColumns()[i], err)
		}
	}
	return nil
}

// stringRows returns rows as rows of pointers to their elements, in the
// block's reused buffers (valid until the next call).
func (b *block) stringRows(rows [][]string) [][]*string {
	b.strPtrs, b.strRows = pointerRows(rows, b.strPtrs[:0], b.strRows[:0])
	return b.strRows
}

// floatRows is stringRows for float64 rows.
func (b *block) floatRows(rows [][]float64) [][]*float64 {
	b.floatPtrs, b.floatPtrRows = pointerRows(rows, b.floatPtrs[:0], b.floatPtrRows[:0])
	return b.floatPtrRows
}

func pointerRows[T any](rows [][]T, ptrs []*T, out [][]*T) ([]*T, [][]*T) {
	n := 0
	for _, r := range rows {
		n += len(r)
	}
	ptrs = slices.Grow(ptrs, n)
	for _, r := range rows {
		start := len(ptrs)
		for i := range r {
			ptrs = append(ptrs, &r[i])
		}
		out = append(out, ptrs[start:len(ptrs):len(ptrs)])
	}
	return ptrs, out
}
