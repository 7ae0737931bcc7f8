package replay

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/vigil-fraud/vigil/engine/event"
	"github.com/vigil-fraud/vigil/signals"
)

// ParseLabel tells whether a label value means fraud. It accepts the
// labels of POST /v1/labels — chargeback and confirmed_fraud (fraud),
// false_positive and legitimate (not fraud) — and, for datasets, fraud,
// legit, 1, 0, true and false.
func ParseLabel(s string) (fraud bool, err error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case signals.LabelChargeback, signals.LabelConfirmedFraud, "fraud", "1", "true":
		return true, nil
	case signals.LabelFalsePositive, signals.LabelLegitimate, "legit", "0", "false":
		return false, nil
	}
	return false, fmt.Errorf("label %s: want one of %s (or fraud, legit, 1, 0)", show(s), strings.Join(signals.Labels, ", "))
}

// labelLine is one JSONL label.
type labelLine struct {
	EventID string    `json:"event_id"`
	Label   string    `json:"label"`
	KnownAt time.Time `json:"known_at,omitzero"`
}

// ReadLabels reads labels: CSV with a header (event_id, label and
// optionally known_at, in any order) when the name ends in .csv, else JSON
// lines {"event_id", "label", "known_at"} (known_at optional, RFC 3339).
func ReadLabels(name string, r io.Reader) ([]Label, error) {
	if strings.EqualFold(filepath.Ext(name), ".csv") {
		return readLabelsCSV(r)
	}
	return readLabelsJSONL(r)
}

func readLabelsJSONL(r io.Reader) ([]Label, error) {
	var out []Label
	var errs []error
	line := func(b []byte) error {
		// Card numbers and ambiguous keys first: decoding errors quote
		// keys, and encoding/json takes keys in any case and the last of
		// duplicates.
		pans, keys := signals.CheckJSON(b, reflect.TypeFor[labelLine]())
		if len(pans) > 0 || event.ContainsPAN(string(b)) {
			return errors.New("holds what looks like a card number (not shown); labels name transactions by their id")
		}
		if len(keys) > 0 {
			return fmt.Errorf("%s: %s", keys[0].Path, keys[0].Reason)
		}
		var ll labelLine
		d := json.NewDecoder(bytes.NewReader(b))
		d.DisallowUnknownFields()
		if err := d.Decode(&ll); err != nil {
			return err
		}
		if len(bytes.TrimSpace(b[d.InputOffset():])) > 0 { // d.More() takes a stray ] or } for the end
			return errors.New("data after the object")
		}
		l, err := newLabel(ll.EventID, ll.Label, ll.KnownAt)
		if err != nil {
			return err
		}
		out = append(out, l)
		return nil
	}
	n, err := eachLine(r, func(n int, b []byte) bool {
		if err := line(b); err != nil {
			errs = append(errs, fmt.Errorf("labels line %d: %w", n, err))
		}
		return len(errs) < maxErrors
	})
	if err != nil {
		errs = append(errs, fmt.Errorf("labels line %d: %w", n, err))
	}
	return out, errors.Join(errs...)
}

func readLabelsCSV(r io.Reader) ([]Label, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	head, err := cr.Read()
	if err == io.EOF {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("labels csv header: %w", err)
	}
	col := map[string]int{}
	for i, h := range head {
		h = strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))
		if h != "event_id" && h != "label" && h != "known_at" {
			return nil, fmt.Errorf("labels csv: unknown column %s (want event_id, label, known_at)", show(h))
		}
		if _, dup := col[h]; dup {
			return nil, fmt.Errorf("labels csv: column %s twice", show(h))
		}
		col[h] = i
	}
	if _, ok := col["event_id"]; !ok {
		return nil, errors.New("labels csv: no event_id column")
	}
	if _, ok := col["label"]; !ok {
		return nil, errors.New("labels csv: no label column")
	}
	var out []Label
	var errs []error
	for line := 2; len(errs) < maxErrors; line++ {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("labels csv: %w", err))
			break
		}
		if len(rec) != len(head) {
			errs = append(errs, fmt.Errorf("labels csv line %d: %d fields, want %d", line, len(rec), len(head)))
			continue
		}
		var known time.Time
		if i, ok := col["known_at"]; ok && rec[i] != "" {
			if known, err = parseTime(rec[i]); err != nil {
				errs = append(errs, fmt.Errorf("labels csv line %d: known_at: %w", line, err))
				continue
			}
		}
		l, err := newLabel(rec[col["event_id"]], rec[col["label"]], known)
		if err != nil {
			errs = append(errs, fmt.Errorf("labels csv line %d: %w", line, err))
			continue
		}
		out = append(out, l)
	}
	return out, errors.Join(errs...)
}

func newLabel(id, label string, known time.Time) (Label, error) {
	if id == "" {
		return Label{}, errors.New("event_id is required")
	}
	if event.ContainsPAN(id) {
		return Label{}, errors.New("event_id looks like a card number (not shown); labels name transactions by their id")
	}
	fraud, err := ParseLabel(label)
	if err != nil {
		return Label{}, err
	}
	return Label{EventID: id, Fraud: fraud, KnownAt: known}, nil
}
