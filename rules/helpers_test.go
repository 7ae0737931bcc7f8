package rules

import (
	"fmt"
	"testing"
	"time"

	"github.com/vigil-fraud/vigil/engine/event"
	"github.com/vigil-fraud/vigil/features"
)

// contractFeatures are the features the embedded default feature set
// promises (docs/rules.md); tests compile against them whatever the
// features engine computes today.
var contractFeatures = map[features.Type][]string{
	features.Number: {"card_count_10m", "card_count_1h", "card_count_24h", "card_amount_sum_1h", "card_amount_sum_24h",
		"account_count_1h", "account_count_24h", "account_amount_avg_30d", "ip_count_1h", "card_distinct_merchants_1h",
		"device_distinct_accounts_7d", "account_distinct_devices_30d", "card_distinct_countries_24h", "card_seconds_since_last",
		"account_seconds_since_first", "device_age_seconds", "ip_billing_km", "billing_shipping_km", "card_travel_kmh",
		"account_amount_zscore_30d", "account_amount_ratio_30d", "account_hour_unusualness", "ip_asn",
		"merchant_fraud_rate_7d", "merchant_fraud_rate_30d", "account_fraud_rate_30d"},
	features.Bool:   {"account_new_device", "account_new_card", "account_new_country", "ip_card_country_mismatch", "ip_billing_country_mismatch"},
	features.String: {"ip_country", "device_fingerprint"},
}

func contractSchema(t testing.TB) *features.Schema {
	t.Helper()
	var fields []features.Field
	for _, typ := range []features.Type{features.Number, features.Bool, features.String} {
		for _, n := range contractFeatures[typ] {
			fields = append(fields, features.Field{Name: n, Type: typ})
		}
	}
	s, err := features.NewSchema(fields)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// testEnv builds an Env over a schema: vals sets features by name (nil
// leaves one missing); the event is a small default transaction.
func testEnv(t testing.TB, schema *features.Schema, vals map[string]any) *Env {
	t.Helper()
	v := features.NewVector(schema)
	for name, x := range vals {
		i, ok := schema.Lookup(name)
		if !ok {
			t.Fatalf("no feature %s", name)
		}
		switch x := x.(type) {
		case nil:
		case float64:
			v.SetNum(i, x)
		case int:
			v.SetNum(i, float64(x))
		case bool:
			v.SetBool(i, x)
		case string:
			v.SetStr(i, x)
		default:
			t.Fatalf("feature %s: %T", name, x)
		}
	}
	ev := &event.Event{ID: "tx_1", Time: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC), Amount: 12345, Currency: "USD",
		Card: event.Card{Token: "tok_1", Country: "US"}, Account: event.Account{ID: "acct_1"}}
	env := &Env{}
	env.Set(ev, v)
	return env
}

// compileOne compiles one rule expression into a one-rule set.
func compileOne(t testing.TB, schema *features.Schema, when string, opt options) (*Set, error) {
	t.Helper()
	src := fmt.Sprintf("lists:\n  risky: [KP, IR]\n  vips: [acct_vip]\nrules:\n  - name: r\n    when: %q\n    action: step_up\n    score: 10\n    reason: R\n", when)
	return compileSet([]Source{{Name: "t.yaml", Data: []byte(src)}}, schema, nil, opt)
}

func mustCompileOne(t testing.TB, schema *features.Schema, when string) *Set {
	t.Helper()
	s, err := compileOne(t, schema, when, options{})
	if err != nil {
		t.Fatalf("%s: %v", when, err)
	}
	return s
}
