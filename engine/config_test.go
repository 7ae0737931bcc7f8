package engine

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-fraud/vigil/features"
)

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ yaml, want string }{
		{"listen: nowhere\n", "listen"},
		{"lisen: 1.2.3.4:80\n", "line 1:1: lisen: unknown key (did you mean listen?)"},
		{"tls:\n  cert_file: /nonexistent.pem\n", "cert_file and key_file go together"},
		{"log:\n  level: loud\n", "log.level"},
		{"idempotency:\n  retention: forever\n", "invalid duration"},
		{"rules_dir: /nonexistent\n", "rules_dir"},
		{"features_file: x.yaml\n", "line 1:1: features_file: unknown key"},
		{"features:\n  max_entitie: 5\n", "line 2:3: features.max_entitie: unknown key (did you mean max_entities?)"},
		{"features:\n  max_entities: many\n", "line 2:17: features.max_entities: cannot unmarshal !!str `many` into int"},
		{"tls: [a]\n", "line 1:6: tls: cannot unmarshal !!seq into engine.TLSConfig"},
		{"features:\n  lateness: 48h\n", "at most 24h"},
		{"features:\n  geoip_database: /nonexistent.mmdb\n", "features.geoip_database"},
		{"features:\n  retention: 9x\n", `"9x"`},
		// a zero written in the file is not taken for "the default"
		{"features:\n  lateness: -1s\n", "features.lateness: must not be negative"},
		{"features:\n  max_entities: 0\n  retention: 0s\n  geo_cache_size: 0\n", "features.max_entities: must be positive\nfeatures.retention: must be positive\nfeatures.geo_cache_size: must be positive"},
		{"listne: x\n", "line 1:1: listne: unknown key (did you mean listen?)"},
		{"log: {levle: info}\n", "log.levle: unknown key (did you mean level?)"},
	} {
		p := filepath.Join(dir, "c.yaml")
		os.WriteFile(p, []byte(tc.yaml), 0o600)
		c, err := LoadConfig(p)
		if err == nil {
			err = c.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want %q", tc.yaml, err, tc.want)
		}
	}
}

// TestZeroLatenessIsNone: lateness 0 in the file records no event behind
// its entity's newest (it was taken for the 5m default), and the retention
// need not cover 5 minutes more than the longest window.
func TestZeroLatenessIsNone(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(p, []byte("features:\n  lateness: 0s\n  retention: 30d\n"), 0o600)
	c, err := LoadConfig(p)
	if err == nil {
		err = c.Validate()
	}
	if err != nil {
		t.Fatal(err)
	}
	o, err := c.Features.Options(nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.Lateness >= 0 {
		t.Errorf("features lateness %v, want negative (none)", o.Lateness)
	}
	f, err := features.Parse(features.DefaultFileName, features.DefaultFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := features.New(f, o); err != nil {
		t.Errorf("30d retention, no lateness, default definitions (30d windows): %v", err)
	}
}

// TestConfigShapeAllAtOnce: every unknown key and every value its key's
// type refuses is reported in one error, each with its line and path; an
// empty section keeps its defaults.
func TestConfigShapeAllAtOnce(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(p, []byte("foo: 1\nfeatures:\n  max_entitie: 5\n  lateness: 5x\n  max_entities: lots\nidempotency:\nlog:\n  level: info\n  colour: red\n"), 0o600)
	_, err := LoadConfig(p)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		"line 1:1: foo: unknown key",
		"line 3:3: features.max_entitie: unknown key (did you mean max_entities?)",
		`line 4:13: features.lateness: time: unknown unit "x" in duration "5x"`,
		"line 5:17: features.max_entities: cannot unmarshal !!str `lots` into int",
		"line 9:3: log.colour: unknown key",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "idempotency") || strings.Contains(err.Error(), "main.config") || strings.Contains(err.Error(), "not found in type") {
		t.Errorf("error names an empty section or a Go type:\n%v", err)
	}
	// merge keys bring their mapping's keys in, checked like the others
	os.WriteFile(p, []byte("x-base: &base {max_entities: 9, lateness: 1m}\nfeatures:\n  <<: *base\n  retention: 30d\n"), 0o600)
	if _, err := LoadConfig(p); err == nil || !strings.Contains(err.Error(), "x-base: unknown key") || strings.Contains(err.Error(), "<<") {
		t.Errorf("merge key: %v", err)
	}
	os.WriteFile(p, []byte("features: {<<: {max_entities: 9}, lateness: 1m}\n"), 0o600)
	if c, err := LoadConfig(p); err != nil || c.Features.MaxEntities != 9 {
		t.Errorf("merge: %v", err)
	}
	os.WriteFile(p, []byte("features: {<<: [{max_entities: 9}, {colour: red}]}\n"), 0o600)
	if _, err := LoadConfig(p); err == nil || !strings.Contains(err.Error(), "features.colour: unknown key") {
		t.Errorf("merged unknown key: %v", err)
	}
	os.WriteFile(p, []byte("idempotency:\nfeatures:\n  max_entities: 7\n"), 0o600)
	c, err := LoadConfig(p)
	if err != nil || c.Features.MaxEntities != 7 || c.Idempotency != DefaultConfig().Idempotency {
		t.Errorf("err %v, max_entities %d, idempotency %+v", err, c.Features.MaxEntities, c.Idempotency)
	}
}

// TestConfigShapeBounded: a small document whose aliases and merge keys
// stand for millions of unknown keys is refused quickly, with a bounded
// message.
func TestConfigShapeBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString("tls: &a {")
	for i := range 1000 {
		fmt.Fprintf(&b, "k%d: 1, ", i)
	}
	b.WriteString("}\nreload: &b {<<: [" + strings.Repeat("*a, ", 99) + "*a]}\nidempotency: {<<: [" + strings.Repeat("*b, ", 99) + "*b]}\n")
	p := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(p, []byte(b.String()), 0o600)
	start := time.Now()
	_, err := LoadConfig(p)
	if err == nil || len(err.Error()) > 20_000 || time.Since(start) > 5*time.Second {
		t.Fatalf("%v, %d bytes of error in %s", err != nil, len(fmt.Sprint(err)), time.Since(start))
	}
	if !strings.Contains(err.Error(), "more than 100000 values") && !strings.Contains(err.Error(), "more problems") {
		t.Errorf("error does not say it stopped: %.300s", err)
	}
}

func TestLoopbackListen(t *testing.T) {
	for addr, want := range map[string]bool{"127.0.0.1:8080": true, "[::1]:80": true, "localhost:1": true, "0.0.0.0:8080": false, ":8080": false, "10.0.0.1:80": false} {
		c := Config{Listen: addr}
		if c.LoopbackListen() != want {
			t.Errorf("%s: %v", addr, !want)
		}
	}
}

func TestKeyringErrors(t *testing.T) {
	dupKey := "keys:\n  - id: a\n    sha256: " + strings.Repeat("ab", 32) + "\n    scopes: [score]\n  - id: a\n    scopes: []\n"
	for _, tc := range []struct{ yaml, want string }{
		{"keys: []\n", "no keys"},
		{"", "api keys k: no keys"}, // an empty file
		{"# the keys of the payments team\n\n", "api keys k: no keys"},
		{"  \n\n", "api keys k: no keys"},
		{"---\n", "api keys k: no keys"},
		{"keys:\n", "api keys k: no keys"},
		{"keys:\n  - id: a\n    sha256: abc\n    scopes: [score]\n", "64 hex digits"},
		{"keys:\n  - id: a\n    secret: abc\n", "line 3:5: keys[0].secret: unknown key"},
		{"keys:\n  - id: a\n    sha256: " + strings.Repeat("ab", 32) + "\n    scope: [score]\n", "line 4:5: keys[0].scope: unknown key (did you mean scopes?)"},
		{"keys:\n  - id: a\n    sha256: " + strings.Repeat("ab", 32) + "\n    scopes: [root]\n", "unknown scope"},
		{"keys:\n  - sha256: " + strings.Repeat("ab", 32) + "\n    scopes: [score]\n", "id is required"},
		{"keys:\n  -\n", "key 1: empty entry"},
		{"keys:\n  - id: a\n    sha256: " + strings.Repeat("ab", 32) + "\n    scopes: [score]\n  - id: b\n    sha256: " + strings.Repeat("ab", 32) + "\n    scopes: [admin]\n",
			`key 2 ("b"): same secret as key "a"`},
		// every problem of a key at once
		{dupKey, `key 2 ("a"): id used twice`},
		{dupKey, `key 2 ("a"): sha256 must be`},
		{dupKey, `key 2 ("a"): at least one scope`},
		// ids are shown in logs: the same rule as vigil keys generate, and
		// one that breaks it is not repeated
		{"keys:\n  - id: payments team\n    sha256: " + strings.Repeat("ab", 32) + "\n    scopes: [score]\n", "api keys k: key 1: id: use letters, digits"},
		{"keys:\n  - id: 4111111111111111 x\n    sha256: " + strings.Repeat("ab", 32) + "\n    scopes: [score]\n", "api keys k: key 1: id: use letters"},
		{"keys:\n  - id: a\n    sha256: " + strings.Repeat("ab", 32) + "\n    scopes: [\"vgl_4111111111111111 x\"]\n", `key 1 ("a"): unknown scope (not repeated`},
	} {
		_, err := ParseKeyring("k", []byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want %q", tc.yaml, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "4111") {
			t.Errorf("%q: err = %v repeats the id", tc.yaml, err)
		}
	}
}

// FuzzDecodeConfig: any document gives a config or an error, never a
// panic or a hang (aliases that expand to billions of values included).
func FuzzDecodeConfig(f *testing.F) {
	example, _ := os.ReadFile("../docs/config.example.yaml")
	for _, s := range []string{string(example), "listen: a\nfoo: 1\n", "features: &a {max_entities: 1}\nlog: *a\n",
		"a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n",
		"idempotency: {retention: 5x}\n", "tls: [1]\n", "- 1\n", ""} {
		f.Add(s)
	}
	p := filepath.Join(f.TempDir(), "c.yaml")
	f.Fuzz(func(t *testing.T, doc string) {
		os.WriteFile(p, []byte(doc), 0o600)
		c, err := LoadConfig(p)
		if err == nil {
			c.Validate()
		}
	})
}
