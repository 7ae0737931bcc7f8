package signals

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vigil-fraud/vigil/engine"
)

// ClickHouse is stopped while the engine scores with the writer as its
// sink, then restarted: every signal arrives exactly once, and scoring
// latency does not change during the outage. The test runs a ClickHouse
// server of its own (deploy/clickhouse/clickhouse.sh with another state
// dir), so that stopping it does not disturb other packages' tests.
func TestOutageDuringScoring(t *testing.T) {
	if testing.Short() {
		t.Skip("stops and restarts the ClickHouse server")
	}
	dir, cfg, conn := privateClickHouse(t)
	cfg.Queue.BatchSize = 500
	cfg.Queue.MemoryBatches = 2
	cfg.InsertTimeout = engine.Duration(5 * time.Second)
	ctx := context.Background()
	if _, err := Migrate(ctx, conn, cfg.Database, quietLog()); err != nil {
		t.Fatal(err)
	}
	w, err := NewWriter(cfg, quietLog(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.maxBackoff = time.Second
	stop := startWriter(t, w)
	e := newTestEngine(t, w)
	db := quoteIdent(cfg.Database)

	next := 0
	score := func(n int) []time.Duration {
		lat := make([]time.Duration, 0, n)
		for i := 0; i < n; i++ {
			ev := testEvent(t, next)
			next++
			start := time.Now()
			if _, err := e.Score(ctx, ev, false); err != nil {
				t.Fatal(err)
			}
			lat = append(lat, time.Since(start))
			if i%50 == 49 {
				time.Sleep(time.Millisecond) // a steady stream, not one burst
			}
		}
		return lat
	}
	const perPhase = 4000

	base := score(perPhase)
	waitFor(t, 30*time.Second, "the first phase's signals", func() bool {
		n, err := countRows(conn, db)
		return err == nil && n == perPhase
	})

	clickhouseScript(t, dir, "stop-server")
	outage := score(perPhase)
	waitFor(t, 20*time.Second, "signals spilled to disk", func() bool { return w.spill.rows() > 0 })
	if up := testutil.ToFloat64(w.m.clickhouseUp); up != 0 {
		t.Errorf("clickhouse_up %v during the outage", up)
	}
	clickhouseScript(t, dir, "start-server")
	after := score(perPhase)

	total := uint64(3 * perPhase)
	waitFor(t, 60*time.Second, "every signal after the restart", func() bool {
		n, err := countRows(conn, db)
		return err == nil && n >= total && !w.spill.pending()
	})
	stop()
	raw := queryUint(t, conn, "SELECT count() FROM "+db+".signals")
	final := queryUint(t, conn, "SELECT count() FROM "+db+".signals FINAL")
	distinct := queryUint(t, conn, "SELECT uniqExact(event_id) FROM "+db+".signals")
	t.Logf("rows %d (raw, before merges), %d FINAL, %d distinct ids; spilled %v, replayed %v, insert errors %v",
		raw, final, distinct, testutil.ToFloat64(w.m.spilledRows), testutil.ToFloat64(w.m.replayedRows), testutil.ToFloat64(w.m.insertErrors))
	if final != total || distinct != total {
		t.Fatalf("FINAL %d rows, %d distinct ids; want %d each", final, distinct, total)
	}
	if testutil.ToFloat64(w.m.replayedRows) == 0 {
		t.Error("nothing was replayed from the spill")
	}
	for r, c := range w.m.drops {
		if n := testutil.ToFloat64(c); n != 0 {
			t.Errorf("%v rows dropped (%s)", n, r)
		}
	}

	p99 := func(d []time.Duration) time.Duration {
		s := slices.Clone(d)
		slices.Sort(s)
		return s[len(s)*99/100]
	}
	pb, po, pa := p99(base), p99(outage), p99(after)
	t.Logf("score p99: %v before, %v during the outage, %v after", pb, po, pa)
	if limit := 3*pb + time.Millisecond; po > limit {
		t.Errorf("score p99 during the outage %v > %v (3 × %v before + 1 ms)", po, limit, pb)
	}
}

// countRows counts the rows of the signals table (an error while the
// server restarts is not fatal).
func countRows(conn driver.Conn, db string) (uint64, error) {
	var n uint64
	err := conn.QueryRow(context.Background(), "SELECT count() FROM "+db+".signals").Scan(&n)
	return n, err
}
