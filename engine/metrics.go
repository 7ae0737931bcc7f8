package engine

import (
	"cmp"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/vigil-fraud/vigil/rules"
)

// Metrics are the engine's Prometheus metrics, registered on their own
// registry.
type Metrics struct {
	Registry       *prometheus.Registry
	scoreLatency   prometheus.Histogram
	decisions      *prometheus.CounterVec
	ruleHits       *prometheus.CounterVec
	ruleErrors     *prometheus.CounterVec
	requests       *prometheus.CounterVec
	replays        prometheus.Counter
	refused        *prometheus.CounterVec
	rulesetInfo    *prometheus.GaugeVec
	recentEntries  prometheus.GaugeFunc
	decisionByName map[string]prometheus.Counter
}

// NewMetrics creates and registers the engine's metrics.
func NewMetrics() *Metrics {
	m := &Metrics{Registry: prometheus.NewRegistry()}
	m.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	f := func(c prometheus.Collector) { m.Registry.MustRegister(c) }
	m.scoreLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "vigil_score_duration_seconds",
		Help:    "Time to score one transaction, from decoded event to decision.",
		Buckets: []float64{25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 100e-3},
	})
	f(m.scoreLatency)
	m.decisions = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_decisions_total", Help: "Decisions by outcome."}, []string{"decision"})
	f(m.decisions)
	m.decisionByName = map[string]prometheus.Counter{}
	for _, d := range []string{"approve", "step_up", "pause"} {
		m.decisionByName[d] = m.decisions.WithLabelValues(d)
	}
	m.ruleHits = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_rule_hits_total", Help: "Rule hits; counted is \"yes\", or why not (shadow, rollout)."}, []string{"rule", "counted"})
	f(m.ruleHits)
	m.ruleErrors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_rule_errors_total", Help: "Rule evaluations that failed at run time (counted as not firing)."}, []string{"rule"})
	f(m.ruleErrors)
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_http_requests_total", Help: "HTTP requests by handler and status code."}, []string{"handler", "code"})
	f(m.requests)
	m.replays = prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_idempotent_replays_total", Help: "Transactions scored again and answered from the recent-decisions store."})
	f(m.replays)
	m.refused = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_events_refused_total", Help: "Events refused by validation, by reason (invalid, pan)."}, []string{"reason"})
	f(m.refused)
	m.rulesetInfo = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "vigil_ruleset_info", Help: "The live ruleset (value 1)."}, []string{"version", "label"})
	f(m.rulesetInfo)
	return m
}

// ruleCounters are one rule's hit counters, looked up once per ruleset
// instead of by label values on every hit.
type ruleCounters struct {
	yes, shadow, rollout prometheus.Counter
}

// ruleCountersOf returns the hit counters of set's rules by name. The
// series of every rule (hits and run-time errors) exist from the ruleset's
// load on, at 0 until it fires, so a dashboard lists the rules that never
// fire or fail too.
func (m *Metrics) ruleCountersOf(set *rules.Set) map[string]ruleCounters {
	out := make(map[string]ruleCounters, len(set.Rules))
	for _, r := range set.Rules {
		c := ruleCounters{yes: m.ruleHits.WithLabelValues(r.Name, "yes")}
		m.ruleErrors.WithLabelValues(r.Name)
		if r.Mode == rules.Shadow {
			c.shadow = m.ruleHits.WithLabelValues(r.Name, rules.ExcludedShadow)
		}
		if r.Rollout != nil {
			c.rollout = m.ruleHits.WithLabelValues(r.Name, rules.ExcludedRollout)
		}
		out[r.Name] = c
	}
	return out
}

// hit counts a hit of a rule: counted (excluded empty) or why not.
func (m *Metrics) hit(counters map[string]ruleCounters, h *rules.Hit) {
	c := counters[h.Rule]
	var ctr prometheus.Counter
	switch h.Excluded {
	case "":
		ctr = c.yes
	case rules.ExcludedShadow:
		ctr = c.shadow
	case rules.ExcludedRollout:
		ctr = c.rollout
	}
	if ctr == nil { // a rule of another ruleset (a reload raced the scoring)
		ctr = m.ruleHits.WithLabelValues(h.Rule, cmp.Or(h.Excluded, "yes"))
	}
	ctr.Inc()
}
