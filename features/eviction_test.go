package features

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/vigil-fraud/vigil/engine/event"
)

// TestSkewedEventDoesNotAgeEntities: one event dated ahead of the others
// (the API accepts some clock skew, a replay any time) used to move the
// watermark with it, so that active entities were dropped as idle, or as
// expired, without a count.
func TestSkewedEventDoesNotAgeEntities(t *testing.T) {
	e := mustEngine(t, `
features:
  - {name: ip_count, entity: device.ip, aggregate: count, windows: [1h]}
  - {name: card_count, entity: card.token, aggregate: count, windows: [1h]}
`, Options{MaxEntities: 1000})
	v := NewVector(e.Schema())
	for i := range 1000 { // 1000 IPs active 10 minutes ago
		e.Observe(&event.Event{Time: t0.Add(-10 * time.Minute), Device: event.Device{IP: fmt.Sprintf("10.0.%d.%d", i/250, i%250)}}, v)
	}
	e.Observe(&event.Event{Time: t0.Add(59 * time.Minute), Card: event.Card{Token: "skewed"}}, v)
	for i := range 300 {
		e.Observe(&event.Event{Time: t0, Device: event.Device{IP: fmt.Sprintf("10.9.%d.%d", i/250, i%250)}}, v)
	}
	st := e.Stats()
	if st.EvictedIdle != 0 || st.EvictedExpired != 0 || st.EvictedActive < 300 {
		t.Errorf("active entities dropped as idle or expired: %+v", st)
	}
	// a year ahead: the retention sweep keeps entities seen a second ago
	e = mustEngine(t, "features:\n  - {name: card_count, entity: card.token, aggregate: count, windows: [1h]}\n  - {name: acct_count, entity: account.id, aggregate: count, windows: [1h]}\n", Options{})
	for i := range 2000 {
		e.Observe(&event.Event{Time: t0, Card: event.Card{Token: fmt.Sprint("c", i)}}, v)
	}
	e.Observe(&event.Event{Time: t0.AddDate(1, 0, 0), Account: event.Account{ID: "typo"}}, v)
	for i := range 2000 {
		e.Observe(&event.Event{Time: t0.Add(time.Second), Card: event.Card{Token: fmt.Sprint("n", i)}}, v)
	}
	lost := 0
	for i := range 2000 {
		e.Observe(&event.Event{Time: t0.Add(2 * time.Second), Card: event.Card{Token: fmt.Sprint("c", i)}}, v)
		if c, _ := num(t, e, v, "card_count_1h"); c != 2 {
			lost++
		}
	}
	if st := e.Stats(); lost > 0 || st.EvictedExpired > 0 {
		t.Errorf("cards seen 2 s earlier lost their count: %d; %+v", lost, st)
	}
}

// TestEvictionOfHistoryIsStale: an entity whose windows have expired but
// whose kind keeps history (first seen, novelty) is dropped as "stale",
// not "idle" (which holds nothing).
func TestEvictionOfHistoryIsStale(t *testing.T) {
	e := mustEngine(t, `
features:
  - {name: acct_first, kind: recency, entity: account.id, measure: since_first}
  - {name: card_count, entity: card.token, aggregate: count, windows: [10m]}
`, Options{MaxEntities: 1000})
	v := NewVector(e.Schema())
	for i := range 500 {
		e.Observe(&event.Event{Time: t0, Account: event.Account{ID: fmt.Sprint("a", i)}}, v)
		e.Observe(&event.Event{Time: t0, Card: event.Card{Token: fmt.Sprint("c", i)}}, v)
	}
	for i := range 200 {
		e.Observe(&event.Event{Time: t0.Add(time.Hour), Account: event.Account{ID: fmt.Sprint("b", i)}}, v)
		e.Observe(&event.Event{Time: t0.Add(time.Hour), Card: event.Card{Token: fmt.Sprint("d", i)}}, v)
	}
	st := e.Stats()
	// (victims are sampled: a few may be missed)
	if st.EvictedStale < 190 || st.EvictedStale > 200 || st.EvictedIdle < 190 || st.EvictedIdle > 200 || st.EvictedActive > 10 {
		t.Errorf("want about 200 stale accounts and 200 idle cards: %+v", st)
	}
}

// TestCapHolds: when the new entity's shard is empty, every other shard is
// tried for a victim (the probe used to skip every other shard, and the
// cap was exceeded).
func TestCapHolds(t *testing.T) {
	for range 3 {
		e := mustEngine(t, `
features:
  - {name: card_count, entity: card.token, aggregate: count, windows: [1h]}
  - {name: m_count, entity: merchant.id, aggregate: count, windows: [1h]}
`, Options{MaxEntities: 1000})
		v := NewVector(e.Schema())
		for i := range 990 {
			e.Observe(&event.Event{Time: t0, Card: event.Card{Token: fmt.Sprint("card", i)}}, v)
		}
		for i := range 210 {
			e.Observe(&event.Event{Time: t0.Add(24 * time.Hour), Merchant: event.Merchant{ID: fmt.Sprint("m", i)}}, v)
		}
		if st := e.Stats(); st.Entities > 1000 {
			t.Fatalf("%d entities for a cap of 1000: %+v", st.Entities, st)
		}
	}
}

// TestOverflowIsMissing: a sum that overflows (huge numeric attributes) is
// missing, not +Inf: a rule cannot compare it, explain shows null, and the
// API's JSON stays valid.
func TestOverflowIsMissing(t *testing.T) {
	e := mustEngine(t, "features:\n  - {name: s, entity: card.token, aggregate: sum, field: attributes.x, windows: [1m]}\n", Options{})
	v := NewVector(e.Schema())
	for i, x := range []float64{1e308, 1e308} {
		e.Observe(&event.Event{Time: t0.Add(time.Duration(i) * time.Second), Card: event.Card{Token: "c"},
			Attributes: map[string]any{"x": json.Number(fmt.Sprint(x))}}, v)
	}
	if x, ok := num(t, e, v, "s_1m"); ok {
		t.Errorf("s_1m = %v, present", x)
	}
}

// TestSparseStreamWatermark: a stream sparser than the lateness (a card
// every 30 minutes) keeps the watermark with it: entities idle for hours
// are dropped as idle, not as active (a watermark capped per event fell
// behind for good).
func TestSparseStreamWatermark(t *testing.T) {
	e := mustEngine(t, "features:\n  - {name: card_count, entity: card.token, aggregate: count, windows: [1h]}\n", Options{MaxEntities: 10})
	v := NewVector(e.Schema())
	for i := range 100 {
		e.Observe(&event.Event{Time: t0.Add(time.Duration(i) * 30 * time.Minute), Card: event.Card{Token: fmt.Sprint("c", i)}}, v)
	}
	if st := e.Stats(); st.EvictedActive > 5 || st.EvictedIdle < 85 {
		t.Errorf("idle cards dropped as active: %+v", st)
	}
	if lag := t0.Add(99*30*time.Minute).Unix() - int64(e.watermark()); lag > 30*60 {
		t.Errorf("watermark %d s behind the newest event", lag)
	}
}
