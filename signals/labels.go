package signals

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/vigil-fraud/vigil/engine"
	"github.com/vigil-fraud/vigil/engine/event"
)

// Label is a confirmed outcome of a scored transaction, fed back later.
type Label struct {
	// EventID is the id of the scored transaction.
	EventID string `json:"event_id"`
	// Label is chargeback, confirmed_fraud, false_positive or legitimate.
	Label string `json:"label"`
	// LabelledAt is when the outcome was established; default: when vigil
	// receives it. From 2000-01-01, at most 1 h ahead of vigil's clock.
	LabelledAt time.Time `json:"labelled_at,omitzero"`
	// Source says where the label comes from (a chargeback feed, a case
	// tool); optional, ≤ 128 bytes.
	Source string `json:"source,omitempty"`
}

// Limits of a labels request.
const (
	MaxLabelsPerRequest = 10000
	maxLabelsBody       = 4 << 20
)

// LabelsRequest is the body of POST /v1/labels (and of a message on the
// labels Kafka topic).
type LabelsRequest struct {
	Labels []Label `json:"labels"`
}

// labelsBody is a LabelsRequest as decoded: a label's time is nil when
// absent, so that an explicit zero time is refused rather than defaulted.
type labelsBody struct {
	Labels []labelJSON `json:"labels"`
}

type labelJSON struct {
	EventID    string     `json:"event_id"`
	Label      string     `json:"label"`
	LabelledAt *time.Time `json:"labelled_at"`
	Source     string     `json:"source"`
}

// minLabelledAt is the earliest labelled_at accepted, as for event times:
// an older one would wrap in an 18.16 DateTime (seconds since 1970 as
// UInt32) and then always win "latest label".
var minLabelledAt = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// LabelsError is the error of a refused labels request: every problem
// found, each with its JSON path, and whether a card number was among them
// (HTTP 422 instead of 400, as for events).
type LabelsError struct {
	Fields []event.FieldError
	PAN    bool
}

func (e *LabelsError) Error() string { return event.JoinFields("invalid labels: ", e.Fields) }

// oneProblem is the error of a request with a single problem.
func oneProblem(path, reason string) *LabelsError {
	return &LabelsError{Fields: []event.FieldError{{Path: path, Reason: reason}}}
}

// maxLabelProblems bounds the problems listed; a final one counts the rest.
const maxLabelProblems = 20

// panReason never repeats the value.
const panReason = "looks like a card number; send the transaction's id, never a card number"

// DecodeLabels decodes and validates a labels request strictly (unknown
// fields, keys in another case and keys given twice are refused), filling
// default times with now. The JSON's shape is checked first (the first
// problem stops decoding); then every problem of the values is reported at
// once. A card number anywhere (a key, an unknown field, an overwritten
// value, \u-escaped digits) is refused and never repeated; no error repeats
// a key of the body either. Errors are *LabelsError.
func DecodeLabels(data []byte, now time.Time) ([]Label, error) {
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	var req labelsBody
	err := d.Decode(&req)
	trailing := err == nil && len(bytes.TrimSpace(data[d.InputOffset():])) > 0 // d.More() takes a stray ] or } for the end
	w := walkLabels(data)
	switch {
	case (err != nil || trailing) && (len(w.pans.fields) > 0 || event.ContainsPAN(string(data))):
		// anywhere, a key included (the raw scan covers what follows malformed JSON)
		return nil, &LabelsError{PAN: true, Fields: []event.FieldError{{Reason: "the body holds what looks like a card number; send transaction ids, never card numbers"}}}
	case err != nil:
		return nil, labelsShapeError(data, err)
	case trailing:
		return nil, oneProblem("", "data after the JSON object")
	case len(w.keys.fields) > 0 && len(w.pans.fields) > 0: // a duplicate key's overwritten value is scanned too
		return nil, &LabelsError{PAN: true, Fields: w.pans.list()}
	case len(w.keys.fields) > 0: // a problem of the shape: the first one
		return nil, &LabelsError{Fields: w.keys.fields[:1]}
	case len(req.Labels) == 0:
		return nil, oneProblem("labels", "empty: send at least one label")
	case len(req.Labels) > MaxLabelsPerRequest:
		return nil, oneProblem("labels", fmt.Sprintf("more than %d labels in one request", MaxLabelsPerRequest))
	}
	e := &LabelsError{}
	var ps problems
	labels := make([]Label, len(req.Labels))
	for i, in := range req.Labels {
		l := &labels[i]
		*l = Label{EventID: in.EventID, Label: in.Label, Source: in.Source}
		at := func(field, reason string) { ps.add(fmt.Sprintf("labels[%d].%s", i, field), reason) }
		switch {
		case l.EventID == "":
			at("event_id", "required")
		case event.ContainsPAN(l.EventID):
			e.PAN = true
			at("event_id", panReason)
		case !validEventID(l.EventID):
			at("event_id", "must be printable ASCII without spaces, at most 128 bytes")
		}
		if !slices.Contains(Labels, l.Label) {
			if event.ContainsPAN(l.Label) {
				e.PAN = true
				at("label", panReason)
			} else {
				at("label", "must be one of "+strings.Join(Labels, ", "))
			}
		}
		switch {
		case in.LabelledAt == nil:
			l.LabelledAt = now.UTC()
		case in.LabelledAt.Before(minLabelledAt):
			at("labelled_at", "before 2000-01-01")
		case in.LabelledAt.After(now.Add(time.Hour)):
			at("labelled_at", "more than 1h in the future")
		default:
			l.LabelledAt = in.LabelledAt.UTC()
		}
		switch {
		case event.ContainsPAN(l.Source):
			e.PAN = true
			at("source", panReason)
		case len(l.Source) > 128 || !printable(l.Source):
			at("source", "must be printable, at most 128 bytes")
		}
	}
	if len(w.pans.fields) > 0 && !e.PAN { // where the checks above do not look: a time's fraction of a second
		return nil, &LabelsError{PAN: true, Fields: w.pans.list()}
	}
	if e.Fields = ps.list(); len(e.Fields) > 0 {
		return nil, e
	}
	return labels, nil
}

// problems collects the problems of a request: the first maxLabelProblems,
// and a count of the rest.
type problems struct {
	fields []event.FieldError
	more   int
}

func (p *problems) add(path, reason string) {
	if len(p.fields) == maxLabelProblems {
		p.more++
		return
	}
	p.fields = append(p.fields, event.FieldError{Path: path, Reason: reason})
}

// list is the problems, with a final one counting those left out.
func (p *problems) list() []event.FieldError {
	if p.more > 0 {
		return append(p.fields, event.FieldError{Reason: fmt.Sprintf("and %d more problems", p.more)})
	}
	return p.fields
}

// labelsWalk reads a labels body token by token, for what decoding it
// does not tell: encoding/json matches keys in any case and keeps the last
// of duplicate keys, and its errors quote the keys as decoded. Every key
// and value (unknown fields, overwritten values and what follows the body
// included, as far as the JSON is well formed) is scanned for card numbers
// once decoded, so that \u-escaped digits count. Paths name a label by its
// index and a field by the schema's name: a key of the body is never
// repeated. The walk (event.WalkJSON) follows the schema of labelsBody.
type labelsWalk struct {
	pans problems // where a card number is (a key's: the object holding it)
	keys problems // keys in another case, keys given twice
}

func walkLabels(data []byte) *labelsWalk { return walkSchema(data, reflect.TypeFor[labelsBody]()) }

func walkSchema(data []byte, t reflect.Type) *labelsWalk {
	w := &labelsWalk{}
	event.WalkJSON(data, t, w)
	return w
}

// CheckJSON reads data against schema t (a struct type; its json tags
// name the keys) as DecodeLabels reads a labels body, for what decoding it
// with encoding/json does not tell: where a card number is (any key or
// value, \u-escaped digits included; a key's is the object holding it),
// and keys written in another case or given twice. Paths use the schema's
// names: no key of data is repeated. Each list holds at most
// maxLabelProblems and a final count of the rest.
func CheckJSON(data []byte, t reflect.Type) (pans, keys []event.FieldError) {
	w := walkSchema(data, t)
	return w.pans.list(), w.keys.list()
}

// Key names a key's value by the schema's name for it (the object's path
// when it has none), and notes a key that holds a card number, is written
// in another case or given twice (event.JSONVisitor).
func (w *labelsWalk) Key(path string, t reflect.Type, k string, again bool) (string, reflect.Type) {
	name, ft := schemaField(t, k)
	p := path
	if name != "" {
		p = strings.TrimPrefix(path+"."+name, ".")
	}
	switch {
	case event.ContainsPAN(k):
		w.pans.add(path, "a key looks like a card number")
	case name != "" && name != k:
		w.keys.add(p, "key written in another case: keys are lower case")
	case name != "" && again:
		w.keys.add(p, "duplicate key")
	}
	return p, ft
}

// Value notes a value holding a card number (event.JSONVisitor).
func (w *labelsWalk) Value(path string, _ reflect.Type, v any) {
	switch v := v.(type) {
	case string:
		if event.ContainsPAN(v) {
			w.pans.add(path, panReason)
		}
	case json.Number:
		if event.ContainsPAN(string(v)) {
			w.pans.add(path, panReason)
		}
	}
}

// schemaField is the field of struct type t that encoding/json decodes key
// into (its exact name, else one equal under Unicode case folding), as the
// schema names it, and its type; "" when there is none.
func schemaField(t reflect.Type, key string) (string, reflect.Type) {
	if t == nil || t.Kind() != reflect.Struct || t == reflect.TypeFor[time.Time]() {
		return "", nil
	}
	folded := -1
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		switch {
		case name == key:
			return name, t.Field(i).Type
		case folded < 0 && strings.EqualFold(name, key):
			folded = i
		}
	}
	if folded < 0 {
		return "", nil
	}
	f := t.Field(folded)
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	return name, f.Type
}

// labelsShapeError words a JSON decoding error for the author of the
// request: paths, JSON kinds, no Go types. Neither a value in error nor an
// unknown key is repeated (it may be a card number, \u-escaped). A problem inside a label is named by
// its index, as the value problems are (labels[2].label): encoding/json
// names the field only, so the labels are decoded again one by one to find
// it.
func labelsShapeError(data []byte, err error) *LabelsError {
	var outer struct {
		Labels []json.RawMessage `json:"labels"`
	}
	if json.Unmarshal(data, &outer) == nil {
		for i, raw := range outer.Labels {
			d := json.NewDecoder(bytes.NewReader(raw))
			d.DisallowUnknownFields()
			var l labelJSON
			if lerr := d.Decode(&l); lerr != nil {
				return shapeProblem(fmt.Sprintf("labels[%d]", i), lerr)
			}
		}
	}
	return shapeProblem("", err)
}

// shapeProblem words err, a decoding error of the value at path ("": the
// whole body).
func shapeProblem(path string, err error) *LabelsError {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	at := func(field string) string {
		switch {
		case path == "":
			return field
		case field == "":
			return path
		}
		return path + "." + field
	}
	switch {
	case errors.As(err, &te) && te.Field == "" && path == "":
		return oneProblem("", fmt.Sprintf(`expected an object {"labels": [...]}, got %s`, te.Value))
	case errors.As(err, &te) && te.Field == "":
		return oneProblem(path, fmt.Sprintf("expected an object, got %s", te.Value))
	case errors.As(err, &te):
		return oneProblem(at(te.Field), fmt.Sprintf("wrong type: got %s", te.Value))
	case errors.As(err, &se):
		return oneProblem("", fmt.Sprintf("malformed JSON at byte %d", se.Offset))
	case errors.Is(err, io.EOF):
		return oneProblem("", `empty body: expected {"labels": [...]}`)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return oneProblem("", "truncated JSON")
	case strings.HasPrefix(err.Error(), "json: unknown field ") && path == "":
		return oneProblem("", `unknown field: the body has "labels" only`) // the key is not repeated
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return oneProblem(path, "unknown field: a label has event_id, label, labelled_at and source only")
	}
	var pe *time.ParseError
	if errors.As(err, &pe) {
		return oneProblem(at("labelled_at"), "expected an RFC 3339 time such as 2026-01-02T15:04:05Z")
	}
	return oneProblem(path, "invalid JSON")
}

func validEventID(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

func printable(s string) bool {
	for _, r := range s {
		if r < ' ' || r == 0x7f {
			return false
		}
	}
	return true
}

// InsertLabels stores labels in ClickHouse, synchronously (labels are not
// spilled: the caller retries on error), and feeds them to the features
// engine when FeedLabels was called.
func (w *Writer) InsertLabels(ctx context.Context, labels []Label) error {
	if w.conn == nil {
		return errors.New("signals: no ClickHouse connection")
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(w.cfg.InsertTimeout))
	defer cancel()
	if w.prep != nil { // the labels table may not exist yet
		if err := w.prep(ctx); err != nil {
			return err
		}
	}
	err := w.storeAndFeed(ctx, labels)
	if err != nil && ctx.Err() == nil {
		// Once more on a fresh attempt: a pooled connection the server has
		// closed fails the first use. Labels are idempotent (the table keeps
		// one row per event and label), so a retry cannot double them.
		w.log.Warn("signals: labels insert failed; retrying once", "labels", len(labels), "err", err)
		select {
		case <-time.After(100 * time.Millisecond):
			err = w.storeAndFeed(ctx, labels)
		case <-ctx.Done():
		}
	}
	if err != nil {
		return err
	}
	w.m.labelsWritten.Add(float64(len(labels)))
	return nil
}

// insertLabels inserts labels, with labelled_at_ms where the labels table
// has it.
func insertLabels(ctx context.Context, conn driver.Conn, db string, labels []Label) error {
	tables, err := readTables(ctx, conn, db)
	if err != nil {
		return fmt.Errorf("labels insert: %w", err)
	}
	labelMs := tables.labelMs()
	b, err := conn.PrepareBatch(ctx, labelsInsertSQL(db, labelMs))
	if err != nil {
		return fmt.Errorf("labels insert: %w", err)
	}
	n := len(labels)
	ids, names, ats, millis, srcs := make([]string, n), make([]string, n), make([]time.Time, n), make([]uint16, n), make([]string, n)
	for i, l := range labels {
		ids[i], names[i], ats[i], millis[i], srcs[i] = l.EventID, l.Label, l.LabelledAt.UTC(), ms(l.LabelledAt), l.Source
	}
	cols := []any{ids, names, ats, srcs} // in labelsInsertSQL's order
	if labelMs {
		cols = []any{ids, names, ats, millis, srcs}
	}
	for i, col := range cols {
		if err := b.Column(i).Append(col); err != nil {
			b.Abort()
			return fmt.Errorf("labels insert: %w", err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("labels insert: %w", err)
	}
	return nil
}

// LabelsHandler serves POST /v1/labels: a JSON body {"labels": [{"event_id",
// "label", "labelled_at", "source"}, ...]} of at most 10,000 labels,
// validated all or nothing, stored synchronously. Answers 200
// {"accepted": n}, 400 invalid_labels (every problem in the error's
// fields), 422 card_number_refused, 413 too_large, or 503 unavailable
// when ClickHouse cannot take them now (retry later). Mount it with the
// API's authentication, scope labels.
func LabelsHandler(w *Writer) http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, maxLabelsBody))
		var tooLarge *http.MaxBytesError
		switch {
		case errors.As(err, &tooLarge):
			engine.WriteError(rw, r, http.StatusRequestEntityTooLarge, "too_large", "labels body larger than 4 MiB")
			return
		case err != nil:
			engine.WriteError(rw, r, http.StatusBadRequest, "bad_body", "could not read the request body: the connection ended or its framing is broken")
			return
		}
		labels, err := DecodeLabels(body, time.Now())
		if err != nil {
			var le *LabelsError
			switch {
			case errors.As(err, &le) && le.PAN:
				engine.WriteError(rw, r, http.StatusUnprocessableEntity, "card_number_refused",
					"the labels contain what looks like a raw card number; send transaction ids", le.Fields...)
			case errors.As(err, &le):
				engine.WriteError(rw, r, http.StatusBadRequest, "invalid_labels", le.Error(), le.Fields...)
			default:
				engine.WriteError(rw, r, http.StatusBadRequest, "invalid_labels", err.Error())
			}
			return
		}
		if err := w.InsertLabels(r.Context(), labels); err != nil {
			w.log.Error("labels not stored", "labels", len(labels), "err", err)
			engine.WriteError(rw, r, http.StatusServiceUnavailable, "unavailable", "the labels could not be stored now; retry later")
			return
		}
		engine.WriteJSON(rw, http.StatusOK, map[string]int{"accepted": len(labels)})
	}
}
