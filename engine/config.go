package engine

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/vigil-fraud/vigil/features"
)

// Config is vigil serve's configuration file. Every field is optional; the
// comment of each states its default. Flags override the file.
type Config struct {
	// Listen is the HTTP API address. Default "127.0.0.1:8080".
	Listen string `yaml:"listen"`
	// APIKeysFile is a YAML file of API keys (id, sha256 of the secret,
	// scopes). Default "": the single full-scope key in the environment
	// variable VIGIL_API_KEY, or else a development key generated at start-up
	// (loopback listen addresses only).
	APIKeysFile string `yaml:"api_keys_file"`
	// RulesDir is the directory of rule files. Default "": the embedded
	// starter ruleset.
	RulesDir string `yaml:"rules_dir"`
	// Features configures the feature definitions and the in-memory state.
	Features FeaturesConfig `yaml:"features"`
	// TLS serves HTTPS, and with a client CA, requires client certificates
	// (mTLS). Default: plain HTTP.
	TLS TLSConfig `yaml:"tls"`
	// Log configures logging.
	Log LogConfig `yaml:"log"`
	// Idempotency configures the recent-decisions store.
	Idempotency IdempotencyConfig `yaml:"idempotency"`
	// Reload configures rule reloading.
	Reload ReloadConfig `yaml:"reload"`
	// ShutdownTimeout bounds how long in-flight requests may take to finish
	// at shutdown. Default 10s.
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
}

// TLSConfig enables HTTPS and mTLS.
type TLSConfig struct {
	// CertFile and KeyFile are the server's PEM certificate and key.
	// Default "": no TLS.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ClientCAFile, when set, makes the server require and verify client
	// certificates signed by this PEM CA bundle. Default "": no client
	// certificates asked.
	ClientCAFile string `yaml:"client_ca_file"`
}

// Enabled reports whether TLS is configured.
func (t TLSConfig) Enabled() bool { return t.CertFile != "" }

// LogConfig configures logging.
type LogConfig struct {
	// Level is debug, info, warn or error. Default "info". At debug, every
	// request is logged with its request id.
	Level string `yaml:"level"`
	// Format is json or text. Default "json".
	Format string `yaml:"format"`
}

// IdempotencyConfig bounds the recent-decisions store that answers an id
// scored again with the same decision, without counting it twice.
type IdempotencyConfig struct {
	// Retention is how long a decision is remembered. Default 24h.
	Retention Duration `yaml:"retention"`
	// MaxEntries bounds the decisions remembered, per shard of the store
	// (64 shards of MaxEntries/64, at least 1 each); the oldest of a shard
	// are forgotten first. Default 1000000 (about 110 MB).
	MaxEntries int `yaml:"max_entries"`
}

// ReloadConfig configures rule reloading (always on SIGHUP and POST
// /-/reload).
type ReloadConfig struct {
	// PollInterval, when set, also checks the rule files' checksums at this
	// interval and reloads on change. Default 0: off.
	PollInterval Duration `yaml:"poll_interval"`
	// AuditLog is the append-only file recording every successful reload.
	// Default "": audit records go to the log only.
	AuditLog string `yaml:"audit_log"`
}

// Duration is a time.Duration written as "10s", "24h" in YAML.
type Duration time.Duration

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil && strings.HasSuffix(n.Value, "d") { // days, as in feature windows: 90d
		v, err = features.ParseDuration(n.Value)
	}
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration as a string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// DefaultConfig returns the configuration with every default filled in.
func DefaultConfig() Config {
	return Config{
		Listen:      "127.0.0.1:8080",
		Log:         LogConfig{Level: "info", Format: "json"},
		Idempotency: IdempotencyConfig{Retention: Duration(24 * time.Hour), MaxEntries: 1_000_000},
		Features: FeaturesConfig{MaxEntities: features.DefaultMaxEntities, Lateness: Duration(features.DefaultLateness),
			Retention: Duration(features.DefaultRetention), GeoCacheSize: features.DefaultGeoCacheSize,
			FingerprintKeyEnv: "VIGIL_FINGERPRINT_KEY"},
		ShutdownTimeout: Duration(10 * time.Second),
	}
}

// LoadConfig reads a config file over the defaults, strictly (unknown keys
// are errors).
func LoadConfig(path string) (Config, error) {
	c := DefaultConfig()
	err := DecodeConfigFile(path, &c)
	return c, err
}

// DecodeConfigFile decodes a YAML config file into dst, which holds the
// defaults, strictly: unknown keys are errors. An empty file changes
// nothing. Commands that compose the engine's configuration with other
// components' sections decode through it.
func DecodeConfigFile(path string, dst any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	if err := checkShape(&doc, reflect.TypeOf(dst)); err != nil {
		return fmt.Errorf("config %s:\n%w", path, err)
	}
	d := yaml.NewDecoder(bytes.NewReader(data))
	d.KnownFields(true)
	if err := d.Decode(dst); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("config %s: %w", path, err)
	}
	return nil
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("listen: %w", err))
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		errs = append(errs, errors.New("tls: cert_file and key_file go together"))
	}
	if c.TLS.ClientCAFile != "" && c.TLS.CertFile == "" {
		errs = append(errs, errors.New("tls: client_ca_file needs cert_file and key_file"))
	}
	for _, f := range []struct{ name, path string }{
		{"api_keys_file", c.APIKeysFile}, {"features.file", c.Features.File},
		{"features.geoip_database", c.Features.GeoIPDatabase}, {"features.asn_database", c.Features.ASNDatabase},
		{"features.fingerprint_key_file", c.Features.FingerprintKeyFile},
		{"tls.cert_file", c.TLS.CertFile}, {"tls.key_file", c.TLS.KeyFile}, {"tls.client_ca_file", c.TLS.ClientCAFile},
	} {
		if f.path != "" {
			if _, err := os.Stat(f.path); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", f.name, err))
			}
		}
	}
	if c.RulesDir != "" {
		if st, err := os.Stat(c.RulesDir); err != nil {
			errs = append(errs, fmt.Errorf("rules_dir: %w", err))
		} else if !st.IsDir() {
			errs = append(errs, fmt.Errorf("rules_dir: %s is not a directory", c.RulesDir))
		}
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log.level: %q is not debug, info, warn or error", c.Log.Level))
	}
	switch c.Log.Format {
	case "json", "text":
	default:
		errs = append(errs, fmt.Errorf("log.format: %q is not json or text", c.Log.Format))
	}
	if c.Idempotency.Retention <= 0 {
		errs = append(errs, errors.New("idempotency.retention must be positive"))
	}
	if c.Idempotency.MaxEntries <= 0 {
		errs = append(errs, errors.New("idempotency.max_entries must be positive"))
	}
	if c.Reload.PollInterval < 0 {
		errs = append(errs, errors.New("reload.poll_interval must not be negative"))
	}
	if err := c.Features.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, errors.New("shutdown_timeout must be positive"))
	}
	return errors.Join(errs...)
}

// LoopbackListen reports whether the listen address is on loopback only.
func (c *Config) LoopbackListen() bool {
	host, _, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}
