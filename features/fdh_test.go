package features

import (
	"compress/gzip"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/vigil-fraud/vigil/engine/event"
)

// fdhDir is the shared Fraud Detection Handbook month, beside the clone:
// <repo>/../shared/datasets/fdh.
func fdhDir(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test directory")
		}
		dir = parent
	}
	d := filepath.Join(dir, "..", "shared", "datasets", "fdh")
	if _, err := os.Stat(filepath.Join(d, "transactions-2018-04.csv.gz")); errors.Is(err, os.ErrNotExist) {
		t.Skipf("FDH dataset not found at %s (it lives in shared/ beside the repository clone); skipping the golden comparison", d)
	}
	return d
}

// readGzipCSV returns the rows of a gzipped CSV file with its header as a
// column index.
func readGzipCSV(t testing.TB, path string) (map[string]int, [][]string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	r := csv.NewReader(z)
	r.ReuseRecord = false
	head, err := r.Read()
	if err != nil {
		t.Fatal(err)
	}
	cols := map[string]int{}
	for i, h := range head {
		cols[h] = i
	}
	var rows [][]string
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, rec)
	}
	return cols, rows
}

// cents converts an amount written as a float (57.16, 85.64999999999999)
// to whole cents.
func cents(s string) (int64, error) {
	x, err := strconv.ParseFloat(s, 64)
	if err != nil || x < 0 || x > 1e12 {
		return 0, fmt.Errorf("bad amount %q", s)
	}
	return int64(math.Round(x * 100)), nil
}

const fdhDefs = `
features:
  - {name: customer_count, entity: account.id, aggregate: count, windows: [1d, 7d, 30d]}
  - {name: customer_avg, entity: account.id, aggregate: avg, field: amount, windows: [1d, 7d, 30d]}
  # terminal counts over (t-7d-w, t-7d] are differences of two windows
  - {name: terminal_count, entity: merchant.id, aggregate: count, windows: [7d, 8d, 14d, 37d]}
`

// TestFDHGolden replays the FDH month (customer → account, terminal →
// merchant) and compares every reference value: exact counts, averages to
// 1e-6 relative. The README of the dataset allows four rows (two
// same-second pairs ordered the other way by the reference) to differ in
// their customer counts.
func TestFDHGolden(t *testing.T) {
	dir := fdhDir(t)
	tc, txs := readGzipCSV(t, filepath.Join(dir, "transactions-2018-04.csv.gz"))
	fc, refs := readGzipCSV(t, filepath.Join(dir, "features-2018-04.csv.gz"))
	ref := make(map[string][]string, len(refs))
	for _, r := range refs {
		ref[r[fc["TRANSACTION_ID"]]] = r
	}
	if len(txs) != 288062 || len(ref) != len(txs) {
		t.Fatalf("dataset: %d transactions, %d reference rows; want 288062 each", len(txs), len(ref))
	}
	// Replay in the file's row order: increasing time, and within a second
	// the order the reference used, except for the four documented rows.
	// (Sorting by TRANSACTION_ID instead would swap one more same-second
	// pair, 163831/163832, which the file lists as 163832 first.)
	f, err := Parse("fdh.yaml", []byte(fdhDefs))
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(f)
	if err != nil {
		t.Fatal(err)
	}
	s := e.Schema()
	slot := func(name string) int {
		i, ok := s.Lookup(name)
		if !ok {
			t.Fatalf("no feature %s", name)
		}
		return i
	}
	v := NewVector(s)
	allowed := map[string]bool{"121453": true, "121454": true, "174806": true, "174807": true}
	type check struct {
		days                   string
		count, avg             int // slots
		tLong                  int // terminal window 7d+w
		refCount, refAvg, refT int // reference columns
	}
	var checks []check
	for _, w := range []struct{ days, name, long string }{{"1", "1d", "8d"}, {"7", "7d", "14d"}, {"30", "30d", "37d"}} {
		checks = append(checks, check{days: w.days, count: slot("customer_count_" + w.name), avg: slot("customer_avg_" + w.name),
			tLong: slot("terminal_count_" + w.long), refCount: fc["CUSTOMER_ID_NB_TX_"+w.days+"DAY_WINDOW"],
			refAvg: fc["CUSTOMER_ID_AVG_AMOUNT_"+w.days+"DAY_WINDOW"], refT: fc["TERMINAL_ID_NB_TX_"+w.days+"DAY_WINDOW"]})
	}
	t7 := slot("terminal_count_7d")
	cID, cT, cCust, cTerm, cAmt := tc["TRANSACTION_ID"], tc["TX_UNIX"], tc["CUSTOMER_ID"], tc["TERMINAL_ID"], tc["TX_AMOUNT"]
	var ev event.Event
	compared, tieRows := 0, map[string]bool{}
	prevT := int64(0)
	for _, tx := range txs {
		id := tx[cID]
		sec, err := strconv.ParseInt(tx[cT], 10, 64)
		if err != nil || sec < prevT {
			t.Fatalf("tx %s: time %s not in order (%v)", id, tx[cT], err)
		}
		prevT = sec
		amt, err := cents(tx[cAmt])
		if err != nil {
			t.Fatal(err)
		}
		ev = event.Event{ID: id, Time: time.Unix(sec, 0).UTC(), Amount: amt, Currency: "USD",
			Account:  event.Account{ID: "c" + tx[cCust]},
			Merchant: event.Merchant{ID: "t" + tx[cTerm]}}
		e.Observe(&ev, v)
		r := ref[id]
		num := func(col int) float64 {
			x, err := strconv.ParseFloat(r[col], 64)
			if err != nil {
				t.Fatalf("row %s column %d: %v", id, col, err)
			}
			return x
		}
		for _, c := range checks {
			if got, want := v.Num[c.count], num(c.refCount); got != want {
				if !allowed[id] {
					t.Errorf("tx %s: customer count over %s days = %v, reference %v", id, c.days, got, want)
				}
				tieRows[id] = true
			}
			if got, want := v.Num[c.avg], num(c.refAvg); math.Abs(got-want) > 1e-6*math.Abs(want) {
				if !allowed[id] {
					t.Errorf("tx %s: customer average over %s days = %v, reference %v", id, c.days, got, want)
				}
				tieRows[id] = true
			}
			// Terminal: (t-7d-w, t-7d] = window(7d+w) - window(7d).
			if got, want := v.Num[c.tLong]-v.Num[t7], num(c.refT); got != want {
				t.Errorf("tx %s: terminal count over (t-7d-%sd, t-7d] = %v, reference %v", id, c.days, got, want)
			}
			compared += 3
		}
		if t.Failed() && compared > 300 {
			t.FailNow()
		}
	}
	if len(tieRows) != 4 {
		t.Errorf("expected the 4 documented tie rows to differ, got %d: %v", len(tieRows), tieRows)
	}
	t.Logf("compared %d values over %d transactions; tie rows %v", compared, len(txs), tieRows)
}
