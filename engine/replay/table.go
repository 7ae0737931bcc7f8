package replay

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteTable prints the report as readable tables.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	p := func(format string, args ...any) { fmt.Fprintf(tw, format, args...) }
	p("ruleset %s: %d events from %s to %s in %.1fs (%.0f events/s)\n", r.Ruleset, r.Events,
		r.From.Format(time.RFC3339), r.To.Format(time.RFC3339), r.Seconds, r.EventsPerSecond)
	p("labels: %d labelled transactions, %d fraud (%s)", r.Labels.Labelled, r.Labels.Fraud, pct(ratio(r.Labels.Fraud, r.Events)))
	if r.Labels.Unmatched > 0 {
		p("; %d labels name no replayed transaction", r.Labels.Unmatched)
	}
	p("\n")
	if sk := r.Skipped; sk.Repeated > 0 || sk.IDReused > 0 {
		// As live scoring: a repeated id is decided once.
		p("skipped: %d repeated ids (same content: the first decision stands, counted once), %d reused ids (other content: live scoring refuses them, 409 id_reused)\n",
			sk.Repeated, sk.IDReused)
	}
	p("\n")
	writeOutcome(p, &r.Outcome, r.Events)
	writeGroups(p, r.Groups)
	if b := r.Baseline; b != nil {
		p("\nbaseline %s:\n\n", b.Ruleset)
		writeOutcome(p, &b.Outcome, r.Events)
		writeGroups(p, b.Groups)
		p("\n%d transactions change decision (%s)\n", b.Changed, pct(ratio(b.Changed, r.Events)))
		if len(b.Transitions) > 0 {
			p("\nBASELINE\tRULESET\tCOUNT\tFRAUD\n")
			for _, t := range b.Transitions {
				p("%s\t%s\t%d\t%d\n", t.From, t.To, t.Count, t.Fraud)
			}
		}
		if len(b.Changes) > 0 {
			p("\nID\tTIME\tBASELINE\tRULESET\tFRAUD\n")
			for _, c := range b.Changes {
				p("%s\t%s\t%s\t%s\t%v\n", c.ID, c.Time.Format(time.RFC3339), c.From, c.To, c.Fraud)
			}
			if b.Changed > len(b.Changes) {
				p("... %d more\n", b.Changed-len(b.Changes))
			}
		}
	}
	return tw.Flush()
}

func writeOutcome(p func(string, ...any), o *Outcome, events int) {
	d := o.Decisions
	p("DECISION\tCOUNT\tRATE\n")
	p("approve\t%d\t%s\n", d.Approve, pct(d.ApproveRate))
	p("step_up\t%d\t%s\n", d.StepUp, pct(d.StepUpRate))
	p("pause\t%d\t%s\n", d.Pause, pct(d.PauseRate))
	p("\nFLAGGED\tCOUNT\tRATE\tCAUGHT\tPRECISION\tRECALL\tF1\n")
	for _, q := range []struct {
		name string
		q    Quality
	}{{"pause", o.Pause}, {"step_up or pause", o.StepUpOrPause}} {
		p("%s\t%d\t%s\t%d/%d\t%s\t%s\t%s\n", q.name, q.q.Flagged, pct(q.q.Rate), q.q.Caught, q.q.Fraud,
			f3(q.q.Precision), f3(q.q.Recall), f3(q.q.F1))
	}
	var groups []string
	for _, r := range o.Rules {
		for g := range r.ByGroup {
			if !slices.Contains(groups, g) {
				groups = append(groups, g)
			}
		}
	}
	slices.Sort(groups)
	p("\nRULE\tACTION\tSCORE\tHITS\tFRAUD_HITS\tPRECISION\tRECALL\tIGNORED\tIGNORED_FRAUD\tERRORS")
	for _, g := range groups {
		p("\t%s", strings.ToUpper(g))
	}
	p("\n")
	for _, r := range o.Rules {
		p("%s\t%s\t%d\t%d\t%d\t%s\t%s\t%d\t%d\t%d", r.Rule, r.Action, r.Score, r.Hits, r.FraudHits, f3(r.Precision), f3(r.Recall), r.Ignored, r.IgnoredFraud, r.Errors)
		for _, g := range groups {
			p("\t%d", r.ByGroup[g])
		}
		p("\n")
	}
}

func writeGroups(p func(string, ...any), groups []Group) {
	if len(groups) == 0 {
		return
	}
	p("\nGROUP\tEVENTS\tFRAUD\tSTEP_UP\tPAUSE\tFLAGGED\tRECALL(STEP_UP|PAUSE)\tRECALL(PAUSE)\n")
	for _, g := range groups {
		p("%s\t%d\t%d\t%d\t%d\t%s\t%s\t%s\n", g.Group, g.Events, g.Fraud, g.StepUp, g.Pause, pct(g.Share),
			f3(g.StepUpOrPause.Recall), f3(g.PauseQuality.Recall))
	}
}

func pct(x float64) string { return fmt.Sprintf("%.2f%%", 100*x) }

func f3(x float64) string { return fmt.Sprintf("%.3f", x) }
