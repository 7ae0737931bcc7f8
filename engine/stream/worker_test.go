package stream

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

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
