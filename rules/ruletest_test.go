package rules

import (
	"bytes"
	"encoding/xml"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vigil-fraud/vigil/features"
)

// defaultObserver builds fresh features engines from the embedded default
// feature definitions.
func defaultObserver(t testing.TB) (*features.Schema, func() (Observer, error)) {
	t.Helper()
	f, err := features.Parse(features.DefaultFileName, features.DefaultFile)
	if err != nil {
		t.Fatal(err)
	}
	fe, err := features.New(f)
	if err != nil {
		t.Fatal(err)
	}
	return fe.Schema(), func() (Observer, error) { return features.New(f) }
}

const velocityRules = `
ruleset: {step_up_at: 40, pause_at: 80}
rules:
  - name: card_velocity_10m
    when: card_count_10m >= 5
    action: step_up
    score: 40
    reason: CARD_VELOCITY_10M
  - name: big_spend
    when: card_amount_sum_1h > 1000
    action: pause
    score: 50
    reason: BIG_SPEND
    mode: shadow
`

const velocityTests = `
tests:
  - name: fifth attempt in ten minutes steps up
    transactions:
      - {id: t, repeat: 5, every: 1m, amount: 100, currency: USD, card: {token: tok_1}}
    expect:
      - id: t-4
        decision: approve
        hits: []
        features: {card_count_10m: 4}
      - decision: step_up
        score: 40
        hits: [card_velocity_10m]
        reasons: [CARD_VELOCITY_10M]
        features: {card_count_10m: 5, card_count_1h: 5, account_count_1h: null}
  - name: attempts spread over an hour do not
    start: 2026-03-01T10:00:00Z
    transactions:
      - {id: a, at: 0s, amount: 100, currency: USD, card: {token: tok_2}}
      - {id: b, at: 15m, amount: 100, currency: USD, card: {token: tok_2}}
      - {id: c, at: 30m, amount: 100, currency: USD, card: {token: tok_2}}
      - {id: d, at: 45m, amount: 100, currency: USD, card: {token: tok_2}}
      - {id: e, amount: 100, currency: USD, card: {token: tok_2}, time: 2026-03-01T10:50:00Z}
    expect:
      - {decision: approve, score: 0..10, features: {card_count_10m: 2, card_count_1h: 5}}
  - name: shadow hits are recorded, not counted
    transactions:
      - {id: x, amount: 150000, currency: USD, card: {token: tok_3}}
    expect:
      - {decision: approve, hits: [], ignored: [big_spend]}
  - name: a wrong expectation fails
    transactions:
      - {id: y, amount: 100, currency: USD, card: {token: tok_4}}
    expect:
      - {decision: pause, score: {min: 50}}
  - name: skipped on purpose
    skip: needs IP geolocation (no GeoIP database in tests)
    transactions:
      - {id: z, amount: 100, currency: USD, card: {token: tok_5}}
  - name: expects a feature the definitions lack
    transactions:
      - {id: w, amount: 100, currency: USD, card: {token: tok_6}}
    expect:
      - {decision: approve, features: {card_count_1hr: 1}}
`

func TestRunTests(t *testing.T) {
	schema, newObs := defaultObserver(t)
	set, err := Compile([]Source{{"v.yaml", []byte(velocityRules)}}, schema)
	if err != nil {
		t.Fatal(err)
	}
	tf, err := ParseTestFile("v_test.yaml", []byte(velocityTests))
	if err != nil {
		t.Fatal(err)
	}
	if got := tf.Tests[1].events[4].Time; !got.Equal(time.Date(2026, 3, 1, 10, 50, 0, 0, time.UTC)) {
		t.Errorf("time %v", got)
	}
	if got := tf.Tests[0].events[4]; got.ID != "t-5" || !got.Time.Equal(DefaultTestStart.Add(4*time.Minute)) {
		t.Errorf("repeat: %s at %v", got.ID, got.Time)
	}
	results := RunTests(set, newObs, []*TestFile{tf}, TestOptions{})
	want := []string{"pass", "pass", "pass", "fail", "skip", "fail"}
	for i, r := range results {
		got := "pass"
		switch {
		case r.Skipped != "":
			got = "skip"
		case len(r.Failures) > 0:
			got = "fail"
		}
		if got != want[i] {
			t.Errorf("%s: %s (%v %q), want %s", r.Name, got, r.Failures, r.Skipped, want[i])
		}
	}
	if f := strings.Join(results[3].Failures, "\n"); !strings.Contains(f, "y (line 35): decision approve, want pause") || !strings.Contains(f, "score 0, want 50..100") {
		t.Errorf("failure messages:\n%s", f)
	}
	// a misspelled feature fails the case (it used to skip it, and with it
	// the case's other checks)
	if f := strings.Join(results[5].Failures, "\n"); f != "expects feature card_count_1hr, which the feature definitions do not provide (did you mean card_count_1h?)" {
		t.Errorf("failure %q", f)
	}
	// --run selects by name
	if got := RunTests(set, newObs, []*TestFile{tf}, TestOptions{Filter: regexp.MustCompile("shadow")}); len(got) != 1 || !got[0].Passed() {
		t.Errorf("filtered: %+v", got)
	}
	// JUnit XML that CI tools read
	var buf bytes.Buffer
	if err := WriteJUnit(&buf, results); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
		Skipped  int `xml:"skipped,attr"`
		Suites   []struct {
			Name  string `xml:"name,attr"`
			Cases []struct {
				Name    string `xml:"name,attr"`
				Failure *struct {
					Message string `xml:"message,attr"`
				} `xml:"failure"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	if doc.Tests != 6 || doc.Failures != 2 || doc.Skipped != 1 || len(doc.Suites) != 1 || doc.Suites[0].Cases[3].Failure == nil {
		t.Errorf("junit:\n%s", buf.String())
	}
}

func TestParseTestFileErrors(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"tests:\n  - name: a\n    transactions:\n      - {id: t1, amount: 1, currency: USD}\n    expect: [{decision: approve}]\n",
			`t.yaml:4:9: test "a": transaction 1: invalid event: card.token: card.token or account.id is required`},
		{"tests:\n  - name: a\n    transactions:\n      - {id: t1, amount: 1, currency: USD, card: {token: x}, colour: red}\n    expect: [{decision: approve}]\n",
			`colour: unknown field`},
		{"tests:\n  - name: a\n    transactions: [{id: t1, amount: 1, currency: USD, card: {token: x}}]\n    expect: [{id: t2, decision: maybe}]\n    extra: 1\n",
			`t.yaml:5:5: unknown key "extra"`},
		{"tests:\n  - name: a\n    transactions: [{id: t1, amount: 1, currency: USD, card: {token: x}}]\n    expect: [{id: t2, decision: maybe}]\n",
			`t.yaml:4:19: test "a": expect: no transaction with id "t2"`},
		{"tests:\n  - name: a\n    transactions: [{id: t1, amount: 1, currency: USD, card: {token: x}}]\n    expect: [{decision: maybe}]\n",
			`unknown decision "maybe"`},
		{"tests:\n  - name: a\n    transactions: [{id: t1, repeat: 2, amount: 1, currency: USD, card: {token: x}}, {id: t1-2, amount: 1, currency: USD, card: {token: x}}]\n    expect: [{score: 5..1}]\n",
			`score: want a number, min..max or {min, max}`},
		{"tests:\n  - name: a\n    transactions: [{id: t1, at: soon, amount: 1, currency: USD, card: {token: x}}]\n    expect: [{score: 1}]\n",
			`at: want a duration`},
		{"tests:\n  - name: a\n    transactions: [{id: t1, amount: 1, currency: USD, card: {token: 4111111111111111}}]\n    expect: [{score: 1}]\n",
			`looks like`},
		// a time would be silently dropped for the copies
		{"tests:\n  - name: a\n    transactions: [{id: t1, repeat: 3, time: 2026-01-01T00:00:00Z, amount: 1, currency: USD, card: {token: x}}]\n    expect: [{decision: approve}]\n",
			`time with repeat`},
		// a second document is an error, not ignored
		{"tests:\n  - name: a\n    transactions: [{id: t1, amount: 1, currency: USD, card: {token: x}}]\n    expect: [{decision: approve}]\n---\ntests: []\n",
			`t.yaml:5:1: a test file holds one YAML document; found a second one`},
		// score keys are checked, and min <= max
		{"tests:\n  - name: a\n    transactions: [{id: t1, amount: 1, currency: USD, card: {token: x}}]\n    expect: [{score: {min: 0, mx: 10}}]\n",
			`score: unknown key "mx" (min, max)`},
		{"tests:\n  - name: a\n    transactions: [{id: t1, amount: 1, currency: USD, card: {token: x}}]\n    expect: [{score: {min: 60, max: 10}}]\n",
			`t.yaml:4:22: score: min 60 is above max 10`},
		// a value's problem is reported where the value is, and does not
		// hide the file's other problems
		{"tests:\n  - name: a\n    transactions: [{id: t1, amount: 1, currency: USD, card: {token: x}}]\n    expect:\n      - {id: t1, score: 100..50}\n      - {id: t9}\n",
			"t.yaml:5:25: score: want a number, min..max or {min, max}, not \"100..50\"\nt.yaml:6:14: test \"a\": expect: no transaction with id \"t9\""},
		{"tests:\n  - name: a\n    start: yesterday\n    transactions: [{id: t1, amount: 1, currency: USD, card: {token: x}}]\n    expect: [{score: 1}]\n",
			`t.yaml:3:12: start: want a time such as 2026-01-01T00:00:00Z, not "yesterday"`},
		{"tests:\n  - name: a\n    requires: [geoip, gps]\n    transactions: [{id: t1, amount: 1, currency: USD, card: {token: x}}]\n    expect: [{score: 1}]\n",
			`t.yaml:3:23: test "a": unknown requirement "gps" (geoip)`},
		{"tests:\n  - name: a\n    transactions: [{id: t1, amount: 1, currency: USD, card: {token: x}}]\n    expect:\n      - id: t1\n        decision: block\n",
			`t.yaml:6:19: test "a": unknown decision "block"`},
		{"tests:\n  - name: a\n    transactions: [{id: t1, amount: 1, currency: USD, card: {token: x}}]\n    expect: [{id: t1, hit: [r]}]\n",
			`t.yaml:4:23: unknown key "hit"`},
		{"tests:\n  - name: a\n    transactions: [{id: t1, amount: 1, currency: USD, card: {token: x}}]\n    expect: [{id: t1, \"hit\": [r]}]\n",
			`t.yaml:4:23: unknown key "hit"`},
		// a score no decision can have
		{"tests:\n  - name: a\n    transactions: [{id: t1, amount: 1, currency: USD, card: {token: x}}]\n    expect: [{score: 101}]\n",
			`t.yaml:4:22: score: 101 can never hold: scores are 0 to 100`},
		// empty entries are errors, not crashes
		{"tests:\n  -\n", `t.yaml:2:4: test without a name`},
		{"tests:\n  - name: a\n    transactions: [~]\n    expect: [{score: 1}]\n", `test "a": transaction 1: want an event mapping, not an empty entry`},
		// at and time together: one would be ignored
		{"tests:\n  - name: a\n    transactions: [{id: t1, at: 5s, time: 2026-01-01T00:00:00Z, amount: 1, currency: USD, card: {token: x}}]\n    expect: [{score: 1}]\n",
			`at and time: give one`},
		// a key without a value would check nothing
		{"tests:\n  - name: a\n    transactions: [{id: t1, amount: 1, currency: USD, card: {token: x}}]\n    expect:\n      - id: t1\n        hits:\n        reasons:\n",
			`t.yaml:6:9: test "a": expect: hits has no value (write [] for none, or leave the key out)`},
	} {
		_, err := ParseTestFile("t.yaml", []byte(tc.src))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.src, err, tc.want)
		}
	}
}
