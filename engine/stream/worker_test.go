package stream

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"
)

// TestProcessComparesSentTimesOnly: on the Kafka path an event without a
// time takes its message's timestamp, which is not compared when the id
// comes again (a redelivery, or a producer's retry with another
// timestamp, with or without the time): the same transaction gets its
// decision again, marked replayed. Two events of one id that both carry a
// time, a different one, are two transactions: the second is
// dead-lettered as id_reused. No broker is needed: the worker scores
// messages handed to it.
func TestProcessComparesSentTimesOnly(t *testing.T) {
	cfg := testConfig("127.0.0.1:9", "sent-times")
	c, err := New(cfg, newEngine(t), Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	w := &worker{c: c, state: &partState{highest: -1}, caught: true,
		lag: c.m.lag.WithLabelValues("0"), wm: c.m.watermark.WithLabelValues("0")}
	appended := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	t1 := appended.Add(-10 * time.Second).UTC().Format(time.RFC3339Nano)
	t2 := appended.Add(-20 * time.Second).UTC().Format(time.RFC3339Nano)
	type msg struct {
		time  string        // the event's time, "" for none
		after time.Duration // its message's timestamp, after appended
		want  string        // decided, replayed or id_reused
	}
	offset := int64(0)
	for i, tc := range []struct {
		name string
		msgs []msg
	}{
		{"no time, delivered again", []msg{{"", 0, "decided"}, {"", 0, "replayed"}}},
		{"no time, sent again later", []msg{{"", 0, "decided"}, {"", 30 * time.Second, "replayed"}}},
		{"a time, then none", []msg{{t1, 0, "decided"}, {"", 30 * time.Second, "replayed"}}},
		{"none, then a time", []msg{{"", 0, "decided"}, {t1, 30 * time.Second, "replayed"}}},
		{"the same time", []msg{{t1, 0, "decided"}, {t1, 30 * time.Second, "replayed"}}},
		{"two times", []msg{{t1, 0, "decided"}, {t2, 0, "id_reused"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for n, m := range tc.msgs {
				tm := ""
				if m.time != "" {
					tm = fmt.Sprintf(`"time":%q,`, m.time)
				}
				value := fmt.Sprintf(`{"id":"st_%d",%s"amount":700,"currency":"EUR","card":{"token":"tok_st"}}`, i, tm)
				out := w.process(context.Background(), []kafka.Message{{Topic: cfg.Topics.Transactions, Offset: offset,
					HighWaterMark: offset + 1, Time: appended.Add(m.after), Value: []byte(value)}})
				offset++
				if out == nil || len(out.msgs) != 1 {
					t.Fatalf("message %d: %+v", n+1, out)
				}
				got := "decided"
				switch rec := out.msgs[0]; {
				case rec.Topic == cfg.Topics.DeadLetter:
					got = headers(rec)[HeaderErrorCode]
				case strings.Contains(string(rec.Value), `"replayed":true`):
					got = "replayed"
				}
				if got != m.want {
					t.Errorf("message %d (time %q, appended +%s): %s, want %s", n+1, m.time, m.after, got, m.want)
				}
			}
		})
	}
}

// TestRebuildCountsDuplicatesOnce: a rebuild that reads an id again within
// the idempotency retention counts the copy as rebuild_duplicate (it was
// counted as rebuilt, as a fresh event), and counts no idempotent replay
// in the engine: a rebuild counts nothing again. No broker is needed.
func TestRebuildCountsDuplicatesOnce(t *testing.T) {
	cfg := testConfig("127.0.0.1:9", "rebuild-dup")
	eng := newEngine(t)
	c, err := New(cfg, eng, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	w := &worker{c: c, state: &partState{highest: -1}, committed: 3,
		lag: c.m.lag.WithLabelValues("0"), wm: c.m.watermark.WithLabelValues("0")}
	at := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	var msgs []kafka.Message
	for i, id := range []string{"rd_a", "rd_b", "rd_a"} { // offsets 0-2, all before the committed offset
		msgs = append(msgs, kafka.Message{Topic: cfg.Topics.Transactions, Offset: int64(i), HighWaterMark: 4, Time: at,
			Value: []byte(fmt.Sprintf(`{"id":%q,"amount":700,"currency":"EUR","card":{"token":"tok_rd"}}`, id))})
	}
	if out := w.process(context.Background(), msgs); out != nil { // nothing to produce nor commit
		t.Fatalf("a rebuild produced %+v", out)
	}
	if got := testutil.ToFloat64(c.m.rebuilt); got != 2 {
		t.Errorf("rebuilt %v, want 2", got)
	}
	if got := testutil.ToFloat64(c.m.rebuildDup); got != 1 {
		t.Errorf("rebuild_duplicate %v, want 1 (rd_a read again)", got)
	}
	mfs, err := eng.Metrics().Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "vigil_idempotent_replays_total" && mf.Metric[0].GetCounter().GetValue() != 0 {
			t.Errorf("idempotent replays %v during a rebuild, want 0", mf.Metric[0].GetCounter().GetValue())
		}
	}
}
