package signals

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vigil-fraud/vigil/engine"
)

func newFakeWriter(t testing.TB, cfg Config) (*Writer, *fakeInserter) {
	t.Helper()
	f := &fakeInserter{}
	w, err := newWriter(cfg, quietLog(), prometheus.NewRegistry(), f)
	if err != nil {
		t.Fatal(err)
	}
	w.minBackoff, w.maxBackoff = 5*time.Millisecond, 20*time.Millisecond
	return w, f
}

func TestWriterDeliversInOrder(t *testing.T) {
	w, f := newFakeWriter(t, testConfig(t))
	stop := startWriter(t, w)
	for i := 0; i < 1000; i++ {
		w.Put(testRecord(i))
	}
	waitFor(t, 5*time.Second, "1000 rows", func() bool { return len(f.ids()) == 1000 })
	stop()
	if want := ids(records(0, 1000)); !slices.Equal(f.ids(), want) {
		t.Fatal("rows out of order")
	}
	if n := testutil.ToFloat64(w.m.written["direct"]) + testutil.ToFloat64(w.m.written["replay"]); n != 1000 || w.Stats().Written != 1000 {
		t.Errorf("rows written %v, stats %+v", n, w.Stats())
	}
}

// An outage: batches pile up in memory, then spill; when the inserter
// comes back everything arrives once, in order.
func TestWriterOutageSpillsAndReplaysInOrder(t *testing.T) {
	w, f := newFakeWriter(t, testConfig(t))
	f.setDown(true)
	stop := startWriter(t, w)
	for i := 0; i < 2000; i++ {
		w.Put(testRecord(i))
		if i%100 == 0 {
			time.Sleep(2 * time.Millisecond)
		}
	}
	waitFor(t, 5*time.Second, "spilled rows", func() bool { return testutil.ToFloat64(w.m.spilledRows) >= 1000 })
	if got := len(f.ids()); got != 0 {
		t.Fatalf("%d rows inserted while down", got)
	}
	f.setDown(false)
	waitFor(t, 10*time.Second, "2000 rows", func() bool { return len(f.ids()) == 2000 })
	stop()
	if want := ids(records(0, 2000)); !slices.Equal(f.ids(), want) {
		got := f.ids()
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("row %d is %s, want %s", i, got[i], want[i])
			}
		}
	}
	if n := testutil.ToFloat64(w.m.replayedRows); n < 1000 {
		t.Errorf("replayed %v rows", n)
	}
	if w.spill.pending() {
		t.Error("spill not empty")
	}
	for _, r := range []string{reasonQueueFull, reasonSpillFull, reasonSpillErr, reasonCorrupt, reasonClosed} {
		if n := testutil.ToFloat64(w.m.drops[r]); n != 0 {
			t.Errorf("dropped %v rows (%s)", n, r)
		}
	}
}

// Shutdown while ClickHouse is down: what is in memory goes to disk and
// the next writer sends it, in order, before newer rows.
func TestWriterShutdownSpillsAndNextRunReplays(t *testing.T) {
	cfg := testConfig(t)
	cfg.Queue.DrainTimeout = engine.Duration(50 * time.Millisecond)
	w, f := newFakeWriter(t, cfg)
	f.setDown(true)
	stop := startWriter(t, w)
	for i := 0; i < 700; i++ {
		w.Put(testRecord(i))
	}
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	stop()
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("shutdown took %v", d)
	}
	w.Put(testRecord(9999)) // after Run: counted, not lost silently
	if n := testutil.ToFloat64(w.m.drops[reasonClosed]); n != 1 {
		t.Errorf("closed drops %v", n)
	}
	if n := w.spill.rows(); n != 700 {
		t.Fatalf("%d rows spilled at shutdown, want 700", n)
	}
	w.Close()

	w2, f2 := newFakeWriter(t, cfg)
	startWriter(t, w2)
	for i := 700; i < 800; i++ {
		w2.Put(testRecord(i))
	}
	waitFor(t, 5*time.Second, "800 rows", func() bool { return len(f2.ids()) == 800 })
	if want := ids(records(0, 800)); !slices.Equal(f2.ids(), want) {
		t.Fatalf("after restart: %v...", f2.ids()[:5])
	}
}

// With migrate on, Run prepares the schema at start-up, before any signal,
// retrying with backoff until it succeeds; scoring does not wait for it.
func TestWriterPreparesSchemaAtStartup(t *testing.T) {
	w, f := newFakeWriter(t, testConfig(t))
	var mu sync.Mutex
	calls := 0
	w.prep = func(context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls <= 2 {
			return errors.New("connection refused")
		}
		return nil
	}
	called := func() int { mu.Lock(); defer mu.Unlock(); return calls }
	stop := startWriter(t, w)
	w.Put(testRecord(1))
	waitFor(t, 5*time.Second, "the schema prepared on the third attempt", func() bool { return called() == 3 })
	waitFor(t, 5*time.Second, "the signal", func() bool { return len(f.ids()) == 1 })
	time.Sleep(100 * time.Millisecond) // several backoffs: no attempt after success
	stop()
	if n := called(); n != 3 {
		t.Errorf("%d attempts, want 3", n)
	}
}

func TestWriterQueueFullCounts(t *testing.T) {
	cfg := testConfig(t)
	cfg.Queue.Size = 10
	w, _ := newFakeWriter(t, cfg)
	// not running: the queue fills
	for i := 0; i < 25; i++ {
		w.Put(testRecord(i))
	}
	if n := testutil.ToFloat64(w.m.drops[reasonQueueFull]); n != 15 {
		t.Errorf("queue_full drops %v, want 15", n)
	}
}

func TestWriterHashesIPs(t *testing.T) {
	cfg := testConfig(t)
	t.Setenv("VIGIL_TEST_IP_KEY", "0123456789abcdef-test-key")
	cfg.IPHashKeyEnv = "VIGIL_TEST_IP_KEY"
	w, f := newFakeWriter(t, cfg)
	stop := startWriter(t, w)
	r := testRecord(1)
	w.Put(r)
	waitFor(t, 5*time.Second, "a row", func() bool { return len(f.ids()) == 1 })
	stop()
	got := f.batches[0][0].IP
	if len(got) != 32 || strings.Contains(got, ".") {
		t.Errorf("stored IP %q, want a 128-bit hex keyed hash", got)
	}
	if want := newIPHasher([]byte("0123456789abcdef-test-key")).hash("203.0.113.1"); got != want {
		t.Errorf("hash %q, want %q", got, want)
	}

	// no key: no IP at all
	w2, f2 := newFakeWriter(t, testConfig(t))
	stop2 := startWriter(t, w2)
	w2.Put(testRecord(2))
	waitFor(t, 5*time.Second, "a row", func() bool { return len(f2.ids()) == 1 })
	stop2()
	if ip := f2.batches[0][0].IP; ip != "" {
		t.Errorf("IP stored without a key: %q", ip)
	}
}

// Put never blocks, even with the inserter hung.
func TestWriterPutDoesNotBlock(t *testing.T) {
	cfg := testConfig(t)
	w, f := newFakeWriter(t, cfg)
	f.mu.Lock()
	f.delay = time.Hour
	f.mu.Unlock()
	startWriter(t, w)
	start := time.Now()
	for i := 0; i < 5000; i++ {
		w.Put(testRecord(i))
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("5000 Puts took %v", d)
	}
}

func BenchmarkPut(b *testing.B) {
	cfg := testConfig(b)
	cfg.Queue.Size = 1 << 20
	w, _ := newFakeWriter(b, cfg)
	r := testRecord(1)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%(1<<19) == 0 {
			for len(w.in) > 0 {
				<-w.in
			}
		}
		w.Put(r)
	}
}
