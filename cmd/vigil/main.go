// Command vigil is the real-time fraud scoring engine: `vigil serve` runs
// the scoring API; the other subcommands help analysts and operators.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
)

var version = "dev"

const usage = `vigil — real-time fraud scoring

Usage:
  vigil serve [flags]            run the scoring API (no flags: embedded default on 127.0.0.1:8080);
                                 with a config file also the Kafka consumer and the ClickHouse signals
  vigil rules check|test|fmt|explain|dump
                                 validate, unit-test, format and explain rule files (vigil rules -h)
  vigil produce [flags]          send synthetic or recorded transactions to Kafka or the HTTP API
  vigil signals migrate|retention|status
                                 manage the ClickHouse schema and retention
  vigil tune [flags]             threshold and per-rule precision tables from labelled signals
  vigil replay --events FILE     backtest a ruleset on labelled history (precision, recall, changes)
  vigil keys generate --id ID --scopes score,...
                                 make an API key: prints the secret once and the keys-file entry
  vigil version                  print the version

Run 'vigil COMMAND -h' for a command's flags.

Environment (secrets come from files the config names or from these variables, never from the config
itself; a file the config names wins over its variable):
  VIGIL_API_KEY              a full-scope API key for serve when no keys file is configured (else a
                             development key generated on a loopback address)
  VIGIL_FINGERPRINT_KEY      key of derived device fingerprints, unless features.fingerprint_key_file is set
                             (the variable's name: features.fingerprint_key_env)
  VIGIL_KAFKA_PASSWORD       SASL password, unless kafka.sasl.password_file is set (name: password_env)
  VIGIL_CLICKHOUSE_PASSWORD  ClickHouse password, unless signals.password_file is set (name: password_env)
  VIGIL_KAFKA_BROKERS        default --brokers of vigil produce
`

func main() {
	os.Exit(dispatch(os.Args[1:], os.Stdout, os.Stderr))
}

// dispatch runs a subcommand and returns the exit code.
func dispatch(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return cmdServe(args[1:], stdout, stderr)
	case "rules":
		return cmdRules(args[1:], stdout, stderr)
	case "keys":
		return cmdKeys(args[1:], stdout, stderr)
	case "signals":
		return cmdSignals(args[1:], stdout, stderr)
	case "tune":
		return cmdTune(args[1:], stdout, stderr)
	case "replay":
		return cmdReplay(args[1:], stdout, stderr)
	case "produce":
		return cmdProduce(args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "vigil", versionString())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "vigil: unknown command %q\n\n%s", args[0], usage)
	return 2
}

// flagExit is the exit code after a flag parsing error: 0 for -h or
// --help (the usage was asked for and printed), 2 (usage) otherwise.
func flagExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return exitUsage
}

// parseFlags parses a command's flags (the command's name is fs's) and
// refuses a positional argument, after which flags would be ignored too.
// It returns the exit code to stop with, or -1 to go on.
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) int {
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "vigil %s: unexpected argument %q (options are flags: vigil %s -h lists them)\n", fs.Name(), fs.Arg(0), fs.Name())
		return exitUsage
	}
	return -1
}

// versionString is the version set at link time, else the commit the
// binary was built from (go build records it), else "dev".
func versionString() string {
	if version != "dev" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return version
	}
	var rev, dirty string
	for _, s := range info.Settings {
		switch {
		case s.Key == "vcs.revision" && len(s.Value) >= 12:
			rev = s.Value[:12]
		case s.Key == "vcs.modified" && s.Value == "true":
			dirty = "+modified"
		}
	}
	if rev == "" {
		return version
	}
	return "dev-" + rev + dirty
}
