package rules

import (
	"fmt"
	"strings"
	"testing"
)

// decisionSet has one rule per (action, score) that fires on amount_minor
// == its trigger, so that a test picks the rules that fire.
const decisionSet = `
ruleset:
  step_up_at: 40
  pause_at: 80
rules:
  - {name: s30, when: "amount_minor % 2 == 0", action: step_up, score: 30, reason: S30}
  - {name: p0, when: "amount_minor % 3 == 0", action: pause, score: 0, reason: P0}
  - {name: a0, when: "amount_minor % 5 == 0", action: approve, score: 0, reason: ALLOW}
  - {name: a15, when: "amount_minor % 7 == 0", action: approve, score: 15, reason: ALLOW_PLUS}
  - {name: x35, when: "amount_minor % 11 == 0", action: approve, score: 35, reason: X35}
  - {name: x50, when: "amount_minor % 13 == 0", action: approve, score: 50, reason: X50}
  - {name: shadow_pause, when: "amount_minor % 17 == 0", action: pause, score: 100, reason: SHADOW, mode: shadow}
  - {name: off, when: "amount_minor % 19 == 0", action: pause, score: 100, reason: OFF, rollout: 0}
`

func TestDecision(t *testing.T) {
	s, err := Compile([]Source{{"d.yaml", []byte(decisionSet)}}, contractSchema(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		minor    int64
		decision Action
		score    int
		reasons  string
		ignored  string
	}{
		{1, Approve, 0, "", ""},
		{2, StepUp, 30, "S30", ""},                                                   // below step_up_at: the rule's own action
		{2 * 11, StepUp, 65, "S30,X35", ""},                                          // step_up by the rule, 65 < pause_at
		{11 * 13, Pause, 85, "X50,X35", ""},                                          // score-based pause from two signal rules
		{5 * 11, Approve, 35, "X35,ALLOW", ""},                                       // 35 < 40: approve
		{5 * 13, Approve, 50, "X50,ALLOW", ""},                                       // 50 >= step_up_at, but an allow-list rule fired: approve
		{2 * 5 * 13, Pause, 80, "S30,X50,ALLOW", ""},                                 // 80 = pause_at: an allow-list does not cancel a score-based pause
		{3, Pause, 0, "P0", ""},                                                      // an explicit pause rule with no score
		{3 * 5, Pause, 0, "P0,ALLOW", ""},                                            // an allow-list never cancels an explicit pause
		{2 * 5, StepUp, 30, "S30,ALLOW", ""},                                         // nor an explicit step_up
		{7 * 13, StepUp, 65, "X50,ALLOW_PLUS", ""},                                   // approve rules with scores are signals: 65 >= step_up_at
		{5 * 7 * 13, Approve, 65, "X50,ALLOW_PLUS,ALLOW", ""},                        // an allow-list rule (score 0) cancels that
		{17, Approve, 0, "", "SHADOW"},                                               // shadow: recorded, no effect
		{19, Approve, 0, "", "OFF"},                                                  // outside its rollout
		{2 * 17 * 19, StepUp, 30, "S30", "SHADOW,OFF"},                               // both ignored
		{2 * 3 * 5 * 7 * 11 * 13, Pause, 100, "P0,S30,X50,X35,ALLOW_PLUS,ALLOW", ""}, // capped at 100; by severity, then score
	} {
		env := testEnv(t, s.Schema, nil)
		env.AmountMinor = tc.minor
		var ev Evaluator
		var res Result
		ev.Evaluate(s, env, &res)
		want := tc.decision
		if res.Decision != want || res.Score != tc.score || codes(res.Hits) != tc.reasons || codes(res.Ignored) != tc.ignored || len(res.Errors) > 0 {
			t.Errorf("amount_minor %d: %s %d [%s] ignored [%s] %v; want %s %d [%s] [%s]", tc.minor,
				res.Decision, res.Score, codes(res.Hits), codes(res.Ignored), res.Errors, want, tc.score, tc.reasons, tc.ignored)
		}
	}
}

func codes(hits []Hit) string {
	var out []string
	for _, h := range hits {
		out = append(out, h.Code)
	}
	return strings.Join(out, ",")
}

func TestEvaluationErrorsDoNotFire(t *testing.T) {
	s := mustCompileOne(t, contractSchema(t), "amount_minor % (amount_minor - 12345) == 0")
	env := testEnv(t, s.Schema, nil)
	var ev Evaluator
	var res Result
	ev.Evaluate(s, env, &res)
	if len(res.Hits) != 0 || len(res.Errors) != 1 || !strings.HasPrefix(res.Errors[0], "r: ") || !strings.Contains(res.Errors[0], "divide by zero") {
		t.Fatalf("%+v", res)
	}
}

func TestRolloutIsDeterministicAndProportional(t *testing.T) {
	for _, pct := range []float64{0, 0.5, 10, 33.33, 50, 100} {
		src := fmt.Sprintf("rules:\n  - {name: a, when: 'true', action: step_up, score: 0, reason: A, rollout: %v}\n  - {name: b, when: 'true', action: step_up, score: 0, reason: B, rollout: %v}\n", pct, pct)
		s, err := Compile([]Source{{"r.yaml", []byte(src)}}, contractSchema(t))
		if err != nil {
			t.Fatal(err)
		}
		var ev Evaluator
		var res Result
		in, both := 0, 0
		const n = 40000
		for i := range n {
			env := testEnv(t, s.Schema, nil)
			env.ID = fmt.Sprintf("tx_%d", i)
			ev.Evaluate(s, env, &res)
			counted := map[string]bool{}
			for _, h := range res.Hits {
				counted[h.Rule] = true
			}
			if counted["a"] {
				in++
			}
			if counted["a"] && counted["b"] {
				both++
			}
			if counted["a"] != s.Rules[0].InRollout(env.ID) {
				t.Fatalf("%s: InRollout disagrees", env.ID)
			}
			ev.Evaluate(s, env, &res) // the same id decides the same way
			if again := len(res.Hits) > 0 && res.Hits[0].Rule == "a"; again != counted["a"] {
				t.Fatalf("%s: not deterministic", env.ID)
			}
		}
		got := float64(in) / n * 100
		if d := got - pct; d > 1 || d < -1 {
			t.Errorf("rollout %v%%: %.2f%% of transactions", pct, got)
		}
		// two rules at the same percentage pick independent transactions
		if pct == 50 {
			if f := float64(both) / n; f < 0.23 || f > 0.27 {
				t.Errorf("rules a and b at 50%% overlap on %.1f%% of transactions, want ~25%%", f*100)
			}
		}
	}
}
