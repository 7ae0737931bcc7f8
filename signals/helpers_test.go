package signals

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/vigil-fraud/vigil/engine"
	"github.com/vigil-fraud/vigil/engine/event"
	"github.com/vigil-fraud/vigil/features"
	"github.com/vigil-fraud/vigil/rules"
)

var testTime = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)

func quietLog() *slog.Logger {
	if os.Getenv("VIGIL_TEST_VERBOSE") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// testRecord is a record like the engine makes, numbered i.
func testRecord(i int) *engine.Record {
	r := &engine.Record{
		EventID: fmt.Sprintf("tx_%06d", i), EventTime: testTime.Add(time.Duration(i) * time.Millisecond * 1500),
		DecidedAt: testTime.Add(time.Duration(i)*time.Millisecond*1500 + 3*time.Millisecond), Source: engine.SourceHTTP,
		Amount: int64(1000 + i), Currency: "EUR", AmountMajor: float64(1000+i) / 100, Channel: "ecommerce",
		CardToken: fmt.Sprintf("tok_%d", i%97), CardBIN: "424242", CardCountry: "DE", AccountID: fmt.Sprintf("acct_%d", i%31),
		EmailHash: "eh_1f2e", MerchantID: "m_1", MCC: "5411", MerchantCountry: "DE", DeviceID: "dev_1",
		DeviceFingerprint: "fp_9", IP: fmt.Sprintf("203.0.113.%d", i%250), BillingCountry: "DE", ShippingCountry: "FR",
		Decision: "approve", Score: i % 101, Ruleset: "starter@abc123", LatencyUS: 87,
		FeatureNames:  []string{"card_count_10m", "card_amount_sum_24h", "account_amount_avg_30d"},
		FeatureValues: []float64{float64(i % 7), 12.5 * float64(i%9), math.NaN()},
	}
	if i%3 == 0 {
		r.Hits = []string{"large_amount"}
		r.Decision = "step_up"
	}
	if i%5 == 0 {
		r.Ignored = []string{"ip_velocity_1h"}
	}
	if i%4 == 0 {
		r.FeatureStrings = map[string]string{"ip_country": "DE"}
	}
	return r
}

// fakeInserter records inserted batches; down makes it fail.
type fakeInserter struct {
	mu      sync.Mutex
	down    bool
	delay   time.Duration
	batches [][]*engine.Record
	calls   int
}

func (f *fakeInserter) Insert(ctx context.Context, recs []*engine.Record) error {
	f.mu.Lock()
	down, delay := f.down, f.delay
	f.calls++
	f.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if down {
		return fmt.Errorf("connection refused")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.batches = append(f.batches, append([]*engine.Record(nil), recs...))
	return nil
}

func (f *fakeInserter) setDown(v bool) { f.mu.Lock(); f.down = v; f.mu.Unlock() }

func (f *fakeInserter) ids() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, b := range f.batches {
		for _, r := range b {
			out = append(out, r.EventID)
		}
	}
	return out
}

// testConfig is a config for tests: small batches, short intervals, a
// temporary spill.
func testConfig(t testing.TB) Config {
	c := DefaultConfig()
	c.Spill.Dir = t.TempDir()
	c.Spill.Fsync = false
	c.Queue.FlushInterval = engine.Duration(20 * time.Millisecond)
	c.Queue.BatchSize = 100
	c.Queue.DrainTimeout = engine.Duration(2 * time.Second)
	return c
}

// startWriter runs w until the returned stop is called (which waits for
// Run to return).
func startWriter(t testing.TB, w *Writer) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// countNow runs a count query for a waitFor condition: an error (the
// writer has not created the database yet) reads as 0, not as a failure.
func countNow(conn driver.Conn, q string) uint64 {
	var n uint64
	if err := conn.QueryRow(context.Background(), q).Scan(&n); err != nil {
		return 0
	}
	return n
}

func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ---------------------------------------------------------------- real ClickHouse

// testClickHouse returns a config and connection for a fresh database on
// the server named by VIGIL_TEST_CLICKHOUSE (started by
// deploy/clickhouse/clickhouse.sh up), dropped at the end of the test.
func testClickHouse(t testing.TB) (Config, driver.Conn) {
	t.Helper()
	addr := os.Getenv("VIGIL_TEST_CLICKHOUSE")
	if addr == "" {
		t.Skip("VIGIL_TEST_CLICKHOUSE not set: start ClickHouse with deploy/clickhouse/clickhouse.sh up and export $(deploy/clickhouse/clickhouse.sh env) (make test does both)")
	}
	var b [6]byte
	rand.Read(b[:])
	cfg := testConfig(t)
	cfg.Addr = addr
	cfg.Database = "vigil_test_" + hex.EncodeToString(b[:])
	conn, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+quoteIdent(cfg.Database)); err != nil {
			t.Logf("drop test database %s: %v", cfg.Database, err)
		}
		conn.Close()
	})
	return cfg, conn
}

// clickhouseScript runs deploy/clickhouse/clickhouse.sh with a command on
// the server whose state is in dir ("" for the default one).
func clickhouseScript(t testing.TB, dir string, args ...string) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(file), "..", "deploy", "clickhouse", "clickhouse.sh")
	c := exec.Command(script, args...)
	c.Env = os.Environ()
	if dir != "" {
		c.Env = append(c.Env, "VIGIL_CLICKHOUSE_DIR="+dir)
	}
	var stdout, stderr strings.Builder
	c.Stdout, c.Stderr = &stdout, &stderr
	if err := c.Run(); err != nil {
		t.Fatalf("clickhouse.sh %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return strings.TrimSpace(stdout.String())
}

// privateClickHouse starts a ClickHouse server of its own (same package as
// VIGIL_TEST_CLICKHOUSE's, other ports and data), for tests that stop and
// restart it without disturbing tests of other packages running at the
// same time; it is stopped and wiped at the end. It returns its state dir
// and a config and connection like testClickHouse.
func privateClickHouse(t testing.TB) (string, Config, driver.Conn) {
	t.Helper()
	if os.Getenv("VIGIL_TEST_CLICKHOUSE") == "" {
		t.Skip("VIGIL_TEST_CLICKHOUSE not set: start ClickHouse with deploy/clickhouse/clickhouse.sh up and export $(deploy/clickhouse/clickhouse.sh env) (make test does both)")
	}
	dir, err := os.MkdirTemp("", "vigil-ch-outage-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	addr := clickhouseScript(t, dir, "up")
	t.Cleanup(func() { clickhouseScript(t, dir, "down", "--wipe") })
	t.Setenv("VIGIL_TEST_CLICKHOUSE", addr)
	cfg, conn := testClickHouse(t)
	return dir, cfg, conn
}

func queryUint(t testing.TB, conn driver.Conn, q string, args ...any) uint64 {
	t.Helper()
	var n uint64
	if err := conn.QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// newTestEngine wires the embedded default features and rules with a sink.
func newTestEngine(t testing.TB, sink engine.Sink) *engine.Engine {
	t.Helper()
	f, err := features.Parse(features.DefaultFileName, features.DefaultFile)
	if err != nil {
		t.Fatal(err)
	}
	fe, err := features.New(f)
	if err != nil {
		t.Fatal(err)
	}
	srcs, err := rules.ReadDir(rules.DefaultFS, rules.DefaultDir, "")
	if err != nil {
		t.Fatal(err)
	}
	set, err := rules.Compile(srcs, fe.Schema())
	if err != nil {
		t.Fatal(err)
	}
	o := engine.Options{IdempotencyMaxEntries: 1 << 20}
	if sink != nil {
		o.Sink = sink
	}
	e, err := engine.New(fe, rules.NewManager(set), o)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// testEvent is the i-th event of a stream over 300 cards; every 50th is
// very large.
func testEvent(t testing.TB, i int) *event.Event {
	t.Helper()
	amount := 1000 + (i*37)%5000
	if i%50 == 0 {
		amount = 1_500_000
	}
	s := fmt.Sprintf(`{"id":"ev_%d","time":%q,"amount":%d,"currency":"USD","channel":"ecommerce",`+
		`"card":{"token":"tok_%d","bin":"424242","country":"US"},"account":{"id":"acct_%d"},`+
		`"merchant":{"id":"m_%d","mcc":"5411","country":"US"},"device":{"ip":"203.0.113.%d"}}`,
		i, testTime.Add(time.Duration(i)*time.Second).Format(time.RFC3339Nano), amount, i%300, i%1000, i%20, i%250)
	ev, err := event.Decode([]byte(s), testTime.Add(100*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return ev
}
