package features_test

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/expr-lang/expr/builtin"

	"github.com/vigil-fraud/vigil/engine/event"
	"github.com/vigil-fraud/vigil/features"
	"github.com/vigil-fraud/vigil/rules"
)

// TestNamesRulesCanRead checks that Parse accepts a feature name exactly
// when rules can read a feature of that name: expression keywords, event
// fields and has are refused where they are declared, with a position,
// rather than when a ruleset fails to compile against them.
func TestNamesRulesCanRead(t *testing.T) {
	names := []string{"not", "in", "or", "and", "matches", "contains", "let", "if", "else", "true", "false", "nil",
		"has", "now", "env", "ip", "geo", "in_1h", "card_count", "amount_1h", "x1"}
	for _, f := range builtin.Builtins {
		names = append(names, f.Name)
	}
	ft := reflect.TypeFor[event.Fields]()
	for i := range ft.NumField() {
		if tag := ft.Field(i).Tag.Get("expr"); tag != "" && tag != "-" {
			names = append(names, tag)
		}
	}
	for _, name := range names {
		src := fmt.Sprintf("features:\n  - {name: %s, kind: recency, entity: card.token, measure: since_first}\n", name)
		_, perr := features.Parse("f.yaml", []byte(src))
		if perr != nil && !validName(name) {
			continue // not a feature name at all (startsWith, toJSON)
		}
		schema, err := features.NewSchema([]features.Field{{Name: name, Type: features.Number}})
		if err != nil {
			t.Fatal(err)
		}
		readable := true
		for _, when := range []string{name + " > 0", "has(" + name + ")"} {
			rule := fmt.Sprintf("rules:\n  - name: r\n    when: '%s'\n    action: pause\n    score: 1\n    reason: R\n", when)
			if _, err := rules.Compile([]rules.Source{{Name: "r.yaml", Data: []byte(rule)}}, schema); err != nil {
				readable = false
			}
		}
		if readable != (perr == nil) {
			t.Errorf("feature name %s: rules can read it: %v; Parse error: %v", name, readable, perr)
		}
	}
}

func validName(s string) bool {
	for i, c := range s {
		if !(c >= 'a' && c <= 'z' || c == '_' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return s != "" && len(s) <= 64
}

// TestFiltersReadEventsAsRules checks that a filter passes an event exactly
// when the same text as a rule's when fires on it, over events with and
// without the fields the expressions read: a comparison involving a
// missing field (an empty string, a zero time, an absent attribute) is
// false in both, whichever the operator.
func TestFiltersReadEventsAsRules(t *testing.T) {
	exprs := []string{
		`channel != "pos"`,
		`channel == "pos"`,
		`channel not in ["pos", "atm"]`,
		`not (channel in ["pos"])`,
		`not (channel == "pos")`,
		`channel in ["ecommerce", "moto"] and attributes.declined == true`,
		`channel startsWith "e" or channel matches "^m"`,
		`attributes.code != 5`,
		`attributes.code > 5`,
		`attributes.code + 1 >= 6`,
		`has(channel)`,
		`not has(card.country)`,
		`has(attributes.code)`,
		`has(account.created)`,
		`has(amount)`,
		`card.country != merchant.country`,
		`lower(card.country) != "fr"`,
		`card.country + "x" == "x"`,
		`len(channel) == 0`,
		`account.created < time`,
		`not (account.created < time)`,
		`amount > 10 or channel != "pos"`,
		`amount_minor >= 1000 and card.bin not in ["411111"]`,
		`let c = channel; c != "pos"`,
		`any(["pos", "atm"], # != channel)`,
		`channel == "" or channel != ""`,
		`card.country contains "R" ? true : merchant.mcc != "5411"`,
		`let a = card.country; let b = merchant.country; a != b`,
		`(has(channel) ? channel : card.country) != "pos"`,
		`(channel ?? "none") == "none"`,
		`(card.country ?? merchant.country) != "FR"`,
	}
	var defs, whens strings.Builder
	defs.WriteString("features:\n")
	whens.WriteString("rules:\n")
	for i, x := range exprs {
		fmt.Fprintf(&defs, "  - {name: f%d, entity: card.token, aggregate: count, filter: '%s', windows: [1h]}\n", i, x)
		fmt.Fprintf(&whens, "  - {name: r%d, when: '%s', action: pause, score: 1, reason: R%d}\n", i, x, i)
	}
	file, err := features.Parse("parity.yaml", []byte(defs.String()))
	if err != nil {
		t.Fatal(err)
	}
	fe, err := features.New(file, features.Options{FingerprintKey: []byte("0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	defer fe.Close()
	set, err := rules.Compile([]rules.Source{{Name: "parity.yaml", Data: []byte(whens.String())}}, fe.Schema())
	if err != nil {
		t.Fatal(err)
	}
	var events []string
	for _, channel := range []string{``, `"channel": "pos",`, `"channel": "ecommerce",`, `"channel": "moto",`} {
		for _, card := range []string{``, `, "country": "FR"`, `, "country": "DE", "bin": "411111"`} {
			for _, rest := range []string{``, `, "account": {"id": "a", "created": "2025-01-01T00:00:00Z"}, "merchant": {"country": "FR", "mcc": "5411"}`,
				`, "attributes": {"code": 5, "declined": true}`, `, "attributes": {"code": 7, "declined": false}, "merchant": {"country": "DE"}`} {
				events = append(events, fmt.Sprintf(`{"id": "tx_%%[2]d", %s "amount": %%[1]d, "currency": "EUR", "card": {"token": "tok_%%[2]d"%s}%s}`, channel, card, rest))
			}
		}
	}
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	v := features.NewVector(fe.Schema())
	var env rules.Env
	var eval rules.Evaluator
	var res rules.Result
	n := 0
	for _, amount := range []int{500, 5000} {
		for _, tmpl := range events {
			n++
			src := fmt.Sprintf(tmpl, amount, n) // a new card: its count is 1 when it passes
			ev, err := event.Decode([]byte(src), now)
			if err != nil {
				t.Fatalf("%s: %v", src, err)
			}
			ev.Time = now.Add(time.Duration(n) * time.Second)
			fe.Observe(ev, v)
			env.Set(ev, v)
			eval.Evaluate(set, &env, &res)
			fired := map[string]bool{}
			for _, h := range res.Hits {
				fired[h.Rule] = true
			}
			if len(res.Errors) > 0 {
				t.Errorf("%s: rule errors %v", src, res.Errors)
			}
			for i, x := range exprs {
				slot, _ := fe.Schema().Lookup(fmt.Sprintf("f%d_1h", i))
				passed := v.Has[slot] && v.Num[slot] == 1
				if passed != fired[fmt.Sprintf("r%d", i)] {
					t.Errorf("%s on %s: filter passes %v, rule fires %v", x, src, passed, !passed)
				}
			}
		}
	}
}
