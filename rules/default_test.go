package rules

import (
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"

	"github.com/vigil-fraud/vigil/features"
)

// writeGeoDB builds a MaxMind-format database with the networks the
// starter tests use (from MaxMind's own test data).
func writeGeoDB(t testing.TB) string {
	t.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: "GeoIP2-City", RecordSize: 24})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []struct {
		cidr     string
		country  string
		lat, lon float64
	}{
		{"81.2.69.0/24", "GB", 51.5142, -0.0931},
		{"216.160.83.0/24", "US", 47.6034, -122.3414},
		{"89.160.20.0/24", "SE", 58.4167, 15.6167},
		{"2.176.0.0/16", "IR", 35.6944, 51.4215},
	} {
		_, network, err := net.ParseCIDR(n.cidr)
		if err != nil {
			t.Fatal(err)
		}
		if err := tree.Insert(network, mmdbtype.Map{
			"country":  mmdbtype.Map{"iso_code": mmdbtype.String(n.country)},
			"location": mmdbtype.Map{"latitude": mmdbtype.Float64(n.lat), "longitude": mmdbtype.Float64(n.lon)},
		}); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "test-city.mmdb")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tree.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestDefaultRuleset checks the embedded starter ruleset: it compiles
// against the feature contract and the default feature definitions, lints
// clean, and its rule tests — every one, the geo cases on a test GeoIP
// database — pass and exercise every rule.
func TestDefaultRuleset(t *testing.T) {
	srcs, err := ReadDir(DefaultFS, DefaultDir, "embedded:rules/default")
	if err != nil {
		t.Fatal(err)
	}
	contract, err := Compile(srcs, contractSchema(t))
	if err != nil {
		t.Fatalf("the starter rules do not compile against the feature contract:\n%v", err)
	}
	defs, err := features.Parse(features.DefaultFileName, features.DefaultFile)
	if err != nil {
		t.Fatal(err)
	}
	db := writeGeoDB(t)
	opts := features.Options{GeoIPDatabase: db, FingerprintKey: []byte("0123456789abcdef0123456789abcdef"), Labels: true,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	fe, err := features.New(defs, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer fe.Close()
	var missing []string
	for _, r := range contract.Rules {
		for _, f := range r.Features {
			if _, ok := fe.Schema().Lookup(f); !ok && !slices.Contains(missing, f) {
				missing = append(missing, f)
			}
		}
	}
	if len(missing) > 0 {
		t.Skipf("features/default.yaml does not define %s yet", strings.Join(missing, ", "))
	}
	set, err := Compile(srcs, fe.Schema())
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range Lint(set) {
		t.Errorf("lint: %s", w)
	}
	if set.Label != "starter" || set.Stats.Lowered != len(set.Rules) {
		t.Errorf("label %q; %d of %d rules lowered", set.Label, set.Stats.Lowered, len(set.Rules))
	}
	testSrcs, err := ReadTests(DefaultFS, DefaultDir, "embedded:rules/default")
	if err != nil {
		t.Fatal(err)
	}
	for _, src := range append(srcs, testSrcs...) {
		if out, err := Format(src.Name, src.Data); err != nil || string(out) != string(src.Data) {
			t.Errorf("%s is not in canonical form (vigil rules fmt -w rules/default): %v", src.Name, err)
		}
	}
	var files []*TestFile
	for _, src := range testSrcs {
		f, err := ParseTestFile(src.Name, src.Data)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	results := RunTests(set, func() (Observer, error) { return features.New(defs, opts) }, files, TestOptions{GeoIP: true})
	for _, r := range results {
		if !r.Passed() {
			t.Errorf("%s/%s: skipped %q, failures:\n%s", r.File, r.Name, r.Skipped, strings.Join(r.Failures, "\n"))
		}
	}
	// Every rule is expected to fire in some test.
	tested := map[string]bool{}
	for _, f := range files {
		for _, tc := range f.Tests {
			for _, x := range tc.Expect {
				for _, list := range []*[]string{x.Hits, x.Ignored} {
					if list != nil {
						for _, name := range *list {
							tested[name] = true
						}
					}
				}
			}
		}
	}
	for _, r := range set.Rules {
		if !tested[r.Name] {
			t.Errorf("rule %s has no test that expects it to fire", r.Name)
		}
	}
}
