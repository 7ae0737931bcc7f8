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
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Error is one problem yaml.v3 reported, at a 1-based line and column.
type Error struct {
	Line, Col int
	Msg       string // without yaml.v3's "yaml: line N: " prefix
}

var lineRe = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// Errors splits err — a syntax error or a *yaml.TypeError's list — into
// positioned problems. data is the document yaml.v3 read: a problem with a
// tab is moved to the first tab of an indentation at or after the line
// reported.
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
			l = m[2]
		}
		e.Msg = strings.TrimPrefix(l, "yaml: ")
		e.Line = max(e.Line, 1)
		if strings.Contains(e.Msg, "tab character") || strings.Contains(e.Msg, "cannot start any token") {
			if line, col, ok := indentTab(data, e.Line); ok {
				e.Line, e.Col = line, col
			}
		}
		out = append(out, e)
	}
	return out
}

// indentTab finds the first tab in the leading whitespace of a line at or
// after from (1-based).
func indentTab(data []byte, from int) (line, col int, ok bool) {
	for n := 1; len(data) > 0; n++ {
		l := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			l, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if n < from {
			continue
		}
		for c, b := range l {
			if b == '\t' {
				return n, c + 1, true
			}
			if b != ' ' {
				break
			}
		}
	}
	return 0, 0, false
}
