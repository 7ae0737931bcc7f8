package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"time"

	"github.com/vigil-fraud/vigil/rules"
)

// cmdRulesTest runs `vigil rules test`: each case replays its transactions
// through a fresh features engine and checks the decisions.
func cmdRulesTest(args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("rules test", flag.ContinueOnError)
	fset.SetOutput(stderr)
	featuresFile := fset.String("features", "", "feature definitions file (default: embedded)")
	run := fset.String("run", "", "run only the tests whose name or file/name matches this regular expression")
	junit := fset.String("junit", "", "write JUnit XML results to this file")
	verbose := fset.Bool("v", false, "list every test, not only failures")
	geoip := fset.String("geoip", "", "MaxMind-format IP geolocation database for the features engine (runs the tests that require geoip)")
	pos, err := parseArgs(fset, args)
	if err != nil {
		return flagExit(err)
	}
	var filter *regexp.Regexp
	if *run != "" {
		if filter, err = regexp.Compile(*run); err != nil {
			fmt.Fprintln(stderr, "vigil rules test: --run:", err)
			return exitUsage
		}
	}
	dir, feats, _, set, code := loadRuleset("test", pos, *featuresFile, *geoip, stderr)
	if code != exitOK {
		return code
	}
	tests, err := dir.loadTests()
	if err != nil {
		printErrors(stderr, err)
		return exitInvalid
	}
	start := time.Now()
	if _, err := feats.newEngine(); err != nil { // a bad --geoip file fails here, once
		fmt.Fprintln(stderr, "vigil rules test:", err)
		return exitInvalid
	}
	results := rules.RunTests(set, feats.newEngine, tests, rules.TestOptions{Filter: filter, GeoIP: *geoip != ""})
	passed, failed, skipped := 0, 0, 0
	for _, r := range results {
		switch {
		case r.Skipped != "":
			skipped++
			if *verbose {
				fmt.Fprintf(stdout, "--- SKIP: %s/%s: %s\n", r.File, r.Name, r.Skipped)
			}
		case len(r.Failures) > 0:
			failed++
			fmt.Fprintf(stdout, "--- FAIL: %s/%s (%.3fs)\n", r.File, r.Name, r.Duration.Seconds())
			for _, f := range r.Failures {
				fmt.Fprintf(stdout, "    %s\n", f)
			}
		default:
			passed++
			if *verbose {
				fmt.Fprintf(stdout, "--- PASS: %s/%s (%.3fs)\n", r.File, r.Name, r.Duration.Seconds())
			}
		}
	}
	if *junit != "" {
		f, err := os.Create(*junit)
		if err == nil {
			err = rules.WriteJUnit(f, results)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			fmt.Fprintln(stderr, "vigil rules test: --junit:", err)
			return exitInvalid
		}
	}
	status := "ok"
	if failed > 0 {
		status = "FAIL"
	}
	fmt.Fprintf(stdout, "%s\t%s: %d passed, %d failed, %d skipped; ruleset %s (%.3fs)\n",
		status, dir.display, passed, failed, skipped, set.VersionString(), time.Since(start).Seconds())
	if failed > 0 {
		return exitInvalid
	}
	if len(results) == 0 && filter != nil {
		fmt.Fprintf(stderr, "vigil rules test: no test matches --run %q\n", *run)
	}
	return exitOK
}
