package signals

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-fraud/vigil/engine"
)

func TestConfigDefaults(t *testing.T) {
	c := DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:9000" || c.Database != "vigil" || !c.Migrate || !c.Spill.Fsync || c.Retention.Days != 90 ||
		c.Queue.BatchSize != 20000 || c.Spill.FullPolicy != DropNewest || c.PasswordEnv != "VIGIL_CLICKHOUSE_PASSWORD" {
		t.Errorf("defaults %+v", c)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		mut  func(*Config)
		want string
	}{
		{"bad addr", func(c *Config) { c.Addr = "nohost" }, "signals.addr"},
		{"bad database", func(c *Config) { c.Database = "a-b; DROP" }, "signals.database"},
		{"missing password file", func(c *Config) { c.PasswordFile = "/nonexistent/pw" }, "password_file"},
		{"cert without key", func(c *Config) { c.TLS.Enabled = true; c.TLS.CertFile = "/etc/hostname" }, "cert_file and key_file"},
		{"tls options without tls", func(c *Config) { c.TLS.InsecureSkipVerify = true }, "tls.enabled is false"},
		{"policy", func(c *Config) { c.Spill.FullPolicy = "block" }, "full_policy"},
		{"segment over budget", func(c *Config) { c.Spill.MaxBytes = 1 << 20 }, "segment_bytes"},
		{"negative retention", func(c *Config) { c.Retention.Days = -1 }, "retention.days"},
		{"negative flush", func(c *Config) { c.Queue.FlushInterval = engine.Duration(-time.Second) }, "flush_interval"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.mut(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate() = %v, want an error about %s", err, tt.want)
			}
		})
	}
}

func TestSecretsFromFilesAndEnv(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	os.WriteFile(pw, []byte("s3cret\n"), 0o600)
	c := DefaultConfig()
	c.PasswordFile = pw
	if got, _ := c.password(); got != "s3cret" {
		t.Errorf("password from file %q", got)
	}
	c.PasswordFile = ""
	t.Setenv("VIGIL_CLICKHOUSE_PASSWORD", "fromenv")
	if got, _ := c.password(); got != "fromenv" {
		t.Errorf("password from env %q", got)
	}
	c.IPHashKeyEnv = "VIGIL_TEST_SHORT_KEY"
	t.Setenv("VIGIL_TEST_SHORT_KEY", "short")
	if _, err := c.ipHashKey(); err == nil {
		t.Error("short IP key accepted")
	}
	c.IPHashKeyEnv = ""
	if k, err := c.ipHashKey(); k != nil || err != nil {
		t.Errorf("no key configured: %v %v", k, err)
	}
}

func TestCapabilitiesOf(t *testing.T) {
	tests := []struct {
		version           string
		lowCard, ttl, d64 bool
	}{
		{"18.16.1", false, false, false},
		{"19.1.6", true, false, false},
		{"19.6.2.11", true, true, false},
		{"20.1.2.4", true, true, true},
		{"24.8.4.13", true, true, true},
		{"garbage", false, false, false},
	}
	for _, tt := range tests {
		c := CapabilitiesOf(tt.version)
		if c.LowCardinality != tt.lowCard || c.TTL != tt.ttl || c.DateTime64 != tt.d64 {
			t.Errorf("%s: %+v", tt.version, c)
		}
	}
}

func TestSchemaVariants(t *testing.T) {
	old := signalsDDL("vigil", CapabilitiesOf("18.16.1"))
	cur := signalsDDL("vigil", CapabilitiesOf("24.8.1"))
	for _, s := range []string{"event_time DateTime('UTC')", "event_time_ms UInt16", "decision String", "hits Array(String)"} {
		if !strings.Contains(old, s) {
			t.Errorf("18.16 schema lacks %q:\n%s", s, old)
		}
	}
	for _, s := range []string{"event_time DateTime64(3, 'UTC')", "decision LowCardinality(String)", "hits Array(LowCardinality(String))"} {
		if !strings.Contains(cur, s) {
			t.Errorf("24.8 schema lacks %q:\n%s", s, cur)
		}
	}
	if strings.Contains(cur, "_ms") {
		t.Error("DateTime64 schema has a milliseconds column")
	}
	if got := (layout{msColumns: true}).insertColumns(); len(got) != len(signalColumns)+2 || got[2] != "event_time_ms" {
		t.Errorf("insert columns %v", got)
	}
}
