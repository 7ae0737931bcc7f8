package loadgen

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Record is one event of a replayed file: its JSON, as vigil receives it,
// and what orders and routes it.
type Record struct {
	Line int       // line of the file (1-based; the header is line 1 of a CSV file)
	ID   string    // the event's id, if it has one
	Key  string    // the message key: card.token, else account.id
	Time time.Time // the event's time; zero when it has none
	JSON []byte
}

// MaxLine is the longest JSONL line (or CSV record) read.
const MaxLine = 1 << 20

// ReadFile reads a replay file by its extension: .csv is CSV, anything
// else JSONL.
func ReadFile(name string, r io.Reader) ([]Record, error) {
	if strings.EqualFold(filepath.Ext(name), ".csv") {
		return ReadCSV(r)
	}
	return ReadJSONL(r)
}

// ReadJSONL reads one JSON event object per line. Blank lines are
// skipped. The events are not validated (vigil does that, and refuses
// what is invalid), but every line must be a JSON object.
func ReadJSONL(r io.Reader) ([]Record, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), MaxLine)
	var out []Record
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		rec, err := jsonRecord(b)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		rec.Line = line
		out = append(out, rec)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("line %d: %w", line+1, err)
	}
	return out, nil
}

// routing are the fields a replay reads from an event, leniently.
type routing struct {
	ID   any `json:"id"`
	Time any `json:"time"`
	Card struct {
		Token any `json:"token"`
	} `json:"card"`
	Account struct {
		ID any `json:"id"`
	} `json:"account"`
}

func jsonRecord(b []byte) (Record, error) {
	if b[0] != '{' || !json.Valid(b) {
		return Record{}, errors.New("not a JSON object")
	}
	var rt routing
	_ = json.Unmarshal(b, &rt) // wrong types leave fields empty: vigil will say what is wrong
	rec := Record{JSON: slices.Clone(b), ID: str(rt.ID)}
	if s := str(rt.Time); s != "" {
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			rec.Time = t
		}
	}
	rec.Key = str(rt.Card.Token)
	if rec.Key == "" {
		rec.Key = str(rt.Account.ID)
	}
	return rec, nil
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// csvObjects are the event's objects whose fields CSV columns may name.
var csvObjects = map[string]bool{"card": true, "account": true, "merchant": true, "device": true, "billing": true, "shipping": true, "attributes": true}

// csvTop are the event's top-level scalar fields.
var csvTop = map[string]bool{"id": true, "time": true, "amount": true, "currency": true, "channel": true}

// ReadCSV reads events from CSV with a header row naming each column by
// its JSON path: id, time, amount, currency, channel, card.token,
// account.id, merchant.mcc, billing.lat, attributes.<key>... Empty cells
// are left out. amount, lat and lon are written as numbers when they
// parse as such; every other value (attributes included) as a string.
func ReadCSV(r io.Reader) ([]Record, error) {
	cr := csv.NewReader(bufio.NewReaderSize(r, 64<<10))
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty CSV: want a header row of field paths")
		}
		return nil, fmt.Errorf("header: %w", err)
	}
	cols := make([][2]string, len(header))
	seen := map[string]bool{}
	for i, h := range header {
		h = strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))
		obj, field, nested := strings.Cut(h, ".")
		switch {
		case !nested && csvTop[h]:
		case nested && csvObjects[obj] && field != "" && (obj == "attributes" || !strings.Contains(field, ".")):
		default:
			return nil, fmt.Errorf("header column %d: %q is not an event field path (id, time, amount, currency, channel, card.token, account.id, attributes.KEY, ...)", i+1, h)
		}
		if seen[h] {
			return nil, fmt.Errorf("header column %d: %q appears twice", i+1, h)
		}
		seen[h] = true
		cols[i] = [2]string{obj, field}
	}
	var out []Record
	for {
		row, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil { // a *csv.ParseError names its line
			return nil, err
		}
		line, _ := cr.FieldPos(0)
		rec, err := csvRecord(cols, row)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		rec.Line = line
		out = append(out, rec)
	}
}

func csvRecord(cols [][2]string, row []string) (Record, error) {
	if len(row) != len(cols) {
		return Record{}, fmt.Errorf("%d fields, the header has %d", len(row), len(cols))
	}
	obj := map[string]any{}
	var rec Record
	for i, v := range row {
		if v == "" {
			continue
		}
		o, f := cols[i][0], cols[i][1]
		if f == "" { // a top-level field
			switch o {
			case "amount":
				obj[o] = number(v, true)
			default:
				obj[o] = v
			}
			switch o {
			case "id":
				rec.ID = v
			case "time":
				if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
					rec.Time = t
				}
			}
			continue
		}
		sub, _ := obj[o].(map[string]any)
		if sub == nil {
			sub = map[string]any{}
			obj[o] = sub
		}
		switch {
		case (o == "billing" || o == "shipping") && (f == "lat" || f == "lon"):
			sub[f] = number(v, false)
		default:
			sub[f] = v
		}
		switch {
		case o == "card" && f == "token":
			rec.Key = v
		case o == "account" && f == "id" && rec.Key == "":
			rec.Key = v
		}
	}
	b, err := json.Marshal(obj)
	if err != nil {
		return Record{}, err
	}
	rec.JSON = b
	return rec, nil
}

// number keeps v as a JSON number when it is one (an integer when integer
// is set), else as a string.
func number(v string, integer bool) any {
	v = strings.TrimSpace(v)
	if integer {
		if _, err := strconv.ParseInt(v, 10, 64); err == nil {
			return json.Number(v)
		}
		return v
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil && !strings.ContainsAny(v, "xXpP_") && f == f {
		if b, err := json.Marshal(f); err == nil {
			return json.RawMessage(b)
		}
	}
	return v
}

// SortByTime orders records by event time, keeping the file order among
// equal times. A record without a time keeps the time of the record
// before it, so it stays where it is relative to its neighbours.
func SortByTime(recs []Record) {
	var prev time.Time
	keys := make([]time.Time, len(recs))
	for i := range recs {
		if !recs[i].Time.IsZero() {
			prev = recs[i].Time
		}
		keys[i] = prev
	}
	idx := make([]int, len(recs))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return keys[a].Compare(keys[b]) })
	sorted := make([]Record, len(recs))
	for i, j := range idx {
		sorted[i] = recs[j]
	}
	copy(recs, sorted)
}
