package presence

import "github.com/expr-lang/expr/ast"

// Guarder rewrites comparisons so that they are false when a value they
// compare is missing. It tracks the let variables in scope (a variable is
// missing when its value is); its owner calls Let and EndLet around a let's
// body as it walks the expression.
type Guarder struct {
	// Slot, when set, gives the presence test of a member read the owner
	// rewrote itself (rules' feature slots __num[i]): key names it for
	// deduplication, handled stops the look into n (also with no test).
	Slot func(n *ast.MemberNode) (test ast.Node, key string, handled bool)

	vars []string   // let variables in scope, innermost last
	lets []ast.Node // the value of each
}

// Let brings a let variable into scope, bound to its (rewritten) value.
func (g *Guarder) Let(name string, value ast.Node) {
	g.vars, g.lets = append(g.vars, name), append(g.lets, value)
}

// EndLet ends the scope of the innermost let variable.
func (g *Guarder) EndLet() { g.vars, g.lets = g.vars[:len(g.vars)-1], g.lets[:len(g.lets)-1] }

// InScope reports whether name is a let variable in scope.
func (g *Guarder) InScope(name string) bool { return g.let(name) >= 0 }

func (g *Guarder) let(name string) int {
	for i := len(g.vars) - 1; i >= 0; i-- {
		if g.vars[i] == name {
			return i
		}
	}
	return -1
}

// Guard makes the comparison at p false when a value it compares is
// missing: p becomes (present(a) and ... and p).
func (g *Guarder) Guard(p *ast.Node, operands ...ast.Node) {
	var guards []ast.Node
	seen := map[string]bool{}
	for _, o := range operands {
		g.Missable(o, &guards, seen)
	}
	if len(guards) > 0 {
		ast.Patch(p, &ast.BinaryNode{Operator: "and", Left: Conjunction(guards), Right: *p})
	}
}

// Default lowers x ?? y at p to (present(x) ? x : y): a missing value is
// not nil (it reads as NaN, "" or a zero time), so ?? would never replace
// it.
func (g *Guarder) Default(p *ast.Node, n *ast.BinaryNode) {
	var guards []ast.Node
	g.Missable(n.Left, &guards, map[string]bool{})
	if len(guards) > 0 {
		ast.Patch(p, &ast.ConditionalNode{Cond: Conjunction(guards), Exp1: n.Left, Exp2: n.Right})
	}
}

// Missable collects the presence tests of the values n reads. It looks
// through arithmetic, unary signs, builtin function arguments, slices,
// method calls, let variables (to their values) and conditionals (the
// branch taken); not into nested comparisons, logic or closures, which are
// boolean values of their own.
func (g *Guarder) Missable(n ast.Node, guards *[]ast.Node, seen map[string]bool) {
	add := func(key string, t ast.Node) {
		if !seen[key] {
			seen[key] = true
			*guards = append(*guards, t)
		}
	}
	switch n := n.(type) {
	case *ast.MemberNode:
		if g.Slot != nil {
			if t, key, handled := g.Slot(n); handled {
				if t != nil {
					add(key, t)
				}
				return
			}
		}
		if root, path, ok := Path(n); ok && !g.InScope(root.Value) && len(path) >= 2 {
			if path[0] == "attributes" && len(path) == 2 {
				add("a"+path[1], AttributeTest(path[1]))
				return
			}
			f := path[0] + "." + path[1]
			if kind, isField := Fields[f]; isField {
				if kind != Number {
					add("e"+f, Test(f, kind))
				}
				return
			}
		}
		g.Missable(n.Node, guards, seen)
		g.Missable(n.Property, guards, seen)
	case *ast.IdentifierNode:
		if i := g.let(n.Value); i >= 0 {
			// missing when its value is; the value is read in the scope
			// of its own declaration
			vars, lets := g.vars, g.lets
			g.vars, g.lets = vars[:i], lets[:i]
			g.Missable(lets[i], guards, seen)
			g.vars, g.lets = vars, lets
			return
		}
		if kind, isField := Fields[n.Value]; isField && kind != Number {
			add("e"+n.Value, Test(n.Value, kind))
		}
	case *ast.ConditionalNode:
		var ga, gb []ast.Node
		g.Missable(n.Exp1, &ga, map[string]bool{})
		g.Missable(n.Exp2, &gb, map[string]bool{})
		if len(ga)+len(gb) > 0 {
			*guards = append(*guards, &ast.ConditionalNode{Cond: n.Cond, Exp1: Conjunction(ga), Exp2: Conjunction(gb)})
		}
	case *ast.BinaryNode:
		if Arithmetic[n.Operator] {
			g.Missable(n.Left, guards, seen)
			g.Missable(n.Right, guards, seen)
		}
	case *ast.UnaryNode:
		if n.Operator == "-" || n.Operator == "+" {
			g.Missable(n.Node, guards, seen)
		}
	case *ast.BuiltinNode:
		for _, a := range n.Arguments {
			if _, closure := a.(*ast.PredicateNode); !closure {
				g.Missable(a, guards, seen)
			}
		}
	case *ast.CallNode:
		if m, isMethod := n.Callee.(*ast.MemberNode); isMethod {
			g.Missable(m.Node, guards, seen)
		}
	case *ast.SliceNode:
		g.Missable(n.Node, guards, seen)
	case *ast.ChainNode:
		g.Missable(n.Node, guards, seen)
	}
}
