package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/vigil-fraud/vigil/rules"
)

// cmdRulesFmt runs `vigil rules fmt`: FILE alone prints the canonical form;
// a DIR (or several files) lists the files that differ; -w rewrites them;
// -l lists them and exits 1 if any differ (for CI).
func cmdRulesFmt(args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("rules fmt", flag.ContinueOnError)
	fset.SetOutput(stderr)
	write := fset.Bool("w", false, "rewrite the files that are not in canonical form")
	list := fset.Bool("l", false, "list the files that are not in canonical form; exit 1 if any")
	pos, err := parseArgs(fset, args)
	if err != nil {
		return flagExit(err)
	}
	if len(pos) == 0 {
		fmt.Fprintln(stderr, "usage: vigil rules fmt [-w | -l] FILE|DIR...")
		return exitUsage
	}
	var files []string
	single := len(pos) == 1
	for _, p := range pos {
		st, err := os.Stat(p)
		if err != nil {
			fmt.Fprintln(stderr, "vigil rules fmt:", err)
			return exitInvalid
		}
		if !st.IsDir() {
			files = append(files, p)
			continue
		}
		single = false
		entries, err := os.ReadDir(p)
		if err != nil {
			fmt.Fprintln(stderr, "vigil rules fmt:", err)
			return exitInvalid
		}
		for _, e := range entries {
			n := e.Name()
			if !e.IsDir() && !strings.HasPrefix(n, ".") && (strings.HasSuffix(n, ".yaml") || strings.HasSuffix(n, ".yml")) {
				files = append(files, filepath.Join(p, n))
			}
		}
	}
	sort.Strings(files)
	code, differ := exitOK, 0
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			fmt.Fprintln(stderr, "vigil rules fmt:", err)
			code = exitInvalid
			continue
		}
		out, err := rules.Format(path, data)
		if err != nil {
			printErrors(stderr, err)
			code = exitInvalid
			continue
		}
		changed := !bytes.Equal(out, data)
		switch {
		case *write:
			if changed {
				if err := writeFileAtomic(path, out); err != nil {
					fmt.Fprintln(stderr, "vigil rules fmt:", err)
					code = exitInvalid
					continue
				}
				fmt.Fprintln(stdout, path)
			}
		case *list || !single:
			if changed {
				differ++
				fmt.Fprintln(stdout, path)
			}
		default:
			stdout.Write(out)
		}
	}
	if differ > 0 && code == exitOK {
		if !*list {
			fmt.Fprintln(stderr, "vigil rules fmt: these files are not in canonical form; rewrite them with -w")
		}
		code = exitInvalid
	}
	return code
}

// writeFileAtomic replaces a file's content, keeping its permissions.
func writeFileAtomic(path string, data []byte) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(st.Mode().Perm()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
