package signals

import (
	"fmt"
	"strings"
)

// Label values. Fraud labels count as fraud in precision, recall and
// threshold tuning; the others confirm a legitimate transaction. An event
// without a label counts as not fraud (docs/signals.md).
const (
	LabelChargeback     = "chargeback"
	LabelConfirmedFraud = "confirmed_fraud"
	LabelFalsePositive  = "false_positive"
	LabelLegitimate     = "legitimate"
)

// Labels lists the accepted label values.
var Labels = []string{LabelChargeback, LabelConfirmedFraud, LabelFalsePositive, LabelLegitimate}

// fraudLabels is the SQL list of labels that mean fraud.
const fraudLabels = "('" + LabelChargeback + "', '" + LabelConfirmedFraud + "')"

// view is one analyst view: a name and its SELECT, for a labels table
// with labelled_at_ms or without (labelMs).
type view struct {
	name, help string
	sql        func(db string, labelMs bool) string
}

// latestLabelSQL is each labelled event's latest label: the one with the
// latest labelled_at, to the millisecond (where labelled_at holds whole
// seconds, labelled_at_ms decides between labels of the same second; 0 in
// rows stored before the column was added).
func latestLabelSQL(db string, labelMs bool) string {
	by := "labelled_at"
	if labelMs {
		by = "(labelled_at, " + labelMsColumn + ")"
	}
	return fmt.Sprintf("(SELECT event_id, argMax(label, %s) AS label FROM %s.%s GROUP BY event_id)", by, quoteIdent(db), LabelsTable)
}

// labelledSQL is the deduplicated signals (FINAL) of the rows matching
// where, each with its latest label: the source of every analyst query.
func labelledSQL(db, where string, labelMs bool) string {
	if where == "" {
		where = "1"
	}
	return fmt.Sprintf(`(SELECT event_id, event_time, decided_at, toDate(event_time) AS day, ruleset, decision, score, hits, shadow_hits, latency_us, source,
    label, label IN %s AS is_fraud, label != '' AS is_labelled
  FROM (SELECT event_id, event_time, decided_at, ruleset, decision, score, hits, shadow_hits, latency_us, source
        FROM %s.%s FINAL WHERE %s)
  ANY LEFT JOIN %s USING event_id)`,
		fraudLabels, quoteIdent(db), SignalsTable, where, latestLabelSQL(db, labelMs))
}

// thresholdSQL computes, for each candidate threshold 0..100, how many
// decisions have score >= threshold (would be stepped up or paused with
// that threshold), and how many labelled frauds they include. keys are
// extra grouping columns of src ("day, ruleset" or "").
func thresholdSQL(src, keys string) string {
	k := ""
	if keys != "" {
		k = keys + ", "
	}
	return fmt.Sprintf(`SELECT %[1]sthreshold, sum(n) AS decisions, sumIf(n, score >= threshold) AS flagged,
  sum(fraud) AS fraud_total, sumIf(fraud, score >= threshold) AS fraud_caught
FROM (SELECT %[1]sscore, count() AS n, toUInt64(sum(is_fraud)) AS fraud FROM %[2]s GROUP BY %[1]sscore)
ARRAY JOIN range(101) AS threshold
GROUP BY %[1]sthreshold`, k, src)
}

// rulePrecisionSQL computes per rule and kind (active or shadow hits) the
// hits, labelled hits and fraud hits, with the total of labelled fraud for
// recall.
func rulePrecisionSQL(src, keys string) string {
	k, using := "", ""
	if keys != "" {
		k = keys + ", "
		using = " USING " + keys
	}
	per := func(kind, arr string) string {
		return fmt.Sprintf(`SELECT %[1]srule, '%[2]s' AS kind, count() AS rule_hits, toUInt64(sum(is_labelled)) AS labelled_hits, toUInt64(sum(is_fraud)) AS fraud_hits
    FROM %[3]s ARRAY JOIN %[4]s AS rule GROUP BY %[1]srule`, k, kind, src, arr)
	}
	join := "CROSS JOIN"
	if keys != "" {
		join = "ANY LEFT JOIN"
	}
	// The count is aliased rule_hits inside: an alias equal to a column name
	// (hits) confuses ClickHouse 18.16.
	return fmt.Sprintf(`SELECT %[1]srule, kind, rule_hits AS hits, labelled_hits, fraud_hits, fraud_total, decisions
FROM (%[2]s
  UNION ALL
  %[3]s)
%[4]s (SELECT %[1]stoUInt64(sum(is_fraud)) AS fraud_total, count() AS decisions FROM %[5]s%[6]s)%[7]s`,
		k, per("active", "hits"), per("shadow", "shadow_hits"), join, src, groupBy(keys), using)
}

func groupBy(keys string) string {
	if keys == "" {
		return ""
	}
	return " GROUP BY " + keys
}

// views are the analyst views; the *_daily ones are additive per day and
// ruleset (sum the counts over the days you want, then divide).
var views = []view{
	{"v_signals_labelled", "every signal, deduplicated, with its latest label",
		func(db string, ms bool) string { return "SELECT * FROM " + labelledSQL(db, "", ms) }},
	{"v_decisions_per_minute", "decisions per minute (decision time) by outcome and source",
		func(db string, _ bool) string {
			return fmt.Sprintf(`SELECT toStartOfMinute(decided_at) AS minute, decision, source, count() AS decisions,
  avg(score) AS avg_score, quantile(0.99)(latency_us) AS p99_latency_us
FROM %s.%s FINAL GROUP BY minute, decision, source`, quoteIdent(db), SignalsTable)
		}},
	{"v_rule_hits_daily", "active and shadow hits per rule, day and ruleset, with the day's decisions and the hit rate",
		func(db string, ms bool) string {
			return "SELECT day, ruleset, rule, kind, hits, decisions, hits / decisions AS hit_rate FROM (" +
				rulePrecisionSQL(labelledSQL(db, "", ms), "day, ruleset") + ")"
		}},
	{"v_rule_precision_daily", "per rule, day and ruleset: hits, labelled hits, fraud hits and the day's labelled fraud (additive)",
		func(db string, ms bool) string { return rulePrecisionSQL(labelledSQL(db, "", ms), "day, ruleset") }},
	{"v_rule_precision", "per rule over all retained signals: precision = fraud_hits / hits, recall = fraud_hits / fraud_total",
		func(db string, ms bool) string {
			return "SELECT rule, kind, hits, labelled_hits, fraud_hits, fraud_total, decisions, fraud_hits / hits AS precision, fraud_hits / fraud_total AS recall FROM (" +
				rulePrecisionSQL(labelledSQL(db, "", ms), "") + ")"
		}},
	{"v_score_distribution_daily", "decisions, labelled and fraud per score, day and ruleset",
		func(db string, ms bool) string {
			return fmt.Sprintf(`SELECT day, ruleset, score, count() AS decisions, toUInt64(sum(is_labelled)) AS labelled, toUInt64(sum(is_fraud)) AS fraud
FROM %s GROUP BY day, ruleset, score`, labelledSQL(db, "", ms))
		}},
	{"v_threshold_tuning_daily", "per day, ruleset and candidate threshold: decisions, flagged (score >= threshold), fraud total and caught (additive)",
		func(db string, ms bool) string { return thresholdSQL(labelledSQL(db, "", ms), "day, ruleset") }},
	{"v_threshold_tuning", "per candidate threshold over all retained signals, with flagged_share, fraud_caught_share (recall) and precision",
		func(db string, ms bool) string {
			return "SELECT threshold, decisions, flagged, fraud_total, fraud_caught, flagged / decisions AS flagged_share, fraud_caught / fraud_total AS fraud_caught_share, fraud_caught / flagged AS precision FROM (" +
				thresholdSQL(labelledSQL(db, "", ms), "") + ")"
		}},
}

// viewsDDL creates the views over a labels table with labelled_at_ms or
// without, dropping older definitions first (views hold no data). IF NOT
// EXISTS: a vigil migrating at the same time may create one between the
// DROP and the CREATE.
func viewsDDL(db string, labelMs bool) []string {
	var out []string
	for _, v := range views {
		name := quoteIdent(db) + "." + v.name
		out = append(out, "DROP TABLE IF EXISTS "+name, "CREATE VIEW IF NOT EXISTS "+name+" AS "+v.sql(db, labelMs))
	}
	return out
}

// quoteString quotes a ClickHouse string literal.
func quoteString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`)
	return "'" + r.Replace(s) + "'"
}
