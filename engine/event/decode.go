package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strings"
	"time"
)

// MaxSize is the largest encoded event Decode accepts.
const MaxSize = 64 << 10

// Decode parses one JSON event strictly (unknown fields are errors, at any
// depth), then validates it. now is used when the event has no time. Every
// error is an *Error naming the JSON path of each problem.
func Decode(data []byte, now time.Time) (*Event, error) {
	if len(data) > MaxSize {
		return nil, &Error{Fields: []FieldError{{"", fmt.Sprintf("event is larger than %d bytes", MaxSize)}}}
	}
	ev, ok := decodeFast(data)
	if !ok {
		var err error
		if ev, err = decodeReference(data); err != nil {
			return nil, err
		}
	}
	if err := ev.Validate(now); err != nil {
		return nil, err
	}
	return ev, nil
}

// decodeReference is the reference decoder, before validation:
// encoding/json, strict. decodeFast handles the common events the same
// way, faster; everything else (and every error) comes from here.
func decodeReference(data []byte) (*Event, error) {
	ev := new(Event)
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	d.UseNumber()
	if err := d.Decode(ev); err != nil {
		if perr := rawPANs(data); perr != nil {
			return nil, perr // a card number anywhere wins over other errors
		}
		return nil, decodeError(data, err)
	}
	if string(bytes.TrimSpace(data)) == "null" { // decodes into nothing, without an error
		return nil, &Error{Fields: []FieldError{{"", "expected an object, got null"}}}
	}
	if _, err := d.Token(); err != io.EOF {
		if perr := rawPANs(data); perr != nil {
			return nil, perr
		}
		return nil, &Error{Fields: []FieldError{{"", "unexpected data after the event object"}}}
	}
	// encoding/json matches keys case-insensitively and keeps the last of
	// duplicate keys: the walk over the tokens refuses both.
	w := walkTokens(data)
	if len(w.keys.Fields) > 0 {
		if len(w.pans.Fields) > 0 {
			return nil, w.pans.escape() // a duplicate's value is scanned too
		}
		return nil, w.keys.escape()
	}
	if len(w.lost.Fields) > 0 {
		return nil, w.lost.escape()
	}
	// encoding/json leaves a field that is absent or null as it was: the
	// walk tells them from a zero value.
	ev.timeSent, ev.amountMissing = w.timeSent, !w.amountSent
	return ev, nil
}

// decodeError turns an encoding/json error into an *Error with a JSON path.
func decodeError(data []byte, err error) error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	var pe *time.ParseError
	switch {
	case errors.As(err, &te):
		path := te.Field
		return &Error{Fields: []FieldError{{path, fmt.Sprintf("expected %s, got %s", jsonKind(te.Type), te.Value)}}}
	case errors.As(err, &se):
		return &Error{Fields: []FieldError{{"", fmt.Sprintf("malformed JSON at byte %d: %s", se.Offset, strings.TrimPrefix(se.Error(), "json: "))}}}
	case errors.As(err, &pe):
		path := timePath(data)
		return &Error{Fields: []FieldError{{path, "expected an RFC 3339 time such as 2026-01-02T15:04:05Z"}}}
	case errors.Is(err, io.EOF):
		return &Error{Fields: []FieldError{{"", "empty body: expected a JSON event object"}}}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &Error{Fields: []FieldError{{"", "truncated JSON"}}}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		if path := unknownPath(data); path != "" {
			return &Error{Fields: []FieldError{{path, "unknown field"}}}
		}
		return &Error{Fields: []FieldError{{"", strings.TrimPrefix(err.Error(), "json: ")}}}
	}
	return &Error{Fields: []FieldError{{"", strings.TrimPrefix(err.Error(), "json: ")}}}
}

// jsonKind names a Go type the way a JSON author thinks of it.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "a value"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "a boolean"
	case reflect.Map, reflect.Struct:
		if t == reflect.TypeOf(time.Time{}) {
			return "an RFC 3339 time string"
		}
		return "an object"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Pointer:
		return jsonKind(t.Elem())
	}
	return t.String()
}

// unknownPath finds the first (in sorted order) key that the event schema
// does not know, on the slow path of an already failed decode.
func unknownPath(data []byte) string {
	var m map[string]any
	if json.Unmarshal(data, &m) != nil {
		return ""
	}
	return findUnknown("", m, reflect.TypeOf(Event{}))
}

func findUnknown(prefix string, m map[string]any, t reflect.Type) string {
	for _, k := range sortedKeys(m) {
		f, ok := fieldByJSONName(t, k)
		if !ok {
			return prefix + k
		}
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if sub, isObj := m[k].(map[string]any); isObj && ft.Kind() == reflect.Struct && ft != reflect.TypeOf(time.Time{}) {
			if p := findUnknown(prefix+k+".", sub, ft); p != "" {
				return p
			}
		}
	}
	return ""
}

// timePath finds which time field failed to parse.
func timePath(data []byte) string {
	var m map[string]any
	if json.Unmarshal(data, &m) != nil {
		return "time"
	}
	bad := func(v any) bool {
		s, ok := v.(string)
		if !ok {
			return v != nil
		}
		_, err := time.Parse(time.RFC3339, s)
		return err != nil
	}
	if v, ok := m["time"]; ok && bad(v) {
		return "time"
	}
	if a, ok := m["account"].(map[string]any); ok {
		if v, ok := a["created"]; ok && bad(v) {
			return "account.created"
		}
	}
	return "time"
}

func fieldByJSONName(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if tag == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// rawPANs scans every string, number and key of an event that failed to
// decode (unknown fields and duplicate keys included) for card numbers.
func rawPANs(data []byte) *Error {
	if w := walkTokens(data); len(w.pans.Fields) > 0 {
		return w.pans.escape()
	}
	return nil
}

// tokenWalk reads an encoded event (WalkJSON): every key and value,
// duplicates and values after the event included, as far as the JSON is
// well formed.
type tokenWalk struct {
	pans Error // values and keys holding a card number
	keys Error // duplicate keys, and keys the schema does not have (exactly)
	// Times holding a card number (in the fraction of a second): decoding
	// keeps the instant, not the text, so validation cannot see it.
	lost Error

	// The event's time and amount had a value other than null.
	timeSent, amountSent bool
}

var timeType = reflect.TypeOf(time.Time{})

func walkTokens(data []byte) *tokenWalk {
	w := &tokenWalk{}
	w.pans.PAN, w.lost.PAN = true, true
	WalkJSON(data, reflect.TypeOf(Event{}), w)
	return w
}

// Key names a key's value by the key (made safe), and notes a key that
// holds a card number, is given twice or is not the schema's (JSONVisitor).
func (w *tokenWalk) Key(path string, t reflect.Type, k string, again bool) (string, reflect.Type) {
	p := safeKey(k)
	if path != "" {
		p = path + "." + p
	}
	if ContainsPAN(k) {
		w.pans.add(p, panReason)
	}
	if again {
		w.keys.add(p, "duplicate key")
	}
	var ft reflect.Type
	if t != nil && t.Kind() == reflect.Struct && t != timeType {
		if f, ok := fieldByJSONName(t, k); ok {
			ft = f.Type
		} else {
			w.keys.add(p, "unknown field")
		}
	}
	return p, ft
}

// Value notes a value holding a card number, and whether the time and the
// amount were sent (JSONVisitor).
func (w *tokenWalk) Value(path string, t reflect.Type, v any) {
	switch v := v.(type) {
	case nil: // null: not sent
		return
	case string:
		if ContainsPAN(v) {
			w.pans.add(path, panReason)
			if t == timeType {
				w.lost.add(path, panReason)
			}
		}
	case json.Number:
		if ContainsPAN(string(v)) {
			w.pans.add(path, panReason)
		}
	}
	switch path { // only a top-level key's path has no prefix
	case "time":
		w.timeSent = true
	case "amount":
		w.amountSent = true
	}
}

// safeKey is an object key as an error path shows it: a key that holds a
// card number is replaced so that the number is never repeated.
func safeKey(k string) string {
	if ContainsPAN(k) {
		return "[key with a card number]"
	}
	return k
}
