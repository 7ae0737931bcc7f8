package signals

import (
	"context"
	"os"
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
