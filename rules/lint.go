package rules

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/expr-lang/expr/ast"

	"github.com/vigil-fraud/vigil/features"
)

// Warning is a lint finding: the set is valid, but a rule is probably not
// what its author meant.
type Warning struct {
	Pos     Pos
	Rule    string
	Check   string // short name of the check
	Message string
}

func (w Warning) String() string {
	if w.Rule != "" {
		return fmt.Sprintf("%s: rule %q: %s [%s]", w.Pos, w.Rule, w.Message, w.Check)
	}
	return fmt.Sprintf("%s: %s [%s]", w.Pos, w.Message, w.Check)
}

// Lint checks:
//
//	never-fires       the expression is always false (constant, or contradictory comparisons)
//	always-fires      the expression is always true
//	empty-compare     a comparison with "" — always false, since an empty value is missing
//	rollout-zero      an active rule with rollout 0 never counts
//	duplicate-when    two rules have the same expression
//	duplicate-reason  two rules return the same reason code
//	action-by-score   a step_up rule's own score reaches pause_at: every hit pauses
//	threshold         no combination of active rules reaches step_up_at or pause_at
//	no-effect         an allow-list rule, when no combination of the other rules reaches step_up_at
func Lint(s *Set) []Warning {
	var out []Warning
	warn := func(r *Rule, check, format string, args ...any) {
		pos, name := Pos{}, ""
		if r != nil {
			pos, name = r.Pos, r.Name
		}
		out = append(out, Warning{Pos: pos, Rule: name, Check: check, Message: fmt.Sprintf(format, args...)})
	}
	sumActive, sumOthers := 0, map[string]int{}
	for _, r := range s.Rules {
		if r.Mode == Active && r.rollout > 0 {
			sumActive += r.Score
		}
	}
	for _, r := range s.Rules {
		if r.Mode == Active && r.rollout > 0 {
			sumOthers[r.Name] = sumActive - r.Score
		}
	}
	byWhen, byReason := map[string]*Rule{}, map[string]*Rule{}
	for _, r := range s.Rules {
		for _, n := range r.lint.notes {
			warn(r, n.check, "%s", n.msg)
		}
		switch r.lint.constant {
		case constFalse:
			warn(r, "never-fires", "the expression is always false")
		case constTrue:
			warn(r, "always-fires", "the expression is always true: the rule fires on every transaction")
		}
		if r.Mode == Active && r.rollout == 0 {
			warn(r, "rollout-zero", "rollout 0: the rule never counts (use mode: shadow to watch it)")
		}
		if first, dup := byWhen[r.lint.canon]; dup && r.lint.canon != "" {
			warn(r, "duplicate-when", "same expression as rule %q (%s)", first.Name, first.Pos)
		} else {
			byWhen[r.lint.canon] = r
		}
		if first, dup := byReason[r.Reason]; dup {
			warn(r, "duplicate-reason", "reason %s is also rule %q's (%s): decisions will not tell them apart", r.Reason, first.Name, first.Pos)
		} else {
			byReason[r.Reason] = r
		}
		switch {
		case r.Action == StepUp && r.Score >= s.PauseAt:
			warn(r, "action-by-score", "score %d reaches pause_at %d by itself: every hit pauses; use action pause or a lower score", r.Score, s.PauseAt)
		case r.Action == Approve && r.Score == 0 && r.Mode == Active && min(sumOthers[r.Name], 100) < s.StepUpAt:
			warn(r, "no-effect", "allow-list rule with no effect: the other active rules add up to %d, below step_up_at %d", sumOthers[r.Name], s.StepUpAt)
		}
	}
	if len(s.Rules) > 0 {
		pos := Pos{}
		if len(s.Files) > 0 {
			pos = Pos{s.Files[0].Name, 1, 1}
		}
		switch total := min(sumActive, 100); {
		case total < s.StepUpAt:
			out = append(out, Warning{Pos: pos, Check: "threshold", Message: fmt.Sprintf("the active rules' scores add up to %d: step_up_at %d and pause_at %d are never reached by score", total, s.StepUpAt, s.PauseAt)})
		case total < s.PauseAt:
			out = append(out, Warning{Pos: pos, Check: "threshold", Message: fmt.Sprintf("the active rules' scores add up to %d: pause_at %d is never reached by score", total, s.PauseAt)})
		}
	}
	slices.SortStableFunc(out, func(a, b Warning) int {
		if c := strings.Compare(a.Pos.File, b.Pos.File); c != 0 {
			return c
		}
		return a.Pos.Line - b.Pos.Line
	})
	return out
}

// ruleLint is what compilation learned for Lint.
type ruleLint struct {
	canon    string // the resolved, optimized expression, for duplicates
	constant int
	notes    []lintNote
}

type lintNote struct{ check, msg string }

const (
	notConst = iota
	constTrue
	constFalse
)

var slotRe = regexp.MustCompile(`__(num|bool|str|has)\[(\d+)\]`)

// analyze inspects a resolved, optimized expression.
func analyze(root ast.Node, schema *features.Schema) ruleLint {
	l := ruleLint{canon: root.String()}
	// Messages show feature names, not slots.
	show := func(s string) string {
		return slotRe.ReplaceAllStringFunc(s, func(m string) string {
			sub := slotRe.FindStringSubmatch(m)
			i, _ := strconv.Atoi(sub[2])
			if schema == nil || i >= schema.Len() {
				return m
			}
			if sub[1] == "has" {
				return "has(" + schema.Fields[i].Name + ")"
			}
			return schema.Fields[i].Name
		})
	}
	if b, ok := root.(*ast.BoolNode); ok {
		l.constant = constFalse
		if b.Value {
			l.constant = constTrue
		}
		return l
	}
	if msg := contradiction(root); msg != "" {
		l.notes = append(l.notes, lintNote{"never-fires", show(msg)})
	}
	return l
}

// contradiction finds comparisons of one value with constants, joined by
// and, that cannot all hold (amount > 100 and amount < 50).
func contradiction(root ast.Node) string {
	var conj []ast.Node
	var flatten func(n ast.Node)
	flatten = func(n ast.Node) {
		if b, ok := n.(*ast.BinaryNode); ok && (b.Operator == "and" || b.Operator == "&&") {
			flatten(b.Left)
			flatten(b.Right)
			return
		}
		conj = append(conj, n)
	}
	flatten(root)
	type bound struct {
		lo, hi         float64
		loOpen, hiOpen bool
		text           []string
		eq             map[string]bool // string values required (==)
		ne             map[string]bool
	}
	bounds := map[string]*bound{}
	get := func(k string) *bound {
		b := bounds[k]
		if b == nil {
			b = &bound{lo: math.Inf(-1), hi: math.Inf(1), eq: map[string]bool{}, ne: map[string]bool{}}
			bounds[k] = b
		}
		return b
	}
	flip := map[string]string{"<": ">", ">": "<", "<=": ">=", ">=": "<=", "==": "==", "!=": "!="}
	for _, n := range conj {
		b, ok := n.(*ast.BinaryNode)
		if !ok || flip[b.Operator] == "" {
			continue
		}
		left, right, op := b.Left, b.Right, b.Operator
		if isConstant(left) {
			left, right, op = right, left, flip[op]
		}
		if isConstant(left) || !isConstant(right) {
			continue
		}
		if s, ok := right.(*ast.StringNode); ok && s.Value == "" {
			continue // a presence guard
		}
		key := left.String()
		bd := get(key)
		if s, ok := right.(*ast.StringNode); ok {
			switch op {
			case "==":
				bd.eq[s.Value] = true
			case "!=":
				bd.ne[s.Value] = true
			}
			bd.text = append(bd.text, n.String())
			continue
		}
		c, ok := constNumber(right)
		if !ok {
			continue
		}
		bd.text = append(bd.text, n.String())
		switch op {
		case ">", ">=":
			if c > bd.lo || (c == bd.lo && op == ">") {
				bd.lo, bd.loOpen = c, op == ">"
			}
		case "<", "<=":
			if c < bd.hi || (c == bd.hi && op == "<") {
				bd.hi, bd.hiOpen = c, op == "<"
			}
		case "==": // [lo, hi] ∩ [c, c]: an open bound at c stays open (empty)
			if c > bd.lo {
				bd.lo, bd.loOpen = c, false
			}
			if c < bd.hi {
				bd.hi, bd.hiOpen = c, false
			}
			if c < bd.lo || c > bd.hi {
				bd.lo, bd.hi = 1, 0 // empty
			}
		}
	}
	for _, k := range sortedKeys(bounds) {
		bd := bounds[k]
		empty := bd.lo > bd.hi || (bd.lo == bd.hi && (bd.loOpen || bd.hiOpen))
		eqs := sortedKeys(bd.eq)
		if len(eqs) > 1 || (len(eqs) == 1 && bd.ne[eqs[0]]) {
			empty = true
		}
		if empty {
			return "never fires: " + strings.Join(bd.text, " and ") + " cannot all hold"
		}
	}
	return ""
}

func isConstant(n ast.Node) bool {
	switch n.(type) {
	case *ast.IntegerNode, *ast.FloatNode, *ast.StringNode, *ast.BoolNode, *ast.NilNode:
		return true
	}
	return false
}

func constNumber(n ast.Node) (float64, bool) {
	switch c := n.(type) {
	case *ast.IntegerNode:
		return float64(c.Value), true
	case *ast.FloatNode:
		return c.Value, true
	}
	return 0, false
}
