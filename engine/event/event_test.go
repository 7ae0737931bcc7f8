package event

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

const good = `{"id":"tx_1","time":"2026-11-22T11:59:00Z","amount":1099,"currency":"usd","channel":"ecommerce",
 "card":{"token":"tok_1","bin":"424242","country":"us"},
 "account":{"id":"acct_1","created":"2025-01-01T00:00:00Z","email_hash":"9f86d081884c7d659a2feaa0c55ad015"},
 "merchant":{"id":"m_1","mcc":"5411","country":"US"},
 "device":{"id":"d_1","user_agent":"Mozilla/5.0","ip":"203.0.113.7","language":"en-US"},
 "billing":{"country":"US","lat":40.7,"lon":-74.0},"shipping":{"country":"US"},
 "attributes":{"order_ref":"ord_77","items":3,"gift":false,"coupon":null}}`

func TestDecodeGood(t *testing.T) {
	ev, err := Decode([]byte(good), now)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Currency != "USD" || ev.Card.Country != "US" {
		t.Errorf("codes not normalized: %q %q", ev.Currency, ev.Card.Country)
	}
	if got := MajorUnits(ev.Amount, ev.Currency); got != 10.99 {
		t.Errorf("major units = %v", got)
	}
	if !ev.Billing.HasCoordinates() || ev.Shipping.HasCoordinates() {
		t.Error("coordinates")
	}
	if ev.TimeDefaulted() {
		t.Error("time was given")
	}
}

func TestDecodeDefaultsTime(t *testing.T) {
	ev, err := Decode([]byte(`{"id":"a","amount":1,"currency":"JPY","account":{"id":"x"}}`), now)
	if err != nil {
		t.Fatal(err)
	}
	if !ev.Time.Equal(now) || !ev.TimeDefaulted() {
		t.Errorf("time = %v", ev.Time)
	}
	if MajorUnits(ev.Amount, "JPY") != 1 || MajorUnits(1000, "BHD") != 1 {
		t.Error("currency exponent not respected")
	}
	if _, err := Decode([]byte(`{"id":"a","amount":1,"currency":"JPY","account":{"id":"x"}}`), time.Time{}); err == nil {
		t.Error("offline decode without time accepted")
	}
}

// TestDecodePresence: a time or an amount that is absent or null is not
// one of value zero. Only an absent time means the time of receipt; an
// explicit zero amount is a real one (an authorization of 0).
func TestDecodePresence(t *testing.T) {
	for _, tc := range []struct {
		name, in  string
		defaulted bool // time of receipt
		err       string
	}{
		{"zero amount", `{"id":"a","amount":0,"currency":"USD","card":{"token":"t"}}`, true, ""},
		{"zero amount, reference decoder", `{"id":"a\u0062","amount":0,"currency":"USD","card":{"token":"t"}}`, true, ""},
		{"no amount", `{"id":"a","currency":"USD","card":{"token":"t"}}`, true, "amount: required"},
		{"null amount", `{"id":"a","amount":null,"currency":"USD","card":{"token":"t"}}`, true, "amount: required"},
		{"no time", `{"id":"a","amount":1,"currency":"USD","card":{"token":"t"}}`, true, ""},
		{"null time", `{"id":"a","time":null,"amount":1,"currency":"USD","card":{"token":"t"}}`, true, ""},
		{"zero time", `{"id":"a","time":"0001-01-01T00:00:00Z","amount":1,"currency":"USD","card":{"token":"t"}}`, false, "time: before the year 2000"},
		{"time", `{"id":"a","time":"2026-11-22T11:00:00Z","amount":1,"currency":"USD","card":{"token":"t"}}`, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := Decode([]byte(tc.in), now)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ev.TimeDefaulted() != tc.defaulted || ev.TimeDefaulted() != ev.Time.Equal(now) {
				t.Errorf("time %v, defaulted %v, want defaulted %v", ev.Time, ev.TimeDefaulted(), tc.defaulted)
			}
		})
	}
	// An event built in Go has its amount, and a zero Time is no time.
	ev := Event{ID: "a", Currency: "USD", Card: Card{Token: "t"}}
	if err := ev.Validate(now); err != nil || !ev.TimeDefaulted() {
		t.Errorf("event built in Go: %v, defaulted %v", err, ev.TimeDefaulted())
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		pan      bool
		want     []FieldError // path and a substring of the reason
	}{
		{"empty", ``, false, []FieldError{{"", "empty body"}}},
		{"not an object", `[1]`, false, []FieldError{{"", "expected an object"}}},
		{"null", " null\n", false, []FieldError{{"", "expected an object, got null"}}},
		{"syntax", `{"id":`, false, []FieldError{{"", "truncated"}}},
		{"trailing", `{"id":"a","amount":1,"currency":"USD","card":{"token":"t"}} {}`, false, []FieldError{{"", "after the event"}}},
		{"unknown top-level", `{"id":"a","colour":"red"}`, false, []FieldError{{"colour", "unknown field"}}},
		{"unknown nested", `{"id":"a","merchant":{"id":"m","name":"x"}}`, false, []FieldError{{"merchant.name", "unknown field"}}},
		{"type", `{"id":"a","amount":"12"}`, false, []FieldError{{"amount", "expected an integer, got string"}}},
		{"nested type", `{"id":"a","card":{"bin":424242}}`, false, []FieldError{{"card.bin", "expected a string, got number"}}},
		{"float amount", `{"id":"a","amount":10.5}`, false, []FieldError{{"amount", "expected an integer"}}},
		{"bad time", `{"id":"a","time":"yesterday"}`, false, []FieldError{{"time", "RFC 3339"}}},
		{"bad created", `{"id":"a","account":{"created":"2020-13-01"}}`, false, []FieldError{{"account.created", "RFC 3339"}}},
		{"missing", `{}`, false, []FieldError{{"id", "required"}, {"amount", "required"}, {"currency", "required"}, {"card.token", "required"}}},
		{"missing amount", `{"id":"tx_k6","currency":"USD","card":{"token":"t"}}`, false, []FieldError{{"amount", "required"}}},
		{"null amount", `{"id":"a","amount":null,"currency":"USD","card":{"token":"t"}}`, false, []FieldError{{"amount", "required"}}},
		{"missing amount, escaped id", `{"id":"a\u0062","currency":"USD","card":{"token":"t"}}`, false, []FieldError{{"amount", "required"}}},
		{"zero time", `{"id":"a","time":"0001-01-01T00:00:00Z","amount":1,"currency":"USD","card":{"token":"t"}}`, false, []FieldError{{"time", "before the year 2000"}}},
		{"zero time, escaped id", `{"id":"a\u0062","time":"0001-01-01T00:00:00Z","amount":1,"currency":"USD","card":{"token":"t"}}`, false, []FieldError{{"time", "before the year 2000"}}},
		{"epoch", `{"id":"a","time":"1970-01-01T00:00:00Z","amount":1,"currency":"USD","card":{"token":"t"}}`, false, []FieldError{{"time", "before the year 2000"}}},
		// decoding keeps a time's instant, not its text: a card number in
		// the fraction of a second is refused before it is dropped
		{"card number in a time", `{"id":"a","time":"2026-01-01T00:00:00.4111111111111111Z","amount":1,"currency":"USD","card":{"token":"t"}}`, true, []FieldError{{"time", "card number"}}},
		{"attribute out of range", `{"id":"a","amount":1,"currency":"USD","card":{"token":"t"},"attributes":{"n":1e999,"m":-1E400,"ok":1e308}}`, false, []FieldError{{"attributes.m", "out of range"}, {"attributes.n", "out of range"}}},
		// numbers by value: a card number written with an exponent
		{"card number as an exponent", `{"id":"a","amount":1,"currency":"USD","card":{"token":"t"},"attributes":{"n":4.111111111111111e15}}`, true, []FieldError{{"attributes.n", "card number"}}},
		{"card number as a fraction", `{"id":"a","amount":1,"currency":"USD","card":{"token":"t"},"attributes":{"n":4111111111111111.0}}`, true, []FieldError{{"attributes.n", "card number"}}},
		{"card number in account.created", `{"id":"a","amount":1,"currency":"USD","card":{"token":"t"},"account":{"id":"x","created":"2020-01-01T00:00:00.4111111111111111Z"}}`, true, []FieldError{{"account.created", "card number"}}},
		{"card number in a time, escaped id", `{"id":"a\u0062","time":"2026-01-01T00:00:00.4111111111111111Z","amount":1,"currency":"USD","card":{"token":"t"}}`, true, []FieldError{{"time", "card number"}}},
		{"values", `{"id":"a b","amount":-5,"currency":"XYZ","channel":"fax","card":{"token":"t","bin":"12","country":"USA"},
			"merchant":{"mcc":"54"},"device":{"ip":"300.1.1.1"},"billing":{"lat":1},"shipping":{"lat":100,"lon":0},
			"account":{"email_hash":"bob@example.com"},"attributes":{"o":{"x":1}}}`, false, []FieldError{
			{"id", "printable"}, {"amount", "negative"}, {"currency", "ISO 4217"}, {"channel", "one of"},
			{"card.bin", "6 or 8"}, {"card.country", "alpha-2"}, {"account.email_hash", "raw e-mail"},
			{"merchant.mcc", "4 digits"}, {"device.ip", "IPv4"}, {"billing", "together"}, {"shipping.lat", "-90"},
			{"attributes.o", "string, number"}}},
		{"future", `{"id":"a","amount":1,"currency":"USD","card":{"token":"t"},"time":"2026-11-22T14:00:00Z"}`, false, []FieldError{{"time", "future"}}},
		{"six minutes ahead", `{"id":"a","amount":1,"currency":"USD","card":{"token":"t"},"time":"2026-11-22T12:06:00Z"}`, false, []FieldError{{"time", "more than 5m0s in the future"}}},
		{"created after time", `{"id":"a","amount":1,"currency":"USD","account":{"id":"x","created":"2026-11-22T11:00:00Z"},"time":"2026-11-22T10:00:00Z"}`, false, []FieldError{{"account.created", "after"}}},
		{"pan in token", `{"id":"a","amount":1,"currency":"USD","card":{"token":"4111111111111111"}}`, true, []FieldError{{"card.token", "raw card number"}}},
		{"pan spaced in free text", `{"id":"a","amount":1,"currency":"USD","card":{"token":"t"},"attributes":{"note":"pls use 5500 0000 0000 0004 thx"}}`, true, []FieldError{{"attributes.note", "raw card number"}}},
		{"pan dashed", `{"id":"a","amount":1,"currency":"USD","card":{"token":"t"},"device":{"user_agent":"x 3782-822463-10005"}}`, true, []FieldError{{"device.user_agent", "raw card number"}}},
		{"pan as number", `{"id":"a","amount":1,"currency":"USD","card":{"token":"t"},"attributes":{"n":4012888888881881}}`, true, []FieldError{{"attributes.n", "raw card number"}}},
		{"pan in unknown field", `{"id":"a","card":{"token":"t","number":"4111 1111 1111 1111"}}`, true, []FieldError{{"card.number", "raw card number"}}},
		{"pan in id", `{"id":"6011000990139424","amount":1,"currency":"USD","card":{"token":"t"}}`, true, []FieldError{{"id", "raw card number"}}},
		{"key case", `{"ID":"a","amount":1,"currency":"USD","card":{"token":"t"}}`, false, []FieldError{{"ID", "unknown field"}}},
		{"nested key case", `{"id":"a","amount":1,"currency":"USD","Card":{"tokn":"x"}}`, false, []FieldError{{"Card", "unknown field"}}},
		{"folded key", "{\"id\":\"a\",\"amount\":1,\"currency\":\"USD\",\"card\":{\"token\":\"t\"},\"device\":{\"\u017fcreen\":\"1x1\"}}", false, []FieldError{{"device.\u017fcreen", "unknown field"}}},
		{"duplicate key", `{"id":"a","amount":1,"currency":"USD","card":{"token":"t","token":"u"}}`, false, []FieldError{{"card.token", "duplicate key"}}},
		{"duplicate attribute", `{"id":"a","amount":1,"currency":"USD","card":{"token":"t"},"attributes":{"x":1,"x":2}}`, false, []FieldError{{"attributes.x", "duplicate key"}}},
		{"pan in an overwritten duplicate", `{"id":"a","amount":1,"currency":"USD","card":{"token":"4111111111111111","token":"t"}}`, true, []FieldError{{"card.token", "raw card number"}}},
		{"pan in an overwritten attribute", `{"id":"a","amount":1,"currency":"USD","card":{"token":"t"},"attributes":{"y":"4111111111111111","y":"ok"}}`, true, []FieldError{{"attributes.y", "raw card number"}}},
		{"pan in a nested attribute", `{"id":"a","amount":1,"currency":"USD","card":{"token":"t"},"attributes":{"x":{"y":"4111111111111111"}}}`, true, []FieldError{{"attributes.x.y", "raw card number"}}},
		{"pan in a nested array", `{"id":"a","amount":1,"currency":"USD","card":{"token":"t"},"attributes":{"x":["a","4111111111111111"]}}`, true, []FieldError{{"attributes.x[1]", "raw card number"}}},
		{"pan after the event", `{"id":"a","amount":1,"currency":"USD","card":{"token":"t"}} "4111111111111111"`, true, []FieldError{{"", "raw card number"}}},
		{"pan as attribute key", `{"id":"a","amount":1,"currency":"USD","card":{"token":"t"},"attributes":{"4111111111111111":1}}`, true, []FieldError{{"attributes.[key with a card number]", "raw card number"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode([]byte(tc.in), now)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v, want *Error", err)
			}
			if e.PAN != tc.pan {
				t.Errorf("PAN = %v, want %v (%v)", e.PAN, tc.pan, err)
			}
			for _, w := range tc.want {
				found := false
				for _, f := range e.Fields {
					if f.Path == w.Path && strings.Contains(f.Reason, w.Reason) {
						found = true
					}
				}
				if !found {
					t.Errorf("missing %s: %q in %v", w.Path, w.Reason, e.Fields)
				}
			}
			if ContainsPAN(err.Error()) {
				t.Errorf("error repeats a card number: %v", err)
			}
		})
	}
}

func TestCurrencyExponent(t *testing.T) {
	for code, want := range map[string]int{"USD": 2, "EUR": 2, "JPY": 0, "KRW": 0, "BHD": 3, "KWD": 3, "CLF": 4} {
		if e, ok := CurrencyExponent(code); !ok || e != want {
			t.Errorf("%s: %d %v, want %d", code, e, ok, want)
		}
	}
	for _, bad := range []string{"XYZ", "US", "usd", "D A", ""} {
		if _, ok := CurrencyExponent(bad); ok && bad != "usd" {
			t.Errorf("%q accepted", bad)
		}
	}
}

// FuzzDecode checks that the decoder never panics, that every error is an
// *Error that never repeats a card number, and that an accepted event
// survives a JSON round trip unchanged.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte(`{"id":"a","card":{"token":"4111 1111 1111 1111"}}`))
	f.Add([]byte(`{"id":"a","amount":1,"currency":"USD","account":{"id":"x"},"attributes":{"k":1.5e300}}`))
	f.Add([]byte(`{"id":"a","merchant":{"x":1}}`))
	f.Add([]byte(`{"id":"a","amount":null,"currency":"USD","card":{"token":"t"}}`))
	f.Add([]byte(`{"id":"a","time":"0001-01-01T00:00:00Z","amount":0,"currency":"USD","card":{"token":"t"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := Decode(data, now)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error of type %T: %v", err, err)
			}
			if ContainsPAN(err.Error()) {
				t.Fatalf("error repeats a card number: %v", err)
			}
			return
		}
		out, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		ev2, err := Decode(out, now)
		if err != nil {
			t.Fatalf("re-decoding %s: %v", out, err)
		}
		out2, _ := json.Marshal(ev2)
		if string(out) != string(out2) {
			t.Fatalf("round trip changed the event:\n%s\n%s", out, out2)
		}
	})
}
