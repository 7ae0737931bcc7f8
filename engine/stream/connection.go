package stream

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
)

// tlsConfig builds the TLS client configuration; nil when TLS is off.
func (c *Connection) tlsConfig() (*tls.Config, error) {
	t := c.TLS
	if !t.On() {
		return nil, nil
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("kafka.tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("kafka.tls.ca_file: no PEM certificates in %s", t.CAFile)
		}
		conf.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("kafka.tls: client certificate: %w", err)
		}
		conf.Certificates = []tls.Certificate{cert}
	}
	return conf, nil
}

// mechanism builds the SASL mechanism; nil when SASL is off.
func (c *Connection) mechanism() (sasl.Mechanism, error) {
	s := c.SASL
	mech := strings.ToUpper(s.Mechanism)
	if mech == "" {
		return nil, nil
	}
	pw, err := s.password()
	if err != nil {
		return nil, err
	}
	switch mech {
	case "PLAIN":
		return plain.Mechanism{Username: s.Username, Password: pw}, nil
	case "SCRAM-SHA-256":
		return scram.Mechanism(scram.SHA256, s.Username, pw)
	case "SCRAM-SHA-512":
		return scram.Mechanism(scram.SHA512, s.Username, pw)
	}
	return nil, fmt.Errorf("kafka.sasl.mechanism: %q is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", s.Mechanism)
}

func (c *Connection) clientID() string {
	if c.ClientID == "" {
		return "vigil"
	}
	return c.ClientID
}

func (c *Connection) dialTimeout() time.Duration {
	if c.DialTimeout <= 0 {
		return 10 * time.Second
	}
	return time.Duration(c.DialTimeout)
}

// Dialer returns a kafka-go Dialer (used by readers and the consumer
// group) with the TLS and SASL settings.
func (c *Connection) Dialer() (*kafka.Dialer, error) {
	t, err := c.tlsConfig()
	if err != nil {
		return nil, err
	}
	m, err := c.mechanism()
	if err != nil {
		return nil, err
	}
	return &kafka.Dialer{ClientID: c.clientID(), Timeout: c.dialTimeout(), DualStack: true, KeepAlive: 30 * time.Second, TLS: t, SASLMechanism: m}, nil
}

// Transport returns a kafka-go Transport (used by writers and the admin
// client) with the TLS and SASL settings.
func (c *Connection) Transport() (*kafka.Transport, error) {
	t, err := c.tlsConfig()
	if err != nil {
		return nil, err
	}
	m, err := c.mechanism()
	if err != nil {
		return nil, err
	}
	return &kafka.Transport{ClientID: c.clientID(), DialTimeout: c.dialTimeout(), IdleTimeout: time.Minute, MetadataTTL: 10 * time.Second, TLS: t, SASL: m}, nil
}

// addr is the bootstrap address list for a kafka-go Client or Writer.
func (c *Connection) addr() net.Addr { return kafka.TCP(c.Brokers...) }

func compression(name string) (kafka.Compression, error) {
	switch strings.ToLower(name) {
	case "", "none":
		return 0, nil
	case "gzip":
		return kafka.Gzip, nil
	case "snappy":
		return kafka.Snappy, nil
	case "lz4":
		return kafka.Lz4, nil
	case "zstd":
		return kafka.Zstd, nil
	}
	return 0, fmt.Errorf("kafka.producer.compression: %q is not none, gzip, snappy, lz4 or zstd", name)
}
