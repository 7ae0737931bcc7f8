package presence

import "github.com/expr-lang/expr/ast"

// Resolver is what an expression's reader resolves itself as Walk goes
// through it: names, member paths and calls of named functions (rules map
// features to slots; both readers rewrite has()), with hooks for lints.
type Resolver interface {
	// Identifier resolves a name that is not a let variable in scope.
	Identifier(p *ast.Node, n *ast.IdentifierNode)
	// Member resolves a member read; false: Walk goes into its object
	// (and a computed property).
	Member(p *ast.Node, n *ast.MemberNode) bool
	// Call resolves a call of a function named by a name that is not a
	// let variable (has, now); false: Walk goes into its arguments.
	Call(p *ast.Node, n *ast.CallNode, name string) bool
	// Binary sees each binary operation (and each negated comparison)
	// before Walk goes into it; skipRight leaves its right side as the
	// hook made it (rules' x in @list).
	Binary(n *ast.BinaryNode) (skipRight bool)
	// List sees the elements of each list literal, and the values of each
	// map literal, once they are resolved.
	List(elems []ast.Node)
}

// Walk resolves the expression at p with r, keeps g's let variables in
// scope, makes every comparison false when a value it compares is missing
// (g.Guard) and lowers x ?? y (g.Default).
func Walk(p *ast.Node, g *Guarder, r Resolver) {
	w := walker{g, r}
	w.node(p)
}

type walker struct {
	g *Guarder
	r Resolver
}

func (w walker) nodes(ns []ast.Node) {
	for i := range ns {
		w.node(&ns[i])
	}
}

func (w walker) node(p *ast.Node) {
	switch n := (*p).(type) {
	case nil:
	case *ast.IdentifierNode:
		if !w.g.InScope(n.Value) {
			w.r.Identifier(p, n)
		}
	case *ast.MemberNode:
		if !w.r.Member(p, n) {
			w.node(&n.Node)
			if _, isName := n.Property.(*ast.StringNode); !isName {
				w.node(&n.Property)
			}
		}
	case *ast.ChainNode:
		w.node(&n.Node)
	case *ast.CallNode:
		if id, ok := n.Callee.(*ast.IdentifierNode); ok && !w.g.InScope(id.Value) {
			if w.r.Call(p, n, id.Value) {
				return
			}
		} else {
			w.node(&n.Callee)
		}
		w.nodes(n.Arguments)
	case *ast.BuiltinNode:
		w.nodes(n.Arguments)
	case *ast.PredicateNode:
		w.node(&n.Node)
	case *ast.VariableDeclaratorNode:
		w.node(&n.Value)
		w.g.Let(n.Name, n.Value)
		w.node(&n.Expr)
		w.g.EndLet()
	case *ast.SequenceNode:
		w.nodes(n.Nodes)
	case *ast.ConditionalNode:
		w.node(&n.Cond)
		w.node(&n.Exp1)
		w.node(&n.Exp2)
	case *ast.ArrayNode:
		w.nodes(n.Nodes)
		w.r.List(n.Nodes)
	case *ast.MapNode:
		w.nodes(n.Pairs)
		values := make([]ast.Node, 0, len(n.Pairs))
		for _, p := range n.Pairs {
			if pair, ok := p.(*ast.PairNode); ok {
				values = append(values, pair.Value)
			}
		}
		w.r.List(values)
	case *ast.PairNode:
		w.node(&n.Key)
		w.node(&n.Value)
	case *ast.SliceNode:
		w.node(&n.Node)
		w.node(&n.From)
		w.node(&n.To)
	case *ast.UnaryNode:
		if c, ok := Negated(n); ok {
			// "x not in L" is one comparison: false when x is missing.
			w.binary(c)
			w.g.Guard(p, c.Left, c.Right)
			return
		}
		w.node(&n.Node)
	case *ast.BinaryNode:
		w.binary(n)
		if Comparisons[n.Operator] {
			w.g.Guard(p, n.Left, n.Right)
		}
		if n.Operator == "??" {
			w.g.Default(p, n)
		}
	}
}

func (w walker) binary(n *ast.BinaryNode) {
	skipRight := w.r.Binary(n)
	w.node(&n.Left)
	if !skipRight {
		w.node(&n.Right)
	}
}
