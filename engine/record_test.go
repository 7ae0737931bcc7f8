package engine

import (
	"context"
	"math"
	"slices"
	"sync"
	"testing"

	"github.com/vigil-fraud/vigil/rules"
)

type memSink struct {
	mu   sync.Mutex
	recs []*Record
}

func (m *memSink) Put(r *Record) { m.mu.Lock(); m.recs = append(m.recs, r); m.mu.Unlock() }

func TestSinkGetsOneRecordPerFreshDecision(t *testing.T) {
	base := newTestEngine(t)
	sink := &memSink{}
	e, err := New(base.features, base.rules, Options{Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	ev := mustEvent(t, `{"id":"s1","time":"2026-11-22T10:00:00Z","amount":1500000,"currency":"USD","card":{"token":"tok_s","country":"US"},"device":{"ip":"203.0.113.9"}}`)
	for i := 0; i < 2; i++ { // the second is a replay: no new record
		if _, err := e.ScoreFrom(context.Background(), ev, "kafka"); err != nil {
			t.Fatal(err)
		}
	}
	if len(sink.recs) != 1 {
		t.Fatalf("%d records, want 1", len(sink.recs))
	}
	r := sink.recs[0]
	if r.EventID != "s1" || r.Decision != string(rules.Pause) || r.Source != "kafka" || r.AmountMajor != 15000 || r.CardToken != "tok_s" {
		t.Errorf("record %+v", r)
	}
	if !slices.Contains(r.Hits, "very_large_amount") {
		t.Errorf("hits %v", r.Hits)
	}
	if len(r.FeatureNames) == 0 || len(r.FeatureNames) != len(r.FeatureValues) {
		t.Fatalf("features %v %v", r.FeatureNames, r.FeatureValues)
	}
	i := slices.Index(r.FeatureNames, "card_amount_sum_24h")
	if i < 0 || r.FeatureValues[i] != 15000 {
		t.Errorf("card_amount_sum_24h read by the rules: %v %v", r.FeatureNames, r.FeatureValues)
	}
	if j := slices.Index(r.FeatureNames, "account_amount_avg_30d"); j >= 0 && !math.IsNaN(r.FeatureValues[j]) {
		t.Errorf("missing feature recorded as %v", r.FeatureValues[j])
	}
}
