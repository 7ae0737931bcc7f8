package stream

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
)

// Topic is a topic to create when missing.
type Topic struct {
	Name              string
	Partitions        int // 0: defaultPartitions
	ReplicationFactor int // -1: the broker's default
}

// EnsureTopics creates the topics that do not exist yet; existing topics
// are left as they are. It returns the partition count of every topic.
func EnsureTopics(ctx context.Context, client *kafka.Client, topics ...Topic) (map[string]int, error) {
	counts, err := partitionCounts(ctx, client, topicNames(topics)...)
	if err != nil {
		return nil, err
	}
	var missing []kafka.TopicConfig
	for _, t := range topics {
		if _, ok := counts[t.Name]; ok || t.Name == "" {
			continue
		}
		n, rf := t.Partitions, t.ReplicationFactor
		if n <= 0 {
			n = defaultPartitions
		}
		if rf == 0 {
			rf = -1
		}
		missing = append(missing, kafka.TopicConfig{Topic: t.Name, NumPartitions: n, ReplicationFactor: rf})
	}
	if len(missing) == 0 {
		return counts, nil
	}
	res, err := client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: missing})
	if err != nil {
		return nil, fmt.Errorf("create topics: %w", err)
	}
	var errs []error
	for name, e := range res.Errors {
		if e != nil && !errors.Is(e, kafka.TopicAlreadyExists) {
			errs = append(errs, fmt.Errorf("create topic %s: %w", name, e))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	// A new partition answers only once it has a leader and its log: a
	// consumer group joined before that may be assigned nothing and never
	// read the topic (segmentio/kafka-go#585), so wait for both (for the
	// log at most readableWait: a cluster that refuses ListOffsets, to
	// this client or at all, must not hang the caller).
	start := time.Now()
	for {
		counts, led, err := leaders(ctx, client, topicNames(topics)...)
		if err != nil {
			return nil, err
		}
		if led && (time.Since(start) > readableWait || readable(ctx, client, counts)) {
			return counts, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

const readableWait = 10 * time.Second

// readable reports whether every partition of the topics answers a
// request for its first offset.
func readable(ctx context.Context, client *kafka.Client, counts map[string]int) bool {
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for name, n := range counts {
		for p := range n {
			req.Topics[name] = append(req.Topics[name], kafka.FirstOffsetOf(p))
		}
	}
	res, err := client.ListOffsets(ctx, req)
	if err != nil {
		return false
	}
	for name, n := range counts {
		parts := res.Topics[name]
		if len(parts) != n {
			return false
		}
		for _, p := range parts {
			if p.Error != nil {
				return false
			}
		}
	}
	return true
}

// leaders returns the partition counts of the topics and whether every
// partition of every one of them has a leader.
func leaders(ctx context.Context, client *kafka.Client, names ...string) (map[string]int, bool, error) {
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: names})
	if err != nil {
		return nil, false, fmt.Errorf("metadata: %w", err)
	}
	counts := map[string]int{}
	for _, t := range md.Topics {
		if t.Error != nil || len(t.Partitions) == 0 {
			return nil, false, nil
		}
		for _, p := range t.Partitions {
			if p.Error != nil || p.Leader.Host == "" {
				return nil, false, nil
			}
		}
		counts[t.Name] = len(t.Partitions)
	}
	return counts, len(counts) == len(names), nil
}

// partitionCounts returns the partition count of each named topic that
// exists (with at least one partition).
func partitionCounts(ctx context.Context, client *kafka.Client, names ...string) (map[string]int, error) {
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: names})
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	out := map[string]int{}
	for _, t := range md.Topics {
		if t.Error != nil {
			if errors.Is(t.Error, kafka.UnknownTopicOrPartition) {
				continue
			}
			return nil, fmt.Errorf("metadata of %s: %w", t.Name, t.Error)
		}
		if len(t.Partitions) > 0 {
			out[t.Name] = len(t.Partitions)
		}
	}
	return out, nil
}

func topicNames(ts []Topic) []string {
	var out []string
	for _, t := range ts {
		if t.Name != "" {
			out = append(out, t.Name)
		}
	}
	return out
}

// CreateTopic creates a topic on the cluster of conn when it does not
// exist, through transport (nil: plaintext).
func CreateTopic(ctx context.Context, conn Connection, transport *kafka.Transport, t Topic) error {
	client := &kafka.Client{Addr: conn.addr(), Timeout: 30 * time.Second}
	if transport != nil {
		client.Transport = transport
	}
	_, err := EnsureTopics(ctx, client, t)
	return err
}
