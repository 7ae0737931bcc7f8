package yamlsyntax

import (
	"fmt"
	"testing"

	"gopkg.in/yaml.v3"
)

func TestErrors(t *testing.T) {
	f := func(doc, want string) {
		t.Helper()
		var n yaml.Node
		err := yaml.Unmarshal([]byte(doc), &n)
		if err == nil {
			t.Fatalf("%q: no error", doc)
		}
		errs := Errors([]byte(doc), err)
		if len(errs) != 1 {
			t.Fatalf("%q: %d errors, want 1", doc, len(errs))
		}
		if got := fmt.Sprintf("%d:%d: %s", errs[0].Line, errs[0].Col, errs[0].Msg); got != want {
			t.Errorf("%q:\n got %s\nwant %s", doc, got, want)
		}
	}
	// yaml.v3 says line 4: the tab is on line 5.
	f("groups:\n  - name: g\n    rules:\n      - name: r1\n\twhen: amount > 5\n",
		"5:1: found a tab character that violates indentation")
	f("features:\n  - name: x\n  \tentity: card.token\n",
		"3:3: found a tab character that violates indentation")
	f("a: 1\n\t\nb: 2\n", "2:1: found a tab character that violates indentation")
	f("a: 1\nb:\n\t- x\n", "3:1: found character that cannot start any token")
	f("a:\n  b: 1\n\tc: 2\n", "3:1: found a tab character that violates indentation")
	f("a:\n  - b: 1\n  \t- c\n", "3:3: found a tab character that violates indentation")
	f("a: 1\r\nb: 2\r\n\tc: 3\r\n", "3:1: found a tab character that violates indentation")
	f("\xef\xbb\xbfa: 1\nb: 2\n\tc: 3", "3:1: found a tab character that violates indentation")
	// A tab further right than where the reported line's content starts is
	// inside deeper content (a block scalar, a continued plain scalar),
	// where YAML allows it: not the one the error is about.
	f("a:\n  b: x\n    \ty\n\tc: 2\n", "4:1: found a tab character that violates indentation")
	f("groups:\n  - name: g\n    rules:\n      - name: r1\n        when: |\n          amount >\n          \t5\n\t  reason: x\n",
		"8:1: found a tab character where an indentation space is expected")
	// Not a tab: yaml.v3's line stands, whatever tabs follow.
	f("a: 1\nb: @x\n", "2:1: found character that cannot start any token")
	f("a: 1\nb: `x`\nc: |\n  \tq\n", "2:1: found character that cannot start any token")
	f("when: @bins\nreason: |\n  \tq\n", "1:1: found character that cannot start any token")
	f("a: 1\nb: \"x\n", "2:1: found unexpected end of stream")
}

func TestErrorsTypeError(t *testing.T) {
	var v struct{ A int }
	err := yaml.Unmarshal([]byte("a: x\n"), &v)
	errs := Errors([]byte("a: x\n"), err)
	if len(errs) != 1 || errs[0].Line != 1 || errs[0].Msg != "cannot unmarshal !!str `x` into int" {
		t.Fatalf("got %+v", errs)
	}
}

func TestIndentTab(t *testing.T) {
	f := func(doc string, from, line, col int, ok bool) {
		t.Helper()
		l, c, k := indentTab([]byte(doc), from)
		if l != line || c != col || k != ok {
			t.Errorf("indentTab(%q, %d) = %d, %d, %t; want %d, %d, %t", doc, from, l, c, k, line, col, ok)
		}
	}
	f("a\n\tb", 1, 2, 1, true)
	f("a\n\tb", 3, 0, 0, false)
	f("\ta\n b\n", 2, 0, 0, false) // before from
	f("a: x\tb\n", 1, 0, 0, false) // a tab after content is not indentation
	f("  \t a", 1, 1, 3, true)
	f("", 1, 0, 0, false)
	f("a:\n  b: x\n    \ty\n", 2, 0, 0, false) // right of b: content
}

func TestLineAt(t *testing.T) {
	data := []byte("\xef\xbb\xbfa\r\n\nc")
	for n, want := range []string{1: "a", 2: "", 3: "c"} {
		if n == 0 {
			continue
		}
		if got := lineAt(data, n); string(got) != want || got == nil {
			t.Errorf("line %d = %q, want %q", n, got, want)
		}
	}
	if got := lineAt(data, 4); got != nil {
		t.Errorf("line 4 = %q, want nil", got)
	}
}

func FuzzErrors(f *testing.F) {
	f.Add([]byte("a:\n\tb: 1\n"))
	f.Add([]byte("a: [\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var n yaml.Node
		if err := yaml.Unmarshal(data, &n); err != nil {
			for _, e := range Errors(data, err) {
				if e.Line < 1 || e.Col < 1 {
					t.Fatalf("position %d:%d", e.Line, e.Col)
				}
				// A column is given only where a tab is.
				if l := lineAt(data, e.Line); e.Col > 1 && (e.Col > len(l) || l[e.Col-1] != '\t') {
					t.Fatalf("%d:%d is not a tab in %q", e.Line, e.Col, l)
				}
			}
		}
	})
}

func TestKeyColumn(t *testing.T) {
	f := func(doc string, line int, key string, col int) {
		t.Helper()
		if got := KeyColumn([]byte(doc), line, key); got != col {
			t.Errorf("KeyColumn(%q, %d, %q) = %d, want %d", doc, line, key, got, col)
		}
	}
	f("a: 1\nhit: [r]\n", 2, "hit", 1)
	f("x: [{id: t1, hit: [r]}]\n", 1, "hit", 14)
	f("x: [{id: hit, hit: [r]}]\n", 1, "hit", 15) // a value is not a key
	f("x: {\"hit\": 1}\n", 1, "hit", 5)           // quoted
	f("  - hit : 1\n", 1, "hit", 5)               // space before the colon
	f("é: {hit: 1}\n", 1, "hit", 5)               // columns count characters
	f("x: {shit: 1}\n", 1, "hit", 1)              // part of another key
	f("x: 1\n", 3, "hit", 1)                      // past the end
}

func TestNodeError(t *testing.T) {
	data := []byte("a:\n  b: [1, x]\n")
	var n yaml.Node
	if err := yaml.Unmarshal(data, &n); err != nil {
		t.Fatal(err)
	}
	x := n.Content[0].Content[1].Content[1].Content[1] // the x
	errs := Errors(data, NodeError(x, "want a number, not %q", x.Value))
	if len(errs) != 1 || errs[0] != (Error{Line: 2, Col: 10, Msg: `want a number, not "x"`, Value: true}) {
		t.Fatalf("got %+v", errs)
	}
}
