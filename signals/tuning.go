package signals

import (
	"context"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Ruleset selectors of TuneOptions.Ruleset besides a version string.
const (
	RulesetLatest = "latest" // the ruleset of the most recent signal in the window
	RulesetAll    = "all"    // every ruleset
)

// TuneOptions select the signals a tuning report covers.
type TuneOptions struct {
	Since time.Time // event time >= Since
	Until time.Time // event time < Until
	// Ruleset is RulesetLatest (the default when empty), RulesetAll or a
	// ruleset version (label@hash).
	Ruleset string
}

// ThresholdRow is one candidate threshold: the decisions with score >=
// Threshold would be stepped up (or paused, for a pause threshold).
type ThresholdRow struct {
	Threshold   int    `json:"threshold"`
	Decisions   uint64 `json:"decisions"`
	Flagged     uint64 `json:"flagged"`      // score >= threshold
	FraudTotal  uint64 `json:"fraud_total"`  // labelled fraud among the decisions
	FraudCaught uint64 `json:"fraud_caught"` // labelled fraud with score >= threshold
}

// FlaggedShare is Flagged / Decisions.
func (r ThresholdRow) FlaggedShare() float64 { return ratio(r.Flagged, r.Decisions) }

// Recall is the share of labelled fraud caught: FraudCaught / FraudTotal.
func (r ThresholdRow) Recall() float64 { return ratio(r.FraudCaught, r.FraudTotal) }

// Precision is the share of flagged decisions that were fraud.
func (r ThresholdRow) Precision() float64 { return ratio(r.FraudCaught, r.Flagged) }

// RuleRow is one rule's hits against labels. Kind is "active" (counting
// hits) or "shadow" (shadow and out-of-rollout hits).
type RuleRow struct {
	Rule         string `json:"rule"`
	Kind         string `json:"kind"`
	Hits         uint64 `json:"hits"`
	LabelledHits uint64 `json:"labelled_hits"`
	FraudHits    uint64 `json:"fraud_hits"`
	FraudTotal   uint64 `json:"fraud_total"`
	Decisions    uint64 `json:"decisions"`
}

// Precision is FraudHits / Hits (an unlabelled hit counts as not fraud).
func (r RuleRow) Precision() float64 { return ratio(r.FraudHits, r.Hits) }

// Recall is FraudHits / FraudTotal.
func (r RuleRow) Recall() float64 { return ratio(r.FraudHits, r.FraudTotal) }

// HitRate is Hits / Decisions.
func (r RuleRow) HitRate() float64 { return ratio(r.Hits, r.Decisions) }

func ratio(a, b uint64) float64 {
	if b == 0 {
		return math.NaN()
	}
	return float64(a) / float64(b)
}

// TuneReport is what `vigil tune` prints.
type TuneReport struct {
	Since      time.Time         `json:"since"`
	Until      time.Time         `json:"until"`
	Ruleset    string            `json:"ruleset"`             // the ruleset covered, or "all"
	Candidate  string            `json:"candidate,omitempty"` // the candidate ruleset re-evaluated, if any
	Decisions  uint64            `json:"decisions"`
	Labelled   uint64            `json:"labelled"`
	FraudTotal uint64            `json:"fraud_total"`
	StepUpAt   int               `json:"step_up_at,omitempty"` // the candidate's thresholds (re-evaluation only)
	PauseAt    int               `json:"pause_at,omitempty"`
	Outcomes   map[string]uint64 `json:"outcomes"`   // decisions by outcome (re-evaluation: the candidate's)
	Thresholds []ThresholdRow    `json:"thresholds"` // 0..100
	Rules      []RuleRow         `json:"rules"`
	Warnings   []string          `json:"warnings,omitempty"`
}

// tuneWhere is the SQL filter of opt (ruleset resolved).
func tuneWhere(opt TuneOptions, ruleset string) string {
	w := fmt.Sprintf("event_time >= toDateTime(%d) AND event_time < toDateTime(%d)", opt.Since.Unix(), opt.Until.Unix())
	if ruleset != RulesetAll {
		w += " AND ruleset = " + quoteString(ruleset)
	}
	return w
}

// resolveRuleset turns RulesetLatest into the version of the most recent
// signal in the window.
func resolveRuleset(ctx context.Context, conn driver.Conn, db string, opt TuneOptions) (string, error) {
	rs := opt.Ruleset
	if rs == "" {
		rs = RulesetLatest
	}
	if rs != RulesetLatest {
		return rs, nil
	}
	var latest string
	var n uint64
	q := fmt.Sprintf("SELECT argMax(ruleset, decided_at), count() FROM %s.%s WHERE %s", quoteIdent(db), SignalsTable, tuneWhere(opt, RulesetAll))
	if err := conn.QueryRow(ctx, q).Scan(&latest, &n); err != nil {
		return "", fmt.Errorf("tune: latest ruleset: %w", err)
	}
	if n == 0 {
		return RulesetAll, nil
	}
	return latest, nil
}

// Tune computes the threshold-tuning table and per-rule precision and
// recall of the stored decisions (the live rulesets) from ClickHouse, with
// the same SQL as the analyst views.
func Tune(ctx context.Context, conn driver.Conn, db string, opt TuneOptions) (*TuneReport, error) {
	ruleset, err := resolveRuleset(ctx, conn, db, opt)
	if err != nil {
		return nil, err
	}
	tables, err := readTables(ctx, conn, db)
	if err != nil {
		return nil, fmt.Errorf("tune: %w", err)
	}
	rep := &TuneReport{Since: opt.Since, Until: opt.Until, Ruleset: ruleset, Outcomes: map[string]uint64{}}
	src := labelledSQL(db, tuneWhere(opt, ruleset), tables.labelMs())
	rows, err := conn.Query(ctx, "SELECT decision, count(), toUInt64(sum(is_labelled)), toUInt64(sum(is_fraud)) FROM "+src+" GROUP BY decision")
	if err != nil {
		return nil, fmt.Errorf("tune: decisions: %w", err)
	}
	for rows.Next() {
		var d string
		var n, labelled, fraud uint64
		if err := rows.Scan(&d, &n, &labelled, &fraud); err != nil {
			rows.Close()
			return nil, fmt.Errorf("tune: decisions: %w", err)
		}
		rep.Outcomes[d] += n
		rep.Decisions += n
		rep.Labelled += labelled
		rep.FraudTotal += fraud
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("tune: decisions: %w", err)
	}
	rows, err = conn.Query(ctx, thresholdSQL(src, "")+" ORDER BY threshold")
	if err != nil {
		return nil, fmt.Errorf("tune: thresholds: %w", err)
	}
	for rows.Next() {
		var t ThresholdRow
		var th uint8
		if err := rows.Scan(&th, &t.Decisions, &t.Flagged, &t.FraudTotal, &t.FraudCaught); err != nil {
			rows.Close()
			return nil, fmt.Errorf("tune: thresholds: %w", err)
		}
		t.Threshold = int(th)
		rep.Thresholds = append(rep.Thresholds, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("tune: thresholds: %w", err)
	}
	if len(rep.Thresholds) == 0 {
		rep.Thresholds = emptyThresholds()
	}
	rows, err = conn.Query(ctx, rulePrecisionSQL(src, "")+" ORDER BY kind, rule")
	if err != nil {
		return nil, fmt.Errorf("tune: rules: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var r RuleRow
		if err := rows.Scan(&r.Rule, &r.Kind, &r.Hits, &r.LabelledHits, &r.FraudHits, &r.FraudTotal, &r.Decisions); err != nil {
			return nil, fmt.Errorf("tune: rules: %w", err)
		}
		rep.Rules = append(rep.Rules, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("tune: rules: %w", err)
	}
	return rep, nil
}

func emptyThresholds() []ThresholdRow {
	out := make([]ThresholdRow, 101)
	for i := range out {
		out[i].Threshold = i
	}
	return out
}

// WriteText prints the report for analysts: the threshold table every
// step points, then the rules.
func (r *TuneReport) WriteText(w io.Writer, step int) error {
	if step <= 0 {
		step = 5
	}
	what := "live decisions, ruleset " + r.Ruleset
	if r.Candidate != "" {
		what = fmt.Sprintf("candidate ruleset %s (step_up_at %d, pause_at %d) re-evaluated over stored signals of ruleset %s", r.Candidate, r.StepUpAt, r.PauseAt, r.Ruleset)
	}
	fmt.Fprintf(w, "vigil tune: %s\nwindow: %s .. %s (event time, UTC)\n", what, r.Since.UTC().Format(time.RFC3339), r.Until.UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "decisions: %d (approve %d, step_up %d, pause %d); labelled %d; labelled fraud %d\n",
		r.Decisions, r.Outcomes["approve"], r.Outcomes["step_up"], r.Outcomes["pause"], r.Labelled, r.FraudTotal)
	for _, warn := range r.Warnings {
		fmt.Fprintf(w, "warning: %s\n", warn)
	}
	fmt.Fprintf(w, "\nThreshold tuning: decisions with score >= threshold would be stepped up (or paused, for a pause threshold).\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "threshold\tflagged\tflagged %\tfraud caught\tof fraud %\tprecision %\t")
	for _, t := range r.Thresholds {
		if t.Threshold%step != 0 {
			continue
		}
		fmt.Fprintf(tw, "%d\t%d\t%s\t%d\t%s\t%s\t\n", t.Threshold, t.Flagged, pct(t.FlaggedShare()), t.FraudCaught, pct(t.Recall()), pct(t.Precision()))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nRules: precision = fraud hits / hits (unlabelled counts as not fraud), recall = fraud hits / labelled fraud.\n")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "rule\tkind\thits\thit rate %\tlabelled\tfraud hits\tprecision %\trecall %")
	rules := slices.Clone(r.Rules)
	slices.SortStableFunc(rules, func(a, b RuleRow) int {
		if c := strings.Compare(a.Kind, b.Kind); c != 0 {
			return c
		}
		return strings.Compare(a.Rule, b.Rule)
	})
	for _, x := range rules {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%d\t%s\t%s\n", x.Rule, x.Kind, x.Hits, pct(x.HitRate()), x.LabelledHits, x.FraudHits, pct(x.Precision()), pct(x.Recall()))
	}
	if len(rules) == 0 {
		fmt.Fprintln(tw, "(no rule hits)")
	}
	return tw.Flush()
}

func pct(f float64) string {
	if math.IsNaN(f) {
		return "-"
	}
	return fmt.Sprintf("%.1f", 100*f)
}
