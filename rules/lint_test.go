package rules

import (
	"strings"
	"testing"
)

func TestLint(t *testing.T) {
	src := `
ruleset: {step_up_at: 40, pause_at: 80}
lists:
  vips: [a]
rules:
  - {name: contradiction, when: "amount > 100 and card_count_1h > 3 and amount < 50", action: step_up, score: 10, reason: A}
  - {name: same_value, when: "card.country == 'US' and card.country == 'FR'", action: step_up, score: 10, reason: B}
  - {name: constant, when: "1 > 2", action: step_up, score: 10, reason: C}
  - {name: always, when: "true", action: step_up, score: 10, reason: D}
  - {name: empty, when: "billing.country == ''", action: step_up, score: 10, reason: E}
  - {name: off, when: "amount > 1", action: step_up, score: 10, reason: F, rollout: 0}
  - {name: copy, when: "amount   >  1", action: pause, score: 10, reason: G}
  - {name: shared_reason, when: "amount > 2", action: step_up, score: 10, reason: G}
  - {name: too_strong, when: "amount > 3", action: step_up, score: 85, reason: H}
  - {name: fine, when: "card_count_1h >= 3 and card_count_1h <= 10", action: step_up, score: 0, reason: I}
  - {name: open_then_equal, when: "amount > 5 and amount == 5", action: step_up, score: 0, reason: J}
  - {name: equal_after_open, when: "card_count_1h < 5 and card_count_1h == 5", action: step_up, score: 0, reason: K}
  - {name: listed, when: "any([card_count_1h, 2], # > 1)", action: step_up, score: 0, reason: L}
  - {name: equal_in_range, when: "amount >= 5 and amount == 5 and amount <= 5", action: step_up, score: 0, reason: M}
  - {name: mapped, when: '{"c": billing.country}.c != "US"', action: step_up, score: 0, reason: N}
`
	s, err := Compile([]Source{{"l.yaml", []byte(src)}}, contractSchema(t))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range Lint(s) {
		got = append(got, w.String())
	}
	text := strings.Join(got, "\n")
	for _, want := range []string{
		`l.yaml:6:5: rule "contradiction": never fires: amount > 100 and amount < 50 cannot all hold [never-fires]`,
		`l.yaml:7:5: rule "same_value": never fires: card.country == "US" and card.country == "FR" cannot all hold [never-fires]`,
		`l.yaml:8:5: rule "constant": the expression is always false [never-fires]`,
		`l.yaml:9:5: rule "always": the expression is always true: the rule fires on every transaction [always-fires]`,
		`l.yaml:10:5: rule "empty": a comparison with "" is always false`,
		`l.yaml:11:5: rule "off": rollout 0: the rule never counts`,
		`l.yaml:12:5: rule "copy": same expression as rule "off"`,
		`l.yaml:13:5: rule "shared_reason": reason G is also rule "copy"'s`,
		`l.yaml:14:5: rule "too_strong": score 85 reaches pause_at 80 by itself`,
		`l.yaml:16:5: rule "open_then_equal": never fires: amount > 5 and amount == 5 cannot all hold [never-fires]`,
		`l.yaml:17:5: rule "equal_after_open": never fires: card_count_1h < 5 and card_count_1h == 5 cannot all hold [never-fires]`,
		`l.yaml:18:5: rule "listed": a list or map literal holds a value that may be missing`,
		`l.yaml:20:5: rule "mapped": a list or map literal holds a value that may be missing`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("missing %q", want)
		}
	}
	if strings.Contains(text, `"fine"`) || strings.Contains(text, `"equal_in_range"`) || len(got) != 13 {
		t.Errorf("%d warnings:\n%s", len(got), text)
	}

	thresholds := `
ruleset: {step_up_at: 40, pause_at: 80}
rules:
  - {name: allow, when: "account.id == 'x'", action: approve, score: 0, reason: ALLOW}
  - {name: weak, when: "amount > 1", action: step_up, score: 20, reason: WEAK}
`
	s, err = Compile([]Source{{"t.yaml", []byte(thresholds)}}, contractSchema(t))
	if err != nil {
		t.Fatal(err)
	}
	got = nil
	for _, w := range Lint(s) {
		got = append(got, w.String())
	}
	text = strings.Join(got, "\n")
	if !strings.Contains(text, `rule "allow": allow-list rule with no effect`) || !strings.Contains(text, "t.yaml:1:1: the active rules' scores add up to 20: step_up_at 40 and pause_at 80 are never reached by score [threshold]") {
		t.Errorf("threshold warnings:\n%s", text)
	}
}
