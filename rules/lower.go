package rules

import (
	"cmp"
	"math"
	"reflect"
	"regexp"
	"strings"

	"github.com/expr-lang/expr/ast"

	"github.com/vigil-fraud/vigil/rules/presence"
)

// Lowering compiles the boolean subexpressions that only read typed
// values — features, event fields, constants, lists — into Go closures
// over *Env, and replaces each with one call of the closure. expr's VM
// boxes every value it loads into an interface (an allocation per float or
// string) and reads struct fields through reflection; a lowered predicate
// does neither. A rule whose whole `when` lowers runs as one typed call:
// no reflection, no allocation.
//
// Lowering is an optimization with no semantics of its own: each closure
// computes exactly what expr computes for the same (resolved, type-checked,
// optimized) tree — the same numeric conversions (int op int is int, / and
// ** are float), short-circuits and run-time panics. A differential test
// and a fuzz target compare both on random expressions and environments.
// Anything else (attributes, time, closures, most builtins, string
// concatenation) stays with expr's VM.

type (
	boolFn func(*Env) bool
	numFn  func(*Env) float64
	intFn  func(*Env) int
	strFn  func(*Env) string
)

type valueKind uint8

const (
	kOther valueKind = iota
	kBool
	kInt
	kFloat
	kString
)

func kindOf(n ast.Node) valueKind {
	t := n.Type()
	if t == nil {
		return kOther
	}
	switch t.Kind() {
	case reflect.Bool:
		return kBool
	case reflect.Int, reflect.Int64:
		return kInt
	case reflect.Float64:
		return kFloat
	case reflect.String:
		return kString
	}
	return kOther
}

func isNumber(k valueKind) bool { return k == kInt || k == kFloat }

// lowerer replaces maximal lowerable boolean subtrees of a type-checked
// tree with typed calls.
type lowerer struct {
	lowered int                 // subtrees replaced
	typed   map[ast.Node]boolFn // each replacement call's typed closure
}

// walk lowers the largest boolean subtrees it can, top down.
func (l *lowerer) walk(p *ast.Node) {
	n := *p
	if kindOf(n) == kBool && !isPredicateCall(n) {
		if _, isConst := n.(*ast.BoolNode); !isConst {
			if fn, ok := l.bool(n); ok {
				call := callPredicate(func(env any) bool { return fn(env.(*Env)) })
				ast.Patch(p, call)
				l.lowered++
				if l.typed == nil {
					l.typed = map[ast.Node]boolFn{}
				}
				l.typed[call] = fn
				return
			}
		}
	}
	switch n := n.(type) {
	case *ast.BinaryNode:
		l.walk(&n.Left)
		l.walk(&n.Right)
	case *ast.UnaryNode:
		l.walk(&n.Node)
	case *ast.ConditionalNode:
		l.walk(&n.Cond)
		l.walk(&n.Exp1)
		l.walk(&n.Exp2)
	case *ast.BuiltinNode:
		for i := range n.Arguments {
			l.walk(&n.Arguments[i])
		}
	case *ast.PredicateNode:
		l.walk(&n.Node)
	case *ast.CallNode:
		for i := range n.Arguments {
			l.walk(&n.Arguments[i])
		}
	case *ast.ArrayNode:
		for i := range n.Nodes {
			l.walk(&n.Nodes[i])
		}
	case *ast.VariableDeclaratorNode:
		l.walk(&n.Value)
		l.walk(&n.Expr)
	case *ast.SequenceNode:
		for i := range n.Nodes {
			l.walk(&n.Nodes[i])
		}
	case *ast.ChainNode:
		l.walk(&n.Node)
	}
}

// isPredicateCall reports a call of a func(any) bool constant on $env:
// a presence test or an already lowered subtree.
func isPredicateCall(n ast.Node) bool {
	_, ok := predicateOf(n)
	return ok
}

func predicateOf(n ast.Node) (func(any) bool, bool) {
	c, ok := n.(*ast.CallNode)
	if !ok || len(c.Arguments) != 1 {
		return nil, false
	}
	k, ok := c.Callee.(*ast.ConstantNode)
	if !ok {
		return nil, false
	}
	fn, ok := k.Value.(func(any) bool)
	if !ok {
		return nil, false
	}
	if id, isID := c.Arguments[0].(*ast.IdentifierNode); !isID || id.Value != "$env" {
		return nil, false
	}
	return fn, true
}

// slotIndex recognizes __num[i] and its siblings.
func slotIndex(n ast.Node) (slice string, i int, ok bool) {
	m, isMember := n.(*ast.MemberNode)
	if !isMember || m.Optional {
		return "", 0, false
	}
	id, isID := m.Node.(*ast.IdentifierNode)
	idx, isInt := m.Property.(*ast.IntegerNode)
	if !isID || !isInt || !strings.HasPrefix(id.Value, "__") || idx.Value < 0 {
		return "", 0, false
	}
	return id.Value, idx.Value, true
}

// field recognizes an event field read (amount, card.country).
func field(n ast.Node) (*eventField, bool) {
	switch n.(type) {
	case *ast.IdentifierNode, *ast.MemberNode:
	default:
		return nil, false
	}
	_, path, ok := presence.Path(n)
	if !ok {
		return nil, false
	}
	f, ok := eventFieldIndex[strings.Join(path, ".")]
	return f, ok
}

func (l *lowerer) bool(n ast.Node) (boolFn, bool) {
	if kindOf(n) != kBool {
		return nil, false
	}
	switch n := n.(type) {
	case *ast.BoolNode:
		v := n.Value
		return func(*Env) bool { return v }, true
	case *ast.MemberNode:
		switch s, i, ok := slotIndex(n); {
		case ok && s == "__bool":
			return func(e *Env) bool { return e.Bool[i] }, true
		case ok && s == "__has":
			return func(e *Env) bool { return e.Has[i] }, true
		}
	case *ast.CallNode:
		if fn, ok := predicateOf(n); ok {
			return func(e *Env) bool { return fn(e) }, true
		}
	case *ast.UnaryNode:
		if n.Operator == "not" || n.Operator == "!" {
			if a, ok := l.bool(n.Node); ok {
				return func(e *Env) bool { return !a(e) }, true
			}
		}
	case *ast.ConditionalNode:
		c, ok1 := l.bool(n.Cond)
		a, ok2 := l.bool(n.Exp1)
		b, ok3 := l.bool(n.Exp2)
		if ok1 && ok2 && ok3 {
			return func(e *Env) bool {
				if c(e) {
					return a(e)
				}
				return b(e)
			}, true
		}
	case *ast.BinaryNode:
		return l.binaryBool(n)
	}
	return nil, false
}

func (l *lowerer) binaryBool(n *ast.BinaryNode) (boolFn, bool) {
	lk, rk := kindOf(n.Left), kindOf(n.Right)
	switch n.Operator {
	case "and", "&&", "or", "||":
		a, ok1 := l.bool(n.Left)
		b, ok2 := l.bool(n.Right)
		if !ok1 || !ok2 {
			return nil, false
		}
		if n.Operator == "and" || n.Operator == "&&" {
			return func(e *Env) bool { return a(e) && b(e) }, true
		}
		return func(e *Env) bool { return a(e) || b(e) }, true
	case "==", "!=", "<", "<=", ">", ">=":
		var fn boolFn
		ok := false
		switch {
		case lk == kInt && rk == kInt:
			a, ok1 := l.int(n.Left)
			b, ok2 := l.int(n.Right)
			if ok = ok1 && ok2; ok {
				fn = compare(n.Operator, a, b)
			}
		case isNumber(lk) && isNumber(rk):
			a, ok1 := l.num(n.Left)
			b, ok2 := l.num(n.Right)
			if ok = ok1 && ok2; ok {
				fn = compareFloat(n.Operator, a, b)
			}
		case lk == kString && rk == kString:
			a, ok1 := l.str(n.Left)
			b, ok2 := l.str(n.Right)
			if ok = ok1 && ok2; ok {
				fn = compare(n.Operator, a, b)
			}
		case lk == kBool && rk == kBool && (n.Operator == "==" || n.Operator == "!="):
			a, ok1 := l.bool(n.Left)
			b, ok2 := l.bool(n.Right)
			if ok = ok1 && ok2; ok {
				if n.Operator == "==" {
					fn = func(e *Env) bool { return a(e) == b(e) }
				} else {
					fn = func(e *Env) bool { return a(e) != b(e) }
				}
			}
		}
		return fn, ok && fn != nil
	case "contains", "startsWith", "endsWith":
		a, ok1 := l.str(n.Left)
		b, ok2 := l.str(n.Right)
		if !ok1 || !ok2 {
			return nil, false
		}
		switch n.Operator {
		case "contains":
			return func(e *Env) bool { return strings.Contains(a(e), b(e)) }, true
		case "startsWith":
			return func(e *Env) bool { return strings.HasPrefix(a(e), b(e)) }, true
		}
		return func(e *Env) bool { return strings.HasSuffix(a(e), b(e)) }, true
	case "matches":
		pat, isConst := n.Right.(*ast.StringNode)
		a, ok := l.str(n.Left)
		if !isConst || !ok {
			return nil, false
		}
		re, err := regexp.Compile(pat.Value)
		if err != nil {
			return nil, false // expr reports it
		}
		return func(e *Env) bool { return re.MatchString(a(e)) }, true
	case "in":
		return l.in(n, lk)
	}
	return nil, false
}

func (l *lowerer) in(n *ast.BinaryNode, lk valueKind) (boolFn, bool) {
	if s, i, ok := slotIndex(n.Right); ok && s == "__lists" && lk == kString {
		a, ok := l.str(n.Left)
		if !ok {
			return nil, false
		}
		return func(e *Env) bool { return e.Lists[i][a(e)] }, true
	}
	switch set := constantOf(n.Right).(type) {
	case map[string]struct{}:
		if a, ok := l.str(n.Left); ok && lk == kString {
			return func(e *Env) bool { _, in := set[a(e)]; return in }, true
		}
	case map[int]struct{}:
		if a, ok := l.int(n.Left); ok && lk == kInt {
			return func(e *Env) bool { _, in := set[a(e)]; return in }, true
		}
	}
	var elems []any
	switch r := n.Right.(type) {
	case *ast.ConstantNode: // an array of constants, folded
		arr, ok := r.Value.([]any)
		if !ok {
			return nil, false
		}
		elems = arr
	case *ast.ArrayNode:
		for _, x := range r.Nodes {
			switch c := x.(type) {
			case *ast.IntegerNode:
				elems = append(elems, c.Value)
			case *ast.FloatNode:
				elems = append(elems, c.Value)
			case *ast.StringNode:
				elems = append(elems, c.Value)
			case *ast.BoolNode:
				elems = append(elems, c.Value)
			default:
				return nil, false
			}
		}
	default:
		return nil, false
	}
	// As expr's in: an element matches when runtime.Equal says so; a
	// string never equals a number.
	switch {
	case lk == kString:
		set := map[string]struct{}{}
		for _, x := range elems {
			if s, ok := x.(string); ok {
				set[s] = struct{}{}
			}
		}
		a, ok := l.str(n.Left)
		return func(e *Env) bool { _, in := set[a(e)]; return in }, ok
	case lk == kInt:
		var ints []int
		var floats []float64
		for _, x := range elems {
			switch v := x.(type) {
			case int:
				ints = append(ints, v)
			case float64:
				floats = append(floats, v)
			}
		}
		a, ok := l.int(n.Left)
		return func(e *Env) bool {
			x := a(e)
			for _, v := range ints {
				if x == v {
					return true
				}
			}
			for _, v := range floats {
				if float64(x) == v {
					return true
				}
			}
			return false
		}, ok
	case lk == kFloat:
		var values []float64
		for _, x := range elems {
			switch v := x.(type) {
			case int:
				values = append(values, float64(v))
			case float64:
				values = append(values, v)
			}
		}
		a, ok := l.num(n.Left)
		return func(e *Env) bool {
			x := a(e)
			for _, v := range values {
				if x == v {
					return true
				}
			}
			return false
		}, ok
	}
	return nil, false
}

func constantOf(n ast.Node) any {
	if c, ok := n.(*ast.ConstantNode); ok {
		return c.Value
	}
	return nil
}

// compare lowers a comparison of two values of one ordered type.
func compare[T cmp.Ordered, F ~func(*Env) T](op string, a, b F) boolFn {
	switch op {
	case "==":
		return func(e *Env) bool { return a(e) == b(e) }
	case "!=":
		return func(e *Env) bool { return a(e) != b(e) }
	case "<":
		return func(e *Env) bool { return a(e) < b(e) }
	case "<=":
		return func(e *Env) bool { return a(e) <= b(e) }
	case ">":
		return func(e *Env) bool { return a(e) > b(e) }
	case ">=":
		return func(e *Env) bool { return a(e) >= b(e) }
	}
	return nil
}

func compareFloat(op string, a, b numFn) boolFn {
	// Comparisons with a constant are the common case: keep the constant
	// out of the call chain.
	if c, ok := constFloat(b); ok {
		switch op {
		case "==":
			return func(e *Env) bool { return a(e) == c }
		case "!=":
			return func(e *Env) bool { return a(e) != c }
		case "<":
			return func(e *Env) bool { return a(e) < c }
		case "<=":
			return func(e *Env) bool { return a(e) <= c }
		case ">":
			return func(e *Env) bool { return a(e) > c }
		case ">=":
			return func(e *Env) bool { return a(e) >= c }
		}
	}
	return compare(op, a, b)
}

// constFloat reports whether fn is a constant made by num, and its value.
// Constants are recognized by evaluating on a nil Env: only constant
// closures ignore their Env.
func constFloat(fn numFn) (v float64, ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	return fn(nil), true
}

// constBool reports whether a predicate is constant, and its value.
func constBool(fn func(any) bool) (v bool, ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	return fn((*Env)(nil)), true
}

// num lowers a numeric expression to float64, as expr does whenever a
// float is involved.
func (l *lowerer) num(n ast.Node) (numFn, bool) {
	switch kindOf(n) {
	case kInt:
		a, ok := l.int(n)
		if !ok {
			return nil, false
		}
		if c, isConst := n.(*ast.IntegerNode); isConst {
			v := float64(c.Value)
			return func(*Env) float64 { return v }, true
		}
		return func(e *Env) float64 { return float64(a(e)) }, true
	case kFloat:
	default:
		return nil, false
	}
	switch n := n.(type) {
	case *ast.FloatNode:
		v := n.Value
		return func(*Env) float64 { return v }, true
	case *ast.IntegerNode: // typed float by the checker
		v := float64(n.Value)
		return func(*Env) float64 { return v }, true
	case *ast.IdentifierNode:
		if n.Value == "amount" {
			return func(e *Env) float64 { return e.Amount }, true
		}
	case *ast.MemberNode:
		if s, i, ok := slotIndex(n); ok && s == "__num" {
			return func(e *Env) float64 { return e.Num[i] }, true
		}
	case *ast.UnaryNode:
		a, ok := l.num(n.Node)
		switch {
		case ok && n.Operator == "-":
			return func(e *Env) float64 { return -a(e) }, true
		case ok && n.Operator == "+":
			return a, true
		}
	case *ast.ConditionalNode:
		if kindOf(n.Exp1) == kFloat && kindOf(n.Exp2) == kFloat {
			c, ok1 := l.bool(n.Cond)
			a, ok2 := l.num(n.Exp1)
			b, ok3 := l.num(n.Exp2)
			if ok1 && ok2 && ok3 {
				return func(e *Env) float64 {
					if c(e) {
						return a(e)
					}
					return b(e)
				}, true
			}
		}
	case *ast.BuiltinNode:
		if n.Name == "abs" && len(n.Arguments) == 1 && kindOf(n.Arguments[0]) == kFloat {
			if a, ok := l.num(n.Arguments[0]); ok {
				return func(e *Env) float64 {
					if x := a(e); x < 0 {
						return -x
					} else {
						return x
					}
				}, true
			}
		}
	case *ast.BinaryNode:
		if !isNumber(kindOf(n.Left)) || !isNumber(kindOf(n.Right)) {
			return nil, false
		}
		a, ok1 := l.num(n.Left)
		b, ok2 := l.num(n.Right)
		if !ok1 || !ok2 {
			return nil, false
		}
		switch n.Operator {
		case "+":
			return func(e *Env) float64 { return a(e) + b(e) }, true
		case "-":
			return func(e *Env) float64 { return a(e) - b(e) }, true
		case "*":
			return func(e *Env) float64 { return a(e) * b(e) }, true
		case "/":
			return func(e *Env) float64 { return a(e) / b(e) }, true
		case "**", "^":
			return func(e *Env) float64 { return math.Pow(a(e), b(e)) }, true
		}
	}
	return nil, false
}

// int lowers an integer expression (int op int stays int in expr).
func (l *lowerer) int(n ast.Node) (intFn, bool) {
	if kindOf(n) != kInt {
		return nil, false
	}
	switch n := n.(type) {
	case *ast.IntegerNode:
		v := n.Value
		return func(*Env) int { return v }, true
	case *ast.IdentifierNode:
		if n.Value == "amount_minor" {
			return func(e *Env) int { return int(e.AmountMinor) }, true
		}
	case *ast.UnaryNode:
		a, ok := l.int(n.Node)
		switch {
		case ok && n.Operator == "-":
			return func(e *Env) int { return -a(e) }, true
		case ok && n.Operator == "+":
			return a, true
		}
	case *ast.BuiltinNode:
		if n.Name == "abs" && len(n.Arguments) == 1 {
			if a, ok := l.int(n.Arguments[0]); ok {
				return func(e *Env) int {
					if x := a(e); x < 0 {
						return -x
					} else {
						return x
					}
				}, true
			}
		}
	case *ast.ConditionalNode:
		if kindOf(n.Exp1) == kInt && kindOf(n.Exp2) == kInt {
			c, ok1 := l.bool(n.Cond)
			a, ok2 := l.int(n.Exp1)
			b, ok3 := l.int(n.Exp2)
			if ok1 && ok2 && ok3 {
				return func(e *Env) int {
					if c(e) {
						return a(e)
					}
					return b(e)
				}, true
			}
		}
	case *ast.BinaryNode:
		a, ok1 := l.int(n.Left)
		b, ok2 := l.int(n.Right)
		if !ok1 || !ok2 {
			return nil, false
		}
		switch n.Operator {
		case "+":
			return func(e *Env) int { return a(e) + b(e) }, true
		case "-":
			return func(e *Env) int { return a(e) - b(e) }, true
		case "*":
			return func(e *Env) int { return a(e) * b(e) }, true
		case "%":
			return func(e *Env) int { return a(e) % b(e) }, true
		}
	}
	return nil, false
}

func (l *lowerer) str(n ast.Node) (strFn, bool) {
	if kindOf(n) != kString {
		return nil, false
	}
	switch n := n.(type) {
	case *ast.StringNode:
		v := n.Value
		return func(*Env) string { return v }, true
	case *ast.MemberNode:
		if s, i, ok := slotIndex(n); ok && s == "__str" {
			return func(e *Env) string { return e.Str[i] }, true
		}
	case *ast.ConditionalNode:
		c, ok1 := l.bool(n.Cond)
		a, ok2 := l.str(n.Exp1)
		b, ok3 := l.str(n.Exp2)
		if ok1 && ok2 && ok3 {
			return func(e *Env) string {
				if c(e) {
					return a(e)
				}
				return b(e)
			}, true
		}
		return nil, false
	}
	if f, ok := field(n); ok && f.kind == kindString {
		return f.str, true
	}
	return nil, false
}
