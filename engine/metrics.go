package engine

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
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
