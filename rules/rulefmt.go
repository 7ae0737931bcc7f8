package rules

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
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

// RuleFile is one parsed rule file.
type RuleFile struct {
	Name    string              `yaml:"-"`
	Ruleset *RulesetHeader      `yaml:"ruleset"`
	Lists   map[string][]string `yaml:"lists"`
	Rules   []RuleDef           `yaml:"rules"`
}

// RulesetHeader holds the settings of the whole ruleset; at most one file of
// a set declares it.
type RulesetHeader struct {
	Label    string `yaml:"label"`
	StepUpAt int    `yaml:"step_up_at"`
	PauseAt  int    `yaml:"pause_at"`
	Pos      Pos    `yaml:"-"`
}

// RuleDef is one rule as written.
type RuleDef struct {
	Name        string   `yaml:"name"`
	Description string   `yaml:"description"`
	When        string   `yaml:"when"`
	Action      Action   `yaml:"action"`
	Score       int      `yaml:"score"`
	Reason      string   `yaml:"reason"`
	Message     string   `yaml:"message"`
	Mode        Mode     `yaml:"mode"`
	Rollout     *float64 `yaml:"rollout"`
	Tags        []string `yaml:"tags"`
	Owner       string   `yaml:"owner"`

	Pos     Pos `yaml:"-"` // position of the rule
	WhenPos Pos `yaml:"-"` // position of the when expression
}

// Pos is a position in a rule file.
type Pos struct {
	File      string
	Line, Col int
}

func (p Pos) String() string { return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col) }

// Error is one problem in a rule file.
type Error struct {
	Pos  Pos
	Rule string
	Err  error
}

func (e *Error) Error() string {
	if e.Rule != "" {
		return fmt.Sprintf("%s: rule %q: %v", e.Pos, e.Rule, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.Pos, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

var (
	reasonRe = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)
	nameRe   = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
)

// ParseFile decodes one rule file strictly (unknown keys are errors) and
// checks every rule's fields, returning all problems at once as a joined
// error of *Error values. Expressions are compiled later, by Compile.
func ParseFile(name string, data []byte) (*RuleFile, error) {
	f := &RuleFile{Name: name}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(f); err != nil {
		return nil, yamlError(name, err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, yamlError(name, err)
	}
	f.positions(&root)
	var errs []error
	for i := range f.Rules {
		r := &f.Rules[i]
		for _, msg := range r.check() {
			errs = append(errs, &Error{Pos: r.Pos, Rule: r.Name, Err: errors.New(msg)})
		}
	}
	if h := f.Ruleset; h != nil {
		if h.StepUpAt <= 0 || h.PauseAt <= 0 || h.StepUpAt > 100 || h.PauseAt > 100 || h.StepUpAt > h.PauseAt {
			errs = append(errs, &Error{Pos: h.Pos, Err: errors.New("ruleset: need 0 < step_up_at <= pause_at <= 100")})
		}
	}
	for _, l := range sortedKeys(f.Lists) {
		if !nameRe.MatchString(l) {
			errs = append(errs, &Error{Pos: Pos{name, 1, 1}, Err: fmt.Errorf("list %q: name must be lower-case letters, digits and _", l)})
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return f, nil
}

func (r *RuleDef) check() []string {
	var errs []string
	if !nameRe.MatchString(r.Name) {
		errs = append(errs, "name must be lower-case letters, digits and _, starting with a letter")
	}
	if strings.TrimSpace(r.When) == "" {
		errs = append(errs, "when is required")
	}
	switch r.Action {
	case Approve, StepUp, Pause:
	case "":
		errs = append(errs, "action is required (approve, step_up or pause)")
	default:
		errs = append(errs, fmt.Sprintf("unknown action %q (approve, step_up or pause)", r.Action))
	}
	if r.Score < 0 || r.Score > 100 {
		errs = append(errs, "score must be between 0 and 100")
	}
	if !reasonRe.MatchString(r.Reason) {
		errs = append(errs, "reason must be an upper-case code such as CARD_VELOCITY_1H")
	}
	switch r.Mode {
	case "":
		r.Mode = Active
	case Active, Shadow:
	default:
		errs = append(errs, fmt.Sprintf("unknown mode %q (active or shadow)", r.Mode))
	}
	if r.Rollout != nil && (*r.Rollout < 0 || *r.Rollout > 100) {
		errs = append(errs, "rollout must be a percentage between 0 and 100")
	}
	return errs
}

// positions records where each rule and expression stands in the file.
func (f *RuleFile) positions(root *yaml.Node) {
	if len(root.Content) != 1 || root.Content[0].Kind != yaml.MappingNode {
		return
	}
	top := root.Content[0]
	for i := 0; i+1 < len(top.Content); i += 2 {
		key, val := top.Content[i], top.Content[i+1]
		switch key.Value {
		case "ruleset":
			if f.Ruleset != nil {
				f.Ruleset.Pos = Pos{f.Name, key.Line, key.Column}
			}
		case "rules":
			for j, item := range val.Content {
				if j >= len(f.Rules) {
					break
				}
				r := &f.Rules[j]
				r.Pos = Pos{f.Name, item.Line, item.Column}
				r.WhenPos = r.Pos
				for k := 0; k+1 < len(item.Content); k += 2 {
					if item.Content[k].Value == "when" {
						v := item.Content[k+1]
						r.WhenPos = Pos{f.Name, v.Line, v.Column}
						if v.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
							r.WhenPos.Line++ // block scalars start on the next line
						}
					}
				}
			}
		}
	}
}

var yamlLineRe = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// yamlError rewrites yaml.v3's "line N: msg" errors as file:line:col errors.
func yamlError(file string, err error) error {
	var te *yaml.TypeError
	var lines []string
	if errors.As(err, &te) {
		lines = te.Errors
	} else {
		lines = []string{err.Error()}
	}
	var errs []error
	for _, l := range lines {
		var line int
		if m := yamlLineRe.FindStringSubmatch(l); m != nil {
			fmt.Sscan(m[1], &line)
			l = m[2]
		}
		errs = append(errs, &Error{Pos: Pos{file, max(line, 1), 1}, Err: errors.New(l)})
	}
	return errors.Join(errs...)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
