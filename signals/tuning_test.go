package signals

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-fraud/vigil/engine"
	"github.com/vigil-fraud/vigil/features"
	"github.com/vigil-fraud/vigil/rules"
)

// fixture is testdata/signals/fixture.json.
type fixture struct {
	Signals []struct {
		EventID     string             `json:"event_id"`
		EventTime   time.Time          `json:"event_time"`
		DecidedAt   time.Time          `json:"decided_at"`
		AmountMinor int64              `json:"amount_minor"`
		Currency    string             `json:"currency"`
		Amount      float64            `json:"amount"`
		CardToken   string             `json:"card_token"`
		CardCountry string             `json:"card_country"`
		AccountID   string             `json:"account_id"`
		MerchantID  string             `json:"merchant_id"`
		Decision    string             `json:"decision"`
		Score       int                `json:"score"`
		Ruleset     string             `json:"ruleset"`
		Hits        []string           `json:"hits"`
		ShadowHits  []string           `json:"shadow_hits"`
		Features    map[string]float64 `json:"features"`
	} `json:"signals"`
	Labels json.RawMessage `json:"labels"`
}

var fixtureWindow = TuneOptions{
	Since: time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC), Until: time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC),
}

func loadFixture(t *testing.T) ([]*engine.Record, []byte) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "testdata", "signals", "fixture.json"))
	if err != nil {
		t.Fatal(err)
	}
	var fx fixture
	if err := json.Unmarshal(data, &fx); err != nil {
		t.Fatal(err)
	}
	var recs []*engine.Record
	names := []string{"card_amount_sum_24h", "card_count_10m", "ip_count_1h"}
	for _, s := range fx.Signals {
		r := &engine.Record{EventID: s.EventID, EventTime: s.EventTime, DecidedAt: s.DecidedAt, Source: engine.SourceHTTP,
			Amount: s.AmountMinor, Currency: s.Currency, AmountMajor: s.Amount, CardToken: s.CardToken, CardCountry: s.CardCountry,
			AccountID: s.AccountID, MerchantID: s.MerchantID, Decision: s.Decision, Score: s.Score, Ruleset: s.Ruleset,
			Hits: s.Hits, Ignored: s.ShadowHits, FeatureNames: names}
		for _, n := range names {
			r.FeatureValues = append(r.FeatureValues, s.Features[n])
		}
		recs = append(recs, r)
	}
	labels, _ := json.Marshal(map[string]json.RawMessage{"labels": fx.Labels})
	return recs, labels
}

// loadFixtureIntoClickHouse inserts the fixture's signals (twice: the
// table must deduplicate) and posts its labels through the HTTP handler.
func loadFixtureIntoClickHouse(t *testing.T) (Config, driver.Conn) {
	t.Helper()
	cfg, conn := testClickHouse(t)
	ctx := context.Background()
	if _, err := Migrate(ctx, conn, cfg.Database, quietLog()); err != nil {
		t.Fatal(err)
	}
	recs, labels := loadFixture(t)
	ins := newCHInserter(conn, cfg, quietLog())
	for i := 0; i < 2; i++ { // at-least-once delivery: the same batch twice
		if err := ins.Insert(ctx, recs); err != nil {
			t.Fatal(err)
		}
	}
	w, err := NewWriter(cfg, quietLog(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	srv := httptest.NewServer(LabelsHandler(w))
	defer srv.Close()
	resp, err := http.Post(srv.URL, "application/json", bytes.NewReader(labels))
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]any
	json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if resp.StatusCode != 200 || body["accepted"] != float64(9) {
		t.Fatalf("POST labels: %d %v", resp.StatusCode, body)
	}
	return cfg, conn
}

func TestLabelsJoinSignals(t *testing.T) {
	cfg, conn := loadFixtureIntoClickHouse(t)
	rows, err := conn.Query(context.Background(), fmt.Sprintf("SELECT event_id, label, is_fraud, is_labelled FROM %s.v_signals_labelled ORDER BY event_id", quoteIdent(cfg.Database)))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var id, label string
		var fraud, labelled uint8
		if err := rows.Scan(&id, &label, &fraud, &labelled); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s:%s:%d%d", id, label, fraud, labelled))
	}
	// the latest label wins: f07 false_positive then confirmed_fraud; f09
	// chargeback then false_positive (a won representment)
	want := "f01:legitimate:01 f02::00 f03:chargeback:11 f04::00 f05:confirmed_fraud:11 f06::00 " +
		"f07:confirmed_fraud:11 f08:chargeback:11 f09:false_positive:01 f10:confirmed_fraud:11"
	if strings.Join(got, " ") != want {
		t.Errorf("labelled signals:\n got %s\nwant %s", strings.Join(got, " "), want)
	}
}

// Hand computation over testdata/signals/fixture.json. Scores: f01 0, f02
// 10, f03 25, f04 30, f05 40, f06 55, f07 60, f08 70, f09 85, f10 100.
// Fraud (latest label chargeback or confirmed_fraud): f03, f05, f07, f08,
// f10 — 5 of 10; labelled: all but f02, f04, f06 — 7.
var wantThresholds = map[int][2]uint64{ // threshold: {flagged, fraud caught}
	0:   {10, 5},
	10:  {9, 5}, // all but f01
	25:  {8, 5}, // f03..f10
	26:  {7, 4}, // f04..f10: f03 (fraud) drops out
	30:  {7, 4}, // f04..f10
	40:  {6, 4}, // f05..f10
	50:  {5, 3}, // f06 f07 f08 f09 f10: frauds f07 f08 f10
	60:  {4, 3}, // f07..f10
	75:  {2, 1}, // f09 f10
	90:  {1, 1}, // f10
	100: {1, 1}, // f10
}

// rule: {hits, labelled hits, fraud hits}
var wantRules = map[string][3]uint64{
	"active/large_amount":         {3, 2, 1}, // f03 f06 f09: labelled f03 f09, fraud f03
	"active/card_spend_spike_24h": {3, 1, 1}, // f04 f06 f08: labelled and fraud f08
	"active/card_velocity_10m":    {3, 3, 3}, // f05 f08 f10
	"active/high_risk_country":    {2, 2, 2}, // f07 f10
	"active/very_large_amount":    {2, 2, 1}, // f09 f10: fraud f10
	"shadow/ip_velocity_1h":       {3, 1, 1}, // f02 f06 f10: labelled and fraud f10
}

func checkReport(t *testing.T, rep *TuneReport, thresholds map[int][2]uint64, rulesWant map[string][3]uint64) {
	t.Helper()
	if rep.Decisions != 10 || rep.FraudTotal != 5 || rep.Labelled != 7 {
		t.Errorf("decisions %d, fraud %d, labelled %d; want 10, 5, 7", rep.Decisions, rep.FraudTotal, rep.Labelled)
	}
	if len(rep.Thresholds) != 101 {
		t.Fatalf("%d thresholds", len(rep.Thresholds))
	}
	for th, w := range thresholds {
		r := rep.Thresholds[th]
		if r.Threshold != th || r.Flagged != w[0] || r.FraudCaught != w[1] || r.Decisions != 10 || r.FraudTotal != 5 {
			t.Errorf("threshold %d: %+v, want flagged %d caught %d", th, r, w[0], w[1])
		}
	}
	got := map[string][3]uint64{}
	for _, r := range rep.Rules {
		got[r.Kind+"/"+r.Rule] = [3]uint64{r.Hits, r.LabelledHits, r.FraudHits}
		if r.FraudTotal != 5 || r.Decisions != 10 {
			t.Errorf("rule %s: fraud total %d decisions %d", r.Rule, r.FraudTotal, r.Decisions)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(rulesWant) {
		t.Errorf("rules:\n got %v\nwant %v", got, rulesWant)
	}
}

func TestTuneMatchesHandComputation(t *testing.T) {
	cfg, conn := loadFixtureIntoClickHouse(t)
	ctx := context.Background()
	rep, err := Tune(ctx, conn, cfg.Database, fixtureWindow)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Ruleset != "fixture@0001" {
		t.Errorf("latest ruleset %q", rep.Ruleset)
	}
	if rep.Outcomes["approve"] != 4 || rep.Outcomes["step_up"] != 3 || rep.Outcomes["pause"] != 3 {
		t.Errorf("outcomes %v", rep.Outcomes)
	}
	checkReport(t, rep, wantThresholds, wantRules)
	// threshold 50: 5 of 10 flagged, 3 of 5 frauds caught, precision 3/5
	r50 := rep.Thresholds[50]
	if r50.FlaggedShare() != 0.5 || r50.Recall() != 0.6 || r50.Precision() != 0.6 {
		t.Errorf("threshold 50 ratios %v %v %v", r50.FlaggedShare(), r50.Recall(), r50.Precision())
	}
	for _, r := range rep.Rules {
		if r.Rule == "large_amount" && (math.Abs(r.Precision()-1.0/3) > 1e-9 || r.Recall() != 0.2) {
			t.Errorf("large_amount precision %v recall %v, want 1/3 and 1/5", r.Precision(), r.Recall())
		}
	}

	// The analyst views give the same numbers.
	db := quoteIdent(cfg.Database)
	for th, w := range wantThresholds {
		var flagged, caught uint64
		var share, recall float64
		q := fmt.Sprintf("SELECT flagged, fraud_caught, flagged_share, fraud_caught_share FROM %s.v_threshold_tuning WHERE threshold = %d", db, th)
		if err := conn.QueryRow(ctx, q).Scan(&flagged, &caught, &share, &recall); err != nil {
			t.Fatal(err)
		}
		if flagged != w[0] || caught != w[1] || share != float64(w[0])/10 || recall != float64(w[1])/5 {
			t.Errorf("v_threshold_tuning %d: %d %d %v %v", th, flagged, caught, share, recall)
		}
	}
	var flaggedDaily uint64
	if err := conn.QueryRow(ctx, fmt.Sprintf("SELECT sum(flagged) FROM %s.v_threshold_tuning_daily WHERE threshold = 50 AND ruleset = 'fixture@0001'", db)).Scan(&flaggedDaily); err != nil || flaggedDaily != 5 {
		t.Errorf("v_threshold_tuning_daily: %d %v", flaggedDaily, err)
	}
	var prec float64
	var hits uint64
	if err := conn.QueryRow(ctx, fmt.Sprintf("SELECT hits, precision FROM %s.v_rule_precision WHERE rule = 'card_spend_spike_24h' AND kind = 'active'", db)).Scan(&hits, &prec); err != nil || hits != 3 || math.Abs(prec-1.0/3) > 1e-9 {
		t.Errorf("v_rule_precision: %d %v %v", hits, prec, err)
	}
	var rate float64
	if err := conn.QueryRow(ctx, fmt.Sprintf("SELECT hit_rate FROM %s.v_rule_hits_daily WHERE rule = 'ip_velocity_1h' AND kind = 'shadow'", db)).Scan(&rate); err != nil || rate != 0.3 {
		t.Errorf("v_rule_hits_daily shadow hit rate: %v %v", rate, err)
	}
	var perMinute uint64
	if err := conn.QueryRow(ctx, fmt.Sprintf("SELECT sum(decisions) FROM %s.v_decisions_per_minute WHERE decision = 'pause'", db)).Scan(&perMinute); err != nil || perMinute != 3 {
		t.Errorf("v_decisions_per_minute pauses: %d %v", perMinute, err)
	}
	var fraudAt100 uint64
	if err := conn.QueryRow(ctx, fmt.Sprintf("SELECT sum(fraud) FROM %s.v_score_distribution_daily WHERE score = 100", db)).Scan(&fraudAt100); err != nil || fraudAt100 != 1 {
		t.Errorf("v_score_distribution_daily: %d %v", fraudAt100, err)
	}

	var out bytes.Buffer
	if err := rep.WriteText(&out, 25); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"decisions: 10 (approve 4, step_up 3, pause 3); labelled 7; labelled fraud 5", "card_velocity_10m", "ip_velocity_1h"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("report lacks %q:\n%s", s, out.String())
		}
	}
	t.Logf("\n%s", out.String())
}

// The candidate ruleset of testdata/signals/candidate re-evaluated over the
// fixture's stored feature values, by hand: velocity (card_count_10m >= 3,
// 40): f05 f08 f10; big (amount >= 500, 35): f03 f06 f08 f09 f10; busy_ip
// (shadow, ip_count_1h >= 10): f02 f06 f10; bot_user_agent never (the user
// agent is not stored). Scores: f03 35, f05 40, f06 35, f08 75, f09 35, f10
// 75, others 0. With step_up_at 30 and pause_at 70: pause f08 f10, step_up
// f03 f05 f06 f09, approve the other 4.
func TestTuneCandidateMatchesHandComputation(t *testing.T) {
	cfg, conn := loadFixtureIntoClickHouse(t)
	ctx := context.Background()
	set := compileCandidate(t, ctx, conn, cfg.Database)
	rep, err := TuneCandidate(ctx, conn, cfg.Database, set, fixtureWindow)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Outcomes["approve"] != 4 || rep.Outcomes["step_up"] != 4 || rep.Outcomes["pause"] != 2 {
		t.Errorf("candidate outcomes %v", rep.Outcomes)
	}
	checkReport(t, rep, map[int][2]uint64{
		0:  {10, 5},
		1:  {6, 4}, // f03 f05 f06 f08 f09 f10: frauds f03 f05 f08 f10
		35: {6, 4},
		36: {3, 3}, // f05 f08 f10
		40: {3, 3},
		41: {2, 2}, // f08 f10
		75: {2, 2},
		76: {0, 0},
	}, map[string][3]uint64{
		"active/velocity": {3, 3, 3},
		"active/big":      {5, 4, 3}, // labelled f03 f08 f09 f10; fraud f03 f08 f10
		"shadow/busy_ip":  {3, 1, 1},
	})
	if len(rep.Warnings) != 1 || !strings.Contains(rep.Warnings[0], "bot_user_agent reads device.user_agent") {
		t.Errorf("warnings %q", rep.Warnings)
	}
}

func compileCandidate(t *testing.T, ctx context.Context, conn driver.Conn, db string) *rules.Set {
	t.Helper()
	f, err := features.Parse(features.DefaultFileName, features.DefaultFile)
	if err != nil {
		t.Fatal(err)
	}
	fe, err := features.New(f)
	if err != nil {
		t.Fatal(err)
	}
	nums, strs, err := StoredFeatures(ctx, conn, db, fixtureWindow)
	if err != nil {
		t.Fatal(err)
	}
	schema, err := CandidateSchema(fe.Schema(), nums, strs)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join("..", "testdata", "signals", "candidate")
	srcs, err := rules.ReadDir(os.DirFS(dir), ".", dir)
	if err != nil {
		t.Fatal(err)
	}
	set, err := rules.Compile(srcs, schema)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// CandidateSchema types a stored feature the definitions lack by how it was
// stored: a string feature is a string, also where older rows listed it
// among the numbers (as NaN), so that a candidate rule comparing it to a
// string compiles.
func TestCandidateSchemaTypes(t *testing.T) {
	tests := []struct {
		name       string
		nums, strs []string
		want       map[string]features.Type
	}{
		{"numbers and strings", []string{"card_count_10m"}, []string{"ip_country"},
			map[string]features.Type{"card_count_10m": features.Number, "ip_country": features.String}},
		{"string also among the numbers", []string{"card_count_10m", "ip_country"}, []string{"ip_country"},
			map[string]features.Type{"card_count_10m": features.Number, "ip_country": features.String}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			schema, err := CandidateSchema(nil, tt.nums, tt.strs)
			if err != nil {
				t.Fatal(err)
			}
			for n, typ := range tt.want {
				slot, ok := schema.Lookup(n)
				if !ok || schema.Fields[slot].Type != typ {
					t.Errorf("%s: %v (found %v), want %v", n, schema.Fields[slot].Type, ok, typ)
				}
			}
			src := `rules: [{name: geo, when: 'ip_country == "IR"', action: step_up, score: 10, reason: GEO}]`
			if _, err := rules.Compile([]rules.Source{{Name: "c.yaml", Data: []byte(src)}}, schema); err != nil {
				t.Errorf("a rule comparing a stored string feature: %v", err)
			}
		})
	}
}

// TestCandidateWarnings: a feature with a value on no stored row is named
// as such (it may be one the recorded rules read, missing on every row),
// apart from the event fields signals never store.
func TestCandidateWarnings(t *testing.T) {
	schema, err := features.NewSchema([]features.Field{{Name: "ip_country", Type: features.String}, {Name: "card_count_1h", Type: features.Number}})
	if err != nil {
		t.Fatal(err)
	}
	src := "rules:\n  - {name: geo, when: 'ip_country == \"KP\" and card_count_1h > 1', action: pause, score: 1, reason: G}\n" +
		"  - {name: ua, when: 'device.user_agent == \"x\"', action: pause, score: 1, reason: U}\n"
	set, err := rules.Compile([]rules.Source{{Name: "r.yaml", Data: []byte(src)}}, schema)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(candidateWarnings(set, map[string]bool{"card_count_1h": true}), "\n")
	want := "rule geo reads ip_country, with a value on no stored row (not read by the recorded rules, or missing on every row): evaluated as missing\n" +
		"rule ua reads device.user_agent, not stored in signals: evaluated as missing"
	if got != want {
		t.Errorf("warnings:\n%s\nwant:\n%s", got, want)
	}
}

// The latest label by labelled_at wins also between labels of one event
// within the same second, whichever is posted first: on servers without
// DateTime64 labelled_at holds whole seconds, and the milliseconds decide.
// Each case is one event; each of its requests a POST /v1/labels.
func TestLatestLabelWithinOneSecond(t *testing.T) {
	at := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	ms := func(n int) time.Time { return at.Add(time.Duration(n) * time.Millisecond) }
	tests := []struct {
		name     string
		requests [][]Label // labels without an event id: the case's event
		want     string
	}{
		{"later label posted first", [][]Label{{{Label: LabelFalsePositive, LabelledAt: ms(900)}}, {{Label: LabelChargeback, LabelledAt: ms(100)}}}, LabelFalsePositive},
		{"later label posted last", [][]Label{{{Label: LabelChargeback, LabelledAt: ms(100)}}, {{Label: LabelFalsePositive, LabelledAt: ms(900)}}}, LabelFalsePositive},
		{"fraud later, posted first", [][]Label{{{Label: LabelConfirmedFraud, LabelledAt: ms(901)}}, {{Label: LabelLegitimate, LabelledAt: ms(900)}}}, LabelConfirmedFraud},
		{"one request", [][]Label{{{Label: LabelChargeback, LabelledAt: ms(1)}, {Label: LabelLegitimate, LabelledAt: ms(2)}}}, LabelLegitimate},
		{"at the second", [][]Label{{{Label: LabelLegitimate, LabelledAt: ms(1000)}}, {{Label: LabelChargeback, LabelledAt: ms(999)}}}, LabelLegitimate},
	}
	cfg, conn := testClickHouse(t)
	ctx := context.Background()
	if _, err := Migrate(ctx, conn, cfg.Database, quietLog()); err != nil {
		t.Fatal(err)
	}
	if err := newCHInserter(conn, cfg, quietLog()).Insert(ctx, records(0, len(tests))); err != nil {
		t.Fatal(err)
	}
	w, err := NewWriter(cfg, quietLog(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	var fraud uint64
	for i, tt := range tests {
		id := fmt.Sprintf("tx_%06d", i)
		for _, req := range tt.requests {
			for j := range req {
				req[j].EventID = id
			}
			body, _ := json.Marshal(LabelsRequest{Labels: req})
			rec := httptest.NewRecorder()
			LabelsHandler(w)(rec, httptest.NewRequest(http.MethodPost, "/v1/labels", bytes.NewReader(body)))
			if rec.Code != http.StatusOK {
				t.Fatalf("%s: POST /v1/labels: %d %s", tt.name, rec.Code, rec.Body.String())
			}
		}
		if IsFraud(tt.want) {
			fraud++
		}
	}
	db := quoteIdent(cfg.Database)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var label string
			var isFraud uint8
			q := fmt.Sprintf("SELECT label, is_fraud FROM %s.v_signals_labelled WHERE event_id = ?", db)
			if err := conn.QueryRow(ctx, q, fmt.Sprintf("tx_%06d", i)).Scan(&label, &isFraud); err != nil {
				t.Fatal(err)
			}
			if label != tt.want || isFraud == 1 != IsFraud(tt.want) {
				t.Errorf("v_signals_labelled: %s (is_fraud %d), want %s", label, isFraud, tt.want)
			}
		})
	}
	// vigil tune, live and re-evaluating a candidate, reads the same labels
	window := TuneOptions{Since: testTime, Until: testTime.Add(time.Hour), Ruleset: RulesetAll}
	rep, err := Tune(ctx, conn, cfg.Database, window)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Labelled != uint64(len(tests)) || rep.FraudTotal != fraud {
		t.Errorf("tune: labelled %d, fraud %d; want %d, %d", rep.Labelled, rep.FraudTotal, len(tests), fraud)
	}
	cand, err := TuneCandidate(ctx, conn, cfg.Database, compileCandidate(t, ctx, conn, cfg.Database), window)
	if err != nil {
		t.Fatal(err)
	}
	if cand.Labelled != uint64(len(tests)) || cand.FraudTotal != fraud {
		t.Errorf("tune --rules: labelled %d, fraud %d; want %d, %d", cand.Labelled, cand.FraudTotal, len(tests), fraud)
	}
}
