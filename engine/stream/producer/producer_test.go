package producer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/vigil-fraud/vigil/engine/stream/kafkatest"
)

func TestRecords(t *testing.T) {
	msgs := []kafka.Message{
		{Key: []byte("a"), Value: []byte("1")},
		{Value: []byte("2"), Headers: []kafka.Header{{Key: "h", Value: []byte("v")}}},
		{Key: []byte("c"), Time: time.Unix(5, 0)},
	}
	for _, tc := range []struct {
		name string
		idx  []int32
	}{{"all", []int32{0, 1, 2}}, {"some", []int32{2, 0}}, {"none", nil}} {
		t.Run(tc.name, func(t *testing.T) {
			r := &records{msgs: msgs, idx: tc.idx}
			for _, i := range tc.idx {
				rec, err := r.ReadRecord()
				if err != nil {
					t.Fatal(err)
				}
				m := msgs[i]
				if got := read(t, rec.Key); got != string(m.Key) || (rec.Key == nil) != (m.Key == nil) {
					t.Errorf("key %q, want %q", got, m.Key)
				}
				if got := read(t, rec.Value); got != string(m.Value) || (rec.Value == nil) != (m.Value == nil) {
					t.Errorf("value %q, want %q", got, m.Value)
				}
				if !rec.Time.Equal(m.Time) || len(rec.Headers) != len(m.Headers) {
					t.Errorf("time %v headers %v", rec.Time, rec.Headers)
				}
			}
			if _, err := r.ReadRecord(); !errors.Is(err, io.EOF) {
				t.Errorf("after the last record: %v", err)
			}
		})
	}
}

func read(t *testing.T, b kafka.Bytes) string {
	if b == nil {
		return ""
	}
	s, err := io.ReadAll(b)
	if err != nil {
		t.Fatal(err)
	}
	return string(s)
}

func TestPartitionList(t *testing.T) {
	for _, n := range []int{1, 6, 6, 12} {
		l := partitionList(n)
		if len(l) != n || l[n-1] != n-1 {
			t.Errorf("partitionList(%d) = %v", n, l)
		}
	}
}

// TestWriteMessagesBroker writes to a test broker and reads every
// partition back: each message on its Murmur2 partition, in order.
func TestWriteMessagesBroker(t *testing.T) {
	addr := os.Getenv("VIGIL_TEST_KAFKA")
	if addr == "" {
		t.Skip("VIGIL_TEST_KAFKA is not set: deploy/kafka/kafka.sh up; export $(deploy/kafka/kafka.sh env)")
	}
	kafkatest.Shared(t, addr) // no broker restart (engine/stream) meanwhile
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	topic := fmt.Sprintf("producer-test-%d", time.Now().UnixNano())
	c := &kafka.Client{Addr: kafka.TCP(addr), Timeout: 10 * time.Second}
	const parts = 4
	for {
		res, err := c.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{Topic: topic, NumPartitions: parts, ReplicationFactor: 1}}})
		if err == nil && res.Errors[topic] == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatal(err, res)
		}
		time.Sleep(200 * time.Millisecond)
	}
	w := &Writer{Client: c, Acks: kafka.RequireAll, BatchSize: 7} // small: several requests per partition
	var msgs []kafka.Message
	for i := range 200 {
		msgs = append(msgs, kafka.Message{Topic: topic, Key: []byte(fmt.Sprint("k", i%13)), Value: []byte(fmt.Sprint(i))})
	}
	for i := 0; i < len(msgs); i += 50 { // calls one after the other keep their order
		var err error
		batch := msgs[i : i+50]
		for attempt := 0; attempt < 50; attempt++ { // the new topic's leaders may take a moment
			if err = w.WriteMessages(ctx, batch...); err == nil {
				break
			}
			var werrs kafka.WriteErrors
			if errors.As(err, &werrs) { // retry the failed ones only
				var failed []kafka.Message
				for j, e := range werrs {
					if e != nil {
						failed = append(failed, batch[j])
					}
				}
				batch = failed
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	want := map[int][]string{}
	for _, m := range msgs {
		p := kafka.Murmur2Balancer{}.Balance(m, partitionList(parts)...)
		want[p] = append(want[p], string(m.Value))
	}
	for p := range parts {
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{addr}, Topic: topic, Partition: p, MaxWait: 100 * time.Millisecond})
		for i, v := range want[p] {
			m, err := r.FetchMessage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if string(m.Value) != v {
				t.Fatalf("partition %d message %d = %s, want %s", p, i, m.Value, v)
			}
		}
		r.Close()
	}
}

func TestChunk(t *testing.T) {
	msg := func(n int) kafka.Message { return kafka.Message{Value: make([]byte, n-24)} } // messageSize n (n ≥ 24)
	for _, tc := range []struct {
		name      string
		sizes     []int
		batch     int
		batchByte int64
		want      int
	}{
		{"all fit", []int{100, 100, 100}, 10, 1000, 3},
		{"count", []int{100, 100, 100}, 2, 1000, 2},
		{"bytes", []int{400, 400, 400}, 10, 1000, 2},
		{"exactly the limit", []int{500, 500, 30}, 10, 1000, 2},
		{"first alone too large", []int{5000, 30}, 10, 1000, 1},
		{"defaults", []int{100, 100}, 0, 0, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var msgs []kafka.Message
			var idx []int32
			for i, n := range tc.sizes {
				msgs = append(msgs, msg(n))
				idx = append(idx, int32(i))
			}
			w := &Writer{BatchSize: tc.batch, BatchBytes: tc.batchByte}
			if got := w.chunk(msgs, idx); got != tc.want {
				t.Errorf("chunk = %d, want %d", got, tc.want)
			}
		})
	}
}
