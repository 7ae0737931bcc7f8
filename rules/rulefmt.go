package rules

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/vigil-fraud/vigil/rules/yamlsyntax"
)

// Action is what a rule asks for when it fires.
type Action string

// Actions, in increasing severity.
const (
	Approve Action = "approve"
	StepUp  Action = "step_up"
	Pause   Action = "pause"
)

// Severity orders actions: pause > step_up > approve.
func (a Action) Severity() int {
	switch a {
	case Pause:
		return 2
	case StepUp:
		return 1
	}
	return 0
}

// Mode says whether a rule's hits change decisions.
type Mode string

// Modes.
const (
	Active Mode = "active"
	Shadow Mode = "shadow"
)

// Limits of the rule file format.
const (
	MaxFileSize    = 32 << 20 // bytes per file
	MaxWhenLength  = 4096     // bytes per expression
	MaxListValues  = 100_000  // values per list
	MaxMessageLen  = 200      // bytes of a customer-safe message
	maxIdentLength = 64       // names, reasons, labels
)

// RuleFile is one parsed rule file.
type RuleFile struct {
	Name    string              `yaml:"-"`
	Ruleset *RulesetHeader      `yaml:"ruleset,omitempty"`
	Lists   map[string][]string `yaml:"lists,omitempty"`
	Rules   []RuleDef           `yaml:"rules,omitempty"`

	ListPos map[string]Pos `yaml:"-"` // where each list is declared
}

// RulesetHeader holds the settings of the whole ruleset; at most one file of
// a set declares it.
type RulesetHeader struct {
	Label    string `yaml:"label,omitempty"`
	StepUpAt int    `yaml:"step_up_at"`
	PauseAt  int    `yaml:"pause_at"`
	Pos      Pos    `yaml:"-"`
}

// RuleDef is one rule as written.
type RuleDef struct {
	Name        string   `yaml:"name"`
	Description string   `yaml:"description,omitempty"`
	When        string   `yaml:"when"`
	Action      Action   `yaml:"action"`
	Score       int      `yaml:"score"`
	Reason      string   `yaml:"reason"`
	Message     string   `yaml:"message,omitempty"`
	Mode        Mode     `yaml:"mode,omitempty"`
	Rollout     *float64 `yaml:"rollout,omitempty"`
	Tags        []string `yaml:"tags,omitempty"`
	Owner       string   `yaml:"owner,omitempty"`

	Pos     Pos `yaml:"-"` // position of the rule
	WhenPos Pos `yaml:"-"` // position of the when expression's first character

	whenSpan   span // where When is in the file, for error positions
	compilable bool // When is there and not too long
	whenCut    bool // a YAML comment follows an unquoted When: maybe a # it meant
}

// RolloutPercent is the rule's rollout, 100 when not set.
func (r *RuleDef) RolloutPercent() float64 {
	if r.Rollout == nil {
		return 100
	}
	return *r.Rollout
}

// span locates a scalar's value in its file, to turn offsets in the value
// into file positions when an error needs one (quoted and block scalars
// shift them).
type span struct {
	file      string
	data      []byte // the file
	starts    []int  // byte offset of each line of data, shared by the file's spans
	line, col int    // where the scalar's content starts, 1-based (col in runes)
}

func (s span) text(l int) []byte {
	end := len(s.data)
	if l+1 < len(s.starts) {
		end = s.starts[l+1]
	}
	return s.data[s.starts[l]:end]
}

// at returns the file position of the rune at offset in value, the
// scalar's value: each non-space rune of the value is matched to the next
// identical rune of the text.
func (s span) at(value string, offset int, fallback Pos) Pos {
	l := s.line - 1
	if l < 0 || l >= len(s.starts) {
		return fallback
	}
	text := s.text(l)
	c, rc := byteOffset(text, s.col-1), s.col // byte offset and rune column in line l
	i := 0
	for _, r := range value {
		space := r == ' ' || r == '\t' || r == '\n'
		for !space {
			if k := bytes.IndexRune(text[c:], r); k >= 0 { // text is one line
				rc += utf8.RuneCount(text[c : c+k])
				c += k
				break
			}
			if l++; l >= len(s.starts) {
				return fallback // the value does not match the text
			}
			text, c, rc = s.text(l), 0, 1
		}
		if i == offset {
			return Pos{s.file, l + 1, rc}
		}
		if !space {
			c += utf8.RuneLen(r)
			rc++
		}
		i++
	}
	if offset == i {
		return Pos{s.file, l + 1, rc} // just past the value
	}
	return fallback
}

// byteOffset is the byte offset of rune column n (0-based) of a line.
func byteOffset(line []byte, n int) int {
	off := 0
	for i := 0; i < n && off < len(line); i++ {
		_, size := utf8.DecodeRune(line[off:])
		off += size
	}
	return off
}

var (
	reasonRe = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)
	nameRe   = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	tagRe    = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]*$`)
	labelRe  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
)

// reservedListNames cannot be declared: @env would read expr's $env.
var reservedListNames = map[string]bool{"env": true}

// ParseFile decodes one rule file strictly (unknown keys, wrong types and
// duplicate keys are errors) and checks every field of every rule. All
// problems are returned at once, each an *Error with its file:line:col.
// Expressions are compiled later, by Compile.
func ParseFile(name string, data []byte) (*RuleFile, error) {
	f, errs := parseFile(name, data)
	if len(errs) > 0 {
		return nil, errs.err()
	}
	return f, nil
}

// parseFile returns what it could decode along with the problems, so that
// Compile can report expression errors of a file that has other errors
// too. f is nil when the YAML itself is invalid.
func parseFile(name string, data []byte) (*RuleFile, errorList) {
	f := &RuleFile{Name: name, ListPos: map[string]Pos{}}
	if len(data) > MaxFileSize {
		return nil, errorList{{Pos: Pos{name, 1, 1}, Err: fmt.Errorf("file larger than %d MiB", MaxFileSize>>20)}}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root yaml.Node
	switch err := dec.Decode(&root); {
	case errors.Is(err, io.EOF):
		return f, nil // an empty file declares nothing
	case err != nil:
		return nil, yamlError(name, data, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, yamlError(name, data, err)
		}
		return nil, errorList{{Pos: Pos{name, max(extra.Line, 1), 1}, Err: errors.New("a rule file holds one YAML document; found a second one")}}
	}
	d := &decoder{file: name, data: data}
	d.ruleFile(&root, f)
	return f, d.errs
}

// decoder walks a YAML node tree, decoding with positions.
type decoder struct {
	file   string
	data   []byte
	starts []int // line start offsets, computed for the first span
	errs   errorList
}

func (d *decoder) pos(n *yaml.Node) Pos { return Pos{d.file, n.Line, n.Column} }

// mapping calls fn for each key of a mapping node, in order, reporting
// duplicate keys and keys fn does not know.
func (d *decoder) mapping(n *yaml.Node, what, rule string, fn func(key string, k, v *yaml.Node) bool) {
	n = resolveAlias(n)
	if n.Kind != yaml.MappingNode {
		if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			return
		}
		d.errs.add(d.pos(n), rule, "%s must be a mapping, not %s", what, kindName(n))
		return
	}
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolveAlias(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			d.errs.add(d.pos(k), rule, "%s: keys must be plain names", what)
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.errs.add(d.pos(k), rule, "key %q repeated (first at line %d)", k.Value, first.Line)
			continue
		}
		seen[k.Value] = k
		if !fn(k.Value, k, v) {
			d.errs.add(d.pos(k), rule, "unknown key %q in %s", k.Value, what)
		}
	}
}

func resolveAlias(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "empty"
}

func (d *decoder) str(n *yaml.Node, what, rule string) string {
	if n.Kind != yaml.ScalarNode {
		d.errs.add(d.pos(n), rule, "%s must be a string, not %s", what, kindName(n))
		return ""
	}
	if n.Tag == "!!null" {
		return ""
	}
	return n.Value
}

func (d *decoder) integer(n *yaml.Node, what, rule string) int {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!int" {
		if v, err := strconv.ParseInt(n.Value, 0, 32); err == nil {
			return int(v)
		}
	}
	d.errs.add(d.pos(n), rule, "%s must be a whole number, not %s", what, kindName(n))
	return 0
}

func (d *decoder) number(n *yaml.Node, what, rule string) (float64, bool) {
	if n.Kind == yaml.ScalarNode && (n.Tag == "!!int" || n.Tag == "!!float") {
		if v, err := strconv.ParseFloat(n.Value, 64); err == nil && !math.IsNaN(v) && !math.IsInf(v, 0) {
			return v, true
		}
	}
	d.errs.add(d.pos(n), rule, "%s must be a number, not %s", what, kindName(n))
	return 0, false
}

func (d *decoder) strings(n *yaml.Node, what, rule string) []string {
	if n.Kind != yaml.SequenceNode {
		d.errs.add(d.pos(n), rule, "%s must be a list of strings, not %s", what, kindName(n))
		return nil
	}
	out := make([]string, 0, len(n.Content))
	for _, item := range n.Content {
		item = resolveAlias(item)
		if item.Kind != yaml.ScalarNode || item.Tag == "!!null" {
			d.errs.add(d.pos(item), rule, "%s: each value must be a string, not %s", what, kindName(item))
			continue
		}
		out = append(out, item.Value)
	}
	return out
}

func (d *decoder) ruleFile(root *yaml.Node, f *RuleFile) {
	top := root
	if top.Kind == yaml.DocumentNode && len(top.Content) == 1 {
		top = top.Content[0]
	}
	d.mapping(top, "a rule file (keys: ruleset, lists, rules)", "", func(key string, k, v *yaml.Node) bool {
		switch key {
		case "ruleset":
			f.Ruleset = d.header(k, v)
		case "lists":
			f.Lists = d.lists(v, f.ListPos)
		case "rules":
			if v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
				return true
			}
			if v.Kind != yaml.SequenceNode {
				d.errs.add(d.pos(v), "", "rules must be a list of rules, not %s", kindName(v))
				return true
			}
			for _, item := range v.Content {
				f.Rules = append(f.Rules, d.rule(resolveAlias(item)))
			}
		default:
			return false
		}
		return true
	})
}

func (d *decoder) header(k, v *yaml.Node) *RulesetHeader {
	h := &RulesetHeader{Pos: d.pos(k)}
	var have [2]bool
	d.mapping(v, "ruleset (keys: label, step_up_at, pause_at)", "", func(key string, k, v *yaml.Node) bool {
		switch key {
		case "label":
			h.Label = d.str(v, "label", "")
			if h.Label != "" && (!labelRe.MatchString(h.Label) || len(h.Label) > maxIdentLength) {
				d.errs.add(d.pos(v), "", "label must be letters, digits, '.', '_' or '-' (at most %d)", maxIdentLength)
			}
		case "step_up_at":
			h.StepUpAt, have[0] = d.integer(v, "step_up_at", ""), true
		case "pause_at":
			h.PauseAt, have[1] = d.integer(v, "pause_at", ""), true
		default:
			return false
		}
		return true
	})
	switch {
	case !have[0] || !have[1]:
		d.errs.add(h.Pos, "", "ruleset: step_up_at and pause_at are required")
	case h.StepUpAt <= 0 || h.PauseAt > 100 || h.StepUpAt > h.PauseAt:
		d.errs.add(h.Pos, "", "ruleset: need 0 < step_up_at <= pause_at <= 100 (got %d and %d)", h.StepUpAt, h.PauseAt)
	}
	return h
}

func (d *decoder) lists(v *yaml.Node, pos map[string]Pos) map[string][]string {
	lists := map[string][]string{}
	d.mapping(v, "lists", "", func(name string, k, v *yaml.Node) bool {
		p := d.pos(k)
		switch {
		case !nameRe.MatchString(name) || len(name) > maxIdentLength:
			d.errs.add(p, "", "list %q: name must be lower-case letters, digits and _, starting with a letter", name)
		case reservedListNames[name]:
			d.errs.add(p, "", "list %q: the name is reserved", name)
		}
		values := d.strings(v, "list "+strconv.Quote(name), "")
		if len(values) > MaxListValues {
			d.errs.add(p, "", "list %q: %d values, at most %d", name, len(values), MaxListValues)
		}
		lists[name], pos[name] = values, p
		return true
	})
	return lists
}

func (d *decoder) rule(n *yaml.Node) RuleDef {
	r := RuleDef{Pos: d.pos(n)}
	if n.Kind == yaml.MappingNode {
		// Name first, so that every other error can name the rule.
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == "name" {
				if v := resolveAlias(n.Content[i+1]); v.Kind == yaml.ScalarNode {
					r.Name = v.Value
				}
			}
		}
	}
	var haveWhen, haveScore bool
	name := r.Name
	at := map[string]Pos{} // where each key's value is, for the checks below
	d.mapping(n, "a rule", name, func(key string, k, v *yaml.Node) bool {
		at[key] = d.pos(v)
		switch key {
		case "name":
			r.Name = d.str(v, "name", "")
		case "description":
			r.Description = d.str(v, "description", name)
		case "when":
			r.When, haveWhen = d.str(v, "when", name), true
			r.whenSpan = d.span(v)
			r.whenCut = v.LineComment != "" && v.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) == 0
			first := len(r.When) - len(strings.TrimLeft(r.When, " \t\n"))
			r.WhenPos = r.whenSpan.at(r.When, len([]rune(r.When[:first])), d.pos(v))
		case "action":
			r.Action = Action(d.str(v, "action", name))
		case "score":
			r.Score, haveScore = d.integer(v, "score", name), true
			if r.Score < 0 || r.Score > 100 {
				d.errs.add(d.pos(v), name, "score must be between 0 and 100")
			}
		case "reason":
			r.Reason = d.str(v, "reason", name)
		case "message":
			r.Message = d.str(v, "message", name)
			if len(r.Message) > MaxMessageLen || strings.ContainsAny(r.Message, "\n\r") {
				d.errs.add(d.pos(v), name, "message must be one line of at most %d bytes", MaxMessageLen)
			}
		case "mode":
			r.Mode = Mode(d.str(v, "mode", name))
		case "rollout":
			if x, ok := d.number(v, "rollout", name); ok {
				r.Rollout = &x
				if x < 0 || x > 100 || math.Abs(x*100-math.Round(x*100)) > 1e-6 {
					d.errs.add(d.pos(v), name, "rollout must be a percentage between 0 and 100 in steps of 0.01")
				}
			}
		case "tags":
			r.Tags = d.strings(v, "tags", name)
			for _, t := range r.Tags {
				if !tagRe.MatchString(t) || len(t) > maxIdentLength {
					d.errs.add(d.pos(v), name, "tag %q: use lower-case letters, digits, '_', '.' or '-'", t)
				}
			}
		case "owner":
			r.Owner = d.str(v, "owner", name)
		default:
			return false
		}
		return true
	})
	if n.Kind != yaml.MappingNode {
		return r
	}
	pos := func(key string) Pos { // the key's value, or the rule when it is absent
		if p, ok := at[key]; ok {
			return p
		}
		return r.Pos
	}
	switch {
	case r.Name == "":
		d.errs.add(r.Pos, "", "rule without a name")
	case !nameRe.MatchString(r.Name) || len(r.Name) > maxIdentLength:
		d.errs.add(pos("name"), r.Name, "name must be lower-case letters, digits and _, starting with a letter (at most %d)", maxIdentLength)
	}
	switch {
	case !haveWhen || strings.TrimSpace(r.When) == "":
		d.errs.add(r.Pos, name, "when is required")
	case len(r.When) > MaxWhenLength:
		d.errs.add(r.WhenPos, name, "when is longer than %d bytes", MaxWhenLength)
	default:
		r.compilable = true
	}
	switch r.Action {
	case Approve, StepUp, Pause:
	case "":
		d.errs.add(r.Pos, name, "action is required (approve, step_up or pause)")
	default:
		d.errs.add(pos("action"), name, "unknown action %q (approve, step_up or pause)", r.Action)
	}
	if !haveScore {
		d.errs.add(r.Pos, name, "score is required (0 to 100; 0 for a rule that only acts)")
	}
	switch {
	case r.Reason == "":
		d.errs.add(r.Pos, name, "reason is required: a stable upper-case code such as CARD_VELOCITY_1H")
	case !reasonRe.MatchString(r.Reason) || len(r.Reason) > maxIdentLength:
		d.errs.add(pos("reason"), name, "reason %q must be an upper-case code such as CARD_VELOCITY_1H", r.Reason)
	}
	switch r.Mode {
	case "":
		r.Mode = Active
	case Active, Shadow:
	default:
		d.errs.add(pos("mode"), name, "unknown mode %q (active or shadow)", r.Mode)
	}
	return r
}

// span locates a scalar node's content.
func (d *decoder) span(n *yaml.Node) span {
	line, col := n.Line, n.Column
	if n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		line, col = line+1, 1 // block content starts on the next line
	} else if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
		col++ // after the quote
	}
	if d.starts == nil {
		d.starts = []int{0}
		for i, b := range d.data {
			if b == '\n' {
				d.starts = append(d.starts, i+1)
			}
		}
	}
	return span{file: d.file, data: d.data, starts: d.starts, line: line, col: col}
}

var unknownFieldRe = regexp.MustCompile(`^field (\S+) not found in type \S+$`)

// yamlError rewrites yaml.v3's errors as file:line:col errors.
func yamlError(file string, data []byte, err error) errorList {
	var errs errorList
	for _, e := range yamlsyntax.Errors(data, err) {
		if m := unknownFieldRe.FindStringSubmatch(e.Msg); m != nil {
			errs.add(Pos{file, e.Line, yamlsyntax.KeyColumn(data, e.Line, m[1])}, "", "unknown key %q", m[1])
			continue
		}
		if e.Value {
			errs.add(Pos{file, e.Line, e.Col}, "", "%s", e.Msg)
			continue
		}
		errs.add(Pos{file, e.Line, e.Col}, "", "invalid YAML: %s", e.Msg)
	}
	return errs
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// IsTestFile reports whether a file name is a rule test file
// (name_test.yaml).
func IsTestFile(name string) bool {
	return strings.HasSuffix(name, "_test.yaml") || strings.HasSuffix(name, "_test.yml")
}
