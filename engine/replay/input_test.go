package replay

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestReadJSONL(t *testing.T) {
	for _, c := range []struct {
		name, in string
		n        int
		err      string
	}{
		{"two events and a blank line", `{"id":"a","time":"2026-01-01T00:00:00Z","amount":1,"currency":"EUR","card":{"token":"t"}}

{"id":"b","time":"2026-01-01T00:00:01Z","amount":1,"currency":"EUR","card":{"token":"t"}}`, 2, ""},
		{"no time", `{"id":"a","amount":1,"currency":"EUR","card":{"token":"t"}}`, 0, "line 1: time: required"},
		{"unknown field", `{"id":"a","time":"2026-01-01T00:00:00Z","amount":1,"currency":"EUR","card":{"token":"t"},"x":1}`, 0, "line 1: invalid event: x: unknown field"},
		{"card number refused", `{"id":"a","time":"2026-01-01T00:00:00Z","amount":1,"currency":"EUR","card":{"token":"4111111111111111"}}`, 0, "card number"},
		{"error on line 3", "\n\n{}", 0, "line 3:"},
	} {
		t.Run(c.name, func(t *testing.T) {
			txs, err := ReadJSONL(strings.NewReader(c.in))
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want %q", err, c.err)
				}
				if strings.Contains(err.Error(), "4111111111111111") {
					t.Error("the card number is echoed")
				}
				return
			}
			if err != nil || len(txs) != c.n {
				t.Fatalf("%d transactions, %v", len(txs), err)
			}
		})
	}
}

func TestParseMapping(t *testing.T) {
	for _, c := range []struct{ in, err string }{
		{"TX=id, TS=time,AMT=amount.major", ""},
		{"# a file\nTX: id\nTS: time   # seconds\nFRAUD: label\nSCEN: group\nJUNK: -\n", ""},
		{"TX=id,TX=time", `column "TX" mapped twice`},
		{"TX=nope", `unknown field "nope"`},
		{"TX", "want COLUMN=field"},
		{"A=attributes.x,B=attributes.", `unknown field "attributes."`},
	} {
		m, err := ParseMapping(c.in)
		if c.err == "" {
			if err != nil || len(m) == 0 {
				t.Errorf("%q: %v %v", c.in, m, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%q: error %v, want %q", c.in, err, c.err)
		}
	}
}

func TestReadCSV(t *testing.T) {
	mapping := map[string]string{"TX": "id", "TS": "time", "AMT": "amount.major", "CARD": "card.token", "FRAUD": "label", "KNOWN": "label.known_at", "SCEN": "group", "NOTE": "-"}
	for _, c := range []struct {
		name, in string
		m        Mapping
		check    func(t *testing.T, ds *Dataset)
		err      string
	}{
		{name: "mapped columns", m: Mapping{Columns: mapping, Currency: "EUR"},
			in: "TX,TS,AMT,CARD,FRAUD,KNOWN,SCEN,NOTE\nt1,1767225600,12.34,c1,1,2026-01-08T00:00:00Z,s1,x\nt2,2026-01-01T00:01:00Z,5,c1,,,s0,\nt3,1767225720,0.5,c2,legitimate,,s0,\n",
			check: func(t *testing.T, ds *Dataset) {
				if len(ds.Transactions) != 3 || len(ds.Labels) != 2 {
					t.Fatalf("%d transactions, %d labels", len(ds.Transactions), len(ds.Labels))
				}
				ev := ds.Transactions[0].Event
				if ev.ID != "t1" || ev.Amount != 1234 || ev.Currency != "EUR" || !ev.Time.Equal(time.Unix(1767225600, 0)) || ev.Card.Token != "c1" || ds.Transactions[0].Group != "s1" {
					t.Errorf("event %+v group %q", ev, ds.Transactions[0].Group)
				}
				if l := ds.Labels[0]; l.EventID != "t1" || !l.Fraud || !l.KnownAt.Equal(time.Date(2026, 1, 8, 0, 0, 0, 0, time.UTC)) {
					t.Errorf("label %+v", l)
				}
				if l := ds.Labels[1]; l.EventID != "t3" || l.Fraud || !l.KnownAt.IsZero() {
					t.Errorf("label %+v", l)
				}
				if ds.Transactions[2].Event.Amount != 50 {
					t.Errorf("0.5 EUR is %d cents", ds.Transactions[2].Event.Amount)
				}
			}},
		{name: "header paths without a mapping",
			in: "id,time,amount,currency,account.id,merchant.id,billing.country,billing.lat,billing.lon,attributes.promo\na,2026-01-01T00:00:00Z,100,JPY,acc,m,fr,48.8,2.3,yes\n",
			check: func(t *testing.T, ds *Dataset) {
				ev := ds.Transactions[0].Event
				if ev.Amount != 100 || ev.Currency != "JPY" || ev.Billing.Country != "FR" || ev.Billing.Lat == nil || ev.Attributes["promo"] != "yes" {
					t.Errorf("event %+v", ev)
				}
			}},
		{name: "unmapped column", in: "id,time,amount,currency,WHAT\n", err: `csv column "WHAT": not an event field`},
		{name: "FDH layout", in: "TRANSACTION_ID,TX_UNIX,CUSTOMER_ID,TERMINAL_ID,TX_AMOUNT,TX_FRAUD,TX_FRAUD_SCENARIO\n", err: "use --format fdh"},
		{name: "no time column", in: "id,amount,currency\n", err: "no column gives time"},
		{name: "no amount column", in: "id,time,currency,card.token\na,1767225600,EUR,c\n", err: "no column gives amount (or amount.major)"},
		{name: "empty amount", in: "id,time,amount,currency,card.token\na,1767225600,,EUR,c\n", err: "csv line 2: invalid event: amount: required"},
		{name: "two columns for one field", m: Mapping{Columns: map[string]string{"A": "id"}}, in: "id,A,time\n", err: `both give id`},
		{name: "decimal amount", in: "id,time,amount,currency,card.token\na,1767225600,1.5,EUR,c\n", err: "csv line 2: amount"},
		{name: "bad time", in: "id,time,amount,currency,card.token\na,yesterday,1,EUR,c\n", err: "csv line 2: time"},
		{name: "bad label", m: Mapping{Columns: map[string]string{"F": "label"}}, in: "id,time,amount,currency,card.token,F\na,1767225600,1,EUR,c,maybe\n", err: `label "maybe"`},
		{name: "known_at without label", m: Mapping{Columns: map[string]string{"K": "label.known_at"}}, in: "id,time,amount,currency,card.token,K\na,1767225600,1,EUR,c,1767225600\n", err: "without a label"},
		{name: "major amount without a currency", m: Mapping{Columns: map[string]string{"A": "amount.major"}}, in: "id,time,A,card.token\na,1767225600,1,c\n", err: "no currency to read it in: map a currency column or give the file's currency (--currency EUR)"},
		{name: "major amount in an unknown currency", m: Mapping{Columns: map[string]string{"A": "amount.major"}}, in: "id,time,A,currency,card.token\na,1767225600,1,XXQ,c\n", err: `unknown currency "XXQ"`},
		{name: "card number refused", in: "id,time,amount,currency,card.token\na,1767225600,1,EUR,4111 1111 1111 1111\n", err: "card number"},
		{name: "empty file", in: "", check: func(t *testing.T, ds *Dataset) {
			if len(ds.Transactions) != 0 {
				t.Error("transactions from nothing")
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ds, err := ReadCSV(strings.NewReader(c.in), c.m)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want %q", err, c.err)
				}
				if strings.Contains(err.Error(), "4111") {
					t.Error("the card number is echoed")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c.check(t, ds)
		})
	}
}

func TestReadLabels(t *testing.T) {
	for _, c := range []struct {
		name, file, in string
		want           []Label
		err            string
	}{
		{name: "jsonl", file: "l.jsonl", in: `{"event_id":"a","label":"chargeback","known_at":"2026-01-02T00:00:00Z"}
{"event_id":"b","label":"legitimate"}`,
			want: []Label{{EventID: "a", Fraud: true, KnownAt: time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)}, {EventID: "b"}}},
		{name: "csv", file: "l.csv", in: "label,event_id,known_at\nfalse_positive,a,\nconfirmed_fraud,b,1767225600\n1,c,\n",
			want: []Label{{EventID: "a"}, {EventID: "b", Fraud: true, KnownAt: time.Unix(1767225600, 0).UTC()}, {EventID: "c", Fraud: true}}},
		{name: "jsonl unknown field", file: "l.jsonl", in: `{"event_id":"a","label":"chargeback","x":1}`, err: "line 1"},
		{name: "jsonl bad label", file: "l.jsonl", in: `{"event_id":"a","label":"meh"}`, err: `label "meh"`},
		{name: "jsonl stray bracket", file: "l.jsonl", in: `{"event_id":"a","label":"chargeback"} ]`, err: "data after the object"},
		{name: "jsonl no id", file: "l.jsonl", in: `{"label":"chargeback"}`, err: "event_id is required"},
		{name: "jsonl two objects", file: "l.jsonl", in: `{"event_id":"a","label":"chargeback"} {}`, err: "data after"},
		{name: "csv unknown column", file: "l.csv", in: "event_id,label,why\n", err: `unknown column "why"`},
		{name: "csv no label column", file: "l.csv", in: "event_id\n", err: "no label column"},
		{name: "csv short row", file: "l.csv", in: "event_id,label\na\n", err: "line 2"},
		{name: "csv bad known_at", file: "l.csv", in: "event_id,label,known_at\na,fraud,soon\n", err: "known_at"},
		// a card number is refused and never repeated, escaped or not
		{name: "jsonl card number key", file: "l.jsonl", in: `{"event_id":"a","label":"chargeback","\u0034111111111111111":1}`, err: "line 1: holds what looks like a card number"},
		{name: "jsonl card number id", file: "l.jsonl", in: `{"event_id":"4111111111111111","label":"chargeback"}`, err: "line 1: holds what looks like a card number"},
		{name: "jsonl card number hidden by a duplicate", file: "l.jsonl", in: `{"event_id":"4111111111111111","event_id":"a","label":"chargeback"}`, err: "card number"},
		{name: "jsonl duplicate key", file: "l.jsonl", in: `{"event_id":"b","event_id":"a","label":"chargeback"}`, err: "line 1: event_id: duplicate key"},
		{name: "jsonl key in another case", file: "l.jsonl", in: `{"event_id":"a","LABEL":"chargeback"}`, err: "line 1: label: key written in another case"},
		{name: "csv card number id", file: "l.csv", in: "event_id,label\n4111 1111 1111 1111,fraud\n", err: "event_id looks like a card number"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := ReadLabels(c.file, strings.NewReader(c.in))
			if err != nil && (strings.Contains(err.Error(), "4111") || strings.Contains(err.Error(), "u0034")) {
				t.Fatalf("error repeats the card number: %v", err)
			}
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want %q", err, c.err)
				}
				return
			}
			if err != nil || len(got) != len(c.want) {
				t.Fatalf("%+v, %v", got, err)
			}
			for i := range got {
				if got[i].EventID != c.want[i].EventID || got[i].Fraud != c.want[i].Fraud || !got[i].KnownAt.Equal(c.want[i].KnownAt) {
					t.Errorf("label %d: %+v, want %+v", i, got[i], c.want[i])
				}
			}
		})
	}
}

func TestReadFDH(t *testing.T) {
	in := "TRANSACTION_ID,TX_UNIX,CUSTOMER_ID,TERMINAL_ID,TX_AMOUNT,TX_FRAUD,TX_FRAUD_SCENARIO,EXTRA\n" +
		"0,1522540831,596,3156,57.16,0,0,x\n1,1522540900,4961,3412,221.5,1,1,y\n"
	var gz bytes.Buffer
	z := gzip.NewWriter(&gz)
	z.Write([]byte(in))
	z.Close()
	path := filepath.Join(t.TempDir(), "tx.csv.gz")
	if err := os.WriteFile(path, gz.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	f, name, err := Open(path)
	if err != nil || name != strings.TrimSuffix(path, ".gz") {
		t.Fatal(name, err)
	}
	defer f.Close()
	ds, err := ReadFDH(f)
	if err != nil {
		t.Fatal(err)
	}
	ev := ds.Transactions[1].Event
	if ev.ID != "1" || ev.Card.Token != "c4961" || ev.Account.ID != "c4961" || ev.Merchant.ID != "t3412" || ev.Amount != 22150 || ev.Currency != "EUR" ||
		ev.Time.Unix() != 1522540900 || ds.Transactions[1].Group != "scenario_1" {
		t.Errorf("event %+v, group %q", ev, ds.Transactions[1].Group)
	}
	if len(ev.Attributes) != 0 {
		t.Error("the scenario or another column entered the event")
	}
	if l := ds.Labels[1]; !l.Fraud || l.EventID != "1" || !l.KnownAt.IsZero() || ds.Labels[0].Fraud {
		t.Errorf("labels %+v", ds.Labels)
	}
	for _, bad := range []struct{ in, err string }{
		{"TRANSACTION_ID,TX_UNIX\n", "no CUSTOMER_ID column"},
		{"TRANSACTION_ID,TX_UNIX,CUSTOMER_ID,TERMINAL_ID,TX_AMOUNT,TX_FRAUD\n", "no transactions"},
		{"TRANSACTION_ID,TX_UNIX,CUSTOMER_ID,TERMINAL_ID,TX_AMOUNT,TX_FRAUD\n0,x,1,1,1,0\n", "TX_UNIX"},
		{"TRANSACTION_ID,TX_UNIX,CUSTOMER_ID,TERMINAL_ID,TX_AMOUNT,TX_FRAUD\n0,1522540831,1,1,-1,0\n", "TX_AMOUNT"},
		{"TRANSACTION_ID,TX_UNIX,CUSTOMER_ID,TERMINAL_ID,TX_AMOUNT,TX_FRAUD\n0,1522540831,1,1,1,2\n", "TX_FRAUD"},
	} {
		if _, err := ReadFDH(strings.NewReader(bad.in)); err == nil || !strings.Contains(err.Error(), bad.err) {
			t.Errorf("%q: error %v, want %q", bad.in, err, bad.err)
		}
	}
}

func FuzzReadCSV(f *testing.F) {
	f.Add("TX=id,TS=time,AMT=amount.major,F=label", "TX,TS,AMT,F,currency,card.token\nt1,1767225600,12.34,1,EUR,c\n")
	f.Add("", "id,time,amount,currency,card.token,label,label.known_at,group\na,2026-01-01T00:00:00Z,1,EUR,c,chargeback,1767225600,g\n")
	f.Add("A: billing.lat", "id,time,amount,currency,A\na,1767225600,1,EUR,91\n")
	f.Fuzz(func(t *testing.T, mapping, data string) {
		cols, err := ParseMapping(mapping)
		if err != nil {
			return
		}
		ds, err := ReadCSV(strings.NewReader(data), Mapping{Columns: cols, Currency: "EUR"})
		if err != nil {
			return
		}
		for _, tx := range ds.Transactions {
			if tx.Event == nil || tx.Event.ID == "" || tx.Event.Time.IsZero() {
				t.Fatalf("an accepted row without id or time: %+v", tx.Event)
			}
		}
	})
}

func FuzzReadLabels(f *testing.F) {
	f.Add(false, `{"event_id":"a","label":"chargeback","known_at":"2026-01-02T00:00:00Z"}`)
	f.Add(true, "event_id,label,known_at\na,legitimate,1767225600\n")
	f.Fuzz(func(t *testing.T, csvFile bool, data string) {
		name := "l.jsonl"
		if csvFile {
			name = "l.csv"
		}
		ls, err := ReadLabels(name, strings.NewReader(data))
		if err != nil {
			return
		}
		for _, l := range ls {
			if l.EventID == "" {
				t.Fatal("a label without an event id")
			}
		}
	})
}

// TestErrorsHideCardNumbers: no error message repeats an input value that
// looks like a card number, whatever the column.
func TestErrorsHideCardNumbers(t *testing.T) {
	const pan = "4111111111111111"
	check := func(what string, err error) {
		t.Helper()
		if err == nil {
			t.Errorf("%s: no error", what)
		} else if strings.Contains(err.Error(), pan) {
			t.Errorf("%s: the card number is echoed: %v", what, err)
		}
	}
	_, err := ParseMapping(pan + "=id," + "A=" + pan)
	check("mapping", err)
	for _, in := range []string{
		pan + ",time\n",
		"id,time,amount,currency,card.token\na," + pan + ",1,EUR,c\n",
		"id,time,amount,currency,card.token,billing.lat\na,1767225600,1,EUR,c," + pan + "x\n",
		"id,time,amount,currency,card.token,label\na,1767225600,1,EUR,c," + pan + "\n",
		"id,time,amount,currency,card.token\na,1767225600," + pan + "5,EUR,c\n",
	} {
		_, err := ReadCSV(strings.NewReader(in), Mapping{})
		check(in, err)
	}
	_, err = ReadCSV(strings.NewReader("id,time,A,currency,card.token\na,1767225600,"+pan+"x,EUR,c\n"), Mapping{Columns: map[string]string{"A": "amount.major"}})
	check("amount.major", err)
	_, err = ReadLabels("l.csv", strings.NewReader("event_id,label\na,"+pan+"\n"))
	check("labels csv", err)
	_, err = ReadLabels("l.csv", strings.NewReader("event_id,"+pan+"\n"))
	check("labels header", err)
	_, err = ReadFDH(strings.NewReader("TRANSACTION_ID,TX_UNIX,CUSTOMER_ID,TERMINAL_ID,TX_AMOUNT,TX_FRAUD\n0," + pan + "x,1,1,1,0\n"))
	check("fdh", err)
}
