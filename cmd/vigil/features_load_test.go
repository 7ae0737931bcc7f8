package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-fraud/vigil/engine/event"
	"github.com/vigil-fraud/vigil/features"
)

// loadFeatures says at start-up when label_rate features cannot be fed.
func TestLoadFeaturesSaysWhenLabelsCannotBeFed(t *testing.T) {
	dir := t.TempDir()
	file := func(entities ...string) string {
		var b strings.Builder
		b.WriteString("features:\n  - {name: card_count, entity: card.token, aggregate: count, windows: [1h]}\n")
		for i, e := range entities {
			b.WriteString("  - {name: rate" + string(rune('a'+i)) + ", kind: label_rate, entity: " + e + ", windows: [7d]}\n")
		}
		p := filepath.Join(dir, strings.Join(append([]string{"f"}, entities...), "_")+".yaml")
		if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name   string
		path   string
		labels bool
		want   []string // substrings of the log; nil: nothing logged
		fed    bool     // ratea_7d is computed once a label is fed
	}{
		{"embedded default, signals off", "", false, []string{`level=INFO`, `label_rate features are always missing`, `merchant_fraud_rate`}, false},
		{"own file, signals off", file("merchant.id"), false, []string{`level=WARN`, `always missing`, `ratea`}, false},
		{"signals on, stored fields", file("merchant.id", "account.id"), true, nil, true},
		{"signals on, the IP and a fingerprint", file("device.ip", "device.fingerprint", "merchant.id"), true,
			[]string{`level=WARN`, `not fed`, `ratea (device.ip)`, `rateb (device.fingerprint, when vigil derives it)`}, true},
		{"no label_rate", file(), false, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			e, _, err := loadFeatures(tc.path, features.Options{FingerprintKey: testFingerprintKey}, tc.labels, slog.New(slog.NewTextHandler(&buf, nil)))
			if err != nil || e == nil {
				t.Fatalf("loadFeatures: %v", err)
			}
			out := buf.String()
			if tc.want == nil && out != "" {
				t.Errorf("logged %q, want nothing", out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("log %q lacks %q", out, w)
				}
			}
			slot, ok := e.Schema().Lookup("ratea_7d")
			if !ok {
				return
			}
			// a transaction, its label, then one 8 days later: the rate is
			// there only when the engine keeps label state
			t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
			ev := func(id string, at time.Time) *event.Event {
				return &event.Event{ID: id, Time: at, Amount: 100, Currency: "USD", Card: event.Card{Token: "tok_1"},
					Merchant: event.Merchant{ID: "m_1"}, Account: event.Account{ID: "a_1"}, Device: event.Device{IP: "203.0.113.1", Fingerprint: "fp_1"}}
			}
			v := features.NewVector(e.Schema())
			first := ev("t1", t0)
			e.Observe(first, v)
			e.ObserveLabel(first, true, t0.Add(time.Hour))
			e.Observe(ev("t2", t0.Add(8*24*time.Hour)), v)
			if got := v.Value(e.Schema(), slot); (got != nil) != tc.fed {
				t.Errorf("ratea_7d = %v after a label; fed %v", got, tc.fed)
			}
		})
	}
}
