package features

import (
	"errors"
	"fmt"
	"slices"
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
	vars []string // let variables in scope
	err  *file.Error
}

var filterComparisons = map[string]bool{
	"==": true, "!=": true, "<": true, "<=": true, ">": true, ">=": true,
	"in": true, "contains": true, "startsWith": true, "endsWith": true, "matches": true,
}

var filterArithmetic = map[string]bool{"+": true, "-": true, "*": true, "/": true, "%": true, "**": true, "^": true}

func (r *filterResolver) errorf(n ast.Node, format string, args ...any) {
	if r.err == nil {
		r.err = &file.Error{Location: n.Location(), Message: fmt.Sprintf(format, args...)}
	}
}

func (r *filterResolver) inScope(name string) bool { return slices.Contains(r.vars, name) }

func (r *filterResolver) node(p *ast.Node) {
	switch n := (*p).(type) {
	case *ast.IdentifierNode:
		if n.Value == "$env" && !r.inScope(n.Value) {
			r.errorf(n, "$env is not available in filters")
		}
	case *ast.MemberNode:
		r.node(&n.Node)
		if _, isName := n.Property.(*ast.StringNode); !isName {
			r.node(&n.Property)
		}
	case *ast.ChainNode:
		r.node(&n.Node)
	case *ast.CallNode:
		r.call(p, n)
	case *ast.BuiltinNode:
		for i := range n.Arguments {
			r.node(&n.Arguments[i])
		}
	case *ast.PredicateNode:
		r.node(&n.Node)
	case *ast.VariableDeclaratorNode:
		r.node(&n.Value)
		r.vars = append(r.vars, n.Name)
		r.node(&n.Expr)
		r.vars = r.vars[:len(r.vars)-1]
	case *ast.SequenceNode:
		for i := range n.Nodes {
			r.node(&n.Nodes[i])
		}
	case *ast.ConditionalNode:
		r.node(&n.Cond)
		r.node(&n.Exp1)
		r.node(&n.Exp2)
	case *ast.ArrayNode:
		for i := range n.Nodes {
			r.node(&n.Nodes[i])
		}
	case *ast.MapNode:
		for i := range n.Pairs {
			r.node(&n.Pairs[i])
		}
	case *ast.PairNode:
		r.node(&n.Key)
		r.node(&n.Value)
	case *ast.SliceNode:
		r.node(&n.Node)
		if n.From != nil {
			r.node(&n.From)
		}
		if n.To != nil {
			r.node(&n.To)
		}
	case *ast.UnaryNode:
		if c, ok := negatedFilterComparison(n); ok {
			// "x not in L" is one comparison: false when x is missing.
			r.node(&c.Left)
			r.node(&c.Right)
			r.guard(p, c.Left, c.Right)
			return
		}
		r.node(&n.Node)
	case *ast.BinaryNode:
		r.node(&n.Left)
		r.node(&n.Right)
		if filterComparisons[n.Operator] {
			r.guard(p, n.Left, n.Right)
		}
	}
}

// negatedFilterComparison recognizes the parser's form of "a not in b"
// (and not contains, not matches, ...): a not whose operand is a
// comparison at the same position, unlike not (a in b).
func negatedFilterComparison(n *ast.UnaryNode) (*ast.BinaryNode, bool) {
	if n.Operator != "not" {
		return nil, false
	}
	c, ok := n.Node.(*ast.BinaryNode)
	return c, ok && filterComparisons[c.Operator] && c.Location() == n.Location()
}

func (r *filterResolver) call(p *ast.Node, n *ast.CallNode) {
	if id, ok := n.Callee.(*ast.IdentifierNode); ok && !r.inScope(id.Value) {
		switch id.Value {
		case "has":
			r.has(p, n)
			return
		case "now":
			r.errorf(n, "now() is not available in filters: use time, the event's time, so that a replay counts what live scoring counted")
			return
		}
	} else {
		r.node(&n.Callee)
	}
	for i := range n.Arguments {
		r.node(&n.Arguments[i])
	}
}

// has rewrites has(x) into a presence test of an event field or attribute.
func (r *filterResolver) has(p *ast.Node, n *ast.CallNode) {
	if len(n.Arguments) != 1 {
		r.errorf(n, "has() takes one event field")
		return
	}
	arg := n.Arguments[0]
	path, ok := filterPath(arg)
	if !ok || r.inScope(path[0]) {
		r.errorf(arg, "has() takes an event field such as has(card.country)")
		return
	}
	name := strings.Join(path, ".")
	if len(path) == 2 && path[0] == "attributes" {
		ast.Patch(p, &ast.BinaryNode{Operator: "!=", Left: arg, Right: &ast.NilNode{}})
		return
	}
	kind, isField := envFields[name]
	switch {
	case !isField:
		root := arg
		for m, ok := root.(*ast.MemberNode); ok; m, ok = root.(*ast.MemberNode) {
			root = m.Node // point at the path's start, not its last dot
		}
		r.errorf(root, "has(): unknown event field %s", name)
	case kind == envNumber:
		ast.Patch(p, &ast.BoolNode{Value: true}) // always present
	default:
		ast.Patch(p, fieldPresence(name, kind))
	}
}

// filterPath returns the dotted path of a.b.c made of plain names.
func filterPath(n ast.Node) ([]string, bool) {
	switch n := n.(type) {
	case *ast.IdentifierNode:
		return []string{n.Value}, true
	case *ast.MemberNode:
		prop, isStr := n.Property.(*ast.StringNode)
		if !isStr || n.Optional {
			return nil, false
		}
		path, ok := filterPath(n.Node)
		if !ok {
			return nil, false
		}
		return append(path, prop.Value), true
	}
	return nil, false
}

// fieldPresence is the node testing that an event field has a value: a
// string is not empty, a time is not zero.
func fieldPresence(path string, kind envKind) ast.Node {
	parts := strings.Split(path, ".")
	var field ast.Node = &ast.IdentifierNode{Value: parts[0]}
	for _, p := range parts[1:] {
		field = &ast.MemberNode{Node: field, Property: &ast.StringNode{Value: p}}
	}
	if kind == envTime {
		isZero := &ast.CallNode{Callee: &ast.MemberNode{Node: field, Property: &ast.StringNode{Value: "IsZero"}, Method: true}}
		return &ast.UnaryNode{Operator: "not", Node: isZero}
	}
	return &ast.BinaryNode{Operator: "!=", Left: field, Right: &ast.StringNode{Value: ""}}
}

// guard makes the comparison at p false when a value it compares is
// missing: p becomes (present(a) and ... and p).
func (r *filterResolver) guard(p *ast.Node, operands ...ast.Node) {
	var guards []ast.Node
	seen := map[string]bool{}
	for _, o := range operands {
		r.missable(o, &guards, seen)
	}
	if len(guards) == 0 {
		return
	}
	g := guards[0]
	for _, x := range guards[1:] {
		g = &ast.BinaryNode{Operator: "and", Left: g, Right: x}
	}
	ast.Patch(p, &ast.BinaryNode{Operator: "and", Left: g, Right: *p})
}

// missable collects presence tests for the event fields and attributes n
// reads. It looks through arithmetic, unary signs, builtin function
// arguments, slices and method calls; not into nested comparisons, logic
// or closures, which are boolean values of their own (as rules do).
func (r *filterResolver) missable(n ast.Node, guards *[]ast.Node, seen map[string]bool) {
	add := func(key string, g ast.Node) {
		if !seen[key] {
			seen[key] = true
			*guards = append(*guards, g)
		}
	}
	switch n := n.(type) {
	case *ast.MemberNode:
		if path, ok := filterPath(n); ok && !r.inScope(path[0]) && len(path) >= 2 {
			if path[0] == "attributes" && len(path) == 2 {
				attr := &ast.MemberNode{Node: &ast.IdentifierNode{Value: "attributes"}, Property: &ast.StringNode{Value: path[1]}}
				add("a"+path[1], &ast.BinaryNode{Operator: "!=", Left: attr, Right: &ast.NilNode{}})
				return
			}
			f := path[0] + "." + path[1]
			if kind, isField := envFields[f]; isField {
				if kind != envNumber {
					add("e"+f, fieldPresence(f, kind))
				}
				return
			}
		}
		r.missable(n.Node, guards, seen)
		r.missable(n.Property, guards, seen)
	case *ast.IdentifierNode:
		if kind, isField := envFields[n.Value]; isField && !r.inScope(n.Value) && kind != envNumber {
			add("e"+n.Value, fieldPresence(n.Value, kind))
		}
	case *ast.BinaryNode:
		if filterArithmetic[n.Operator] {
			r.missable(n.Left, guards, seen)
			r.missable(n.Right, guards, seen)
		}
	case *ast.UnaryNode:
		if n.Operator == "-" || n.Operator == "+" {
			r.missable(n.Node, guards, seen)
		}
	case *ast.BuiltinNode:
		for _, a := range n.Arguments {
			if _, closure := a.(*ast.PredicateNode); !closure {
				r.missable(a, guards, seen)
			}
		}
	case *ast.CallNode:
		if m, isMethod := n.Callee.(*ast.MemberNode); isMethod {
			r.missable(m.Node, guards, seen)
		}
	case *ast.SliceNode:
		r.missable(n.Node, guards, seen)
	case *ast.ChainNode:
		r.missable(n.Node, guards, seen)
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
