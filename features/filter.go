package features

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/checker"
	"github.com/expr-lang/expr/compiler"
	"github.com/expr-lang/expr/conf"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/optimizer"
	exprparser "github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"

	"github.com/vigil-fraud/vigil/engine/event"
	"github.com/vigil-fraud/vigil/rules/presence"
)

// filterError is a compile error of a filter with its place in the
// expression.
type filterError struct {
	line, col int
	msg       string
}

func (e *filterError) Error() string { return e.msg }

// MaxFilterNodes caps the size of a filter expression (AST nodes).
const MaxFilterNodes = 500

// compileFilter compiles a filter as rules compile a when: parse, resolve
// (the missing-value guards below, has(), no now()), type-check against
// the event as rules see it (event.Fields), optimize, emit bytecode.
func compileFilter(src string) (prog *vm.Program, err error) {
	defer func() {
		if p := recover(); p != nil {
			prog, err = nil, fmt.Errorf("cannot compile this expression: %v", p)
		}
	}()
	config := conf.CreateNew()
	for _, op := range []expr.Option{expr.Env(event.Fields{}), expr.AsBool(), expr.MaxNodes(MaxFilterNodes)} {
		op(config)
	}
	// now() would make a filter depend on when it runs rather than on the
	// event: a replay would not count what live scoring counted.
	delete(config.Builtins, "now")
	config.Disabled["now"] = true
	tree, err := exprparser.ParseWithConfig(src, config)
	if err != nil {
		return nil, exprError(err)
	}
	r := &filterResolver{}
	r.node(&tree.Node)
	if r.err != nil {
		return nil, exprError(r.err.Bind(tree.Source))
	}
	if _, err := checker.Check(tree, config); err != nil {
		return nil, exprError(err)
	}
	if err := optimizer.Optimize(&tree.Node, config); err != nil {
		return nil, exprError(err)
	}
	prog, err = compiler.Compile(tree, config)
	if err != nil {
		return nil, exprError(err)
	}
	return prog, nil
}

func exprError(err error) error {
	var fe *file.Error
	if errors.As(err, &fe) {
		return &filterError{line: fe.Line, col: fe.Column, msg: fe.Message}
	}
	return err
}

func checkFilter(src string) error {
	_, err := compileFilter(src)
	return err
}

// filterResolver rewrites a parsed filter so that it reads the event as a
// rule's when does (rules/resolve.go):
//
//   - every comparison (== != < <= > >= in, not in, contains, startsWith,
//     endsWith, matches) is false when an event field or attribute it
//     compares is missing (an empty string, a zero time, an absent
//     attribute), whichever the operator, also when the value is inside
//     arithmetic or a function call;
//   - has(x) is a presence test of an event field or attribute;
//   - now() and $env are refused.
type filterResolver struct {
	g   presence.Guarder // let variables in scope, comparison guards
	err *file.Error
}

func (r *filterResolver) errorf(n ast.Node, format string, args ...any) {
	if r.err == nil {
		r.err = &file.Error{Location: n.Location(), Message: fmt.Sprintf(format, args...)}
	}
}

func (r *filterResolver) inScope(name string) bool { return r.g.InScope(name) }

func (r *filterResolver) node(p *ast.Node) { presence.Walk(p, &r.g, r) }

// Identifier refuses $env (presence.Resolver).
func (r *filterResolver) Identifier(p *ast.Node, n *ast.IdentifierNode) {
	if n.Value == "$env" {
		r.errorf(n, "$env is not available in filters")
	}
}

// Member leaves member reads as they are (presence.Resolver).
func (r *filterResolver) Member(*ast.Node, *ast.MemberNode) bool { return false }

// Call rewrites has() and refuses now() (presence.Resolver).
func (r *filterResolver) Call(p *ast.Node, n *ast.CallNode, name string) bool {
	switch name {
	case "has":
		r.has(p, n)
		return true
	case "now":
		r.errorf(n, "now() is not available in filters: use time, the event's time, so that a replay counts what live scoring counted")
		return true
	}
	return false
}

// Binary and List have nothing to check in a filter (presence.Resolver).
func (r *filterResolver) Binary(*ast.BinaryNode) bool { return false }
func (r *filterResolver) List([]ast.Node)             {}

// has rewrites has(x) into a presence test of an event field or attribute.
func (r *filterResolver) has(p *ast.Node, n *ast.CallNode) {
	if len(n.Arguments) != 1 {
		r.errorf(n, "has() takes one event field")
		return
	}
	arg := n.Arguments[0]
	_, path, ok := presence.Path(arg)
	if !ok || r.inScope(path[0]) {
		r.errorf(arg, "has() takes an event field such as has(card.country)")
		return
	}
	name := strings.Join(path, ".")
	if len(path) == 2 && path[0] == "attributes" {
		ast.Patch(p, presence.AttributeTest(path[1]))
		return
	}
	kind, isField := presence.Fields[name]
	switch {
	case !isField:
		root := arg
		for m, ok := root.(*ast.MemberNode); ok; m, ok = root.(*ast.MemberNode) {
			root = m.Node // point at the path's start, not its last dot
		}
		r.errorf(root, "has(): unknown event field %s", name)
	default:
		ast.Patch(p, presence.Test(name, kind)) // true for a number: always present
	}
}

// filters holds the distinct compiled filters of an engine; an event's
// results are computed lazily, once per filter, in its evctx.
type filters struct {
	progs []*vm.Program
	src   []string
	vms   sync.Pool
}

func (fs *filters) index(src string) (int, error) {
	for i, s := range fs.src {
		if s == src {
			return i, nil
		}
	}
	p, err := compileFilter(src)
	if err != nil {
		return 0, fmt.Errorf("filter %q: %w", src, err)
	}
	fs.progs = append(fs.progs, p)
	fs.src = append(fs.src, src)
	return len(fs.progs) - 1, nil
}

// filterVM evaluates filters; its env is the event as rules see it
// (event.Fields), so filters and rules share every name.
type filterVM struct {
	vm  vm.VM
	env event.Fields
}

// pass reports whether the event passes filter i (-1: no filter). A filter
// that fails at run time (nil map access, ...) does not pass.
func (c *evctx) pass(i int) bool {
	if i < 0 {
		return true
	}
	bit := uint64(1) << uint(i)
	if c.fdone&bit == 0 {
		fs := &c.e.filters
		if c.fvm == nil {
			c.fvm, _ = fs.vms.Get().(*filterVM)
			if c.fvm == nil {
				c.fvm = &filterVM{}
			}
			c.fvm.env.Set(c.ev)
			c.fvm.env.PrepareAttributes() // attributes.x > 3 compares numbers, as in rules
		}
		out, err := c.fvm.vm.Run(fs.progs[i], &c.fvm.env)
		if b, ok := out.(bool); ok && b && err == nil {
			c.fpass |= bit
		}
		c.fdone |= bit
	}
	return c.fpass&bit != 0
}

func (c *evctx) releaseFilters() {
	if c.fvm != nil {
		c.fvm.env.Reset()
		c.e.filters.vms.Put(c.fvm)
		c.fvm = nil
	}
}
