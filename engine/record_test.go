package engine

import (
	"context"
	"maps"
	"math"
	"reflect"
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

// releaseSink copies each record, then releases it, as the signals writer
// does once a row is inserted.
type releaseSink struct{ memSink }

func (s *releaseSink) Put(r *Record) {
	c := *r
	c.Hits, c.Ignored = slices.Clone(r.Hits), slices.Clone(r.Ignored)
	c.FeatureValues = slices.Clone(r.FeatureValues)
	c.FeatureStrings = maps.Clone(r.FeatureStrings)
	c.strBuf, c.pooled = nil, false
	r.Release()
	s.memSink.Put(&c)
}

// TestReleasedRecordsAreRebuiltExactly: records recycled through Release
// carry exactly what fresh ones would (no stale hits, values or strings).
func TestReleasedRecordsAreRebuiltExactly(t *testing.T) {
	fresh, recycled := &memSink{}, &releaseSink{}
	for _, sink := range []Sink{fresh, recycled} {
		base := newTestEngine(t)
		e, err := New(base.features, base.rules, Options{Sink: sink})
		if err != nil {
			t.Fatal(err)
		}
		for _, body := range []string{
			`{"id":"r1","time":"2026-11-22T10:00:00Z","amount":1500000,"currency":"USD","card":{"token":"tok_r","country":"US"},"billing":{"country":"FR"},"device":{"ip":"203.0.113.9","user_agent":"Mozilla/5.0 Chrome/120.0","language":"fr-FR","screen":"1920x1080"}}`,
			`{"id":"r2","time":"2026-11-22T10:01:00Z","amount":100,"currency":"USD","account":{"id":"acct_r"}}`,
			`{"id":"r3","time":"2026-11-22T10:02:00Z","amount":2500,"currency":"EUR","card":{"token":"tok_r","country":"US"},"billing":{"country":"US"}}`,
		} {
			if _, err := e.Score(context.Background(), mustEvent(t, body), false); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(fresh.recs) != 3 || len(recycled.recs) != 3 {
		t.Fatalf("%d and %d records", len(fresh.recs), len(recycled.recs))
	}
	for i := range fresh.recs {
		a, b := *fresh.recs[i], *recycled.recs[i]
		a.DecidedAt, a.LatencyUS, b.LatencyUS = b.DecidedAt, 0, 0
		a.strBuf, a.pooled = nil, false
		if len(a.Hits) == 0 {
			a.Hits, b.Hits = nil, nil
		}
		if len(a.Ignored) == 0 {
			a.Ignored, b.Ignored = nil, nil
		}
		if len(a.FeatureStrings) == 0 {
			a.FeatureStrings, b.FeatureStrings = nil, nil
		}
		if !reflect.DeepEqual(nanless(a), nanless(b)) {
			t.Errorf("record %d differs after recycling:\nfresh    %+v\nrecycled %+v", i, a, b)
		}
	}
}

// nanless replaces NaN (missing) feature values by -1 so that records
// compare with reflect.DeepEqual.
func nanless(r Record) Record {
	r.FeatureValues = slices.Clone(r.FeatureValues)
	for i, v := range r.FeatureValues {
		if math.IsNaN(v) {
			r.FeatureValues[i] = -1
		}
	}
	return r
}
