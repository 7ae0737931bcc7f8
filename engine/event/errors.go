package event

import (
	"strings"
)

// FieldError is one problem with one field, named by its JSON path
// ("card.bin", "attributes.note").
type FieldError struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

// Error is the error of a refused event: every problem found, and whether a
// raw card number was among them (HTTP 422 instead of 400).
type Error struct {
	Fields []FieldError
	// PAN is true when a field held what looks like a raw card number.
	PAN bool
}

func (e *Error) Error() string { return JoinFields("invalid event: ", e.Fields) }

// JoinFields writes problems as one message: prefix, then "path: reason"
// separated by "; ".
func JoinFields(prefix string, fields []FieldError) string {
	var b strings.Builder
	b.WriteString(prefix)
	for i, f := range fields {
		if i > 0 {
			b.WriteString("; ")
		}
		if f.Path != "" {
			b.WriteString(f.Path)
			b.WriteString(": ")
		}
		b.WriteString(f.Reason)
	}
	return b.String()
}

// escape returns a heap copy of e: a validation keeps its Error on the
// stack and allocates only when it fails.
func (e *Error) escape() *Error {
	c := *e
	return &c
}

func (e *Error) add(path, reason string) { e.Fields = append(e.Fields, FieldError{path, reason}) }

// panReason is the reason given for a field holding a card number. It never
// repeats the value.
const panReason = "looks like a raw card number (PAN); send a card token or a keyed hash instead"
