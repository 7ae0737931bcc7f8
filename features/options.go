package features

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Options configure an Engine. The zero value is valid: every field has a
// default.
type Options struct {
	// MaxEntities caps the entities tracked, all entity kinds together
	// (a card, an account, a device... each count one). When a new entity
	// would exceed it, the least recently active entity of the same shard
	// is dropped: an idle one (its longest window expired) if possible,
	// counted in vigil_features_evictions_total{reason="idle"}, otherwise
	// an active one, counted with reason="active" and logged. Default
	// 5,000,000 (about 2 GB with the default definitions; see
	// docs/features.md for the cost per entity).
	MaxEntities int
	// Lateness is how far behind an entity's newest event an event may be
	// and still be recorded (in its own bucket, exactly). Older events are
	// not recorded, are counted in vigil_features_late_events_total
	// {outcome="dropped"} and are scored as if they happened at the
	// entity's newest time. Default 5m; a negative value means none.
	// At most 24h.
	Lateness time.Duration
	// Retention drops entities idle for longer than this (in event time),
	// first-seen times and novelty sets included. Default 90d. It must be
	// at least the longest window plus the lateness.
	Retention time.Duration
	// GeoIPDatabase is the path of a MaxMind-format (.mmdb) database with
	// country and location (GeoIP2/GeoLite2 City or Country, or a combined
	// database that also has autonomous_system_number). Default "": no IP
	// geography, and IP-derived features are missing.
	GeoIPDatabase string
	// ASNDatabase is an optional second database with
	// autonomous_system_number (GeoLite2 ASN). Default "".
	ASNDatabase string
	// GeoCacheSize is the number of IP lookups cached (rounded up to a power
	// of two). Default 65,536.
	GeoCacheSize int
	// FingerprintKey is the key of the keyed hash that derives device
	// fingerprints, at least 16 bytes; keep it secret and stable, or
	// derived fingerprints change. Default nil: a random key for this
	// process (logged as a warning when fingerprints are derived).
	FingerprintKey []byte
	// Labels says that labels will be fed (ObserveLabel), as replays, rule
	// tests and vigil serve with signals on do: only then do label_rate
	// features keep per-entity state. Default false: label_rate features
	// are missing and cost no memory.
	Labels bool
	// Logger receives warnings (active evictions, at most one a minute).
	// Default slog.Default().
	Logger *slog.Logger
}

// Defaults.
const (
	DefaultMaxEntities  = 5_000_000
	DefaultLateness     = 5 * time.Minute
	DefaultRetention    = 90 * Day
	DefaultGeoCacheSize = 1 << 16
)

// Validate reports invalid options (before defaults are applied).
func (o *Options) Validate() error {
	var errs []error
	if o.MaxEntities < 0 || o.MaxEntities > 1<<31-1 {
		errs = append(errs, fmt.Errorf("max entities %d: want 0 (default) to %d", o.MaxEntities, 1<<31-1))
	}
	if o.Lateness > Day {
		errs = append(errs, fmt.Errorf("lateness %s: at most 24h", o.Lateness))
	}
	if o.Retention < 0 {
		errs = append(errs, fmt.Errorf("retention %s: must not be negative", o.Retention))
	}
	if o.GeoCacheSize < 0 || o.GeoCacheSize > 1<<24 {
		errs = append(errs, fmt.Errorf("geo cache size %d: want 0 (default) to %d", o.GeoCacheSize, 1<<24))
	}
	if o.FingerprintKey != nil && len(o.FingerprintKey) < 16 {
		errs = append(errs, errors.New("fingerprint key: at least 16 bytes"))
	}
	return errors.Join(errs...)
}

// withDefaults returns o with every zero field set to its default.
func (o Options) withDefaults() Options {
	if o.MaxEntities == 0 {
		o.MaxEntities = DefaultMaxEntities
	}
	switch {
	case o.Lateness == 0:
		o.Lateness = DefaultLateness
	case o.Lateness < 0:
		o.Lateness = 0
	}
	if o.Retention == 0 {
		o.Retention = DefaultRetention
	}
	if o.GeoCacheSize == 0 {
		o.GeoCacheSize = DefaultGeoCacheSize
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}
