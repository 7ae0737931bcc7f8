package signals

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/vigil-fraud/vigil/engine"
)

// inserter writes batches of records. The ClickHouse one is the real
// thing; tests of the queue and spill logic may use a fake.
type inserter interface {
	Insert(ctx context.Context, recs []*engine.Record) error
}

// errNoSchema is returned while the signals table does not exist and
// migrations at start-up are off.
var errNoSchema = errors.New("signals table missing: run `vigil signals migrate`")

// chInserter inserts into ClickHouse with the native protocol, one INSERT
// naming its columns per batch. Before its first insert it applies the
// migrations (when configured) and reads the table's layout.
type chInserter struct {
	conn    driver.Conn
	db      string
	migrate bool
	log     *slog.Logger

	mu    sync.Mutex // one insert at a time; guards lay and blk
	ready atomic.Bool
	lay   layout
	blk   block
}

func newCHInserter(conn driver.Conn, cfg Config, log *slog.Logger) *chInserter {
	return &chInserter{conn: conn, db: cfg.Database, migrate: cfg.Migrate, log: log}
}

// Prepare migrates (if configured) and detects the table's layout, unless
// that is done already; safe alongside Insert.
func (c *chInserter) Prepare(ctx context.Context) error {
	if c.ready.Load() {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.prepare(ctx)
}

// prepare migrates (if configured) and detects the table's layout; c.mu
// held.
func (c *chInserter) prepare(ctx context.Context) error {
	if c.ready.Load() {
		return nil
	}
	if c.migrate {
		if _, err := Migrate(ctx, c.conn, c.db, c.log); err != nil {
			return err
		}
	}
	l, err := detectLayout(ctx, c.conn, c.db)
	if err != nil {
		return err
	}
	c.lay = l
	c.ready.Store(true)
	return nil
}

// detectLayout reads the signals table's columns: a table created on a
// server without DateTime64 has <time>_ms columns, and keeps them after an
// upgrade.
func detectLayout(ctx context.Context, conn driver.Conn, db string) (layout, error) {
	t, err := readTables(ctx, conn, db)
	if err != nil {
		return layout{}, fmt.Errorf("signals layout: %w", err)
	}
	if len(t[SignalsTable]) == 0 {
		return layout{}, errNoSchema
	}
	l := layout{msColumns: t.has(SignalsTable, "event_time_ms")}
	for _, n := range l.insertColumns() {
		if !t.has(SignalsTable, n) {
			return layout{}, fmt.Errorf("signals table lacks column %s: run `vigil signals migrate`", n)
		}
	}
	return l, nil
}

// insertBlockRows is the size of the native blocks an INSERT is sent in.
// The server squashes them into one part per INSERT (min_insert_block_size);
// on the client, blocks this small keep the column buffers in cache and
// reuse them from block to block (one 100,000-row block grew fresh buffers
// for every batch: half of the writer's CPU went to growing and collecting
// them). 1,000–4,000 measured alike, 25,000 slower.
const insertBlockRows = 4096

// Insert sends one batch. A batch prepared before an outage fails on Send;
// the caller retries with a fresh one.
func (c *chInserter) Insert(ctx context.Context, recs []*engine.Record) error {
	if len(recs) == 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.prepare(ctx); err != nil {
		return err
	}
	batch, err := c.conn.PrepareBatch(ctx, c.lay.insertSQL(c.db))
	if err != nil {
		return fmt.Errorf("signals insert: %w", err)
	}
	defer c.blk.reset() // let the records go, whatever happens: the caller may release them
	// One INSERT, sent in blocks of insertBlockRows: Flush sends a block
	// and resets the driver's columns, keeping their buffers for the next
	// block (blk is reused likewise). The server acknowledges the whole
	// INSERT on Send; a failure before that fails the batch, which the
	// caller retries or spills (rows of a retried batch that did land are
	// deduplicated by event id, as for any at-least-once delivery).
	for len(recs) > 0 {
		n := min(len(recs), insertBlockRows)
		c.blk.reset()
		for _, r := range recs[:n] {
			c.blk.add(r)
		}
		recs = recs[n:]
		if err := c.blk.appendTo(batch, c.lay); err != nil {
			batch.Abort()
			c.ready.Store(false) // the table may have changed under us: read it again
			return err
		}
		if len(recs) > 0 {
			if err := ctx.Err(); err != nil { // Send watches ctx; Flush does not (its writes have a deadline)
				batch.Abort()
				return fmt.Errorf("signals insert: %w", err)
			}
			if err := batch.Flush(); err != nil {
				batch.Abort()
				return fmt.Errorf("signals insert: %w", err)
			}
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("signals insert: %w", err)
	}
	return nil
}
