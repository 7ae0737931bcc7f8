package stream

import (
	"context"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
)

// bounds returns a partition's first retained offset and its end (the
// offset the next message will get; the last stable offset, as the
// consumer reads committed messages only).
func (c *Consumer) bounds(ctx context.Context, partition int) (first, last int64, err error) {
	first, err = c.listOffset(ctx, kafka.FirstOffsetOf(partition))
	if err != nil {
		return 0, 0, err
	}
	last, err = c.listOffset(ctx, kafka.LastOffsetOf(partition))
	return first, last, err
}

// offsetAt returns the first offset of a partition whose message
// timestamp is at or after t; -1 when there is none.
func (c *Consumer) offsetAt(ctx context.Context, partition int, t time.Time) (int64, error) {
	return c.listOffset(ctx, kafka.TimeOffsetOf(partition, t))
}

// listOffset answers one ListOffsets query of the transactions topic.
func (c *Consumer) listOffset(ctx context.Context, q kafka.OffsetRequest) (int64, error) {
	topic := c.cfg.Topics.Transactions
	res, err := c.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{
		Topics:         map[string][]kafka.OffsetRequest{topic: {q}},
		IsolationLevel: kafka.ReadCommitted,
	})
	if err != nil {
		return 0, err
	}
	for _, p := range res.Topics[topic] {
		if p.Partition != q.Partition {
			continue
		}
		if p.Error != nil {
			return 0, fmt.Errorf("list offsets of %s/%d: %w", topic, q.Partition, p.Error)
		}
		switch q.Timestamp {
		case kafka.FirstOffset:
			return p.FirstOffset, nil
		case kafka.LastOffset:
			return p.LastOffset, nil
		}
		for off := range p.Offsets {
			return off, nil
		}
		return -1, nil
	}
	return 0, fmt.Errorf("list offsets of %s/%d: no answer", topic, q.Partition)
}
