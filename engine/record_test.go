package engine

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

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

// blockingSink holds every Put until release is closed.
type blockingSink struct {
	memSink
	entered chan struct{}
	release chan struct{}
}

func (s *blockingSink) Put(r *Record) {
	s.entered <- struct{}{}
	<-s.release
	s.memSink.Put(r)
}

// The score API answers before the signal is handed to the sink: a sink
// that stalls never delays the authorization path, and the signal still
// arrives, built from the decision that was sent.
func TestAPIAnswersBeforeTheSignal(t *testing.T) {
	base := newTestEngine(t)
	sink := &blockingSink{entered: make(chan struct{}, 1), release: make(chan struct{})}
	e, err := New(base.features, base.rules, Options{Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	api, err := NewAPI(e, testKeyring(t), slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	api.now = func() time.Time { return testNow }
	srv := httptest.NewServer(api.Handler())
	defer srv.Close()

	got := make(chan []byte, 1)
	go func() {
		req, _ := http.NewRequest("POST", srv.URL+"/v1/score", strings.NewReader(tx("sig_1", 1500000, "")))
		req.Header.Set("Authorization", "Bearer "+scoreKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			got <- nil
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		got <- b
	}()
	<-sink.entered // the signal is being handed over...
	var body []byte
	select { // ...and the caller already has its whole answer
	case body = <-got:
	case <-time.After(10 * time.Second):
		close(sink.release)
		t.Fatal("the response waited for the sink")
	}
	close(sink.release)
	var d Decision
	if err := json.Unmarshal(body, &d); err != nil || d.Decision != rules.Pause {
		t.Fatalf("response %s: %v", body, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		sink.mu.Lock()
		n := len(sink.recs)
		sink.mu.Unlock()
		if n == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if len(sink.recs) != 1 {
		t.Fatalf("%d records, want 1", len(sink.recs))
	}
	if r := sink.recs[0]; r.EventID != "sig_1" || r.Decision != string(d.Decision) || r.Score != d.Score || r.Source != SourceHTTP || r.Ruleset != d.Ruleset {
		t.Errorf("record %+v for decision %+v", r, d)
	}
}

// Number and boolean features go to FeatureNames/FeatureValues, string
// features only to FeatureStrings (when they have a value): a string is
// never stored as a NaN number.
func TestRecordSeparatesStringFeatures(t *testing.T) {
	const src = `
rules:
  - {name: fp, when: "device_fingerprint == \"fp_x\"", action: step_up, score: 10, reason: FP}
  - {name: geo, when: "ip_country == \"IR\"", action: step_up, score: 10, reason: GEO}
  - {name: velocity, when: "card_count_10m > 5 or account_new_device", action: step_up, score: 10, reason: VEL}
`
	fe := newTestFeatures(t)
	set, err := rules.Compile([]rules.Source{{Name: "mixed.yaml", Data: []byte(src)}}, fe.Schema())
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	e, err := New(fe, rules.NewManager(set), Options{Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{
		`{"id":"m1","time":"2026-11-22T10:00:00Z","amount":100,"currency":"USD","card":{"token":"tok_m"},"account":{"id":"acct_m"},"device":{"id":"dev_m","fingerprint":"fp_x"}}`,
		`{"id":"m2","time":"2026-11-22T10:01:00Z","amount":100,"currency":"USD","card":{"token":"tok_m"}}`,
	} {
		if _, err := e.Score(context.Background(), mustEvent(t, body), false); err != nil {
			t.Fatal(err)
		}
	}
	if len(sink.recs) != 2 {
		t.Fatalf("%d records", len(sink.recs))
	}
	tests := []struct {
		name    string
		r       *Record
		strings map[string]string
	}{
		{"fingerprint sent", sink.recs[0], map[string]string{"device_fingerprint": "fp_x"}},
		{"no device", sink.recs[1], nil}, // ip_country is missing too (no geo database)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !slices.Equal(tt.r.FeatureNames, []string{"account_new_device", "card_count_10m"}) || len(tt.r.FeatureValues) != 2 {
				t.Errorf("FeatureNames %v values %v, want the number and boolean features only", tt.r.FeatureNames, tt.r.FeatureValues)
			}
			if len(tt.r.FeatureStrings) != len(tt.strings) || (len(tt.strings) > 0 && !maps.Equal(tt.r.FeatureStrings, tt.strings)) {
				t.Errorf("FeatureStrings %v, want %v", tt.r.FeatureStrings, tt.strings)
			}
		})
	}
}
