package rules

import (
	"fmt"
	"slices"
	"strings"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"

	"github.com/vigil-fraud/vigil/features"
	"github.com/vigil-fraud/vigil/rules/presence"
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
	g        presence.Guarder // let variables in scope, comparison guards
	errs     []*file.Error
	notes    []lintNote
}

// structRoots are the Env fields that are event sub-objects.
var structRoots = map[string]bool{"card": true, "account": true, "merchant": true, "device": true, "billing": true, "shipping": true}

func (r *resolver) errorf(n ast.Node, format string, args ...any) {
	r.errs = append(r.errs, &file.Error{Location: n.Location(), Message: fmt.Sprintf(format, args...)})
}

func (r *resolver) inScope(name string) bool { return r.g.InScope(name) }

// newResolver makes a resolver for one expression.
func newResolver(schema *features.Schema, lists map[string]int) *resolver {
	r := &resolver{schema: schema, lists: lists, features: map[string]bool{}, fields: map[string]bool{}}
	r.g.Slot = slotPresence
	return r
}

// slotPresence gives the presence test of a feature slot read (__num[i],
// __bool[i], __str[i] are present when __has[i]); list slots are never
// missing.
func slotPresence(n *ast.MemberNode) (ast.Node, string, bool) {
	id, ok := n.Node.(*ast.IdentifierNode)
	i, isInt := n.Property.(*ast.IntegerNode)
	if !ok || !isInt {
		return nil, "", false
	}
	switch id.Value {
	case "__num", "__bool", "__str":
		return slot("__has", i.Value), fmt.Sprintf("f%d", i.Value), true
	case "__lists", "__listv":
		return nil, "", true
	}
	return nil, "", false
}

func (r *resolver) node(p *ast.Node) { presence.Walk(p, &r.g, r) }

// Binary lints comparisons with "" and resolves x in @list to the list's
// set (Resolver).
func (r *resolver) Binary(n *ast.BinaryNode) (skipRight bool) {
	if n.Operator == "==" || n.Operator == "!=" {
		for _, side := range []ast.Node{n.Left, n.Right} {
			if s, ok := side.(*ast.StringNode); ok && s.Value == "" {
				r.notes = append(r.notes, lintNote{"empty-compare",
					`a comparison with "" is always false, since an empty value is missing: use has(x) or not has(x)`})
			}
		}
	}
	return r.inList(n)
}

// List lints a list or map literal of values that may be missing
// (Resolver).
func (r *resolver) List(elems []ast.Node) {
	for _, x := range elems {
		var g []ast.Node
		if r.g.Missable(x, &g, map[string]bool{}); len(g) > 0 {
			r.notes = append(r.notes, lintNote{"missing-in-list",
				"a list or map literal holds a value that may be missing: a comparison of what is read back from it (in a closure such as any or all, or m.key) is not guarded; test has(x) first"})
			return
		}
	}
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

// Identifier resolves a feature name to its slot, @list to the list
// (Resolver).
func (r *resolver) Identifier(p *ast.Node, n *ast.IdentifierNode) {
	v := n.Value
	switch {
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

// Member checks an event field's path and records it (Resolver).
func (r *resolver) Member(p *ast.Node, n *ast.MemberNode) bool {
	root, path, ok := presence.Path(n)
	if !ok || r.inScope(root.Value) {
		return false
	}
	switch {
	case root.Value == "attributes" && len(path) == 2:
		r.fields["attributes."+path[1]] = true
		return true
	case structRoots[root.Value]:
		f := path[0] + "." + path[1]
		if _, known := eventFieldIndex[f]; !known {
			r.errorf(root, "unknown field %s%s", f, Suggest(f, FieldPaths(), ""))
			return true
		}
		r.fields[f] = true
		return true
	}
	return false
}

// Call rewrites has() and refuses now() (Resolver).
func (r *resolver) Call(p *ast.Node, n *ast.CallNode, name string) bool {
	switch name {
	case "has":
		r.has(p, n)
		return true
	case "now":
		r.errorf(n, "now() is not available in rules: use time, the event's time, so that rules and their tests give the same result on replay")
		return true
	}
	return false
}

// has rewrites has(x) into a presence test of a feature or an event field.
func (r *resolver) has(p *ast.Node, n *ast.CallNode) {
	if len(n.Arguments) != 1 {
		r.errorf(n, "has() takes one feature or event field")
		return
	}
	arg := n.Arguments[0]
	root, path, ok := presence.Path(arg)
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
			ast.Patch(p, presence.Test(f.Path, f.presenceKind()))
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

// callPredicate is a call of fn($env): expr compiles it to a typed call
// that neither reflects nor allocates.
func callPredicate(fn func(any) bool) ast.Node {
	return &ast.CallNode{Callee: &ast.ConstantNode{Value: fn}, Arguments: []ast.Node{&ast.IdentifierNode{Value: "$env"}}}
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

// editDistance is the optimal string alignment distance: insertions,
// deletions, substitutions and swaps of two adjacent characters (lisetn,
// enabeld) count one each.
func editDistance(a, b string) int {
	pp := make([]int, len(b)+1) // the row before prev, for swaps
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
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], pp[j-2]+1)
			}
		}
		pp, prev, cur = prev, cur, pp
	}
	return prev[len(b)]
}
