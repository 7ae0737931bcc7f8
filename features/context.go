package features

import (
	"hash/maphash"
	"math"

	"github.com/vigil-fraud/vigil/engine/event"
)

// evctx is one event being processed: its values derived once (time,
// stored amount, IP geography, fingerprint, filter results) and shared by
// every feature.
type evctx struct {
	e       *Engine
	ev      *event.Event
	t       uint32 // event time, Unix seconds
	geoDone bool
	geo     geoInfo
	fpDone  bool
	fpOK    bool
	fp      [16]byte
	fpStr   string
	fdone   uint64
	fpass   uint64
	amount  float64 // stored amount, once computed (amtDone)
	amtDone bool
	fvm     *filterVM
	keys    [keyCache]kindKey // the event's key per entity kind
}

// keyCache is how many entity kinds' keys an event remembers between the
// prefetch and the processing (beyond, keys are hashed again).
const keyCache = 16

type kindKey struct {
	h  uint64
	ok bool
}

// keyOf returns the event's key for kind k, the i-th kind, hashed once.
func (c *evctx) keyOf(i int, k *kind) (uint64, bool) {
	if i < keyCache {
		return c.keys[i].h, c.keys[i].ok
	}
	return k.key.of(c)
}

// init reports false for a time vigil cannot store (before 1970 or after
// 2106; validation refuses years before 2000).
func (c *evctx) init(e *Engine, ev *event.Event) bool {
	*c = evctx{e: e, ev: ev}
	s := ev.Time.Unix()
	if s <= 0 || s > math.MaxUint32 {
		return false
	}
	c.t = uint32(s)
	return true
}

func (c *evctx) geoInfo() *geoInfo {
	if !c.geoDone {
		c.geoDone = true
		if c.e.geo != nil {
			c.geo = c.e.geo.lookup(c.ev.Device.IP)
		}
	}
	return &c.geo
}

func (c *evctx) deriveFingerprint() {
	if !c.fpDone {
		c.fpDone = true
		c.fpOK = c.e.fp.derive(&c.ev.Device, &c.fp)
	}
}

// fingerprint is the event's device fingerprint, or the derived one.
func (c *evctx) fingerprint() string {
	if c.ev.Device.Fingerprint != "" {
		return c.ev.Device.Fingerprint
	}
	c.deriveFingerprint()
	if !c.fpOK {
		return ""
	}
	if c.fpStr == "" {
		c.fpStr = fingerprintString(&c.fp)
	}
	return c.fpStr
}

// fingerprintHash hashes the derived fingerprint as maphash.String would
// hash its text, without allocating the string.
func (c *evctx) fingerprintHash(seed maphash.Seed) (uint64, bool) {
	c.deriveFingerprint()
	if !c.fpOK {
		return 0, false
	}
	var b [len(FingerprintPrefix) + 32]byte
	formatFingerprint(&b, &c.fp)
	return maphash.Bytes(seed, b[:]), true
}

// amountStored is the amount in 1/10,000 of the currency's major unit, an
// integer-valued float: sums stay exact below 2^53 (9×10^11 major units).
func amountStored(c *evctx) (float64, bool) {
	if !c.amtDone {
		e, _ := event.CurrencyExponent(c.ev.Currency)
		c.amount, c.amtDone = float64(c.ev.Amount)*amountPow[4-min(e, 4)], true
	}
	return c.amount, true
}

var amountPow = [...]float64{1, 10, 100, 1000, 10000}

const amountScale = 1e4
