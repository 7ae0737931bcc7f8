package main

import (
	"errors"

	"github.com/vigil-fraud/vigil/engine"
	"github.com/vigil-fraud/vigil/engine/stream"
	"github.com/vigil-fraud/vigil/signals"
)

// config is vigil's configuration file: the engine's settings at the top
// level and one section per optional component. Decoding is strict: an
// unknown key anywhere is an error. docs/config.example.yaml is the
// default, written out.
type config struct {
	engine.Config `yaml:",inline"`
	// Kafka consumes transactions and produces decisions when brokers are
	// set (docs/kafka.md). Default: off.
	Kafka stream.Config `yaml:"kafka"`
	// Signals writes one row per decision to ClickHouse when enabled
	// (docs/signals.md). Default: off.
	Signals signals.Config `yaml:"signals"`
}

// defaultConfig returns the configuration with every default filled in.
func defaultConfig() config {
	return config{Config: engine.DefaultConfig(), Kafka: stream.DefaultConfig(), Signals: signals.DefaultConfig()}
}

// loadConfig reads a config file over the defaults; "" gives the defaults.
func loadConfig(path string) (config, error) {
	c := defaultConfig()
	if path == "" {
		return c, nil
	}
	err := engine.DecodeConfigFile(path, &c)
	return c, err
}

// kafkaEnabled reports whether the Kafka consumer runs.
func (c *config) kafkaEnabled() bool { return len(c.Kafka.Brokers) > 0 }

// Validate checks the engine's settings and those of every enabled
// component; every problem is reported.
func (c *config) Validate() error {
	errs := []error{c.Config.Validate()}
	if c.kafkaEnabled() {
		errs = append(errs, c.Kafka.Validate())
	}
	if c.Signals.Enabled {
		errs = append(errs, c.Signals.Validate())
	}
	if c.kafkaEnabled() && c.Kafka.Topics.Labels != "" && !c.Signals.Enabled {
		// its labels are stored in ClickHouse: without signals nothing would read the topic
		errs = append(errs, errors.New("kafka.topics.labels needs signals.enabled: labels are stored with the signals (or remove the topic)"))
	}
	return errors.Join(errs...)
}
