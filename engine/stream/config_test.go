package stream

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"gopkg.in/yaml.v3"

	"github.com/vigil-fraud/vigil/engine"
)

func TestConfigValidate(t *testing.T) {
	ok := DefaultConfig()
	ok.Brokers = []string{"127.0.0.1:9092"}
	tests := []struct {
		name   string
		change func(*Config)
		want   string // substring of the error; "" for valid
	}{
		{"defaults with brokers", func(*Config) {}, ""},
		{"no brokers", func(c *Config) { c.Brokers = nil }, "kafka.brokers"},
		{"broker without port", func(c *Config) { c.Brokers = []string{"kafka"} }, "kafka.brokers"},
		{"no group", func(c *Config) { c.Group = "" }, "kafka.group"},
		{"same topics", func(c *Config) { c.Topics.Decisions = c.Topics.Transactions }, "must differ"},
		{"bad topic name", func(c *Config) { c.Topics.Decisions = "dec isions" }, "only letters"},
		{"dead letter off", func(c *Config) { c.Topics.DeadLetter = "" }, ""},
		{"start offset", func(c *Config) { c.StartOffset = "newest" }, "start_offset"},
		{"batch size", func(c *Config) { c.BatchSize = 0 }, "batch_size"},
		{"compression", func(c *Config) { c.Producer.Compression = "brotli" }, "compression"},
		{"zero batch timeout (ignored)", func(c *Config) { c.Producer.BatchTimeout = 0 }, ""},
		{"negative batch timeout", func(c *Config) { c.Producer.BatchTimeout = -1 }, "batch_timeout"},
		{"broker port not a number", func(c *Config) { c.Brokers = []string{"h:abc"} }, "port from 1 to 65535"},
		{"broker without host", func(c *Config) { c.Brokers = []string{":9092"} }, "port from 1 to 65535"},
		{"server name without TLS", func(c *Config) { c.TLS.ServerName = "kafka.internal" }, "TLS is off"},
		{"server name with TLS", func(c *Config) { c.TLS.ServerName, c.TLS.Enabled = "kafka.internal", true }, ""},
		{"SASL user without mechanism", func(c *Config) { c.SASL.Username = "vigil" }, "without a mechanism"},
		{"PLAIN without TLS", func(c *Config) {
			c.SASL.Mechanism, c.SASL.Username, c.SASL.PasswordEnv = "PLAIN", "vigil", "PATH"
		}, "in clear"},
		{"PLAIN over TLS", func(c *Config) {
			c.SASL.Mechanism, c.SASL.Username, c.SASL.PasswordEnv, c.TLS.Enabled = "PLAIN", "vigil", "PATH", true
		}, ""},
		{"heartbeat too slow", func(c *Config) { c.HeartbeatInterval = d(5 * time.Second) }, "heartbeat_interval"},
		{"replication factor 0", func(c *Config) { c.Topics.ReplicationFactor = 0 }, "replication_factor"},
		{"cert without key", func(c *Config) { c.TLS.CertFile = "/nonexistent.pem" }, "go together"},
		{"missing CA file", func(c *Config) { c.TLS.CAFile = "/nonexistent-ca.pem" }, "ca_file"},
		{"unknown mechanism", func(c *Config) { c.SASL.Mechanism = "GSSAPI" }, "mechanism"},
		{"SASL without user", func(c *Config) {
			c.SASL.Mechanism, c.SASL.PasswordEnv = "SCRAM-SHA-512", "VIGIL_TEST_NO_SUCH_VAR"
		}, "username"},
		{"SASL without password", func(c *Config) {
			c.SASL.Mechanism, c.SASL.Username, c.SASL.PasswordEnv = "PLAIN", "vigil", "VIGIL_TEST_NO_SUCH_VAR"
		}, "no password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			c.Topics = ok.Topics
			tt.change(&c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error %v, want one about %q", err, tt.want)
			}
		})
	}
}

// TestConfigYAML reads a kafka section as serve's config file would, and
// refuses a password in it.
func TestConfigYAML(t *testing.T) {
	c := DefaultConfig()
	src := `
brokers: [kafka-1:9093, kafka-2:9093]
group: fraud
topics: {transactions: payments, decisions: payments.decisions, dead_letter: ""}
batch_size: 200
commit_interval: 500ms
rebuild: {window: 7d}
tls: {enabled: true}
sasl: {mechanism: SCRAM-SHA-512, username: vigil, password_env: KAFKA_PW}
`
	dec := yaml.NewDecoder(strings.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	if c.Rebuild.Window != Span(7*24*time.Hour) {
		t.Errorf("rebuild.window %s", time.Duration(c.Rebuild.Window))
	}
	if len(c.Brokers) != 2 || c.Group != "fraud" || c.Topics.DeadLetter != "" || c.CommitInterval != d(500*time.Millisecond) || !c.TLS.On() || c.SASL.PasswordEnv != "KAFKA_PW" {
		t.Fatalf("decoded %+v", c)
	}
	if c.Producer.BatchTimeout != d(time.Millisecond) || !c.Topics.Create {
		t.Fatalf("defaults lost: %+v", c)
	}
	_ = engine.Duration(0)
	bad := yaml.NewDecoder(strings.NewReader("sasl: {mechanism: PLAIN, username: u, password: hunter2}\n"))
	bad.KnownFields(true)
	if err := bad.Decode(&c); err == nil {
		t.Fatal("a password in the configuration file was accepted")
	}
}

func TestRebuildWindow(t *testing.T) {
	c := DefaultConfig()
	if got := c.rebuildWindow(0); got != DefaultRebuildWindow {
		t.Errorf("default: %s", got)
	}
	if got := c.rebuildWindow(8 * 24 * time.Hour); got != 8*24*time.Hour {
		t.Errorf("from features: %s", got)
	}
	c.Rebuild.Window = Span(time.Hour)
	if got := c.rebuildWindow(8 * 24 * time.Hour); got != time.Hour {
		t.Errorf("configured: %s", got)
	}
	c.Rebuild.Window = Span(-1)
	if got := c.rebuildWindow(time.Hour); got != 0 {
		t.Errorf("off: %s", got)
	}
}

// TestConnectionSecurity builds TLS (CA, client certificate) and each SASL
// mechanism, with the password from a file or the environment.
func TestConnectionSecurity(t *testing.T) {
	dir := t.TempDir()
	ca, cert, key := writeCerts(t, dir)
	pwFile := filepath.Join(dir, "pw")
	os.WriteFile(pwFile, []byte("s3cret\n"), 0o600)
	t.Setenv("VIGIL_TEST_KAFKA_PW", "from-env")
	for _, mech := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
		for _, pw := range []SASLConfig{{PasswordFile: pwFile}, {PasswordEnv: "VIGIL_TEST_KAFKA_PW"}} {
			c := Connection{Brokers: []string{"127.0.0.1:9093"}, DialTimeout: d(time.Second),
				TLS:  TLSConfig{CAFile: ca, CertFile: cert, KeyFile: key, ServerName: "kafka.internal"},
				SASL: SASLConfig{Mechanism: mech, Username: "vigil", PasswordFile: pw.PasswordFile, PasswordEnv: pw.PasswordEnv}}
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			dl, err := c.Dialer()
			if err != nil {
				t.Fatal(err)
			}
			tr, err := c.Transport()
			if err != nil {
				t.Fatal(err)
			}
			if dl.TLS == nil || dl.TLS.RootCAs == nil || len(dl.TLS.Certificates) != 1 || dl.TLS.ServerName != "kafka.internal" || tr.TLS == nil {
				t.Fatalf("%s: TLS not configured: %+v", mech, dl.TLS)
			}
			if dl.SASLMechanism == nil || dl.SASLMechanism.Name() != mech || tr.SASL == nil {
				t.Fatalf("%s: SASL mechanism %v", mech, dl.SASLMechanism)
			}
		}
	}
	c := Connection{Brokers: []string{"127.0.0.1:9092"}, TLS: TLSConfig{CAFile: key}}
	if _, err := c.Dialer(); err == nil {
		t.Error("a CA file without certificates was accepted")
	}
	plain := Connection{Brokers: []string{"127.0.0.1:9092"}}
	if dl, err := plain.Dialer(); err != nil || dl.TLS != nil || dl.SASLMechanism != nil {
		t.Errorf("plaintext dialer: %+v, %v", dl, err)
	}
}

// writeCerts writes a self-signed CA and a client certificate and key.
func writeCerts(t *testing.T, dir string) (ca, cert, key string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	cliKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cliTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "vigil"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	cliDER, err := x509.CreateCertificate(rand.Reader, cliTmpl, caTmpl, &cliKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(cliKey)
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
		return p
	}
	return write("ca.pem", "CERTIFICATE", caDER), write("client.pem", "CERTIFICATE", cliDER), write("client-key.pem", "EC PRIVATE KEY", keyDER)
}

// TestMetricsStartAtZero: the dead-letter, decode-failure and error series
// exist from the start, at 0, so that dashboards and increase() alerts see
// them before the first failure.
func TestMetricsStartAtZero(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Brokers = []string{"127.0.0.1:9"}
	reg := prometheus.NewRegistry()
	if _, err := New(cfg, newEngine(t), Options{Logger: quietLogger(), Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	for name, n := range map[string]int{"vigil_kafka_dead_lettered_total": 4, "vigil_kafka_decode_failures_total": 3, "vigil_kafka_errors_total": 6} {
		if got, err := testutil.GatherAndCount(reg, name); err != nil || got != n {
			t.Errorf("%s: %d series (%v), want %d", name, got, err, n)
		}
	}
}
