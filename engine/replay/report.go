package replay

import (
	"slices"
	"time"

	"github.com/vigil-fraud/vigil/rules"
)

// Report is the outcome of a replay. Rates, precision, recall and F1 are
// fractions (0..1); a ratio with nothing to divide by is 0.
type Report struct {
	Ruleset         string  `json:"ruleset"`
	Events          int     `json:"events"`
	Seconds         float64 `json:"seconds"`
	EventsPerSecond float64 `json:"events_per_second"`
	Labels          Labels  `json:"labels"`
	// Skipped are the transactions not scored because their id was
	// scored before; Events does not count them.
	Skipped Skipped `json:"skipped"`
	// From and To are the first and last event times.
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	Outcome
	// Groups break the decisions down by Transaction.Group (FDH: the fraud
	// scenario), sorted by name; empty when no transaction has a group.
	Groups   []Group   `json:"groups,omitempty"`
	Baseline *Baseline `json:"baseline,omitempty"`
}

// Labels counts the labels.
type Labels struct {
	Labelled  int `json:"labelled"`  // transactions with a label
	Fraud     int `json:"fraud"`     // of which fraud
	Unmatched int `json:"unmatched"` // labels naming no replayed transaction
}

// Skipped counts the transactions of an id already scored, which a replay
// does not score again, as live scoring does not.
type Skipped struct {
	// Repeated have the content of the first (time, amount, currency,
	// card, account, merchant): live scoring answers the first decision
	// again ("replayed": true) and counts it in no window.
	Repeated int `json:"repeated"`
	// IDReused have other content: live scoring refuses them (409
	// id_reused).
	IDReused int `json:"id_reused"`
}

// Outcome is what one ruleset decided.
type Outcome struct {
	Decisions     Decisions   `json:"decisions"`
	Pause         Quality     `json:"pause"`
	StepUpOrPause Quality     `json:"step_up_or_pause"`
	Rules         []RuleStats `json:"rules"`
}

// Decisions counts decisions and their shares of the events.
type Decisions struct {
	Approve     int     `json:"approve"`
	StepUp      int     `json:"step_up"`
	Pause       int     `json:"pause"`
	ApproveRate float64 `json:"approve_rate"`
	StepUpRate  float64 `json:"step_up_rate"`
	PauseRate   float64 `json:"pause_rate"`
}

// Quality measures a set of flagged transactions against the fraud labels.
type Quality struct {
	Flagged   int     `json:"flagged"`         // transactions flagged
	Caught    int     `json:"caught"`          // flagged and fraud (true positives)
	Fraud     int     `json:"fraud"`           // fraud transactions
	Rate      float64 `json:"rate"`            // flagged / events
	Precision float64 `json:"precision"`       // caught / flagged
	Recall    float64 `json:"recall"`          // caught / fraud
	F1        float64 `json:"f1"`              // harmonic mean of precision and recall
	Events    int     `json:"events,omitzero"` // transactions considered
}

func quality(flagged, caught, fraud, events int) Quality {
	q := Quality{Flagged: flagged, Caught: caught, Fraud: fraud, Events: events,
		Rate: ratio(flagged, events), Precision: ratio(caught, flagged), Recall: ratio(caught, fraud)}
	if q.Precision+q.Recall > 0 {
		q.F1 = 2 * q.Precision * q.Recall / (q.Precision + q.Recall)
	}
	return q
}

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// RuleStats is one rule's activity. Hits count only when the rule counted
// (active, in rollout); Ignored are its shadow and out-of-rollout hits.
// Precision and recall are of its counting hits.
type RuleStats struct {
	Rule      string       `json:"rule"`
	Action    rules.Action `json:"action"`
	Score     int          `json:"score"`
	Hits      int          `json:"hits"`
	FraudHits int          `json:"fraud_hits"`
	Precision float64      `json:"precision"`
	Recall    float64      `json:"recall"`
	Ignored   int          `json:"ignored,omitzero"`
	// IgnoredFraud are the ignored hits on fraud: a shadow rule's
	// precision is IgnoredFraud / Ignored.
	IgnoredFraud int `json:"ignored_fraud,omitzero"`
	Errors       int `json:"errors,omitzero"`
	// ByGroup are the counting hits per group (with groups only).
	ByGroup map[string]int `json:"by_group,omitempty"`
}

// Group is the decisions of one group of transactions.
type Group struct {
	Group         string  `json:"group"`
	Events        int     `json:"events"`
	Fraud         int     `json:"fraud"`
	StepUp        int     `json:"step_up"`
	Pause         int     `json:"pause"`
	Share         float64 `json:"share"` // (step_up + pause) / events
	PauseQuality  Quality `json:"pause_quality"`
	StepUpOrPause Quality `json:"step_up_or_pause_quality"`
}

// Baseline compares the ruleset with a baseline ruleset.
type Baseline struct {
	Ruleset string `json:"ruleset"`
	Outcome
	// Changed counts the transactions whose decision differs.
	Changed int `json:"changed"`
	// Transitions count the changes by (baseline, ruleset) decision.
	Transitions []Transition `json:"transitions"`
	// Changes lists the first changes in event-time order (Config.MaxChanges).
	Changes []Change `json:"changes"`
	// Groups are the baseline's decisions by group, as Report.Groups.
	Groups []Group `json:"groups,omitempty"`
}

// Transition counts changes from one decision to another.
type Transition struct {
	From  rules.Action `json:"from"`
	To    rules.Action `json:"to"`
	Count int          `json:"count"`
	Fraud int          `json:"fraud"`
}

// Change is a transaction whose decision changes from the baseline.
type Change struct {
	ID    string       `json:"id"`
	Time  time.Time    `json:"time"`
	From  rules.Action `json:"from"`
	To    rules.Action `json:"to"`
	Fraud bool         `json:"fraud"`
}

// tally is one worker's per-rule counts, for the ruleset (0) and the
// baseline (1).
type tally struct {
	sets   [2]*rules.Set
	index  [2]map[string]int
	groups map[string]int
	hits   [2][]ruleTally
}

type ruleTally struct {
	hits, fraud, ignored, ignoredFraud, errors int
	byGroup                                    map[string]int
}

func newTally(set, baseline *rules.Set) *tally {
	t := &tally{sets: [2]*rules.Set{set, baseline}}
	for k, s := range t.sets {
		if s == nil {
			continue
		}
		t.index[k] = make(map[string]int, len(s.Rules))
		t.hits[k] = make([]ruleTally, len(s.Rules))
		for i, r := range s.Rules {
			t.index[k][r.Name] = i
		}
	}
	return t
}

func (t *tally) add(k int, res *rules.Result, fraud bool, group string) {
	rt := t.hits[k]
	for _, h := range res.Hits {
		r := &rt[t.index[k][h.Rule]]
		r.hits++
		if fraud {
			r.fraud++
		}
		if group != "" {
			if r.byGroup == nil {
				r.byGroup = map[string]int{}
			}
			r.byGroup[group]++
		}
	}
	for _, h := range res.Ignored {
		r := &rt[t.index[k][h.Rule]]
		r.ignored++
		if fraud {
			r.ignoredFraud++
		}
	}
	for _, e := range res.Errors {
		name, _, _ := cutColon(e)
		if i, ok := t.index[k][name]; ok {
			rt[i].errors++
		}
	}
}

func cutColon(s string) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == ':' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// buildReport computes the report from the per-transaction outcomes and
// the workers' tallies.
func buildReport(cfg Config, ds *Dataset, order []int, truth []bool, outs []outcome, tallies []*tally) *Report {
	rep := &Report{Ruleset: cfg.Rules.VersionString(), Events: len(order)}
	if len(order) > 0 {
		rep.From = ds.Transactions[order[0]].Event.Time
		rep.To = ds.Transactions[order[len(order)-1]].Event.Time
	}
	for i := range ds.Transactions {
		if truth[i] {
			rep.Labels.Fraud++
		}
	}
	rep.Labels.Labelled = labelledCount(ds)
	pick := func(o outcome) rules.Action { return o.decision }
	rep.Outcome = outcomeOf(cfg.Rules, 0, order, truth, outs, tallies, pick)
	rep.Groups = groupsOf(ds, order, truth, outs, pick)
	if cfg.Baseline != nil {
		pickBase := func(o outcome) rules.Action { return o.baseline }
		b := &Baseline{Ruleset: cfg.Baseline.VersionString(),
			Outcome: outcomeOf(cfg.Baseline, 1, order, truth, outs, tallies, pickBase),
			Groups:  groupsOf(ds, order, truth, outs, pickBase)}
		trans := map[[2]rules.Action]*Transition{}
		for _, i := range order {
			o := outs[i]
			if o.decision == o.baseline {
				continue
			}
			b.Changed++
			tr := trans[[2]rules.Action{o.baseline, o.decision}]
			if tr == nil {
				tr = &Transition{From: o.baseline, To: o.decision}
				trans[[2]rules.Action{o.baseline, o.decision}] = tr
			}
			tr.Count++
			if truth[i] {
				tr.Fraud++
			}
			if cfg.MaxChanges > 0 && len(b.Changes) < cfg.MaxChanges {
				ev := ds.Transactions[i].Event
				b.Changes = append(b.Changes, Change{ID: ev.ID, Time: ev.Time, From: o.baseline, To: o.decision, Fraud: truth[i]})
			}
		}
		b.Transitions = []Transition{}
		for _, tr := range trans {
			b.Transitions = append(b.Transitions, *tr)
		}
		slices.SortFunc(b.Transitions, func(x, y Transition) int {
			if d := x.From.Severity() - y.From.Severity(); d != 0 {
				return d
			}
			return x.To.Severity() - y.To.Severity()
		})
		if b.Changes == nil {
			b.Changes = []Change{}
		}
		rep.Baseline = b
	}
	return rep
}

func labelledCount(ds *Dataset) int {
	ids := make(map[string]bool, len(ds.Transactions))
	for _, tx := range ds.Transactions {
		ids[tx.Event.ID] = false
	}
	n := 0
	for _, l := range ds.Labels {
		if seen, ok := ids[l.EventID]; ok && !seen {
			ids[l.EventID] = true
			n++
		}
	}
	return n
}

// outcomeOf counts the decisions of the transactions scored (order).
func outcomeOf(set *rules.Set, k int, order []int, truth []bool, outs []outcome, tallies []*tally, pick func(outcome) rules.Action) Outcome {
	var o Outcome
	n := len(order)
	fraud, pauses, pauseTP, flagged, flaggedTP := 0, 0, 0, 0, 0
	for _, i := range order {
		d := pick(outs[i])
		switch d {
		case rules.Pause:
			o.Decisions.Pause++
		case rules.StepUp:
			o.Decisions.StepUp++
		default:
			o.Decisions.Approve++
		}
		if truth[i] {
			fraud++
		}
		if d == rules.Pause {
			pauses++
			if truth[i] {
				pauseTP++
			}
		}
		if d == rules.Pause || d == rules.StepUp {
			flagged++
			if truth[i] {
				flaggedTP++
			}
		}
	}
	o.Decisions.ApproveRate = ratio(o.Decisions.Approve, n)
	o.Decisions.StepUpRate = ratio(o.Decisions.StepUp, n)
	o.Decisions.PauseRate = ratio(o.Decisions.Pause, n)
	o.Pause = quality(pauses, pauseTP, fraud, n)
	o.StepUpOrPause = quality(flagged, flaggedTP, fraud, n)
	o.Rules = make([]RuleStats, len(set.Rules))
	for i, r := range set.Rules {
		rs := RuleStats{Rule: r.Name, Action: r.Action, Score: r.Score}
		for _, t := range tallies {
			rt := t.hits[k][i]
			rs.Hits += rt.hits
			rs.FraudHits += rt.fraud
			rs.Ignored += rt.ignored
			rs.IgnoredFraud += rt.ignoredFraud
			rs.Errors += rt.errors
			for g, c := range rt.byGroup {
				if rs.ByGroup == nil {
					rs.ByGroup = map[string]int{}
				}
				rs.ByGroup[g] += c
			}
		}
		rs.Precision = ratio(rs.FraudHits, rs.Hits)
		rs.Recall = ratio(rs.FraudHits, fraud)
		o.Rules[i] = rs
	}
	return o
}

func groupsOf(ds *Dataset, order []int, truth []bool, outs []outcome, pick func(outcome) rules.Action) []Group {
	type acc struct{ events, fraud, stepUp, pause, pauseTP, flaggedTP int }
	by := map[string]*acc{}
	for _, i := range order {
		tx := ds.Transactions[i]
		if tx.Group == "" {
			continue
		}
		a := by[tx.Group]
		if a == nil {
			a = &acc{}
			by[tx.Group] = a
		}
		a.events++
		d := pick(outs[i])
		if truth[i] {
			a.fraud++
		}
		switch d {
		case rules.Pause:
			a.pause++
			if truth[i] {
				a.pauseTP++
				a.flaggedTP++
			}
		case rules.StepUp:
			a.stepUp++
			if truth[i] {
				a.flaggedTP++
			}
		}
	}
	var gs []Group
	for name, a := range by {
		gs = append(gs, Group{Group: name, Events: a.events, Fraud: a.fraud, StepUp: a.stepUp, Pause: a.pause,
			Share:         ratio(a.stepUp+a.pause, a.events),
			PauseQuality:  quality(a.pause, a.pauseTP, a.fraud, a.events),
			StepUpOrPause: quality(a.stepUp+a.pause, a.flaggedTP, a.fraud, a.events)})
	}
	slices.SortFunc(gs, func(a, b Group) int {
		if a.Group < b.Group {
			return -1
		}
		if a.Group > b.Group {
			return 1
		}
		return 0
	})
	return gs
}
