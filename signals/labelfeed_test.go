package signals

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vigil-fraud/vigil/engine/event"
)

type fedLabel struct {
	ev      event.Event
	fraud   bool
	knownAt time.Time
}

type labelRecorder struct {
	mu  sync.Mutex
	got []fedLabel
}

func (r *labelRecorder) ObserveLabel(ev *event.Event, fraud bool, knownAt time.Time) {
	r.mu.Lock()
	r.got = append(r.got, fedLabel{*ev, fraud, knownAt})
	r.mu.Unlock()
}

func (r *labelRecorder) take() []fedLabel {
	r.mu.Lock()
	defer r.mu.Unlock()
	g := r.got
	r.got = nil
	return g
}

// Labels stored through the writer reach the features engine with their
// transaction as its signal row has it; a transaction counts as fraud once.
func TestLabelsFeedTheFeaturesEngine(t *testing.T) {
	cfg, _ := testClickHouse(t)
	w, err := NewWriter(cfg, quietLog(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx := context.Background()
	recs := records(0, 3)
	if err := w.ins.Insert(ctx, recs); err != nil { // migrates, then writes the signal rows
		t.Fatal(err)
	}
	obs := &labelRecorder{}
	w.FeedLabels(obs)
	at := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	if err := w.InsertLabels(ctx, []Label{
		{EventID: "tx_000001", Label: "chargeback", LabelledAt: at},
		{EventID: "tx_000002", Label: "false_positive", LabelledAt: at},
		{EventID: "tx_unknown", Label: "confirmed_fraud", LabelledAt: at},
		{EventID: `tx_o'q\x`, Label: "legitimate", LabelledAt: at},                      // quoted in the lookups
		{EventID: "tx_000001", Label: "confirmed_fraud", LabelledAt: at.Add(time.Hour)}, // the same fraud again
	}); err != nil {
		t.Fatal(err)
	}
	got := obs.take()
	if len(got) != 2 {
		t.Fatalf("fed %d labels, want 2: %+v", len(got), got)
	}
	r1 := recs[1]
	if f := got[0]; f.ev.ID != "tx_000001" || !f.fraud || !f.knownAt.Equal(at) ||
		!f.ev.Time.Equal(r1.EventTime) || f.ev.Merchant.ID != r1.MerchantID || f.ev.Account.ID != r1.AccountID ||
		f.ev.Card.Token != r1.CardToken || f.ev.Device.Fingerprint != r1.DeviceFingerprint || f.ev.Amount != r1.Amount ||
		f.ev.Billing.Country != r1.BillingCountry || f.ev.Account.EmailHash != r1.EmailHash {
		t.Errorf("fraud label fed as %+v (time %v), record %+v", f, f.ev.Time, r1)
	}
	if f := got[1]; f.ev.ID != "tx_000002" || f.fraud {
		t.Errorf("false positive fed as %+v", f)
	}
	if v := testutil.ToFloat64(w.m.labelsUnmatched); v != 2 {
		t.Errorf("unmatched %v, want 2", v)
	}

	// Later requests: a fraud label already fed is not fed again (a retried
	// request, a redelivered message); a transaction newly found fraud is.
	if err := w.InsertLabels(ctx, []Label{
		{EventID: "tx_000001", Label: "chargeback", LabelledAt: at},
		{EventID: "tx_000002", Label: "chargeback", LabelledAt: at},
	}); err != nil {
		t.Fatal(err)
	}
	got = obs.take()
	if len(got) != 1 || got[0].ev.ID != "tx_000002" || !got[0].fraud {
		t.Fatalf("second request fed %+v, want tx_000002 as fraud only", got)
	}
	if v := testutil.ToFloat64(w.m.labelsFed); v != 3 {
		t.Errorf("fed metric %v, want 3", v)
	}

	// A label that arrives before its signal row is stored, not fed; sent
	// again once the row is there, it is fed.
	if err := w.InsertLabels(ctx, []Label{{EventID: "tx_000005", Label: "chargeback", LabelledAt: at}}); err != nil {
		t.Fatal(err)
	}
	if got = obs.take(); len(got) != 0 {
		t.Fatalf("fed %+v before the signal row exists", got)
	}
	if err := w.ins.Insert(ctx, records(5, 6)); err != nil {
		t.Fatal(err)
	}
	if err := w.InsertLabels(ctx, []Label{{EventID: "tx_000005", Label: "chargeback", LabelledAt: at}}); err != nil {
		t.Fatal(err)
	}
	if got = obs.take(); len(got) != 1 || got[0].ev.ID != "tx_000005" || !got[0].fraud {
		t.Fatalf("fed %+v once the row exists, want tx_000005 as fraud", got)
	}

	// The largest request, ids of the longest length: the lookups go in
	// chunks (one query for 10,000 such ids exceeds max_query_size).
	big := make([]Label, MaxLabelsPerRequest)
	for i := range big {
		id := fmt.Sprintf("big_%06d_", i)
		big[i] = Label{EventID: id + strings.Repeat("x", 128-len(id)), Label: "confirmed_fraud", LabelledAt: at}
	}
	big[len(big)-1] = Label{EventID: "tx_000000", Label: "confirmed_fraud", LabelledAt: at}
	if err := w.InsertLabels(ctx, big); err != nil {
		t.Fatal(err)
	}
	if got = obs.take(); len(got) != 1 || got[0].ev.ID != "tx_000000" || !got[0].fraud {
		t.Fatalf("largest request fed %d labels, want tx_000000 only", len(got))
	}
}
