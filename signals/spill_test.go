package signals

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vigil-fraud/vigil/engine"
)

func newTestSpill(t *testing.T, cfg SpillConfig) (*spill, *metrics) {
	t.Helper()
	return newLoggedSpill(t, cfg, quietLog())
}

func newLoggedSpill(t *testing.T, cfg SpillConfig, log *slog.Logger) (*spill, *metrics) {
	t.Helper()
	m := newMetrics(nil, func() float64 { return 0 })
	s, err := openSpill(cfg, log, m)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.close)
	return s, m
}

func spillCfg(t *testing.T) SpillConfig {
	return SpillConfig{Dir: t.TempDir(), MaxBytes: 1 << 30, SegmentBytes: 4 << 10, FullPolicy: DropNewest}
}

func records(from, to int) []*engine.Record {
	var out []*engine.Record
	for i := from; i < to; i++ {
		out = append(out, testRecord(i))
	}
	return out
}

// readAll replays the whole spill, committing each read.
func readAll(t *testing.T, s *spill, max int) []string {
	t.Helper()
	var ids []string
	for s.pending() {
		recs, pos, err := s.read(max)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			ids = append(ids, r.EventID)
		}
		s.commit(pos)
	}
	return ids
}

func ids(recs []*engine.Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.EventID)
	}
	return out
}

func TestSpillReplaysInOrderAcrossSegments(t *testing.T) {
	s, m := newTestSpill(t, spillCfg(t))
	for i := 0; i < 10; i++ {
		if err := s.append(records(i*30, i*30+30)); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(s.segs); n < 3 {
		t.Fatalf("%d segments, want several (4 KiB each)", n)
	}
	if got := testutil.ToFloat64(m.spilledRows); got != 300 {
		t.Errorf("spilled rows %v", got)
	}
	got := readAll(t, s, 17)
	if want := ids(records(0, 300)); !slices.Equal(got, want) {
		t.Fatalf("replayed %d ids out of order or missing", len(got))
	}
	if entries, _ := os.ReadDir(s.dir); len(entries) != 1 || entries[0].Name() != "lock" {
		t.Errorf("spill dir holds more than its lock after replay: %v", entries)
	}
	if testutil.ToFloat64(m.spillBytes) != 0 {
		t.Errorf("spill bytes gauge %v", testutil.ToFloat64(m.spillBytes))
	}
}

func TestSpillResumesAfterRestart(t *testing.T) {
	cfg := spillCfg(t)
	s, _ := newTestSpill(t, cfg)
	if err := s.append(records(0, 50)); err != nil {
		t.Fatal(err)
	}
	if err := s.append(records(50, 100)); err != nil {
		t.Fatal(err)
	}
	recs, pos, err := s.read(10)
	if err != nil || len(recs) != 10 {
		t.Fatalf("read: %d %v", len(recs), err)
	}
	s.commit(pos) // first 10 delivered
	recs, _, _ = s.read(10)
	_ = recs // read but never committed: must come back
	s.close()

	s2, _ := newTestSpill(t, cfg)
	got := readAll(t, s2, 33)
	if want := ids(records(10, 100)); !slices.Equal(got, want) {
		t.Fatalf("after restart replayed %v..., want tx_000010.. (%d ids, want %d)", got[:3], len(got), len(want))
	}
}

func TestSpillTornTail(t *testing.T) {
	cfg := spillCfg(t)
	cfg.SegmentBytes = 1 << 20
	s, m := newTestSpill(t, cfg)
	if err := s.append(records(0, 20)); err != nil {
		t.Fatal(err)
	}
	s.close()
	// a crash in the middle of the next append leaves half a frame
	path := filepath.Join(cfg.Dir, s.segs[0].name())
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	frame := appendFrame(nil, testRecord(20))
	f.Write(frame[:len(frame)/2])
	f.Close()

	s2, m2 := newTestSpill(t, cfg)
	got := readAll(t, s2, 100)
	if want := ids(records(0, 20)); !slices.Equal(got, want) {
		t.Fatalf("got %d ids, want the 20 complete ones", len(got))
	}
	if n := testutil.ToFloat64(m2.drops[reasonCorrupt]); n != 1 {
		t.Errorf("corrupt drops %v, want 1", n)
	}
	_ = m
}

func TestSpillCorruptMiddle(t *testing.T) {
	cfg := spillCfg(t)
	cfg.SegmentBytes = 1 << 20
	s, _ := newTestSpill(t, cfg)
	s.append(records(0, 10))
	s.close()
	path := filepath.Join(cfg.Dir, s.segs[0].name())
	data, _ := os.ReadFile(path)
	one := len(appendFrame(nil, testRecord(0)))
	data[len(segmentMagic)+one*3+frameHeader+5] ^= 0x40 // inside the 4th record
	os.WriteFile(path, data, 0o600)

	s2, m2 := newTestSpill(t, cfg)
	got := readAll(t, s2, 100)
	if want := append(ids(records(0, 3)), ids(records(4, 10))...); !slices.Equal(got, want) {
		t.Fatalf("got %v, want every record but the damaged one", got)
	}
	if n := testutil.ToFloat64(m2.drops[reasonCorrupt]); n != 1 {
		t.Errorf("corrupt drops %v, want 1", n)
	}
}

func TestSpillBudget(t *testing.T) {
	frame := int64(len(appendFrame(nil, testRecord(0))))
	tests := []struct {
		policy   string
		wantErr  bool
		wantHead string // first id replayed
	}{
		{DropNewest, true, "tx_000000"},
		{DropOldest, false, "tx_000010"}, // full too: it deletes signals for room
	}
	for _, tt := range tests {
		t.Run(tt.policy, func(t *testing.T) {
			cfg := spillCfg(t)
			cfg.SegmentBytes = 10*frame + int64(len(segmentMagic)) + 64
			cfg.MaxBytes = 2*cfg.SegmentBytes + 10
			cfg.FullPolicy = tt.policy
			s, m := newTestSpill(t, cfg)
			for i := 0; i < 2; i++ {
				if err := s.append(records(i*10, i*10+10)); err != nil {
					t.Fatal(err)
				}
			}
			err := s.append(records(20, 30))
			if got := errors.Is(err, errSpillFull); got != tt.wantErr {
				t.Fatalf("third append: %v", err)
			}
			if full := testutil.ToFloat64(m.spillFull); full != 1 || !s.isFull() {
				t.Errorf("spill_full gauge %v after the budget was exhausted, want 1", full)
			}
			if n := testutil.ToFloat64(m.drops[reasonSpillFull]); tt.policy == DropOldest && n != 10 {
				t.Errorf("drop_oldest counted %v dropped rows, want 10", n)
			}
			got := readAll(t, s, 100)
			if got[0] != tt.wantHead || len(got) != 20 {
				t.Errorf("replayed %d from %s, want 20 from %s", len(got), got[0], tt.wantHead)
			}
			if full := testutil.ToFloat64(m.spillFull); full != 0 || s.isFull() {
				t.Errorf("spill_full gauge %v once replayed, want 0", full)
			}
			if err := s.append(records(30, 40)); err != nil { // room without evicting
				t.Fatal(err)
			}
			if full := testutil.ToFloat64(m.spillFull); full != 0 {
				t.Errorf("spill_full gauge %v after an append with room, want 0", full)
			}
		})
	}
}

func TestSpillPrependGoesFirst(t *testing.T) {
	s, _ := newTestSpill(t, spillCfg(t))
	s.append(records(100, 110))
	if err := s.prepend(records(0, 5)); err != nil {
		t.Fatal(err)
	}
	got := readAll(t, s, 3)
	want := append(ids(records(0, 5)), ids(records(100, 110))...)
	if !slices.Equal(got, want) {
		t.Fatalf("got %v\nwant %v", got, want)
	}
}

// A damaged record is counted and logged once, however often its batch is
// read again while ClickHouse refuses the replay.
func TestSpillCorruptionCountedOnce(t *testing.T) {
	one := len(appendFrame(nil, testRecord(0)))
	tests := []struct {
		name   string
		damage func(data []byte) []byte
		want   []string // ids replayed
		lost   float64
	}{
		{"bad checksum", func(data []byte) []byte {
			data[len(segmentMagic)+one*3+frameHeader+5] ^= 0x40 // inside the 4th record
			return data
		}, append(ids(records(0, 3)), ids(records(4, 10))...), 1},
		{"torn tail", func(data []byte) []byte {
			return data[:len(data)-one/2] // half of the 10th record
		}, ids(records(0, 9)), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := spillCfg(t)
			cfg.SegmentBytes = 1 << 20
			s, _ := newTestSpill(t, cfg)
			if err := s.append(records(0, 10)); err != nil {
				t.Fatal(err)
			}
			s.close()
			path := filepath.Join(cfg.Dir, s.segs[0].name())
			data, _ := os.ReadFile(path)
			os.WriteFile(path, tt.damage(data), 0o600)

			var logs bytes.Buffer
			s2, m2 := newLoggedSpill(t, cfg, slog.New(slog.NewTextHandler(&logs, nil)))
			for i := 0; i < 3; i++ { // the insert fails: not committed, read again
				if _, _, err := s2.read(100); err != nil {
					t.Fatal(err)
				}
			}
			if got := readAll(t, s2, 100); !slices.Equal(got, tt.want) {
				t.Fatalf("replayed %v, want %v", got, tt.want)
			}
			if n := testutil.ToFloat64(m2.drops[reasonCorrupt]); n != tt.lost {
				t.Errorf("corrupt drops %v, want %v", n, tt.lost)
			}
			if n := strings.Count(logs.String(), "level=ERROR"); n != 1 {
				t.Errorf("%d errors logged, want 1:\n%s", n, logs.String())
			}
		})
	}
}

// The rows gauge, Stats and the start-up log count only rows not replayed
// yet, also after a restart that resumes from the saved position.
func TestSpillRowsExcludeReplayed(t *testing.T) {
	cfg := spillCfg(t)
	cfg.SegmentBytes = 1 << 20
	s, m := newTestSpill(t, cfg)
	if err := s.append(records(0, 100)); err != nil {
		t.Fatal(err)
	}
	recs, pos, err := s.read(30)
	if err != nil || len(recs) != 30 {
		t.Fatalf("read: %d %v", len(recs), err)
	}
	s.commit(pos)
	if n, g := s.rows(), testutil.ToFloat64(m.spillRows); n != 70 || g != 70 {
		t.Errorf("rows %d, gauge %v after replaying 30 of 100, want 70", n, g)
	}
	s.close()

	var logs bytes.Buffer
	s2, m2 := newLoggedSpill(t, cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if n, g := s2.rows(), testutil.ToFloat64(m2.spillRows); n != 70 || g != 70 {
		t.Errorf("after restart: rows %d, gauge %v, want 70", n, g)
	}
	if !strings.Contains(logs.String(), "rows=70") {
		t.Errorf("start-up log does not say 70 rows:\n%s", logs.String())
	}
	if got := readAll(t, s2, 100); !slices.Equal(got, ids(records(30, 100))) {
		t.Fatalf("replayed %d rows after restart, want tx_000030..tx_000099", len(got))
	}
	if n, g := s2.rows(), testutil.ToFloat64(m2.spillRows); n != 0 || g != 0 {
		t.Errorf("after the replay: rows %d, gauge %v", n, g)
	}
}

// TestSpillDirLocked: a second spill on a directory in use is refused with
// a clear error (two instances named their segments alike and lost rows);
// once the first is closed the directory is free again.
func TestSpillDirLocked(t *testing.T) {
	cfg := spillCfg(t)
	m := newMetrics(nil, func() float64 { return 0 })
	first, err := openSpill(cfg, quietLog(), m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := openSpill(cfg, quietLog(), m); err == nil || !strings.Contains(err.Error(), "in use by another vigil process") {
		t.Fatalf("second open of %s: %v, want in use", cfg.Dir, err)
	}
	first.close()
	again, err := openSpill(cfg, quietLog(), m)
	if err != nil {
		t.Fatalf("after close: %v", err)
	}
	again.close()
}

// TestSpillBudgetOneSegment: with drop_oldest, a budget that one segment
// fills still makes room — the tail being written is the oldest too (it
// dropped the newest instead) — and a batch larger than the whole budget
// is dropped with an error that says so.
func TestSpillBudgetOneSegment(t *testing.T) {
	frame := int64(len(appendFrame(nil, testRecord(0))))
	cfg := spillCfg(t)
	cfg.SegmentBytes = 100 * frame
	cfg.MaxBytes = 15*frame + int64(len(segmentMagic))
	cfg.FullPolicy = DropOldest
	var logs bytes.Buffer
	s, m := newLoggedSpill(t, cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err := s.append(records(0, 10)); err != nil {
		t.Fatal(err)
	}
	if err := s.append(records(10, 20)); err != nil {
		t.Fatalf("second batch, drop_oldest: %v", err)
	}
	if n := testutil.ToFloat64(m.drops[reasonSpillFull]); n != 10 {
		t.Errorf("dropped %v rows, want the 10 oldest", n)
	}
	if got := readAll(t, s, 100); !slices.Equal(got, ids(records(10, 20))) {
		t.Errorf("replayed %v, want the newest batch", got)
	}
	if err := s.append(records(20, 40)); !errors.Is(err, errSpillFull) {
		t.Fatalf("a batch larger than the budget: %v, want errSpillFull", err)
	}
	if !strings.Contains(logs.String(), "larger than the whole disk budget") {
		t.Errorf("log does not say the batch is larger than the budget:\n%s", logs.String())
	}
}

// TestSpillDirOwnership: a spill directory others may write is refused:
// its segments would be replayed into ClickHouse as they are.
func TestSpillDirOwnership(t *testing.T) {
	cfg := spillCfg(t)
	if err := os.Chmod(cfg.Dir, 0o777); err != nil {
		t.Fatal(err)
	}
	m := newMetrics(nil, func() float64 { return 0 })
	if _, err := openSpill(cfg, quietLog(), m); err == nil || !strings.Contains(err.Error(), "others may write in") {
		t.Fatalf("open of a world-writable dir: %v, want refused", err)
	}
	if err := os.Chmod(cfg.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := openSpill(cfg, quietLog(), m)
	if err != nil {
		t.Fatalf("open of a 0755 dir of this user: %v", err)
	}
	s.close()
}
