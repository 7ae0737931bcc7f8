package signals

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"github.com/vigil-fraud/vigil/engine/stream/kafkatest"
)

// Labels from a Kafka topic (the real broker of deploy/kafka/kafka.sh, named
// by VIGIL_TEST_KAFKA) reach ClickHouse; an invalid message is skipped.
func TestConsumeLabelsFromKafka(t *testing.T) {
	broker := os.Getenv("VIGIL_TEST_KAFKA")
	if broker == "" {
		t.Skip("VIGIL_TEST_KAFKA not set: start Kafka with deploy/kafka/kafka.sh up (make test does)")
	}
	kafkatest.Shared(t, broker) // no broker restart (engine/stream) meanwhile
	cfg, conn := testClickHouse(t)
	ctx := context.Background()
	if _, err := Migrate(ctx, conn, cfg.Database, quietLog()); err != nil {
		t.Fatal(err)
	}
	w, err := NewWriter(cfg, quietLog(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	topic := "vigil-test-labels-" + cfg.Database
	client := &kafka.Client{Addr: kafka.TCP(broker), Timeout: 10 * time.Second}
	if _, err := client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{Topic: topic, NumPartitions: 1, ReplicationFactor: 1}}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.DeleteTopics(context.Background(), &kafka.DeleteTopicsRequest{Topics: []string{topic}}) })
	kw := &kafka.Writer{Addr: kafka.TCP(broker), Topic: topic, AllowAutoTopicCreation: true, BatchTimeout: 10 * time.Millisecond, RequiredAcks: kafka.RequireAll}
	defer kw.Close()
	msgs := []kafka.Message{
		{Value: []byte(`{"labels":[{"event_id":"k1","label":"chargeback","source":"feed"},{"event_id":"k2","label":"false_positive"}]}`)},
		{Value: []byte(`{"labels":[{"event_id":"k3","label":"stolen"}]}`)}, // invalid: skipped
		{Value: []byte(`{"labels":[{"event_id":"k4","label":"confirmed_fraud"}]}`)},
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := kw.WriteMessages(wctx, msgs...); err != nil {
		t.Fatal(err)
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{broker}, GroupID: topic, Topic: topic, StartOffset: kafka.FirstOffset, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	cctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.ConsumeLabels(cctx, r) }()
	db := quoteIdent(cfg.Database)
	waitFor(t, 60*time.Second, "3 labels", func() bool {
		return countNow(conn, "SELECT count() FROM "+db+".labels") == 3
	})
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := queryUint(t, conn, "SELECT count() FROM "+db+".labels WHERE event_id = 'k3'"); n != 0 {
		t.Errorf("invalid label stored")
	}
	if n := testutil.ToFloat64(w.m.labelsInvalid); n != 1 {
		t.Errorf("invalid messages %v", n)
	}

}

// fakeLabelReader hands out its messages, then io.EOF (a closed reader).
type fakeLabelReader struct{ msgs []kafka.Message }

func (r *fakeLabelReader) FetchMessage(context.Context) (kafka.Message, error) {
	if len(r.msgs) == 0 {
		return kafka.Message{}, io.EOF
	}
	m := r.msgs[0]
	r.msgs = r.msgs[1:]
	return m, nil
}

func (r *fakeLabelReader) CommitMessages(context.Context, ...kafka.Message) error { return nil }

// An invalid message on the labels topic is logged with the decoder's
// error, which never repeats a card number, \u-escaped ones included
// (no broker or ClickHouse needed: invalid messages are not stored).
func TestConsumeLabelsLogsNoCardNumber(t *testing.T) {
	bodies := []string{
		`{"labels":[{"event_id":"tx_1","label":"chargeback","\u0034111111111111111":1}]}`,
		`{"\u0034111111111111111":1}`,
		`{"labels":[{"event_id":"4111111111111111","event_id":"tx_1","label":"chargeback"}]}`,
		`{"labels":[{"event_id":"tx_1","label":"chargeback","4111111111111111":1}]}`,
	}
	var msgs []kafka.Message
	for i, b := range bodies {
		msgs = append(msgs, kafka.Message{Topic: "labels", Offset: int64(i), Value: []byte(b)})
	}
	cfg := testConfig(t)
	cfg.Addr = "127.0.0.1:1" // nothing listens: an accepted message would never be stored
	var logged bytes.Buffer  // the writer is not run: it logs from this goroutine only
	w, err := NewWriter(cfg, slog.New(slog.NewJSONHandler(&logged, nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.ConsumeLabels(ctx, &fakeLabelReader{msgs: msgs}); err != nil {
		t.Fatal(err)
	}
	out := logged.String()
	if n := testutil.ToFloat64(w.m.labelsInvalid); n != float64(len(bodies)) || strings.Count(out, "invalid message skipped") != len(bodies) {
		t.Errorf("invalid messages %v, want %d; log:\n%s", n, len(bodies), out)
	}
	if strings.Contains(out, "4111") || !strings.Contains(out, "looks like a card number") {
		t.Errorf("the log repeats the card number, or does not say why:\n%s", out)
	}
}
