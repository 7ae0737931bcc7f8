package engine

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/vigil-fraud/vigil/features"
)

// FeaturesConfig configures the feature definitions and the bounds of the
// in-memory feature state (docs/features.md).
type FeaturesConfig struct {
	// File is the feature definitions file. Default "": the embedded
	// default definitions.
	File string `yaml:"file"`
	// MaxEntities caps the entities tracked (cards, accounts, devices...
	// together); at the cap an idle entity (its windows expired) is
	// dropped first, else a sampled active one. Default 5000000; must be
	// positive.
	MaxEntities int `yaml:"max_entities"`
	// Lateness is how far behind an entity's newest event an event is still
	// recorded in its own bucket; older events are counted and not
	// recorded. Default 5m; 0 records no event behind its entity's newest.
	Lateness Duration `yaml:"lateness"`
	// Retention forgets entities idle for longer, in event time. Default
	// 2160h (90 days); must be positive.
	Retention Duration `yaml:"retention"`
	// GeoIPDatabase is a MaxMind-format (.mmdb) City or Country database.
	// Default "": no IP geography (IP-derived features are missing).
	GeoIPDatabase string `yaml:"geoip_database"`
	// ASNDatabase is an optional MaxMind-format ASN database. Default "".
	ASNDatabase string `yaml:"asn_database"`
	// GeoCacheSize is the number of IP lookups cached. Default 65536; must
	// be positive.
	GeoCacheSize int `yaml:"geo_cache_size"`
	// FingerprintKeyFile holds the secret key (≥ 16 bytes, trailing newline
	// trimmed) of the keyed hash that derives device fingerprints. Default
	// "": FingerprintKeyEnv.
	FingerprintKeyFile string `yaml:"fingerprint_key_file"`
	// FingerprintKeyEnv names the environment variable holding that key when
	// FingerprintKeyFile is empty. Default "VIGIL_FINGERPRINT_KEY"; unset
	// means a random key per process, so derived fingerprints change at
	// each restart (a warning is logged).
	FingerprintKeyEnv string `yaml:"fingerprint_key_env"`
}

// Validate checks the bounds (the files are checked by Config.Validate).
// The config holds its defaults before a file is read, so a zero here was
// written: a lateness of 0 means none, and the other bounds must be
// positive (for features.Options a zero means its default).
func (c *FeaturesConfig) Validate() error {
	var errs []error
	const positive = "must be positive"
	for _, b := range []struct {
		key  string
		ok   bool
		want string
	}{
		{"max_entities", c.MaxEntities > 0, positive},
		{"lateness", c.Lateness >= 0, "must not be negative (0: no event is recorded behind its entity's newest)"},
		{"retention", c.Retention > 0, positive},
		{"geo_cache_size", c.GeoCacheSize > 0, positive},
	} {
		if !b.ok {
			errs = append(errs, fmt.Errorf("features.%s: %s", b.key, b.want))
		}
	}
	if err := CheckEnvName("features.fingerprint_key_env", c.FingerprintKeyEnv); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	o := c.options()
	if err := o.Validate(); err != nil {
		return fmt.Errorf("features: %w", err)
	}
	return nil
}

// options are the features engine's bounds.
func (c *FeaturesConfig) options() features.Options {
	late := time.Duration(c.Lateness)
	if late == 0 {
		late = -1 // none (0 is features.Options' default)
	}
	return features.Options{MaxEntities: c.MaxEntities, Lateness: late, Retention: time.Duration(c.Retention),
		GeoIPDatabase: c.GeoIPDatabase, ASNDatabase: c.ASNDatabase, GeoCacheSize: c.GeoCacheSize}
}

// Options returns the features engine's options, reading the fingerprint
// key from its file or environment variable.
func (c *FeaturesConfig) Options(log *slog.Logger) (features.Options, error) {
	o := c.options()
	o.Logger = log
	var key string
	switch {
	case c.FingerprintKeyFile != "":
		b, err := os.ReadFile(c.FingerprintKeyFile)
		if err != nil {
			return o, fmt.Errorf("features.fingerprint_key_file: %w", err)
		}
		key = strings.TrimRight(string(b), "\r\n")
		if key == "" {
			return o, errors.New("features.fingerprint_key_file: the file is empty")
		}
	case c.FingerprintKeyEnv != "":
		key = os.Getenv(c.FingerprintKeyEnv)
	}
	if key != "" {
		if len(key) < 16 {
			return o, errors.New("features: the fingerprint key is shorter than 16 bytes")
		}
		o.FingerprintKey = []byte(key)
	}
	return o, nil
}
