package features

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/vigil-fraud/vigil/engine/event"
)

// Aggregate is what a windowed feature computes over its entity's events.
type Aggregate string

// Aggregates.
const (
	Count Aggregate = "count"
	Sum   Aggregate = "sum"
	Avg   Aggregate = "avg"
)

// File is a parsed feature definition file.
type File struct {
	Features []Definition `yaml:"features"`
}

// Definition declares one windowed aggregate over an entity. It produces
// one feature per window, named <name>_<window> (card_count_1h).
type Definition struct {
	Name      string    `yaml:"name"`
	Help      string    `yaml:"help"`
	Entity    string    `yaml:"entity"`
	Aggregate Aggregate `yaml:"aggregate"`
	Field     string    `yaml:"field"`
	Windows   []Window  `yaml:"windows"`

	line int
}

// Window is a window length written as 10m, 1h, 24h, 7d or 30d. Its
// feature name suffix is the text as written.
type Window struct {
	Length time.Duration
	Name   string
}

// UnmarshalYAML parses a duration with a day unit allowed.
func (w *Window) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseDuration(n.Value)
	if err != nil {
		return err
	}
	*w = Window{v, n.Value}
	return nil
}

func (w Window) String() string { return w.Name }

// ParseDuration parses 90s, 10m, 1h, 7d (no fractions, one unit).
func ParseDuration(s string) (time.Duration, error) {
	if len(s) < 2 {
		return 0, fmt.Errorf("bad duration %q: want a number and a unit (s, m, h, d) such as 10m", s)
	}
	unit := map[byte]time.Duration{'s': time.Second, 'm': time.Minute, 'h': time.Hour, 'd': 24 * time.Hour}[s[len(s)-1]]
	n := 0
	for _, c := range s[:len(s)-1] {
		if c < '0' || c > '9' || n > 1e6 {
			unit = 0
			break
		}
		n = n*10 + int(c-'0')
	}
	if unit == 0 || n == 0 {
		return 0, fmt.Errorf("bad duration %q: want a positive whole number and a unit (s, m, h, d) such as 10m", s)
	}
	return time.Duration(n) * unit, nil
}

// FormatDuration writes d in the largest unit that divides it (7d, 1h, 10m).
func FormatDuration(d time.Duration) string {
	for _, u := range []struct {
		d time.Duration
		s string
	}{{24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}} {
		if d%u.d == 0 {
			return fmt.Sprintf("%d%s", d/u.d, u.s)
		}
	}
	return fmt.Sprintf("%ds", d/time.Second)
}

// Parse decodes and validates a definition file strictly, reporting every
// problem as name:line: message.
func Parse(name string, data []byte) (*File, error) {
	var f File
	d := yaml.NewDecoder(bytes.NewReader(data))
	d.KnownFields(true)
	var root yaml.Node
	if err := d.Decode(&root); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if err := root.Decode(&f); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	// Record lines for errors.
	if len(root.Content) == 1 {
		for i := 0; i+1 < len(root.Content[0].Content); i += 2 {
			if root.Content[0].Content[i].Value == "features" {
				for j, item := range root.Content[0].Content[i+1].Content {
					if j < len(f.Features) {
						f.Features[j].line = item.Line
					}
				}
			}
		}
	}
	var errs []string
	seen := map[string]bool{}
	for _, def := range f.Features {
		for _, msg := range def.validate() {
			errs = append(errs, fmt.Sprintf("%s:%d: feature %q: %s", name, def.line, def.Name, msg))
		}
		if seen[def.Name] {
			errs = append(errs, fmt.Sprintf("%s:%d: feature %q: defined twice", name, def.line, def.Name))
		}
		seen[def.Name] = true
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(errs, "\n"))
	}
	return &f, nil
}

func (d *Definition) validate() []string {
	var errs []string
	if d.Name == "" || strings.Trim(d.Name, "abcdefghijklmnopqrstuvwxyz0123456789_") != "" {
		errs = append(errs, "name must be lower-case letters, digits and _")
	}
	if _, ok := event.StringField(d.Entity); !ok {
		errs = append(errs, fmt.Sprintf("unknown entity %q; one of %s", d.Entity, strings.Join(event.StringFieldPaths(), ", ")))
	}
	switch d.Aggregate {
	case Count:
		if d.Field != "" {
			errs = append(errs, "count takes no field")
		}
	case Sum, Avg:
		if d.Field != "amount" {
			errs = append(errs, "field must be amount")
		}
	default:
		errs = append(errs, fmt.Sprintf("unknown aggregate %q", d.Aggregate))
	}
	if len(d.Windows) == 0 {
		errs = append(errs, "at least one window is required")
	}
	if !slices.IsSortedFunc(d.Windows, func(a, b Window) int { return int(a.Length - b.Length) }) {
		errs = append(errs, "windows must be in increasing order")
	}
	return errs
}
