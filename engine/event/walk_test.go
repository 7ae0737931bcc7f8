package event

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// walkLog records what WalkJSON shows a visitor.
type walkLog []string

func (l *walkLog) Key(path string, t reflect.Type, key string, again bool) (string, reflect.Type) {
	var ft reflect.Type
	if t != nil && t.Kind() == reflect.Struct {
		if f, ok := fieldByJSONName(t, key); ok {
			ft = f.Type
		}
	}
	*l = append(*l, fmt.Sprintf("key %s/%s again=%t known=%t", path, key, again, ft != nil))
	return strings.TrimPrefix(path+"."+key, "."), ft
}

func (l *walkLog) Value(path string, _ reflect.Type, v any) {
	*l = append(*l, fmt.Sprintf("value %s=%v", path, v))
}

func TestWalkJSON(t *testing.T) {
	type inner struct {
		A string `json:"a"`
	}
	type doc struct {
		X  json.Number `json:"x"`
		In []inner     `json:"in"`
	}
	f := func(data string, want ...string) {
		t.Helper()
		var l walkLog
		WalkJSON([]byte(data), reflect.TypeFor[doc](), &l)
		if !reflect.DeepEqual([]string(l), want) {
			t.Errorf("WalkJSON(%s):\n got %q\nwant %q", data, l, want)
		}
	}
	f(`{"x":1,"x":null}`, "value ={", "key /x again=false known=true", "value x=1", "key /x again=true known=true", "value x=<nil>")
	// a slice's elements have its element type; unknown keys have none
	f(`{"in":[{"a":"s","b":{"c":2}}]}`, "value ={", "key /in again=false known=true", "value in=[", "value in[0]={",
		"key in[0]/a again=false known=true", "value in[0].a=s", "key in[0]/b again=false known=false", "value in[0].b={",
		"key in[0].b/c again=false known=false", "value in[0].b.c=2")
	// what follows the document is walked too, as far as it is JSON
	f(`{} "4111" ]`, "value ={", "value =4111")
	f(`{"x":`, "value ={", "key /x again=false known=true")
}

// TestWalkJSONDepth: nesting beyond MaxJSONDepth stops the walk instead
// of growing the stack without bound.
func TestWalkJSONDepth(t *testing.T) {
	deep := strings.Repeat("[", 3*MaxJSONDepth) + strings.Repeat("]", 3*MaxJSONDepth)
	var l walkLog
	WalkJSON([]byte(deep), nil, &l)
	if len(l) != MaxJSONDepth+1 {
		t.Errorf("%d values seen, want %d", len(l), MaxJSONDepth+1)
	}
}
