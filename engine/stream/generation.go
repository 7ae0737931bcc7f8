package stream

import (
	"context"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
)

// generation is one consumer-group generation: its partition workers and
// the offsets they have made safe to commit.
type generation struct {
	c       *Consumer
	gen     *kafka.Generation
	workers sync.WaitGroup

	mu      sync.Mutex
	pending map[int]int64 // partition → next offset to commit, not yet committed
}

// mark records that every message of a partition before next has its
// decision or dead letter acknowledged.
func (g *generation) mark(partition int, next int64) {
	g.mu.Lock()
	if next > g.pending[partition] {
		g.pending[partition] = next
	}
	g.mu.Unlock()
}

// commitLoop commits the marked offsets every commit interval and, when
// the generation ends, once more after the workers have drained.
func (g *generation) commitLoop(ctx, gctx context.Context) {
	t := time.NewTicker(time.Duration(g.c.cfg.CommitInterval))
	defer t.Stop()
	for {
		select {
		case <-t.C:
			g.commit()
		case <-gctx.Done():
			g.workers.Wait()
			g.commit()
			return
		case <-ctx.Done():
			g.workers.Wait()
			g.commit()
			return
		}
	}
}

var commitLogs = newEvery(10 * time.Second)

// commit sends the pending offsets in one request. On failure they stay
// pending (unless newer ones arrived) for the next try.
func (g *generation) commit() {
	g.mu.Lock()
	if len(g.pending) == 0 {
		g.mu.Unlock()
		return
	}
	offsets := g.pending
	g.pending = map[int]int64{}
	g.mu.Unlock()
	err := g.gen.CommitOffsets(map[string]map[int]int64{g.c.cfg.Topics.Transactions: offsets})
	if err == nil {
		return
	}
	g.c.m.errors.WithLabelValues("commit").Inc()
	if n, ok := commitLogs.allow(); ok {
		g.c.log.Warn("kafka: offset commit failed; will retry (the events would be delivered again, not counted twice)", "generation", g.gen.ID, "err", err, "errors", n)
	}
	for p, o := range offsets {
		g.mark(p, o)
	}
}
