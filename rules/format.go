package rules

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Canonical key orders.
var (
	fileKeys   = []string{"ruleset", "lists", "rules", "tests"}
	headerKeys = []string{"label", "step_up_at", "pause_at"}
	ruleKeys   = []string{"name", "description", "when", "action", "score", "reason", "message", "mode", "rollout", "tags", "owner"}
	caseKeys   = []string{"name", "description", "start", "skip", "requires", "transactions", "expect"}
	expectKeys = []string{"id", "decision", "score", "hits", "ignored", "reasons", "features"}
)

// maxFlowWidth is the longest list written on one line ([a, b, c]).
const maxFlowWidth = 100

// Format rewrites a rule file, or a rule test file (name_test.yaml), in
// canonical form: keys in a fixed order, two-space indentation, short lists
// on one line, multi-line expressions as literal blocks, a blank line
// between top-level sections, rules and test cases. Comments are kept.
// Only valid files are formatted; Format(Format(x)) == Format(x).
func Format(name string, data []byte) ([]byte, error) {
	test := IsTestFile(name)
	if test {
		if _, err := ParseTestFile(name, data); err != nil {
			return nil, err
		}
	} else if _, err := ParseFile(name, data); err != nil {
		return nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(doc.Content) == 0 {
		return data, nil // comments only
	}
	top := doc.Content[0]
	sortKeys(top, fileKeys)
	for i := 0; i+1 < len(top.Content); i += 2 {
		key, val := top.Content[i].Value, top.Content[i+1]
		switch key {
		case "ruleset":
			block(val)
			sortKeys(val, headerKeys)
		case "lists":
			block(val)
			sortKeysAlpha(val)
			for j := 1; j < len(val.Content); j += 2 {
				shortFlow(val.Content[j])
			}
		case "rules":
			block(val)
			for _, r := range val.Content {
				block(r)
				sortKeys(r, ruleKeys)
				for k := 0; k+1 < len(r.Content); k += 2 {
					v := r.Content[k+1]
					switch r.Content[k].Value {
					case "tags":
						shortFlow(v)
					case "when", "description", "message":
						v.Style = 0
						if strings.Contains(v.Value, "\n") {
							v.Style = yaml.LiteralStyle
						}
					}
				}
			}
		case "tests":
			block(val)
			for _, c := range val.Content {
				block(c)
				sortKeys(c, caseKeys)
				for k := 0; k+1 < len(c.Content); k += 2 {
					if c.Content[k].Value == "expect" {
						for _, x := range c.Content[k+1].Content {
							sortKeys(x, expectKeys)
						}
					}
				}
			}
		}
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	enc.Close()
	out := spaceSections(buf.Bytes())
	// Reordering keys can put an alias before its anchor: never write a
	// file that no longer reads the same.
	if err := sameContent(name, test, data, out); err != nil {
		return nil, fmt.Errorf("%s: not formatted: %w", name, err)
	}
	return out, nil
}

// sameContent reports an error unless formatted reads as the same file as
// data: both valid, the same values once decoded.
func sameContent(name string, test bool, data, formatted []byte) error {
	if test {
		if _, err := ParseTestFile(name, formatted); err != nil {
			return fmt.Errorf("the formatted file would not parse (an alias before its anchor?): %w", err)
		}
	} else if _, err := ParseFile(name, formatted); err != nil {
		return fmt.Errorf("the formatted file would not parse (an alias before its anchor?): %w", err)
	}
	var a, b any
	if yaml.Unmarshal(data, &a) != nil || yaml.Unmarshal(formatted, &b) != nil || !reflect.DeepEqual(a, b) {
		return errors.New("the formatted file would read differently")
	}
	return nil
}

// block makes a mapping or sequence written in flow style ({...}, [...])
// block style. The comment after a flow mapping goes after its first key.
func block(n *yaml.Node) {
	if n.Kind != yaml.MappingNode && n.Kind != yaml.SequenceNode {
		return
	}
	n.Style &^= yaml.FlowStyle
	if n.Kind == yaml.MappingNode && n.LineComment != "" && len(n.Content) > 1 {
		v := n.Content[1]
		v.LineComment = joinComments(v.LineComment, n.LineComment)
		n.LineComment = ""
	}
}

// shortFlow writes a list of scalars on one line when it is short.
func shortFlow(n *yaml.Node) {
	if n.Kind != yaml.SequenceNode {
		return
	}
	width := 2
	for _, item := range n.Content {
		if item.Kind != yaml.ScalarNode || item.HeadComment != "" || item.LineComment != "" || item.FootComment != "" {
			n.Style &^= yaml.FlowStyle
			return
		}
		width += len(item.Value) + 4
	}
	if width <= maxFlowWidth {
		n.Style |= yaml.FlowStyle
	} else {
		n.Style &^= yaml.FlowStyle
	}
}

// sortKeys orders a mapping's keys as in order; other keys follow in
// their original order.
func sortKeys(n *yaml.Node, order []string) {
	if n.Kind != yaml.MappingNode {
		return
	}
	rank := func(k string) int {
		if i := slices.Index(order, k); i >= 0 {
			return i
		}
		return len(order)
	}
	if len(n.Content) < 4 {
		return
	}
	// The comment above the first key and the one below the last stay where
	// they are: they are the mapping's rather than the key's.
	first, last := n.Content[0], n.Content[len(n.Content)-2]
	head := first.HeadComment
	foot := joinComments(last.FootComment, n.Content[len(n.Content)-1].FootComment)
	first.HeadComment, last.FootComment, n.Content[len(n.Content)-1].FootComment = "", "", ""
	pairs := make([][2]*yaml.Node, 0, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		pairs = append(pairs, [2]*yaml.Node{n.Content[i], n.Content[i+1]})
	}
	slices.SortStableFunc(pairs, func(a, b [2]*yaml.Node) int { return rank(a[0].Value) - rank(b[0].Value) })
	for i, p := range pairs {
		n.Content[2*i], n.Content[2*i+1] = p[0], p[1]
	}
	n.Content[0].HeadComment = joinComments(head, n.Content[0].HeadComment)
	l := n.Content[len(n.Content)-2]
	l.FootComment = joinComments(l.FootComment, foot)
}

func joinComments(a, b string) string {
	if a == "" || b == "" {
		return a + b
	}
	return a + "\n" + b
}

func sortKeysAlpha(n *yaml.Node) {
	if n.Kind != yaml.MappingNode {
		return
	}
	var keys []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		keys = append(keys, n.Content[i].Value)
	}
	slices.Sort(keys)
	sortKeys(n, keys)
}

var (
	topKeyLine = regexp.MustCompile(`^[A-Za-z_]`)
	itemLine   = regexp.MustCompile(`^  - `)
)

// spaceSections puts one blank line before each top-level key but the
// first and before each item of a top-level sequence but the first, above
// the comments that lead them.
func spaceSections(out []byte) []byte {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	var res []string
	seenTop, inSeq := false, false
	for _, l := range lines {
		comment := ""
		switch {
		case topKeyLine.MatchString(l):
			if seenTop {
				comment = "#"
			}
			seenTop, inSeq = true, false
		case itemLine.MatchString(l):
			if inSeq {
				comment = "  #"
			}
			inSeq = true
		}
		if comment != "" {
			j := len(res)
			for j > 0 && strings.HasPrefix(res[j-1], comment) {
				j--
			}
			if j > 0 && res[j-1] != "" {
				res = slices.Insert(res, j, "")
			}
		}
		res = append(res, l)
	}
	return []byte(strings.Join(res, "\n") + "\n")
}
