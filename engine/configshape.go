package engine

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/vigil-fraud/vigil/rules"
)

// The shape check reads a config document against the Go type it decodes
// into, before decoding, and reports every problem at once with its line,
// column and key path: unknown keys, and values a key's type refuses
// (a number that is text, a duration without a unit). yaml.v3 alone stops
// at the first value error and names unknown keys by Go type
// ("field foo not found in type main.config").

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

// checkShape returns the problems of doc (a document node) for a value of
// type t, nil when it decodes.
func checkShape(doc *yaml.Node, t reflect.Type) error {
	c := shapeCheck{budget: maxShapeNodes}
	for _, n := range doc.Content {
		c.of(n, t, "")
	}
	if c.budget < 0 {
		return fmt.Errorf("more than %d values (aliases included): not a configuration", maxShapeNodes)
	}
	if c.more > 0 {
		c.errs = append(c.errs, fmt.Errorf("and %d more problems", c.more))
	}
	return errors.Join(c.errs...)
}

// maxShapeNodes bounds the nodes visited, aliases expanded: a few aliases
// can stand for billions of values.
const maxShapeNodes = 100_000

// maxShapeErrors bounds the problems listed; the rest are counted.
const maxShapeErrors = 50

type shapeCheck struct {
	errs   []error
	more   int // problems beyond maxShapeErrors
	budget int
}

func (c *shapeCheck) add(err error) {
	if len(c.errs) == maxShapeErrors {
		c.more++
		return
	}
	c.errs = append(c.errs, err)
}

func (c *shapeCheck) of(n *yaml.Node, t reflect.Type, path string) {
	if c.budget--; c.budget < 0 {
		return
	}
	n = resolve(n)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // an empty section keeps its defaults
	}
	switch {
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		fields := map[string]reflect.Type{}
		yamlFields(t, fields)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := resolve(n.Content[i]), n.Content[i+1]
			if c.budget--; c.budget < 0 {
				return
			}
			if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" { // <<: *defaults
				c.merge(v, t, path)
				continue
			}
			ft, ok := fields[k.Value]
			if !ok {
				hint := ""
				if len(k.Value) <= 64 && len(c.errs) < maxShapeErrors {
					hint = rules.Suggest(k.Value, slices.Sorted(maps.Keys(fields)), "")
				}
				c.add(fmt.Errorf("line %d:%d: %s: unknown key%s", k.Line, k.Column, join(path, k.Value), hint))
				continue
			}
			c.of(v, ft, join(path, k.Value))
		}
	case t.Kind() == reflect.Map && n.Kind == yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			c.of(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value))
		}
	case (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) && n.Kind == yaml.SequenceNode &&
		!reflect.PointerTo(t).Implements(unmarshalerType):
		for i, item := range n.Content {
			c.of(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
		}
	case t.Kind() == reflect.Interface:
	default: // a leaf, or a node of the wrong kind: decode it alone
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			c.add(leafError(n, path, err))
		}
	}
}

// merge checks the mappings a merge key brings in (one, or a list) as
// part of the mapping it is in.
func (c *shapeCheck) merge(v *yaml.Node, t reflect.Type, path string) {
	if v = resolve(v); v.Kind == yaml.SequenceNode {
		for _, item := range v.Content {
			c.of(item, t, path)
		}
		return
	}
	c.of(v, t, path)
}

// resolve returns the node an alias stands for (n itself otherwise).
func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// yamlFields adds the keys of struct t (inline structs' included) to m.
func yamlFields(t reflect.Type, m map[string]reflect.Type) {
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" || (!f.IsExported() && !f.Anonymous) {
			continue
		}
		if strings.Contains(opts, "inline") {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				yamlFields(ft, m)
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		m[name] = f.Type
	}
}

var yamlLinePrefix = regexp.MustCompile(`^line \d+: `)

// leafError words a value's decode error as "line L:C: path: problem".
func leafError(n *yaml.Node, path string, err error) error {
	msg := err.Error()
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	msg = yamlLinePrefix.ReplaceAllString(msg, "") // the line is ours, with the column
	if path == "" {
		path = "the document"
	}
	return fmt.Errorf("line %d:%d: %s: %s", n.Line, n.Column, path, msg)
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
