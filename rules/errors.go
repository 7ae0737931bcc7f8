package rules

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/vigil-fraud/vigil/features"
)

// Pos is a position in a rule file: 1-based line and column.
type Pos struct {
	File      string
	Line, Col int
}

func (p Pos) String() string { return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col) }

// Error is one problem in a rule file, printed as
// file:line:col: rule "name": message.
type Error struct {
	Pos  Pos
	Rule string // the rule concerned, if any
	Err  error
}

func (e *Error) Error() string {
	if e.Pos.File == "" {
		return e.Err.Error()
	}
	if e.Rule != "" {
		return fmt.Sprintf("%s: rule %q: %v", e.Pos, e.Rule, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.Pos, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Errors flattens an error returned by ParseFile, Compile or a Loader into
// its *Error values, sorted by file and position. Errors that are not
// *Error (I/O errors) are returned as *Error with an empty position.
func Errors(err error) []*Error {
	var out []*Error
	var walk func(error)
	walk = func(err error) {
		if err == nil {
			return
		}
		if e, ok := err.(*Error); ok {
			out = append(out, e)
			return
		}
		if e, ok := err.(*features.Error); ok { // a features file reloaded with the rules
			msg := e.Msg
			if e.Feature != "" {
				msg = fmt.Sprintf("feature %q: %s", e.Feature, e.Msg)
			}
			out = append(out, &Error{Pos: Pos{e.Pos.File, e.Pos.Line, e.Pos.Col}, Err: errors.New(msg)})
			return
		}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		out = append(out, &Error{Err: err})
	}
	walk(err)
	sortErrors(out)
	return out
}

func sortErrors(errs []*Error) {
	slices.SortStableFunc(errs, func(a, b *Error) int {
		if c := strings.Compare(a.Pos.File, b.Pos.File); c != 0 {
			return c
		}
		if a.Pos.Line != b.Pos.Line {
			return a.Pos.Line - b.Pos.Line
		}
		return a.Pos.Col - b.Pos.Col
	})
}

// errorList collects problems with their positions.
type errorList []*Error

func (l *errorList) add(pos Pos, rule, format string, args ...any) {
	*l = append(*l, &Error{Pos: pos, Rule: rule, Err: fmt.Errorf(format, args...)})
}

// err returns the problems as one error (nil when there are none), sorted
// by position; errors.Join keeps each *Error reachable.
func (l errorList) err() error {
	if len(l) == 0 {
		return nil
	}
	sortErrors(l)
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errors.Join(errs...)
}
