package features

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDefinitionFixtures parses testdata/features: every *.good.yaml must
// parse and build an engine; every *.bad.yaml must fail with each error its
// "# error: " comment lines announce, all at once.
func TestDefinitionFixtures(t *testing.T) {
	dir := filepath.Join("..", "testdata", "features")
	paths, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no fixtures in %s: %v", dir, err)
	}
	posRE := regexp.MustCompile(`^[a-z_]+\.(good|bad)\.yaml:\d+:\d+: `)
	for _, path := range paths {
		name := filepath.Base(path)
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			f, err := Parse(name, data)
			switch {
			case strings.HasSuffix(name, ".good.yaml"):
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				e, err := New(f)
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				if e.Schema().Len() == 0 {
					t.Fatal("no features")
				}
			case strings.HasSuffix(name, ".bad.yaml"):
				if err == nil {
					t.Fatal("Parse succeeded, want errors")
				}
				msg := err.Error()
				var want []string
				for _, line := range strings.Split(string(data), "\n") {
					if w, ok := strings.CutPrefix(line, "# error: "); ok {
						want = append(want, w)
					}
				}
				if len(want) == 0 {
					t.Fatal("a .bad.yaml fixture needs # error: lines")
				}
				for _, w := range want {
					if !strings.Contains(msg, w) {
						t.Errorf("error lacks %q; got:\n%s", w, msg)
					}
				}
				for _, line := range strings.Split(msg, "\n") {
					if !posRE.MatchString(line) {
						t.Errorf("error line without file:line:col: %q", line)
					}
				}
				var pe *Error
				if !errors.As(err, &pe) {
					t.Errorf("error is not a *features.Error: %T", err)
				}
			default:
				t.Fatalf("fixture %s: name it *.good.yaml or *.bad.yaml", name)
			}
		})
	}
}

func TestDefaultFile(t *testing.T) {
	f, err := Parse(DefaultFileName, DefaultFile)
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(f)
	if err != nil {
		t.Fatal(err)
	}
	s := e.Schema()
	// The contract with the rules: these names exist with these types.
	want := map[string]Type{
		"card_count_10m": Number, "card_count_1h": Number, "card_count_24h": Number,
		"card_amount_sum_1h": Number, "card_amount_sum_24h": Number,
		"account_count_1h": Number, "account_count_24h": Number, "account_amount_avg_30d": Number,
		"ip_count_1h": Number, "card_distinct_merchants_1h": Number, "device_distinct_accounts_7d": Number,
		"account_distinct_devices_30d": Number, "card_distinct_countries_24h": Number,
		"card_seconds_since_last": Number, "account_seconds_since_first": Number, "device_age_seconds": Number,
		"ip_billing_km": Number, "billing_shipping_km": Number, "card_travel_kmh": Number,
		"account_amount_zscore_30d": Number, "account_amount_ratio_30d": Number,
		"account_hour_unusualness": Number, "ip_asn": Number,
		"account_new_device": Bool, "account_new_card": Bool, "account_new_country": Bool,
		"ip_card_country_mismatch": Bool, "ip_billing_country_mismatch": Bool,
		"ip_country": String, "device_fingerprint": String,
		"merchant_fraud_rate_7d": Number, "merchant_fraud_rate_30d": Number, "account_fraud_rate_30d": Number,
	}
	for name, typ := range want {
		i, ok := s.Lookup(name)
		if !ok {
			t.Errorf("default features lack %s", name)
			continue
		}
		if s.Fields[i].Type != typ {
			t.Errorf("%s is %s, want %s", name, s.Fields[i].Type, typ)
		}
		if s.Fields[i].Help == "" {
			t.Errorf("%s has no help", name)
		}
	}
}

func TestParseDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
		ok   bool
	}{
		{"90s", "90s", true}, {"10m", "10m", true}, {"60m", "1h", true}, {"7d", "7d", true}, {"24h", "1d", true},
		{"", "", false}, {"h", "", false}, {"0s", "", false}, {"1.5h", "", false}, {"-1h", "", false},
		{"1w", "", false}, {"99999999999d", "", false}, {"4000d", "", false},
	} {
		d, err := ParseDuration(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("ParseDuration(%q) error %v, want ok=%v", tc.in, err, tc.ok)
			continue
		}
		if tc.ok && FormatDuration(d) != tc.want {
			t.Errorf("FormatDuration(ParseDuration(%q)) = %s, want %s", tc.in, FormatDuration(d), tc.want)
		}
	}
}

// FuzzParse checks that no input makes the parser (or building an engine
// from what it accepts) panic, and that errors always carry a position.
func FuzzParse(f *testing.F) {
	paths, _ := filepath.Glob(filepath.Join("..", "testdata", "features", "*.yaml"))
	for _, p := range paths {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Add(DefaultFile)
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse("fuzz.yaml", data)
		if err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "fuzz.yaml:") {
					t.Fatalf("error line without position: %q", line)
				}
			}
			return
		}
		if _, err := New(file); err != nil && !strings.Contains(err.Error(), "retention") {
			t.Fatalf("Parse accepted a file New refuses: %v", err)
		}
	})
}
