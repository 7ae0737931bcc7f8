package event

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// loadgenEvent is an event as engine/stream/loadgen makes them.
const loadgenEvent = `{"id":"tx_2","time":"2026-11-22T11:38:44.93735707Z","amount":56520,"currency":"USD","channel":"ecommerce",` +
	`"card":{"token":"tok_3_613","bin":"555555","country":"US"},"account":{"id":"acct_613","email_hash":"eh_jeoblfnmncjhgnkn"},` +
	`"merchant":{"id":"m_768","mcc":"7011","country":"US"},"device":{"id":"dev_613","fingerprint":"fp_aaebkbadgeiadgoc",` +
	`"user_agent":"Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0","ip":"198.51.2.114","language":"en-US","timezone":"UTC",` +
	`"screen":"1920x1080","platform":"Linux"},"billing":{"country":"US","lat":40.75090064948352,"lon":-74.07804432339165},"shipping":{"country":"US"}}`

// decodeSlow is Decode with the reference decoder only.
func decodeSlow(data []byte, now time.Time) (*Event, error) {
	if len(data) > MaxSize {
		return Decode(data, now) // the size check does not decode
	}
	ev, err := decodeReference(data)
	if err != nil {
		return nil, err
	}
	if err := ev.Validate(now); err != nil {
		return nil, err
	}
	return ev, nil
}

// checkSame fails when Decode and the reference decoder disagree on data:
// the event, or the error (message, paths and PAN flag).
func checkSame(t *testing.T, data []byte) {
	t.Helper()
	fast, ok := decodeFast(data)
	ref, rerr := decodeReference(data)
	if ok {
		if rerr != nil {
			t.Fatalf("fast path accepted what the reference refuses (%v):\n%s", rerr, data)
		}
		if !reflect.DeepEqual(fast, ref) {
			t.Fatalf("fast path decoded differently:\n%s\nfast %+v\nref  %+v", data, fast, ref)
		}
	}
	ev1, err1 := Decode(data, now)
	ev2, err2 := decodeSlow(data, now)
	if (err1 == nil) != (err2 == nil) {
		t.Fatalf("Decode error %v, reference %v:\n%s", err1, err2, data)
	}
	if err1 != nil {
		var e1, e2 *Error
		errors.As(err1, &e1)
		errors.As(err2, &e2)
		if !reflect.DeepEqual(e1, e2) {
			t.Fatalf("errors differ:\n%s\nDecode    %#v\nreference %#v", data, e1, e2)
		}
		return
	}
	if !reflect.DeepEqual(ev1, ev2) {
		t.Fatalf("events differ:\n%s\nDecode    %+v\nreference %+v", data, ev1, ev2)
	}
}

func TestDecodeFastMatchesReference(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		fast bool // whether the fast path handles it
	}{
		{"good", good, true},
		{"loadgen", loadgenEvent, true},
		{"minimal", `{"id":"a","amount":1,"currency":"JPY","account":{"id":"x"}}`, true},
		{"two places", `{"id":"a","amount":1,"currency":"USD","card":{"token":"t"},"billing":{"lon":2.5,"lat":-1,"country":"FR"},"shipping":{"lat":51.5,"lon":-0.12}}`, true},
		{"lat only", `{"id":"a","amount":1,"currency":"USD","card":{"token":"t"},"billing":{"lat":1},"shipping":{"lon":3,"lat":4}}`, true},
		{"whitespace", " \t\n{ \"id\" : \"a\" , \"amount\" : 1 ,\"currency\":\"USD\",\"card\":{ \"token\" : \"t\" } } \r\n", true},
		{"utf-8", `{"id":"a","amount":1,"currency":"USD","card":{"token":"t"},"device":{"user_agent":"Möbius ☃"}}`, true},
		{"attributes", `{"id":"a","amount":1,"currency":"USD","card":{"token":"t"},"attributes":{"s":"x","n":-1.5e3,"t":true,"f":false,"z":null}}`, true},
		{"duplicate attribute", `{"id":"a","amount":1,"currency":"USD","card":{"token":"t"},"attributes":{"s":"4111111111111111","s":"y"}}`, false},
		{"key case", `{"ID":"a","amount":1,"currency":"USD","card":{"token":"t"}}`, false},
		{"nested key case", `{"id":"a","amount":1,"currency":"USD","card":{"Token":"t"}}`, false},
		{"folded key", "{\"id\":\"a\",\"amount\":1,\"currency\":\"USD\",\"card\":{\"token\":\"t\"},\"device\":{\"\u017fcreen\":\"1x1\"}}", false},
		{"duplicate hides a pan", `{"id":"a","amount":1,"currency":"USD","card":{"token":"4111111111111111","token":"t"}}`, false},
		{"pan after the event", `{"id":"a","amount":1,"currency":"USD","card":{"token":"t"}} "4111111111111111"`, false},
		{"pan in a nested attribute", `{"id":"a","amount":1,"currency":"USD","card":{"token":"t"},"attributes":{"x":{"y":["4111111111111111"]}}}`, false},
		{"empty attributes", `{"id":"a","amount":1,"currency":"USD","card":{"token":"t"},"attributes":{}}`, true},
		{"offset time", `{"id":"a","time":"2026-11-22T12:30:00+02:00","amount":1,"currency":"USD","card":{"token":"t"}}`, true},
		{"minus zero", `{"id":"a","amount":-0,"currency":"USD","card":{"token":"t"}}`, true},
		{"zero amount", `{"id":"a","amount":0,"currency":"USD","card":{"token":"t"}}`, true},
		{"no amount", `{"id":"a","currency":"USD","card":{"token":"t"}}`, true},
		{"null amount", `{"id":"a","amount":null,"currency":"USD","card":{"token":"t"}}`, false},
		{"zero time", `{"id":"a","time":"0001-01-01T00:00:00Z","amount":1,"currency":"USD","card":{"token":"t"}}`, true},
		{"null time", `{"id":"a","time":null,"amount":1,"currency":"USD","card":{"token":"t"}}`, false},
		{"amount and time in attributes only", `{"id":"a","currency":"USD","card":{"token":"t"},"attributes":{"amount":1,"time":"x"}}`, true},
		{"amount and time in attributes only, nested", `{"id":"a","currency":"USD","card":{"token":"t"},"attributes":{"amount":1,"time":{"x":1}}}`, false},
		{"pan", `{"id":"a","amount":1,"currency":"USD","card":{"token":"4111 1111 1111 1111"}}`, true},
		{"invalid values", `{"id":"a b","amount":-5,"currency":"XYZ","card":{"token":"t","bin":"12"}}`, true},
		{"escape", `{"id":"a\u0062","amount":1,"currency":"USD","card":{"token":"t"}}`, false},
		{"invalid utf-8", "{\"id\":\"a\xff\",\"amount\":1,\"currency\":\"USD\",\"card\":{\"token\":\"t\"}}", false},
		{"control char", "{\"id\":\"a\tb\",\"amount\":1,\"currency\":\"USD\",\"card\":{\"token\":\"t\"}}", false},
		{"duplicate key", `{"id":"a","id":"b","amount":1,"currency":"USD","card":{"token":"t"}}`, false},
		{"duplicate object", `{"id":"a","amount":1,"currency":"USD","card":{"token":"t"},"card":{"bin":"424242"}}`, false},
		{"duplicate nested", `{"id":"a","amount":1,"currency":"USD","card":{"token":"t","token":"u"}}`, false},
		{"null", `{"id":null,"amount":1,"currency":"USD","card":{"token":"t"}}`, false},
		{"null object", `{"id":"a","amount":1,"currency":"USD","card":null,"account":{"id":"x"}}`, false},
		{"float amount", `{"id":"a","amount":1.0,"currency":"USD","card":{"token":"t"}}`, false},
		{"exponent amount", `{"id":"a","amount":1e2,"currency":"USD","card":{"token":"t"}}`, false},
		{"overflow", `{"id":"a","amount":99999999999999999999,"currency":"USD","card":{"token":"t"}}`, false},
		{"leading zero", `{"id":"a","amount":01,"currency":"USD","card":{"token":"t"}}`, false},
		{"huge lat", `{"id":"a","amount":1,"currency":"USD","card":{"token":"t"},"billing":{"lat":1e400,"lon":0}}`, false},
		{"bad time", `{"id":"a","time":"yesterday","amount":1,"currency":"USD","card":{"token":"t"}}`, false},
		{"unknown", `{"id":"a","colour":"red"}`, false},
		{"nested attribute", `{"id":"a","amount":1,"currency":"USD","card":{"token":"t"},"attributes":{"o":{"x":1}}}`, false},
		{"trailing", `{"id":"a","amount":1,"currency":"USD","card":{"token":"t"}} {}`, false},
		{"truncated", `{"id":"a","amount":1`, false},
		{"trailing comma", `{"id":"a","amount":1,}`, false},
		{"literal prefix", `{"id":"a","amount":1,"currency":"USD","card":{"token":"t"},"attributes":{"t":truex}}`, false},
		{"empty", ``, false},
		{"array", `[1]`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, ok := decodeFast([]byte(tc.in)); ok != tc.fast {
				t.Errorf("fast path ok = %v, want %v", ok, tc.fast)
			}
			checkSame(t, []byte(tc.in))
		})
	}
}

func TestInternBytes(t *testing.T) {
	a := internBytes([]byte("USD"))
	b := internBytes([]byte("USD"))
	if a != "USD" || b != "USD" {
		t.Fatalf("%q %q", a, b)
	}
	if long := strings.Repeat("x", maxInterned+1); internBytes([]byte(long)) != long {
		t.Fatal("long value changed")
	}
	// A refused event's card number is not kept in the table.
	if _, err := Decode([]byte(`{"id":"a","amount":1,"currency":"USD","card":{"token":"t"},"device":{"user_agent":"4111 1111 1111 1111"}}`), now); err == nil {
		t.Fatal("card number accepted")
	}
	for i := range internTable {
		if s := internTable[i].Load(); s != nil && ContainsPAN(*s) {
			t.Fatalf("slot %d holds %q", i, *s)
		}
	}
}

// FuzzDecodeFast is the differential test of the fast path: Decode must
// accept and refuse exactly like the reference decoder (encoding/json),
// with the same events and the same errors.
func FuzzDecodeFast(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte(loadgenEvent))
	f.Add([]byte(`{"id":"a","amount":1,"currency":"USD","card":{"token":"t"},"attributes":{"s":"x","n":-1.5e3,"t":true,"z":null}}`))
	f.Add([]byte(`{"id":"a","time":"2026-11-22T12:30:00+02:00","amount":1,"currency":"usd","account":{"id":"x","created":"2025-01-01T00:00:00Z"}}`))
	f.Add([]byte(`{"id":"a","amount":1,"currency":"USD","card":{"token":"4111 1111 1111 1111"},"billing":{"lat":1,"lon":2}}`))
	f.Add([]byte(`{"id":"a","merchant":{"x":1}}`))
	f.Add([]byte(`{"id":"a","currency":"USD","card":{"token":"t"}}`))
	f.Add([]byte(`{"id":"a","amount":null,"currency":"USD","card":{"token":"t"}}`))
	f.Add([]byte(`{"id":"a","time":"0001-01-01T00:00:00Z","amount":0,"currency":"USD","card":{"token":"t"}}`))
	f.Add([]byte(`{"id":"a","time":null,"amount":1,"currency":"USD","card":{"token":"t"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkSame(t, data)
	})
}

func BenchmarkDecodeLoadgen(b *testing.B) {
	data := []byte(loadgenEvent)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Decode(data, now); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeReference(b *testing.B) {
	data := []byte(loadgenEvent)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := decodeSlow(data, now); err != nil {
			b.Fatal(err)
		}
	}
}

// TestRawStringEveryPosition puts each kind of byte that ends or
// interrupts a plain string (quote, backslash escape, control character,
// non-ASCII, invalid UTF-8) at every position of values of 0–24 bytes,
// across the eight-byte words rawString reads: Decode must agree with the
// reference decoder on each.
func TestRawStringEveryPosition(t *testing.T) {
	specials := []string{`\"`, `\\`, `\n`, `\u0041`, "\x01", "\x1f", "é", "→", "\xff", "\xc3", " ", "~", "\x7f"}
	for n := range 25 {
		for at := 0; at <= n; at++ {
			for _, sp := range specials {
				v := strings.Repeat("a", at) + sp + strings.Repeat("b", n-at)
				for _, field := range []string{"id", "channel"} {
					checkSame(t, []byte(`{"`+field+`":"`+v+`","amount":1,"currency":"USD","card":{"token":"`+v+`"}}`))
				}
			}
		}
	}
}
