// Package yamlsyntax positions the errors of gopkg.in/yaml.v3 for
// file:line:col reports. yaml.v3 gives a line only, and for some problems
// the line where the enclosing context starts rather than the problem's:
// a tab in the indentation of a line is reported a line or more before it.
// Rule files, rule test files and features files share this so that one
// mistake is reported at the same place in all of them.
package yamlsyntax

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Error is one problem yaml.v3 reported, at a 1-based line and column.
type Error struct {
	Line, Col int
	Msg       string // without yaml.v3's "yaml: line N: " prefix
	Value     bool   // a value's problem a decoder reported (NodeError), not the YAML's
}

// lineRe reads yaml.v3's "line N: " prefix, and the "line N, column C: "
// of errors that decoders write at a node (NodeError).
var lineRe = regexp.MustCompile(`^(?:yaml: )?line (\d+)(?:, column (\d+))?: (.*)$`)

// NodeError is a decoding problem at n, for an UnmarshalYAML method to
// return: a *yaml.TypeError, so that yaml.v3 goes on and reports the
// document's other problems, which Errors places at n's line and column.
func NodeError(n *yaml.Node, format string, args ...any) error {
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d, column %d: ", n.Line, n.Column) + fmt.Sprintf(format, args...)}}
}

// Errors splits err — a syntax error or a *yaml.TypeError's list — into
// positioned problems. data is the document yaml.v3 read: a tab in an
// indentation is reported at the tab (see indentTab), not at the line
// yaml.v3 names.
func Errors(data []byte, err error) []Error {
	var te *yaml.TypeError
	var lines []string
	if errors.As(err, &te) {
		lines = te.Errors
	} else {
		lines = []string{err.Error()}
	}
	out := make([]Error, 0, len(lines))
	for _, l := range lines {
		e := Error{Line: 1, Col: 1}
		if m := lineRe.FindStringSubmatch(l); m != nil {
			e.Line, _ = strconv.Atoi(m[1])
			if m[2] != "" {
				e.Col, _ = strconv.Atoi(m[2])
				e.Value = true
			}
			l = m[3]
		}
		e.Msg = strings.TrimPrefix(l, "yaml: ")
		e.Line = max(e.Line, 1)
		switch {
		case strings.Contains(e.Msg, "tab character"):
			if line, col, ok := indentTab(data, e.Line); ok {
				e.Line, e.Col = line, col
			}
		case strings.Contains(e.Msg, "cannot start any token"):
			// yaml.v3's line is the character's: a tab there is a column.
			if col, ok := leadingTab(lineAt(data, e.Line)); ok {
				e.Col = col
			}
		}
		out = append(out, e)
	}
	return out
}

// indentTab finds the tab a tab-in-indentation error is about: yaml.v3
// names the line where the enclosing scalar or mapping starts (from); the
// tab is the first one in the indentation of that line or a later one, at
// or left of the column where from's content starts. A tab further right
// is inside deeper content — a block scalar's text, a continued plain
// scalar — where YAML allows it.
func indentTab(data []byte, from int) (line, col int, ok bool) {
	rest := fromLine(data, from)
	limit := math.MaxInt
	for n := from; rest != nil; n++ {
		var l []byte
		l, rest = cut(rest)
		if n == from {
			limit = contentCol(l)
		}
		if c, ok := leadingTab(l); ok && c <= limit {
			return n, c, true
		}
	}
	return 0, 0, false
}

// KeyColumn is the column (in characters, as yaml.v3 counts them) where
// key is written as a mapping key on line n of data — plain or quoted,
// followed by a colon — or 1 when it is not found there. yaml.v3 names
// only the line of a key it does not know.
func KeyColumn(data []byte, n int, key string) int {
	l := string(lineAt(data, n))
	for _, k := range []string{key, `"` + key + `"`, "'" + key + "'"} {
		for i := 0; i+len(k) <= len(l); i++ {
			j := strings.Index(l[i:], k)
			if j < 0 {
				break
			}
			i += j
			before := i == 0 || strings.ContainsRune(" \t{,-?", rune(l[i-1]))
			if after := strings.TrimLeft(l[i+len(k):], " \t"); before && strings.HasPrefix(after, ":") {
				return utf8.RuneCountInString(l[:i]) + 1
			}
		}
	}
	return 1
}

// lineAt returns line n (1-based) of data without its end of line, nil
// past the end.
func lineAt(data []byte, n int) []byte {
	rest := fromLine(data, n)
	if rest == nil {
		return nil
	}
	l, _ := cut(rest)
	return l
}

// fromLine returns data from the start of line n (1-based), nil past the
// end. A leading byte order mark is not part of line 1.
func fromLine(data []byte, n int) []byte {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	if data == nil {
		data = []byte{}
	}
	for i := 1; i < n; i++ {
		j := bytes.IndexByte(data, '\n')
		if j < 0 {
			return nil
		}
		data = data[j+1:]
	}
	return data
}

// cut splits the first line (without its end of line) from the rest (nil
// when it was the last).
func cut(data []byte) (line, rest []byte) {
	j := bytes.IndexByte(data, '\n')
	if j < 0 {
		return bytes.TrimSuffix(data, []byte("\r")), nil
	}
	return bytes.TrimSuffix(data[:j], []byte("\r")), data[j+1:]
}

// leadingTab returns the column of the first tab among a line's leading
// spaces and tabs.
func leadingTab(l []byte) (col int, ok bool) {
	for c, b := range l {
		switch b {
		case '\t':
			return c + 1, true
		case ' ':
		default:
			return 0, false
		}
	}
	return 0, false
}

// contentCol is the column where a line's content starts, past its
// indentation and sequence dashes ("  - name: x": 5); a line without
// content has no limit.
func contentCol(l []byte) int {
	for c, b := range l {
		if b != ' ' && b != '\t' && b != '-' {
			return c + 1
		}
	}
	return math.MaxInt
}
