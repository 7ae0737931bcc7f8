package rules

import (
	"fmt"
	"slices"
	"strings"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"

	"github.com/vigil-fraud/vigil/features"
)

// resolver rewrites a parsed `when` expression into the form that is
// type-checked and compiled:
//
//   - a feature name becomes a read of its typed slot (__num[i], __bool[i],
//     __str[i]), so evaluation never looks a name up;
//   - @name becomes the declared list's slot (__lists[i]);
//   - has(x) becomes a presence test (__has[i] for a feature, non-empty for
//     an event string, non-zero for a time, non-nil for an attribute);
//   - every comparison (== != < <= > >= in, not in, contains, startsWith,
//     endsWith, matches) is guarded so that it is false when a value it
//     compares is missing, whichever the operator.
//
// It records the features and event fields the expression reads.
type resolver struct {
	schema   *features.Schema
	lists    map[string]int
	features map[string]bool
	fields   map[string]bool
	vars     []string   // let variables in scope
	lets     []ast.Node // the value of each of vars, resolved
	errs     []*file.Error
	notes    []lintNote
}

var comparisons = map[string]bool{
	"==": true, "!=": true, "<": true, "<=": true, ">": true, ">=": true,
	"in": true, "contains": true, "startsWith": true, "endsWith": true, "matches": true,
}

var arithmetic = map[string]bool{"+": true, "-": true, "*": true, "/": true, "%": true, "**": true, "^": true}

// structRoots are the Env fields that are event sub-objects.
var structRoots = map[string]bool{"card": true, "account": true, "merchant": true, "device": true, "billing": true, "shipping": true}

func (r *resolver) errorf(n ast.Node, format string, args ...any) {
	r.errs = append(r.errs, &file.Error{Location: n.Location(), Message: fmt.Sprintf(format, args...)})
}

func (r *resolver) inScope(name string) bool { return slices.Contains(r.vars, name) }

func (r *resolver) node(p *ast.Node) {
	switch n := (*p).(type) {
	case *ast.IdentifierNode:
		r.identifier(p, n)
	case *ast.MemberNode:
		r.member(p, n)
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
		r.vars, r.lets = append(r.vars, n.Name), append(r.lets, n.Value)
		r.node(&n.Expr)
		r.vars, r.lets = r.vars[:len(r.vars)-1], r.lets[:len(r.lets)-1]
	case *ast.SequenceNode:
		for i := range n.Nodes {
			r.node(&n.Nodes[i])
		}
	case *ast.ConditionalNode:
		r.node(&n.Cond)
		r.node(&n.Exp1)
		r.node(&n.Exp2)
	case *ast.ArrayNode:
		missing := false
		for i := range n.Nodes {
			r.node(&n.Nodes[i])
			var g []ast.Node
			r.missable(n.Nodes[i], &g, map[string]bool{})
			missing = missing || len(g) > 0
		}
		if missing {
			r.notes = append(r.notes, lintNote{"missing-in-list",
				"a list literal holds a value that may be missing: a comparison of its elements (in a closure such as any or all) is not guarded; test has(x) first"})
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
		if c, ok := negatedComparison(n); ok {
			// "x not in L" is one comparison: false when x is missing.
			r.node(&c.Left)
			if !r.inList(c) {
				r.node(&c.Right)
			}
			r.guard(p, c.Left, c.Right)
			return
		}
		r.node(&n.Node)
	case *ast.BinaryNode:
		if n.Operator == "==" || n.Operator == "!=" {
			for _, side := range []ast.Node{n.Left, n.Right} {
				if s, ok := side.(*ast.StringNode); ok && s.Value == "" {
					r.notes = append(r.notes, lintNote{"empty-compare",
						`a comparison with "" is always false, since an empty value is missing: use has(x) or not has(x)`})
				}
			}
		}
		r.node(&n.Left)
		if !r.inList(n) {
			r.node(&n.Right)
		}
		if comparisons[n.Operator] {
			r.guard(p, n.Left, n.Right)
		}
		if n.Operator == "??" {
			r.defaultFor(p, n)
		}
	}
}

// defaultFor lowers x ?? y to (present(x) ? x : y): a missing feature or
// field is not nil (it reads as NaN, "" or a zero time), so ?? would never
// replace it.
func (r *resolver) defaultFor(p *ast.Node, n *ast.BinaryNode) {
	var guards []ast.Node
	r.missable(n.Left, &guards, map[string]bool{})
	if len(guards) == 0 {
		return
	}
	ast.Patch(p, &ast.ConditionalNode{Cond: conjunction(guards), Exp1: n.Left, Exp2: n.Right})
}

// lastIndex is the index of the last v in s, or -1.
func lastIndex(s []string, v string) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == v {
			return i
		}
	}
	return -1
}

// conjunction is (g1 and g2 and ...); true when there are none.
func conjunction(guards []ast.Node) ast.Node {
	if len(guards) == 0 {
		return &ast.BoolNode{Value: true}
	}
	g := guards[0]
	for _, x := range guards[1:] {
		g = &ast.BinaryNode{Operator: "and", Left: g, Right: x}
	}
	return g
}

// inList resolves the list of x in @list to its set, for a map lookup;
// elsewhere (any(@list, ...), len(@list)) a list is a slice.
func (r *resolver) inList(n *ast.BinaryNode) bool {
	if n.Operator != "in" {
		return false
	}
	if id, ok := n.Right.(*ast.IdentifierNode); ok && strings.HasPrefix(id.Value, "$") && !r.inScope(id.Value) {
		if i, ok := r.lists[id.Value[1:]]; ok {
			ast.Patch(&n.Right, slot("__lists", i))
			return true
		}
	}
	return false
}

// negatedComparison recognizes the parser's form of "a not in b" (and not
// contains, not matches, ...): a not whose operand is a comparison at the
// same position, unlike not (a in b), which starts at the not.
func negatedComparison(n *ast.UnaryNode) (*ast.BinaryNode, bool) {
	if n.Operator != "not" {
		return nil, false
	}
	c, ok := n.Node.(*ast.BinaryNode)
	return c, ok && comparisons[c.Operator] && c.Location() == n.Location()
}

func (r *resolver) identifier(p *ast.Node, n *ast.IdentifierNode) {
	v := n.Value
	switch {
	case r.inScope(v):
	case v == "$env":
		r.errorf(n, "$env is not available in rules")
	case strings.HasPrefix(v, "$"):
		name := v[1:]
		if i, ok := r.lists[name]; ok {
			ast.Patch(p, slot("__listv", i))
			return
		}
		r.errorf(n, "unknown list @%s%s", name, Suggest(name, sortedKeys(r.lists), "@"))
	case strings.HasPrefix(v, "__"):
		r.errorf(n, "unknown name %s", v)
	case envRoots[v]:
		if _, ok := eventFieldIndex[v]; ok || v == "attributes" {
			r.fields[v] = true
		}
	default:
		if r.schema != nil {
			if i, ok := r.schema.Lookup(v); ok {
				r.features[v] = true
				ast.Patch(p, slot(slotSlice(r.schema.Fields[i].Type), i))
				return
			}
		}
		r.errorf(n, "unknown name %s%s", v, Suggest(v, r.names(), ""))
	}
}

// names lists what an identifier may be, for suggestions.
func (r *resolver) names() []string {
	var out []string
	for k := range envRoots {
		if !strings.HasPrefix(k, "__") {
			out = append(out, k)
		}
	}
	if r.schema != nil {
		for _, f := range r.schema.Fields {
			out = append(out, f.Name)
		}
	}
	slices.Sort(out)
	return out
}

func slotSlice(t features.Type) string {
	switch t {
	case features.Bool:
		return "__bool"
	case features.String:
		return "__str"
	}
	return "__num"
}

func slot(slice string, i int) ast.Node {
	return &ast.MemberNode{Node: &ast.IdentifierNode{Value: slice}, Property: &ast.IntegerNode{Value: i}}
}

// memberPath returns the dotted path of a.b.c made of plain names.
func memberPath(n ast.Node) (root *ast.IdentifierNode, path []string, ok bool) {
	switch n := n.(type) {
	case *ast.IdentifierNode:
		return n, []string{n.Value}, true
	case *ast.MemberNode:
		prop, isStr := n.Property.(*ast.StringNode)
		if !isStr || n.Optional {
			return nil, nil, false
		}
		root, path, ok := memberPath(n.Node)
		if !ok {
			return nil, nil, false
		}
		return root, append(path, prop.Value), true
	}
	return nil, nil, false
}

func (r *resolver) member(p *ast.Node, n *ast.MemberNode) {
	if root, path, ok := memberPath(n); ok && !r.inScope(root.Value) {
		switch {
		case root.Value == "attributes" && len(path) == 2:
			r.fields["attributes."+path[1]] = true
			return
		case structRoots[root.Value]:
			f := path[0] + "." + path[1]
			if _, known := eventFieldIndex[f]; !known {
				r.errorf(root, "unknown field %s%s", f, Suggest(f, FieldPaths(), ""))
				return
			}
			r.fields[f] = true
			return
		}
	}
	r.node(&n.Node)
	if _, isName := n.Property.(*ast.StringNode); !isName {
		r.node(&n.Property)
	}
}

func (r *resolver) call(p *ast.Node, n *ast.CallNode) {
	if id, ok := n.Callee.(*ast.IdentifierNode); ok && !r.inScope(id.Value) {
		switch id.Value {
		case "has":
			r.has(p, n)
			return
		case "now":
			r.errorf(n, "now() is not available in rules: use time, the event's time, so that rules and their tests give the same result on replay")
			return
		}
	} else {
		r.node(&n.Callee)
	}
	for i := range n.Arguments {
		r.node(&n.Arguments[i])
	}
}

// has rewrites has(x) into a presence test of a feature or an event field.
func (r *resolver) has(p *ast.Node, n *ast.CallNode) {
	if len(n.Arguments) != 1 {
		r.errorf(n, "has() takes one feature or event field")
		return
	}
	arg := n.Arguments[0]
	root, path, ok := memberPath(arg)
	if ok && !r.inScope(root.Value) {
		name := strings.Join(path, ".")
		switch {
		case len(path) == 1 && strings.HasPrefix(name, "$"):
			r.errorf(arg, "has() takes a feature or an event field, not a list")
			return
		case len(path) == 2 && path[0] == "attributes":
			r.fields[name] = true
			ast.Patch(p, &ast.BinaryNode{Operator: "!=", Left: arg, Right: &ast.NilNode{}})
			return
		case len(path) == 1 && r.schema != nil:
			if i, isFeature := r.schema.Lookup(name); isFeature && !envRoots[name] {
				r.features[name] = true
				ast.Patch(p, slot("__has", i))
				return
			}
		}
		if f, isField := eventFieldIndex[name]; isField {
			r.fields[name] = true
			if f.kind == kindFloat || f.kind == kindInt {
				ast.Patch(p, &ast.BoolNode{Value: true}) // always present
				return
			}
			ast.Patch(p, presence(f))
			return
		}
		if len(path) == 1 && structRoots[name] {
			r.errorf(arg, "has(%s): name one of its fields, such as has(%s.%s)", name, name, map[string]string{
				"card": "country", "account": "id", "merchant": "mcc", "device": "ip", "billing": "country", "shipping": "country"}[name])
			return
		}
		if len(path) == 1 {
			r.errorf(arg, "has(): unknown name %s%s", name, Suggest(name, r.names(), ""))
			return
		}
		r.errorf(arg, "has(): unknown field %s%s", name, Suggest(name, FieldPaths(), ""))
		return
	}
	r.errorf(arg, "has() takes a feature or an event field such as has(card.country)")
}

// presence is the node testing that an event field has a value: a string
// is not empty, a time is not zero.
func presence(f *eventField) ast.Node {
	if f.kind == kindTime {
		isZero := &ast.CallNode{Callee: &ast.MemberNode{Node: fieldNode(f.Path), Property: &ast.StringNode{Value: "IsZero"}, Method: true}}
		return &ast.UnaryNode{Operator: "not", Node: isZero}
	}
	return &ast.BinaryNode{Operator: "!=", Left: fieldNode(f.Path), Right: &ast.StringNode{Value: ""}}
}

// fieldNode is a read of an event field by its dotted path.
func fieldNode(path string) ast.Node {
	parts := strings.Split(path, ".")
	var n ast.Node = &ast.IdentifierNode{Value: parts[0]}
	for _, p := range parts[1:] {
		n = &ast.MemberNode{Node: n, Property: &ast.StringNode{Value: p}}
	}
	return n
}

// callPredicate is a call of fn($env): expr compiles it to a typed call
// that neither reflects nor allocates.
func callPredicate(fn func(any) bool) ast.Node {
	return &ast.CallNode{Callee: &ast.ConstantNode{Value: fn}, Arguments: []ast.Node{&ast.IdentifierNode{Value: "$env"}}}
}

// guard makes the comparison at p false when a value it compares — a
// feature, an event field or an attribute, also inside arithmetic or a
// function call — is missing: p becomes (present(a) and ... and p).
func (r *resolver) guard(p *ast.Node, operands ...ast.Node) {
	var guards []ast.Node
	seen := map[string]bool{}
	for _, o := range operands {
		r.missable(o, &guards, seen)
	}
	if len(guards) == 0 {
		return
	}
	cmp := *p
	ast.Patch(p, &ast.BinaryNode{Operator: "and", Left: conjunction(guards), Right: cmp})
}

// missable collects presence tests for the values n reads. It looks
// through arithmetic, unary operators, builtin function arguments, slices,
// method calls, let variables (to their values) and conditionals (the
// branch taken); not into nested comparisons, logic or closures, which are
// boolean values of their own.
func (r *resolver) missable(n ast.Node, guards *[]ast.Node, seen map[string]bool) {
	add := func(key string, g ast.Node) {
		if !seen[key] {
			seen[key] = true
			*guards = append(*guards, g)
		}
	}
	switch n := n.(type) {
	case *ast.MemberNode:
		if id, ok := n.Node.(*ast.IdentifierNode); ok {
			if i, isInt := n.Property.(*ast.IntegerNode); isInt {
				switch id.Value {
				case "__num", "__bool", "__str":
					add(fmt.Sprintf("f%d", i.Value), slot("__has", i.Value))
					return
				case "__lists", "__listv":
					return
				}
			}
		}
		if root, path, ok := memberPath(n); ok && !r.inScope(root.Value) {
			if root.Value == "attributes" && len(path) == 2 {
				attr := &ast.MemberNode{Node: &ast.IdentifierNode{Value: "attributes"}, Property: &ast.StringNode{Value: path[1]}}
				add("a"+path[1], &ast.BinaryNode{Operator: "!=", Left: attr, Right: &ast.NilNode{}})
				return
			}
			if len(path) >= 2 {
				if f, isField := eventFieldIndex[path[0]+"."+path[1]]; isField {
					if f.kind == kindString || f.kind == kindTime {
						add("e"+f.Path, presence(f))
					}
					return
				}
			}
		}
		r.missable(n.Node, guards, seen)
		r.missable(n.Property, guards, seen)
	case *ast.IdentifierNode:
		if i := lastIndex(r.vars, n.Value); i >= 0 {
			// a let variable: missing when its value is (the innermost
			// binding of the name; values are resolved in their own scope)
			vars, lets := r.vars, r.lets
			r.vars, r.lets = vars[:i], lets[:i]
			r.missable(lets[i], guards, seen)
			r.vars, r.lets = vars, lets
			return
		}
		if f, isField := eventFieldIndex[n.Value]; isField && (f.kind == kindString || f.kind == kindTime) {
			add("e"+f.Path, presence(f))
		}
	case *ast.ConditionalNode:
		// c ? a : b is missing when the branch taken is
		var ga, gb []ast.Node
		r.missable(n.Exp1, &ga, map[string]bool{})
		r.missable(n.Exp2, &gb, map[string]bool{})
		if len(ga)+len(gb) > 0 {
			*guards = append(*guards, &ast.ConditionalNode{Cond: n.Cond, Exp1: conjunction(ga), Exp2: conjunction(gb)})
		}
	case *ast.BinaryNode:
		if arithmetic[n.Operator] {
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

// Suggest returns ` (did you mean x?)` for the candidate closest to name
// (prefix before it), or "" when none is close; candidates sorted.
func Suggest(name string, candidates []string, prefix string) string {
	best, bestD := "", len(name)+1
	for _, c := range candidates { // sorted: the first closest wins
		if d := editDistance(name, c); d < bestD {
			best, bestD = c, d
		}
	}
	if best == "" || bestD > max(1, min(3, len(name)/4)) {
		return ""
	}
	return " (did you mean " + prefix + best + "?)"
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
