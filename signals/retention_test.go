package signals

import (
	"context"
	"slices"
	"testing"
	"time"
)

func TestRetentionDropsExpiredPartitions(t *testing.T) {
	cfg, conn := testClickHouse(t)
	ctx := context.Background()
	if _, err := Migrate(ctx, conn, cfg.Database, quietLog()); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	old, edge, fresh := records(0, 3), records(3, 6), records(6, 9)
	for _, r := range old { // 120 days old: dropped
		r.EventTime = now.AddDate(0, 0, -120)
	}
	for _, r := range edge { // the cutoff day itself (90 days ago, later in the day): kept
		r.EventTime = time.Date(2026, 8, 24, 18, 0, 0, 0, time.UTC)
	}
	for _, r := range fresh {
		r.EventTime = now.Add(-time.Hour)
	}
	ins := newCHInserter(conn, cfg, quietLog())
	if err := ins.Insert(ctx, slices.Concat(old, edge, fresh)); err != nil {
		t.Fatal(err)
	}
	labels := []Label{
		{EventID: "tx_000000", Label: LabelChargeback, LabelledAt: now.AddDate(0, -6, 0)},
		{EventID: "tx_000006", Label: LabelChargeback, LabelledAt: now.AddDate(0, 0, -1)},
	}
	if err := insertLabels(ctx, conn, cfg.Database, labels); err != nil {
		t.Fatal(err)
	}
	res, err := EnforceRetention(ctx, conn, cfg.Database, 90, now)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"signals/20260725", "labels/202605"}
	if !slices.Equal(res.Dropped, want) {
		t.Errorf("dropped %v, want %v", res.Dropped, want)
	}
	db := quoteIdent(cfg.Database)
	if n := queryUint(t, conn, "SELECT count() FROM "+db+".signals"); n != 6 {
		t.Errorf("%d signals left, want 6", n)
	}
	if n := queryUint(t, conn, "SELECT count() FROM "+db+".labels"); n != 1 {
		t.Errorf("%d labels left, want 1", n)
	}
	// idempotent
	if res, err := EnforceRetention(ctx, conn, cfg.Database, 90, now); err != nil || len(res.Dropped) != 0 {
		t.Errorf("second run: %+v %v", res, err)
	}
}
