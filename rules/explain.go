package rules

import (
	"strings"

	"github.com/vigil-fraud/vigil/features"
)

// Explanation shows how a set decided one event: the decision, and for
// every rule its value and the values it read.
type Explanation struct {
	Decision Action   `json:"decision"`
	Score    int      `json:"score"`
	Ruleset  string   `json:"ruleset"`
	Hits     []Hit    `json:"hits"`
	Ignored  []Hit    `json:"ignored"`
	Errors   []string `json:"errors"`
	Rules    []Trace  `json:"rules"`
}

// Trace is one rule's evaluation.
type Trace struct {
	Rule     string `json:"rule"`
	Value    bool   `json:"value"`           // what when evaluated to
	Error    string `json:"error,omitempty"` // why it could not be evaluated
	Excluded string `json:"excluded,omitempty"`
	Action   Action `json:"action"`
	Score    int    `json:"score"`
	Mode     Mode   `json:"mode"`
	Reads    []Read `json:"reads"` // features and event fields, in that order
}

// Read is a value a rule's expression reads; Value is nil when missing.
type Read struct {
	Name    string `json:"name"`
	Feature bool   `json:"feature"`
	Value   any    `json:"value"`
}

// Explain evaluates s over env, as Evaluate does, and records each rule's
// value and reads. It is for tools (vigil rules explain), not the hot path.
func (s *Set) Explain(env *Env) *Explanation {
	var ev Evaluator
	var res Result
	ev.Evaluate(s, env, &res)
	x := &Explanation{Decision: res.Decision, Score: res.Score, Ruleset: s.VersionString(),
		Hits: append([]Hit{}, res.Hits...), Ignored: append([]Hit{}, res.Ignored...), Errors: append([]string{}, res.Errors...)}
	ignored := map[string]string{}
	for _, h := range res.Ignored {
		ignored[h.Rule] = h.Excluded
	}
	for _, r := range s.Rules {
		t := Trace{Rule: r.Name, Action: r.Action, Score: r.Score, Mode: r.Mode, Reads: []Read{}}
		v, err := ev.Run(r, env)
		if err != nil {
			t.Error = err.Error()
		}
		t.Value = v
		if v {
			t.Excluded = ignored[r.Name]
		}
		for _, f := range r.Features {
			i, _ := s.Schema.Lookup(f)
			var val any
			if i < len(env.Has) && env.Has[i] {
				switch s.Schema.Fields[i].Type {
				case features.Number:
					val = env.Num[i]
				case features.Bool:
					val = env.Bool[i]
				default:
					val = env.Str[i]
				}
			}
			t.Reads = append(t.Reads, Read{Name: f, Feature: true, Value: val})
		}
		for _, f := range r.Fields {
			t.Reads = append(t.Reads, Read{Name: f, Value: fieldValue(env, f)})
		}
		x.Rules = append(x.Rules, t)
	}
	return x
}

func fieldValue(env *Env, path string) any {
	if name, ok := strings.CutPrefix(path, "attributes."); ok {
		return env.Attributes[name]
	}
	if path == "attributes" {
		return env.Attributes
	}
	if f, ok := eventFieldIndex[path]; ok {
		return f.value(env)
	}
	return nil
}
