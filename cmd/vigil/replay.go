package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"github.com/vigil-fraud/vigil/engine/replay"
	"github.com/vigil-fraud/vigil/features"
	"github.com/vigil-fraud/vigil/rules"
)

const replayUsage = `usage: vigil replay --events FILE [--rules DIR] [--labels FILE] [--baseline DIR]
                    [--format auto|jsonl|csv|fdh] [--map COL=field,...] [--map-file FILE]
                    [--currency EUR] [--label-delay 7d] [--features FILE] [--json]
Replays a history of transactions in event-time order through a fresh
features engine, feeding labels in as they become known, and evaluates a
ruleset (default: the embedded starter rules): decision counts, per-rule
hits, precision and recall, precision/recall/F1 of pause and of step_up or
pause; with --baseline, the transactions whose decision changes.
FILE may be gzipped (.gz). See docs/replay.md.
`

func cmdReplay(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, replayUsage); fs.PrintDefaults() }
	rulesPath := fs.String("rules", "", "rules directory (default: the embedded starter rules)")
	baselinePath := fs.String("baseline", "", "baseline rules directory to compare with (\"embedded\": the starter rules)")
	featuresFile := fs.String("features", "", "feature definitions file (default: embedded)")
	eventsFile := fs.String("events", "", "transactions: JSON lines (v1 events), CSV, or the FDH layout; .gz is read directly (required)")
	format := fs.String("format", "auto", "events format: auto (by extension: .csv is csv, else jsonl), jsonl, csv or fdh")
	labelsFile := fs.String("labels", "", "labels: JSON lines {event_id, label, known_at} or CSV (event_id,label,known_at)")
	delay := fs.String("label-delay", "7d", "when a label without known_at becomes known, after its transaction")
	mapping := fs.String("map", "", "CSV column mapping: COLUMN=field,... (field: an event path, amount.major, label, label.known_at, group or -)")
	mappingFile := fs.String("map-file", "", "CSV column mapping file: one COLUMN: field a line")
	currency := fs.String("currency", "", "currency of CSV rows without a currency column")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	workers := fs.Int("workers", 0, "rule evaluation goroutines (default: every core)")
	changes := fs.Int("changes", 20, "decision changes listed with --baseline (all are counted)")
	quiet := fs.Bool("quiet", false, "no progress on stderr")
	geoip := fs.String("geoip", "", "MaxMind-format IP geolocation database for the features engine")
	if _, err := parseArgs(fs, args); err != nil {
		return flagExit(err)
	}
	if fs.NArg() > 0 || *eventsFile == "" {
		if *eventsFile == "" {
			fmt.Fprintln(stderr, "vigil replay: --events FILE is required")
		}
		fs.Usage()
		return exitUsage
	}
	labelDelay, err := features.ParseDuration(*delay)
	if err != nil {
		fmt.Fprintln(stderr, "vigil replay: --label-delay:", err)
		return exitUsage
	}
	fail := func(err error) int {
		fmt.Fprintln(stderr, "vigil replay:", err)
		return exitInvalid
	}
	feats, err := loadFeatureDefs(*featuresFile)
	if err != nil {
		return fail(err)
	}
	set, err := loadReplaySet(*rulesPath, feats.schema)
	if err != nil {
		printErrors(stderr, err)
		return exitInvalid
	}
	var baseline *rules.Set
	if *baselinePath != "" {
		if baseline, err = loadReplaySet(*baselinePath, feats.schema); err != nil {
			printErrors(stderr, err)
			return exitInvalid
		}
	}
	m := replay.Mapping{Currency: strings.ToUpper(*currency)}
	if *mappingFile != "" || *mapping != "" {
		text := *mapping
		if *mappingFile != "" {
			data, err := os.ReadFile(*mappingFile)
			if err != nil {
				return fail(err)
			}
			text = string(data) + "\n" + text
		}
		if m.Columns, err = replay.ParseMapping(text); err != nil {
			return fail(err)
		}
	}
	start := time.Now()
	ds, err := readDataset(*eventsFile, *format, m)
	if err != nil {
		return fail(fmt.Errorf("%s: %w", *eventsFile, err))
	}
	if *labelsFile != "" {
		f, name, err := replay.Open(*labelsFile)
		if err != nil {
			return fail(err)
		}
		ls, err := replay.ReadLabels(name, f)
		f.Close()
		if err != nil {
			return fail(fmt.Errorf("%s: %w", *labelsFile, err))
		}
		ds.Labels = append(ds.Labels, ls...)
	}
	if !*quiet {
		fmt.Fprintf(stderr, "vigil replay: read %d transactions and %d labels in %.1fs\n", len(ds.Transactions), len(ds.Labels), time.Since(start).Seconds())
	}
	cfg := replay.Config{
		Features: feats.file,
		FeatureOptions: features.Options{FingerprintKey: testFingerprintKey, GeoIPDatabase: *geoip,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))},
		Rules: set, Baseline: baseline, LabelDelay: labelDelay, Workers: *workers, MaxChanges: *changes,
	}
	if *changes <= 0 {
		cfg.MaxChanges = -1
	}
	if !*quiet {
		cfg.Progress = func(p replay.Progress) {
			fmt.Fprintf(stderr, "vigil replay: %d/%d events (%.0f%%), %.0f events/s, ETA %s\n",
				p.Done, p.Total, 100*float64(p.Done)/float64(max(p.Total, 1)), p.Rate(), p.ETA().Round(time.Second))
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	rep, err := replay.Run(ctx, cfg, ds)
	if err != nil {
		return fail(err)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return fail(err)
		}
		return exitOK
	}
	if err := rep.WriteTable(stdout); err != nil {
		return fail(err)
	}
	return exitOK
}

// loadReplaySet compiles a rules directory ("" or "embedded": the starter
// rules).
func loadReplaySet(path string, schema *features.Schema) (*rules.Set, error) {
	var pos []string
	if path != "" && path != "embedded" {
		pos = []string{path}
	}
	dir, err := openRulesDir(pos)
	if err != nil {
		return nil, err
	}
	_, set, err := dir.loadSet(schema)
	return set, err
}

// readDataset reads the events file in its format.
func readDataset(path, format string, m replay.Mapping) (*replay.Dataset, error) {
	f, name, err := replay.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if format == "auto" {
		format = "jsonl"
		if strings.EqualFold(filepath.Ext(name), ".csv") {
			format = "csv"
		}
	}
	if format != "csv" && m.Columns != nil {
		return nil, fmt.Errorf("--map and --map-file apply to --format csv only")
	}
	switch format {
	case "jsonl":
		txs, err := replay.ReadJSONL(f)
		if err != nil {
			return nil, err
		}
		return &replay.Dataset{Transactions: txs}, nil
	case "csv":
		return replay.ReadCSV(f, m)
	case "fdh":
		return replay.ReadFDH(f)
	}
	return nil, fmt.Errorf("unknown --format %q: want auto, jsonl, csv or fdh", format)
}
