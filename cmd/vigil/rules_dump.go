package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"

	"github.com/vigil-fraud/vigil/rules"
)

// cmdRulesDump writes the embedded starter rules and their tests to a
// directory, as a starting point to edit.
func cmdRulesDump(args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("rules dump", flag.ContinueOnError)
	fset.SetOutput(stderr)
	force := fset.Bool("force", false, "overwrite existing files")
	pos, err := parseArgs(fset, args)
	if err != nil {
		return flagExit(err)
	}
	if len(pos) != 1 {
		fmt.Fprintln(stderr, "usage: vigil rules dump [--force] DIR")
		return exitUsage
	}
	dir := pos[0]
	entries, err := fs.ReadDir(rules.DefaultFS, rules.DefaultDir)
	if err != nil {
		fmt.Fprintln(stderr, "vigil rules dump:", err)
		return exitInvalid
	}
	if !*force {
		for _, e := range entries {
			if _, err := os.Stat(filepath.Join(dir, e.Name())); err == nil {
				fmt.Fprintf(stderr, "vigil rules dump: %s exists; use --force to overwrite\n", filepath.Join(dir, e.Name()))
				return exitInvalid
			} else if !errors.Is(err, fs.ErrNotExist) {
				fmt.Fprintln(stderr, "vigil rules dump:", err)
				return exitInvalid
			}
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintln(stderr, "vigil rules dump:", err)
		return exitInvalid
	}
	for _, e := range entries {
		data, err := fs.ReadFile(rules.DefaultFS, path.Join(rules.DefaultDir, e.Name()))
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, e.Name()), data, 0o644)
		}
		if err != nil {
			fmt.Fprintln(stderr, "vigil rules dump:", err)
			return exitInvalid
		}
		fmt.Fprintln(stdout, filepath.Join(dir, e.Name()))
	}
	fmt.Fprintf(stdout, "Edit them, then: vigil rules check %s && vigil rules test %s; serve them with vigil serve --rules %s\n", dir, dir, dir)
	return exitOK
}
