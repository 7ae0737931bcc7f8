package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
)

// A JSONVisitor sees what WalkJSON reads.
type JSONVisitor interface {
	// Key sees key (decoded) of an object at path, whose schema type is t
	// (nil where the schema has nothing), and whether the object gave it
	// before; it returns the path and the schema type of the key's value.
	Key(path string, t reflect.Type, key string, again bool) (string, reflect.Type)
	// Value sees each value at path, whose schema type is t (nil where the
	// schema has nothing) — a string, a json.Number, a bool, nil for null,
	// or a json.Delim opening an array or object — before the walk goes
	// into it.
	Value(path string, t reflect.Type, v any)
}

// MaxJSONDepth bounds the nesting WalkJSON follows, as encoding/json's
// decoding does (deeper JSON does not decode).
const MaxJSONDepth = 10000

var errTooDeep = errors.New("nested too deep")

// WalkJSON reads data token by token against schema t (a struct type;
// keys are matched by the visitor), for what decoding it does not tell:
// every key and value, duplicate keys, unknown fields and whatever follows
// the first value included, as far as the JSON is well formed and nested at
// most MaxJSONDepth. Numbers are json.Numbers; a slice's elements have its
// element type.
func WalkJSON(data []byte, t reflect.Type, v JSONVisitor) {
	w := jsonWalk{d: json.NewDecoder(bytes.NewReader(data)), v: v}
	w.d.UseNumber()
	for w.value("", t, 0) == nil { // the document, then whatever follows it
	}
}

type jsonWalk struct {
	d *json.Decoder
	v JSONVisitor
}

func (w *jsonWalk) value(path string, t reflect.Type, depth int) error {
	if depth > MaxJSONDepth {
		return errTooDeep
	}
	tok, err := w.d.Token()
	if err != nil {
		return err
	}
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	w.v.Value(path, t, tok)
	d, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	if d == '[' {
		var elem reflect.Type
		if t != nil && t.Kind() == reflect.Slice {
			elem = t.Elem()
		}
		for i := 0; w.d.More(); i++ {
			if err := w.value(fmt.Sprintf("%s[%d]", path, i), elem, depth+1); err != nil {
				return err
			}
		}
		_, err := w.d.Token()
		return err
	}
	seen := map[string]bool{}
	for w.d.More() {
		kt, err := w.d.Token()
		if err != nil {
			return err
		}
		k, _ := kt.(string)
		p, ft := w.v.Key(path, t, k, seen[k])
		seen[k] = true
		if err := w.value(p, ft, depth+1); err != nil {
			return err
		}
	}
	_, err = w.d.Token()
	return err
}
