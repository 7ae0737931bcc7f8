package rules

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"

	"github.com/vigil-fraud/vigil/features"
)

// MaxNodes caps the size of one rule expression.
const MaxNodes = 2000

// Default score thresholds when no file declares a ruleset header.
const (
	DefaultStepUpAt = 50
	DefaultPauseAt  = 80
)

// Set is a compiled, immutable ruleset, safe for concurrent evaluation.
type Set struct {
	Version  string // content hash of the files
	Label    string // human label declared by the files, if any
	StepUpAt int
	PauseAt  int
	Rules    []*Rule
	Schema   *features.Schema
	lists    []map[string]bool
}

// Rule is one compiled rule.
type Rule struct {
	RuleDef
	Program  *vm.Program
	Features []string // features the expression reads
	rollout  uint32   // hits count when hash(id) % 10000 < rollout
}

// VersionString is the version recorded in decisions: label@hash, or hash.
func (s *Set) VersionString() string {
	if s.Label != "" {
		return s.Label + "@" + s.Version
	}
	return s.Version
}

// Source is one rule file's name and content.
type Source struct {
	Name string
	Data []byte
}

// Compile parses and compiles a whole ruleset, all or nothing: every
// problem of every file is returned at once.
func Compile(srcs []Source, schema *features.Schema) (*Set, error) {
	srcs = slices.Clone(srcs)
	slices.SortFunc(srcs, func(a, b Source) int { return strings.Compare(a.Name, b.Name) })
	h := sha256.New()
	var files []*RuleFile
	var errs []error
	for _, src := range srcs {
		fmt.Fprintf(h, "%s\x00%d\x00", src.Name, len(src.Data))
		h.Write(src.Data)
		f, err := ParseFile(src.Name, src.Data)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		files = append(files, f)
	}
	s := &Set{Version: hex.EncodeToString(h.Sum(nil))[:12], StepUpAt: DefaultStepUpAt, PauseAt: DefaultPauseAt, Schema: schema}
	listIndex := map[string]int{}
	var header *RulesetHeader
	for _, f := range files {
		if f.Ruleset != nil {
			if header != nil {
				errs = append(errs, &Error{Pos: f.Ruleset.Pos, Err: fmt.Errorf("ruleset header declared again (first at %s)", header.Pos)})
				continue
			}
			header = f.Ruleset
		}
		for _, name := range sortedKeys(f.Lists) {
			if _, dup := listIndex[name]; dup {
				errs = append(errs, &Error{Pos: Pos{f.Name, 1, 1}, Err: fmt.Errorf("list %q declared twice", name)})
				continue
			}
			m := make(map[string]bool, len(f.Lists[name]))
			for _, v := range f.Lists[name] {
				m[v] = true
			}
			listIndex[name] = len(s.lists)
			s.lists = append(s.lists, m)
		}
	}
	if header != nil {
		s.Label, s.StepUpAt, s.PauseAt = header.Label, header.StepUpAt, header.PauseAt
	}
	seen := map[string]Pos{}
	for _, f := range files {
		for i := range f.Rules {
			def := f.Rules[i]
			if p, dup := seen[def.Name]; dup {
				errs = append(errs, &Error{Pos: def.Pos, Rule: def.Name, Err: fmt.Errorf("name used again (first at %s)", p)})
				continue
			}
			seen[def.Name] = def.Pos
			r, err := compileRule(def, schema, listIndex)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			s.Rules = append(s.Rules, r)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return s, nil
}

func compileRule(def RuleDef, schema *features.Schema, lists map[string]int) (*Rule, error) {
	p := &patcher{schema: schema, lists: lists}
	src, err := replaceListSigils(def.When)
	if err == nil {
		var prog *vm.Program
		prog, err = expr.Compile(src,
			expr.Env(Env{}),
			expr.AsBool(),
			expr.MaxNodes(MaxNodes),
			expr.Patch(p),
		)
		if err == nil {
			err = p.err
		}
		if err == nil {
			r := &Rule{RuleDef: def, Program: prog, Features: p.used(), rollout: 10000}
			if def.Rollout != nil {
				r.rollout = uint32(*def.Rollout*100 + 0.5)
			}
			return r, nil
		}
	}
	pos := def.WhenPos
	var fe *file.Error
	if errors.As(err, &fe) {
		// expr lines and columns are relative to the expression.
		if fe.Line > 1 {
			pos.Line += fe.Line - 1
			pos.Col = fe.Column + 1
		} else {
			pos.Col += fe.Column
		}
		err = errors.New(fe.Message)
	}
	return nil, &Error{Pos: pos, Rule: def.Name, Err: err}
}

// replaceListSigils turns @name (outside string literals) into _name, which
// the patcher resolves to a declared list. The length is kept so error
// columns stay right.
func replaceListSigils(s string) (string, error) {
	if !strings.Contains(s, "@") {
		return s, nil
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
			b[i] = '_'
		}
	}
	return string(b), nil
}

// patcher resolves feature names to slots of the typed vectors, list names
// to list slots, and has(x) to a presence test.
type patcher struct {
	schema *features.Schema
	lists  map[string]int
	seen   map[string]bool
	err    error
}

var envFields = func() map[string]bool {
	m := map[string]bool{}
	t := reflect.TypeOf(Env{})
	for i := 0; i < t.NumField(); i++ {
		m[t.Field(i).Tag.Get("expr")] = true
	}
	return m
}()

func (p *patcher) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.IdentifierNode:
		if envFields[n.Value] {
			return
		}
		if strings.HasPrefix(n.Value, "_") {
			if i, ok := p.lists[n.Value[1:]]; ok {
				ast.Patch(node, index("__lists", i))
				return
			}
			if p.err == nil {
				p.err = fmt.Errorf("unknown list @%s", n.Value[1:])
			}
			return
		}
		if p.schema == nil {
			return
		}
		i, ok := p.schema.Lookup(n.Value)
		if !ok {
			return // left to the type checker: "unknown name"
		}
		if p.seen == nil {
			p.seen = map[string]bool{}
		}
		p.seen[n.Value] = true
		slice := map[features.Type]string{features.Number: "__num", features.Bool: "__bool", features.String: "__str"}[p.schema.Fields[i].Type]
		ast.Patch(node, index(slice, i))
	case *ast.CallNode:
		callee, ok := n.Callee.(*ast.IdentifierNode)
		if !ok || callee.Value != "has" {
			return
		}
		if len(n.Arguments) != 1 {
			p.fail("has() takes one feature or event field")
			return
		}
		switch a := n.Arguments[0].(type) {
		case *ast.MemberNode:
			if id, ok := a.Node.(*ast.IdentifierNode); ok && strings.HasPrefix(id.Value, "__") && id.Value != "__lists" {
				ast.Patch(node, &ast.MemberNode{Node: &ast.IdentifierNode{Value: "__has"}, Property: a.Property})
				return
			}
			// an event field: present when not the zero value
			ast.Patch(node, &ast.BinaryNode{Operator: "!=", Left: a, Right: zeroOf(a)})
			return
		}
		p.fail("has() takes one feature or event field")
	}
}

func (p *patcher) fail(msg string) {
	if p.err == nil {
		p.err = errors.New(msg)
	}
}

// zeroOf returns the literal a missing event field compares equal to. Event
// fields reachable by has() are strings.
func zeroOf(ast.Node) ast.Node { return &ast.StringNode{Value: ""} }

func (p *patcher) used() []string {
	out := sortedKeys(p.seen)
	return out
}

func index(slice string, i int) ast.Node {
	return &ast.MemberNode{Node: &ast.IdentifierNode{Value: slice}, Property: &ast.IntegerNode{Value: i}}
}
