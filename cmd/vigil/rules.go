package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strings"

	"github.com/vigil-fraud/vigil/features"
	"github.com/vigil-fraud/vigil/rules"
)

const rulesUsage = `Usage: vigil rules COMMAND [flags] [DIR]

Commands:
  check [DIR]                  validate a rules directory and lint it
                               (exit 0 valid, 1 invalid, 3 valid with warnings)
  test [DIR]                   run the rule tests (*_test.yaml) next to the rules
      --run REGEX              only the tests whose name (or file/name) matches
      --junit FILE             also write JUnit XML for CI
      -v                       list every test, not only failures
      --geoip FILE.mmdb        an IP geolocation database (runs the tests that require geoip)
  fmt [-w | -l] FILE|DIR...    write rule and test files in canonical form
                               (default: print; -w: rewrite; -l: list files that differ, exit 1 if any)
  explain [DIR] --event FILE   show how each rule evaluates for an event: its value and the
                               features and fields it read (FILE: one JSON event, an array or
                               JSON lines; earlier events are replayed as history)
      --all                    explain every event, not only the last
      --geoip FILE.mmdb        an IP geolocation database for the features engine
      --json                   print JSON
  dump DIR                     write the embedded starter rules and their tests to DIR to edit
      --force                  overwrite existing files

DIR defaults to the embedded starter rules. check, test and explain take
--features FILE (default: the embedded feature definitions).
`

// rulesExit codes.
const (
	exitOK       = 0
	exitInvalid  = 1
	exitUsage    = 2
	exitWarnings = 3
)

func cmdRules(args []string, stdout, stderr io.Writer) int {
	if len(args) < 1 {
		fmt.Fprint(stderr, rulesUsage)
		return exitUsage
	}
	switch args[0] {
	case "check":
		return cmdRulesCheck(args[1:], stdout, stderr)
	case "test":
		return cmdRulesTest(args[1:], stdout, stderr)
	case "fmt":
		return cmdRulesFmt(args[1:], stdout, stderr)
	case "explain":
		return cmdRulesExplain(args[1:], stdout, stderr)
	case "dump":
		return cmdRulesDump(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, rulesUsage)
		return exitOK
	}
	fmt.Fprintf(stderr, "vigil rules: unknown command %q\n\n%s", args[0], rulesUsage)
	return exitUsage
}

// parseArgs parses flags placed before, between or after positional
// arguments (vigil rules test DIR --run x).
func parseArgs(fset *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fset.Parse(args); err != nil {
			return nil, err
		}
		if fset.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fset.Arg(0))
		args = fset.Args()[1:]
	}
}

// rulesDir is a rules directory on disk or the embedded starter rules.
// loadRuleset opens the rules directory of a rules subcommand's arguments
// and compiles it against the feature definitions; on failure it prints
// the errors and returns the exit code (exitOK otherwise).
func loadRuleset(cmd string, pos []string, featuresFile, geoIP string, stderr io.Writer) (rulesDir, *featureDefs, []rules.Source, *rules.Set, int) {
	dir, err := openRulesDir(pos)
	if err != nil {
		fmt.Fprintf(stderr, "vigil rules %s: %v\n", cmd, err)
		return dir, nil, nil, nil, exitUsage
	}
	feats, err := loadFeatureDefs(featuresFile)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return dir, nil, nil, nil, exitInvalid
	}
	feats.geoIP = geoIP
	srcs, set, err := dir.loadSet(feats.schema)
	if err != nil {
		printErrors(stderr, err)
		return dir, nil, nil, nil, exitInvalid
	}
	return dir, feats, srcs, set, exitOK
}

type rulesDir struct {
	fsys    fs.FS
	dir     string
	display string
}

func openRulesDir(pos []string) (rulesDir, error) {
	switch len(pos) {
	case 0:
		return rulesDir{rules.DefaultFS, rules.DefaultDir, "embedded:rules/default"}, nil
	case 1:
		st, err := os.Stat(pos[0])
		if err != nil {
			return rulesDir{}, err
		}
		if !st.IsDir() {
			return rulesDir{}, fmt.Errorf("%s is not a directory", pos[0])
		}
		return rulesDir{os.DirFS(pos[0]), ".", strings.TrimSuffix(pos[0], "/")}, nil
	}
	return rulesDir{}, errors.New("one rules directory at most")
}

// loadSet reads and compiles a rules directory.
func (d rulesDir) loadSet(schema *features.Schema) ([]rules.Source, *rules.Set, error) {
	srcs, err := rules.ReadDir(d.fsys, d.dir, d.display)
	if err != nil {
		return nil, nil, err
	}
	set, err := rules.Compile(srcs, schema)
	return srcs, set, err
}

func (d rulesDir) loadTests() ([]*rules.TestFile, error) {
	srcs, err := rules.ReadTests(d.fsys, d.dir, d.display)
	if err != nil {
		return nil, err
	}
	var files []*rules.TestFile
	var errs []error
	for _, src := range srcs {
		f, err := rules.ParseTestFile(src.Name, src.Data)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		files = append(files, f)
	}
	return files, errors.Join(errs...)
}

func cmdRulesCheck(args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("rules check", flag.ContinueOnError)
	fset.SetOutput(stderr)
	featuresFile := fset.String("features", "", "feature definitions file (default: embedded)")
	pos, err := parseArgs(fset, args)
	if err != nil {
		return flagExit(err)
	}
	dir, _, srcs, set, code := loadRuleset("check", pos, *featuresFile, "", stderr)
	if code != exitOK {
		return code
	}
	tests, err := dir.loadTests()
	if err == nil {
		err = rules.CheckTests(set, tests) // expectations that cannot hold: a test would fail
	}
	if err != nil {
		printErrors(stderr, err)
		return exitInvalid
	}
	warnings := rules.Lint(set)
	for _, w := range warnings {
		fmt.Fprintln(stdout, w)
	}
	ncases := 0
	for _, f := range tests {
		ncases += len(f.Tests)
	}
	status := "ok"
	if len(warnings) > 0 {
		status = fmt.Sprintf("valid, %d warnings", len(warnings))
	}
	fmt.Fprintf(stdout, "%s: %d rules in %d files, %d lists, %d tests; ruleset %s: %s\n",
		dir.display, len(set.Rules), len(srcs), len(set.Lists), ncases, set.VersionString(), status)
	if len(warnings) > 0 {
		return exitWarnings
	}
	return exitOK
}

// printErrors prints one problem per line.
func printErrors(w io.Writer, err error) {
	errs := rules.Errors(err)
	for _, e := range errs {
		fmt.Fprintln(w, e)
	}
	if len(errs) > 1 {
		fmt.Fprintf(w, "%d problems\n", len(errs))
	}
}

// featureDefs are parsed feature definitions, from which each rule test
// builds a fresh features engine.
type featureDefs struct {
	file   *features.File
	schema *features.Schema
	geoIP  string // GeoIP database path, if any
}

func loadFeatureDefs(path string) (*featureDefs, error) {
	f, err := readFeatureFile(path)
	if err != nil {
		return nil, err
	}
	e, err := features.New(f, features.Options{FingerprintKey: testFingerprintKey})
	if err != nil {
		return nil, err
	}
	defer e.Close()
	return &featureDefs{file: f, schema: e.Schema()}, nil
}

// readFeatureFile parses a feature definitions file, or the embedded
// default when path is empty.
func readFeatureFile(path string) (*features.File, error) {
	name, data, err := readFeatureData(path)
	if err != nil {
		return nil, err
	}
	return features.Parse(name, data)
}

// readFeatureData reads a feature definitions file, or the embedded
// default when path is empty: its name (for errors) and content.
func readFeatureData(path string) (string, []byte, error) {
	if path == "" {
		return features.DefaultFileName, features.DefaultFile, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", nil, fmt.Errorf("features: %w", err)
	}
	return path, data, nil
}

// testFingerprintKey derives device fingerprints in rule tests and
// explain: fixed, so that results do not change from run to run.
var testFingerprintKey = []byte("vigil rules test fingerprint key")

// newEngine builds a fresh features engine with no history, for replaying
// rule tests and explain input.
func (d *featureDefs) newEngine() (rules.Observer, error) {
	return features.New(d.file, features.Options{
		FingerprintKey: testFingerprintKey,
		Labels:         true, // rule tests may feed labels
		GeoIPDatabase:  d.geoIP,
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
}
