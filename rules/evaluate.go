package rules

import (
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

// Result is the outcome of evaluating a set for one event.
type Result struct {
	Decision Action
	Score    int
	Hits     []Hit // hits that count, most severe first, then by score
	Ignored  []Hit // shadow and out-of-rollout hits, recorded only
	Errors   []string
}

// Reset empties the result, keeping its capacity.
func (r *Result) Reset() {
	r.Decision, r.Score = Approve, 0
	r.Hits, r.Ignored, r.Errors = r.Hits[:0], r.Ignored[:0], r.Errors[:0]
}

// Evaluator evaluates sets; it holds the per-goroutine VM. It is not safe
// for concurrent use: keep one per goroutine (or in a sync.Pool).
type Evaluator struct {
	vm vm.VM
}

// Evaluate runs every rule of s over env and computes the decision:
//
//   - score is the sum of the scores of counting hits, capped at 100;
//   - the decision is the most severe of: the actions of counting step_up
//     and pause hits, pause when score >= pause_at, step_up when score >=
//     step_up_at;
//   - a counting approve hit (an allow-list rule) cancels the score-based
//     step_up, but neither a step_up or pause rule hit nor a score-based pause.
//
// Shadow hits and hits outside a rule's rollout are recorded in Ignored and
// change nothing.
func (ev *Evaluator) Evaluate(s *Set, env *Env, res *Result) {
	res.Reset()
	env.Lists = s.lists
	var rolloutHash uint32
	hashed := false
	explicit, allow := Approve, false
	for _, r := range s.Rules {
		out, err := ev.vm.Run(r.Program, env)
		if err != nil {
			res.Errors = append(res.Errors, r.Name+": "+err.Error())
			continue
		}
		if b, _ := out.(bool); !b {
			continue
		}
		h := Hit{Rule: r.Name, Code: r.Reason, Message: r.Message, Action: r.Action, Score: r.Score}
		if r.rollout < 10000 {
			if !hashed {
				rolloutHash, hashed = bucket(env.ID), true
			}
			if rolloutBucket(rolloutHash, r.Name) >= r.rollout {
				h.Excluded = "rollout"
			}
		}
		if r.Mode == Shadow {
			h.Excluded = "shadow"
		}
		if h.Excluded != "" {
			res.Ignored = append(res.Ignored, h)
			continue
		}
		res.Hits = append(res.Hits, h)
		res.Score += r.Score
		if r.Action == Approve {
			allow = true
		} else if r.Action.Severity() > explicit.Severity() {
			explicit = r.Action
		}
	}
	res.Score = min(res.Score, 100)
	byScore := Approve
	switch {
	case res.Score >= s.PauseAt:
		byScore = Pause
	case res.Score >= s.StepUpAt && !allow:
		byScore = StepUp
	}
	res.Decision = explicit
	if byScore.Severity() > explicit.Severity() {
		res.Decision = byScore
	}
	slices.SortStableFunc(res.Hits, func(a, b Hit) int {
		if d := b.Action.Severity() - a.Action.Severity(); d != 0 {
			return d
		}
		return b.Score - a.Score
	})
}

// bucket hashes a transaction id (FNV-1a).
func bucket(id string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(id); i++ {
		h ^= uint32(id[i])
		h *= 16777619
	}
	return h
}

// rolloutBucket mixes the rule name into the id hash so that rules with the
// same percentage do not all pick the same transactions; 0..9999.
func rolloutBucket(idHash uint32, rule string) uint32 {
	h := idHash
	for i := 0; i < len(rule); i++ {
		h ^= uint32(rule[i])
		h *= 16777619
	}
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	return h % 10000
}
