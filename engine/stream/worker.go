package stream

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/vigil-fraud/vigil/engine"
	"github.com/vigil-fraud/vigil/engine/event"
)

// worker consumes one partition for one generation: it rebuilds the
// windows from the messages before the committed offset, then scores the
// rest in batches. Three goroutines keep the partition's order: a fetcher,
// the worker itself (decode and score), and a sender (produce, then mark
// the offset for commit), so that scoring a batch overlaps producing the
// previous one.
type worker struct {
	c              *Consumer
	g              *generation
	partition      int
	assignedOffset int64

	state     *partState
	committed int64 // messages before it were decided before: rebuild only
	target    int64 // end offset at assignment: caught up once scored past it
	caught    bool
	started   time.Time    // of the worker, for the rebuild's duration
	dedupe    *rebuildIDs  // the rebuild's events beyond the idempotency retention; nil once rebuilt
	newest    time.Time    // watermark: newest event time scored
	hwm       atomic.Int64 // the partition's high watermark, as last fetched
	acked     atomic.Int64 // next offset whose decision is not acknowledged yet
	lag       prometheus.Gauge
	wm        prometheus.Gauge
}

// outBatch is what one scored batch produces.
type outBatch struct {
	msgs              []kafka.Message
	times             []int64  // event time and append time (UnixNano) of each decided message
	next              int64    // offset to commit once msgs are acknowledged
	decided, replayed int      // decisions among msgs, counted once acknowledged
	bufs              [][]byte // the buffers msgs point into, reused once acknowledged
}

// recordBuffers recycles the buffers of acknowledged batches: a batch's
// records are written into memory still in cache rather than a fresh
// allocation of a few hundred kilobytes.
var recordBuffers sync.Pool

// recordBuffer returns an empty buffer of at least n bytes.
func recordBuffer(n int) []byte {
	if p, ok := recordBuffers.Get().(*[]byte); ok && cap(*p) >= n {
		return (*p)[:0]
	}
	return make([]byte, 0, n)
}

// release recycles b's buffers; nothing may refer to them any more.
func (b *outBatch) release() {
	for _, buf := range b.bufs {
		if cap(buf) <= 4<<20 {
			recordBuffers.Put(&buf)
		}
	}
	b.bufs, b.msgs = nil, nil
}

// run is the worker's life; it returns when the generation or the
// consumer stops, after draining.
func (w *worker) run(ctx, gctx, hard context.Context) {
	c := w.c
	stop, cancelStop := context.WithCancel(hard)
	defer cancelStop()
	go func() {
		select {
		case <-ctx.Done():
		case <-gctx.Done():
		case <-stop.Done():
		}
		cancelStop()
	}()
	w.state = c.part(w.partition)
	label := partLabel(w.partition)
	w.lag, w.wm = c.m.lag.WithLabelValues(label), c.m.watermark.WithLabelValues(label)

	w.started = time.Now()
	from, ok := w.plan(stop)
	if !ok {
		return
	}
	if from < w.committed {
		w.dedupe = newRebuildIDs(c.eng.IdempotencyRetention(), c.eng.IdempotencyMaxEntries())
	} else {
		w.rebuildDone()
	}
	if from >= w.target {
		w.markCaughtUp()
	}
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:        c.cfg.Brokers,
		Topic:          c.cfg.Topics.Transactions,
		Partition:      w.partition,
		Dialer:         c.dialer,
		QueueCapacity:  c.cfg.BatchSize,
		MinBytes:       1,
		MaxBytes:       8 << 20,
		MaxWait:        250 * time.Millisecond,
		ReadBackoffMin: 100 * time.Millisecond,
		ReadBackoffMax: time.Second,
		MaxAttempts:    3,
		IsolationLevel: kafka.ReadCommitted,
		Logger:         kafka.LoggerFunc(c.debugf),
		ErrorLogger:    kafka.LoggerFunc(c.debugf),
	})
	defer r.Close()
	if err := r.SetOffset(from); err != nil {
		c.log.Error("kafka reader", "partition", w.partition, "err", err)
		return
	}

	msgs := make(chan kafka.Message, c.cfg.BatchSize)
	go w.fetch(stop, r, msgs)
	sendq := make(chan *outBatch, sendQueue)
	drain, cancelDrain := context.WithCancel(hard)
	defer cancelDrain()
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		w.send(drain, sendq)
	}()

	batch := make([]kafka.Message, 0, c.cfg.BatchSize)
loop:
	for {
		batch = batch[:0]
		select {
		case <-stop.Done():
			break loop
		case m := <-msgs:
			batch = append(batch, m)
		}
	more:
		for len(batch) < cap(batch) {
			select {
			case m := <-msgs:
				batch = append(batch, m)
			default:
				break more
			}
		}
		out := w.process(hard, batch)
		if out == nil {
			continue
		}
		select {
		case sendq <- out:
		case <-stop.Done():
			break loop // not produced: not committed, delivered again
		}
	}
	// Drain: the batches already scored are produced and marked for the
	// generation's last commit, within a bound.
	close(sendq)
	t := time.NewTimer(w.drainTimeout())
	defer t.Stop()
	select {
	case <-sent:
	case <-t.C:
		cancelDrain()
		<-sent
		c.log.Warn("kafka: in-flight decisions not acknowledged in time; their events will be delivered again", "partition", w.partition)
	}
}

// sendQueue is how many scored batches may wait for the producer: they
// are then produced together (see send).
const sendQueue = 8

// drainTimeout bounds the drain: within the rebalance timeout (the group
// waits that long) and the close timeout.
func (w *worker) drainTimeout() time.Duration {
	return time.Duration(min(w.c.cfg.RebalanceTimeout, w.c.cfg.CloseTimeout)) * 3 / 4
}

// plan resolves the committed offset and where to start reading: the
// rebuild start, or the committed offset when nothing needs rebuilding.
func (w *worker) plan(ctx context.Context) (from int64, ok bool) {
	c := w.c
	var first, last int64
	err := retry(ctx, c, "offsets", func(ctx context.Context) error {
		var err error
		first, last, err = c.bounds(ctx, w.partition)
		return err
	})
	if err != nil {
		return 0, false
	}
	committed := w.assignedOffset
	switch {
	case committed < 0 && c.cfg.StartOffset == "latest":
		committed = last
	case committed < 0:
		committed = first
	case committed < first:
		c.log.Warn("kafka: committed offset is before the partition's first retained message; the events in between were deleted by retention unscored",
			"partition", w.partition, "committed", committed, "first", first)
		committed = first
	case committed > last:
		committed = last
	}
	from = committed
	window := c.rebuildWindow()
	if window > 0 && committed > first {
		at := c.now().Add(-window)
		var off int64
		err := retry(ctx, c, "offsets", func(ctx context.Context) error {
			var err error
			off, err = c.offsetAt(ctx, w.partition, at)
			return err
		})
		if err != nil {
			return 0, false
		}
		if off < 0 || off > committed {
			off = committed
		}
		from = max(off, first)
	}
	// Messages this process already scored are in its windows: a partition
	// coming back after a rebalance is rebuilt only past them.
	if h := w.state.highest; h >= from {
		from = min(h+1, committed)
	}
	w.committed, w.target = committed, last
	w.acked.Store(committed)
	w.hwm.Store(last)
	w.setLag()
	c.log.Info("kafka partition plan", "partition", w.partition, "committed", committed, "end", last,
		"rebuild_from", from, "rebuild_events", committed-from, "rebuild_window", window.String())
	return from, true
}

// fetch feeds msgs from the reader until ctx ends.
func (w *worker) fetch(ctx context.Context, r *kafka.Reader, msgs chan<- kafka.Message) {
	logs := newEvery(10 * time.Second)
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			w.c.m.errors.WithLabelValues("fetch").Inc()
			if n, ok := logs.allow(); ok {
				w.c.log.Warn("kafka: fetch failed; retrying", "partition", w.partition, "err", err, "errors", n)
			}
			continue
		}
		select {
		case msgs <- m:
		case <-ctx.Done():
			return
		}
	}
}

// process decodes and scores a batch in order. Messages before the
// committed offset only rebuild the windows. It returns nil when the batch
// produces nothing, or when ctx ended mid-batch.
func (w *worker) process(ctx context.Context, batch []kafka.Message) *outBatch {
	c := w.c
	c.m.batch.Observe(float64(len(batch)))
	out := &outBatch{msgs: make([]kafka.Message, 0, len(batch)), times: make([]int64, 0, 2*len(batch))}
	now := c.now()
	// buf holds the batch's decision records and keys, each a capped
	// slice of it: one allocation per batch instead of two per event.
	var buf []byte
	for i := range batch {
		m := &batch[i]
		rebuild := m.Offset < w.committed
		source := engine.SourceKafka
		if rebuild {
			source = engine.SourceRebuild
		}
		ev, err := event.Decode(m.Value, m.Time)
		if err != nil {
			if rebuild { // dead-lettered when it was first read
				c.m.rebuildSkip.Inc()
				continue
			}
			out.msgs = w.deadLetter(out.msgs, m, err, true)
			continue
		}
		// The engine remembers rebuilt events newer than the retention (as of
		// its own clock, read a little later than now): the rebuild dedupes
		// the older ones, with a minute of overlap so that none falls between.
		if rebuild && w.dedupe != nil && ev.Time.Before(now.Add(time.Minute-w.dedupe.retention)) && w.dedupe.again(ev.ID, ev.Time) {
			c.m.rebuildDup.Inc() // a redelivered copy: counted once, as when it was live
			continue
		}
		d, err := c.eng.ScoreFrom(ctx, ev, source)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if rebuild {
				c.m.rebuildSkip.Inc()
				continue
			}
			out.msgs = w.deadLetter(out.msgs, m, err, false)
			continue
		}
		w.state.highest = max(w.state.highest, m.Offset)
		w.watermark(ev.Time, rebuild)
		if rebuild {
			if d.Replayed { // a copy of an event the rebuild (or live scoring) remembered: once, as live
				c.m.rebuildDup.Inc()
			} else {
				c.m.rebuilt.Inc()
			}
			continue
		}
		key := PrimaryKey(ev)
		if need := decisionSize(d) + len(key); cap(buf)-len(buf) < need {
			buf = recordBuffer((len(batch) - i) * need)
			out.bufs = append(out.bufs, buf)
		}
		start := len(buf)
		buf, err = appendDecision(buf, d, ev, now)
		if err != nil {
			buf = buf[:start]
			out.msgs = w.deadLetter(out.msgs, m, err, false)
			continue
		}
		mid := len(buf)
		buf = append(buf, key...)
		val, k := buf[start:mid:mid], buf[mid:len(buf):len(buf)]
		if d.Replayed { // one outcome per event, counted once acknowledged
			out.replayed++
		} else {
			out.decided++
		}
		out.msgs = append(out.msgs, kafka.Message{Topic: c.cfg.Topics.Decisions, Key: k, Value: val})
		out.times = append(out.times, ev.Time.UnixNano(), m.Time.UnixNano())
	}
	last := &batch[len(batch)-1]
	w.hwm.Store(last.HighWaterMark)
	w.setLag()
	if w.dedupe != nil && last.Offset+1 >= w.committed {
		w.rebuildDone()
	}
	if !w.caught && last.Offset+1 >= w.target {
		w.markCaughtUp()
	}
	if last.Offset < w.committed {
		return nil
	}
	out.next = last.Offset + 1
	return out
}

var deadLetterLogs = newEvery(time.Second)

// deadLetter appends the dead letter replacing m (nothing when the
// dead-letter topic is off) and logs it without its content. decoding
// tells a decode failure from a scoring one.
func (w *worker) deadLetter(msgs []kafka.Message, m *kafka.Message, err error, decoding bool) []kafka.Message {
	c := w.c
	dl := classify(err, len(m.Value))
	if !dl.pan && containsPAN(m) {
		dl.pan, dl.code = true, CodePAN
	}
	if decoding {
		c.m.decodeFailed.WithLabelValues(dl.code).Inc()
	}
	c.m.deadLettered.WithLabelValues(dl.code).Inc()
	c.m.deadLetteredEvents.Inc()
	if n, ok := deadLetterLogs.allow(); ok {
		c.log.Warn("kafka: message not scored, sent to the dead-letter topic", "code", dl.code, "topic", m.Topic,
			"partition", m.Partition, "offset", m.Offset, "dead_letter_topic", c.cfg.Topics.DeadLetter, "count", n)
	}
	if c.cfg.Topics.DeadLetter == "" {
		return msgs
	}
	return append(msgs, deadLetterMessage(c.cfg.Topics.DeadLetter, m, dl))
}

// watermark advances the partition's newest event time and counts late
// events (not again in a rebuild: they were counted when first read).
func (w *worker) watermark(t time.Time, rebuild bool) {
	if t.After(w.newest) {
		w.newest = t
		w.wm.Set(float64(t.UnixNano()) / 1e9)
	} else if w.newest.Sub(t) > w.c.lateness && !rebuild {
		w.c.m.late.Inc()
	}
}

// setLag sets the partition's lag: messages not yet decided, from the next
// offset whose decision is not acknowledged to the high watermark last
// fetched — it grows while producing decisions is stuck.
func (w *worker) setLag() { w.lag.Set(float64(max(0, w.hwm.Load()-w.acked.Load()))) }

// rebuildDone ends the rebuild: its dedupe set is dropped and its
// duration observed (when there was one).
func (w *worker) rebuildDone() {
	if w.dedupe != nil {
		w.c.m.rebuildTime.Observe(time.Since(w.started).Seconds())
		w.dedupe = nil
	}
}

func (w *worker) markCaughtUp() {
	w.caught = true
	w.c.log.Info("kafka partition caught up", "partition", w.partition)
	w.c.caughtUp(w.partition)
}

// send produces the scored batches in order; a batch's offset is marked
// for commit only once all its records are acknowledged. Failed writes are
// retried until ctx ends; then the remaining batches are dropped
// unmarked, to be delivered again.
//
// The batches waiting in q when a write starts are produced together, in
// their order, in one call (one request per partition): when producing
// is slower than scoring, a backlog of small batches costs one round trip,
// not one each.
func (w *worker) send(ctx context.Context, q <-chan *outBatch) {
	c := w.c
	logs := newEvery(10 * time.Second)
	var group []*outBatch
	var msgs []kafka.Message
	for b := range q {
		group = append(group[:0], b)
	more:
		for {
			select {
			case b, ok := <-q:
				if !ok {
					break more
				}
				group = append(group, b)
			default:
				break more
			}
		}
		if ctx.Err() != nil {
			continue
		}
		msgs = msgs[:0]
		for _, b := range group {
			msgs = append(msgs, b.msgs...)
		}
		if len(msgs) > 0 && !w.write(ctx, msgs, logs) {
			continue
		}
		clear(msgs) // no references kept to the records
		next := group[len(group)-1].next
		w.g.mark(w.partition, next)
		w.acked.Store(next)
		w.setLag()
		now := time.Now().UnixNano()
		for _, b := range group {
			for i := 0; i+1 < len(b.times); i += 2 {
				c.m.e2eEvent.Observe(float64(now-b.times[i]) / 1e9)
				c.m.e2eAppend.Observe(float64(now-b.times[i+1]) / 1e9)
			}
			c.m.decisionsSent.Add(float64(len(b.times) / 2))
			c.m.decided.Add(float64(b.decided))
			c.m.replayed.Add(float64(b.replayed))
			b.release() // acknowledged: the producer holds none of its records
		}
		clear(group)
	}
}

// write produces msgs, retrying the failed ones until ctx ends.
func (w *worker) write(ctx context.Context, msgs []kafka.Message, logs *every) bool {
	back := 100 * time.Millisecond
	for {
		err := w.c.writer.WriteMessages(ctx, msgs...)
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		w.c.m.errors.WithLabelValues("produce").Inc()
		if n, ok := logs.allow(); ok {
			w.c.log.Warn("kafka: producing decisions failed; retrying", "partition", w.partition, "err", err, "errors", n)
		}
		var werrs kafka.WriteErrors
		if errors.As(err, &werrs) && len(werrs) == len(msgs) {
			failed := msgs[:0:0]
			for i, e := range werrs {
				if e != nil {
					failed = append(failed, msgs[i])
				}
			}
			msgs = failed
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(back):
		}
		back = min(2*back, 2*time.Second)
	}
}
