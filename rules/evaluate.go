package rules

import (
	"fmt"
	"slices"

	"github.com/expr-lang/expr/vm"
)

// Hit is a rule that fired for an event.
type Hit struct {
	Rule    string `json:"rule"`
	Code    string `json:"code"`
	Message string `json:"message,omitempty"`
	Action  Action `json:"action"`
	Score   int    `json:"score"`
	// Why a hit did not count: "shadow" or "rollout"; empty when it counted.
	Excluded string `json:"excluded,omitempty"`
}

// Why a hit did not count.
const (
	ExcludedShadow  = "shadow"
	ExcludedRollout = "rollout"
)

// Result is the outcome of evaluating a set for one event.
type Result struct {
	Decision Action
	Score    int
	Hits     []Hit    // hits that count, most severe first, then by score
	Ignored  []Hit    // shadow and out-of-rollout hits, recorded only
	Errors   []string // "rule: message" for each rule that failed to evaluate
}

// Reset empties the result, keeping its capacity.
func (r *Result) Reset() {
	r.Decision, r.Score = Approve, 0
	r.Hits, r.Ignored, r.Errors = r.Hits[:0], r.Ignored[:0], r.Errors[:0]
}

// Evaluator evaluates sets; it holds the per-goroutine VM. It is not safe
// for concurrent use: keep one per goroutine (or in a sync.Pool). Sets and
// their compiled programs are shared; an Evaluator and an Env are not.
type Evaluator struct {
	vm vm.VM
}

// Run evaluates one rule's expression.
func (ev *Evaluator) Run(r *Rule, env *Env) (bool, error) {
	ev.vm.MemoryBudget = MemoryBudget
	out, err := ev.vm.Run(r.Program, env)
	if err != nil {
		return false, err
	}
	b, _ := out.(bool)
	return b, nil
}

// Evaluate runs every rule of s over env and computes the decision:
//
//   - score is the sum of the scores of counting hits, capped at 100;
//   - the decision is the most severe of: the actions of counting step_up
//     and pause hits, pause when score >= pause_at, step_up when score >=
//     step_up_at;
//   - a counting approve hit with score 0 (an allow-list rule) cancels the
//     score-based step_up, but neither a step_up or pause rule hit nor a
//     score-based pause; an approve rule with a score is a risk signal: it
//     adds its points and asks for nothing itself.
//
// A hit outside its rule's rollout (by a hash of the transaction id) or of
// a shadow rule is recorded in Ignored and changes nothing. A rule that
// fails to evaluate is recorded in Errors and does not fire.
func (ev *Evaluator) Evaluate(s *Set, env *Env, res *Result) {
	res.Reset()
	s.prepare(env)
	ev.vm.MemoryBudget = MemoryBudget
	var idHash uint32
	hashed := false
	explicit, allow := Approve, false
	for i, p := range s.programs {
		var b bool
		var err error
		if pred := s.preds[i]; pred != nil {
			b, err = runPredicate(pred, env)
		} else {
			var out any
			out, err = ev.vm.Run(p, env)
			b, _ = out.(bool)
		}
		if !b || err != nil {
			if err != nil {
				res.Errors = append(res.Errors, s.Rules[i].Name+": "+err.Error())
			}
			continue
		}
		r := s.Rules[i] // touched only on a hit
		h := Hit{Rule: r.Name, Code: r.Reason, Message: r.Message, Action: r.Action, Score: r.Score}
		if r.rollout < 10000 {
			if !hashed {
				idHash, hashed = hashID(env.ID), true
			}
			if rolloutBucket(idHash, r.Name) >= r.rollout {
				h.Excluded = ExcludedRollout
			}
		}
		if h.Excluded == "" && r.Mode == Shadow {
			h.Excluded = ExcludedShadow
		}
		if h.Excluded != "" {
			res.Ignored = append(res.Ignored, h)
			continue
		}
		res.Hits = append(res.Hits, h)
		res.Score += r.Score
		if r.Action == Approve {
			allow = allow || r.Score == 0
		} else if r.Action.Severity() > explicit.Severity() {
			explicit = r.Action
		}
	}
	res.Score = min(res.Score, 100)
	res.Decision = decide(explicit, allow, res.Score, s.StepUpAt, s.PauseAt)
	slices.SortStableFunc(res.Hits, bySeverityThenScore)
	slices.SortStableFunc(res.Ignored, bySeverityThenScore)
}

// runPredicate runs a lowered rule's predicate: what its program does (one
// typed call of the same closure) without the VM around it. A run-time
// panic (an integer division by zero) is the rule's error, as in the VM.
func runPredicate(pred boolFn, env *Env) (b bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	return pred(env), nil
}

// prepare readies env for evaluating s's rules.
func (s *Set) prepare(env *Env) {
	env.Lists, env.ListValues = s.lists, s.listValues
	if s.readsAttributes {
		env.PrepareAttributes()
	}
}

// decide combines the most severe explicit action, whether an allow-list
// rule fired, and the score.
func decide(explicit Action, allow bool, score, stepUpAt, pauseAt int) Action {
	byScore := Approve
	switch {
	case score >= pauseAt:
		byScore = Pause
	case score >= stepUpAt && !allow:
		byScore = StepUp
	}
	if byScore.Severity() > explicit.Severity() {
		return byScore
	}
	return explicit
}

func bySeverityThenScore(a, b Hit) int {
	if d := b.Action.Severity() - a.Action.Severity(); d != 0 {
		return d
	}
	return b.Score - a.Score
}
