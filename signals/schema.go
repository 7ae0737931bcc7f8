package signals

import (
	"context"
	"fmt"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Table names in the configured database.
const (
	SignalsTable    = "signals"
	LabelsTable     = "labels"
	MigrationsTable = "schema_migrations"
)

// A column of the signals table. kind decides its ClickHouse type from the
// server's capabilities; docs/signals.md documents every column.
type column struct {
	name string
	kind colKind
}

type colKind uint8

const (
	kString     colKind = iota // String
	kLowCard                   // LowCardinality(String), or String
	kArrLowCard                // Array(LowCardinality(String)), or Array(String)
	kArrString                 // Array(String)
	kArrFloat                  // Array(Float64)
	kTime                      // DateTime64(3, 'UTC'), or DateTime('UTC') + a <name>_ms UInt16 column
	kInt64                     // Int64
	kFloat64                   // Float64
	kUInt8                     // UInt8
	kUInt32                    // UInt32
)

func (k colKind) typ(c Capabilities) string {
	switch k {
	case kLowCard:
		if c.LowCardinality {
			return "LowCardinality(String)"
		}
		return "String"
	case kArrLowCard:
		if c.LowCardinality {
			return "Array(LowCardinality(String))"
		}
		return "Array(String)"
	case kArrString:
		return "Array(String)"
	case kArrFloat:
		return "Array(Float64)"
	case kTime:
		if c.DateTime64 {
			return "DateTime64(3, 'UTC')"
		}
		return "DateTime('UTC')"
	case kInt64:
		return "Int64"
	case kFloat64:
		return "Float64"
	case kUInt8:
		return "UInt8"
	case kUInt32:
		return "UInt32"
	}
	return "String"
}

// signalColumns are the signals table's columns in insert order (the
// <time>_ms columns of servers without DateTime64 follow their time).
var signalColumns = []column{
	{"event_id", kString},
	{"event_time", kTime},
	{"decided_at", kTime},
	{"source", kLowCard},
	{"amount_minor", kInt64},
	{"currency", kLowCard},
	{"amount", kFloat64},
	{"channel", kLowCard},
	{"card_token", kString},
	{"card_bin", kLowCard},
	{"card_country", kLowCard},
	{"account_id", kString},
	{"email_hash", kString},
	{"merchant_id", kString},
	{"mcc", kLowCard},
	{"merchant_country", kLowCard},
	{"device_id", kString},
	{"device_fingerprint", kString},
	{"ip_hash", kString},
	{"billing_country", kLowCard},
	{"shipping_country", kLowCard},
	{"decision", kLowCard},
	{"score", kUInt8},
	{"ruleset", kLowCard},
	{"hits", kArrLowCard},
	{"shadow_hits", kArrLowCard},
	{"feature_names", kArrLowCard},
	{"feature_values", kArrFloat},
	{"feature_str_names", kArrLowCard},
	{"feature_str_values", kArrString},
	{"latency_us", kUInt32},
}

// layout is how the signals table stores times: DateTime64, or DateTime
// plus a milliseconds column.
type layout struct {
	msColumns bool
}

// insertColumns lists the column names an INSERT names, for a layout.
func (l layout) insertColumns() []string {
	var out []string
	for _, c := range signalColumns {
		out = append(out, c.name)
		if c.kind == kTime && l.msColumns {
			out = append(out, c.name+"_ms")
		}
	}
	return out
}

// insertSQL is the INSERT statement of a batch of signals.
func (l layout) insertSQL(db string) string {
	return fmt.Sprintf("INSERT INTO %s.%s (%s)", quoteIdent(db), SignalsTable, strings.Join(l.insertColumns(), ", "))
}

// signalsDDL creates the signals table: one row per decision, deduplicated
// by event id (ReplacingMergeTree keeps the latest decision of an id),
// partitioned by day of event time so that retention can drop whole days.
func signalsDDL(db string, c Capabilities) string {
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE TABLE IF NOT EXISTS %s.%s (\n", quoteIdent(db), SignalsTable)
	for i, col := range signalColumns {
		if i > 0 {
			b.WriteString(",\n")
		}
		fmt.Fprintf(&b, "  %s %s", col.name, col.kind.typ(c))
		if col.kind == kTime && !c.DateTime64 {
			fmt.Fprintf(&b, ",\n  %s_ms UInt16", col.name)
		}
	}
	b.WriteString(",\n  inserted_at DateTime('UTC') DEFAULT now()")
	b.WriteString("\n) ENGINE = ReplacingMergeTree(decided_at)\nPARTITION BY toYYYYMMDD(event_time)\nORDER BY event_id")
	return b.String()
}

// labelsDDL creates the labels table: confirmed outcomes by event id. An
// event may get several labels over time (a chargeback, then a won
// representment marked false_positive); the views use the latest. This is
// the table of migration 2: on a server without DateTime64, migration 4
// adds labelled_at_ms (addLabelMsDDL).
func labelsDDL(db string, c Capabilities) string {
	return fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s.%s (
  event_id String,
  label %s,
  labelled_at %s,
  source String,
  received_at DateTime('UTC') DEFAULT now()
) ENGINE = ReplacingMergeTree(received_at)
PARTITION BY toYYYYMM(labelled_at)
ORDER BY (event_id, label)`, quoteIdent(db), LabelsTable, kLowCard.typ(c), kTime.typ(c))
}

// labelMsColumn holds the milliseconds of labelled_at in a labels table
// whose labelled_at is a DateTime (seconds).
const labelMsColumn = "labelled_at_ms"

// addLabelMsDDL adds labelled_at_ms to the labels table, after
// labelled_at as signalsDDL places its <time>_ms columns. Rows already
// stored read 0. ADD COLUMN IF NOT EXISTS does not exist on 18.16:
// migration 4 runs it only where the table lacks the column.
func addLabelMsDDL(db string) string {
	return fmt.Sprintf("ALTER TABLE %s.%s ADD COLUMN %s UInt16 AFTER labelled_at", quoteIdent(db), LabelsTable, labelMsColumn)
}

// labelsInsertSQL is the INSERT statement of a batch of labels, with
// labelled_at_ms when the table has it (labelMs).
func labelsInsertSQL(db string, labelMs bool) string {
	cols := "event_id, label, labelled_at, source"
	if labelMs {
		cols = "event_id, label, labelled_at, " + labelMsColumn + ", source"
	}
	return fmt.Sprintf("INSERT INTO %s.%s (%s)", quoteIdent(db), LabelsTable, cols)
}

// Tables are a database's tables as they are: the type of each column, by
// table and column name (system.columns).
type Tables map[string]map[string]string

// readTables reads the columns of db's tables; a database that does not
// exist has none.
func readTables(ctx context.Context, conn driver.Conn, db string) (Tables, error) {
	rows, err := conn.Query(ctx, "SELECT table, name, type FROM system.columns WHERE database = ?", db)
	if err != nil {
		return nil, fmt.Errorf("read the tables of %s: %w", db, err)
	}
	defer rows.Close()
	t := Tables{}
	for rows.Next() {
		var table, name, typ string
		if err := rows.Scan(&table, &name, &typ); err != nil {
			return nil, fmt.Errorf("read the tables of %s: %w", db, err)
		}
		if t[table] == nil {
			t[table] = map[string]string{}
		}
		t[table][name] = typ
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the tables of %s: %w", db, err)
	}
	return t, nil
}

// has reports whether table has column.
func (t Tables) has(table, column string) bool {
	_, ok := t[table][column]
	return ok
}

// labelMs reports whether the labels table has labelled_at_ms.
func (t Tables) labelMs() bool { return t.has(LabelsTable, labelMsColumn) }

// labelsLackMs reports whether the labels table stores labelled_at in
// whole seconds (DateTime: created on a server without DateTime64) without
// labelled_at_ms yet.
func (t Tables) labelsLackMs() bool {
	typ := t[LabelsTable]["labelled_at"]
	return typ != "" && !strings.HasPrefix(typ, "DateTime64") && !t.labelMs()
}

// migrationsDDL creates the table recording applied migrations.
func migrationsDDL(db string) string {
	return fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s.%s (
  version UInt32,
  name String,
  applied_at DateTime('UTC'),
  server_version String
) ENGINE = ReplacingMergeTree(applied_at)
ORDER BY version`, quoteIdent(db), MigrationsTable)
}
