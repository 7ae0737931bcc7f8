package features

import (
	"reflect"
	"slices"
	"time"

	"github.com/vigil-fraud/vigil/engine/event"
)

// envKind is the type of an event field as an expression reads it.
type envKind uint8

const (
	envNumber envKind = iota // amount, amount_minor: always present
	envString                // missing when empty
	envTime                  // missing when zero
)

// envFields are the event fields filters and rules read (event.Fields by
// its expr tags: channel, card.country, account.created, ...) with their
// kinds; envRoots are its top-level names (channel, card, attributes).
var envFields, envRoots = func() (map[string]envKind, map[string]bool) {
	fields, roots := map[string]envKind{}, map[string]bool{}
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
				fields[path] = envTime
			case f.Type.Kind() == reflect.String:
				fields[path] = envString
			case f.Type.Kind() == reflect.Struct && prefix == "":
				walk(f.Type, path+".")
			case f.Type.Kind() == reflect.Float64 || f.Type.Kind() == reflect.Int64:
				fields[path] = envNumber
			}
		}
	}
	walk(reflect.TypeFor[event.Fields](), "")
	return fields, roots
}()

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
	case envRoots[name]:
		return "an event field"
	case name == "has":
		return "the presence test has()"
	}
	return ""
}
