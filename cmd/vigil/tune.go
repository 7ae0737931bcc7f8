package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/vigil-fraud/vigil/rules"
	"github.com/vigil-fraud/vigil/signals"
)

const tuneUsage = `usage: vigil tune [--since 7d] [--until TIME] [--ruleset latest|all|VERSION]
                  [--rules DIR [--features FILE]] [--step 5] [--json]
                  [--config FILE] [--addr HOST:PORT] [--database DB]
Prints, from the signals in ClickHouse, the threshold-tuning table (for each
candidate threshold: how many decisions would be stepped up or paused and
what share of labelled fraud they include) and per-rule precision and
recall. With --rules, a candidate ruleset is re-evaluated over the stored
feature values instead (features and event fields that signals do not store
are missing; see docs/signals.md).
`

func cmdTune(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tune", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, tuneUsage); fs.PrintDefaults() }
	sf := addSignalsFlags(fs)
	since := fs.String("since", "7d", "window length before --until: 7d, 36h, 90m")
	until := fs.String("until", "now", "end of the window (event time): RFC 3339 or now")
	ruleset := fs.String("ruleset", signals.RulesetLatest, "signals of which ruleset: latest (of the window), all, or a version label@hash")
	rulesDir := fs.String("rules", "", "candidate rules directory to re-evaluate over the stored signals")
	featuresFile := fs.String("features", "", "feature definitions giving feature types for --rules (default: the embedded ones)")
	step := fs.Int("step", 5, "print every STEP-th threshold")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if code := parseFlags(fs, args, stderr); code >= 0 {
		return code
	}
	window, err := parseWindow(*since)
	if err != nil {
		fmt.Fprintln(stderr, "vigil tune: --since:", err)
		return 2
	}
	end := time.Now().UTC()
	if *until != "now" {
		if end, err = time.Parse(time.RFC3339, *until); err != nil {
			fmt.Fprintln(stderr, "vigil tune: --until:", err)
			return 2
		}
	}
	cfg, err := sf.load()
	if err != nil {
		fmt.Fprintln(stderr, "vigil tune:", err)
		return 1
	}
	conn, err := signals.Open(cfg)
	if err != nil {
		fmt.Fprintln(stderr, "vigil tune:", err)
		return 1
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	opt := signals.TuneOptions{Since: end.Add(-window), Until: end, Ruleset: *ruleset}
	var rep *signals.TuneReport
	if *rulesDir == "" {
		rep, err = signals.Tune(ctx, conn, cfg.Database, opt)
	} else {
		var set *rules.Set
		if set, err = compileCandidate(ctx, *rulesDir, *featuresFile, conn, cfg.Database, opt); err == nil {
			rep, err = signals.TuneCandidate(ctx, conn, cfg.Database, set, opt)
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "vigil tune: "+strings.TrimPrefix(err.Error(), "tune: ")+tuneHint(err, cfg))
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintln(stderr, "vigil tune:", err)
			return 1
		}
		return 0
	}
	if err := rep.WriteText(stdout, *step); err != nil {
		fmt.Fprintln(stderr, "vigil tune:", err)
		return 1
	}
	return 0
}

// compileCandidate compiles a rules directory against the schema of the
// feature definitions plus the features stored in the window.
func compileCandidate(ctx context.Context, dir, featuresFile string, conn driver.Conn, db string, opt signals.TuneOptions) (*rules.Set, error) {
	fe, err := loadFeatureDefs(featuresFile)
	if err != nil {
		return nil, err
	}
	nums, strs, err := signals.StoredFeatures(ctx, conn, db, opt)
	if err != nil {
		return nil, err
	}
	schema, err := signals.CandidateSchema(fe.schema, nums, strs)
	if err != nil {
		return nil, err
	}
	srcs, err := rules.ReadDir(os.DirFS(dir), ".", dir)
	if err != nil {
		return nil, err
	}
	set, err := rules.Compile(srcs, schema)
	if err != nil {
		return nil, fmt.Errorf("rules:\n%w", err)
	}
	return set, nil
}

// parseWindow parses 7d, 36h, 90m (and any Go duration).
func parseWindow(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days <= 0 {
			return 0, fmt.Errorf("%q is not a number of days", s)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%q is not a positive duration like 7d or 36h", s)
	}
	return d, nil
}

// tuneHint says what to do about the usual failures: ClickHouse not where
// the flags say, or no schema in the database yet.
func tuneHint(err error, cfg signals.Config) string {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "code: 81"), strings.Contains(msg, "code: 60"): // unknown database or table
		return fmt.Sprintf("\n(no signals in database %s on %s: is it the one vigil serve writes to? set --config or --database; a new database needs vigil signals migrate)", cfg.Database, cfg.Addr)
	case strings.Contains(msg, "connection refused"), strings.Contains(msg, "dial tcp"), strings.Contains(msg, "i/o timeout"):
		return fmt.Sprintf("\n(no ClickHouse answers at %s: set --config FILE (its signals: section) or --addr HOST:PORT)", cfg.Addr)
	}
	return ""
}
