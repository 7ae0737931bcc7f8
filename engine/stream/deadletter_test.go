package stream

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/vigil-fraud/vigil/engine"
	"github.com/vigil-fraud/vigil/engine/event"
)

func TestDeadLetterMessage(t *testing.T) {
	const pan = "4111111111111111"
	tests := []struct {
		name     string
		msg      kafka.Message
		code     string
		redacted bool
	}{
		{"malformed", kafka.Message{Key: []byte("k"), Value: []byte(`{"id":`)}, CodeInvalid, false},
		{"invalid", kafka.Message{Key: []byte("k"), Value: []byte(`{"id":"x"}`)}, CodeInvalid, false},
		{"card number in a field", kafka.Message{Value: []byte(`{"id":"x","amount":1,"currency":"USD","card":{"token":"` + pan + `"}}`)}, CodePAN, true},
		{"card number in broken JSON", kafka.Message{Value: []byte(`{"id":"x","note":"` + pan)}, CodePAN, true},
		{"card number in the key", kafka.Message{Key: []byte(pan), Value: []byte(`nope`)}, CodePAN, true},
		{"card number in a header", kafka.Message{Value: []byte(`nope`), Headers: []kafka.Header{{Key: "card", Value: []byte(pan)}}}, CodePAN, true},
		// escaped in a string the decoder never reads (the JSON is cut)
		{"escaped card number in broken JSON", kafka.Message{Value: []byte(`{"id":"esc1","amount":1,"currency":"USD","attributes":{"n":"` +
			`\u0034\u0031\u0031\u0031\u0031\u0031\u0031\u0031\u0031\u0031\u0031\u0031\u0031\u0031\u0031\u0031`)}, CodePAN, true},
		{"escaped card number in the key", kafka.Message{Key: []byte(`4111\u00201111\u00201111\u00201111`), Value: []byte(`nope`)}, CodePAN, true},
		{"escapes without a card number", kafka.Message{Key: []byte(`k`), Value: []byte(`{"id":"\u0041\n\u00`)}, CodeInvalid, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := tt.msg
			m.Topic, m.Partition, m.Offset, m.Time = "tx", 3, 42, time.Unix(1700000000, 0)
			_, err := event.Decode(m.Value, m.Time)
			if err == nil {
				t.Fatal("the test message decoded")
			}
			dl := classify(err, len(m.Value))
			out := deadLetterMessage("tx.dlq", &m, dl)
			h := headers(out)
			if out.Topic != "tx.dlq" || h[HeaderSourceTopic] != "tx" || h[HeaderSourcePartition] != "3" || h[HeaderSourceOffset] != "42" || h[HeaderSourceTime] == "" {
				t.Errorf("coordinates: topic %q headers %v", out.Topic, h)
			}
			if h[HeaderErrorCode] != tt.code || h[HeaderError] == "" {
				t.Errorf("code %q (%q), want %q", h[HeaderErrorCode], h[HeaderError], tt.code)
			}
			all := string(out.Key) + string(out.Value)
			for _, x := range out.Headers {
				all += x.Key + string(x.Value)
			}
			if strings.Contains(all, pan) || event.ContainsPAN(all) {
				t.Errorf("the dead letter holds a card number: %q", all)
			}
			if tt.redacted != (h[HeaderRedacted] == "card_number") {
				t.Errorf("redacted header %q, want redacted=%v", h[HeaderRedacted], tt.redacted)
			}
			if !tt.redacted && (string(out.Value) != string(m.Value) || string(out.Key) != string(m.Key)) {
				t.Errorf("the original was not kept: key %q value %q", out.Key, out.Value)
			}
		})
	}
	dl := classify(engine.ErrIDReused, 10)
	if dl.code != CodeIDReused {
		t.Errorf("id reuse: code %q", dl.code)
	}
	big := make([]byte, event.MaxSize+1)
	_, err := event.Decode(big, time.Now())
	if dl := classify(err, len(big)); dl.code != CodeTooLarge {
		t.Errorf("too large: code %q", dl.code)
	}
	if dl := classify(errors.New("boom"), 1); dl.code != CodeInvalid {
		t.Errorf("other: code %q", dl.code)
	}
}
