package signals

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/vigil-fraud/vigil/engine/event"
)

// LabelObserver receives the outcome of a scored transaction (the features
// engine's ObserveLabel, which keeps label_rate features).
type LabelObserver interface {
	ObserveLabel(ev *event.Event, fraud bool, knownAt time.Time)
}

// FedFields are the event fields a fed label's transaction carries: those
// its signal row stores. A label_rate feature keyed on another field (the
// IP, stored only as a keyed hash; a derived device fingerprint) is not fed.
var FedFields = []string{"card.token", "card.bin", "card.country", "account.id", "account.email_hash",
	"merchant.id", "merchant.mcc", "merchant.country", "device.id", "device.fingerprint",
	"billing.country", "shipping.country", "channel", "currency"}

// IsFraud reports whether a label marks its transaction as fraud.
func IsFraud(label string) bool { return label == "chargeback" || label == "confirmed_fraud" }

// labelFeed hands stored labels to an observer, with the labelled
// transaction read back from its signal row.
type labelFeed struct {
	mu  sync.Mutex // one request at a time: the fed-once check and the feed are atomic
	obs LabelObserver
	// fed remembers the ids fed as fraud, as long as the engine's label
	// state lives (this process), up to maxFedFraud (oldest forgotten).
	fed   map[string]struct{}
	order []string // fed ids in insertion order (a ring once full)
	next  int
}

// maxFedFraud bounds the fraud ids remembered to feed each once: a
// redelivery older than this many fraud labels is fed (counted) again.
const maxFedFraud = 1 << 20

// FeedLabels makes the writer hand every label it stores (POST /v1/labels,
// the labels topic) to obs, known at its labelled_at, with the transaction
// as its signal row recorded it. A transaction is fed as fraud once per
// process: a second fraud label for the same id (a retried request, a
// redelivered message) is stored but not fed again. A label whose signal
// row is not found (not written yet, or expired) is stored but not fed;
// vigil_signals_labels_unmatched_total counts them. Call before serving.
func (w *Writer) FeedLabels(obs LabelObserver) {
	w.feed = &labelFeed{obs: obs, fed: map[string]struct{}{}}
}

// storeAndFeed inserts labels, then feeds them to the observer (best
// effort: a label stored is never refused because it could not be fed).
func (w *Writer) storeAndFeed(ctx context.Context, labels []Label) error {
	if err := insertLabels(ctx, w.conn, w.cfg.Database, labels); err != nil {
		return err
	}
	f := w.feed
	if f == nil {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	ids := make([]string, 0, len(labels))
	for _, l := range labels {
		ids = append(ids, l.EventID)
	}
	evs, err := labelledEvents(ctx, w.conn, w.cfg.Database, ids)
	if err != nil {
		w.m.labelsUnmatched.Add(float64(len(labels)))
		w.log.Error("labels stored but not fed to the features engine", "labels", len(labels), "err", err)
		return nil
	}
	for _, l := range labels {
		ev := evs[l.EventID]
		if ev == nil {
			w.m.labelsUnmatched.Inc()
			continue
		}
		fraud := IsFraud(l.Label)
		if fraud && !f.once(l.EventID) {
			continue
		}
		f.obs.ObserveLabel(ev, fraud, l.LabelledAt)
		w.m.labelsFed.Inc()
	}
	return nil
}

// once reports whether id is fed as fraud for the first time, and
// remembers it.
func (f *labelFeed) once(id string) bool {
	if _, ok := f.fed[id]; ok {
		return false
	}
	if len(f.order) < maxFedFraud {
		f.order = append(f.order, id)
	} else {
		delete(f.fed, f.order[f.next])
		f.order[f.next] = id
		f.next = (f.next + 1) % maxFedFraud
	}
	f.fed[id] = struct{}{}
	return true
}

// lookupChunk bounds the ids of one lookup query: 500 ids of at most 128
// bytes (up to 260 bytes each if every byte needs escaping) keep it under
// ClickHouse's max_query_size (256 KiB).
const lookupChunk = 500

// inChunks runs q over ids, lookupChunk at a time.
func inChunks(ids []string, q func(ids []string) error) error {
	for len(ids) > 0 {
		n := min(len(ids), lookupChunk)
		if err := q(ids[:n]); err != nil {
			return err
		}
		ids = ids[n:]
	}
	return nil
}

// inList is "(?, ?, …)" for ids and its arguments: each id bound as a
// string (the driver binds a slice as an array, which IN refuses on
// 18.16), so the lookup uses the tables' primary key, event_id.
func inList(ids []string) (string, []any) {
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	return "(" + strings.TrimSuffix(strings.Repeat("?, ", len(ids)), ", ") + ")", args
}

// labelledEvents reads back the transactions of ids from their signal rows.
func labelledEvents(ctx context.Context, conn driver.Conn, db string, ids []string) (map[string]*event.Event, error) {
	l, err := detectLayout(ctx, conn, db)
	if err != nil {
		return nil, err
	}
	cols := []string{"event_id", "event_time", "card_token", "card_bin", "card_country", "account_id", "email_hash",
		"merchant_id", "mcc", "merchant_country", "device_id", "device_fingerprint", "billing_country", "shipping_country",
		"channel", "currency", "amount_minor"}
	if l.msColumns {
		cols = append(cols, "event_time_ms")
	}
	out := map[string]*event.Event{}
	err = inChunks(ids, func(ids []string) error {
		in, args := inList(ids)
		rows, err := conn.Query(ctx, fmt.Sprintf("SELECT %s FROM %s.%s WHERE event_id IN %s",
			strings.Join(cols, ", "), quoteIdent(db), SignalsTable, in), args...)
		if err != nil {
			return fmt.Errorf("labelled transactions: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			ev := &event.Event{}
			var ms uint16
			dest := []any{&ev.ID, &ev.Time, &ev.Card.Token, &ev.Card.BIN, &ev.Card.Country, &ev.Account.ID, &ev.Account.EmailHash,
				&ev.Merchant.ID, &ev.Merchant.MCC, &ev.Merchant.Country, &ev.Device.ID, &ev.Device.Fingerprint,
				&ev.Billing.Country, &ev.Shipping.Country, &ev.Channel, &ev.Currency, &ev.Amount}
			if l.msColumns {
				dest = append(dest, &ms)
			}
			if err := rows.Scan(dest...); err != nil {
				return fmt.Errorf("labelled transactions: %w", err)
			}
			ev.Time = ev.Time.Add(time.Duration(ms) * time.Millisecond).UTC()
			out[ev.ID] = ev // a row written twice (at-least-once) holds the same transaction
		}
		return rows.Err()
	})
	return out, err
}
