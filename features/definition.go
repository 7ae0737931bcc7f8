package features

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/vigil-fraud/vigil/rules/yamlsyntax"
)

// Kind is the family of a feature definition.
type Kind string

// Feature kinds. See docs/features.md for each.
const (
	KindWindow    Kind = "window"      // an aggregate over event-time windows (the default)
	KindRecency   Kind = "recency"     // seconds since the entity was first or last seen
	KindNovelty   Kind = "novelty"     // whether a field's value is new for the entity
	KindDistance  Kind = "distance"    // great-circle km between two locations of the event
	KindTravel    Kind = "travel"      // km/h implied by the previous located event of the entity
	KindValue     Kind = "value"       // a (derived) field of the event itself
	KindMismatch  Kind = "mismatch"    // whether two country fields differ
	KindAnomaly   Kind = "anomaly"     // this amount against the entity's history
	KindHourOfDay Kind = "hour_of_day" // how unusual this hour of the day is for the entity
)

// Kinds lists every kind.
var Kinds = []Kind{KindWindow, KindRecency, KindNovelty, KindDistance, KindTravel, KindValue, KindMismatch, KindAnomaly, KindHourOfDay, KindLabelRate}

// Aggregate is what a window feature computes over its entity's events.
type Aggregate string

// Aggregates.
const (
	Count    Aggregate = "count"
	Sum      Aggregate = "sum"
	Avg      Aggregate = "avg"
	Min      Aggregate = "min"
	Max      Aggregate = "max"
	StdDev   Aggregate = "stddev"
	Distinct Aggregate = "distinct"
)

// Aggregates lists every aggregate.
var Aggregates = []Aggregate{Count, Sum, Avg, Min, Max, StdDev, Distinct}

// Measures of the recency and anomaly kinds.
const (
	SinceFirst = "since_first"
	SinceLast  = "since_last"
	ZScore     = "zscore"
	Ratio      = "ratio"
)

// Limits and defaults of definitions.
const (
	MaxDefinitions       = 1000
	MaxFilters           = 64
	DefaultResolution    = time.Second
	DefaultExactUpTo     = 4096
	MaxExactUpTo         = 4096
	DefaultPrecision     = 10
	DefaultMinHistory    = 5
	DefaultHourHistory   = 10
	DefaultNoveltyValues = 64
	MaxNoveltyValues     = 4096
	MaxWindow            = 400 * Day
)

// File is a parsed feature definition file.
type File struct {
	Name     string // the name given to Parse, used in errors
	Features []Definition
}

// Pos is a position in a definition file.
type Pos struct {
	File      string
	Line, Col int
}

func (p Pos) String() string { return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col) }

// Definition declares one feature family. Window and anomaly definitions
// yield one feature per window, named <name>_<window> (card_count_1h); the
// other kinds yield one feature named <name>.
type Definition struct {
	Name       string
	Help       string
	Kind       Kind
	Entity     []string // one field path, or two for a composite key
	Aggregate  Aggregate
	Field      string
	Fields     []string // mismatch: the two fields compared
	Filter     string   // an expr condition on the event; "" for all events
	Windows    []Window
	Resolution time.Duration // bucket length of window and anomaly kinds
	Measure    string        // recency: since_first|since_last; anomaly: zscore|ratio
	From, To   string        // distance: ip|billing|shipping
	Location   string        // travel: ip|billing|shipping
	MinHistory int           // anomaly and hour_of_day: fewer past events give a missing value
	ExactUpTo  int           // distinct: exact up to this many values, then HyperLogLog
	Precision  int           // distinct: HyperLogLog precision (registers = 2^precision)
	Lookback   time.Duration // novelty: a value unseen for longer is new again (0: since tracked)
	Capacity   int           // novelty: values remembered per entity
	Delay      time.Duration // label_rate: transactions younger than this are not yet matured

	Pos     Pos
	namePos Pos // where the name's value is
	keyPos  map[string]Pos
	filterP int // index of the compiled filter (set by New)
}

// Digest identifies what the definitions compute: a hash of every
// definition's settings in order, without help texts, comments, layout or
// positions (reformatting a file or rewording a help text keeps it).
func (f *File) Digest() string {
	h := sha256.New()
	for i := range f.Features {
		d := &f.Features[i]
		fmt.Fprintf(h, "%q|%q|%q|%q|%q|%q|%q|%v|%d|%q|%q|%q|%q|%d|%d|%d|%d|%d|%d\n", d.Name, d.Kind, d.Entity, d.Aggregate, d.Field,
			d.Fields, d.Filter, d.Windows, d.Resolution, d.Measure, d.From, d.To, d.Location, d.MinHistory, d.ExactUpTo,
			d.Precision, d.Lookback, d.Capacity, d.Delay)
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// Window is a window length written as 10m, 1h, 24h, 7d or 30d. Its
// feature name suffix is the text as written.
type Window struct {
	Length time.Duration
	Name   string
}

func (w Window) String() string { return w.Name }

// EntityName is the entity key as written: card.token or
// account.id+device.fingerprint.
func (d *Definition) EntityName() string { return strings.Join(d.Entity, "+") }

// Outputs lists the features a definition yields.
func (d *Definition) Outputs() []Field {
	help := d.Help
	switch d.Kind {
	case KindWindow, KindAnomaly, KindLabelRate:
		out := make([]Field, len(d.Windows))
		for i, w := range d.Windows {
			out[i] = Field{Name: d.Name + "_" + w.Name, Type: Number, Help: help}
		}
		return out
	case KindNovelty, KindMismatch:
		return []Field{{Name: d.Name, Type: Bool, Help: help}}
	case KindValue:
		f, _ := lookupField(d.Field)
		return []Field{{Name: d.Name, Type: f.typ, Help: help}}
	}
	return []Field{{Name: d.Name, Type: Number, Help: help}}
}

// Error is one problem in a definition file.
type Error struct {
	Pos     Pos
	Feature string // "" for problems outside a definition
	Msg     string
}

func (e *Error) Error() string {
	if e.Feature == "" {
		return fmt.Sprintf("%s: %s", e.Pos, e.Msg)
	}
	return fmt.Sprintf("%s: feature %q: %s", e.Pos, e.Feature, e.Msg)
}

// keysByKind lists the keys each kind accepts besides name, help and kind.
var keysByKind = map[Kind][]string{
	KindWindow:    {"entity", "aggregate", "field", "filter", "windows", "resolution", "exact_up_to", "precision"},
	KindRecency:   {"entity", "measure"},
	KindNovelty:   {"entity", "field", "filter", "lookback", "capacity"},
	KindDistance:  {"from", "to"},
	KindTravel:    {"entity", "location"},
	KindValue:     {"field"},
	KindMismatch:  {"fields"},
	KindAnomaly:   {"entity", "measure", "field", "filter", "windows", "resolution", "min_history"},
	KindHourOfDay: {"entity", "filter", "min_history"},
	KindLabelRate: {"entity", "windows", "delay", "resolution"},
}

var allKeys = []string{"name", "help", "kind", "entity", "aggregate", "field", "fields", "filter", "windows",
	"resolution", "measure", "from", "to", "location", "min_history", "exact_up_to", "precision", "lookback", "capacity", "delay"}

// Parse decodes and validates a definition file strictly: a second YAML
// document, unknown or repeated keys, wrong types, invalid values and
// feature names rules could not read are errors, all reported at once as
// name:line:col: feature "x": message (an errors.Join of *Error).
func Parse(name string, data []byte) (*File, error) {
	p := &parser{file: name}
	// One YAML document: a second one (after ---) would be ignored.
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root yaml.Node
	switch err := dec.Decode(&root); {
	case errors.Is(err, io.EOF):
		p.errf(Pos{name, 1, 1}, "", "empty file: want a features: list")
		return nil, p.err()
	case err != nil:
		return nil, p.yamlError(data, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, p.yamlError(data, err)
		}
		p.errf(Pos{name, max(extra.Line, 1), max(extra.Column, 1)}, "", "a features file holds one YAML document; found a second one")
		return nil, p.err()
	}
	f := &File{Name: name}
	if root.Kind == 0 || len(root.Content) == 0 {
		p.errf(Pos{name, 1, 1}, "", "empty file: want a features: list")
		return nil, p.err()
	}
	doc := root.Content[0]
	if doc.Kind != yaml.MappingNode {
		p.errf(p.pos(doc), "", "want a mapping with a features: list")
		return nil, p.err()
	}
	var list *yaml.Node
	var listKey *yaml.Node
	for i := 0; i+1 < len(doc.Content); i += 2 {
		k, v := doc.Content[i], doc.Content[i+1]
		switch {
		case k.Value == "features" && listKey != nil:
			// A repeated key would silently replace the first list.
			p.errf(p.pos(k), "", "key %q given twice (first at line %d)", k.Value, listKey.Line)
		case k.Value == "features":
			list, listKey = v, k
		default:
			p.errf(p.pos(k), "", "unknown key %q (the file has one key, features)", k.Value)
		}
	}
	if list == nil {
		p.errf(p.pos(doc), "", "missing features: list")
		return nil, p.err()
	}
	if list.Kind != yaml.SequenceNode {
		p.errf(p.pos(list), "", "features must be a list of definitions")
		return nil, p.err()
	}
	if len(list.Content) > MaxDefinitions {
		p.errf(p.pos(list), "", "more than %d definitions", MaxDefinitions)
		return nil, p.err()
	}
	for _, item := range list.Content {
		if d, ok := p.definition(item); ok {
			f.Features = append(f.Features, d)
		}
	}
	// Names of the features produced must be unique across the file.
	seen := map[string]Pos{}
	filters := map[string]bool{}
	for i := range f.Features {
		d := &f.Features[i]
		for _, o := range d.Outputs() {
			if why := reservedName(o.Name); why != "" {
				// Rules read features by name: this one they could not.
				p.errf(d.namePos, d.Name, "%s is %s: rules could not read this feature; rename it", o.Name, why)
				continue
			}
			if first, dup := seen[o.Name]; dup {
				p.errf(d.Pos, d.Name, "feature %s is already defined at %s", o.Name, first)
				continue
			}
			seen[o.Name] = d.Pos
		}
		if d.Filter != "" {
			filters[d.Filter] = true
		}
	}
	if len(filters) > MaxFilters {
		p.errf(Pos{name, 1, 1}, "", "more than %d distinct filters", MaxFilters)
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	return f, nil
}

type parser struct {
	file string
	errs []error
}

func (p *parser) err() error { return errors.Join(p.errs...) }

func (p *parser) errf(pos Pos, feature, format string, args ...any) {
	p.errs = append(p.errs, &Error{Pos: pos, Feature: feature, Msg: fmt.Sprintf(format, args...)})
}

func (p *parser) pos(n *yaml.Node) Pos { return Pos{p.file, n.Line, n.Column} }

// yamlError turns a yaml.v3 syntax error into a positioned Error.
func (p *parser) yamlError(data []byte, err error) error {
	e := yamlsyntax.Errors(data, err)[0] // a syntax error is one problem
	return &Error{Pos: Pos{p.file, e.Line, e.Col}, Msg: e.Msg}
}

// definition decodes one list item, reporting every problem.
func (p *parser) definition(n *yaml.Node) (Definition, bool) {
	d := Definition{Pos: p.pos(n), keyPos: map[string]Pos{}}
	if n.Kind != yaml.MappingNode {
		p.errf(p.pos(n), "", "a definition must be a mapping (name:, kind:, ...)")
		return d, false
	}
	before := len(p.errs)
	vals := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Value == "name" && v.Kind == yaml.ScalarNode {
			d.Name = v.Value
		}
		if _, dup := vals[k.Value]; dup {
			p.errs = append(p.errs, &Error{Pos: p.pos(k), Msg: fmt.Sprintf("key %q given twice", k.Value)})
			continue
		}
		vals[k.Value] = v
		d.keyPos[k.Value] = p.pos(k)
	}
	// Unknown keys, then keys the kind does not take.
	d.Kind = KindWindow
	if v, ok := vals["kind"]; ok {
		d.Kind = Kind(p.str(&d, v, "kind"))
		if !slices.Contains(Kinds, d.Kind) {
			p.errf(p.pos(v), d.Name, "unknown kind %q; one of %s", d.Kind, joinKinds())
		}
	} else if _, ok := vals["aggregate"]; !ok {
		p.errf(d.Pos, d.Name, "kind is required unless aggregate is given (kind: window)")
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		switch {
		case !slices.Contains(allKeys, k.Value):
			p.errf(p.pos(k), d.Name, "unknown key %q", k.Value)
		case k.Value == "name" || k.Value == "help" || k.Value == "kind":
		case slices.Contains(Kinds, d.Kind) && !slices.Contains(keysByKind[d.Kind], k.Value):
			p.errf(p.pos(k), d.Name, "key %q does not apply to kind %s (it takes %s)", k.Value, d.Kind, strings.Join(keysByKind[d.Kind], ", "))
		}
	}
	// Decode each known key. Key errors above do not stop the checks of
	// the combination below; value errors do (they would only cascade).
	keyErrs := len(p.errs)
	if v, ok := vals["name"]; ok {
		d.Name = p.str(&d, v, "name")
		d.namePos = p.pos(v)
		if v.Kind == yaml.ScalarNode && !validName(d.Name) {
			p.errf(p.pos(v), d.Name, "name must be lower-case letters, digits and _, starting with a letter, at most 64 bytes")
		}
	} else {
		p.errf(d.Pos, "", "name is required")
	}
	if v, ok := vals["help"]; ok {
		d.Help = p.str(&d, v, "help")
	}
	if v, ok := vals["entity"]; ok {
		n := len(p.errs)
		d.Entity = p.strList(&d, v, "entity")
		if len(p.errs) == n && (len(d.Entity) == 0 || len(d.Entity) > 2) {
			p.errf(p.pos(v), d.Name, "entity is one field path or a list of two (a composite key)")
		}
		for _, e := range d.Entity {
			if f, ok := lookupField(e); !ok {
				p.errf(p.pos(v), d.Name, "unknown entity field %q; one of %s", e, fieldPaths())
			} else if f.str == nil && e != "ip.asn" {
				p.errf(p.pos(v), d.Name, "entity field %q is a number; an entity is keyed on an identifier", e)
			}
		}
		if len(d.Entity) == 2 && d.Entity[0] == d.Entity[1] {
			p.errf(p.pos(v), d.Name, "the two parts of a composite entity must differ")
		}
	}
	if v, ok := vals["aggregate"]; ok {
		d.Aggregate = Aggregate(p.str(&d, v, "aggregate"))
		if !slices.Contains(Aggregates, d.Aggregate) {
			p.errf(p.pos(v), d.Name, "unknown aggregate %q; one of count, sum, avg, min, max, stddev, distinct", d.Aggregate)
		}
	}
	if v, ok := vals["field"]; ok {
		d.Field = p.str(&d, v, "field")
		if _, ok := lookupField(d.Field); !ok {
			p.errf(p.pos(v), d.Name, "unknown field %q; one of %s", d.Field, fieldPaths())
		}
	}
	if v, ok := vals["fields"]; ok {
		d.Fields = p.strList(&d, v, "fields")
	}
	if v, ok := vals["filter"]; ok {
		d.Filter = p.str(&d, v, "filter")
		if strings.TrimSpace(d.Filter) == "" {
			p.errf(p.pos(v), d.Name, "filter is empty")
		} else if err := checkFilter(d.Filter); err != nil {
			pos := p.pos(v)
			var fe *filterError
			if errors.As(err, &fe) && v.Style&(yaml.LiteralStyle|yaml.FoldedStyle) == 0 {
				if fe.line <= 1 {
					pos.Col += fe.col
					if v.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
						pos.Col++
					}
				}
				err = errors.New(fe.msg)
			}
			p.errf(pos, d.Name, "filter: %v", err)
		}
	}
	if v, ok := vals["windows"]; ok {
		for _, s := range p.strList(&d, v, "windows") {
			l, err := ParseDuration(s)
			if err != nil {
				p.errf(p.pos(v), d.Name, "windows: %v", err)
				continue
			}
			if l > MaxWindow {
				p.errf(p.pos(v), d.Name, "windows: %s is longer than %s", s, FormatDuration(MaxWindow))
				continue
			}
			d.Windows = append(d.Windows, Window{Length: l, Name: s})
		}
		if len(d.Windows) == 0 && len(p.errs) == before {
			p.errf(p.pos(v), d.Name, "windows: at least one window is required")
		}
		for i := 1; i < len(d.Windows); i++ {
			if d.Windows[i].Length <= d.Windows[i-1].Length {
				p.errf(p.pos(v), d.Name, "windows must be in increasing order without repeats (%s after %s)", d.Windows[i], d.Windows[i-1])
				break
			}
		}
	}
	d.Resolution = DefaultResolution
	if v, ok := vals["resolution"]; ok {
		r, err := ParseDuration(p.str(&d, v, "resolution"))
		if err != nil {
			p.errf(p.pos(v), d.Name, "resolution: %v", err)
		} else if r > Day {
			p.errf(p.pos(v), d.Name, "resolution: at most 1d")
		} else {
			d.Resolution = r
		}
	}
	if v, ok := vals["measure"]; ok {
		d.Measure = p.str(&d, v, "measure")
	}
	for _, k := range []string{"from", "to", "location"} {
		if v, ok := vals[k]; ok {
			s := p.str(&d, v, k)
			if _, ok := locationSource(s); !ok {
				p.errf(p.pos(v), d.Name, "%s: unknown location %q; one of ip, billing, shipping", k, s)
			}
			switch k {
			case "from":
				d.From = s
			case "to":
				d.To = s
			default:
				d.Location = s
			}
		}
	}
	intKey := func(k string, dst *int, def, lo, hi int) {
		*dst = def
		if v, ok := vals[k]; ok {
			x, err := strconv.Atoi(p.str(&d, v, k))
			if err != nil || x < lo || x > hi {
				p.errf(p.pos(v), d.Name, "%s: want a whole number from %d to %d", k, lo, hi)
				return
			}
			*dst = x
		}
	}
	minHist := DefaultMinHistory
	if d.Kind == KindHourOfDay {
		minHist = DefaultHourHistory
	}
	intKey("min_history", &d.MinHistory, minHist, 1, 1_000_000)
	intKey("exact_up_to", &d.ExactUpTo, DefaultExactUpTo, 1, MaxExactUpTo)
	intKey("precision", &d.Precision, DefaultPrecision, 4, 16)
	intKey("capacity", &d.Capacity, DefaultNoveltyValues, 1, MaxNoveltyValues)
	if v, ok := vals["lookback"]; ok {
		l, err := ParseDuration(p.str(&d, v, "lookback"))
		if err != nil {
			p.errf(p.pos(v), d.Name, "lookback: %v", err)
		}
		d.Lookback = l
	}
	if d.Kind == KindLabelRate {
		d.Delay = DefaultLabelDelay
	}
	if v, ok := vals["delay"]; ok {
		l, err := ParseDuration(p.str(&d, v, "delay"))
		if err != nil {
			p.errf(p.pos(v), d.Name, "delay: %v", err)
		} else if l > MaxWindow {
			p.errf(p.pos(v), d.Name, "delay: at most %s", FormatDuration(MaxWindow))
		}
		d.Delay = l
	}
	if len(p.errs) == keyErrs {
		d.check(p)
	}
	return d, len(p.errs) == before
}

// check validates the combination of keys once each is well-formed.
func (d *Definition) check(p *parser) {
	at := func(key string) Pos {
		if pos, ok := d.keyPos[key]; ok {
			return pos
		}
		return d.Pos
	}
	need := func(keys ...string) {
		for _, k := range keys {
			if _, ok := d.keyPos[k]; !ok {
				p.errf(d.Pos, d.Name, "kind %s requires %s", d.Kind, k)
			}
		}
	}
	resolutionFits := func() {
		for _, w := range d.Windows {
			if w.Length%d.Resolution != 0 || w.Length < d.Resolution {
				p.errf(at("resolution"), d.Name, "resolution %s does not divide window %s", FormatDuration(d.Resolution), w)
			}
		}
	}
	switch d.Kind {
	case KindWindow:
		need("entity", "aggregate", "windows")
		switch d.Aggregate {
		case Count:
			if d.Field != "" {
				p.errf(at("field"), d.Name, "count takes no field")
			}
		case Distinct:
			if d.Field == "" {
				p.errf(d.Pos, d.Name, "distinct requires field (the value counted: merchant.id, device.fingerprint, ...)")
			} else if slices.Contains(d.Entity, d.Field) {
				p.errf(at("field"), d.Name, "distinct of the entity key itself is always 1")
			}
		default:
			f, _ := lookupField(d.Field)
			if d.Field == "" {
				p.errf(d.Pos, d.Name, "%s requires a numeric field (amount or attributes.NAME)", d.Aggregate)
			} else if f.num == nil || d.Field == "ip.asn" {
				p.errf(at("field"), d.Name, "%s needs a numeric field (amount or attributes.NAME), not %s", d.Aggregate, d.Field)
			}
		}
		if d.Aggregate != Distinct {
			for _, k := range []string{"exact_up_to", "precision"} {
				if _, ok := d.keyPos[k]; ok {
					p.errf(at(k), d.Name, "%s applies to aggregate distinct only", k)
				}
			}
		} else if _, ok := d.keyPos["resolution"]; ok {
			p.errf(at("resolution"), d.Name, "resolution does not apply to distinct (values keep their last-seen second)")
		}
		resolutionFits()
	case KindRecency:
		need("entity", "measure")
		if d.Measure != SinceFirst && d.Measure != SinceLast && d.Measure != "" {
			p.errf(at("measure"), d.Name, "measure: want since_first or since_last, not %q", d.Measure)
		}
	case KindNovelty:
		need("entity", "field")
		if slices.Contains(d.Entity, d.Field) {
			p.errf(at("field"), d.Name, "the entity key is never new for itself")
		}
	case KindDistance:
		need("from", "to")
		if d.From == d.To && d.From != "" {
			p.errf(at("to"), d.Name, "from and to are the same location")
		}
	case KindTravel:
		need("entity", "location")
	case KindValue:
		need("field")
		if d.Field == "device.ip" || d.Field == "ip" {
			// a value feature is a column of the signals: the address would
			// be stored as text, where signals keep only its keyed hash
			p.errf(at("field"), d.Name, "field: the IP address itself is not a feature (signals store it only as a keyed hash): rules read device.ip directly; features can use ip.country or ip.asn")
		}
	case KindMismatch:
		need("fields")
		if len(d.Fields) != 2 {
			p.errf(at("fields"), d.Name, "fields: want two fields to compare, such as [ip.country, billing.country]")
		}
		for _, f := range d.Fields {
			if s, ok := lookupField(f); !ok || s.str == nil {
				p.errf(at("fields"), d.Name, "fields: %q is not a known string field", f)
			}
		}
		if len(d.Fields) == 2 && d.Fields[0] == d.Fields[1] {
			p.errf(at("fields"), d.Name, "fields: the two fields must differ")
		}
	case KindAnomaly:
		need("entity", "measure", "windows")
		if d.Measure != ZScore && d.Measure != Ratio && d.Measure != "" {
			p.errf(at("measure"), d.Name, "measure: want zscore or ratio, not %q", d.Measure)
		}
		if d.Field == "" {
			d.Field = "amount"
		} else if f, _ := lookupField(d.Field); f.num == nil || d.Field == "ip.asn" {
			p.errf(at("field"), d.Name, "anomaly needs a numeric field (amount or attributes.NAME), not %s", d.Field)
		}
		resolutionFits()
	case KindHourOfDay:
		need("entity")
	case KindLabelRate:
		need("entity", "windows")
		if d.Delay%d.Resolution != 0 {
			p.errf(at("delay"), d.Name, "resolution %s does not divide delay %s", FormatDuration(d.Resolution), FormatDuration(d.Delay))
		}
		resolutionFits()
	}
}

func (p *parser) str(d *Definition, v *yaml.Node, key string) string {
	if v.Kind != yaml.ScalarNode || v.Tag == "!!null" {
		p.errf(p.pos(v), d.Name, "%s must be a single value", key)
		return ""
	}
	return v.Value
}

// strList accepts a scalar or a flow/block list of scalars.
func (p *parser) strList(d *Definition, v *yaml.Node, key string) []string {
	if v.Kind == yaml.ScalarNode && v.Tag != "!!null" {
		return []string{v.Value}
	}
	if v.Kind != yaml.SequenceNode {
		p.errf(p.pos(v), d.Name, "%s must be a value or a list", key)
		return nil
	}
	out := make([]string, 0, len(v.Content))
	for _, c := range v.Content {
		if c.Kind != yaml.ScalarNode || c.Tag == "!!null" {
			p.errf(p.pos(c), d.Name, "%s: each item must be a single value", key)
			continue
		}
		out = append(out, c.Value)
	}
	return out
}

func validName(s string) bool {
	if s == "" || len(s) > 64 || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	return strings.Trim(s, "abcdefghijklmnopqrstuvwxyz0123456789_") == ""
}

func joinKinds() string {
	s := make([]string, len(Kinds))
	for i, k := range Kinds {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}
