package rules

import (
	"encoding/json"
	"github.com/vigil-fraud/vigil/engine/event"
	"strings"
	"testing"
)

// TestMissingValues pins the missing-value semantics: a comparison with a
// missing value is false, whichever the operator; has() tests presence;
// not negates the result of a comparison.
func TestMissingValues(t *testing.T) {
	schema := contractSchema(t)
	missing := map[string]any{}
	present := map[string]any{"card_count_1h": 5, "ip_country": "KP", "account_new_device": false,
		"account_amount_avg_30d": 100.0, "account_amount_ratio_30d": 2.5}
	for _, tc := range []struct {
		when          string
		ifMissing     bool
		ifPresent     bool
		billing, attr string // billing.country, attributes JSON
	}{
		{when: "card_count_1h > 3", ifMissing: false, ifPresent: true},
		{when: "card_count_1h <= 3", ifMissing: false, ifPresent: false},
		{when: "card_count_1h == 5", ifMissing: false, ifPresent: true},
		{when: "card_count_1h != 3", ifMissing: false, ifPresent: true},
		{when: "not (card_count_1h > 3)", ifMissing: true, ifPresent: false},
		{when: "!(card_count_1h <= 3)", ifMissing: true, ifPresent: true},
		{when: "has(card_count_1h)", ifMissing: false, ifPresent: true},
		{when: "not has(card_count_1h)", ifMissing: true, ifPresent: false},
		{when: "card_count_1h + 1 > 0", ifMissing: false, ifPresent: true},
		{when: "abs(card_count_1h - 10) >= 0", ifMissing: false, ifPresent: true},
		{when: "amount > 5 * account_amount_avg_30d", ifMissing: false, ifPresent: false},
		{when: "amount > account_amount_avg_30d", ifMissing: false, ifPresent: true},
		{when: "account_amount_ratio_30d >= 2 or card_count_1h > 100", ifMissing: false, ifPresent: true},
		{when: "ip_country in @risky", ifMissing: false, ifPresent: true},
		{when: "ip_country not in @risky", ifMissing: false, ifPresent: false},
		{when: "not (ip_country in @risky)", ifMissing: true, ifPresent: false},
		{when: "ip_country != card.country", ifMissing: false, ifPresent: true},
		{when: "ip_country == 'KP'", ifMissing: false, ifPresent: true},
		{when: "ip_country startsWith 'K'", ifMissing: false, ifPresent: true},
		{when: "ip_country matches '^K'", ifMissing: false, ifPresent: true},
		{when: "ip_country in ['KP', 'IR']", ifMissing: false, ifPresent: true},
		{when: "account_new_device", ifMissing: false, ifPresent: false},
		{when: "not account_new_device", ifMissing: true, ifPresent: true},
		{when: "account_new_device == false", ifMissing: false, ifPresent: true},
		{when: "has(account_new_device)", ifMissing: false, ifPresent: true},
		// event fields: an empty string is missing
		{when: "billing.country != card.country", ifMissing: false, ifPresent: false},
		{when: "billing.country != card.country", billing: "FR", ifMissing: true, ifPresent: true},
		{when: "billing.country == ''", ifMissing: false, ifPresent: false},
		{when: "has(billing.country)", ifMissing: false, ifPresent: false},
		{when: "has(billing.country)", billing: "FR", ifMissing: true, ifPresent: true},
		{when: "has(card.country) and has(amount) and has(time)", ifMissing: true, ifPresent: true},
		{when: "not has(account.created)", ifMissing: true, ifPresent: true},
		{when: "card.country in @risky or billing.country in @risky", billing: "IR", ifMissing: true, ifPresent: true},
		{when: "card.country not in @risky", ifMissing: true, ifPresent: true},
		{when: "merchant.mcc in ['7995', '6051']", ifMissing: false, ifPresent: false},
		{when: "merchant.mcc not in ['7995', '6051']", ifMissing: false, ifPresent: false},
		// attributes: missing or null is missing; numbers are numbers
		{when: "attributes.risk > 3", ifMissing: false, ifPresent: false},
		{when: "attributes.risk > 3", attr: `{"risk": 5}`, ifMissing: true, ifPresent: true},
		{when: "attributes.risk != 3", attr: `{"risk": null}`, ifMissing: false, ifPresent: false},
		{when: "has(attributes.risk)", attr: `{"risk": 1}`, ifMissing: true, ifPresent: true},
		{when: "attributes.tier == 'gold'", attr: `{"tier": "gold"}`, ifMissing: true, ifPresent: true},
		{when: "account.id in @vips", ifMissing: false, ifPresent: false},
		{when: "time.Hour() == 12 and amount_minor % 5 == 0", ifMissing: true, ifPresent: true},
		// through let variables, conditionals and ?? (x ?? y is y when x is missing)
		{when: "let c = card_count_1h; c != 3", ifMissing: false, ifPresent: true},
		{when: "let z = account_amount_ratio_30d; let y = z * 2; y > 1", ifMissing: false, ifPresent: true},
		{when: "let b = billing.country; let c = card.country; b != c", ifMissing: false, ifPresent: false},
		{when: "let b = billing.country; let c = card.country; b != c", billing: "FR", ifMissing: true, ifPresent: true},
		{when: "(has(billing.country) ? billing.country : ip_country) != 'US'", ifMissing: false, ifPresent: true},
		{when: "(has(billing.country) ? billing.country : ip_country) != 'US'", billing: "FR", ifMissing: true, ifPresent: true},
		{when: "(card_count_1h > 100 ? 1 : card_count_1h) >= 1", ifMissing: false, ifPresent: true},
		{when: "(card_count_1h ?? 0) < 1", ifMissing: true, ifPresent: false},
		{when: "(card_count_1h ?? 0) == 5", ifMissing: false, ifPresent: true},
		{when: "(ip_country ?? 'ZZ') == 'ZZ'", ifMissing: true, ifPresent: false},
		{when: "(billing.country ?? ip_country) != 'US'", ifMissing: false, ifPresent: true},
	} {
		for _, lower := range []bool{true, false} {
			s, err := compileOne(t, schema, tc.when, options{noLower: !lower})
			if err != nil {
				t.Fatalf("%s: %v", tc.when, err)
			}
			for _, c := range []struct {
				vals map[string]any
				want bool
			}{{missing, tc.ifMissing}, {present, tc.ifPresent}} {
				env := testEnv(t, schema, c.vals)
				env.Billing.Country = tc.billing
				if tc.attr != "" {
					d := json.NewDecoder(strings.NewReader(tc.attr))
					d.UseNumber()
					var attrs map[string]any
					if err := d.Decode(&attrs); err != nil {
						t.Fatal(err)
					}
					env.Fields.Set(&event.Event{ID: env.ID, Time: env.Time, Amount: env.AmountMinor, Currency: env.Currency,
						Card: env.Card, Account: env.Account, Billing: env.Billing, Attributes: attrs})
				}
				var ev Evaluator
				var res Result
				ev.Evaluate(s, env, &res)
				if len(res.Errors) > 0 {
					t.Errorf("%s (lowered %v): %v", tc.when, lower, res.Errors)
					continue
				}
				if got := len(res.Hits) == 1; got != c.want {
					t.Errorf("%s with %v (lowered %v) = %v, want %v", tc.when, c.vals, lower, got, c.want)
				}
			}
		}
	}
}

func TestFeaturesAndFieldsRead(t *testing.T) {
	s := mustCompileOne(t, contractSchema(t), "card_count_1h > 3 and ip_country != card.country and has(account_new_device) and attributes.x == 1 and billing.country in @risky")
	r := s.Rules[0]
	if got := strings.Join(r.Features, ","); got != "account_new_device,card_count_1h,ip_country" {
		t.Errorf("features %s", got)
	}
	if got := strings.Join(r.Fields, ","); got != "attributes.x,billing.country,card.country" {
		t.Errorf("fields %s", got)
	}
}

func TestLoweredWhenTyped(t *testing.T) {
	schema := contractSchema(t)
	for when, want := range map[string]bool{
		"card_count_10m >= 5":                                           true,
		"amount > 1000 and account_new_device":                          true,
		"card.country in @risky or billing.country in @risky":           true,
		"ip_country != card.country and ip_billing_km > 500":            true,
		"amount_minor % 100 == 0 and merchant.mcc in ['7995', '6051']":  true,
		"account_amount_ratio_30d > 5 and amount > 200 ? true : false":  true,
		"not has(account_amount_avg_30d) and amount ** 2 > 1e6":         true,
		"card_travel_kmh > 900 and card_seconds_since_last < 3600 * 24": true,
		"attributes.x == 1":                              false, // dynamic
		"time.Hour() < 6":                                false, // time
		"any(['a', 'b'], {# == card.country})":           false, // closure
		"lower(ip_country) == 'kp'":                      false, // allocates
		"card_count_1h > 3 and lower(ip_country) == 'x'": false,
	} {
		s := mustCompileOne(t, schema, when)
		if got := s.Rules[0].Lowered; got != want {
			t.Errorf("%s: lowered %v, want %v", when, got, want)
		}
	}
}

// TestVersionIgnoresDirectory: the version hashes file names and contents,
// not the directory they were read from, so a dumped copy of a ruleset, or
// the same files mounted elsewhere, label decisions alike; a renamed file
// or an edited one gives another version.
func TestVersionIgnoresDirectory(t *testing.T) {
	schema := contractSchema(t)
	const rule = "rules:\n  - {name: big, when: amount > 100, action: step_up, score: 10, reason: BIG}\n"
	version := func(srcs ...Source) string {
		t.Helper()
		s, err := Compile(srcs, schema)
		if err != nil {
			t.Fatal(err)
		}
		return s.Version
	}
	base := version(Source{Name: "embedded:rules/default/a.yaml", Data: []byte(rule)})
	for _, tc := range []struct {
		src  Source
		same bool
	}{
		{Source{Name: "my-rules/a.yaml", Data: []byte(rule)}, true},
		{Source{Name: "/etc/vigil/rules/a.yaml", Data: []byte(rule)}, true},
		{Source{Name: "a.yaml", Data: []byte(rule)}, true},
		{Source{Name: "my-rules/b.yaml", Data: []byte(rule)}, false},
		{Source{Name: "my-rules/a.yaml", Data: []byte(rule + "# edited\n")}, false},
	} {
		if got := version(tc.src); (got == base) != tc.same {
			t.Errorf("%s: version %s, base %s, want same=%v", tc.src.Name, got, base, tc.same)
		}
	}
}

// TestWhenCutByComment: an unquoted when holding " #" is cut by YAML; the
// error says so.
func TestWhenCutByComment(t *testing.T) {
	src := "rules:\n  - name: c\n    when: any([card_count_1h, 2], # > 3)\n    action: pause\n    score: 1\n    reason: C\n"
	_, err := Compile([]Source{{Name: "r.yaml", Data: []byte(src)}}, contractSchema(t))
	if err == nil || !strings.Contains(err.Error(), "quote the expression to use # in it") {
		t.Errorf("err = %v", err)
	}
	src = "rules:\n  - name: c\n    when: amount >  # a comment\n    action: pause\n    score: 1\n    reason: C\n"
	if _, err := Compile([]Source{{Name: "r.yaml", Data: []byte(src)}}, contractSchema(t)); err == nil || !strings.Contains(err.Error(), `after " #"`) {
		t.Errorf("err = %v", err)
	}
}
