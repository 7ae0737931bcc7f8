package signals

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Migration is one versioned schema change. Its statements are each
// idempotent (IF NOT EXISTS, or DROP then CREATE for views), so that a
// migration interrupted half-way is simply run again.
type Migration struct {
	Version int
	Name    string
	// Statements returns the DDL for a database and a server's
	// capabilities, one statement each (ClickHouse refuses several in one
	// request).
	Statements func(db string, c Capabilities) []string
}

// Migrations are vigil's schema migrations, in order. Never edit a
// released one: add a new version.
var Migrations = []Migration{
	{1, "signals table", func(db string, c Capabilities) []string { return []string{signalsDDL(db, c)} }},
	{2, "labels table", func(db string, c Capabilities) []string { return []string{labelsDDL(db, c)} }},
	{3, "analyst views", func(db string, c Capabilities) []string {
		var out []string
		for _, v := range views {
			out = append(out, viewDDL(db, v)...)
		}
		return out
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
	for _, m := range Migrations {
		if applied[m.Version] {
			res.Current = m.Version
			continue
		}
		start := time.Now()
		for _, stmt := range m.Statements(db, caps) {
			if err := conn.Exec(ctx, stmt); err != nil {
				return res, fmt.Errorf("migrate: version %d (%s): %w", m.Version, m.Name, err)
			}
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
