package rules

import (
	"strings"
	"testing"

	"github.com/vigil-fraud/vigil/engine/event"
	"github.com/vigil-fraud/vigil/features"
)

// TestRuleTestLabels: label and label_after feed a test transaction's
// outcome to the features engine when it becomes known.
func TestRuleTestLabels(t *testing.T) {
	f, err := features.Parse("f.yaml", []byte(`
features:
  - {name: merchant_fraud_rate, kind: label_rate, entity: merchant.id, windows: [1d], delay: 1d}
`))
	if err != nil {
		t.Fatal(err)
	}
	fe, err := features.New(f, features.Options{Labels: true})
	if err != nil {
		t.Fatal(err)
	}
	set, err := Compile([]Source{{Name: "r.yaml", Data: []byte(`
rules:
  - {name: bad_merchant, when: merchant_fraud_rate_1d >= 0.5, action: pause, score: 60, reason: BAD_MERCHANT}
`)}}, fe.Schema())
	if err != nil {
		t.Fatal(err)
	}
	tf, err := ParseTestFile("t.yaml", []byte(`
tests:
  - name: known after a day
    transactions:
      - {id: a, at: 0s, amount: 100, currency: EUR, card: {token: x}, merchant: {id: m}, label: chargeback, label_after: 1d}
      - {id: b, at: 1d, amount: 100, currency: EUR, card: {token: y}, merchant: {id: m}}
    expect:
      - {id: b, decision: pause, hits: [bad_merchant], features: {merchant_fraud_rate_1d: 1}}
  - name: not known yet
    transactions:
      - {id: a, at: 0s, amount: 100, currency: EUR, card: {token: x}, merchant: {id: m}, label: chargeback, label_after: 2d}
      - {id: b, at: 1d, amount: 100, currency: EUR, card: {token: y}, merchant: {id: m}}
    expect:
      - {id: b, decision: approve, hits: [], features: {merchant_fraud_rate_1d: null}}
  - name: a legitimate label switches the feature on
    transactions:
      - {id: a, at: 0s, repeat: 2, amount: 100, currency: EUR, card: {token: x}, merchant: {id: m}, label: legitimate, label_after: 1h}
      - {id: b, at: 1d, amount: 100, currency: EUR, card: {token: y}, merchant: {id: m}}
    expect:
      - {id: b, decision: approve, features: {merchant_fraud_rate_1d: 0}}
`))
	if err != nil {
		t.Fatal(err)
	}
	res := RunTests(set, func() (Observer, error) { return features.New(f, features.Options{Labels: true}) }, []*TestFile{tf}, TestOptions{})
	for _, r := range res {
		if !r.Passed() {
			t.Errorf("%s: %v %s", r.Name, r.Skipped, strings.Join(r.Failures, "; "))
		}
	}
	// An observer that takes no labels cannot run a labelled case.
	res = RunTests(set, func() (Observer, error) { return observerOnly{fe}, nil }, []*TestFile{tf}, TestOptions{})
	if len(res[0].Failures) != 1 || !strings.Contains(res[0].Failures[0], "takes no labels") {
		t.Errorf("without ObserveLabel: %+v", res[0])
	}
	for _, c := range []struct{ src, want string }{
		{"{id: t1, amount: 1, currency: USD, card: {token: x}, label: stolen}", "label: want chargeback"},
		{"{id: t1, amount: 1, currency: USD, card: {token: x}, label_after: 1d}", "label_after: without a label"},
		{"{id: t1, amount: 1, currency: USD, card: {token: x}, label: chargeback, label_after: soon}", "label_after: want a duration"},
	} {
		_, err := ParseTestFile("t.yaml", []byte("tests:\n  - name: a\n    transactions: ["+c.src+"]\n    expect: [{score: 1}]\n"))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.src, err, c.want)
		}
	}
}

type observerOnly struct{ e *features.Engine }

func (o observerOnly) Observe(ev *event.Event, v *features.Vector) { o.e.Observe(ev, v) }
