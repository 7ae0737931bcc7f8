// Package stream is vigil's streaming path: a Kafka consumer group scores
// the events of a transactions topic with the same engine as the HTTP API
// and produces one decision record per event on a decisions topic. Events
// that cannot be scored go to a dead-letter topic. Offsets are committed
// only past events whose decision (or dead letter) was acknowledged, and
// a partition newly assigned to this process is first re-read from the
// start of the longest feature window to rebuild the windows, without
// producing anything. See docs/kafka.md.
package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/vigil-fraud/vigil/engine"
	"github.com/vigil-fraud/vigil/engine/stream/producer"
)

// Options are the consumer's collaborators.
type Options struct {
	// Logger receives the consumer's logs. Default slog.Default().
	Logger *slog.Logger
	// Registerer receives the consumer's metrics. Default: none registered.
	Registerer prometheus.Registerer
	// OnReady is called (from any goroutine, never concurrently) when the
	// readiness changes: true once every assigned partition is rebuilt and
	// caught up.
	OnReady func(ready bool)
	// RebuildWindow, used when the configuration's rebuild.window is 0,
	// is how far back a newly assigned partition is re-read. Default: the
	// live features engine's Horizon (its longest window plus its
	// lateness), as of the assignment: a features reload changes it.
	RebuildWindow time.Duration
	// Lateness is the features engine's lateness bound: events older than
	// their partition's watermark minus it are counted as late. Default 5m.
	Lateness time.Duration
}

// Consumer scores the transactions topic. Create it with New and run it
// with Run.
type Consumer struct {
	cfg       Config
	eng       *engine.Engine
	log       *slog.Logger
	m         *metrics
	dialer    *kafka.Dialer
	client    *kafka.Client
	writer    *producer.Writer
	transport *kafka.Transport
	window    time.Duration
	lateness  time.Duration
	onReady   func(bool)
	now       func() time.Time

	ready   atomic.Bool
	readyMu sync.Mutex // serializes OnReady calls

	mu       sync.Mutex
	parts    map[int]*partState // by partition, for the life of the process
	assigned map[int]bool       // partitions of the current generation: caught up?
	joined   bool               // a generation was joined
}

// partState is what this process remembers of a partition across
// generations.
type partState struct {
	// highest is the highest offset this process scored (-1: none). When
	// the partition comes back after a rebalance, the rebuild starts after
	// it, so that no event is counted twice.
	highest int64
}

// New checks the configuration and builds a consumer. It does not connect.
func New(cfg Config, eng *engine.Engine, o Options) (*Consumer, error) {
	if eng == nil {
		return nil, errors.New("stream: an engine is required")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("stream: %w", err)
	}
	dialer, err := cfg.Dialer()
	if err != nil {
		return nil, fmt.Errorf("stream: %w", err)
	}
	transport, err := cfg.Transport()
	if err != nil {
		return nil, fmt.Errorf("stream: %w", err)
	}
	comp, _ := compression(cfg.Producer.Compression)
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Lateness <= 0 {
		o.Lateness = 5 * time.Minute
	}
	c := &Consumer{
		cfg: cfg, eng: eng, log: o.Logger.With("component", "kafka"), dialer: dialer,
		m:        newMetrics(o.Registerer, cfg.Topics.Transactions),
		client:   &kafka.Client{Addr: cfg.addr(), Transport: transport, Timeout: time.Duration(cfg.Producer.WriteTimeout)},
		window:   o.RebuildWindow,
		lateness: o.Lateness,
		onReady:  o.OnReady,
		now:      time.Now,
		parts:    map[int]*partState{},
	}
	c.transport = transport
	c.writer = &producer.Writer{
		Client:      &kafka.Client{Addr: cfg.addr(), Transport: transport, Timeout: time.Duration(cfg.Producer.WriteTimeout)},
		Balancer:    kafka.Murmur2Balancer{}, // the Java client's default partitioner
		Acks:        kafka.RequireAll,
		Compression: comp,
		BatchSize:   cfg.Producer.BatchSize,
		Timeout:     time.Duration(cfg.Producer.WriteTimeout),
	}
	return c, nil
}

// Ready reports whether every partition assigned to this instance is
// rebuilt and caught up (false before the first assignment).
func (c *Consumer) Ready() bool { return c.ready.Load() }

// Run consumes until ctx is cancelled, then finishes the in-flight
// batches, commits their offsets and leaves the group, within the
// configured close_timeout. It returns nil after a cancellation, and an
// error for a configuration kafka-go refuses or, with topics.create off,
// a topic that does not exist. Kafka being unreachable (or refusing to
// create topics) is not an error: Run keeps retrying and says so in its
// logs and metrics.
func (c *Consumer) Run(ctx context.Context) error {
	defer c.setReady(false)
	if err := c.prepare(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	start := kafka.FirstOffset
	if c.cfg.StartOffset == "latest" {
		start = kafka.LastOffset
	}
	cg, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:                c.cfg.Group,
		Brokers:           c.cfg.Brokers,
		Dialer:            c.dialer,
		Topics:            []string{c.cfg.Topics.Transactions},
		HeartbeatInterval: time.Duration(c.cfg.HeartbeatInterval),
		SessionTimeout:    time.Duration(c.cfg.SessionTimeout),
		RebalanceTimeout:  time.Duration(c.cfg.RebalanceTimeout),
		JoinGroupBackoff:  time.Duration(c.cfg.JoinGroupBackoff),
		StartOffset:       start,
		Timeout:           5 * time.Second,
		Logger:            kafka.LoggerFunc(c.debugf),
		ErrorLogger:       kafka.LoggerFunc(c.debugf),
	})
	if err != nil {
		return fmt.Errorf("stream: %w", err)
	}
	// hard is cancelled when the close timeout has passed: writes in flight
	// are abandoned (their events will be delivered again).
	hard, abandon := context.WithCancel(context.Background())
	defer abandon()
	loopDone := make(chan struct{})
	go func() {
		defer close(loopDone)
		groupErrs := newEvery(10 * time.Second)
		for {
			gen, err := cg.Next(context.Background())
			if errors.Is(err, kafka.ErrGroupClosed) {
				return
			}
			if err != nil {
				c.m.errors.WithLabelValues("group").Inc()
				if n, ok := groupErrs.allow(); ok {
					c.log.Warn("kafka consumer group: retrying", "group", c.cfg.Group, "err", err, "errors", n)
				}
				continue
			}
			if ctx.Err() != nil {
				continue // stopping: Close ends this generation
			}
			c.runGeneration(ctx, hard, gen)
		}
	}()
	<-ctx.Done()
	c.log.Info("kafka consumer stopping", "close_timeout", time.Duration(c.cfg.CloseTimeout).String())
	deadline := time.NewTimer(time.Duration(c.cfg.CloseTimeout))
	defer deadline.Stop()
	closed := make(chan struct{})
	go func() {
		cg.Close() // ends the generation: workers drain and commit, then the member leaves
		<-loopDone
		if c.transport != nil {
			c.transport.CloseIdleConnections()
		}
		close(closed)
	}()
	select {
	case <-closed:
		c.log.Info("kafka consumer stopped")
	case <-deadline.C:
		abandon()
		c.log.Warn("kafka consumer: close timed out; uncommitted events will be delivered again")
	}
	return nil
}

// prepare creates the missing topics, retrying while the cluster is
// unreachable. With topics.create off, a missing topic is an error: a
// partition whose decisions or dead letters cannot be produced would stop
// (an event's offset is committed only once its records are written).
func (c *Consumer) prepare(ctx context.Context) error {
	t := c.cfg.Topics
	if !t.Create {
		names := []string{t.Transactions, t.Decisions}
		if t.DeadLetter != "" {
			names = append(names, t.DeadLetter)
		}
		var missing []string
		err := retry(ctx, c, "topics", func(ctx context.Context) error {
			counts, err := partitionCounts(ctx, c.client, names...)
			missing = missing[:0]
			for _, n := range names {
				if counts[n] == 0 {
					missing = append(missing, n)
				}
			}
			return err
		})
		if err == nil && len(missing) > 0 {
			err = fmt.Errorf("kafka: topics.create is off and these topics do not exist: %s (create them, or turn topics.create on)",
				strings.Join(missing, ", "))
		}
		return err
	}
	return retry(ctx, c, "topics", func(ctx context.Context) error {
		counts, err := partitionCounts(ctx, c.client, t.Transactions)
		if err != nil {
			return err
		}
		n := t.Partitions
		if n == 0 {
			n = counts[t.Transactions]
		}
		topics := []Topic{{Name: t.Transactions, Partitions: n, ReplicationFactor: t.ReplicationFactor},
			{Name: t.Decisions, Partitions: n, ReplicationFactor: t.ReplicationFactor}}
		if t.DeadLetter != "" {
			topics = append(topics, Topic{Name: t.DeadLetter, Partitions: n, ReplicationFactor: t.ReplicationFactor})
		}
		_, err = EnsureTopics(ctx, c.client, topics...)
		return err
	})
}

// runGeneration starts a worker per assigned partition and the committer.
func (c *Consumer) runGeneration(ctx, hard context.Context, gen *kafka.Generation) {
	c.m.generations.Inc()
	assigned := gen.Assignments[c.cfg.Topics.Transactions]
	parts := make([]int, len(assigned))
	for i, a := range assigned {
		parts[i] = a.ID
	}
	c.log.Info("kafka partitions assigned", "group", c.cfg.Group, "generation", gen.ID, "partitions", parts)
	c.setAssignment(parts)
	g := &generation{c: c, gen: gen, pending: map[int]int64{}}
	for _, a := range assigned {
		g.workers.Add(1)
		gen.Start(func(gctx context.Context) {
			defer g.workers.Done()
			w := &worker{c: c, g: g, partition: a.ID, assignedOffset: a.Offset}
			w.run(ctx, gctx, hard)
		})
	}
	gen.Start(func(gctx context.Context) { g.commitLoop(ctx, gctx) })
}

// setAssignment records the partitions of a new generation, none caught
// up yet.
func (c *Consumer) setAssignment(parts []int) {
	c.mu.Lock()
	c.joined = true
	c.assigned = make(map[int]bool, len(parts))
	for _, p := range parts {
		c.assigned[p] = false
		if c.parts[p] == nil {
			c.parts[p] = &partState{highest: -1}
		}
	}
	for p := range c.parts {
		if _, ok := c.assigned[p]; !ok {
			c.m.lag.DeleteLabelValues(partLabel(p))
			c.m.watermark.DeleteLabelValues(partLabel(p))
		}
	}
	c.m.assigned.Set(float64(len(parts)))
	c.mu.Unlock()
	c.updateReady()
}

// caughtUp marks a partition of the current generation caught up.
func (c *Consumer) caughtUp(p int) {
	c.mu.Lock()
	if _, ok := c.assigned[p]; ok {
		c.assigned[p] = true
	}
	c.mu.Unlock()
	c.updateReady()
}

func (c *Consumer) part(p int) *partState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.parts[p]
}

func (c *Consumer) updateReady() {
	c.mu.Lock()
	ready := c.joined
	for _, ok := range c.assigned {
		ready = ready && ok
	}
	c.mu.Unlock()
	c.setReady(ready)
}

func (c *Consumer) setReady(ready bool) {
	c.readyMu.Lock()
	defer c.readyMu.Unlock()
	if c.ready.Swap(ready) == ready {
		return
	}
	if ready {
		c.m.ready.Set(1)
		c.log.Info("kafka consumer ready: every assigned partition is rebuilt and caught up")
	} else {
		c.m.ready.Set(0)
	}
	if c.onReady != nil {
		c.onReady(ready)
	}
}

func (c *Consumer) debugf(format string, args ...any) {
	if c.log.Enabled(context.Background(), slog.LevelDebug) {
		c.log.Debug(fmt.Sprintf(format, args...))
	}
}

// retry runs fn until it succeeds or ctx ends, backing off from 50ms to
// 5s and logging at most every 10s.
func retry(ctx context.Context, c *Consumer, op string, fn func(context.Context) error) error {
	back := 50 * time.Millisecond
	logs := newEvery(10 * time.Second)
	for {
		err := fn(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.m.errors.WithLabelValues(op).Inc()
		if n, ok := logs.allow(); ok {
			c.log.Warn("kafka: retrying", "op", op, "err", err, "errors", n)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(back):
		}
		back = min(2*back, 5*time.Second)
	}
}

// every lets a repeated log through at most once per period and counts
// the occurrences.
type every struct {
	mu     sync.Mutex
	period time.Duration
	last   time.Time
	n      int
}

func newEvery(period time.Duration) *every { return &every{period: period} }

// allow reports whether to log now, and how many occurrences (this one
// included) happened since the last log.
func (e *every) allow() (int, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.n++
	if now := time.Now(); now.Sub(e.last) >= e.period {
		n := e.n
		e.last, e.n = now, 0
		return n, true
	}
	return 0, false
}

// rebuildWindow is how far back a partition assigned now is re-read.
func (c *Consumer) rebuildWindow() time.Duration {
	w := c.window
	if w == 0 {
		w = c.eng.Features().Horizon()
	}
	return c.cfg.rebuildWindow(w)
}
