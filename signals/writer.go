package signals

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-fraud/vigil/engine"
)

// Writer stores the signal of every decision in ClickHouse, asynchronously:
//
//	Put (scoring, never blocks) → bounded queue → batcher → batches in memory
//	→ INSERT; while ClickHouse is slow or down → disk spill → replay in order
//
// Rows are delivered at least once; the table deduplicates by event id.
// Nothing is dropped silently: every lost row is counted in
// vigil_signals_dropped_rows_total{reason} and logged. Create it with
// NewWriter, run it with Run (one call), and pass it to the engine as its
// Sink.
type Writer struct {
	cfg   Config
	log   *slog.Logger
	m     *metrics
	in    chan *engine.Record
	ins   inserter
	conn  driver.Conn // nil with a test inserter
	spill *spill
	ip    *ipHasher
	feed  *labelFeed // nil: labels are only stored
	// prep applies the migrations and reads the table's layout (nil with
	// migrate off, or a test inserter): at start-up and before labels.
	prep func(context.Context) error

	mu   sync.Mutex         // guards mem; held while spilling, so order is kept
	mem  [][]*engine.Record // full batches waiting for ClickHouse, oldest first
	wake chan struct{}      // tells the sender there is work

	inflight atomic.Int64 // Puts in progress
	closed   atomic.Bool  // set when Run stops taking records
	started  atomic.Bool
	lastWarn atomic.Int64 // unix nanos of the last drop warning
	done     chan struct{}

	stats struct{ written, replayed, insertNanos atomic.Int64 }
	up    atomic.Bool // the last insert succeeded

	// Retry backoff bounds of the sender.
	minBackoff, maxBackoff time.Duration
	drainDeadline          time.Time // set before collection ends
}

var _ engine.Sink = (*Writer)(nil)

// NewWriter builds a writer: it validates cfg, reads the password and IP
// hashing key, opens the spill directory (replaying what a previous run
// left there) and registers the writer's metrics on reg (may be nil). It
// does not connect: ClickHouse may be down at start-up; Run migrates (if
// configured) as soon as it answers and inserts, spilling meanwhile.
func NewWriter(cfg Config, log *slog.Logger, reg prometheus.Registerer) (*Writer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	conn, err := Open(cfg)
	if err != nil {
		return nil, err
	}
	w, err := newWriter(cfg, log, reg, nil)
	if err != nil {
		conn.Close()
		return nil, err
	}
	w.conn = conn
	ins := newCHInserter(conn, cfg, w.log)
	w.ins = ins
	if cfg.Migrate {
		w.prep = ins.Prepare
	}
	return w, nil
}

// newWriter builds a writer over an inserter (nil: set by the caller).
func newWriter(cfg Config, log *slog.Logger, reg prometheus.Registerer, ins inserter) (*Writer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	key, err := cfg.ipHashKey()
	if err != nil {
		return nil, err
	}
	if key == nil {
		log.Info("signals: no IP hashing key configured (ip_hash_key_file / ip_hash_key_env): device IPs are not stored")
	}
	w := &Writer{cfg: cfg, log: log, in: make(chan *engine.Record, cfg.Queue.Size), ins: ins, ip: newIPHasher(key),
		wake: make(chan struct{}, 1), done: make(chan struct{}), minBackoff: 100 * time.Millisecond, maxBackoff: 5 * time.Second}
	w.m = newMetrics(reg, func() float64 { return float64(len(w.in)) })
	if strings.HasPrefix(filepath.Clean(cfg.Spill.Dir), filepath.Clean(os.TempDir())) {
		log.Warn("signals: the disk spill is under the temporary directory; set signals.spill.dir to a persistent directory in production", "dir", cfg.Spill.Dir)
	}
	if w.spill, err = openSpill(cfg.Spill, log, w.m); err != nil {
		return nil, err
	}
	return w, nil
}

// Put queues the signal of one decision; it never blocks. The writer owns
// r afterwards (it replaces r.IP by its keyed hash). A full queue drops r,
// counted and logged.
func (w *Writer) Put(r *engine.Record) {
	w.inflight.Add(1)
	if w.closed.Load() {
		w.inflight.Add(-1)
		w.drop(reasonClosed, 1)
		r.Release()
		return
	}
	select {
	case w.in <- r:
		w.inflight.Add(-1)
	default:
		w.inflight.Add(-1)
		w.drop(reasonQueueFull, 1)
		r.Release()
	}
}

// drop counts lost rows and warns at most every 10 s.
func (w *Writer) drop(reason string, n int64) {
	w.m.dropped(reason, n)
	now := time.Now().UnixNano()
	last := w.lastWarn.Load()
	if now-last > int64(10*time.Second) && w.lastWarn.CompareAndSwap(last, now) {
		w.log.Error("signals dropped", "reason", reason, "rows", n, "queue_size", w.cfg.Queue.Size, "spill_dir", w.cfg.Spill.Dir)
	}
}

// Run migrates (if configured, retrying until ClickHouse answers), batches
// and inserts until ctx is done, then drains: the queue is emptied,
// batches in memory are still sent for up to queue.drain_timeout, and what
// remains is spilled to disk for the next start. A call to ClickHouse that
// must connect may outlast its context by up to dial_timeout (the driver's
// handshake does not watch it), so Run returns within drain_timeout +
// dial_timeout of ctx being done. It returns nil after a clean drain. Call
// it once.
func (w *Writer) Run(ctx context.Context) error {
	if !w.started.CompareAndSwap(false, true) {
		return errors.New("signals: Writer.Run called twice")
	}
	defer close(w.done)
	collected := make(chan struct{})
	// sendCtx bounds inserts: cancelled drain_timeout after collection ends,
	// so that a hung insert cannot hold the shutdown.
	sendCtx, cancelSend := context.WithCancel(context.Background())
	defer cancelSend()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		w.send(sendCtx, collected)
	}()
	if w.prep != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.prepareSchema(collected)
		}()
	}
	if w.conn != nil && w.cfg.Retention.Days > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.retention(sendCtx, collected)
		}()
	}
	w.collect(ctx)
	w.drainDeadline = time.Now().Add(time.Duration(w.cfg.Queue.DrainTimeout))
	close(collected)
	stop := time.AfterFunc(time.Duration(w.cfg.Queue.DrainTimeout), cancelSend)
	defer stop.Stop()
	wg.Wait()
	w.spill.close()
	w.log.Info("signals writer stopped", "spill_rows", w.spill.rows())
	return nil
}

// Stats is a snapshot of the writer's counters (the same as its metrics).
type Stats struct {
	Queued     int           // records in the in-memory queue
	Written    int64         // rows inserted into ClickHouse, direct and replayed
	Replayed   int64         // rows of those replayed from the disk spill
	SpillRows  int64         // rows waiting in the disk spill
	InsertTime time.Duration // time spent in successful inserts
	ClickHouse bool          // the last insert succeeded
	MemBatches int           // full batches waiting in memory
	SpillFull  bool          // the spill budget is exhausted
}

// Stats returns the writer's counters.
func (w *Writer) Stats() Stats {
	w.mu.Lock()
	mem := len(w.mem)
	w.mu.Unlock()
	return Stats{Queued: len(w.in), Written: w.stats.written.Load(), Replayed: w.stats.replayed.Load(),
		SpillRows: w.spill.rows(), InsertTime: time.Duration(w.stats.insertNanos.Load()), MemBatches: mem,
		ClickHouse: w.up.Load(), SpillFull: w.spill.isFull()}
}

// schemaReady reports whether the inserter has found the signals table.
func (w *Writer) schemaReady() bool {
	c, ok := w.ins.(*chInserter)
	return ok && c.ready.Load()
}

// Close releases the ClickHouse connection, after Run returned.
func (w *Writer) Close() error {
	if w.started.Load() {
		<-w.done
	}
	w.spill.close()
	if w.conn != nil {
		return w.conn.Close()
	}
	return nil
}

// Conn returns the writer's ClickHouse connection (nil in tests with a fake
// inserter); the labels handler shares it.
func (w *Writer) Conn() driver.Conn { return w.conn }

// pollInterval is how often the batcher empties the queue. It polls
// instead of waiting on the channel so that Put never has to wake a
// sleeping goroutine (a futex call inside scoring); rows wait at most this
// much longer.
const pollInterval = 5 * time.Millisecond

// collect empties the queue into batches until ctx is done, then takes
// what is left.
func (w *Writer) collect(ctx context.Context) {
	batch := make([]*engine.Record, 0, w.cfg.Queue.BatchSize)
	flushEvery := time.Duration(w.cfg.Queue.FlushInterval)
	tick := time.NewTicker(min(pollInterval, flushEvery))
	defer tick.Stop()
	var first time.Time // when the batch got its first row
	take := func() {
		for {
			select {
			case r := <-w.in:
				if r.IP != "" {
					r.IP = w.ip.hash(r.IP) // never keep, spill or send the address itself
				}
				if len(batch) == 0 {
					first = time.Now()
				}
				batch = append(batch, r)
				if len(batch) >= w.cfg.Queue.BatchSize {
					batch = w.enqueue(batch)
				}
			default:
				return
			}
		}
	}
	for {
		select {
		case <-tick.C:
			take()
			if len(batch) > 0 && time.Since(first) >= flushEvery {
				batch = w.enqueue(batch)
			}
		case <-ctx.Done():
			w.closed.Store(true)
			for w.inflight.Load() > 0 { // Puts that saw the writer open
				runtime.Gosched()
			}
			take()
			if len(batch) > 0 {
				w.enqueue(batch)
			}
			return
		}
	}
}

// enqueue hands a full batch to the sender, in memory if there is room and
// nothing is spilled (so that order is kept), else to the spill. It returns
// an empty batch to fill next.
func (w *Writer) enqueue(batch []*engine.Record) []*engine.Record {
	w.mu.Lock()
	defer w.mu.Unlock()
	defer w.notify()
	if len(w.mem) < w.cfg.Queue.MemoryBatches && !w.spill.pending() {
		w.mem = append(w.mem, batch)
		w.m.memoryBatches.Set(float64(len(w.mem)))
		return make([]*engine.Record, 0, w.cfg.Queue.BatchSize)
	}
	w.spillBatch(batch, false)
	release(batch)
	return batch[:0]
}

// spillBatch writes a batch to disk; with prepend, in front of the spill.
func (w *Writer) spillBatch(batch []*engine.Record, prepend bool) {
	var err error
	if prepend {
		err = w.spill.prepend(batch)
	} else {
		err = w.spill.append(batch)
	}
	switch {
	case errors.Is(err, errSpillFull):
		w.drop(reasonSpillFull, int64(len(batch)))
	case err != nil:
		w.log.Error("signals spill: write failed", "rows", len(batch), "err", err)
		w.drop(reasonSpillErr, int64(len(batch)))
	}
}

func (w *Writer) notify() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// send inserts batches from memory, then replays the spill, retrying with
// backoff while ClickHouse fails, until collected is closed; then it
// drains.
func (w *Writer) send(ctx context.Context, collected <-chan struct{}) {
	backoff := time.Duration(0)
	failing := false
	wait := func() bool { // false when collection ended
		backoff = min(max(2*backoff, w.minBackoff), w.maxBackoff)
		t := time.NewTimer(backoff)
		defer t.Stop()
		select {
		case <-t.C:
			return true
		case <-collected:
			return false
		}
	}
	result := func(err error, rows int, path string) bool {
		if err != nil {
			w.m.insertErrors.Inc()
			w.m.clickhouseUp.Set(0)
			w.up.Store(false)
			if !failing {
				w.log.Warn("signals: ClickHouse insert failed; queueing in memory and spilling to disk until it answers", "err", err, "rows", rows, "path", path)
			}
			failing = true
			return false
		}
		if failing {
			w.log.Info("signals: ClickHouse answers again", "path", path)
		}
		failing = false
		backoff = 0
		w.m.clickhouseUp.Set(1)
		w.up.Store(true)
		return true
	}
	for {
		select {
		case <-collected:
			w.drain(ctx)
			return
		default:
		}
		w.mu.Lock()
		var head []*engine.Record
		if len(w.mem) > 0 {
			head = w.mem[0]
		}
		w.mu.Unlock()
		switch {
		case head != nil:
			if !result(w.insert(ctx, head, "direct"), len(head), "direct") {
				wait()
				continue
			}
			release(head)
			w.mu.Lock()
			w.mem[0] = nil
			w.mem = w.mem[1:]
			w.m.memoryBatches.Set(float64(len(w.mem)))
			w.mu.Unlock()
		case w.spill.pending():
			recs, pos, err := w.spill.read(w.cfg.Queue.BatchSize)
			if err != nil {
				w.log.Error("signals spill: read failed", "err", err)
				wait()
				continue
			}
			if len(recs) > 0 && !result(w.insert(ctx, recs, "replay"), len(recs), "replay") {
				wait()
				continue
			}
			w.spill.commit(pos)
			w.m.replayedRows.Add(float64(len(recs)))
		default:
			select {
			case <-w.wake:
			case <-collected:
			}
		}
	}
}

// insert sends one batch with the insert timeout.
func (w *Writer) insert(ctx context.Context, recs []*engine.Record, path string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(w.cfg.InsertTimeout))
	defer cancel()
	start := time.Now()
	if err := w.ins.Insert(ctx, recs); err != nil {
		return err
	}
	took := time.Since(start)
	w.m.batchDuration.Observe(took.Seconds())
	w.m.written[path].Add(float64(len(recs)))
	w.stats.written.Add(int64(len(recs)))
	w.stats.insertNanos.Add(int64(took))
	if path == "replay" {
		w.stats.replayed.Add(int64(len(recs)))
	}
	return nil
}

// release hands records the writer is done with (inserted, spilled or
// dropped) back to the engine for reuse, and clears the batch.
func release(batch []*engine.Record) {
	for i, r := range batch {
		r.Release()
		batch[i] = nil
	}
}

// drain sends the batches still in memory for up to the drain timeout and
// spills the rest, in front of what was spilled before (they are older).
func (w *Writer) drain(ctx context.Context) {
	deadline := w.drainDeadline
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	w.mu.Lock()
	mem := w.mem
	w.mem = nil
	w.mu.Unlock()
	sent := 0
	for len(mem) > 0 && time.Now().Before(deadline) {
		if err := w.insert(ctx, mem[0], "direct"); err != nil {
			w.log.Warn("signals: insert failed while draining; spilling the rest", "err", err)
			break
		}
		sent += len(mem[0])
		release(mem[0])
		mem = mem[1:]
	}
	var rest []*engine.Record
	for _, b := range mem {
		rest = append(rest, b...)
	}
	if len(rest) > 0 {
		w.spillBatch(rest, true)
		release(rest)
	}
	w.m.memoryBatches.Set(0)
	w.log.Info("signals writer drained", "sent_rows", sent, "spilled_rows", len(rest))
}

// retention enforces the retention policy every check interval, starting
// shortly after start-up.
func (w *Writer) retention(ctx context.Context, stop <-chan struct{}) {
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-stop:
			return
		}
		if !w.schemaReady() {
			t.Reset(10 * time.Second)
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, time.Minute)
		go func() { // stop a long retention run at shutdown
			select {
			case <-stop:
				cancel()
			case <-rctx.Done():
			}
		}()
		res, err := EnforceRetention(rctx, w.conn, w.cfg.Database, w.cfg.Retention.Days, time.Now())
		cancel()
		if err != nil {
			w.log.Warn("signals retention: not enforced this time", "err", err)
		} else if len(res.Dropped) > 0 || res.TTLSet {
			w.m.retentionDrops.Add(float64(len(res.Dropped)))
			w.log.Info("signals retention enforced", "days", w.cfg.Retention.Days, "dropped_partitions", fmt.Sprint(res.Dropped), "ttl_set", res.TTLSet)
		}
		t.Reset(time.Duration(w.cfg.Retention.CheckInterval))
	}
}
