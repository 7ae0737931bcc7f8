package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/vigil-fraud/vigil/signals"
)

const signalsUsage = `usage:
  vigil signals migrate   [--config FILE] [--addr HOST:PORT] [--database DB]
        create the database, tables and analyst views (idempotent)
  vigil signals retention [--config FILE] [--addr HOST:PORT] [--database DB] [--days N]
        enforce the retention policy now (drop expired partitions, set TTL)
  vigil signals status    [--config FILE] [--addr HOST:PORT] [--database DB]
        print the server version, its capabilities and the schema version
The ClickHouse settings come from the signals: section of the config file
(docs/signals.md); the password from signals.password_file or the
environment variable named by signals.password_env (VIGIL_CLICKHOUSE_PASSWORD).
`

// signalsFlags are the connection flags shared by signals and tune.
type signalsFlags struct {
	config, addr, database *string
}

func addSignalsFlags(fs *flag.FlagSet) signalsFlags {
	return signalsFlags{
		config:   fs.String("config", "", "vigil config file whose signals: section configures ClickHouse"),
		addr:     fs.String("addr", "", "ClickHouse native address host:port (overrides signals.addr)"),
		database: fs.String("database", "", "database (overrides signals.database)"),
	}
}

// load reads the signals config with the flags' overrides.
func (f signalsFlags) load() (signals.Config, error) {
	c, err := loadConfig(*f.config)
	if err != nil {
		return c.Signals, err
	}
	cfg := c.Signals
	if *f.addr != "" {
		cfg.Addr = *f.addr
	}
	if *f.database != "" {
		cfg.Database = *f.database
	}
	return cfg, cfg.Validate()
}

func cmdSignals(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, signalsUsage)
		return 2
	}
	sub := args[0]
	fs := flag.NewFlagSet("signals "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	sf := addSignalsFlags(fs)
	days := fs.Int("days", -1, "retention in days (retention only; default: signals.retention.days)")
	switch sub {
	case "migrate", "retention", "status":
	case "help", "-h", "--help":
		fmt.Fprint(stdout, signalsUsage)
		return 0
	default:
		fmt.Fprintf(stderr, "vigil signals: unknown command %q\n%s", sub, signalsUsage)
		return 2
	}
	if code := parseFlags(fs, args[1:], stderr); code >= 0 {
		return code
	}
	daysSet := false
	fs.Visit(func(f *flag.Flag) { daysSet = daysSet || f.Name == "days" })
	switch {
	case daysSet && sub != "retention":
		fmt.Fprintf(stderr, "vigil signals %s: --days is for retention only\n", sub)
		return exitUsage
	case daysSet && *days < 0:
		fmt.Fprintf(stderr, "vigil signals retention: --days %d: want 0 (keep forever) or more\n", *days)
		return exitUsage
	}
	cfg, err := sf.load()
	if err != nil {
		fmt.Fprintln(stderr, "vigil signals:", err)
		return 1
	}
	conn, err := signals.Open(cfg)
	if err != nil {
		fmt.Fprintln(stderr, "vigil signals:", err)
		return 1
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	switch sub {
	case "migrate":
		log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		res, err := signals.Migrate(ctx, conn, cfg.Database, log)
		if err != nil {
			fmt.Fprintln(stderr, "vigil signals migrate:", err)
			return 1
		}
		c := res.Capabilities
		fmt.Fprintf(stdout, "ClickHouse %s (LowCardinality %s, DateTime64 %s, TTL %s)\n", c.Version, yesNo(c.LowCardinality), yesNo(c.DateTime64), yesNo(c.TTL))
		if len(res.Applied) == 0 {
			fmt.Fprintf(stdout, "database %s is up to date at schema version %d\n", cfg.Database, res.Current)
		} else {
			fmt.Fprintf(stdout, "database %s: applied migrations %v; schema version %d\n", cfg.Database, res.Applied, res.Current)
		}
	case "retention":
		n := cfg.Retention.Days
		if daysSet {
			n = *days
		}
		if n == 0 {
			fmt.Fprintln(stdout, "retention: 0 days: data is kept forever")
			return 0
		}
		res, err := signals.EnforceRetention(ctx, conn, cfg.Database, n, time.Now())
		if err != nil {
			fmt.Fprintln(stderr, "vigil signals retention:", err)
			return 1
		}
		fmt.Fprintf(stdout, "retention %d days: dropped partitions %v; TTL set: %s\n", n, res.Dropped, yesNo(res.TTLSet))
	case "status":
		v, err := signals.ServerVersion(ctx, conn)
		if err != nil {
			fmt.Fprintln(stderr, "vigil signals status:", err)
			return 1
		}
		c := signals.CapabilitiesOf(v)
		fmt.Fprintf(stdout, "ClickHouse %s at %s (LowCardinality %s, DateTime64 %s, TTL %s)\n", v, cfg.Addr, yesNo(c.LowCardinality), yesNo(c.DateTime64), yesNo(c.TTL))
		sv, err := signals.SchemaVersion(ctx, conn, cfg.Database)
		if err != nil {
			fmt.Fprintf(stdout, "database %s: no schema (run vigil signals migrate)\n", cfg.Database)
			return 1
		}
		fmt.Fprintf(stdout, "database %s: schema version %d (latest %d)\n", cfg.Database, sv, signals.LatestVersion())
		if sv < signals.LatestVersion() {
			return 1
		}
	}
	return 0
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
