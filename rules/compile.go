package rules

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/checker"
	"github.com/expr-lang/expr/compiler"
	"github.com/expr-lang/expr/conf"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/optimizer"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"

	"github.com/vigil-fraud/vigil/features"
)

// MaxNodes caps the size of one rule expression (AST nodes).
const MaxNodes = 2000

// MemoryBudget caps what one evaluation of a rule may allocate in expr's VM
// (array, map and range elements); over it the rule errors.
const MemoryBudget = 100_000

// Default score thresholds when no file declares a ruleset header.
const (
	DefaultStepUpAt = 50
	DefaultPauseAt  = 80
)

// disabledBuiltins are expr builtins rules may not call: now() makes a
// rule's result depend on when it runs rather than on the event.
var disabledBuiltins = []string{"now"}

// Set is a compiled, immutable ruleset, safe for concurrent evaluation.
type Set struct {
	// Version is a hash of the files' names and contents and of the
	// feature definitions compiled against (Schema.Digest).
	Version  string
	Label    string // human label declared by the files, if any
	StepUpAt int
	PauseAt  int
	Rules    []*Rule
	Schema   *features.Schema
	Lists    []List // declared lists, sorted by name
	Files    []File // the files, sorted by name
	Stats    CompileStats
	// Features is the features engine the set scores with, when it was
	// loaded for one (Manager.LoadBound); nil otherwise.
	Features *features.Engine

	programs   []*vm.Program     // Rules' programs, contiguous for the evaluation loop
	preds      []boolFn          // Rules' typed predicates (nil when not Lowered), likewise
	lists      []map[string]bool // Lists as sets, by slot
	listValues [][]string        // Lists as slices, by slot
	envKey     string            // what the rules were compiled against (cache key)

	readsAttributes bool // some rule reads attributes.NAME
}

// List is a declared list of strings (@name in rules).
type List struct {
	Name   string
	Values []string
	Pos    Pos
}

// File is one source file of a set.
type File struct {
	Name   string
	SHA256 string // hex
}

func (f File) sum() (sum [32]byte, ok bool) {
	n, err := hex.Decode(sum[:], []byte(f.SHA256))
	return sum, err == nil && n == len(sum)
}

// CompileStats says how a set was built.
type CompileStats struct {
	Files    int           // rule files
	Compiled int           // files compiled now (not taken from the cache)
	Lowered  int           // rules whose whole expression runs as one typed call
	Duration time.Duration // time spent compiling
}

// Rule is one compiled rule.
type Rule struct {
	RuleDef
	Program  *vm.Program
	Features []string // features the expression reads, sorted
	Fields   []string // event fields it reads (attributes.NAME included), sorted
	// Lowered is true when the whole expression compiled to one typed
	// predicate: evaluation neither reflects nor allocates.
	Lowered bool
	pred    boolFn   // when Lowered, the predicate the program calls
	rollout uint32   // hits count when bucket < rollout (0..10000)
	lint    ruleLint // what Lint reports
}

// VersionString is the version recorded in decisions: label@hash, or hash.
func (s *Set) VersionString() string {
	if s.Label != "" {
		return s.Label + "@" + s.Version
	}
	return s.Version
}

// Rule returns the rule with a name, or nil.
func (s *Set) Rule(name string) *Rule {
	for _, r := range s.Rules {
		if r.Name == name {
			return r
		}
	}
	return nil
}

// Source is one rule file's name and content.
type Source struct {
	Name string
	Data []byte
}

// Compile parses and compiles a whole ruleset, all or nothing: every
// problem of every file is returned at once, each an *Error.
func Compile(srcs []Source, schema *features.Schema) (*Set, error) {
	return compileSet(srcs, schema, nil, options{})
}

// options change how expressions compile; tests and benchmarks use them.
type options struct {
	noLower bool // leave every expression to expr's VM
}

func (o options) key() string {
	if o.noLower {
		return "nolower"
	}
	return ""
}

// parsedFile is a rule file on its way into a set.
type parsedFile struct {
	src     Source
	sum     [32]byte
	file    *RuleFile
	invalid bool // has errors: compiled for its errors only, never cached
}

func compileSet(srcs []Source, schema *features.Schema, cache *Cache, opt options) (*Set, error) {
	start := time.Now()
	s := &Set{StepUpAt: DefaultStepUpAt, PauseAt: DefaultPauseAt, Schema: schema}
	var errs errorList
	if err := checkSchema(schema); err != nil {
		errs = append(errs, &Error{Err: fmt.Errorf("features: %w", err)})
	}
	files := s.parseFiles(srcs, cache, &errs)
	if schema != nil && schema.Digest != "" {
		sum := sha256.Sum256([]byte(s.Version + "\x00features\x00" + schema.Digest))
		s.Version = hex.EncodeToString(sum[:])[:12]
	}
	listIndex := s.collectHeaderAndLists(files, &errs)
	env := compileEnv{schema: schema, lists: listIndex, opt: opt}
	var listKeys []string // a list's size decides whether a rule iterating it is too costly
	for i, name := range sortedKeys(listIndex) {
		env.sizes = append(env.sizes, len(s.listValues[i]))
		listKeys = append(listKeys, fmt.Sprintf("%s:%d", name, len(s.listValues[i])))
	}
	env.key = schemaKey(schema) + "|" + strings.Join(listKeys, ",") + "|" + opt.key()
	s.compileRules(files, &env, cache, &errs)
	if err := errs.err(); err != nil {
		return nil, err
	}
	s.Stats.Files = len(files)
	s.envKey = env.key
	s.Stats.Duration = time.Since(start)
	cache.keepOnly(s)
	return s, nil
}

// parseFiles parses the sources in name order (from the cache when their
// content was parsed before) and sets the version, a hash of their file
// names (without the directory: the same files give the same version
// wherever they are read from) and contents.
func (s *Set) parseFiles(srcs []Source, cache *Cache, errs *errorList) []parsedFile {
	srcs = slices.Clone(srcs)
	slices.SortFunc(srcs, func(a, b Source) int { return strings.Compare(a.Name, b.Name) })
	all := sha256.New()
	var files []parsedFile
	for i, src := range srcs {
		if i > 0 && srcs[i-1].Name == src.Name {
			errs.add(Pos{src.Name, 1, 1}, "", "file given twice")
			continue
		}
		sum := sha256.Sum256(src.Data)
		fmt.Fprintf(all, "%s\x00%x\x00", filepath.Base(src.Name), sum)
		s.Files = append(s.Files, File{Name: src.Name, SHA256: hex.EncodeToString(sum[:])})
		if f, ok := cache.parsed(src.Name, sum); ok {
			files = append(files, parsedFile{src: src, sum: sum, file: f})
			continue
		}
		f, ferrs := parseFile(src.Name, src.Data)
		*errs = append(*errs, ferrs...)
		if f != nil {
			// A file with errors still compiles, to report its expression
			// errors too; the set fails anyway.
			files = append(files, parsedFile{src: src, sum: sum, file: f, invalid: len(ferrs) > 0})
		}
	}
	s.Version = hex.EncodeToString(all.Sum(nil))[:12]
	return files
}

// collectHeaderAndLists takes the thresholds and the lists, which belong
// to the whole set, and returns each list's slot.
func (s *Set) collectHeaderAndLists(files []parsedFile, errs *errorList) map[string]int {
	var header *RulesetHeader
	listPos := map[string]Pos{}
	listVals := map[string][]string{}
	for _, p := range files {
		f := p.file
		if f.Ruleset != nil {
			if header != nil {
				errs.add(f.Ruleset.Pos, "", "ruleset header declared again (first at %s)", header.Pos)
			} else {
				header = f.Ruleset
			}
		}
		for _, name := range sortedKeys(f.Lists) {
			if first, dup := listPos[name]; dup {
				errs.add(f.ListPos[name], "", "list %q declared again (first at %s)", name, first)
				continue
			}
			listPos[name], listVals[name] = f.ListPos[name], f.Lists[name]
		}
	}
	if header != nil {
		s.Label, s.StepUpAt, s.PauseAt = header.Label, header.StepUpAt, header.PauseAt
	}
	index := map[string]int{}
	for i, name := range sortedKeys(listPos) {
		index[name] = i
		set := make(map[string]bool, len(listVals[name]))
		for _, v := range listVals[name] {
			set[v] = true
		}
		s.Lists = append(s.Lists, List{Name: name, Values: listVals[name], Pos: listPos[name]})
		s.lists = append(s.lists, set)
		s.listValues = append(s.listValues, listVals[name])
	}
	return index
}

// compileRules compiles each file's rules, or takes them from the cache,
// which keeps them by file content, schema and list names (the list names
// fix the list slots), and checks that names are unique.
func (s *Set) compileRules(files []parsedFile, env *compileEnv, cache *Cache, errs *errorList) {
	seen := map[string]Pos{}
	lastYield := time.Now()
	for _, p := range files {
		rules, ok := cache.rules(p.src.Name, p.sum, env.key)
		if ok && !p.invalid {
			cache.keepParsed(p.src.Name, p.sum, p.file) // seeded entries have none: parsed once, not on every reload
		}
		if !ok {
			var ferrs errorList
			for i := range p.file.Rules {
				if !p.file.Rules[i].compilable {
					continue
				}
				// Compiling is background work next to scoring: every
				// millisecond, let a scoring goroutine waiting for a P have it.
				if time.Since(lastYield) > time.Millisecond {
					runtime.Gosched()
					lastYield = time.Now()
				}
				r, err := compileRule(p.file.Rules[i], env)
				if err != nil {
					ferrs = append(ferrs, Errors(err)...)
					continue
				}
				rules = append(rules, r)
			}
			if len(ferrs) > 0 || p.invalid {
				*errs = append(*errs, ferrs...)
				continue
			}
			s.Stats.Compiled++
			cache.store(p.src.Name, p.sum, env.key, p.file, rules)
		}
		for _, r := range rules {
			if first, dup := seen[r.Name]; dup {
				errs.add(r.Pos, r.Name, "name used again (first at %s)", first)
				continue
			}
			seen[r.Name] = r.Pos
			s.Rules = append(s.Rules, r)
			s.programs = append(s.programs, r.Program)
			s.preds = append(s.preds, r.pred)
			s.readsAttributes = s.readsAttributes || slices.ContainsFunc(r.Fields, func(f string) bool { return strings.HasPrefix(f, "attributes") })
			if r.Lowered {
				s.Stats.Lowered++
			}
		}
	}
}

// checkSchema refuses feature names that would hide an event field or
// clash with the expression syntax.
func checkSchema(schema *features.Schema) error {
	if schema == nil {
		return nil
	}
	var errs []error
	for _, f := range schema.Fields {
		if envRoots[f.Name] || strings.HasPrefix(f.Name, "$") || strings.HasPrefix(f.Name, "__") || f.Name == "has" {
			errs = append(errs, fmt.Errorf("feature %q has a name rules cannot use (an event field or reserved)", f.Name))
		}
	}
	return errors.Join(errs...)
}

func schemaKey(schema *features.Schema) string {
	if schema == nil {
		return ""
	}
	h := sha256.New()
	for _, f := range schema.Fields {
		fmt.Fprintf(h, "%s:%d,", f.Name, f.Type)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// compileEnv is what rule compilation depends on besides the rule itself.
type compileEnv struct {
	schema *features.Schema
	lists  map[string]int
	sizes  []int // each list's length, by slot
	opt    options
	key    string
	config *conf.Config // expr's configuration, shared by the rules compiled one after another
}

func newConfig() *conf.Config {
	c := conf.CreateNew()
	for _, op := range []expr.Option{expr.Env(Env{}), expr.AsBool(), expr.MaxNodes(MaxNodes)} {
		op(c)
	}
	for _, name := range disabledBuiltins {
		delete(c.Builtins, name)
		c.Disabled[name] = true
	}
	return c
}

// compileRule compiles one rule's expression: parse, resolve names, check
// types, optimize (constant folding), lower typed subexpressions, and emit
// expr bytecode. Errors carry the position in the rule file.
func compileRule(def RuleDef, env *compileEnv) (r *Rule, err error) {
	fail := func(loc file.Location, msg string) error {
		if def.whenCut {
			msg += ` (the line goes on after " #", which YAML reads as a comment: quote the expression to use # in it)`
		}
		return &Error{Pos: def.whenSpan.at(def.When, loc.From, def.WhenPos), Rule: def.Name, Err: errors.New(msg)}
	}
	exprErr := func(e error) error {
		var fe *file.Error
		if strings.Contains(e.Error(), "exceeds maximum allowed nodes") {
			return &Error{Pos: def.WhenPos, Rule: def.Name, Err: fmt.Errorf("expression too large: more than %d nodes", MaxNodes)}
		}
		if errors.As(e, &fe) {
			return fail(fe.Location, fe.Message)
		}
		return &Error{Pos: def.WhenPos, Rule: def.Name, Err: e}
	}
	defer func() {
		if p := recover(); p != nil {
			err = &Error{Pos: def.WhenPos, Rule: def.Name, Err: fmt.Errorf("cannot compile this expression: %v", p)}
		}
	}()
	if env.config == nil {
		env.config = newConfig()
	}
	config := env.config
	tree, perr := parser.ParseWithConfig(replaceListSigils(def.When), config)
	if perr != nil {
		return nil, exprErr(perr)
	}
	res := newResolver(env.schema, env.lists)
	res.node(&tree.Node)
	if len(res.errs) > 0 {
		var errs errorList
		for _, e := range res.errs {
			errs = append(errs, fail(e.Location, e.Message).(*Error))
		}
		return nil, errs.err()
	}
	if _, cerr := checker.Check(tree, config); cerr != nil {
		return nil, exprErr(cerr)
	}
	if ierr := checkIterations(tree.Node, env.sizes); ierr != nil {
		return nil, &Error{Pos: def.WhenPos, Rule: def.Name, Err: ierr}
	}
	if oerr := optimizer.Optimize(&tree.Node, config); oerr != nil {
		return nil, exprErr(oerr)
	}
	r = &Rule{RuleDef: def, Features: sortedKeys(res.features), Fields: sortedKeys(res.fields), rollout: 10000,
		lint: analyze(tree.Node, env.schema)}
	r.lint.notes = append(r.lint.notes, res.notes...)
	if def.Rollout != nil {
		r.rollout = uint32(*def.Rollout*100 + 0.5)
	}
	if !env.opt.noLower {
		l := &lowerer{}
		l.walk(&tree.Node)
		if c, isConst := tree.Node.(*ast.BoolNode); isConst {
			v := c.Value
			r.Lowered, r.pred = true, func(*Env) bool { return v }
		}
		if fn, ok := predicateOf(tree.Node); ok {
			r.Lowered, r.pred = true, l.typed[tree.Node]
			// A predicate that runs without an Env reads nothing: constant.
			if v, constant := constBool(fn); constant && r.lint.constant == notConst {
				r.lint.constant = map[bool]int{true: constTrue, false: constFalse}[v]
			}
		}
		if l.lowered > 0 {
			if _, cerr := checker.Check(tree, config); cerr != nil {
				return nil, &Error{Pos: def.WhenPos, Rule: def.Name, Err: fmt.Errorf("internal error after lowering: %w", cerr)}
			}
		}
	}
	prog, cerr := compiler.Compile(tree, config)
	if cerr != nil {
		return nil, exprErr(cerr)
	}
	r.Program = prog
	return r, nil
}

// replaceListSigils turns @name (outside string literals) into $name, an
// identifier the resolver maps to a declared list. The length is kept so
// that error columns stay right.
func replaceListSigils(s string) string {
	if !strings.Contains(s, "@") {
		return s
	}
	b := []byte(s)
	var quote byte
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case quote != 0:
			if c == '\\' && quote != '`' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'' || c == '`':
			quote = c
		case c == '@':
			b[i] = '$'
		}
	}
	return string(b)
}

// Cache keeps parsed files and compiled rules by file name and content, so
// that a reload recompiles only the files that changed. It is safe for
// concurrent use; a nil *Cache caches nothing.
type Cache struct {
	mu      sync.Mutex
	entries map[cacheKey]*cacheEntry
}

type cacheKey struct {
	name string
	sum  [32]byte
}

type cacheEntry struct {
	file  *RuleFile
	env   string // compile environment of rules
	rules []*Rule
}

func (c *Cache) parsed(name string, sum [32]byte) (*RuleFile, bool) {
	if c == nil {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[cacheKey{name, sum}]
	if e == nil || e.file == nil {
		return nil, false
	}
	return e.file, true
}

func (c *Cache) rules(name string, sum [32]byte, env string) ([]*Rule, bool) {
	if c == nil {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[cacheKey{name, sum}]
	if e == nil || e.env != env || e.rules == nil {
		return nil, false
	}
	return e.rules, true
}

func (c *Cache) store(name string, sum [32]byte, env string, f *RuleFile, rules []*Rule) {
	if c == nil {
		return
	}
	if rules == nil {
		rules = []*Rule{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[cacheKey]*cacheEntry{}
	}
	c.entries[cacheKey{name, sum}] = &cacheEntry{file: f, env: env, rules: rules}
}

// keepParsed records the parsed file of an entry that has its rules but not
// its parse (seeded from a set compiled without the cache).
func (c *Cache) keepParsed(name string, sum [32]byte, f *RuleFile) {
	if c == nil || f == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.entries[cacheKey{name, sum}]; e != nil && e.file == nil {
		e.file = f
	}
}

// keepOnly drops the entries of files that are not in s, the set that just
// compiled.
func (c *Cache) keepOnly(s *Set) {
	if c == nil {
		return
	}
	keep := map[cacheKey]bool{}
	for _, f := range s.Files {
		if sum, ok := f.sum(); ok {
			keep[cacheKey{f.Name, sum}] = true
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.entries {
		if !keep[k] {
			delete(c.entries, k)
		}
	}
}

// Len is the number of cached files.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
