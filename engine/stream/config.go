package stream

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/vigil-fraud/vigil/engine"
	"github.com/vigil-fraud/vigil/features"
)

// Config is the `kafka:` section of vigil's configuration. Every field has
// a default, stated in its comment; DefaultConfig returns them all.
type Config struct {
	// Connection says how to reach the cluster: brokers, TLS, SASL.
	Connection `yaml:",inline"`
	// Group is the consumer group id shared by every vigil scoring the same
	// stream. Default "vigil".
	Group string `yaml:"group"`
	// Topics names the topics.
	Topics TopicsConfig `yaml:"topics"`
	// StartOffset is where a group with no committed offset starts on a
	// partition: "earliest" (score everything retained) or "latest" (score
	// only new events; the retained ones rebuild the windows). Default
	// "earliest".
	StartOffset string `yaml:"start_offset"`
	// BatchSize bounds the events of one partition scored, produced and
	// committed together. A batch is whatever has arrived, up to this size:
	// nothing waits for a batch to fill. Default 1000.
	BatchSize int `yaml:"batch_size"`
	// CommitInterval is how often the offsets of produced decisions are
	// committed. Default 1s.
	CommitInterval engine.Duration `yaml:"commit_interval"`
	// Producer configures the writer of decisions and dead letters.
	Producer ProducerConfig `yaml:"producer"`
	// Rebuild configures the rebuild of feature windows after a restart or
	// a rebalance.
	Rebuild RebuildConfig `yaml:"rebuild"`
	// SessionTimeout is how long the group coordinator waits for a
	// heartbeat before it gives this instance's partitions to another.
	// Default 10s.
	SessionTimeout engine.Duration `yaml:"session_timeout"`
	// RebalanceTimeout is how long the group waits for its members to
	// finish in-flight work and rejoin in a rebalance. Default 10s.
	RebalanceTimeout engine.Duration `yaml:"rebalance_timeout"`
	// HeartbeatInterval is how often the member heartbeats. Default 1s;
	// at most a third of the session timeout.
	HeartbeatInterval engine.Duration `yaml:"heartbeat_interval"`
	// JoinGroupBackoff is the wait before joining again after a failed
	// join (the broker is down, say). Default 500ms.
	JoinGroupBackoff engine.Duration `yaml:"join_group_backoff"`
	// CloseTimeout bounds the shutdown: in-flight batches finish, offsets
	// commit and the member leaves the group within it. Default 10s.
	CloseTimeout engine.Duration `yaml:"close_timeout"`
}

// Connection says how to reach a Kafka cluster. It is shared by the
// consumer and `vigil produce`.
type Connection struct {
	// Brokers are the bootstrap addresses, host:port. Required.
	Brokers []string `yaml:"brokers"`
	// ClientID names this client in the brokers' logs and quotas.
	// Default "vigil".
	ClientID string `yaml:"client_id"`
	// TLS encrypts the connections. Default: plaintext.
	TLS TLSConfig `yaml:"tls"`
	// SASL authenticates. Default: none.
	SASL SASLConfig `yaml:"sasl"`
	// DialTimeout bounds one connection attempt. Default 10s (also when 0).
	DialTimeout engine.Duration `yaml:"dial_timeout"`
}

// TLSConfig configures TLS to the brokers.
type TLSConfig struct {
	// Enabled turns TLS on. Default false. Setting any file turns it on too.
	Enabled bool `yaml:"enabled"`
	// CAFile is a PEM bundle of the CAs that sign the brokers'
	// certificates. Default "": the system's roots.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are this client's PEM certificate and key, for
	// brokers that require client certificates (mTLS). Default "": none.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName overrides the name checked in the brokers' certificates.
	// Default "": the broker's host name.
	ServerName string `yaml:"server_name"`
}

// On reports whether TLS is in use.
func (t TLSConfig) On() bool {
	return t.Enabled || t.CAFile != "" || t.CertFile != "" || t.KeyFile != ""
}

// SASLConfig configures SASL authentication. The password is never in the
// configuration file: it is read from PasswordFile or from the environment
// variable PasswordEnv.
type SASLConfig struct {
	// Mechanism is "" (none), "PLAIN", "SCRAM-SHA-256" or "SCRAM-SHA-512".
	// Default "". Use PLAIN only over TLS.
	Mechanism string `yaml:"mechanism"`
	// Username. Required with a mechanism.
	Username string `yaml:"username"`
	// PasswordFile is a file holding the password (a trailing newline is
	// ignored). Default "": the environment variable PasswordEnv.
	PasswordFile string `yaml:"password_file"`
	// PasswordEnv names the environment variable holding the password when
	// PasswordFile is empty. Default "VIGIL_KAFKA_PASSWORD".
	PasswordEnv string `yaml:"password_env"`
}

// TopicsConfig names vigil's topics.
type TopicsConfig struct {
	// Transactions is the topic of events to score. Default "transactions".
	Transactions string `yaml:"transactions"`
	// Decisions receives one decision record per event, keyed by the
	// event's primary entity (card token, else account id). Default
	// "decisions".
	Decisions string `yaml:"decisions"`
	// DeadLetter receives the messages that cannot be scored, with the
	// reason in headers. Default "transactions.dlq"; "" drops them (they
	// are still logged, without their content, and counted).
	DeadLetter string `yaml:"dead_letter"`
	// Labels, when set and signals are on, is a topic of confirmed outcomes
	// (each message the body of POST /v1/labels) that vigil stores in
	// ClickHouse, in the consumer group "<group>.labels"; created at
	// start-up when Create is on. Default "": none.
	Labels string `yaml:"labels"`
	// Create creates missing topics at start-up. Default true.
	Create bool `yaml:"create"`
	// Partitions of created topics. Default 0: the transactions topic's
	// count, or 6 when it is created too.
	Partitions int `yaml:"partitions"`
	// ReplicationFactor of created topics. Default -1: the broker's
	// default.
	ReplicationFactor int `yaml:"replication_factor"`
}

// ProducerConfig configures the writer of decisions and dead letters.
type ProducerConfig struct {
	// BatchTimeout is accepted for compatibility and no longer used: the
	// decisions of a scored batch are produced together as soon as it is
	// scored, one request per partition, without waiting for others.
	BatchTimeout engine.Duration `yaml:"batch_timeout"`
	// BatchSize is the most records in one produce request per partition.
	// Default 1000.
	BatchSize int `yaml:"batch_size"`
	// Compression is none, gzip, snappy, lz4 or zstd. Default "none".
	Compression string `yaml:"compression"`
	// WriteTimeout bounds one produce request. Default 10s.
	WriteTimeout engine.Duration `yaml:"write_timeout"`
}

// RebuildConfig configures how feature windows are rebuilt from the
// transactions topic when a partition is assigned.
type RebuildConfig struct {
	// Window is how far back (in message time) a newly assigned partition
	// is re-read to rebuild the windows. Default 0: the features engine's
	// longest window plus its lateness, as the caller passes it in
	// Options.RebuildWindow, else 30d5m. Negative ("-1s"): no rebuild.
	// Written as a Go duration (720h5m) or in days (30d).
	Window Span `yaml:"window"`
}

// Span is a duration written in YAML as a Go duration ("90m", "720h5m")
// or a whole number of days ("30d").
type Span time.Duration

// UnmarshalYAML parses a Go duration or a number of days.
func (s *Span) UnmarshalYAML(n *yaml.Node) error {
	if v, err := time.ParseDuration(n.Value); err == nil {
		*s = Span(v)
		return nil
	}
	v, err := features.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration such as 90m, 720h or 30d", n.Line, n.Value)
	}
	*s = Span(v)
	return nil
}

// MarshalYAML writes the span as a Go duration.
func (s Span) MarshalYAML() (any, error) { return time.Duration(s).String(), nil }

// Defaults.
const (
	DefaultGroup         = "vigil"
	DefaultTransactions  = "transactions"
	DefaultDecisions     = "decisions"
	DefaultDeadLetter    = "transactions.dlq"
	DefaultRebuildWindow = 30*24*time.Hour + 5*time.Minute
	DefaultPasswordEnv   = "VIGIL_KAFKA_PASSWORD"
	defaultPartitions    = 6
)

// DefaultConfig returns the configuration with every default filled in
// and no brokers.
func DefaultConfig() Config {
	return Config{
		Connection: Connection{ClientID: "vigil", DialTimeout: d(10 * time.Second),
			SASL: SASLConfig{PasswordEnv: DefaultPasswordEnv}},
		Group:             DefaultGroup,
		Topics:            TopicsConfig{Transactions: DefaultTransactions, Decisions: DefaultDecisions, DeadLetter: DefaultDeadLetter, Create: true, ReplicationFactor: -1},
		StartOffset:       "earliest",
		BatchSize:         1000,
		CommitInterval:    d(time.Second),
		Producer:          ProducerConfig{BatchTimeout: d(time.Millisecond), BatchSize: 1000, Compression: "none", WriteTimeout: d(10 * time.Second)},
		SessionTimeout:    d(10 * time.Second),
		RebalanceTimeout:  d(10 * time.Second),
		HeartbeatInterval: d(time.Second),
		JoinGroupBackoff:  d(500 * time.Millisecond),
		CloseTimeout:      d(10 * time.Second),
	}
}

func d(t time.Duration) engine.Duration { return engine.Duration(t) }

// Validate checks the configuration; every problem is reported.
func (c *Config) Validate() error {
	errs := []error{c.Connection.Validate()}
	if c.Group == "" {
		errs = append(errs, errors.New("kafka.group is required"))
	}
	t := c.Topics
	if t.Transactions == "" || t.Decisions == "" {
		errs = append(errs, errors.New("kafka.topics: transactions and decisions are required"))
	}
	for _, n := range []string{t.Transactions, t.Decisions, t.DeadLetter, t.Labels} {
		if err := checkTopicName(n); n != "" && err != nil {
			errs = append(errs, fmt.Errorf("kafka.topics: %w", err))
		}
	}
	if t.Transactions != "" && (t.Transactions == t.Decisions || t.Transactions == t.DeadLetter) || t.Decisions != "" && t.Decisions == t.DeadLetter {
		errs = append(errs, errors.New("kafka.topics: transactions, decisions and dead_letter must differ"))
	}
	if t.Labels != "" && (t.Labels == t.Transactions || t.Labels == t.Decisions || t.Labels == t.DeadLetter) {
		errs = append(errs, errors.New("kafka.topics: labels must differ from the other topics"))
	}
	if t.Partitions < 0 {
		errs = append(errs, errors.New("kafka.topics.partitions must not be negative"))
	}
	if t.ReplicationFactor == 0 || t.ReplicationFactor < -1 {
		errs = append(errs, errors.New("kafka.topics.replication_factor must be -1 (broker default) or positive"))
	}
	if c.StartOffset != "earliest" && c.StartOffset != "latest" {
		errs = append(errs, fmt.Errorf("kafka.start_offset: %q is not earliest or latest", c.StartOffset))
	}
	if c.BatchSize < 1 || c.BatchSize > 100_000 {
		errs = append(errs, errors.New("kafka.batch_size: want 1 to 100000"))
	}
	if c.Producer.BatchSize < 1 {
		errs = append(errs, errors.New("kafka.producer.batch_size must be positive"))
	}
	if c.Producer.BatchTimeout < 0 { // accepted and ignored (see ProducerConfig)
		errs = append(errs, errors.New("kafka.producer.batch_timeout must not be negative"))
	}
	if _, err := compression(c.Producer.Compression); err != nil {
		errs = append(errs, err)
	}
	for _, p := range []struct {
		name string
		v    engine.Duration
	}{{"commit_interval", c.CommitInterval}, {"session_timeout", c.SessionTimeout}, {"rebalance_timeout", c.RebalanceTimeout},
		{"heartbeat_interval", c.HeartbeatInterval}, {"join_group_backoff", c.JoinGroupBackoff}, {"close_timeout", c.CloseTimeout},
		{"producer.write_timeout", c.Producer.WriteTimeout}} {
		if p.v <= 0 {
			errs = append(errs, fmt.Errorf("kafka.%s must be positive", p.name))
		}
	}
	if c.HeartbeatInterval > 0 && c.SessionTimeout > 0 && 3*c.HeartbeatInterval > c.SessionTimeout {
		errs = append(errs, errors.New("kafka.heartbeat_interval must be at most a third of session_timeout"))
	}
	return errors.Join(errs...)
}

// Validate checks the connection settings, including that the TLS files
// and the SASL password can be read.
func (c *Connection) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("kafka.brokers: at least one host:port is required"))
	}
	for _, b := range c.Brokers {
		host, port, err := net.SplitHostPort(b)
		if err == nil {
			if n, perr := strconv.Atoi(port); host == "" || perr != nil || n < 1 || n > 65535 {
				err = fmt.Errorf("%q: want host:port with a port from 1 to 65535", b)
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("kafka.brokers: %w", err))
		}
	}
	if c.DialTimeout < 0 {
		errs = append(errs, errors.New("kafka.dial_timeout must not be negative"))
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		errs = append(errs, errors.New("kafka.tls: cert_file and key_file go together"))
	}
	for _, f := range []struct{ name, path string }{{"ca_file", c.TLS.CAFile}, {"cert_file", c.TLS.CertFile}, {"key_file", c.TLS.KeyFile}} {
		if f.path != "" {
			if _, err := os.Stat(f.path); err != nil {
				errs = append(errs, fmt.Errorf("kafka.tls.%s: %w", f.name, err))
			}
		}
	}
	if c.TLS.ServerName != "" && !c.TLS.On() {
		errs = append(errs, errors.New("kafka.tls.server_name is set but TLS is off: set tls.enabled: true (or a TLS file)"))
	}
	s := c.SASL
	switch m := strings.ToUpper(s.Mechanism); m {
	case "":
		if s.Username != "" || s.PasswordFile != "" {
			errs = append(errs, errors.New("kafka.sasl: a username or password_file without a mechanism: set sasl.mechanism (SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN)"))
		}
	case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
		if m == "PLAIN" && !c.TLS.On() {
			errs = append(errs, errors.New("kafka.sasl.mechanism PLAIN without TLS would send the password in clear: turn tls on, or use SCRAM"))
		}
		if s.Username == "" {
			errs = append(errs, errors.New("kafka.sasl.username is required with a mechanism"))
		}
		if err := engine.CheckEnvName("kafka.sasl.password_env", s.PasswordEnv); err != nil {
			errs = append(errs, err)
		} else if _, err := s.password(); err != nil {
			errs = append(errs, err)
		}
	default:
		errs = append(errs, fmt.Errorf("kafka.sasl.mechanism: %q is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", s.Mechanism))
	}
	return errors.Join(errs...)
}

// password reads the SASL password from its file or environment variable.
func (s SASLConfig) password() (string, error) {
	if s.PasswordFile != "" {
		b, err := os.ReadFile(s.PasswordFile)
		if err != nil {
			return "", fmt.Errorf("kafka.sasl.password_file: %w", err)
		}
		p := strings.TrimRight(string(b), "\r\n")
		if p == "" {
			return "", fmt.Errorf("kafka.sasl.password_file: %s is empty", s.PasswordFile)
		}
		return p, nil
	}
	env := s.PasswordEnv
	if env == "" {
		env = DefaultPasswordEnv
	}
	p := os.Getenv(env)
	if p == "" {
		return "", fmt.Errorf("kafka.sasl: no password: set password_file or the environment variable %s", env)
	}
	return p, nil
}

// checkTopicName applies Kafka's rules for topic names.
func checkTopicName(n string) error {
	if n == "." || n == ".." || len(n) > 249 {
		return fmt.Errorf("%q is not a valid topic name", n)
	}
	for _, r := range n {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("topic %q: only letters, digits, '.', '_' and '-' are allowed", n)
		}
	}
	return nil
}

// rebuildWindow resolves the rebuild window: the configured one, else the
// caller's (the features engine's longest window plus lateness), else the
// default. Zero or less means no rebuild.
func (c *Config) rebuildWindow(fromFeatures time.Duration) time.Duration {
	switch w := time.Duration(c.Rebuild.Window); {
	case w < 0:
		return 0
	case w > 0:
		return w
	case fromFeatures > 0:
		return fromFeatures
	}
	return DefaultRebuildWindow
}
