package signals

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Migration is one versioned schema change. Its statements are each
// idempotent (IF NOT EXISTS, DROP then CREATE for views, a column added
// only where the tables lack it), so that a migration interrupted half-way
// is simply run again.
type Migration struct {
	Version int
	Name    string
	// Statements returns the DDL for a database, a server's capabilities
	// and the database's tables as they are, one statement each
	// (ClickHouse refuses several in one request).
	Statements func(db string, c Capabilities, t Tables) []string
}

// Migrations are vigil's schema migrations, in order. Never edit a
// released one: add a new version.
var Migrations = []Migration{
	{1, "signals table", func(db string, c Capabilities, _ Tables) []string { return []string{signalsDDL(db, c)} }},
	{2, "labels table", func(db string, c Capabilities, _ Tables) []string { return []string{labelsDDL(db, c)} }},
	{3, "analyst views", func(db string, _ Capabilities, t Tables) []string { return viewsDDL(db, t.labelMs()) }},
	// A labels table created without DateTime64 (labelled_at in whole
	// seconds) gets labelled_at_ms, and the views order labels by both.
	{4, "labels labelled_at_ms", func(db string, _ Capabilities, t Tables) []string {
		var out []string
		ms := t.labelMs()
		if t.labelsLackMs() {
			out, ms = append(out, addLabelMsDDL(db)), true
		}
		return append(out, viewsDDL(db, ms)...)
	}},
}

// MigrateResult says what Migrate did.
type MigrateResult struct {
	Capabilities Capabilities
	Applied      []int // versions applied now
	Current      int   // the schema version after the run
}

// Migrate creates the database if needed and applies the migrations not
// yet recorded in its schema_migrations table. Running it again applies
// nothing. Concurrent runs are safe: every statement is idempotent and the
// migrations table keeps one row per version.
func Migrate(ctx context.Context, conn driver.Conn, db string, log *slog.Logger) (MigrateResult, error) {
	return migrate(ctx, conn, db, log, Migrations)
}

// migrate applies the migrations of ms that db lacks.
func migrate(ctx context.Context, conn driver.Conn, db string, log *slog.Logger, ms []Migration) (MigrateResult, error) {
	var res MigrateResult
	if !validIdent(db) {
		return res, fmt.Errorf("migrate: invalid database name %q", db)
	}
	version, err := ServerVersion(ctx, conn)
	if err != nil {
		return res, err
	}
	caps := CapabilitiesOf(version)
	res.Capabilities = caps
	// DDL goes through Exec (Query on DDL drops the connection on 18.16).
	if err := conn.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+quoteIdent(db)); err != nil {
		return res, fmt.Errorf("migrate: create database %s: %w", db, err)
	}
	if err := conn.Exec(ctx, migrationsDDL(db)); err != nil {
		return res, fmt.Errorf("migrate: create %s: %w", MigrationsTable, err)
	}
	applied, err := appliedMigrations(ctx, conn, db)
	if err != nil {
		return res, err
	}
	for _, m := range ms {
		if applied[m.Version] {
			res.Current = m.Version
			continue
		}
		start := time.Now()
		if err := apply(ctx, conn, db, caps, m); err != nil {
			return res, fmt.Errorf("migrate: version %d (%s): %w", m.Version, m.Name, err)
		}
		if err := recordMigration(ctx, conn, db, m, version); err != nil {
			return res, err
		}
		res.Applied = append(res.Applied, m.Version)
		res.Current = m.Version
		if log != nil {
			log.Info("signals migration applied", "version", m.Version, "name", m.Name, "database", db, "clickhouse", version, "duration", time.Since(start))
		}
	}
	return res, nil
}

// apply runs the statements of m for the tables as they are. A failure is
// retried once, for the tables as they are then: another vigil migrating at
// the same time may have made the change meanwhile (added the column m
// adds, re-created a view).
func apply(ctx context.Context, conn driver.Conn, db string, caps Capabilities, m Migration) error {
	err := applyOnce(ctx, conn, db, caps, m)
	if err != nil && ctx.Err() == nil {
		err = applyOnce(ctx, conn, db, caps, m)
	}
	return err
}

func applyOnce(ctx context.Context, conn driver.Conn, db string, caps Capabilities, m Migration) error {
	t, err := readTables(ctx, conn, db)
	if err != nil {
		return err
	}
	for _, stmt := range m.Statements(db, caps, t) {
		if err := conn.Exec(ctx, stmt); err != nil {
			return err
		}
	}
	return nil
}

// appliedMigrations reads the versions recorded in schema_migrations.
func appliedMigrations(ctx context.Context, conn driver.Conn, db string) (map[int]bool, error) {
	rows, err := conn.Query(ctx, fmt.Sprintf("SELECT DISTINCT version FROM %s.%s", quoteIdent(db), MigrationsTable))
	if err != nil {
		return nil, fmt.Errorf("migrate: read %s: %w", MigrationsTable, err)
	}
	defer rows.Close()
	out := map[int]bool{}
	for rows.Next() {
		var v uint32
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("migrate: read %s: %w", MigrationsTable, err)
		}
		out[int(v)] = true
	}
	return out, rows.Err()
}

// recordMigration inserts a migration's row (a batch: INSERT ... VALUES
// through Exec hangs on 18.16).
func recordMigration(ctx context.Context, conn driver.Conn, db string, m Migration, server string) error {
	b, err := conn.PrepareBatch(ctx, fmt.Sprintf("INSERT INTO %s.%s (version, name, applied_at, server_version)", quoteIdent(db), MigrationsTable))
	if err != nil {
		return fmt.Errorf("migrate: record version %d: %w", m.Version, err)
	}
	if err := b.Append(uint32(m.Version), m.Name, time.Now().UTC(), server); err != nil {
		b.Abort()
		return fmt.Errorf("migrate: record version %d: %w", m.Version, err)
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("migrate: record version %d: %w", m.Version, err)
	}
	return nil
}

// SchemaVersion returns the highest migration recorded in db; 0 when none.
func SchemaVersion(ctx context.Context, conn driver.Conn, db string) (int, error) {
	applied, err := appliedMigrations(ctx, conn, db)
	if err != nil {
		return 0, err
	}
	max := 0
	for v := range applied {
		if v > max {
			max = v
		}
	}
	return max, nil
}

// LatestVersion is the version of the last migration.
func LatestVersion() int { return Migrations[len(Migrations)-1].Version }
