package replay

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-fraud/vigil/engine/event"
)

// Mapping tells which event field each CSV column holds. Targets are the
// event's JSON paths (id, time, amount, currency, card.token,
// merchant.mcc, billing.lat, attributes.NAME, ...) and:
//
//   - amount.major: the amount in major units (12.34), converted to minor
//     units with the currency's exponent;
//   - label: the transaction's outcome (see ParseLabel; empty: none);
//   - label.known_at: when the outcome became known;
//   - group: a name to break the report down by (never read by rules);
//   - "-": the column is ignored.
//
// Times (time, account.created, label.known_at) are RFC 3339 or Unix
// seconds. A column the mapping does not name is read as the path its
// header names, which must then be a valid target.
type Mapping struct {
	Columns map[string]string
	// Currency is the currency of rows without a currency column.
	Currency string
}

// csvTop are the event's top-level fields a column may name; csvObjects
// its objects' fields.
var (
	csvTop     = []string{"id", "time", "amount", "currency", "channel"}
	csvObjects = map[string][]string{
		"card":     {"token", "bin", "country"},
		"account":  {"id", "created", "email_hash"},
		"merchant": {"id", "mcc", "country"},
		"device":   {"id", "fingerprint", "user_agent", "ip", "language", "timezone", "screen", "platform"},
		"billing":  {"country", "lat", "lon"},
		"shipping": {"country", "lat", "lon"},
	}
	csvSpecial = []string{"amount.major", "label", "label.known_at", "group", "-"}
)

// validTarget reports whether a mapping target is known.
func validTarget(t string) bool {
	if slices.Contains(csvTop, t) || slices.Contains(csvSpecial, t) {
		return true
	}
	obj, field, ok := strings.Cut(t, ".")
	if !ok {
		return false
	}
	if obj == "attributes" {
		return field != "" && !strings.ContainsAny(field, ". ")
	}
	return slices.Contains(csvObjects[obj], field)
}

// ParseMapping parses COLUMN=target pairs separated by commas or new
// lines; in a file, # starts a comment and COLUMN: target is accepted too.
func ParseMapping(s string) (map[string]string, error) {
	m := map[string]string{}
	var errs []error
	for n, line := range strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == ',' }) {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		col, target, ok := strings.Cut(line, "=")
		if !ok {
			col, target, ok = strings.Cut(line, ":")
		}
		col, target = strings.TrimSpace(col), strings.TrimSpace(target)
		switch {
		case !ok || col == "" || target == "":
			errs = append(errs, fmt.Errorf("mapping entry %d: want COLUMN=field, got %s", n+1, show(line)))
		case !validTarget(target):
			errs = append(errs, fmt.Errorf("mapping entry %d: column %s: unknown field %s", n+1, show(col), show(target)))
		case m[col] != "":
			errs = append(errs, fmt.Errorf("mapping entry %d: column %s mapped twice", n+1, show(col)))
		default:
			m[col] = target
		}
	}
	return m, errors.Join(errs...)
}

// ReadCSV reads transactions (and their labels, from label columns) from
// CSV with a header row. Each row becomes an event checked exactly as the
// scoring API checks one (a value that looks like a card number is
// refused). Rows are converted in parallel.
func ReadCSV(r io.Reader, m Mapping) (*Dataset, error) {
	cr := csv.NewReader(r)
	cr.ReuseRecord = false
	head, err := cr.Read()
	if err == io.EOF {
		return &Dataset{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("csv header: %w", err)
	}
	targets := make([]string, len(head))
	seen := map[string]string{}
	var errs []error
	for i, h := range head {
		h = strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))
		t, ok := m.Columns[h]
		if !ok {
			t = h
		}
		if !validTarget(t) {
			errs = append(errs, fmt.Errorf("csv column %s: not an event field; map it (COLUMN=field, or COLUMN=- to skip it)", show(h)))
			continue
		}
		if prev, dup := seen[t]; dup && t != "-" {
			errs = append(errs, fmt.Errorf("csv columns %s and %s both give %s", show(prev), show(h), t))
		}
		seen[t] = h
		targets[i] = t
	}
	if len(errs) > 0 {
		if slices.Contains(head, "TRANSACTION_ID") && slices.Contains(head, "TX_AMOUNT") {
			errs = append([]error{errors.New("this looks like the Fraud Detection Handbook layout: use --format fdh")}, errs...)
		}
		return nil, errors.Join(errs...)
	}
	if _, ok := seen["time"]; !ok {
		return nil, errors.New("csv: no column gives time")
	}
	_, minor := seen["amount"]
	if _, major := seen["amount.major"]; !minor && !major {
		return nil, errors.New("csv: no column gives amount (or amount.major)")
	}
	rows, err := readRows(cr, "csv")
	if err != nil {
		return nil, err
	}
	ds := &Dataset{Transactions: make([]Transaction, len(rows))}
	labels := make([]*Label, len(rows))
	now := time.Now()
	err = parallel(len(rows), func(i int) error {
		tx, l, err := csvRow(targets, rows[i], m.Currency, now)
		if err != nil {
			return fmt.Errorf("csv line %d: %w", i+2, err)
		}
		ds.Transactions[i], labels[i] = tx, l
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, l := range labels {
		if l != nil {
			ds.Labels = append(ds.Labels, *l)
		}
	}
	return ds, nil
}

// csvRow builds one transaction (and its label, if any) from a row.
func csvRow(targets, row []string, currency string, now time.Time) (Transaction, *Label, error) {
	obj := map[string]any{}
	var tx Transaction
	var label, knownAt string
	set := func(path string, v any) {
		top, field, ok := strings.Cut(path, ".")
		if !ok {
			obj[top] = v
			return
		}
		sub, _ := obj[top].(map[string]any)
		if sub == nil {
			sub = map[string]any{}
			obj[top] = sub
		}
		sub[field] = v
	}
	var major string
	for i, t := range targets {
		if i >= len(row) {
			break
		}
		v := row[i]
		if v == "" || t == "-" {
			continue
		}
		switch t {
		case "label":
			label = v
		case "label.known_at":
			knownAt = v
		case "group":
			tx.Group = v
		case "amount.major":
			major = v
		case "amount":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return tx, nil, fmt.Errorf("amount: %s is not a whole number of minor units (map a decimal column to amount.major)", show(v))
			}
			set(t, n)
		case "time", "account.created":
			ts, err := parseTime(v)
			if err != nil {
				return tx, nil, fmt.Errorf("%s: %w", t, err)
			}
			set(t, ts.Format(time.RFC3339Nano))
		case "billing.lat", "billing.lon", "shipping.lat", "shipping.lon":
			x, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return tx, nil, fmt.Errorf("%s: %s is not a number", t, show(v))
			}
			set(t, x)
		default:
			set(t, v)
		}
	}
	if _, ok := obj["currency"]; !ok && currency != "" {
		obj["currency"] = currency
	}
	if major != "" {
		cur, _ := obj["currency"].(string)
		exp, ok := event.CurrencyExponent(strings.ToUpper(cur))
		if !ok && cur == "" {
			return tx, nil, errors.New("amount.major: no currency to read it in: map a currency column or give the file's currency (--currency EUR)")
		}
		if !ok {
			return tx, nil, fmt.Errorf("amount.major: unknown currency %s", show(cur))
		}
		x, err := strconv.ParseFloat(major, 64)
		if err != nil || x < 0 || x > 1e15 {
			return tx, nil, fmt.Errorf("amount.major: %s is not an amount", show(major))
		}
		obj["amount"] = int64(math.Round(x * math.Pow10(exp)))
	}
	b, err := json.Marshal(obj)
	if err != nil {
		return tx, nil, err
	}
	ev, err := decodeEvent(b, now)
	if err != nil {
		return tx, nil, err
	}
	tx.Event = ev
	if label == "" {
		if knownAt != "" {
			return tx, nil, errors.New("label.known_at without a label")
		}
		return tx, nil, nil
	}
	fraud, err := ParseLabel(label)
	if err != nil {
		return tx, nil, err
	}
	l := &Label{EventID: ev.ID, Fraud: fraud}
	if knownAt != "" {
		if l.KnownAt, err = parseTime(knownAt); err != nil {
			return tx, nil, fmt.Errorf("label.known_at: %w", err)
		}
	}
	return tx, l, nil
}

// parseTime reads RFC 3339 or Unix seconds.
func parseTime(s string) (time.Time, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n <= 0 || n > math.MaxUint32 {
			return time.Time{}, fmt.Errorf("%s is out of range", show(s))
		}
		return time.Unix(n, 0).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: want RFC 3339 or Unix seconds", show(s))
	}
	return t, nil
}

// readRows reads the records after the header; what names the format in
// errors. A record longer than MaxLine is refused.
func readRows(cr *csv.Reader, what string) ([][]string, error) {
	var rows [][]string
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return rows, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		n := 0
		for _, f := range rec {
			n += len(f)
		}
		if n > MaxLine {
			return nil, fmt.Errorf("%s line %d: longer than %d bytes", what, len(rows)+2, MaxLine)
		}
		rows = append(rows, rec)
	}
}
