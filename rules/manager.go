package rules

import (
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"

	"github.com/vigil-fraud/vigil/features"
)

// ReadDir reads the rule files (*.yaml, *.yml, tests excluded) of a
// directory of fsys. Sources are named display/file (display defaults to
// dir), the name errors and audit records show.
func ReadDir(fsys fs.FS, dir, display string) ([]Source, error) {
	if display == "" {
		display = dir
	}
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("reading rules: %w", err)
	}
	var srcs []Source
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() || !(strings.HasSuffix(n, ".yaml") || strings.HasSuffix(n, ".yml")) || IsTestFile(n) {
			continue
		}
		data, err := fs.ReadFile(fsys, path.Join(dir, n))
		if err != nil {
			return nil, fmt.Errorf("reading rules: %w", err)
		}
		srcs = append(srcs, Source{Name: filepath.Join(display, n), Data: data})
	}
	sort.Slice(srcs, func(i, j int) bool { return srcs[i].Name < srcs[j].Name })
	if len(srcs) == 0 {
		return nil, fmt.Errorf("reading rules: no rule files (*.yaml) in %s", display)
	}
	return srcs, nil
}

// IsTestFile reports whether a file name is a rule test file
// (name_test.yaml).
func IsTestFile(name string) bool {
	return strings.HasSuffix(name, "_test.yaml") || strings.HasSuffix(name, "_test.yml")
}

// Manager holds the live ruleset and swaps it atomically on reload; readers
// never block.
type Manager struct {
	cur atomic.Pointer[Set]
}

// NewManager starts with a compiled set.
func NewManager(s *Set) *Manager {
	m := &Manager{}
	m.cur.Store(s)
	return m
}

// Current returns the live set.
func (m *Manager) Current() *Set { return m.cur.Load() }

// Load compiles srcs and makes them live only if all of them are valid; on
// error the running set stays.
func (m *Manager) Load(srcs []Source, schema *features.Schema) (old, cur *Set, err error) {
	s, err := Compile(srcs, schema)
	if err != nil {
		return m.Current(), m.Current(), err
	}
	return m.cur.Swap(s), s, nil
}
