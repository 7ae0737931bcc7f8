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

	"github.com/vigil-fraud/vigil/engine/stream/producer"
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

// KafkaSink produces events to a topic, keyed by their card token: each
// Send is one produce request per partition, acks=all.
type KafkaSink struct {
	w     *producer.Writer
	topic string
	km    []kafka.Message
}

// NewKafkaSink makes a sink producing to topic through transport (nil:
// kafka-go's default, plaintext).
func NewKafkaSink(brokers []string, topic string, transport *kafka.Transport) *KafkaSink {
	c := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
	if transport != nil { // a nil *Transport is not a nil RoundTripper
		c.Transport = transport
	}
	return &KafkaSink{topic: topic, w: &producer.Writer{
		Client:    c,
		Balancer:  kafka.Murmur2Balancer{},
		Acks:      kafka.RequireAll,
		BatchSize: 2000,
	}}
}

// Send produces msgs and waits for their acknowledgement, retrying a
// failed partition up to ten times (it is not safe for concurrent use).
func (s *KafkaSink) Send(ctx context.Context, msgs []Message) error {
	s.km = s.km[:0]
	for _, m := range msgs {
		s.km = append(s.km, kafka.Message{Topic: s.topic, Key: []byte(m.Key), Value: m.JSON})
	}
	km := s.km
	back := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := s.w.WriteMessages(ctx, km...)
		if err == nil || attempt == 10 || ctx.Err() != nil {
			return err
		}
		var werrs kafka.WriteErrors
		if errors.As(err, &werrs) && len(werrs) == len(km) {
			var failed []kafka.Message
			for i, e := range werrs {
				if e != nil {
					failed = append(failed, km[i])
				}
			}
			km = failed
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(back):
		}
		back = min(2*back, time.Second)
	}
}

// Close releases the sink.
func (s *KafkaSink) Close() error { return nil }

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
