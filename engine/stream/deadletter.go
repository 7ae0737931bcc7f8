package stream

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/segmentio/kafka-go"

	"github.com/vigil-fraud/vigil/engine"
	"github.com/vigil-fraud/vigil/engine/event"
)

// Dead-letter headers. Every dead-letter message carries the reason and
// the coordinates of the message it replaces.
const (
	HeaderError           = "vigil-error"            // the reason, as the API would word it
	HeaderErrorCode       = "vigil-error-code"       // invalid_event, card_number_refused, id_reused, too_large
	HeaderErrorFields     = "vigil-error-fields"     // JSON [{"path","reason"}], when known
	HeaderSourceTopic     = "vigil-source-topic"     // topic of the original message
	HeaderSourcePartition = "vigil-source-partition" // its partition
	HeaderSourceOffset    = "vigil-source-offset"    // its offset
	HeaderSourceTime      = "vigil-source-time"      // its timestamp, RFC 3339
	HeaderRedacted        = "vigil-redacted"         // "card_number": key, value and headers were dropped
)

// Error codes of dead letters.
const (
	CodeInvalid  = "invalid_event"
	CodePAN      = "card_number_refused"
	CodeIDReused = "id_reused"
	CodeTooLarge = "too_large"
)

// deadLetter is why a message could not be scored.
type deadLetter struct {
	code   string
	msg    string
	fields []event.FieldError
	pan    bool
}

// classify turns a decode or scoring error of a value of size bytes into
// a dead letter.
func classify(err error, size int) deadLetter {
	var ev *event.Error
	switch {
	case errors.As(err, &ev):
		dl := deadLetter{code: CodeInvalid, msg: ev.Error(), fields: ev.Fields, pan: ev.PAN}
		if ev.PAN {
			dl.code = CodePAN
		} else if size > event.MaxSize {
			dl.code = CodeTooLarge
		}
		return dl
	case errors.Is(err, engine.ErrIDReused):
		return deadLetter{code: CodeIDReused, msg: err.Error()}
	}
	return deadLetter{code: CodeInvalid, msg: err.Error()}
}

// containsPAN reports whether a message holds what looks like a card number
// anywhere: key, value, header names or values, also written with JSON
// escapes (\u0034\u0031...) in a value too broken for the decoder to read.
func containsPAN(m *kafka.Message) bool {
	if anyPAN(m.Value) || anyPAN(m.Key) {
		return true
	}
	for _, h := range m.Headers {
		if event.ContainsPAN(h.Key) || anyPAN(h.Value) {
			return true
		}
	}
	return false
}

// anyPAN is event.ContainsPAN of b as it is and with its JSON escapes
// undone.
func anyPAN(b []byte) bool {
	return event.ContainsPAN(string(b)) || (bytes.IndexByte(b, '\\') >= 0 && event.ContainsPAN(string(unescapeLeniently(b))))
}

// unescapeLeniently undoes JSON string escapes wherever they are, without
// needing valid JSON: \uXXXX becomes its character, \n, \t and the like a
// space, \x the character x.
func unescapeLeniently(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' || i+1 == len(b) {
			out = append(out, b[i])
			continue
		}
		i++
		switch c := b[i]; c {
		case 'u':
			if i+4 < len(b) {
				if r, err := strconv.ParseUint(string(b[i+1:i+5]), 16, 32); err == nil {
					out = utf8.AppendRune(out, rune(r))
					i += 4
					continue
				}
			}
			out = append(out, c)
		case 'n', 't', 'r', 'b', 'f':
			out = append(out, ' ')
		default:
			out = append(out, c)
		}
	}
	return out
}

// deadLetterMessage builds the dead-letter message replacing m. A message
// that holds a card number anywhere keeps only the reason and the
// coordinates: its key, value and headers are dropped, so that a card
// number is never copied.
func deadLetterMessage(topic string, m *kafka.Message, dl deadLetter) kafka.Message {
	redact := dl.pan || containsPAN(m)
	if redact {
		dl.code = CodePAN
	}
	msg := dl.msg
	if event.ContainsPAN(msg) { // never, by the decoder's design; checked all the same
		msg = "invalid event"
	}
	out := kafka.Message{Topic: topic}
	if !redact {
		out.Key, out.Value = m.Key, m.Value
		out.Headers = append(out.Headers, m.Headers...)
	}
	out.Headers = append(out.Headers,
		kafka.Header{Key: HeaderError, Value: []byte(msg)},
		kafka.Header{Key: HeaderErrorCode, Value: []byte(dl.code)},
		kafka.Header{Key: HeaderSourceTopic, Value: []byte(m.Topic)},
		kafka.Header{Key: HeaderSourcePartition, Value: strconv.AppendInt(nil, int64(m.Partition), 10)},
		kafka.Header{Key: HeaderSourceOffset, Value: strconv.AppendInt(nil, m.Offset, 10)},
		kafka.Header{Key: HeaderSourceTime, Value: []byte(m.Time.UTC().Format(time.RFC3339Nano))},
	)
	if len(dl.fields) > 0 {
		if b, err := json.Marshal(dl.fields); err == nil && !event.ContainsPAN(string(b)) {
			out.Headers = append(out.Headers, kafka.Header{Key: HeaderErrorFields, Value: b})
		}
	}
	if redact {
		out.Headers = append(out.Headers, kafka.Header{Key: HeaderRedacted, Value: []byte("card_number")})
	}
	return out
}
