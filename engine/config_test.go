package engine

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ yaml, want string }{
		{"listen: nowhere\n", "listen"},
		{"lisen: 1.2.3.4:80\n", "field lisen not found"},
		{"tls:\n  cert_file: /nonexistent.pem\n", "cert_file and key_file go together"},
		{"log:\n  level: loud\n", "log.level"},
		{"idempotency:\n  retention: forever\n", "invalid duration"},
		{"rules_dir: /nonexistent\n", "rules_dir"},
		{"features_file: x.yaml\n", "field features_file not found"},
		{"features:\n  lateness: 48h\n", "at most 24h"},
		{"features:\n  geoip_database: /nonexistent.mmdb\n", "features.geoip_database"},
		{"features:\n  retention: 9x\n", `"9x"`},
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

func TestLoopbackListen(t *testing.T) {
	for addr, want := range map[string]bool{"127.0.0.1:8080": true, "[::1]:80": true, "localhost:1": true, "0.0.0.0:8080": false, ":8080": false, "10.0.0.1:80": false} {
		c := Config{Listen: addr}
		if c.LoopbackListen() != want {
			t.Errorf("%s: %v", addr, !want)
		}
	}
}

func TestKeyringErrors(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"keys: []\n", "no keys"},
		{"keys:\n  - id: a\n    sha256: abc\n    scopes: [score]\n", "64 hex digits"},
		{"keys:\n  - id: a\n    secret: abc\n", "field secret not found"},
		{"keys:\n  - id: a\n    sha256: " + strings.Repeat("ab", 32) + "\n    scopes: [root]\n", "unknown scope"},
		{"keys:\n  - sha256: " + strings.Repeat("ab", 32) + "\n    scopes: [score]\n", "id is required"},
	} {
		if _, err := ParseKeyring("k", []byte(tc.yaml)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want %q", tc.yaml, err, tc.want)
		}
	}
}
