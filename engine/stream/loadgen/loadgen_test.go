package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/vigil-fraud/vigil/engine/event"
)

// TestGeneratorEventsAreValid checks that every synthetic event passes
// vigil's strict decoder, that every pattern is injected, and that a seed
// reproduces its stream.
func TestGeneratorEventsAreValid(t *testing.T) {
	g, err := NewGenerator(Config{Seed: 7, Fraud: 0.02, Label: true})
	if err != nil {
		t.Fatal(err)
	}
	g2, _ := NewGenerator(Config{Seed: 7, Fraud: 0.02, Label: true})
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	seen := map[Pattern]int{}
	ids := map[string]bool{}
	for i := range 30_000 {
		at := start.Add(time.Duration(i) * 100 * time.Millisecond)
		ev := g.Next(at)
		if !bytes.Equal(ev.JSON, g2.Next(at).JSON) {
			t.Fatal("the same seed gave another stream")
		}
		x, err := event.Decode(ev.JSON, at)
		if err != nil {
			t.Fatalf("event %d: %v\n%s", i, err, ev.JSON)
		}
		if ids[x.ID] || x.ID != ev.ID || x.Card.Token != ev.Key || !x.Time.Equal(at) {
			t.Fatalf("event %d: id %q key %q time %s", i, x.ID, ev.Key, x.Time)
		}
		ids[x.ID] = true
		if want := string(ev.Pattern); want != "" && x.Attributes["pattern"] != want {
			t.Fatalf("event %d: label %v, want %s", i, x.Attributes["pattern"], want)
		}
		seen[ev.Pattern]++
	}
	for _, p := range Patterns {
		if seen[p] == 0 {
			t.Errorf("pattern %s never injected (%v)", p, seen)
		}
	}
	if seen[""] < 20_000 {
		t.Errorf("only %d legitimate events of 30000", seen[""])
	}
}

func TestGeneratorConfig(t *testing.T) {
	for _, c := range []Config{{Cards: 10, Accounts: 20}, {Fraud: 2}, {Patterns: []Pattern{"phishing"}}, {Cards: -1}} {
		if _, err := NewGenerator(c); err == nil {
			t.Errorf("%+v: accepted", c)
		}
	}
}

func TestReadJSONL(t *testing.T) {
	src := `{"id":"b","time":"2026-01-01T00:00:02Z","card":{"token":"tok_1"}}

{"id":"a","time":"2026-01-01T00:00:01Z","account":{"id":"acct_9"}}
{"id":"c","amount":"not validated here"}
`
	recs, err := ReadJSONL(strings.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 || recs[0].Key != "tok_1" || recs[1].Key != "acct_9" || recs[1].Line != 3 || !recs[2].Time.IsZero() {
		t.Fatalf("records %+v", recs)
	}
	SortByTime(recs)
	if got := recs[0].ID + recs[1].ID + recs[2].ID; got != "acb" {
		t.Errorf("sorted %s, want acb (c, without a time, stays after a)", got)
	}
	for _, bad := range []string{"[1,2]\n", "{\"id\":\n", "not json\n"} {
		if _, err := ReadJSONL(strings.NewReader(bad)); err == nil || !strings.Contains(err.Error(), "line 1") {
			t.Errorf("%q: error %v", bad, err)
		}
	}
}

func TestReadCSV(t *testing.T) {
	src := "id,time,amount,currency,card.token,account.id,billing.country,billing.lat,billing.lon,attributes.note\n" +
		"tx2,2026-01-01T00:00:02Z,1099,USD,tok_1,acct_1,US,40.7,-74.0,\"hello, world\"\n" +
		"tx1,2026-01-01T00:00:01Z,12.5,EUR,,acct_2,,,,\n"
	recs, err := ReadCSV(strings.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[0].Line != 2 || recs[1].Key != "acct_2" {
		t.Fatalf("records %+v", recs)
	}
	ev, err := event.Decode(recs[0].JSON, time.Now())
	if err != nil {
		t.Fatalf("%s: %v", recs[0].JSON, err)
	}
	if ev.Amount != 1099 || *ev.Billing.Lat != 40.7 || ev.Attributes["note"] != "hello, world" || ev.Card.Token != "tok_1" {
		t.Errorf("decoded %+v", ev)
	}
	var m map[string]any
	json.Unmarshal(recs[1].JSON, &m)
	if m["amount"] != "12.5" { // not an integer: sent as is, and vigil refuses it
		t.Errorf("amount %v", m["amount"])
	}
	SortByTime(recs)
	if recs[0].ID != "tx1" {
		t.Errorf("not sorted by time: %s first", recs[0].ID)
	}
	for _, bad := range []string{"", "id,name\n", "id,card.token.x\n", "id,id\n", "id,amount\nx\n"} {
		if _, err := ReadCSV(strings.NewReader(bad)); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
}

func TestPacer(t *testing.T) {
	p := NewPacer(2000)
	start := time.Now()
	total := 0
	for total < 200 {
		n, err := p.Take(context.Background(), 50)
		if err != nil || n < 1 || n > 50 {
			t.Fatalf("Take: %d, %v", n, err)
		}
		total += n
	}
	if el := time.Since(start); el < 80*time.Millisecond || el > time.Second {
		t.Errorf("200 events at 2000/s took %s", el)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	slow := NewPacer(0.001)
	slow.Take(ctx, 1)
	if _, err := slow.Take(ctx, 1); err == nil {
		t.Error("a cancelled wait returned no error")
	}
}

// memSink records what it is sent.
type memSink struct{ got []Message }

func (m *memSink) Send(_ context.Context, msgs []Message) error {
	m.got = append(m.got, msgs...)
	return nil
}
func (m *memSink) Close() error { return nil }

func TestRunLimits(t *testing.T) {
	g, _ := NewGenerator(Config{})
	sink := &memSink{}
	n, err := Run(context.Background(), &GeneratorSource{Gen: g}, sink, Limits{Count: 1234, Batch: 100})
	if err != nil || n != 1234 || len(sink.got) != 1234 {
		t.Fatalf("count limit: sent %d (%d), %v", n, len(sink.got), err)
	}
	sink = &memSink{}
	n, _ = Run(context.Background(), &ReplaySource{Records: []Record{{JSON: []byte(`{}`)}, {JSON: []byte(`{}`)}}}, sink, Limits{})
	if n != 2 {
		t.Fatalf("replay: sent %d", n)
	}
	start := time.Now()
	n, _ = Run(context.Background(), &GeneratorSource{Gen: g}, &memSink{}, Limits{Rate: 1000, Duration: 200 * time.Millisecond})
	if el := time.Since(start); el > time.Second || n < 100 || n > 260 {
		t.Fatalf("duration limit: %d events in %s", n, el)
	}
}

func FuzzReadJSONL(f *testing.F) {
	f.Add([]byte(`{"id":"a","time":"2026-01-01T00:00:00Z","card":{"token":"t"}}` + "\n\n{\"id\":1}"))
	f.Add([]byte("{\"time\":\"x\"}\r\n{}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, err := ReadJSONL(bytes.NewReader(data))
		if err != nil {
			return
		}
		for _, r := range recs {
			if !json.Valid(r.JSON) || r.JSON[0] != '{' {
				t.Fatalf("record %q is not a JSON object", r.JSON)
			}
		}
		SortByTime(recs)
	})
}

func FuzzReadCSV(f *testing.F) {
	f.Add([]byte("id,time,amount,billing.lat,attributes.x\na,2026-01-01T00:00:00Z,10,1.5,\"q\"\"\"\n"))
	f.Add([]byte("card.token,account.id\n,\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, err := ReadCSV(bytes.NewReader(data))
		if err != nil {
			return
		}
		for _, r := range recs {
			var m map[string]any
			if err := json.Unmarshal(r.JSON, &m); err != nil {
				t.Fatalf("record %q: %v", r.JSON, err)
			}
		}
		SortByTime(recs)
	})
}
