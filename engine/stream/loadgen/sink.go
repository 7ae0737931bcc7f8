package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
)

// Message is one event to send.
type Message struct {
	Key  string
	JSON []byte
}

// Sink sends batches of events somewhere.
type Sink interface {
	// Send delivers a batch, returning once it is accepted.
	Send(ctx context.Context, msgs []Message) error
	// Close flushes and releases the sink.
	Close() error
}

// KafkaSink produces events to a topic, keyed by their card token.
type KafkaSink struct {
	w *kafka.Writer
}

// NewKafkaSink makes a sink producing to topic through transport (nil:
// kafka-go's default, plaintext).
func NewKafkaSink(brokers []string, topic string, transport *kafka.Transport) *KafkaSink {
	w := &kafka.Writer{
		Addr:         kafka.TCP(brokers...),
		Topic:        topic,
		Balancer:     kafka.Murmur2Balancer{},
		BatchSize:    2000,
		BatchBytes:   1 << 20,
		BatchTimeout: time.Millisecond,
		RequiredAcks: kafka.RequireAll,
		MaxAttempts:  10,
	}
	if transport != nil { // a nil *Transport is not a nil RoundTripper
		w.Transport = transport
	}
	return &KafkaSink{w: w}
}

// Send produces msgs and waits for their acknowledgement.
func (s *KafkaSink) Send(ctx context.Context, msgs []Message) error {
	km := make([]kafka.Message, len(msgs))
	for i, m := range msgs {
		km[i] = kafka.Message{Key: []byte(m.Key), Value: m.JSON}
	}
	return s.w.WriteMessages(ctx, km...)
}

// Close flushes the writer.
func (s *KafkaSink) Close() error { return s.w.Close() }

// HTTPSink posts events to vigil's /v1/score with a bearer key, from a
// few concurrent connections.
type HTTPSink struct {
	url    string
	key    string
	client *http.Client
	mu     sync.Mutex
	status map[int]int // responses by HTTP status code
	errs   atomic.Int64
}

// NewHTTPSink makes a sink for the API at base (http://127.0.0.1:8080).
func NewHTTPSink(base, key string, conns int) *HTTPSink {
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, IdleConnTimeout: 30 * time.Second}
	return &HTTPSink{url: base + "/v1/score", key: key, client: &http.Client{Transport: tr, Timeout: 10 * time.Second}, status: map[int]int{}}
}

// Send posts msgs concurrently, one request each. A transport error fails
// the batch; an HTTP error status is only counted (refusals are part of
// a realistic stream).
func (s *HTTPSink) Send(ctx context.Context, msgs []Message) error {
	var wg sync.WaitGroup
	errs := make([]error, len(msgs))
	sem := make(chan struct{}, 16)
	for i := range msgs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			errs[i] = s.post(ctx, msgs[i].JSON)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (s *HTTPSink) post(ctx context.Context, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+s.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		s.errs.Add(1)
		return fmt.Errorf("POST %s: %w", s.url, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	s.mu.Lock()
	s.status[resp.StatusCode]++
	s.mu.Unlock()
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		return fmt.Errorf("POST %s: %s: check the API key", s.url, resp.Status)
	}
	return nil
}

// Statuses returns a copy of the response counts by status code.
func (s *HTTPSink) Statuses() map[int]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[int]int, len(s.status))
	for k, v := range s.status {
		out[k] = v
	}
	return out
}

// Close releases idle connections.
func (s *HTTPSink) Close() error {
	s.client.CloseIdleConnections()
	return nil
}
