package engine

import (
	"math"
	"slices"
	"sync"
	"time"

	"github.com/vigil-fraud/vigil/engine/event"
	"github.com/vigil-fraud/vigil/features"
	"github.com/vigil-fraud/vigil/rules"
)

var nan = math.NaN()

// Record is the normalized signal of one decision: the event's identifiers
// (tokens only; vigil never holds card numbers), the decision, the rules
// that fired and the feature values the rules read. Sinks (ClickHouse)
// store it.
type Record struct {
	EventID   string
	EventTime time.Time
	DecidedAt time.Time
	Source    string // "http" or "kafka"

	Amount      int64 // minor units
	Currency    string
	AmountMajor float64
	Channel     string

	CardToken         string
	CardBIN           string
	CardCountry       string
	AccountID         string
	EmailHash         string
	MerchantID        string
	MCC               string
	MerchantCountry   string
	DeviceID          string
	DeviceFingerprint string
	IP                string // sinks store a keyed hash of it, not the address
	BillingCountry    string
	ShippingCountry   string

	Decision  string
	Score     int
	Ruleset   string
	Hits      []string // counting rule hits
	Ignored   []string // shadow and out-of-rollout hits
	LatencyUS int64

	// FeatureNames and FeatureValues are the number and boolean features
	// the ruleset reads (parallel slices): bools are 0/1, a missing value
	// is NaN. FeatureStrings holds the string features it reads that have
	// a value; they are never in FeatureNames.
	FeatureNames   []string
	FeatureValues  []float64
	FeatureStrings map[string]string

	pooled bool              // made by the engine: Release recycles it
	strBuf map[string]string // FeatureStrings' storage, kept across reuse
}

// recordPool recycles the engine's records: a sink that releases them
// makes building signals allocation-free in the steady state.
var recordPool = sync.Pool{New: func() any { return &Record{pooled: true} }}

// Release hands r back to the engine for reuse once a sink is done with
// it (inserted, spilled or dropped it). Neither r nor its slices may be
// used afterwards. Calling it is optional — an unreleased record is simply
// garbage collected — and it does nothing for records the engine did not
// make.
func (r *Record) Release() {
	if r == nil || !r.pooled {
		return
	}
	hits, ignored, values, strs := r.Hits[:0], r.Ignored[:0], r.FeatureValues[:0], r.strBuf
	clear(strs)
	*r = Record{pooled: true, Hits: hits, Ignored: ignored, FeatureValues: values, strBuf: strs}
	recordPool.Put(r)
}

// Sink receives a Record per fresh decision (not for replayed ones). Put
// must not block scoring: a sink queues, spills or drops by its own policy
// and says so in its metrics.
type Sink interface {
	Put(*Record)
}

// readSet is what scoring needs of a ruleset beyond its rules, computed
// once per ruleset: the feature slots its rules read, its version string
// and its rules' hit counters.
type readSet struct {
	set      *rules.Set
	names    []string // number and boolean features: FeatureNames
	slots    []int    // their slots, parallel to names
	strNames []string // string features: FeatureStrings when they have a value
	strSlots []int    // their slots, parallel to strNames
	version  string
	hits     map[string]ruleCounters // nil without metrics
}

// newReadSet computes the read set of a ruleset; m may be nil (no
// counters).
func newReadSet(set *rules.Set, m *Metrics) *readSet {
	rs := &readSet{set: set, version: set.VersionString()}
	if m != nil {
		rs.hits = m.ruleCountersOf(set)
	}
	seen := map[string]bool{}
	for _, r := range set.Rules {
		for _, f := range r.Features {
			if seen[f] || set.Schema == nil {
				continue
			}
			i, ok := set.Schema.Lookup(f)
			if !ok {
				continue
			}
			seen[f] = true
			if set.Schema.Fields[i].Type == features.String {
				rs.strNames = append(rs.strNames, f)
				rs.strSlots = append(rs.strSlots, i)
			} else {
				rs.names = append(rs.names, f)
				rs.slots = append(rs.slots, i)
			}
		}
	}
	return rs
}

// record builds the signal of a decision.
func (rs *readSet) record(ev *event.Event, d *Decision, res *rules.Result, v *features.Vector, schema *features.Schema, source string, decidedAt time.Time) *Record {
	r := recordPool.Get().(*Record)
	hits, ignored, values, strs := r.Hits[:0], r.Ignored[:0], r.FeatureValues[:0], r.strBuf
	*r = Record{
		pooled: true, strBuf: strs, Hits: hits, Ignored: ignored,
		EventID: ev.ID, EventTime: ev.Time, DecidedAt: decidedAt, Source: source,
		Amount: ev.Amount, Currency: ev.Currency, AmountMajor: event.MajorUnits(ev.Amount, ev.Currency), Channel: ev.Channel,
		CardToken: ev.Card.Token, CardBIN: ev.Card.BIN, CardCountry: ev.Card.Country,
		AccountID: ev.Account.ID, EmailHash: ev.Account.EmailHash,
		MerchantID: ev.Merchant.ID, MCC: ev.Merchant.MCC, MerchantCountry: ev.Merchant.Country,
		DeviceID: ev.Device.ID, DeviceFingerprint: ev.Device.Fingerprint, IP: ev.Device.IP,
		BillingCountry: ev.Billing.Country, ShippingCountry: ev.Shipping.Country,
		Decision: string(d.Decision), Score: d.Score, Ruleset: d.Ruleset, LatencyUS: d.LatencyUS,
		FeatureNames: rs.names, FeatureValues: slices.Grow(values, len(rs.slots))[:len(rs.slots)],
	}
	for _, h := range res.Hits {
		r.Hits = append(r.Hits, h.Rule)
	}
	for _, h := range res.Ignored {
		r.Ignored = append(r.Ignored, h.Rule)
	}
	for i, slot := range rs.slots {
		switch schema.Fields[slot].Type {
		case features.Bool:
			switch {
			case !v.Has[slot]:
				r.FeatureValues[i] = nan
			case v.Bool[slot]:
				r.FeatureValues[i] = 1
			default:
				r.FeatureValues[i] = 0 // the slice is reused: set every value
			}
		default:
			r.FeatureValues[i] = v.Num[slot]
		}
	}
	for i, slot := range rs.strSlots {
		if !v.Has[slot] {
			continue
		}
		if r.FeatureStrings == nil {
			if r.strBuf == nil {
				r.strBuf = map[string]string{}
			}
			r.FeatureStrings = r.strBuf
		}
		r.FeatureStrings[rs.strNames[i]] = v.Str[slot]
	}
	return r
}
