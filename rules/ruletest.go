package rules

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/vigil-fraud/vigil/engine/event"
	"github.com/vigil-fraud/vigil/features"
	"github.com/vigil-fraud/vigil/rules/yamlsyntax"
)

// A rule test file (name_test.yaml, next to the rules) holds test cases.
// Each case is a sequence of transactions replayed in order through a
// fresh features engine — features depend on history — and expectations on
// the decisions of chosen transactions:
//
//	tests:
//	  - name: card testing steps up on the fifth attempt
//	    transactions:
//	      - {id: t, repeat: 5, every: 1m, amount: 100, currency: USD, card: {token: tok_1}}
//	    expect:
//	      - id: t-5
//	        decision: step_up
//	        score: 40..60
//	        hits: [card_velocity_10m]
//	        features: {card_count_10m: 5}
//
// A transaction is an event as POST /v1/score takes it (checked the same
// way) plus three test keys: at (offset from the case's start), repeat (n
// copies with ids id-1..id-n) and every (the gap between copies). Without
// at or time, a transaction comes 1s after the previous one. Two more keys
// give the transaction an outcome for label_rate features: label
// (chargeback, confirmed_fraud, false_positive or legitimate) and
// label_after (when it becomes known after the transaction; default 7d).

// TestFile is a parsed rule test file.
type TestFile struct {
	Name  string
	Tests []*TestCase
}

// TestCase is one replayed sequence and its expectations.
type TestCase struct {
	Name         string        `yaml:"name"`
	Description  string        `yaml:"description"`
	Start        TestTime      `yaml:"start"`    // default DefaultTestStart
	Skip         string        `yaml:"skip"`     // a reason to skip the case
	Requires     []string      `yaml:"requires"` // geoip: needs an IP geolocation database
	Transactions []yaml.Node   `yaml:"transactions"`
	Expect       []Expectation `yaml:"expect"`

	Pos    Pos            `yaml:"-"`
	reqPos []Pos          // each of Requires
	events []*event.Event // decoded transactions, in order
	labels []testLabel    // their labels, in the order they become known
}

// testLabel is the outcome of a test transaction, fed to the features
// engine when it becomes known.
type testLabel struct {
	ev    *event.Event
	fraud bool
	known time.Time
}

// LabelObserver is an Observer that also receives labels: the features
// engine, for label_rate features.
type LabelObserver interface {
	ObserveLabel(ev *event.Event, fraud bool, knownAt time.Time)
}

// DefaultTestStart is when a test case starts unless it says otherwise.
var DefaultTestStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Expectation is what a test expects of one transaction's decision. Unset
// keys are not checked.
type Expectation struct {
	ID       string         `yaml:"id"` // default: the last transaction
	Decision Action         `yaml:"decision"`
	Score    *ScoreRange    `yaml:"score"`
	Hits     *[]string      `yaml:"hits"`    // exactly these counting hits, in any order
	Ignored  *[]string      `yaml:"ignored"` // exactly these shadow or out-of-rollout hits
	Reasons  *[]string      `yaml:"reasons"` // the reason codes, in the decision's order
	Features map[string]any `yaml:"features"`
	Line     int            `yaml:"-"`
	Col      int            `yaml:"-"`
	nulls    []*yaml.Node   // keys given without a value
	at       map[string]Pos // each key's value; "features.", "hits." and "ignored." + each name in them
}

// pos is where key's value is written (see positions), else where the
// expectation starts.
func (x *Expectation) pos(file, key string) Pos {
	if p, ok := x.at[key]; ok {
		return p
	}
	return Pos{file, x.Line, max(x.Col, 1)}
}

// TestTime is a test case's start: a timestamp such as
// 2026-01-01T00:00:00Z.
type TestTime struct{ time.Time }

// UnmarshalYAML reads the timestamp, reporting a bad one at its place.
func (t *TestTime) UnmarshalYAML(n *yaml.Node) error {
	if err := n.Decode(&t.Time); err != nil {
		return yamlsyntax.NodeError(n, "start: want a time such as 2026-01-01T00:00:00Z, not %q", n.Value)
	}
	return nil
}

// ScoreRange is an expected score: 40, "40..60", or {min: 40, max: 60}.
type ScoreRange struct{ Min, Max int }

// UnmarshalYAML reads the three forms.
func (s *ScoreRange) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.MappingNode {
		var m struct{ Min, Max *int }
		for i := 0; i < len(n.Content); i += 2 {
			if k := n.Content[i]; k.Value != "min" && k.Value != "max" {
				return yamlsyntax.NodeError(k, "score: unknown key %q (min, max)", k.Value)
			}
		}
		if err := n.Decode(&m); err != nil {
			return err // yaml.v3's, at the line of the value
		}
		s.Min, s.Max = 0, 100
		if m.Min != nil {
			s.Min = *m.Min
		}
		if m.Max != nil {
			s.Max = *m.Max
		}
		if s.Min > s.Max {
			return yamlsyntax.NodeError(n, "score: min %d is above max %d", s.Min, s.Max)
		}
		return s.check(n)
	}
	lo, hi, isRange := strings.Cut(n.Value, "..")
	a, err1 := strconv.Atoi(strings.TrimSpace(lo))
	b, err2 := a, error(nil)
	if isRange {
		b, err2 = strconv.Atoi(strings.TrimSpace(hi))
	}
	if err1 != nil || err2 != nil || a > b {
		return yamlsyntax.NodeError(n, "score: want a number, min..max or {min, max}, not %q", n.Value)
	}
	s.Min, s.Max = a, b
	return s.check(n)
}

// check refuses a range no score can be in: scores are 0 to 100.
func (s ScoreRange) check(n *yaml.Node) error {
	if s.Max < 0 || s.Min > 100 {
		return yamlsyntax.NodeError(n, "score: %s can never hold: scores are 0 to 100", s)
	}
	return nil
}

func (s ScoreRange) String() string {
	if s.Min == s.Max {
		return strconv.Itoa(s.Min)
	}
	return fmt.Sprintf("%d..%d", s.Min, s.Max)
}

var testKeys = map[string]bool{"at": true, "repeat": true, "every": true, "label": true, "label_after": true}

// testLabelValues are the label values of a test transaction: fraud or not.
var testLabelValues = map[string]bool{"chargeback": true, "confirmed_fraud": true, "false_positive": false, "legitimate": false}

// ParseTestFile decodes a rule test file strictly and decodes every
// transaction as the API would, reporting all problems at once.
func ParseTestFile(name string, data []byte) (*TestFile, error) {
	var doc struct {
		Tests []*TestCase `yaml:"tests"`
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, yamlError(name, data, err).err()
	}
	docs := yaml.NewDecoder(bytes.NewReader(data))
	var first, extra yaml.Node
	if err := docs.Decode(&first); err == nil {
		if err := docs.Decode(&extra); !errors.Is(err, io.EOF) {
			if err != nil {
				return nil, yamlError(name, data, err).err()
			}
			return nil, errorList{{Pos: Pos{name, max(extra.Line, 1), 1}, Err: errors.New("a test file holds one YAML document; found a second one")}}.err()
		}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var errs errorList
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil, yamlError(name, data, err).err()
		}
		// Values of the wrong type or form: yaml.v3 decoded the rest, so
		// the file's other problems are reported too.
		errs = yamlError(name, data, err)
	}
	f := &TestFile{Name: name, Tests: doc.Tests}
	positions(&root, f)
	seen := map[string]bool{}
	for _, tc := range f.Tests {
		if tc.Name == "" {
			errs.add(tc.Pos, "", "test without a name")
		} else if seen[tc.Name] {
			errs.add(tc.Pos, "", "test %q: name used again", tc.Name)
		}
		seen[tc.Name] = true
		if tc.Start.IsZero() {
			tc.Start.Time = DefaultTestStart
		}
		for i, req := range tc.Requires {
			if req != RequiresGeoIP {
				at := tc.Pos
				if i < len(tc.reqPos) {
					at = tc.reqPos[i]
				}
				errs.add(at, "", "test %q: unknown requirement %q (geoip)", tc.Name, req)
			}
		}
		if len(tc.Transactions) == 0 {
			errs.add(tc.Pos, "", "test %q: no transactions", tc.Name)
		}
		ids := map[string]bool{}
		prev := tc.Start.Add(-time.Second)
		for i := range tc.Transactions {
			evs, labels, err := decodeTransactions(&tc.Transactions[i], tc.Start.Time, prev)
			if err != nil {
				errs.add(Pos{name, tc.Transactions[i].Line, tc.Transactions[i].Column}, "", "test %q: transaction %d: %v", tc.Name, i+1, err)
				continue
			}
			for _, ev := range evs {
				if ids[ev.ID] {
					errs.add(Pos{name, tc.Transactions[i].Line, tc.Transactions[i].Column}, "", "test %q: transaction id %q used twice", tc.Name, ev.ID)
				}
				ids[ev.ID] = true
				prev = ev.Time
			}
			tc.events = append(tc.events, evs...)
			tc.labels = append(tc.labels, labels...)
		}
		slices.SortStableFunc(tc.labels, func(a, b testLabel) int { return a.known.Compare(b.known) })
		if len(tc.Expect) == 0 && tc.Skip == "" {
			errs.add(tc.Pos, "", "test %q: nothing expected", tc.Name)
		}
		for _, x := range tc.Expect {
			if x.ID != "" && !ids[x.ID] && len(tc.events) > 0 {
				errs.add(x.pos(name, "id"), "", "test %q: expect: no transaction with id %q", tc.Name, x.ID)
			}
			switch x.Decision {
			case "", Approve, StepUp, Pause:
			default:
				errs.add(x.pos(name, "decision"), "", "test %q: unknown decision %q", tc.Name, x.Decision)
			}
			for _, k := range x.nulls { // an empty key would check nothing
				errs.add(Pos{name, k.Line, k.Column}, "", "test %q: expect: %s has no value (write [] for none, or leave the key out)", tc.Name, k.Value)
			}
		}
	}
	if err := errs.err(); err != nil {
		return nil, err
	}
	return f, nil
}

// positions records where cases, their requirements and expectations —
// each of an expectation's values and expected features — are written.
func positions(root *yaml.Node, f *TestFile) {
	if len(root.Content) != 1 || root.Content[0].Kind != yaml.MappingNode {
		return
	}
	top := root.Content[0]
	for i := 0; i+1 < len(top.Content); i += 2 {
		if top.Content[i].Value != "tests" {
			continue
		}
		for j, item := range top.Content[i+1].Content {
			if j >= len(f.Tests) {
				break
			}
			tc := f.Tests[j]
			if tc == nil { // an empty entry: reported as a case without a name
				tc = &TestCase{}
				f.Tests[j] = tc
			}
			tc.Pos = Pos{f.Name, item.Line, item.Column}
			for k := 0; k+1 < len(item.Content); k += 2 {
				switch item.Content[k].Value {
				case "requires":
					for _, r := range item.Content[k+1].Content {
						tc.reqPos = append(tc.reqPos, Pos{f.Name, r.Line, r.Column})
					}
				case "expect":
					for x, e := range item.Content[k+1].Content {
						if x < len(tc.Expect) {
							expectationPositions(f.Name, e, &tc.Expect[x])
						}
					}
				}
			}
		}
	}
}

// expectationPositions records where x (node e) and its values are.
func expectationPositions(file string, e *yaml.Node, x *Expectation) {
	x.Line, x.Col = e.Line, e.Column
	x.at = map[string]Pos{}
	for m := 0; m+1 < len(e.Content); m += 2 {
		k, v := e.Content[m], e.Content[m+1]
		if v.Tag == "!!null" {
			x.nulls = append(x.nulls, k)
		}
		x.at[k.Value] = Pos{file, v.Line, v.Column}
		switch k.Value {
		case "features":
			for j := 0; j+1 < len(v.Content); j += 2 {
				x.at["features."+v.Content[j].Value] = Pos{file, v.Content[j].Line, v.Content[j].Column}
			}
		case "hits", "ignored":
			for _, r := range v.Content {
				x.at[k.Value+"."+r.Value] = Pos{file, r.Line, r.Column}
			}
		}
	}
}

// decodeTransactions turns one transactions entry into events: the test
// keys apply, the rest is decoded and validated as POST /v1/score does.
func decodeTransactions(n *yaml.Node, start, prev time.Time) ([]*event.Event, []testLabel, error) {
	var m map[string]any
	if err := n.Decode(&m); err != nil {
		return nil, nil, fmt.Errorf("want an event mapping: %w", err)
	}
	if m == nil {
		return nil, nil, errors.New("want an event mapping, not an empty entry")
	}
	label, labelled := m["label"]
	fraud, after := false, 7*24*time.Hour
	if labelled {
		s, _ := label.(string)
		f, ok := testLabelValues[s]
		if !ok {
			return nil, nil, errors.New("label: want chargeback, confirmed_fraud, false_positive or legitimate")
		}
		fraud = f
	}
	if v, ok := m["label_after"]; ok {
		if !labelled {
			return nil, nil, errors.New("label_after: without a label")
		}
		d, err := parseTestDuration(v)
		if err != nil {
			return nil, nil, fmt.Errorf("label_after: %w", err)
		}
		after = d
	}
	at := prev.Add(time.Second)
	if v, ok := m["at"]; ok {
		d, err := parseTestDuration(v)
		if err != nil {
			return nil, nil, fmt.Errorf("at: %w", err)
		}
		at = start.Add(d)
	}
	repeat, every := 1, time.Second
	if v, ok := m["repeat"]; ok {
		n, isInt := v.(int)
		if !isInt || n < 1 || n > 10000 {
			return nil, nil, fmt.Errorf("repeat: want a count from 1 to 10000")
		}
		repeat = n
	}
	if v, ok := m["every"]; ok {
		d, err := parseTestDuration(v)
		if err != nil {
			return nil, nil, fmt.Errorf("every: %w", err)
		}
		every = d
	}
	if _, hasTime := m["time"]; hasTime {
		if _, hasAt := m["at"]; hasAt {
			return nil, nil, errors.New("at and time: give one (at is an offset from the case's start)")
		}
	}
	if _, hasTime := m["time"]; hasTime && repeat > 1 {
		return nil, nil, errors.New("time with repeat: the copies need times of their own; use at (and every) instead")
	}
	for k := range testKeys {
		delete(m, k)
	}
	id, _ := m["id"].(string)
	var out []*event.Event
	var labels []testLabel
	for i := range repeat {
		t := at.Add(time.Duration(i) * every)
		if tv, ok := m["time"]; ok && repeat == 1 {
			switch tv := tv.(type) {
			case time.Time:
				t = tv
			case string:
				p, err := time.Parse(time.RFC3339Nano, tv)
				if err != nil {
					return nil, nil, fmt.Errorf("time: %w", err)
				}
				t = p
			}
		}
		m["time"] = t.Format(time.RFC3339Nano)
		if repeat > 1 {
			m["id"] = fmt.Sprintf("%s-%d", id, i+1)
		}
		data, err := json.Marshal(m)
		if err != nil {
			return nil, nil, err
		}
		ev, err := event.Decode(data, t)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, ev)
		if labelled {
			labels = append(labels, testLabel{ev: ev, fraud: fraud, known: ev.Time.Add(after)})
		}
	}
	return out, labels, nil
}

func parseTestDuration(v any) (time.Duration, error) {
	s, ok := v.(string)
	if !ok {
		return 0, fmt.Errorf("want a duration such as 90s, 10m, 2h or 7d")
	}
	if n, ok := strings.CutSuffix(s, "d"); ok { // days, which time.ParseDuration lacks
		if days, err := strconv.Atoi(n); err == nil && days >= 0 {
			return time.Duration(days) * 24 * time.Hour, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("want a duration such as 90s, 10m, 2h or 7d, not %q", s)
	}
	return d, nil
}

// Observer computes an event's features into a vector and records the
// event, as the features engine does. If it is an io.Closer, it is closed
// after its test case.
type Observer interface {
	Observe(ev *event.Event, v *features.Vector)
}

// RequiresGeoIP marks a test case that needs the features engine to have
// an IP geolocation database (ip_country, card_travel_kmh, ...).
const RequiresGeoIP = "geoip"

// TestOptions select and condition test cases.
type TestOptions struct {
	Filter *regexp.Regexp // run the cases whose name or file/name matches
	GeoIP  bool           // the features engines have an IP geolocation database
}

// TestResult is the outcome of one test case.
type TestResult struct {
	File     string
	Name     string
	Skipped  string   // why the case was skipped
	Failures []string // what did not match; empty when it passed
	Duration time.Duration
}

// Passed reports a case that ran and matched.
func (r *TestResult) Passed() bool { return r.Skipped == "" && len(r.Failures) == 0 }

// RunTests runs test cases against a compiled set. newObserver builds a
// fresh features engine for each case; its schema must be the set's.
func RunTests(set *Set, newObserver func() (Observer, error), files []*TestFile, opt TestOptions) []TestResult {
	var out []TestResult
	for _, f := range files {
		for _, tc := range f.Tests {
			if opt.Filter != nil && !opt.Filter.MatchString(tc.Name) && !opt.Filter.MatchString(f.Name+"/"+tc.Name) {
				continue
			}
			start := time.Now()
			res := TestResult{File: f.Name, Name: tc.Name}
			if tc.Skip != "" {
				res.Skipped = tc.Skip
			} else if slices.Contains(tc.Requires, RequiresGeoIP) && !opt.GeoIP {
				res.Skipped = "needs an IP geolocation database (vigil rules test --geoip FILE.mmdb)"
			} else if missing := missingFeatures(set.Schema, tc); len(missing) > 0 {
				for _, name := range missing {
					res.Failures = append(res.Failures, fmt.Sprintf("expects feature %s, which the feature definitions do not provide%s",
						name, Suggest(name, featureNames(set.Schema), "")))
				}
			} else {
				res.Failures = runCase(set, newObserver, tc)
			}
			res.Duration = time.Since(start)
			out = append(out, res)
		}
	}
	return out
}

// featureNames lists the schema's feature names, sorted.
// CheckTests reports, without running them, the expectations of test
// files that cannot hold against set: a feature the definitions do not
// provide, a hit or ignored rule the set does not have. Each error has the
// expectation's position.
func CheckTests(set *Set, files []*TestFile) error {
	var errs errorList
	var rulesNames []string
	for _, r := range set.Rules {
		rulesNames = append(rulesNames, r.Name)
	}
	for _, f := range files {
		for _, tc := range f.Tests {
			for _, x := range tc.Expect {
				for _, name := range missingFeatures(set.Schema, &TestCase{Expect: []Expectation{x}}) {
					errs.add(x.pos(f.Name, "features."+name), "", "test %q expects feature %s, which the feature definitions do not provide%s",
						tc.Name, name, Suggest(name, featureNames(set.Schema), ""))
				}
				for key, list := range map[string]*[]string{"hits": x.Hits, "ignored": x.Ignored} {
					if list == nil {
						continue
					}
					for _, name := range *list {
						if set.Rule(name) == nil {
							errs.add(x.pos(f.Name, key+"."+name), "", "test %q expects a hit of rule %s, which the set does not have%s",
								tc.Name, name, Suggest(name, rulesNames, ""))
						}
					}
				}
			}
		}
	}
	return errs.err()
}

func featureNames(schema *features.Schema) []string {
	var out []string
	for _, f := range schema.Fields {
		out = append(out, f.Name)
	}
	slices.Sort(out)
	return out
}

func missingFeatures(schema *features.Schema, tc *TestCase) []string {
	var missing []string
	for _, x := range tc.Expect {
		for name := range x.Features {
			if _, ok := schema.Lookup(name); !ok && !slices.Contains(missing, name) {
				missing = append(missing, name)
			}
		}
	}
	slices.Sort(missing)
	return missing
}

func runCase(set *Set, newObserver func() (Observer, error), tc *TestCase) []string {
	obs, err := newObserver()
	if err != nil {
		return []string{"features: " + err.Error()}
	}
	if c, ok := obs.(io.Closer); ok {
		defer c.Close()
	}
	byID := map[string][]*Expectation{}
	for i := range tc.Expect {
		x := &tc.Expect[i]
		id := x.ID
		if id == "" {
			id = tc.events[len(tc.events)-1].ID
		}
		byID[id] = append(byID[id], x)
	}
	var fails []string
	lobs, takesLabels := obs.(LabelObserver)
	if len(tc.labels) > 0 && !takesLabels {
		return []string{"the features engine takes no labels"}
	}
	vec := features.NewVector(set.Schema)
	var env Env
	var ev Evaluator
	var res Result
	li := 0
	for _, e := range tc.events {
		for li < len(tc.labels) && !tc.labels[li].known.After(e.Time) {
			lobs.ObserveLabel(tc.labels[li].ev, tc.labels[li].fraud, tc.labels[li].known)
			li++
		}
		obs.Observe(e, vec)
		env.Set(e, vec)
		ev.Evaluate(set, &env, &res)
		for _, msg := range res.Errors {
			fails = append(fails, fmt.Sprintf("%s: rule error: %s", e.ID, msg))
		}
		for _, x := range byID[e.ID] {
			fails = append(fails, check(x, e.ID, &res, set.Schema, vec)...)
		}
	}
	return fails
}

func check(x *Expectation, id string, res *Result, schema *features.Schema, vec *features.Vector) []string {
	var fails []string
	failf := func(format string, args ...any) {
		fails = append(fails, fmt.Sprintf("%s (line %d): ", id, x.Line)+fmt.Sprintf(format, args...))
	}
	if x.Decision != "" && res.Decision != x.Decision {
		failf("decision %s, want %s (score %d, hits %s)", res.Decision, x.Decision, res.Score, ruleNames(res.Hits))
	}
	if x.Score != nil && (res.Score < x.Score.Min || res.Score > x.Score.Max) {
		failf("score %d, want %s (hits %s)", res.Score, x.Score, ruleNames(res.Hits))
	}
	if x.Hits != nil && !sameSet(ruleNameList(res.Hits), *x.Hits) {
		failf("hits %s, want %s", ruleNames(res.Hits), "["+strings.Join(*x.Hits, ", ")+"]")
	}
	if x.Ignored != nil && !sameSet(ruleNameList(res.Ignored), *x.Ignored) {
		failf("ignored hits %s, want %s", ruleNames(res.Ignored), "["+strings.Join(*x.Ignored, ", ")+"]")
	}
	if x.Reasons != nil {
		var got []string
		for _, h := range res.Hits {
			got = append(got, h.Code)
		}
		if !slices.Equal(got, *x.Reasons) {
			failf("reasons [%s], want [%s]", strings.Join(got, ", "), strings.Join(*x.Reasons, ", "))
		}
	}
	for _, name := range sortedKeys(x.Features) {
		i, _ := schema.Lookup(name)
		got, want := vec.Value(schema, i), x.Features[name]
		if !sameValue(got, want) {
			failf("feature %s = %s, want %s", name, showValue(got), showValue(want))
		}
	}
	return fails
}

func ruleNameList(hits []Hit) []string {
	out := make([]string, len(hits))
	for i, h := range hits {
		out[i] = h.Rule
	}
	return out
}

func ruleNames(hits []Hit) string { return "[" + strings.Join(ruleNameList(hits), ", ") + "]" }

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func sameValue(got, want any) bool {
	switch w := want.(type) {
	case nil:
		return got == nil
	case int:
		g, ok := got.(float64)
		return ok && g == float64(w)
	case float64:
		g, ok := got.(float64)
		return ok && math.Abs(g-w) <= 1e-6*math.Max(1, math.Abs(w))
	}
	return got == want
}

func showValue(v any) string {
	if v == nil {
		return "missing"
	}
	return fmt.Sprint(v)
}
