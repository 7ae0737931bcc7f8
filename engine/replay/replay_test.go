package replay

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-fraud/vigil/engine/event"
	"github.com/vigil-fraud/vigil/features"
	"github.com/vigil-fraud/vigil/rules"
)

const fixtureDir = "../../testdata/replay"

// loadFixture reads the features, rules and baseline of testdata/replay.
func loadFixture(t testing.TB) (Config, *Dataset) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(fixtureDir, "features.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	ff, err := features.Parse("features.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	fe, err := features.New(ff, features.Options{Labels: true})
	if err != nil {
		t.Fatal(err)
	}
	defer fe.Close()
	set := func(dir string) *rules.Set {
		srcs, err := rules.ReadDir(os.DirFS(filepath.Join(fixtureDir, dir)), ".", dir)
		if err != nil {
			t.Fatal(err)
		}
		s, err := rules.Compile(srcs, fe.Schema())
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	f, err := os.Open(filepath.Join(fixtureDir, "events.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	txs, err := ReadJSONL(f)
	if err != nil {
		t.Fatal(err)
	}
	lf, err := os.Open(filepath.Join(fixtureDir, "labels.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	labels, err := ReadLabels("labels.jsonl", lf)
	if err != nil {
		t.Fatal(err)
	}
	return Config{Features: ff, Rules: set("rules"), Baseline: set("baseline"), LabelDelay: 24 * time.Hour},
		&Dataset{Transactions: txs, Labels: labels}
}

// TestFixture checks a replay of testdata/replay against numbers computed
// by hand. The fixture: 12 events over two days (the file is not in time
// order), the rules big (amount >= 100, step_up 30), velocity (the card's
// 3rd payment in an hour, pause 60) and bad_merchant (merchant_fraud_rate_1d
// >= 0.5, pause 60; the rate counts the merchant's payments of
// (t-2d, t-1d] whose fraud label is known by t); the baseline has only big
// at amount >= 50. Labels become known 1 day after their payment unless
// they say when (e06: at 14:00 on day 1).
//
//	event  time       card merchant amount label         features                 ruleset          baseline
//	e01    d1 10:00   A    m1        20    chargeback    count 1, rate missing    approve          approve
//	e02    d1 10:10   A    m1        30    confirmed     count 2                  approve          approve
//	e03    d1 10:20   A    m2        40    chargeback    count 3                  pause velocity   approve
//	e04    d1 11:00   B    m1       150    legitimate                             step_up big      step_up
//	e05    d1 12:00   C    m2        60    -                                      approve          step_up
//	e06    d1 13:00   D    m3       500    chargeback@14:00                       step_up big      step_up
//	e07    d2 10:05   E    m1        10    false_pos.    m1: e01 (fraud) = 1      pause            approve
//	e08    d2 11:30   F    m1        20    chargeback    m1: e01 e02 e04 = 2/3    pause            approve
//	e09    d2 12:30   G    m2        70    -             m2: e03 e05 = 1/2        pause            step_up
//	e10    d2 13:30   H    m3       120    confirmed     m3: e06 = 1; +big: 90    pause            step_up
//	e11    d2 14:00   A    m4        25    chargeback    count 1, no history      approve          approve
//	e12    d2 15:00   I    m5        45    -                                      approve          approve
//
// Fraud: e01 e02 e03 e06 e08 e10 e11 (7). Labelled: 9 (+ e99, unmatched).
// Ruleset: approve 5, step_up 2, pause 5. pause: flagged e03 e07 e08 e09
// e10, caught e03 e08 e10: precision 3/5, recall 3/7, F1 0.5. step_up or
// pause: flagged 7, caught 4 (+e06): precision 4/7, recall 4/7, F1 4/7.
// Rules: big hits e04 e06 e10 (2 fraud), velocity e03 (1), bad_merchant
// e07 e08 e09 e10 (2); the shadow rule small (amount < 30) never decides
// but is recorded on e01 e07 e08 e11 (3 fraud). Baseline: step_up 5 (e04 e05 e06 e09 e10), caught
// 2: precision 0.4, recall 2/7, F1 1/3. Changes: e03, e07, e08
// approve→pause (2 fraud), e05 step_up→approve, e09, e10 step_up→pause (1
// fraud): 6.
func TestFixture(t *testing.T) {
	cfg, ds := loadFixture(t)
	for _, workers := range []int{1, 3} {
		cfg.Workers = workers
		rep, err := Run(context.Background(), cfg, ds)
		if err != nil {
			t.Fatal(err)
		}
		checkFixtureReport(t, rep)
	}
}

func checkFixtureReport(t *testing.T, rep *Report) {
	t.Helper()
	near := func(what string, got, want float64) {
		t.Helper()
		if math.Abs(got-want) > 1e-9 {
			t.Errorf("%s = %v, want %v", what, got, want)
		}
	}
	if rep.Events != 12 || rep.Labels != (Labels{Labelled: 9, Fraud: 7, Unmatched: 1}) {
		t.Errorf("events %d, labels %+v", rep.Events, rep.Labels)
	}
	if d := rep.Decisions; d.Approve != 5 || d.StepUp != 2 || d.Pause != 5 {
		t.Errorf("decisions %+v", d)
	}
	near("approve rate", rep.Decisions.ApproveRate, 5.0/12)
	if q := rep.Pause; q.Flagged != 5 || q.Caught != 3 || q.Fraud != 7 {
		t.Errorf("pause %+v", q)
	}
	near("pause precision", rep.Pause.Precision, 0.6)
	near("pause recall", rep.Pause.Recall, 3.0/7)
	near("pause F1", rep.Pause.F1, 0.5)
	if q := rep.StepUpOrPause; q.Flagged != 7 || q.Caught != 4 {
		t.Errorf("step_up or pause %+v", q)
	}
	near("step_up|pause precision", rep.StepUpOrPause.Precision, 4.0/7)
	near("step_up|pause recall", rep.StepUpOrPause.Recall, 4.0/7)
	near("step_up|pause F1", rep.StepUpOrPause.F1, 4.0/7)
	wantRules := map[string][2]int{"big": {3, 2}, "velocity": {1, 1}, "bad_merchant": {4, 2}}
	for _, r := range rep.Rules {
		if r.Rule == "small" { // shadow: e01 e07 e08 e11, three fraud
			if r.Hits != 0 || r.Ignored != 4 || r.IgnoredFraud != 3 {
				t.Errorf("shadow rule: %+v", r)
			}
			continue
		}
		w := wantRules[r.Rule]
		if r.Hits != w[0] || r.FraudHits != w[1] {
			t.Errorf("rule %s: hits %d fraud %d, want %v", r.Rule, r.Hits, r.FraudHits, w)
		}
		near(r.Rule+" precision", r.Precision, float64(w[1])/float64(w[0]))
		near(r.Rule+" recall", r.Recall, float64(w[1])/7)
	}
	b := rep.Baseline
	if b == nil {
		t.Fatal("no baseline")
	}
	if d := b.Decisions; d.Approve != 7 || d.StepUp != 5 || d.Pause != 0 {
		t.Errorf("baseline decisions %+v", d)
	}
	near("baseline precision", b.StepUpOrPause.Precision, 0.4)
	near("baseline recall", b.StepUpOrPause.Recall, 2.0/7)
	near("baseline F1", b.StepUpOrPause.F1, 1.0/3)
	if b.Changed != 6 {
		t.Errorf("changed %d, want 6", b.Changed)
	}
	wantTr := []Transition{{rules.Approve, rules.Pause, 3, 2}, {rules.StepUp, rules.Approve, 1, 0}, {rules.StepUp, rules.Pause, 2, 1}}
	if len(b.Transitions) != len(wantTr) {
		t.Fatalf("transitions %+v", b.Transitions)
	}
	for i, tr := range wantTr {
		if b.Transitions[i] != tr {
			t.Errorf("transition %d: %+v, want %+v", i, b.Transitions[i], tr)
		}
	}
	var ids []string
	for _, c := range b.Changes {
		ids = append(ids, c.ID)
	}
	if got := strings.Join(ids, " "); got != "e03 e05 e07 e08 e09 e10" {
		t.Errorf("changes %s", got)
	}
}

// TestLabelDelay: with labels known a week later, bad_merchant never has a
// matured label on day 2 except e06's, known at 14:00 on day 1.
func TestLabelDelay(t *testing.T) {
	cfg, ds := loadFixture(t)
	cfg.LabelDelay = 7 * 24 * time.Hour
	cfg.Baseline = nil
	rep, err := Run(context.Background(), cfg, ds)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Rules {
		if r.Rule == "bad_merchant" && r.Hits != 1 { // e10, at m3
			t.Errorf("bad_merchant hits %d, want 1", r.Hits)
		}
	}
	if rep.Baseline != nil {
		t.Error("baseline without a baseline ruleset")
	}
}

func TestRunErrors(t *testing.T) {
	cfg, ds := loadFixture(t)
	if _, err := Run(context.Background(), Config{}, ds); err == nil {
		t.Error("no error without features and rules")
	}
	bad := cfg
	bad.LabelDelay = -time.Hour
	if _, err := Run(context.Background(), bad, ds); err == nil {
		t.Error("no error for a negative delay")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, cfg, ds); err == nil {
		t.Error("no error when cancelled")
	}
	if _, err := Run(context.Background(), cfg, &Dataset{Transactions: []Transaction{{}}}); err == nil {
		t.Error("no error for a transaction without an event")
	}
	rep, err := Run(context.Background(), cfg, &Dataset{})
	if err != nil || rep.Events != 0 {
		t.Errorf("empty dataset: %v %+v", err, rep)
	}
}

func TestProgress(t *testing.T) {
	p := Progress{Done: 50, Total: 150, Elapsed: 10 * time.Second}
	if p.Rate() != 5 || p.ETA() != 20*time.Second {
		t.Errorf("rate %v eta %v", p.Rate(), p.ETA())
	}
	if (Progress{}).Rate() != 0 || (Progress{}).ETA() != 0 {
		t.Error("zero progress")
	}
	cfg, ds := loadFixture(t)
	var last Progress
	cfg.Progress = func(p Progress) { last = p }
	if _, err := Run(context.Background(), cfg, ds); err != nil {
		t.Fatal(err)
	}
	if last.Done != 12 || last.Total != 12 {
		t.Errorf("last progress %+v", last)
	}
}

func TestWriteTable(t *testing.T) {
	cfg, ds := loadFixture(t)
	rep, err := Run(context.Background(), cfg, ds)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := rep.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"12 events from 2026-01-01T10:00:00Z to 2026-01-02T15:00:00Z",
		"9 labelled transactions, 7 fraud",
		"1 labels name no replayed transaction",
		"pause             5      41.67%  3/7     0.600      0.429   0.500",
		"step_up or pause  7      58.33%  4/7     0.571      0.571   0.571",
		"bad_merchant  pause    60     4     2           0.500      0.286",
		"6 transactions change decision",
		"e09  2026-01-02T12:30:00Z  step_up   pause    false",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
	if strings.Contains(b.String(), "skipped") {
		t.Errorf("a skipped line without repeated ids:\n%s", b.String())
	}
}

// TestRepeatedID: a replay scores an id once, as live scoring does. Six
// identical lines of card Z are one transaction (live: approve, then five
// replayed answers that count in no window), a seventh with the id and
// other content is an id reuse (live: 409), and the card's next two
// payments are its 2nd and 3rd in the hour: approve, then velocity's pause.
// Scored six times, the card's count would reach 3 at the third copy
// (approve 2, pause 4 for the copies alone). A label of the repeated id is
// the scored transaction's.
func TestRepeatedID(t *testing.T) {
	cfg, _ := loadFixture(t)
	cfg.Baseline = nil
	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	tx := func(id string, minute int, amount int64) Transaction {
		return Transaction{Event: &event.Event{ID: id, Time: at.Add(time.Duration(minute) * time.Minute), Amount: amount,
			Currency: "EUR", Card: event.Card{Token: "tok_Z"}, Merchant: event.Merchant{ID: "m9"}}}
	}
	var txs []Transaction
	for range 6 {
		txs = append(txs, tx("z1", 0, 2000))
	}
	txs = append(txs, tx("z1", 1, 2500), tx("z2", 2, 3000), tx("z3", 3, 4000))
	ds := &Dataset{Transactions: txs, Labels: []Label{{EventID: "z1", Fraud: true}}}
	for _, workers := range []int{1, 3} {
		cfg.Workers = workers
		rep, err := Run(context.Background(), cfg, ds)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Events != 3 || rep.Skipped != (Skipped{Repeated: 5, IDReused: 1}) {
			t.Errorf("events %d, skipped %+v; want 3, {5 1}", rep.Events, rep.Skipped)
		}
		if d := rep.Decisions; d.Approve != 2 || d.StepUp != 0 || d.Pause != 1 {
			t.Errorf("decisions %+v; want approve 2, pause 1", d)
		}
		if rep.Labels.Labelled != 1 || rep.Labels.Fraud != 1 || rep.Pause.Fraud != 1 {
			t.Errorf("labels %+v, pause %+v", rep.Labels, rep.Pause)
		}
		var b strings.Builder
		if err := rep.WriteTable(&b); err != nil {
			t.Fatal(err)
		}
		if want := "skipped: 5 repeated ids (same content: the first decision stands, counted once), 1 reused ids"; !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}
