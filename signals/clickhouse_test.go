package signals

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vigil-fraud/vigil/engine"
)

func TestMigrationsRunTwice(t *testing.T) {
	cfg, conn := testClickHouse(t)
	ctx := context.Background()
	res, err := Migrate(ctx, conn, cfg.Database, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Applied) != len(Migrations) || res.Current != LatestVersion() {
		t.Fatalf("first run: %+v", res)
	}
	res2, err := Migrate(ctx, conn, cfg.Database, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if len(res2.Applied) != 0 || res2.Current != LatestVersion() {
		t.Fatalf("second run applied %v", res2.Applied)
	}
	if n := queryUint(t, conn, fmt.Sprintf("SELECT count() FROM %s.%s", quoteIdent(cfg.Database), MigrationsTable)); n != uint64(len(Migrations)) {
		t.Errorf("%d migration rows, want %d", n, len(Migrations))
	}
	// every view answers
	for _, v := range views {
		rows, err := conn.Query(ctx, fmt.Sprintf("SELECT * FROM %s.%s LIMIT 1", quoteIdent(cfg.Database), v.name))
		if err != nil {
			t.Errorf("view %s: %v", v.name, err)
			continue
		}
		rows.Close()
	}
	// migrations interrupted after their DDL (no row recorded) run again
	// fine: the views re-created, labelled_at_ms not added twice
	if err := conn.Exec(ctx, fmt.Sprintf("ALTER TABLE %s.%s DELETE WHERE version >= 3", quoteIdent(cfg.Database), MigrationsTable)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "mutation", func() bool {
		return queryUint(t, conn, fmt.Sprintf("SELECT count() FROM %s.%s WHERE version >= 3", quoteIdent(cfg.Database), MigrationsTable)) == 0
	})
	res3, err := Migrate(ctx, conn, cfg.Database, quietLog())
	if err != nil || !slices.Equal(res3.Applied, []int{3, 4}) {
		t.Fatalf("re-applying 3 and 4: %+v %v", res3, err)
	}
}

// A database of schema version 3 (labels without labelled_at_ms) migrates
// to the latest, several vigil instances at once: labels stored before
// count as at millisecond 0 of their second, and labels stored after win
// by their milliseconds.
func TestMigrateLabelsToMilliseconds(t *testing.T) {
	cfg, conn := testClickHouse(t)
	ctx := context.Background()
	if res, err := migrate(ctx, conn, cfg.Database, quietLog(), Migrations[:3]); err != nil || res.Current != 3 {
		t.Fatalf("version 3: %+v %v", res, err)
	}
	ins := newCHInserter(conn, cfg, quietLog())
	ins.migrate = false
	if err := ins.Insert(ctx, records(0, 3)); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	ms := func(n int) time.Time { return at.Add(time.Duration(n) * time.Millisecond) }
	// as vigil stored them before: labelled_at in whole seconds only
	if err := insertLabels(ctx, conn, cfg.Database, []Label{
		{EventID: "tx_000000", Label: LabelChargeback, LabelledAt: ms(500)},
		{EventID: "tx_000001", Label: LabelFalsePositive, LabelledAt: ms(500)},
		{EventID: "tx_000002", Label: LabelChargeback, LabelledAt: ms(500)},
	}); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 3)
	for range cap(errs) {
		go func() {
			res, err := Migrate(ctx, conn, cfg.Database, quietLog())
			if err == nil && res.Current != LatestVersion() {
				err = fmt.Errorf("schema version %d", res.Current)
			}
			errs <- err
		}()
	}
	for range cap(errs) {
		if err := <-errs; err != nil {
			t.Errorf("concurrent migrate: %v", err)
		}
	}
	db := quoteIdent(cfg.Database)
	if n := queryUint(t, conn, "SELECT count() FROM "+db+".labels WHERE labelled_at_ms = 0"); n != 3 {
		t.Errorf("%d labels stored before read labelled_at_ms 0, want 3", n)
	}
	if err := insertLabels(ctx, conn, cfg.Database, []Label{
		{EventID: "tx_000000", Label: LabelFalsePositive, LabelledAt: ms(1)},    // after 12:00:00.000
		{EventID: "tx_000001", Label: LabelChargeback, LabelledAt: ms(-1)},      // 11:59:59.999
		{EventID: "tx_000002", Label: LabelLegitimate, LabelledAt: ms(1000)},    // the next second
		{EventID: "tx_000002", Label: LabelConfirmedFraud, LabelledAt: ms(999)}, // before it
	}); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"tx_000000": LabelFalsePositive, "tx_000001": LabelFalsePositive, "tx_000002": LabelLegitimate}
	rows, err := conn.Query(ctx, "SELECT event_id, label FROM "+db+".v_signals_labelled")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[string]string{}
	for rows.Next() {
		var id, label string
		if err := rows.Scan(&id, &label); err != nil {
			t.Fatal(err)
		}
		got[id] = label
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("latest labels %v, want %v", got, want)
	}
}

// The LowCardinality variant of the schema (servers >= 19) also works on
// this server, with the experimental setting deploy/clickhouse enables.
func TestSchemaLowCardinalityVariant(t *testing.T) {
	cfg, conn := testClickHouse(t)
	ctx := context.Background()
	if err := conn.Exec(ctx, "CREATE DATABASE "+quoteIdent(cfg.Database)); err != nil {
		t.Fatal(err)
	}
	caps := Capabilities{LowCardinality: true}
	for _, q := range []string{signalsDDL(cfg.Database, caps), labelsDDL(cfg.Database, caps)} {
		if err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%v\n%s", err, q)
		}
	}
	l, err := detectLayout(ctx, conn, cfg.Database)
	if err != nil || !l.msColumns {
		t.Fatalf("layout %+v %v", l, err)
	}
	ins := newCHInserter(conn, cfg, quietLog())
	ins.migrate = false
	if err := ins.Insert(ctx, records(0, 50)); err != nil {
		t.Fatal(err)
	}
	if n := queryUint(t, conn, fmt.Sprintf("SELECT count() FROM %s.signals WHERE toTypeName(decision) = 'LowCardinality(String)'", quoteIdent(cfg.Database))); n != 50 {
		t.Errorf("%d rows", n)
	}
	// the views, labelled_at_ms, and the latest of two labels of a second
	for _, m := range Migrations[2:] {
		if err := apply(ctx, conn, cfg.Database, caps, m); err != nil {
			t.Fatalf("migration %d: %v", m.Version, err)
		}
	}
	if err := insertLabels(ctx, conn, cfg.Database, []Label{
		{EventID: "tx_000001", Label: LabelLegitimate, LabelledAt: testTime.Add(900 * time.Millisecond)},
		{EventID: "tx_000001", Label: LabelChargeback, LabelledAt: testTime.Add(100 * time.Millisecond)},
	}); err != nil {
		t.Fatal(err)
	}
	var label, typ string
	q := fmt.Sprintf("SELECT label, toTypeName(label) FROM %s.v_signals_labelled WHERE event_id = 'tx_000001'", quoteIdent(cfg.Database))
	if err := conn.QueryRow(ctx, q).Scan(&label, &typ); err != nil || label != LabelLegitimate {
		t.Errorf("latest label %q (%s) %v, want legitimate", label, typ, err)
	}
}

func TestInsertedColumns(t *testing.T) {
	cfg, conn := testClickHouse(t)
	t.Setenv("VIGIL_TEST_IP_KEY", "0123456789abcdef-test-key")
	cfg.IPHashKeyEnv = "VIGIL_TEST_IP_KEY"
	w, err := NewWriter(cfg, quietLog(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	stop := startWriter(t, w)
	r := testRecord(12)
	r.EventTime = time.Date(2026, 11, 20, 10, 0, 1, 234e6, time.UTC)
	w.Put(r)
	stop()
	var (
		id, ipHash, decision string
		evTime               time.Time
		ms                   uint16
		hits, fnames         []string
		fvals                []float64
		fsn, fsv             []string
		score                uint8
		amount               float64
	)
	row := conn.QueryRow(context.Background(), fmt.Sprintf(`SELECT event_id, ip_hash, decision, event_time, event_time_ms, hits, feature_names, feature_values,
		feature_str_names, feature_str_values, score, amount FROM %s.signals`, quoteIdent(cfg.Database)))
	if err := row.Scan(&id, &ipHash, &decision, &evTime, &ms, &hits, &fnames, &fvals, &fsn, &fsv, &score, &amount); err != nil {
		t.Fatal(err)
	}
	if id != "tx_000012" || decision != "step_up" || score != 12 || amount != 10.12 || !slices.Equal(hits, []string{"large_amount"}) {
		t.Errorf("row %s %s %d %v %v", id, decision, score, amount, hits)
	}
	if !evTime.Equal(time.Date(2026, 11, 20, 10, 0, 1, 0, time.UTC)) || ms != 234 {
		t.Errorf("event time %v + %d ms", evTime, ms)
	}
	if ipHash == "" || ipHash == "203.0.113.12" || len(ipHash) != 32 {
		t.Errorf("ip_hash %q", ipHash)
	}
	if !slices.Equal(fnames, r.FeatureNames) || len(fvals) != 3 || fvals[0] != 5 || fvals[2] == fvals[2] {
		t.Errorf("features %v %v", fnames, fvals)
	}
	if !slices.Equal(fsn, []string{"ip_country"}) || !slices.Equal(fsv, []string{"DE"}) {
		t.Errorf("string features %v %v", fsn, fsv)
	}
}

// Signals of N events scored by the engine all arrive, exactly once.
func TestSignalsFromEngineArriveOnce(t *testing.T) {
	cfg, conn := testClickHouse(t)
	cfg.Queue.BatchSize = 1000
	w, err := NewWriter(cfg, quietLog(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	stop := startWriter(t, w)
	e := newTestEngine(t, w)
	const n = 5000
	ctx := context.Background()
	for i := 0; i < n; i++ {
		if _, err := e.Score(ctx, testEvent(t, i), false); err != nil {
			t.Fatal(err)
		}
	}
	// the same ids again: replays, no new signals
	for i := 0; i < 100; i++ {
		if _, err := e.Score(ctx, testEvent(t, i), false); err != nil {
			t.Fatal(err)
		}
	}
	db := quoteIdent(cfg.Database)
	waitFor(t, 30*time.Second, "all signals", func() bool {
		return countNow(conn, "SELECT count() FROM "+db+".signals") >= n // the writer creates the database on its first batch
	})
	stop()
	if c, u := queryUint(t, conn, "SELECT count() FROM "+db+".signals"), queryUint(t, conn, "SELECT uniqExact(event_id) FROM "+db+".signals"); c != n || u != n {
		t.Fatalf("%d rows, %d distinct ids; want %d", c, u, n)
	}
	// query by id
	ids := []string{"ev_0", "ev_1234", "ev_4999"}
	rows, err := conn.Query(ctx, "SELECT event_id FROM "+db+".signals FINAL WHERE event_id IN (?, ?, ?)", ids[0], ids[1], ids[2])
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var id string
		rows.Scan(&id)
		got = append(got, id)
	}
	rows.Close()
	sort.Strings(got)
	if !slices.Equal(got, []string{"ev_0", "ev_1234", "ev_4999"}) {
		t.Errorf("by id: %v", got)
	}
	if v := testutil.ToFloat64(w.m.written["direct"]) + testutil.ToFloat64(w.m.written["replay"]); v != n {
		t.Errorf("rows written metric %v", v)
	}
	if d := queryUint(t, conn, "SELECT count() FROM "+db+".signals WHERE has(hits, 'very_large_amount') AND decision = 'pause'"); d == 0 {
		t.Error("no very_large_amount pause signals")
	}
	_ = engine.SourceHTTP
}

// An INSERT larger than one native block arrives whole, every row with its
// own values: the driver's columns are reset and reused between blocks.
func TestInsertSpansBlocks(t *testing.T) {
	cfg, conn := testClickHouse(t)
	ctx := context.Background()
	ins := newCHInserter(conn, cfg, quietLog())
	ins.migrate = true
	n := 2*insertBlockRows + 123
	for range 2 { // the second batch reuses the inserter's buffers
		if err := ins.Insert(ctx, records(0, n)); err != nil {
			t.Fatal(err)
		}
	}
	db := quoteIdent(cfg.Database)
	if c, u := queryUint(t, conn, "SELECT count() FROM "+db+".signals"), queryUint(t, conn, "SELECT uniqExact(event_id) FROM "+db+".signals"); c != uint64(2*n) || u != uint64(n) {
		t.Fatalf("%d rows, %d distinct ids; want %d, %d", c, u, 2*n, n)
	}
	// every row against the values testRecord gave it
	bad := queryUint(t, conn, `SELECT count() FROM (SELECT toUInt64(substring(event_id, 4)) AS i, * FROM `+db+`.signals)
		WHERE NOT (amount_minor = 1000 + i AND score = i % 101 AND card_token = concat('tok_', toString(i % 97))
			AND feature_values[2] = 12.5 * (i % 9) AND length(feature_values) = 3 AND feature_names[3] = 'account_amount_avg_30d'
			AND has(hits, 'large_amount') = (i % 3 = 0) AND length(shadow_hits) = (i % 5 = 0)
			AND length(feature_str_names) = (i % 4 = 0) AND length(feature_str_values) = (i % 4 = 0))`)
	if bad != 0 {
		t.Errorf("%d rows differ from their records", bad)
	}
}

// On a fresh database the writer applies the migrations at start-up, with
// no signal scored yet: labels are stored and retention can run. Labels
// sent before the writer got there apply them themselves.
func TestSchemaPreparedBeforeFirstSignal(t *testing.T) {
	body := `{"labels":[{"event_id":"tx_1","label":"chargeback"}]}`
	post := func(w *Writer) int {
		rec := httptest.NewRecorder()
		LabelsHandler(w)(rec, httptest.NewRequest(http.MethodPost, "/v1/labels", strings.NewReader(body)))
		return rec.Code
	}
	tests := []struct {
		name string
		run  bool
	}{
		{"at start-up", true},
		{"labels first", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, conn := testClickHouse(t)
			w, err := NewWriter(cfg, quietLog(), prometheus.NewRegistry())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { w.Close() }) // after startWriter's stop
			db := quoteIdent(cfg.Database)
			if tt.run {
				startWriter(t, w)
				waitFor(t, 30*time.Second, "the migrations", func() bool {
					return countNow(conn, "SELECT count() FROM "+db+".schema_migrations") >= uint64(LatestVersion())
				})
				waitFor(t, 5*time.Second, "the layout", w.schemaReady)
			}
			if code := post(w); code != http.StatusOK {
				t.Fatalf("POST /v1/labels on a fresh database: %d, want 200", code)
			}
			if n := queryUint(t, conn, "SELECT count() FROM "+db+".labels"); n != 1 {
				t.Errorf("%d labels stored", n)
			}
		})
	}
}
