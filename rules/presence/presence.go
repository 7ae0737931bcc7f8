// Package presence holds the missing-value semantics of the expressions
// that read an event — rules' when and feature filters: which values are
// missing, the presence test of each, and the rewrite that makes a
// comparison false when a value it compares is missing, whatever the
// operator. Rules and feature filters share it so that the same text means
// the same thing in both.
package presence

import (
	"reflect"
	"strings"
	"time"

	"github.com/expr-lang/expr/ast"

	"github.com/vigil-fraud/vigil/engine/event"
)

// Kind is the type of an event field as an expression reads it.
type Kind uint8

// Kinds of event fields.
const (
	Number Kind = iota // amount, amount_minor: always present
	String             // missing when empty
	Time               // missing when zero
)

// Fields are the event fields expressions read (event.Fields by its expr
// tags: channel, card.country, account.created, ...) with their kinds;
// Roots are its top-level names (channel, card, attributes, ...).
var Fields, Roots = func() (map[string]Kind, map[string]bool) {
	fields, roots := map[string]Kind{}, map[string]bool{}
	timeType := reflect.TypeFor[time.Time]()
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := range t.NumField() {
			f := t.Field(i)
			tag := f.Tag.Get("expr")
			if !f.IsExported() || tag == "" || tag == "-" {
				continue
			}
			path := prefix + tag
			if prefix == "" {
				roots[tag] = true
			}
			switch {
			case f.Type == timeType:
				fields[path] = Time
			case f.Type.Kind() == reflect.String:
				fields[path] = String
			case f.Type.Kind() == reflect.Struct && prefix == "":
				walk(f.Type, path+".")
			case f.Type.Kind() == reflect.Float64 || f.Type.Kind() == reflect.Int64:
				fields[path] = Number
			}
		}
	}
	walk(reflect.TypeFor[event.Fields](), "")
	return fields, roots
}()

// Comparisons are the operators whose result is false when a value they
// compare is missing.
var Comparisons = map[string]bool{
	"==": true, "!=": true, "<": true, "<=": true, ">": true, ">=": true,
	"in": true, "contains": true, "startsWith": true, "endsWith": true, "matches": true,
}

// Arithmetic are the operators a missing value goes through.
var Arithmetic = map[string]bool{"+": true, "-": true, "*": true, "/": true, "%": true, "**": true, "^": true}

// Negated recognizes the parser's form of "a not in b" (and not contains,
// not matches, ...): a not whose operand is a comparison at the same
// position, unlike not (a in b), which is logic.
func Negated(n *ast.UnaryNode) (*ast.BinaryNode, bool) {
	if n.Operator != "not" {
		return nil, false
	}
	c, ok := n.Node.(*ast.BinaryNode)
	return c, ok && Comparisons[c.Operator] && c.Location() == n.Location()
}

// Path returns the dotted path of a.b.c made of plain names, and its root.
func Path(n ast.Node) (root *ast.IdentifierNode, path []string, ok bool) {
	switch n := n.(type) {
	case *ast.IdentifierNode:
		return n, []string{n.Value}, true
	case *ast.MemberNode:
		prop, isStr := n.Property.(*ast.StringNode)
		if !isStr || n.Optional {
			return nil, nil, false
		}
		root, path, ok := Path(n.Node)
		if !ok {
			return nil, nil, false
		}
		return root, append(path, prop.Value), true
	}
	return nil, nil, false
}

// FieldNode is a read of an event field by its dotted path.
func FieldNode(path string) ast.Node {
	parts := strings.Split(path, ".")
	var n ast.Node = &ast.IdentifierNode{Value: parts[0]}
	for _, p := range parts[1:] {
		n = &ast.MemberNode{Node: n, Property: &ast.StringNode{Value: p}}
	}
	return n
}

// Test is the node testing that an event field has a value: a string is
// not empty, a time is not zero, a number always has one.
func Test(path string, kind Kind) ast.Node {
	switch kind {
	case Time:
		isZero := &ast.CallNode{Callee: &ast.MemberNode{Node: FieldNode(path), Property: &ast.StringNode{Value: "IsZero"}, Method: true}}
		return &ast.UnaryNode{Operator: "not", Node: isZero}
	case String:
		return &ast.BinaryNode{Operator: "!=", Left: FieldNode(path), Right: &ast.StringNode{Value: ""}}
	}
	return &ast.BoolNode{Value: true}
}

// AttributeTest is the node testing that an attribute exists and is not
// null.
func AttributeTest(name string) ast.Node {
	attr := &ast.MemberNode{Node: &ast.IdentifierNode{Value: "attributes"}, Property: &ast.StringNode{Value: name}}
	return &ast.BinaryNode{Operator: "!=", Left: attr, Right: &ast.NilNode{}}
}

// Conjunction is (g1 and g2 and ...); true when there are none.
func Conjunction(guards []ast.Node) ast.Node {
	if len(guards) == 0 {
		return &ast.BoolNode{Value: true}
	}
	g := guards[0]
	for _, x := range guards[1:] {
		g = &ast.BinaryNode{Operator: "and", Left: g, Right: x}
	}
	return g
}
