package signals

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/vigil-fraud/vigil/engine"
)

// Config configures signals: where ClickHouse is, how the writer queues,
// batches and spills, and how long data is kept. Every field is optional;
// each comment states the default. Secrets (the ClickHouse password, the IP
// hashing key) are never in it: it names the files or environment
// variables that hold them.
type Config struct {
	// Enabled turns signals on in `vigil serve`. Default false.
	Enabled bool `yaml:"enabled"`
	// Addr is the ClickHouse native-protocol address, host:port; several
	// comma-separated addresses are tried in order. Default
	// "127.0.0.1:9000".
	Addr string `yaml:"addr"`
	// Database holds vigil's tables and views; migrations create it.
	// Default "vigil".
	Database string `yaml:"database"`
	// User is the ClickHouse user. Default "default".
	User string `yaml:"user"`
	// PasswordFile is a file whose content (trailing newline trimmed) is the
	// password. Default "": PasswordEnv.
	PasswordFile string `yaml:"password_file"`
	// PasswordEnv names the environment variable holding the password when
	// PasswordFile is empty. Default "VIGIL_CLICKHOUSE_PASSWORD"; unset or
	// empty means no password.
	PasswordEnv string `yaml:"password_env"`
	// TLS secures the ClickHouse connection. Default: plain TCP.
	TLS TLSConfig `yaml:"tls"`
	// DialTimeout bounds connecting to ClickHouse. Default 5s.
	DialTimeout engine.Duration `yaml:"dial_timeout"`
	// InsertTimeout bounds one batch insert or query. Default 30s.
	InsertTimeout engine.Duration `yaml:"insert_timeout"`
	// Migrate applies the schema migrations when the writer starts (and
	// retries until ClickHouse answers). Default true; set false when the
	// writer's ClickHouse user may not run DDL, and run `vigil signals
	// migrate` with an admin user instead.
	Migrate bool `yaml:"migrate"`
	// IPHashKeyFile is a file holding the key (≥ 16 bytes) of the
	// HMAC-SHA256 under which device IPs are stored. Default "":
	// IPHashKeyEnv.
	IPHashKeyFile string `yaml:"ip_hash_key_file"`
	// IPHashKeyEnv names the environment variable holding that key when
	// IPHashKeyFile is empty. Default "": with no key, IPs are not stored.
	IPHashKeyEnv string `yaml:"ip_hash_key_env"`
	// Queue configures the in-memory queue and batching.
	Queue QueueConfig `yaml:"queue"`
	// Spill configures the disk spill used while ClickHouse is slow or down.
	Spill SpillConfig `yaml:"spill"`
	// Retention configures how long signals and labels are kept.
	Retention RetentionConfig `yaml:"retention"`
}

// TLSConfig secures the connection to ClickHouse (its secure native port,
// 9440 by default).
type TLSConfig struct {
	// Enabled turns TLS on. Default false.
	Enabled bool `yaml:"enabled"`
	// CAFile is a PEM bundle of the CAs that sign the server's certificate.
	// Default "": the system roots.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a PEM client certificate and key, for
	// servers that require client certificates. Default "": none.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName overrides the name checked in the server's certificate.
	// Default "": the host of Addr.
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify disables certificate verification: for tests
	// only. Default false.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// QueueConfig bounds the in-memory queue between scoring and ClickHouse.
type QueueConfig struct {
	// Size is how many records wait between scoring and the batcher; a
	// record that finds it full is dropped and counted (reason
	// "queue_full"). Default 65536.
	Size int `yaml:"size"`
	// BatchSize is the most rows in one insert. Default 20000.
	BatchSize int `yaml:"batch_size"`
	// FlushInterval is the longest a record waits for its batch to fill.
	// Default 1s.
	FlushInterval engine.Duration `yaml:"flush_interval"`
	// MemoryBatches is how many full batches may wait in memory for
	// ClickHouse before new ones spill to disk. Default 4.
	MemoryBatches int `yaml:"memory_batches"`
	// DrainTimeout bounds, at shutdown, how long queued rows are still sent
	// to ClickHouse; what remains is spilled to disk and sent at the next
	// start. A connection under way can add up to DialTimeout. Default 5s.
	DrainTimeout engine.Duration `yaml:"drain_timeout"`
}

// Spill policies when the disk budget is exhausted.
const (
	// DropNewest refuses new rows while the spill is full: what is on disk
	// is kept and replayed.
	DropNewest = "drop_newest"
	// DropOldest deletes the oldest spill segment to make room.
	DropOldest = "drop_oldest"
)

// SpillConfig configures the disk spill: append-only, checksummed segment
// files replayed in order once ClickHouse answers again.
type SpillConfig struct {
	// Dir holds the segments. Use a persistent directory owned by vigil in
	// production. Default "": $TMPDIR/vigil-signals-spill (a warning is
	// logged).
	Dir string `yaml:"dir"`
	// MaxBytes is the disk budget of the spill. Default 1073741824 (1 GiB).
	MaxBytes int64 `yaml:"max_bytes"`
	// SegmentBytes is the size at which a segment is closed and a new one
	// started. Default 67108864 (64 MiB).
	SegmentBytes int64 `yaml:"segment_bytes"`
	// FullPolicy is what happens when the budget is exhausted:
	// "drop_newest" (default) or "drop_oldest". Either way the rows lost
	// are counted in vigil_signals_dropped_rows_total{reason="spill_full"}
	// and vigil_signals_spill_full is 1.
	FullPolicy string `yaml:"full_policy"`
	// Fsync syncs every spilled batch to disk. Default true.
	Fsync bool `yaml:"fsync"`
}

// RetentionConfig is the data retention policy (docs/signals.md).
type RetentionConfig struct {
	// Days is how long signals are kept, by event time, and labels, by
	// label time. 0 keeps them forever. Default 90.
	Days int `yaml:"days"`
	// CheckInterval is how often the writer enforces retention (sets the
	// TTL, or drops expired partitions on servers without TTL). Default 1h.
	CheckInterval engine.Duration `yaml:"check_interval"`
}

// DefaultConfig returns the configuration with every default filled in.
// Build configurations from it: the zero Config turns off migrations at
// start-up, fsync and retention.
func DefaultConfig() Config {
	c := Config{Migrate: true, Spill: SpillConfig{Fsync: true}, Retention: RetentionConfig{Days: 90}}
	c.setDefaults()
	return c
}

func (c *Config) setDefaults() {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.Addr, "127.0.0.1:9000")
	def(&c.Database, "vigil")
	def(&c.User, "default")
	def(&c.PasswordEnv, "VIGIL_CLICKHOUSE_PASSWORD")
	def(&c.Spill.Dir, filepath.Join(os.TempDir(), "vigil-signals-spill"))
	def(&c.Spill.FullPolicy, DropNewest)
	defDur := func(d *engine.Duration, v time.Duration) {
		if *d == 0 {
			*d = engine.Duration(v)
		}
	}
	defDur(&c.DialTimeout, 5*time.Second)
	defDur(&c.InsertTimeout, 30*time.Second)
	defDur(&c.Queue.FlushInterval, time.Second)
	defDur(&c.Queue.DrainTimeout, 5*time.Second)
	defDur(&c.Retention.CheckInterval, time.Hour)
	defInt := func(n *int, v int) {
		if *n == 0 {
			*n = v
		}
	}
	defInt(&c.Queue.Size, 65536)
	defInt(&c.Queue.BatchSize, 20000)
	defInt(&c.Queue.MemoryBatches, 4)
	if c.Spill.MaxBytes == 0 {
		c.Spill.MaxBytes = 1 << 30
	}
	if c.Spill.SegmentBytes == 0 {
		c.Spill.SegmentBytes = 64 << 20
	}
}

// UnmarshalYAML reads a config over the defaults, strictly (unknown keys are
// errors).
func (c *Config) UnmarshalYAML(n *yaml.Node) error {
	type plain Config
	p := plain(DefaultConfig())
	var buf bytes.Buffer
	if err := yaml.NewEncoder(&buf).Encode(n); err != nil {
		return err
	}
	d := yaml.NewDecoder(&buf)
	d.KnownFields(true)
	if err := d.Decode(&p); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	*c = Config(p)
	c.setDefaults()
	return nil
}

// Validate checks the configuration, including that the files it names
// exist. It fills in defaults for fields left zero.
func (c *Config) Validate() error {
	c.setDefaults()
	var errs []error
	for _, a := range c.Addrs() {
		if _, _, err := net.SplitHostPort(a); err != nil {
			errs = append(errs, fmt.Errorf("signals.addr: %w", err))
		}
	}
	if !validIdent(c.Database) {
		errs = append(errs, fmt.Errorf("signals.database: %q must be letters, digits and _", c.Database))
	}
	for _, e := range []struct{ key, name string }{{"signals.password_env", c.PasswordEnv}, {"signals.ip_hash_key_env", c.IPHashKeyEnv}} {
		if err := engine.CheckEnvName(e.key, e.name); err != nil {
			errs = append(errs, err)
		}
	}
	for _, f := range []struct{ name, path string }{
		{"password_file", c.PasswordFile}, {"ip_hash_key_file", c.IPHashKeyFile},
		{"tls.ca_file", c.TLS.CAFile}, {"tls.cert_file", c.TLS.CertFile}, {"tls.key_file", c.TLS.KeyFile},
	} {
		if f.path != "" {
			if _, err := os.Stat(f.path); err != nil {
				errs = append(errs, fmt.Errorf("signals.%s: %w", f.name, err))
			}
		}
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		errs = append(errs, errors.New("signals.tls: cert_file and key_file go together"))
	}
	if (c.TLS.CAFile != "" || c.TLS.CertFile != "" || c.TLS.ServerName != "" || c.TLS.InsecureSkipVerify) && !c.TLS.Enabled {
		errs = append(errs, errors.New("signals.tls: options set but tls.enabled is false"))
	}
	pos := func(name string, v int64) {
		if v <= 0 {
			errs = append(errs, fmt.Errorf("signals.%s must be positive", name))
		}
	}
	pos("dial_timeout", int64(c.DialTimeout))
	pos("insert_timeout", int64(c.InsertTimeout))
	pos("queue.size", int64(c.Queue.Size))
	pos("queue.batch_size", int64(c.Queue.BatchSize))
	pos("queue.flush_interval", int64(c.Queue.FlushInterval))
	pos("queue.memory_batches", int64(c.Queue.MemoryBatches))
	pos("queue.drain_timeout", int64(c.Queue.DrainTimeout))
	pos("spill.max_bytes", c.Spill.MaxBytes)
	pos("spill.segment_bytes", c.Spill.SegmentBytes)
	pos("retention.check_interval", int64(c.Retention.CheckInterval))
	if c.Spill.SegmentBytes > c.Spill.MaxBytes {
		errs = append(errs, errors.New("signals.spill.segment_bytes must not exceed max_bytes"))
	}
	if c.Spill.FullPolicy != DropNewest && c.Spill.FullPolicy != DropOldest {
		errs = append(errs, fmt.Errorf("signals.spill.full_policy: %q is not %s or %s", c.Spill.FullPolicy, DropNewest, DropOldest))
	}
	if c.Retention.Days < 0 {
		errs = append(errs, errors.New("signals.retention.days must not be negative (0 keeps forever)"))
	}
	return errors.Join(errs...)
}

// Addrs returns the configured addresses.
func (c *Config) Addrs() []string {
	var out []string
	for _, a := range strings.Split(c.Addr, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// password reads the ClickHouse password from PasswordFile or PasswordEnv.
func (c *Config) password() (string, error) {
	if c.PasswordFile != "" {
		b, err := os.ReadFile(c.PasswordFile)
		if err != nil {
			return "", fmt.Errorf("signals password: %w", err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	if c.PasswordEnv != "" {
		return os.Getenv(c.PasswordEnv), nil
	}
	return "", nil
}

// ipHashKey reads the IP hashing key; nil when none is configured.
func (c *Config) ipHashKey() ([]byte, error) {
	var key []byte
	switch {
	case c.IPHashKeyFile != "":
		b, err := os.ReadFile(c.IPHashKeyFile)
		if err != nil {
			return nil, fmt.Errorf("signals ip hash key: %w", err)
		}
		key = bytes.TrimRight(b, "\r\n")
	case c.IPHashKeyEnv != "":
		key = []byte(os.Getenv(c.IPHashKeyEnv))
		if len(key) == 0 {
			return nil, fmt.Errorf("signals ip hash key: environment variable %s is empty", c.IPHashKeyEnv)
		}
	default:
		return nil, nil
	}
	if len(key) < 16 {
		return nil, errors.New("signals ip hash key: shorter than 16 bytes")
	}
	return key, nil
}

// tlsConfig builds the client TLS configuration; nil when TLS is off.
func (c *Config) tlsConfig() (*tls.Config, error) {
	t := c.TLS
	if !t.Enabled {
		return nil, nil
	}
	out := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("signals tls: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("signals tls: no certificates in %s", t.CAFile)
		}
		out.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("signals tls: %w", err)
		}
		out.Certificates = []tls.Certificate{cert}
	}
	return out, nil
}

// validIdent reports a database name vigil accepts: an identifier of at
// most 64 bytes, written into SQL unquoted.
func validIdent(s string) bool { return len(s) <= 64 && engine.IsIdentifier(s) }
