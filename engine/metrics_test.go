package engine

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/vigil-fraud/vigil/rules"
)

const hitRules = `
rules:
  - {name: big, when: "amount >= 100", action: step_up, score: 40, reason: BIG}
  - {name: big_shadow, when: "amount >= 100", action: pause, score: 100, reason: BIG_SHADOW, mode: shadow}
  - {name: big_off, when: "amount >= 100", action: pause, score: 100, reason: BIG_OFF, rollout: 0}
  - {name: never, when: "amount < 0 or card_count_10m > 1000", action: pause, score: 100, reason: NEVER}
`

// TestRuleHitCounters: every rule of a loaded ruleset has its counter
// from the start, and hits count as counted, shadow or out of rollout,
// also when a reload races the scoring (a rule the engine has no counter
// for yet).
func TestRuleHitCounters(t *testing.T) {
	fe := newTestFeatures(t)
	set, err := rules.Compile([]rules.Source{{Name: "hits.yaml", Data: []byte(hitRules)}}, fe.Schema())
	if err != nil {
		t.Fatal(err)
	}
	mgr := rules.NewManager(set)
	sink := &memSink{}
	e, err := New(fe, mgr, Options{Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	hits := e.metrics.ruleHits
	want := func(step string, rule, counted string, n float64) {
		t.Helper()
		if got := testutil.ToFloat64(hits.WithLabelValues(rule, counted)); got != n {
			t.Errorf("%s: vigil_rule_hits_total{rule=%q,counted=%q} = %v, want %v", step, rule, counted, got, n)
		}
	}
	if n := testutil.CollectAndCount(hits); n != 6 { // 4 rules counted=yes, 1 shadow, 1 rollout
		t.Errorf("series after load: %d, want 6", n)
	}
	if n := testutil.CollectAndCount(e.metrics.ruleErrors); n != 4 { // one per rule, at 0
		t.Errorf("vigil_rule_errors_total series after load: %d, want 4", n)
	}
	want("load", "never", "yes", 0)
	score := func(id string, amount string) {
		t.Helper()
		ev := mustEvent(t, `{"id":"`+id+`","amount":`+amount+`,"currency":"USD","card":{"token":"tok_1"}}`)
		if _, err := e.Score(context.Background(), ev, false); err != nil {
			t.Fatal(err)
		}
	}
	score("a", "50000")
	score("b", "50")
	score("c", "20000")
	want("scored", "big", "yes", 2)
	want("scored", "big_shadow", "shadow", 2)
	want("scored", "big_off", "rollout", 2)
	want("scored", "never", "yes", 0)

	// A new ruleset swapped in without RulesetChanged (as between the
	// manager's swap and its hook): its rules are counted all the same.
	renamed := strings.ReplaceAll(hitRules, "name: big", "name: large")
	_, set2, err := mgr.Load([]rules.Source{{Name: "hits.yaml", Data: []byte(renamed)}}, fe.Schema())
	if err != nil {
		t.Fatal(err)
	}
	score("d", "30000")
	want("raced", "large", "yes", 1)
	want("raced", "large_shadow", "shadow", 1)
	want("raced", "large_off", "rollout", 1)
	want("raced", "big", "yes", 2)
	// its signal records the ruleset that decided, with the features it reads
	if r := sink.recs[len(sink.recs)-1]; r.Ruleset != set2.VersionString() || fmt.Sprint(r.FeatureNames) != "[card_count_10m]" {
		t.Errorf("raced scoring's signal: ruleset %s (want %s), features %v", r.Ruleset, set2.VersionString(), r.FeatureNames)
	}
	e.RulesetChanged(set, set2)
	score("e", "30000")
	want("after hook", "large", "yes", 2)
	want("after hook", "large_shadow", "shadow", 2)
	// the rules that left the set left their series behind them
	for _, v := range []*prometheus.CounterVec{hits, e.metrics.ruleErrors} {
		ch := make(chan prometheus.Metric, 100)
		v.Collect(ch)
		close(ch)
		for m := range ch {
			var d dto.Metric
			if err := m.Write(&d); err != nil {
				t.Fatal(err)
			}
			for _, l := range d.Label {
				if l.GetName() == "rule" && strings.HasPrefix(l.GetValue(), "big") {
					t.Errorf("a removed rule's series is still exported: %v", d.Label)
				}
			}
		}
	}
}
