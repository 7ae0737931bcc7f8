package signals

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// RetentionResult says what EnforceRetention did.
type RetentionResult struct {
	Dropped []string // "table/partition" dropped
	TTLSet  bool     // a table's TTL was (re)set
}

// EnforceRetention applies the retention policy of days (> 0) at now:
//
//   - signals are partitioned by day of event time: a day partition is
//     dropped once all of it is older than days;
//   - labels are partitioned by month of label time: a month partition is
//     dropped once all of it is older than days;
//   - on servers with TTL (19.6+) both tables also get a TTL of days, so
//     that rows expire between checks with row precision.
//
// Dropping a partition is cheap and immediate; it is idempotent, so several
// vigil instances may run it.
func EnforceRetention(ctx context.Context, conn driver.Conn, db string, days int, now time.Time) (RetentionResult, error) {
	var res RetentionResult
	if days <= 0 {
		return res, nil
	}
	cutoff := now.UTC().AddDate(0, 0, -days)
	dayLimit := cutoff.Year()*10000 + int(cutoff.Month())*100 + cutoff.Day() // keep partitions >= this day
	monthLimit := cutoff.Year()*100 + int(cutoff.Month())                    // keep partitions >= this month
	for _, t := range []struct {
		table string
		limit int
	}{{SignalsTable, dayLimit}, {LabelsTable, monthLimit}} {
		parts, err := partitions(ctx, conn, db, t.table)
		if err != nil {
			return res, err
		}
		for _, p := range parts {
			if p >= t.limit {
				continue
			}
			q := fmt.Sprintf("ALTER TABLE %s.%s DROP PARTITION %d", quoteIdent(db), t.table, p)
			if err := conn.Exec(ctx, q); err != nil {
				return res, fmt.Errorf("retention: drop %s partition %d: %w", t.table, p, err)
			}
			res.Dropped = append(res.Dropped, fmt.Sprintf("%s/%d", t.table, p))
		}
	}
	version, err := ServerVersion(ctx, conn)
	if err != nil {
		return res, err
	}
	if !CapabilitiesOf(version).TTL {
		return res, nil
	}
	for _, t := range []struct{ table, column string }{{SignalsTable, "event_time"}, {LabelsTable, "labelled_at"}} {
		set, err := ensureTTL(ctx, conn, db, t.table, t.column, days)
		if err != nil {
			return res, err
		}
		res.TTLSet = res.TTLSet || set
	}
	return res, nil
}

// partitions lists the numeric partitions of a table's active parts.
func partitions(ctx context.Context, conn driver.Conn, db, table string) ([]int, error) {
	rows, err := conn.Query(ctx, "SELECT DISTINCT partition_id FROM system.parts WHERE database = ? AND table = ? AND active", db, table)
	if err != nil {
		return nil, fmt.Errorf("retention: list partitions of %s: %w", table, err)
	}
	defer rows.Close()
	var out []int
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("retention: list partitions of %s: %w", table, err)
		}
		if n, err := strconv.Atoi(id); err == nil {
			out = append(out, n)
		}
	}
	return out, rows.Err()
}

// ensureTTL sets the table's TTL to days unless it already is.
func ensureTTL(ctx context.Context, conn driver.Conn, db, table, column string, days int) (bool, error) {
	var engineFull string
	if err := conn.QueryRow(ctx, "SELECT engine_full FROM system.tables WHERE database = ? AND name = ?", db, table).Scan(&engineFull); err != nil {
		return false, fmt.Errorf("retention: read %s: %w", table, err)
	}
	if strings.Contains(engineFull, fmt.Sprintf("toIntervalDay(%d)", days)) {
		return false, nil
	}
	q := fmt.Sprintf("ALTER TABLE %s.%s MODIFY TTL toDateTime(%s) + INTERVAL %d DAY", quoteIdent(db), table, column, days)
	if err := conn.Exec(ctx, q); err != nil {
		return false, fmt.Errorf("retention: set TTL of %s: %w", table, err)
	}
	return true, nil
}
