// Package producer writes batches of Kafka messages the way vigil's
// streaming path needs: each call's messages are grouped by partition and
// sent at once, one produce request per partition (split at BatchSize or
// BatchBytes), the partitions in parallel, with no batching timer. The
// order of the messages of one partition is kept within a call, and calls
// made one after the other keep their order.
//
// kafka-go's Writer batches across calls instead: every batch waits for
// its BatchTimeout unless full, and allocates BatchSize message slots
// (about 150 bytes each), which made most of vigil's garbage at 10,000
// events/s.
package producer

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
)

// Writer produces messages. Set the fields before the first call; it is
// safe for concurrent use.
type Writer struct {
	// Client reaches the cluster (Addr and Transport; nil Transport:
	// kafka-go's default).
	Client *kafka.Client
	// Balancer chooses a message's partition. Default kafka.Murmur2Balancer.
	Balancer kafka.Balancer
	// Acks is the acknowledgement required of the broker.
	Acks kafka.RequiredAcks
	// Compression of the record batches (0: none).
	Compression kafka.Compression
	// BatchSize is the most messages in one produce request. Default 1000.
	BatchSize int
	// BatchBytes bounds the size of one produce request (a message larger
	// than it goes alone). Default 1 MiB, the broker's default
	// message.max.bytes for a record batch.
	BatchBytes int64
	// Timeout bounds each produce request. Default 10s.
	Timeout time.Duration
	// MetadataTTL is how long a topic's partition count is cached. Default 10s.
	MetadataTTL time.Duration

	mu    sync.Mutex
	parts map[string]partCount
}

type partCount struct {
	n  int
	at time.Time
}

// WriteMessages produces msgs, each to its Topic, and returns once every
// one is acknowledged. On failure the error is a kafka.WriteErrors with
// one entry per message (nil for those written) — or a plain error when
// nothing could be sent (unknown topic), or ctx's error once it ended. When a request of a
// partition fails, the partition's later requests of this call are not
// sent, so that a retry keeps the order.
func (w *Writer) WriteMessages(ctx context.Context, msgs ...kafka.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	type key struct {
		topic     string
		partition int
	}
	groups := make(map[key][]int32)
	var order []key // groups in order of first appearance
	for i := range msgs {
		n, err := w.partitions(ctx, msgs[i].Topic)
		if err != nil {
			return err
		}
		k := key{msgs[i].Topic, w.balance(&msgs[i], n)}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], int32(i))
	}
	var (
		mu   sync.Mutex
		werr kafka.WriteErrors
		wg   sync.WaitGroup
	)
	fail := func(idx []int32, err error) {
		mu.Lock()
		defer mu.Unlock()
		if werr == nil {
			werr = make(kafka.WriteErrors, len(msgs))
		}
		for _, i := range idx {
			werr[i] = err
		}
	}
	run := func(k key, idx []int32) {
		for len(idx) > 0 {
			n := w.chunk(msgs, idx)
			if err := w.produce(ctx, k.topic, k.partition, msgs, idx[:n]); err != nil {
				fail(idx, err) // this request and the ones after it
				return
			}
			idx = idx[n:]
		}
	}
	for _, k := range order[1:] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			run(k, groups[k])
		}()
	}
	run(order[0], groups[order[0]])
	wg.Wait()
	switch {
	case werr == nil:
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	}
	return werr
}

// produce sends one request: the messages of msgs at idx, to one
// partition.
func (w *Writer) produce(ctx context.Context, topic string, partition int, msgs []kafka.Message, idx []int32) error {
	timeout := w.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res, err := w.Client.Produce(ctx, &kafka.ProduceRequest{
		Topic:        topic,
		Partition:    partition,
		RequiredAcks: w.Acks,
		Compression:  w.Compression,
		Records:      &records{msgs: msgs, idx: idx},
	})
	if err == nil && res != nil {
		err = res.Error
	}
	if err != nil {
		w.forget(topic)
		return fmt.Errorf("produce to %s/%d: %w", topic, partition, err)
	}
	return nil
}

// chunk returns how many of the messages at idx go in the next request:
// at least one, at most BatchSize, and no more than BatchBytes unless the
// first alone is larger.
func (w *Writer) chunk(msgs []kafka.Message, idx []int32) int {
	size, limit := w.BatchSize, w.BatchBytes
	if size <= 0 {
		size = 1000
	}
	if limit <= 0 {
		limit = 1 << 20
	}
	var bytes int64
	for n, i := range idx {
		if n == size {
			return n
		}
		bytes += messageSize(&msgs[i])
		if n > 0 && bytes > limit {
			return n
		}
	}
	return len(idx)
}

// messageSize approximates a record's encoded size (as kafka-go's Writer
// does for its BatchBytes).
func messageSize(m *kafka.Message) int64 {
	n := int64(len(m.Key) + len(m.Value) + 24)
	for _, h := range m.Headers {
		n += int64(len(h.Key) + len(h.Value) + 8)
	}
	return n
}

func (w *Writer) balance(m *kafka.Message, n int) int {
	b := w.Balancer
	if b == nil {
		b = kafka.Murmur2Balancer{}
	}
	return b.Balance(*m, partitionList(n)...)
}

// partitions returns the partition count of topic, cached.
func (w *Writer) partitions(ctx context.Context, topic string) (int, error) {
	ttl := w.MetadataTTL
	if ttl <= 0 {
		ttl = 10 * time.Second
	}
	w.mu.Lock()
	pc, ok := w.parts[topic]
	w.mu.Unlock()
	if ok && time.Since(pc.at) < ttl {
		return pc.n, nil
	}
	md, err := w.Client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return 0, fmt.Errorf("metadata of %s: %w", topic, err)
	}
	for _, t := range md.Topics {
		if t.Name != topic {
			continue
		}
		if t.Error != nil {
			return 0, fmt.Errorf("metadata of %s: %w", topic, t.Error)
		}
		if len(t.Partitions) == 0 {
			break
		}
		w.mu.Lock()
		if w.parts == nil {
			w.parts = map[string]partCount{}
		}
		w.parts[topic] = partCount{len(t.Partitions), time.Now()}
		w.mu.Unlock()
		return len(t.Partitions), nil
	}
	return 0, fmt.Errorf("metadata of %s: %w", topic, kafka.UnknownTopicOrPartition)
}

// forget drops a topic's cached partition count after an error.
func (w *Writer) forget(topic string) {
	w.mu.Lock()
	delete(w.parts, topic)
	w.mu.Unlock()
}

// partitionLists caches the []int a Balancer takes, by partition count.
var partitionLists sync.Map

func partitionList(n int) []int {
	if l, ok := partitionLists.Load(n); ok {
		return l.([]int)
	}
	l := make([]int, n)
	for i := range l {
		l[i] = i
	}
	partitionLists.Store(n, l)
	return l
}

// records reads messages as records without copying them (as kafka-go's
// Writer does): a zero time is stamped with the current time by kafka-go.
type records struct {
	msgs       []kafka.Message
	idx        []int32
	i          int
	rec        kafka.Record
	key, value bytesReader
}

func (r *records) ReadRecord() (*kafka.Record, error) {
	if r.i >= len(r.idx) {
		return nil, io.EOF
	}
	m := &r.msgs[r.idx[r.i]]
	r.i++
	r.rec = kafka.Record{Time: m.Time, Headers: m.Headers}
	if m.Key != nil {
		r.key.Reset(m.Key)
		r.rec.Key = &r.key
	}
	if m.Value != nil {
		r.value.Reset(m.Value)
		r.rec.Value = &r.value
	}
	return &r.rec, nil
}

type bytesReader struct{ bytes.Reader }

func (*bytesReader) Close() error { return nil }
