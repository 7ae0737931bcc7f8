package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestExampleConfigIsTheDefault(t *testing.T) {
	c, err := loadConfig("../../docs/config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(c.Kafka.Brokers) == 0 {
		c.Kafka.Brokers = nil // brokers: [] reads as empty, the default is nil
	}
	if want := defaultConfig(); !reflect.DeepEqual(c, want) {
		t.Errorf("docs/config.example.yaml differs from the defaults:\n%+v\n%+v", c, want)
	}
}

func TestConfigSections(t *testing.T) {
	p := filepath.Join(t.TempDir(), "vigil.yaml")
	os.WriteFile(p, []byte(`
listen: 127.0.0.1:9999
features:
  lateness: 2m
  retention: 45d
kafka:
  brokers: [127.0.0.1:9092]
  group: scorers
signals:
  enabled: true
  addr: ch1:9000, ch2:9000
  queue: {batch_size: 500}
`), 0o600)
	c, err := loadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:9999" || time.Duration(c.Features.Lateness) != 2*time.Minute ||
		time.Duration(c.Features.Retention) != 45*24*time.Hour || !c.kafkaEnabled() || c.Kafka.Group != "scorers" ||
		c.Kafka.Topics.Transactions != "transactions" || !c.Signals.Enabled || len(c.Signals.Addrs()) != 2 ||
		c.Signals.Queue.BatchSize != 500 || c.Signals.Queue.Size != 65536 || c.Features.MaxEntities != 5_000_000 {
		t.Errorf("loaded %+v", c)
	}
}

func TestConfigErrors(t *testing.T) {
	p := filepath.Join(t.TempDir(), "vigil.yaml")
	for _, tc := range []struct{ yaml, want string }{
		{"kafka:\n  brokerz: [x:1]\n", "line 2:3: kafka.brokerz: unknown key (did you mean brokers?)"},
		{"signals:\n  adress: x\n", "line 2:3: signals.adress: unknown key"},
		{"kafka:\n  brokers: [nohost]\n", "kafka.brokers"},
		{"kafka:\n  brokers: [h:1]\n  start_offset: middle\n", "kafka.start_offset"},
		{"signals:\n  enabled: true\n  database: a-b\n", "signals.database"},
		{"signals:\n  enabled: false\n  database: a-b\n", ""}, // disabled sections are not validated
		{"features:\n  lateness: 2d\n", "at most 24h"},
		{"listen: nowhere\nkafka:\n  brokers: [nohost]\n", "listen"}, // every problem at once
		// a labels topic nothing would read
		{"kafka:\n  brokers: [h:1]\n  topics: {labels: labels}\n", "kafka.topics.labels needs signals.enabled"},
		{"kafka:\n  topics: {labels: labels}\n", ""}, // Kafka off: the section is not read
		{"signals:\n  enabeld: true\n", "signals.enabeld: unknown key (did you mean enabled?)"},
		// a secret pasted where a variable's name goes is refused, not repeated
		{"kafka:\n  brokers: [h:1]\n  tls: {enabled: true}\n  sasl: {mechanism: PLAIN, username: u, password_env: \"S3cret Passw0rd!\"}\n", "kafka.sasl.password_env: not an environment variable name"},
		{"signals:\n  enabled: true\n  ip_hash_key_env: \"My-Ip-Hash-Key-Is-Secret\"\n", "signals.ip_hash_key_env: not an environment variable name"},
		{"signals:\n  enabled: true\n  password_env: \"pa ss\"\n", "signals.password_env: not an environment variable name"},
		{"features:\n  fingerprint_key_env: \"0123456789abcdef!\"\n", "features.fingerprint_key_env: not an environment variable name"},
	} {
		os.WriteFile(p, []byte(tc.yaml), 0o600)
		c, err := loadConfig(p)
		if err == nil {
			err = c.Validate()
		}
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v", tc.yaml, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%q: err = %v, want %q", tc.yaml, err, tc.want)
		}
		for _, secret := range []string{"S3cret", "My-Ip-Hash", "pa ss", "0123456789abcdef"} {
			if err != nil && strings.Contains(err.Error(), secret) {
				t.Errorf("%q: err = %v repeats the value", tc.yaml, err)
			}
		}
	}
}
