package rules

import (
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/vigil-fraud/vigil/features"
)

// ReadDir reads the rule files of a directory of fsys: *.yaml and *.yml,
// not tests (*_test.yaml), not hidden files, not subdirectories. Sources
// are named display/file (display defaults to dir), the name errors and
// audit records show.
func ReadDir(fsys fs.FS, dir, display string) ([]Source, error) {
	srcs, err := readDir(fsys, dir, display, func(n string) bool { return !IsTestFile(n) })
	if err == nil && len(srcs) == 0 {
		if display == "" {
			display = dir
		}
		err = fmt.Errorf("reading rules: no rule files (*.yaml) in %s", display)
	}
	return srcs, err
}

// ReadTests reads the rule test files (*_test.yaml) of a directory.
func ReadTests(fsys fs.FS, dir, display string) ([]Source, error) {
	return readDir(fsys, dir, display, IsTestFile)
}

func readDir(fsys fs.FS, dir, display string, want func(string) bool) ([]Source, error) {
	if display == "" {
		display = dir
	}
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("reading rules in %s: %w", display, err)
	}
	var srcs []Source
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() || strings.HasPrefix(n, ".") || !(strings.HasSuffix(n, ".yaml") || strings.HasSuffix(n, ".yml")) || !want(n) {
			continue
		}
		data, err := fs.ReadFile(fsys, path.Join(dir, n))
		if err != nil {
			return nil, fmt.Errorf("reading rules: %w", err)
		}
		srcs = append(srcs, Source{Name: filepath.Join(display, n), Data: data})
	}
	sort.Slice(srcs, func(i, j int) bool { return srcs[i].Name < srcs[j].Name })
	return srcs, nil
}

// Manager holds the live ruleset and swaps it atomically; readers never
// block and always see a whole set. It caches compiled files, so that a
// reload recompiles only what changed.
type Manager struct {
	cur   atomic.Pointer[Set]
	mu    sync.Mutex // serializes Load
	cache Cache
}

// NewManager starts with a compiled set.
func NewManager(s *Set) *Manager {
	m := &Manager{}
	m.cur.Store(s)
	m.cache.seed(s)
	return m
}

// Current returns the live set. Callers read it once per event and keep
// using that set: a reload never changes a set under them.
func (m *Manager) Current() *Set { return m.cur.Load() }

// Load compiles srcs and makes them live only if all of them are valid; on
// error the running set stays and is returned as both old and cur. The
// compilation runs at a low CPU priority, behind scoring.
func (m *Manager) Load(srcs []Source, schema *features.Schema) (old, cur *Set, err error) {
	return m.load(srcs, schema, nil)
}

// LoadBound is Load for the schema of a features engine, to which the new
// set is bound (Set.Features): the engine and the rules compiled against
// it go live together.
func (m *Manager) LoadBound(srcs []Source, fe *features.Engine) (old, cur *Set, err error) {
	return m.load(srcs, fe.Schema(), fe)
}

func (m *Manager) load(srcs []Source, schema *features.Schema, fe *features.Engine) (old, cur *Set, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var s *Set
	inBackground(func() { s, err = compileSet(srcs, schema, &m.cache, options{}) })
	if err != nil {
		c := m.Current()
		return c, c, err
	}
	if c := m.Current(); c != nil && c.Version == s.Version && c.Schema == s.Schema && (c.Features == fe || c.Features == nil) {
		return c, c, nil // the very set that is running: nothing to swap
	}
	s.Features = fe
	return m.cur.Swap(s), s, nil
}

// seed fills the cache with the rules of a set compiled elsewhere
// (Compile), so that the first reload does not recompile unchanged files.
func (c *Cache) seed(s *Set) {
	if s == nil || s.envKey == "" {
		return
	}
	byFile := map[string][]*Rule{}
	for _, r := range s.Rules {
		byFile[r.Pos.File] = append(byFile[r.Pos.File], r)
	}
	for _, f := range s.Files {
		if sum, ok := f.sum(); ok {
			c.store(f.Name, sum, s.envKey, nil, byFile[f.Name])
		}
	}
}
