package main

import (
	"fmt"
	"io"
	"os"

	"github.com/vigil-fraud/vigil/features"
	"github.com/vigil-fraud/vigil/rules"
)

func cmdRules(args []string, stdout, stderr io.Writer) int {
	if len(args) < 1 {
		fmt.Fprintln(stderr, "usage: vigil rules check DIR")
		return 2
	}
	switch args[0] {
	case "check":
		if len(args) != 2 {
			fmt.Fprintln(stderr, "usage: vigil rules check DIR")
			return 2
		}
		dir := args[1]
		feats, err := loadFeatures("")
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		srcs, err := rules.ReadDir(os.DirFS(dir), ".", dir)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		s, err := rules.Compile(srcs, feats.Schema())
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		fmt.Fprintf(stdout, "%s: %d rules, ruleset %s: ok\n", dir, len(s.Rules), s.VersionString())
		return 0
	}
	fmt.Fprintf(stderr, "vigil rules: unknown command %q\n", args[0])
	return 2
}

// loadFeatures builds the features engine from a definitions file, or the
// embedded default when path is empty.
func loadFeatures(path string) (*features.Engine, error) {
	name, data := features.DefaultFileName, features.DefaultFile
	if path != "" {
		var err error
		if data, err = os.ReadFile(path); err != nil {
			return nil, fmt.Errorf("features: %w", err)
		}
		name = path
	}
	f, err := features.Parse(name, data)
	if err != nil {
		return nil, err
	}
	return features.New(f)
}
