package features

import (
	"slices"

	"github.com/vigil-fraud/vigil/rules/presence"
)

// exprKeywords are the words expr's parser reads as operators or literals:
// a feature so named could not be read by a rule.
var exprKeywords = []string{"and", "contains", "else", "false", "if", "in", "let", "matches", "nil", "not", "or", "true"}

// reservedName tells why a feature name cannot be read by rules, "" when
// it can: an expression keyword, an event field's name (a rule would read
// the event's value), or has, the presence test.
func reservedName(name string) string {
	switch {
	case slices.Contains(exprKeywords, name):
		return "an expression keyword"
	case presence.Roots[name]:
		return "an event field"
	case name == "has":
		return "the presence test has()"
	}
	return ""
}
