package signals

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-fraud/vigil/engine/event"
)

func TestDecodeLabels(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name, body, wantErr string
	}{
		{"ok", `{"labels":[{"event_id":"tx_1","label":"chargeback"},{"event_id":"tx_2","label":"false_positive","labelled_at":"2026-11-01T00:00:00Z","source":"review"}]}`, ""},
		{"ok from 2000", `{"labels":[{"event_id":"tx_1","label":"chargeback","labelled_at":null},{"event_id":"tx_2","label":"false_positive","labelled_at":"2000-01-01T01:00:00+01:00","source":"review"}]}`, ""},
		{"unknown label", `{"labels":[{"event_id":"tx_1","label":"fraud"}]}`, "labels[0].label: must be one of"},
		{"missing id", `{"labels":[{"label":"chargeback"}]}`, "labels[0].event_id: required"},
		{"id with space", `{"labels":[{"event_id":"a b","label":"chargeback"}]}`, "printable ASCII"},
		{"card number", `{"labels":[{"event_id":"4111111111111111","label":"chargeback"}]}`, "looks like a card number"},
		{"card number in source", `{"labels":[{"event_id":"x","label":"chargeback","source":"pan 4111 1111 1111 1111"}]}`, "source: looks like a card number"},
		{"future", `{"labels":[{"event_id":"x","label":"chargeback","labelled_at":"2026-12-01T00:00:00Z"}]}`, "future"},
		{"before 2000", `{"labels":[{"event_id":"x","label":"chargeback","labelled_at":"1999-12-31T23:59:59Z"}]}`, "labels[0].labelled_at: before 2000-01-01"},
		{"before 1970", `{"labels":[{"event_id":"x","label":"chargeback"},{"event_id":"y","label":"chargeback","labelled_at":"1969-07-20T20:17:00Z"}]}`, "labels[1].labelled_at: before 2000-01-01"},
		{"zero time", `{"labels":[{"event_id":"x","label":"chargeback","labelled_at":"0001-01-01T00:00:00Z"}]}`, "labels[0].labelled_at: before 2000-01-01"},
		{"unknown field", `{"labels":[{"event_id":"x","label":"chargeback","amount":3}]}`, "unknown field"},
		{"empty", `{"labels":[]}`, "empty"},
		{"trailing", `{"labels":[{"event_id":"x","label":"chargeback"}]} {}`, "after the JSON"},
		{"trailing bracket", `{"labels":[{"event_id":"x","label":"chargeback"}]} ]`, "after the JSON"},
		{"trailing brace", `{"labels":[{"event_id":"x","label":"chargeback"}]}}`, "after the JSON"},
		{"all problems at once", `{"labels":[{"event_id":"","label":"x"},{"event_id":"y","label":"z"}]}`, "labels[1].label"},
		// card numbers once decoded: \u0034 is 4 (the error goes to the log of the labels topic too)
		{"escaped card number as a key", `{"labels":[{"event_id":"tx_1","label":"chargeback","\u0034111111111111111":1}]}`, "looks like a card number"},
		{"escaped card number as a key of the body", `{"\u0034111111111111111":1}`, "looks like a card number"},
		{"escaped card number in an unknown field", `{"labels":[{"event_id":"x","label":"chargeback","zz_note":"\u0034111111111111111"}]}`, "looks like a card number"},
		{"escaped card number after the body", `{"labels":[{"event_id":"x","label":"chargeback"}]} "\u0034111111111111111"`, "looks like a card number"},
		{"card number in a time's fraction", `{"labels":[{"event_id":"x","label":"chargeback","labelled_at":"2026-11-01T00:00:00.4111111111111111Z"}]}`, "labels[0].labelled_at: looks like a card number"},
		{"card number hidden by a duplicate key", `{"labels":[{"event_id":"4111111111111111","event_id":"tx_1","label":"chargeback"}]}`, "labels[0].event_id: looks like a card number"},
		// keys encoding/json would take silently
		{"duplicate key", `{"labels":[{"event_id":"tx_1","event_id":"tx_2","label":"chargeback"}]}`, "labels[0].event_id: duplicate key"},
		{"key in another case", `{"labels":[{"event_id":"tx_1","label":"chargeback","LABEL":"x"}]}`, "labels[0].label: key written in another case"},
		{"key in another case alone", `{"labels":[{"event_id":"tx_1","Label":"chargeback"}]}`, "labels[0].label: key written in another case"},
		{"key equal under Unicode folding", `{"labels":[{"event_id":"tx_1","label":"chargeback","ſource":"x"}]}`, "labels[0].source: key written in another case"}, // long s folds to s
		{"body key in another case", `{"Labels":[{"event_id":"tx_1","label":"chargeback"}]}`, "labels: key written in another case"},
		// an unknown key is not repeated
		{"unknown key not repeated", `{"labels":[{"event_id":"x","label":"chargeback","zz_key":1}]}`, "labels[0]: unknown field"},
		{"unknown body key not repeated", `{"labels":[],"zz_key":1}`, "unknown field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeLabels([]byte(tt.body), now)
			if tt.wantErr == "" {
				if err != nil || len(got) != 2 || !got[0].LabelledAt.Equal(now) || got[1].Source != "review" {
					t.Errorf("%+v %v", got, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err %v, want %q", err, tt.wantErr)
			}
			for _, leak := range []string{"4111", "zz_"} {
				if err != nil && strings.Contains(err.Error(), leak) {
					t.Errorf("the error echoes a value or key (%s): %v", leak, err)
				}
			}
		})
	}
}

func TestLabelsHandlerErrors(t *testing.T) {
	cfg := testConfig(t)
	cfg.Addr = "127.0.0.1:1" // nothing listens: inserts fail
	cfg.DialTimeout = 1e9
	w, err := NewWriter(cfg, quietLog(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	h := LabelsHandler(w)
	type field struct{ Path, Reason string }
	for _, tt := range []struct {
		body    string
		code    int
		errCode string
		fields  []string // paths, in order
		message string   // a substring
	}{
		{`{"labels":[{"event_id":"x","label":"nope"}]}`, 400, "invalid_labels", []string{"labels[0].label"}, "labels[0].label: must be one of"},
		{`{"labels":[{"event_id":"","label":"nope"},{"event_id":"y","label":"chargeback","source":"a\u0001b"}]}`, 400, "invalid_labels",
			[]string{"labels[0].event_id", "labels[0].label", "labels[1].source"}, "labels[1].source: must be printable"},
		{`[{"event_id":"x","label":"chargeback"}]`, 400, "invalid_labels", []string{""}, `expected an object {\"labels\": [...]}, got array`},
		{`{"labels":[{"event_id":"x","label":"chargeback","extra":1}]}`, 400, "invalid_labels", []string{"labels[0]"}, "unknown field: a label has event_id, label, labelled_at and source only"},
		{`{"labels":[{"event_id":"x","label":5}]}`, 400, "invalid_labels", []string{"labels[0].label"}, "wrong type: got number"},
		// Shape problems name the label by its index, as value problems do.
		{`{"labels":[{"event_id":"x","label":"chargeback"},{"event_id":"y","label":true}]}`, 400, "invalid_labels", []string{"labels[1].label"}, "wrong type: got bool"},
		{`{"labels":[{"event_id":"x","label":"chargeback"},{"event_id":"y","label":"chargeback","labelled_at":"yesterday"}]}`, 400, "invalid_labels", []string{"labels[1].labelled_at"}, "RFC 3339"},
		{`{"labels":[{"event_id":"x","label":"chargeback"},7]}`, 400, "invalid_labels", []string{"labels[1]"}, "expected an object, got number"},
		{`{"labels":{"event_id":"x"}}`, 400, "invalid_labels", []string{"labels"}, "wrong type: got object"},
		{`{"labels":[],"extra":1}`, 400, "invalid_labels", []string{""}, `unknown field: the body has \"labels\" only`},
		{`{"labels":[{"event_id":"4111111111111111","label":"chargeback"},{"event_id":"ok","label":"chargeback","source":"4111 1111 1111 1111"}]}`, 422, "card_number_refused",
			[]string{"labels[0].event_id", "labels[1].source"}, "raw card number"},
		{`{"labels":[{"4111111111111111":1}]}`, 422, "card_number_refused", []string{""}, "raw card number"},
		{`{"labels":[{"event_id":"4111111111111111","label":"chargeback","x":1}]}`, 422, "card_number_refused", []string{""}, "raw card number"},
		// a card number once decoded, anywhere: refused, never echoed
		{`{"labels":[{"event_id":"tx_1","label":"chargeback","\u0034111111111111111":1}]}`, 422, "card_number_refused", []string{""}, "raw card number"},
		{`{"\u0034111111111111111":1}`, 422, "card_number_refused", []string{""}, "raw card number"},
		{`{"labels":[{"event_id":"4111111111111111","event_id":"tx_1","label":"chargeback"}]}`, 422, "card_number_refused", []string{"labels[0].event_id"}, "raw card number"},
		// keys refused as /v1/score refuses them, the first one named
		{`{"labels":[{"event_id":"tx_1","event_id":"tx_2","label":"chargeback"}]}`, 400, "invalid_labels", []string{"labels[0].event_id"}, "duplicate key"},
		{`{"labels":[{"event_id":"tx_1","label":"chargeback","LABEL":"x"}]}`, 400, "invalid_labels", []string{"labels[0].label"}, "another case"},
		{`{"labels":[{"event_id":"x","label":"chargeback"}]}`, 503, "unavailable", nil, "retry later"},
		{strings.Repeat(" ", 5<<20), 413, "too_large", nil, "4 MiB"},
	} {
		rec := httptest.NewRecorder()
		h(rec, httptest.NewRequest(http.MethodPost, "/v1/labels", bytes.NewReader([]byte(tt.body))))
		var resp struct {
			Error struct {
				Code, Message string
				Fields        []field
			}
		}
		json.Unmarshal(rec.Body.Bytes(), &resp)
		var paths []string
		for _, f := range resp.Error.Fields {
			paths = append(paths, f.Path)
		}
		if rec.Code != tt.code || resp.Error.Code != tt.errCode || !slices.Equal(paths, tt.fields) || !strings.Contains(rec.Body.String(), tt.message) {
			t.Errorf("%.60q: %d %s; want %d %s fields %q with %q", tt.body, rec.Code, rec.Body.String(), tt.code, tt.errCode, tt.fields, tt.message)
		}
		for _, leak := range []string{"4111", "extra", "signals.", "Go value", "json:"} {
			if strings.Contains(rec.Body.String(), leak) {
				t.Errorf("%.60q: the answer contains %q: %s", tt.body, leak, rec.Body.String())
			}
		}
	}
}

// FuzzDecodeLabels: any body is either refused with an error or gives
// labels that all pass validation (no card number, a known label), from a
// body holding no card number at all, raw or decoded, key or value.
func FuzzDecodeLabels(f *testing.F) {
	f.Add([]byte(`{"labels":[{"event_id":"tx_1","label":"fraud"}]}`))
	f.Add([]byte(`{"labels":[{"event_id":"tx_1","label":"chargeback","\u0034111111111111111":1}]}`))
	f.Add([]byte(`{"labels":[{"event_id":"4111111111111111","event_id":"tx_1","LABEL":"chargeback"}]}`))
	f.Add([]byte(`{"labels":[{"event_id":"4111111111111111","label":"fraud","source":"chargeback"}]}`))
	f.Add([]byte(`{"labels":[{"event_id":"tx_2","label":"legit","labelled_at":"2026-01-02T03:04:05Z"}]}`))
	now := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, data []byte) {
		labels, err := DecodeLabels(data, now)
		if err != nil {
			if labels != nil {
				t.Fatal("labels returned with an error")
			}
			return
		}
		for _, l := range labels {
			if !validEventID(l.EventID) || event.ContainsPAN(l.EventID) || event.ContainsPAN(l.Source) || !slices.Contains(Labels, l.Label) || l.LabelledAt.IsZero() {
				t.Fatalf("invalid label accepted: %+v", l)
			}
		}
		d := json.NewDecoder(bytes.NewReader(data))
		d.UseNumber()
		var v any
		if event.ContainsPAN(string(data)) || d.Decode(&v) != nil || holdsPAN(v) {
			t.Fatalf("a body with a card number accepted: %q", data)
		}
	})
}

// holdsPAN reports whether a decoded JSON value has a card number in a key
// or a value.
func holdsPAN(v any) bool {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if event.ContainsPAN(k) || holdsPAN(x) {
				return true
			}
		}
	case []any:
		return slices.ContainsFunc(v, holdsPAN)
	case string:
		return event.ContainsPAN(v)
	case json.Number:
		return event.ContainsPAN(string(v))
	}
	return false
}
