package rules

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"

	"github.com/vigil-fraud/vigil/engine/event"
	"github.com/vigil-fraud/vigil/features"
)

// benchWhens are typical rule expressions (as bench/rules_test.go's).
var benchWhens = []string{
	"card_count_10m >= %d",
	"amount >= %d00",
	"account_new_device and amount >= %d0",
	"card.country in @risky or billing.country in @risky",
	"billing.country != card.country and amount > %d",
	"account_amount_ratio_30d >= %d and amount >= 200",
	"card_amount_sum_24h > %d00 and card_count_24h >= 3",
	"card_travel_kmh > %d00",
	"ip_card_country_mismatch and ip_billing_country_mismatch",
	"account_hour_unusualness >= 0.9 and amount >= %d",
}

func benchRuleSource(n int) (src string, whens []string) {
	var b strings.Builder
	b.WriteString("lists:\n  risky: [KP, IR, SY, CU]\nrules:\n")
	for i := range n {
		w := strings.ReplaceAll(benchWhens[i%len(benchWhens)], "%d", fmt.Sprint(3+i/len(benchWhens)))
		whens = append(whens, w)
		fmt.Fprintf(&b, "  - {name: r%d, when: %q, action: step_up, score: 1, reason: R%d}\n", i, w, i)
	}
	return b.String(), whens
}

// BenchmarkEnvironments compares the ways a rule can see its environment,
// per event for 100 typical rules, the environment filled per event:
//
//	sample-map: a typed sample map[string]any at compile time, a map
//	            filled with every value at run time (OpLoadFast);
//	patch:      the Env struct, feature names patched to typed slice
//	            slots, every value read by expr's VM (reflection, boxing);
//	lowered:    patch, plus typed subexpressions compiled to closures,
//	            the programs run by expr's VM;
//	evaluate:   lowered, run by Evaluator.Evaluate (what vigil runs:
//	            a wholly lowered rule's closure is called without the VM).
func BenchmarkEnvironments(b *testing.B) {
	schema := contractSchema(b)
	src, whens := benchRuleSource(100)
	r := rand.New(rand.NewPCG(3, 4))
	envs := make([]*Env, 256)
	for i := range envs {
		envs[i] = randomEnv(b, schema, r)
	}
	ev := &event.Event{ID: "tx", Amount: 12345, Currency: "USD", Card: event.Card{Token: "t", Country: "US"}}
	for _, mode := range []string{"sample-map", "patch", "lowered", "evaluate"} {
		b.Run(mode, func(b *testing.B) {
			var m vm.VM
			if mode == "sample-map" {
				progs, fill := sampleMapPrograms(b, schema, whens)
				env := map[string]any{}
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					fill(env, envs[i%len(envs)])
					for _, p := range progs {
						m.Run(p, env)
					}
					i++
				}
				return
			}
			set, err := compileSet([]Source{{"b.yaml", []byte(src)}}, schema, nil, options{noLower: mode == "patch"})
			if err != nil {
				b.Fatal(err)
			}
			vec := features.NewVector(schema)
			var e Env
			var evaluator Evaluator
			var res Result
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				x := envs[i%len(envs)]
				vec.Num, vec.Bool, vec.Str, vec.Has = x.Num, x.Bool, x.Str, x.Has
				e.Set(ev, vec)
				e.Card, e.Billing = x.Card, x.Billing
				if mode == "evaluate" {
					evaluator.Evaluate(set, &e, &res)
					i++
					continue
				}
				e.Lists = set.lists
				var env any = &e
				for _, p := range set.programs {
					m.Run(p, env)
				}
				i++
			}
		})
	}
}

// sampleMapPrograms compiles whens against a typed sample map and returns
// a function filling such a map from an Env.
func sampleMapPrograms(b *testing.B, schema *features.Schema, whens []string) ([]*vm.Program, func(map[string]any, *Env)) {
	sample := map[string]any{
		"amount": 0.0, "amount_minor": int64(0), "currency": "", "channel": "", "id": "",
		"card": event.Card{}, "billing": event.Location{}, "risky": map[string]bool{},
	}
	for _, f := range schema.Fields {
		sample[f.Name] = map[features.Type]any{features.Number: 0.0, features.Bool: false, features.String: ""}[f.Type]
	}
	var progs []*vm.Program
	for _, w := range whens {
		p, err := expr.Compile(strings.ReplaceAll(w, "@", ""), expr.Env(sample), expr.AsBool())
		if err != nil {
			b.Fatal(err)
		}
		progs = append(progs, p)
	}
	risky := map[string]bool{"KP": true, "IR": true, "SY": true, "CU": true}
	fill := func(m map[string]any, e *Env) {
		m["amount"], m["amount_minor"], m["currency"], m["channel"], m["id"] = e.Amount, e.AmountMinor, e.Currency, e.Channel, e.ID
		m["card"], m["billing"], m["risky"] = e.Card, e.Billing, risky
		for i, f := range schema.Fields {
			switch f.Type {
			case features.Number:
				m[f.Name] = e.Num[i]
			case features.Bool:
				m[f.Name] = e.Bool[i]
			default:
				m[f.Name] = e.Str[i]
			}
		}
	}
	return progs, fill
}
