package rules

import (
	"fmt"

	"github.com/expr-lang/expr/ast"
)

// MaxIterations bounds how many closure iterations one rule may make per
// transaction, as estimated when it compiles: expr budgets a rule's
// allocations, not its time, and iterating a list allocates nothing, so
// any(@big, {any(@big, {# == id})}) over 3,000 values would take seconds
// on every transaction.
const MaxIterations = 100_000

// unknownLen is the assumed length of a list whose length is not known
// when the rule compiles (split(...), a filtered list's source unknown).
const unknownLen = 64

// closureBuiltins are the builtins that call a closure per element of
// their first argument.
var closureBuiltins = map[string]bool{
	"all": true, "none": true, "any": true, "one": true, "filter": true, "map": true, "count": true, "sum": true,
	"find": true, "findIndex": true, "findLast": true, "findLastIndex": true, "groupBy": true, "sortBy": true, "reduce": true,
}

// iterations estimates the closure iterations of a resolved expression
// (lists by their declared sizes): each closure runs once per element of
// its list, times the iterations of the closures around it.
func iterations(n ast.Node, listLen []int) float64 {
	var total float64
	lets := map[string]ast.Node{} // let names cannot be declared twice
	var walk func(n ast.Node, times float64)
	walk = func(n ast.Node, times float64) {
		switch n := n.(type) {
		case nil:
		case *ast.BuiltinNode:
			if closureBuiltins[n.Name] && len(n.Arguments) >= 2 {
				if p, ok := n.Arguments[1].(*ast.PredicateNode); ok {
					l := float64(lengthOf(n.Arguments[0], listLen, lets))
					total += times * l
					walk(n.Arguments[0], times)
					walk(p.Node, times*l)
					for _, a := range n.Arguments[2:] {
						walk(a, times)
					}
					return
				}
			}
			for _, a := range n.Arguments {
				walk(a, times)
			}
		case *ast.PredicateNode:
			walk(n.Node, times)
		case *ast.BinaryNode:
			walk(n.Left, times)
			walk(n.Right, times)
		case *ast.UnaryNode:
			walk(n.Node, times)
		case *ast.CallNode:
			walk(n.Callee, times)
			for _, a := range n.Arguments {
				walk(a, times)
			}
		case *ast.MemberNode:
			walk(n.Node, times)
			walk(n.Property, times)
		case *ast.ChainNode:
			walk(n.Node, times)
		case *ast.ConditionalNode:
			walk(n.Cond, times)
			walk(n.Exp1, times)
			walk(n.Exp2, times)
		case *ast.ArrayNode:
			for _, x := range n.Nodes {
				walk(x, times)
			}
		case *ast.MapNode:
			for _, x := range n.Pairs {
				walk(x, times)
			}
		case *ast.PairNode:
			walk(n.Key, times)
			walk(n.Value, times)
		case *ast.SliceNode:
			walk(n.Node, times)
			walk(n.From, times)
			walk(n.To, times)
		case *ast.VariableDeclaratorNode:
			walk(n.Value, times)
			lets[n.Name] = n.Value
			walk(n.Expr, times)
		case *ast.SequenceNode:
			for _, x := range n.Nodes {
				walk(x, times)
			}
		}
	}
	walk(n, 1)
	return total
}

// lengthOf is the length of a list value: a declared list, a literal, a
// constant range, what a filter or map keeps of its source, a let
// variable's value; unknownLen otherwise.
func lengthOf(n ast.Node, listLen []int, lets map[string]ast.Node) int {
	switch n := n.(type) {
	case *ast.IdentifierNode:
		if v, ok := lets[n.Value]; ok {
			return lengthOf(v, listLen, lets)
		}
	case *ast.MemberNode:
		if id, ok := n.Node.(*ast.IdentifierNode); ok && id.Value == "__listv" {
			if i, ok := n.Property.(*ast.IntegerNode); ok && i.Value < len(listLen) {
				return listLen[i.Value]
			}
		}
	case *ast.ArrayNode:
		return len(n.Nodes)
	case *ast.BinaryNode:
		if n.Operator == ".." {
			lo, ok1 := n.Left.(*ast.IntegerNode)
			hi, ok2 := n.Right.(*ast.IntegerNode)
			if ok1 && ok2 {
				return max(0, hi.Value-lo.Value+1)
			}
		}
	case *ast.BuiltinNode:
		if (n.Name == "filter" || n.Name == "map" || n.Name == "sortBy") && len(n.Arguments) > 0 {
			return lengthOf(n.Arguments[0], listLen, lets)
		}
	}
	return unknownLen
}

// checkIterations refuses a rule whose closures would iterate more than
// MaxIterations times per transaction.
func checkIterations(n ast.Node, listLen []int) error {
	if it := iterations(n, listLen); it > MaxIterations {
		return fmt.Errorf("too costly: its closures would iterate about %.0f times per transaction (at most %d); "+
			"test membership with x in @list instead of any(@list, ...)", it, MaxIterations)
	}
	return nil
}
