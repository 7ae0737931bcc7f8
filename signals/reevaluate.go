package signals

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/vigil-fraud/vigil/engine/event"
	"github.com/vigil-fraud/vigil/features"
	"github.com/vigil-fraud/vigil/rules"
)

// UnstoredFields are the event fields rules can read that signals do not
// store: a candidate rule reading them sees them missing ("" or the zero
// time) when re-evaluated. device.ip is stored only as a keyed hash.
var UnstoredFields = []string{
	"account.created", "device.ip", "device.user_agent", "device.language",
	"device.timezone", "device.screen", "device.platform",
}

// StoredFeatures lists the feature names present in stored signals of the
// window (the features the live rulesets read), number and string ones.
func StoredFeatures(ctx context.Context, conn driver.Conn, db string, opt TuneOptions) (nums, strs []string, err error) {
	where := tuneWhere(opt, RulesetAll)
	for _, q := range []struct {
		col string
		dst *[]string
	}{{"feature_names", &nums}, {"feature_str_names", &strs}} {
		rows, err := conn.Query(ctx, fmt.Sprintf("SELECT DISTINCT arrayJoin(%s) AS f FROM %s.%s WHERE %s ORDER BY f", q.col, quoteIdent(db), SignalsTable, where))
		if err != nil {
			return nil, nil, fmt.Errorf("tune: stored features: %w", err)
		}
		for rows.Next() {
			var f string
			if err := rows.Scan(&f); err != nil {
				rows.Close()
				return nil, nil, fmt.Errorf("tune: stored features: %w", err)
			}
			*q.dst = append(*q.dst, f)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, nil, fmt.Errorf("tune: stored features: %w", err)
		}
	}
	return nums, strs, nil
}

// CandidateSchema rebuilds a feature schema for re-evaluation: the types of
// the feature definitions (base; may be nil), plus every stored feature
// they do not define: a string when stored as a string (also if older rows
// list it among the numbers, as NaN), else a number.
func CandidateSchema(base *features.Schema, storedNums, storedStrs []string) (*features.Schema, error) {
	var fields []features.Field
	seen := map[string]bool{}
	if base != nil {
		for _, f := range base.Fields {
			fields = append(fields, f)
			seen[f.Name] = true
		}
	}
	for _, n := range storedStrs {
		if !seen[n] {
			fields = append(fields, features.Field{Name: n, Type: features.String})
			seen[n] = true
		}
	}
	for _, n := range storedNums {
		if !seen[n] {
			fields = append(fields, features.Field{Name: n, Type: features.Number})
			seen[n] = true
		}
	}
	return features.NewSchema(fields)
}

// candidateWarnings lists, per rule, what it reads that was not stored.
func candidateWarnings(set *rules.Set, stored map[string]bool) []string {
	var out []string
	for _, r := range set.Rules {
		var feats, fields []string
		for _, f := range r.Features {
			if !stored[f] {
				feats = append(feats, f)
			}
		}
		for _, f := range r.Fields {
			if slices.Contains(UnstoredFields, f) || strings.HasPrefix(f, "attributes.") {
				fields = append(fields, f)
			}
		}
		if len(feats) > 0 {
			// Not stored, or stored with no value on any row in the window
			// (a string feature is stored only when it has one).
			out = append(out, fmt.Sprintf("rule %s reads %s, with a value on no stored row (not read by the recorded rules, or missing on every row): evaluated as missing",
				r.Name, strings.Join(feats, ", ")))
		}
		if len(fields) > 0 {
			out = append(out, fmt.Sprintf("rule %s reads %s, not stored in signals: evaluated as missing", r.Name, strings.Join(fields, ", ")))
		}
	}
	return out
}

// TuneCandidate re-evaluates a candidate ruleset (compiled against
// CandidateSchema) over the stored signals of the window: each stored
// event is rebuilt from its columns and its stored feature values, the
// rules run, and the report counts the candidate's scores, hits and
// decisions against the labels.
func TuneCandidate(ctx context.Context, conn driver.Conn, db string, set *rules.Set, opt TuneOptions) (*TuneReport, error) {
	ruleset, err := resolveRuleset(ctx, conn, db, opt)
	if err != nil {
		return nil, err
	}
	tables, err := readTables(ctx, conn, db)
	if err != nil {
		return nil, fmt.Errorf("tune: %w", err)
	}
	rep := &TuneReport{Since: opt.Since, Until: opt.Until, Ruleset: ruleset, Candidate: set.VersionString(),
		StepUpAt: set.StepUpAt, PauseAt: set.PauseAt, Outcomes: map[string]uint64{}}
	q := fmt.Sprintf(`SELECT event_id, toUnixTimestamp(event_time), amount_minor, currency, channel, card_token, card_bin, card_country,
  account_id, email_hash, merchant_id, mcc, merchant_country, device_id, device_fingerprint, billing_country, shipping_country,
  feature_names, feature_values, feature_str_names, feature_str_values, label
FROM (SELECT * FROM %s.%s FINAL WHERE %s)
ANY LEFT JOIN %s USING event_id`,
		quoteIdent(db), SignalsTable, tuneWhere(opt, ruleset), latestLabelSQL(db, tables.labelMs()))
	rows, err := conn.Query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("tune: read signals: %w", err)
	}
	defer rows.Close()
	schema := set.Schema
	vec := features.NewVector(schema)
	var (
		env      rules.Env
		eval     rules.Evaluator
		res      rules.Result
		scores   [101]uint64
		fraudAt  [101]uint64
		ruleRows = map[[2]string]*RuleRow{}
		stored   = map[string]bool{}
	)
	for rows.Next() {
		var (
			ev                      event.Event
			unix                    uint32
			fnames, fsnames, fsvals []string
			fvals                   []float64
			label                   string
		)
		if err := rows.Scan(&ev.ID, &unix, &ev.Amount, &ev.Currency, &ev.Channel, &ev.Card.Token, &ev.Card.BIN, &ev.Card.Country,
			&ev.Account.ID, &ev.Account.EmailHash, &ev.Merchant.ID, &ev.Merchant.MCC, &ev.Merchant.Country,
			&ev.Device.ID, &ev.Device.Fingerprint, &ev.Billing.Country, &ev.Shipping.Country,
			&fnames, &fvals, &fsnames, &fsvals, &label); err != nil {
			return nil, fmt.Errorf("tune: read signals: %w", err)
		}
		ev.Time = time.Unix(int64(unix), 0).UTC()
		vec.Reset()
		for i, n := range fnames {
			stored[n] = true
			slot, ok := schema.Lookup(n)
			if !ok || i >= len(fvals) || math.IsNaN(fvals[i]) {
				continue
			}
			switch schema.Fields[slot].Type {
			case features.Number:
				vec.SetNum(slot, fvals[i])
			case features.Bool:
				vec.SetBool(slot, fvals[i] != 0)
			}
		}
		for i, n := range fsnames {
			stored[n] = true
			if slot, ok := schema.Lookup(n); ok && i < len(fsvals) && schema.Fields[slot].Type == features.String {
				vec.SetStr(slot, fsvals[i])
			}
		}
		env.Set(&ev, vec)
		eval.Evaluate(set, &env, &res)
		fraud := label == LabelChargeback || label == LabelConfirmedFraud
		rep.Decisions++
		rep.Outcomes[string(res.Decision)]++
		if label != "" {
			rep.Labelled++
		}
		score := min(max(res.Score, 0), 100)
		scores[score]++
		if fraud {
			rep.FraudTotal++
			fraudAt[score]++
		}
		count := func(hits []rules.Hit, kind string) {
			for _, h := range hits {
				k := [2]string{h.Rule, kind}
				rr := ruleRows[k]
				if rr == nil {
					rr = &RuleRow{Rule: h.Rule, Kind: kind}
					ruleRows[k] = rr
				}
				rr.Hits++
				if label != "" {
					rr.LabelledHits++
				}
				if fraud {
					rr.FraudHits++
				}
			}
		}
		count(res.Hits, "active")
		count(res.Ignored, "shadow")
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("tune: read signals: %w", err)
	}
	rep.Thresholds = thresholdsFrom(scores[:], fraudAt[:])
	for _, rr := range ruleRows {
		rr.FraudTotal, rr.Decisions = rep.FraudTotal, rep.Decisions
		rep.Rules = append(rep.Rules, *rr)
	}
	sort.Slice(rep.Rules, func(i, j int) bool {
		a, b := rep.Rules[i], rep.Rules[j]
		return a.Kind < b.Kind || a.Kind == b.Kind && a.Rule < b.Rule
	})
	if rep.Decisions > 0 {
		rep.Warnings = candidateWarnings(set, stored)
	}
	return rep, nil
}

// thresholdsFrom builds the threshold table from a score histogram.
func thresholdsFrom(scores, fraudAt []uint64) []ThresholdRow {
	out := emptyThresholds()
	var total, fraud uint64
	for s := range scores {
		total += scores[s]
		fraud += fraudAt[s]
	}
	var flagged, caught uint64 // suffix sums: score >= t
	for t := 100; t >= 0; t-- {
		flagged += scores[t]
		caught += fraudAt[t]
		out[t] = ThresholdRow{Threshold: t, Decisions: total, Flagged: flagged, FraudTotal: fraud, FraudCaught: caught}
	}
	return out
}
