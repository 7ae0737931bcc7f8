package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vigil-fraud/vigil/engine"
	"github.com/vigil-fraud/vigil/signals"
)

// TestSignalsMigrateAndTune runs `vigil signals migrate` twice, stores the
// tuning fixture's signals and labels, and checks `vigil tune` (live and
// --rules) against the numbers computed by hand in signals/tuning_test.go.
func TestSignalsMigrateAndTune(t *testing.T) {
	addr := os.Getenv("VIGIL_TEST_CLICKHOUSE")
	if addr == "" {
		t.Skip("VIGIL_TEST_CLICKHOUSE not set: start ClickHouse with deploy/clickhouse/clickhouse.sh up (make test does)")
	}
	var b [6]byte
	rand.Read(b[:])
	db := "vigil_test_" + hex.EncodeToString(b[:])
	conn := []string{"--addr", addr, "--database", db}
	run := func(args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if code := dispatch(append(args, conn...), &out, &errb); code != 0 {
			t.Fatalf("vigil %s: exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errb.String())
		}
		return out.String()
	}
	t.Cleanup(func() {
		cfg := signals.DefaultConfig()
		cfg.Addr = addr
		if c, err := signals.Open(cfg); err == nil {
			c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db)
			c.Close()
		}
	})
	if out := run("signals", "migrate"); !strings.Contains(out, "applied migrations [1 2 3 4]") {
		t.Fatalf("first migrate: %s", out)
	}
	if out := run("signals", "migrate"); !strings.Contains(out, "up to date at schema version 4") {
		t.Fatalf("second migrate: %s", out)
	}
	if out := run("signals", "status"); !strings.Contains(out, "schema version 4 (latest 4)") {
		t.Errorf("status: %s", out)
	}

	// the fixture through a writer and the labels endpoint
	cfg := signals.DefaultConfig()
	cfg.Addr, cfg.Database, cfg.Spill.Dir = addr, db, t.TempDir()
	cfg.Queue.FlushInterval = engine.Duration(10 * time.Millisecond)
	w, err := signals.NewWriter(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	data, err := os.ReadFile("../../testdata/signals/fixture.json")
	if err != nil {
		t.Fatal(err)
	}
	var fx struct {
		Signals []struct {
			ID       string             `json:"event_id"`
			Time     time.Time          `json:"event_time"`
			Decision string             `json:"decision"`
			Score    int                `json:"score"`
			Ruleset  string             `json:"ruleset"`
			Amount   float64            `json:"amount"`
			Country  string             `json:"card_country"`
			Hits     []string           `json:"hits"`
			Shadow   []string           `json:"shadow_hits"`
			Features map[string]float64 `json:"features"`
		} `json:"signals"`
		Labels json.RawMessage `json:"labels"`
	}
	if err := json.Unmarshal(data, &fx); err != nil {
		t.Fatal(err)
	}
	for _, s := range fx.Signals {
		w.Put(&engine.Record{EventID: s.ID, EventTime: s.Time, DecidedAt: s.Time, Decision: s.Decision, Score: s.Score,
			Ruleset: s.Ruleset, Amount: int64(s.Amount * 100), Currency: "USD", AmountMajor: s.Amount, CardCountry: s.Country,
			Hits: s.Hits, Ignored: s.Shadow, FeatureNames: []string{"card_count_10m", "ip_count_1h"},
			FeatureValues: []float64{s.Features["card_count_10m"], s.Features["ip_count_1h"]}})
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]json.RawMessage{"labels": fx.Labels})
	rec := httptest.NewRecorder()
	signals.LabelsHandler(w)(rec, httptest.NewRequest(http.MethodPost, "/v1/labels", bytes.NewReader(body)))
	if rec.Code != 200 {
		t.Fatalf("labels: %d %s", rec.Code, rec.Body.String())
	}

	window := []string{"--since", "24h", "--until", "2026-11-21T00:00:00Z"}
	live := run(append([]string{"tune", "--step", "50"}, window...)...)
	for _, want := range []string{
		"decisions: 10 (approve 4, step_up 3, pause 3); labelled 7; labelled fraud 5",
		"50        5       50.0             3        60.0         60.0",
		"card_velocity_10m     active  3     30.0        3         3           100.0        60.0",
	} {
		if !strings.Contains(live, want) {
			t.Errorf("vigil tune output lacks %q:\n%s", want, live)
		}
	}
	cand := run(append([]string{"tune", "--rules", "../../testdata/signals/candidate", "--json"}, window...)...)
	var rep signals.TuneReport
	if err := json.Unmarshal([]byte(cand), &rep); err != nil {
		t.Fatalf("%v\n%s", err, cand)
	}
	if rep.Outcomes["pause"] != 2 || rep.Thresholds[36].Flagged != 3 || rep.Thresholds[36].FraudCaught != 3 || len(rep.Warnings) != 1 {
		t.Errorf("candidate report: outcomes %v, threshold 36 %+v, warnings %v", rep.Outcomes, rep.Thresholds[36], rep.Warnings)
	}
}

func TestSignalsHelp(t *testing.T) {
	for _, arg := range []string{"-h", "--help", "help"} {
		var out, errb bytes.Buffer
		if code := dispatch([]string{"signals", arg}, &out, &errb); code != 0 || !strings.Contains(out.String(), "vigil signals migrate") || errb.Len() != 0 {
			t.Errorf("signals %s: exit %d, stdout %q, stderr %q", arg, code, out.String(), errb.String())
		}
	}
}

// TestTuneSaysWhereClickHouseIs: a tune that cannot reach ClickHouse says
// which address it tried and how to set it.
func TestTuneSaysWhereClickHouseIs(t *testing.T) {
	var out, errb bytes.Buffer
	code := dispatch([]string{"tune", "--addr", "127.0.0.1:1"}, &out, &errb)
	if code != 1 || !strings.Contains(errb.String(), "vigil tune: latest ruleset:") || strings.Contains(errb.String(), "tune: tune:") ||
		!strings.Contains(errb.String(), "no ClickHouse answers at 127.0.0.1:1: set --config FILE") {
		t.Errorf("code %d: %s", code, errb.String())
	}
}
