package rules

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/vigil-fraud/vigil/features"
)

// exprGen writes random, mostly well-typed rule expressions over the
// contract schema, driven by a random source.
type exprGen struct {
	r *rand.Rand
}

func (g *exprGen) pick(xs ...string) string { return xs[g.r.IntN(len(xs))] }

func (g *exprGen) boolExpr(depth int) string {
	if depth <= 0 {
		return g.pick("account_new_device", "ip_card_country_mismatch", "true", "false", "has(card_count_1h)", "has(billing.country)", "has(ip_country)")
	}
	switch g.r.IntN(14) {
	case 0, 1:
		return fmt.Sprintf("%s %s %s", g.num(depth-1), g.pick("<", "<=", ">", ">=", "==", "!="), g.num(depth-1))
	case 2:
		return fmt.Sprintf("%s %s %s", g.str(), g.pick("==", "!=", "<", ">="), g.str())
	case 3:
		return fmt.Sprintf("(%s %s %s)", g.boolExpr(depth-1), g.pick("and", "or", "&&", "||"), g.boolExpr(depth-1))
	case 4:
		return fmt.Sprintf("%s(%s)", g.pick("not ", "!"), g.boolExpr(depth-1))
	case 5:
		return fmt.Sprintf("%s %s @%s", g.str(), g.pick("in", "not in"), g.pick("risky", "vips"))
	case 6:
		return fmt.Sprintf("%s %s ['KP', 'US', '']", g.str(), g.pick("in", "not in"))
	case 7:
		return fmt.Sprintf("%s in [1, 2.5, 5, -3]", g.num(depth-1))
	case 8:
		return fmt.Sprintf("%s %s %s", g.str(), g.pick("startsWith", "endsWith", "contains", "matches"), g.pick("'K'", "'S'", "''", "'^U'"))
	case 9:
		return fmt.Sprintf("(%s ? %s : %s)", g.boolExpr(depth-1), g.boolExpr(depth-1), g.boolExpr(depth-1))
	case 10:
		return fmt.Sprintf("%s == %s", g.pick("account_new_device", "account_new_card", "true"), g.boolExpr(depth-1))
	case 11:
		return fmt.Sprintf("%s %% %s == %s", g.intExpr(depth-1), g.intExpr(depth-1), g.intExpr(0))
	case 12:
		return fmt.Sprintf("%s > %s", g.intExpr(depth-1), g.intExpr(depth-1))
	}
	return g.boolExpr(0)
}

func (g *exprGen) num(depth int) string {
	if depth <= 0 || g.r.IntN(3) == 0 {
		return g.pick("card_count_1h", "card_count_10m", "account_amount_avg_30d", "card_travel_kmh", "amount", "amount_minor",
			"0", "1", "3", "2.5", "-2", "1e9", "account_amount_ratio_30d")
	}
	switch g.r.IntN(5) {
	case 0, 1:
		return fmt.Sprintf("(%s %s %s)", g.num(depth-1), g.pick("+", "-", "*", "/", "**"), g.num(depth-1))
	case 2:
		return "-" + g.num(depth-1)
	case 3:
		return fmt.Sprintf("abs(%s)", g.num(depth-1))
	}
	return fmt.Sprintf("(%s ? %s : %s)", g.boolExpr(depth-1), g.num(depth-1), g.num(depth-1))
}

func (g *exprGen) intExpr(depth int) string {
	if depth <= 0 || g.r.IntN(2) == 0 {
		return g.pick("amount_minor", "0", "1", "7", "-3", "100")
	}
	return fmt.Sprintf("(%s %s %s)", g.intExpr(depth-1), g.pick("+", "-", "*", "%"), g.intExpr(depth-1))
}

func (g *exprGen) str() string {
	return g.pick("ip_country", "device_fingerprint", "card.country", "billing.country", "merchant.mcc", "currency", "channel", "'KP'", "'US'", "''")
}

// randomEnv fills an Env with random values, about a third missing.
func randomEnv(t testing.TB, schema *features.Schema, r *rand.Rand) *Env {
	vals := map[string]any{}
	for _, f := range schema.Fields {
		if r.IntN(3) == 0 {
			continue
		}
		switch f.Type {
		case features.Number:
			vals[f.Name] = []float64{0, 1, 3, 5, -2, 2.5, 1e9}[r.IntN(7)]
		case features.Bool:
			vals[f.Name] = r.IntN(2) == 0
		case features.String:
			vals[f.Name] = []string{"KP", "US", "FR"}[r.IntN(3)]
		}
	}
	env := testEnv(t, schema, vals)
	env.Card.Country = []string{"", "US", "KP"}[r.IntN(3)]
	env.Billing.Country = []string{"", "US", "IR"}[r.IntN(3)]
	env.Merchant.MCC = []string{"", "5411"}[r.IntN(2)]
	env.Channel = []string{"", "ecommerce"}[r.IntN(2)]
	env.AmountMinor = []int64{0, 1, 700, 12345, -5}[r.IntN(5)]
	env.Amount = float64(env.AmountMinor) / 100
	return env
}

// checkLowering compiles when with and without lowering and compares both
// programs on envs: same value, and an error in one iff in the other.
func checkLowering(t *testing.T, schema *features.Schema, when string, r *rand.Rand, envs int) (compiled bool) {
	lowered, err1 := compileOne(t, schema, when, options{})
	plain, err2 := compileOne(t, schema, when, options{noLower: true})
	if (err1 == nil) != (err2 == nil) {
		t.Fatalf("%s: compiles lowered: %v, plain: %v", when, err1, err2)
	}
	if err1 != nil {
		return false
	}
	var ev Evaluator
	for range envs {
		env := randomEnv(t, schema, r)
		env.Lists = lowered.lists
		a, aerr := ev.Run(lowered.Rules[0], env)
		b, berr := ev.Run(plain.Rules[0], env)
		if r := lowered.Rules[0]; r.pred != nil { // what Evaluate calls
			c, cerr := runPredicate(r.pred, env)
			if c != a || (cerr == nil) != (aerr == nil) {
				t.Fatalf("%s: predicate %v %v, program %v %v", when, c, cerr, a, aerr)
			}
		}
		if a != b || (aerr == nil) != (berr == nil) {
			t.Fatalf("%s\nlowered: %v %v\nexpr VM: %v %v\nenv: num %v has %v str %q card %q billing %q minor %d",
				when, a, aerr, b, berr, env.Num, env.Has, env.Str, env.Card.Country, env.Billing.Country, env.AmountMinor)
		}
	}
	return true
}

func TestLoweringMatchesVM(t *testing.T) {
	schema := contractSchema(t)
	r := rand.New(rand.NewPCG(1, 2))
	g := &exprGen{r: r}
	compiled, lowered := 0, 0
	for range 3000 {
		when := g.boolExpr(1 + r.IntN(4))
		if checkLowering(t, schema, when, r, 20) {
			compiled++
			if s, _ := compileOne(t, schema, when, options{}); s.Rules[0].Lowered {
				lowered++
			}
		}
	}
	if compiled < 2500 || lowered < compiled*9/10 {
		t.Errorf("generator too weak: %d compiled, %d lowered", compiled, lowered)
	}
}

// FuzzLowering checks that lowered predicates compute what expr's VM
// computes, on expressions generated from the fuzzer's input.
func FuzzLowering(f *testing.F) {
	f.Add(uint64(1), uint64(2))
	f.Add(uint64(42), uint64(7))
	schema := contractSchema(f)
	f.Fuzz(func(t *testing.T, a, b uint64) {
		r := rand.New(rand.NewPCG(a, b))
		g := &exprGen{r: r}
		checkLowering(t, schema, g.boolExpr(1+r.IntN(5)), r, 10)
	})
}

func TestLoweredRuleDoesNotAllocate(t *testing.T) {
	schema := contractSchema(t)
	s := mustCompileOne(t, schema, "card_count_10m >= 5 and ip_country not in @risky and billing.country != card.country or amount > 5 * account_amount_avg_30d")
	if !s.Rules[0].Lowered {
		t.Fatal("not lowered")
	}
	env := testEnv(t, schema, map[string]any{"card_count_10m": 7, "ip_country": "US", "account_amount_avg_30d": 3.0})
	var ev Evaluator
	var res Result
	ev.Evaluate(s, env, &res)
	if n := testing.AllocsPerRun(100, func() { ev.Evaluate(s, env, &res) }); n != 0 {
		t.Errorf("%v allocations per evaluation", n)
	}
	if !strings.Contains(fmt.Sprint(res.Hits), "r") {
		t.Errorf("hits %v", res.Hits)
	}
}
