package stream

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the consumer's Prometheus metrics.
type metrics struct {
	events             *prometheus.CounterVec // outcome: decided, replayed, dead_lettered, rebuilt, rebuild_skipped
	decided            prometheus.Counter
	replayed           prometheus.Counter
	deadLettered       *prometheus.CounterVec // code
	deadLetteredEvents prometheus.Counter     // events{outcome="dead_lettered"}
	decodeFailed       *prometheus.CounterVec // code
	rebuilt            prometheus.Counter
	rebuildSkip        prometheus.Counter
	rebuildDup         prometheus.Counter
	lag                *prometheus.GaugeVec // partition
	watermark          *prometheus.GaugeVec // partition
	late               prometheus.Counter
	e2eEvent           prometheus.Observer
	e2eAppend          prometheus.Observer
	errors             *prometheus.CounterVec // op: fetch, produce, commit, group, offsets
	assigned           prometheus.Gauge
	ready              prometheus.Gauge
	generations        prometheus.Counter
	batch              prometheus.Histogram
	rebuildTime        prometheus.Histogram
	decisionsSent      prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, topic string) *metrics {
	cl := prometheus.Labels{"topic": topic}
	m := &metrics{}
	m.events = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_kafka_events_total", ConstLabels: cl,
		Help: "Messages read from the transactions topic, by outcome: decided (a fresh decision produced, counted once the decisions topic acknowledged it), replayed (a redelivered id, its stored decision produced again, also counted once acknowledged), dead_lettered, rebuilt (re-read to rebuild windows, nothing produced), rebuild_skipped (undecodable during a rebuild), rebuild_duplicate (a copy of an id the rebuild already read, or that live scoring remembered: the event counts once)."}, []string{"outcome"})
	m.decided = m.events.WithLabelValues("decided")
	m.replayed = m.events.WithLabelValues("replayed")
	m.rebuilt = m.events.WithLabelValues("rebuilt")
	m.rebuildSkip = m.events.WithLabelValues("rebuild_skipped")
	m.rebuildDup = m.events.WithLabelValues("rebuild_duplicate")
	m.deadLetteredEvents = m.events.WithLabelValues("dead_lettered")
	m.deadLettered = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_kafka_dead_lettered_total", ConstLabels: cl,
		Help: "Messages sent to the dead-letter topic (or dropped when it is off), by error code."}, []string{"code"})
	m.decodeFailed = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_kafka_decode_failures_total", ConstLabels: cl,
		Help: "Messages that failed to decode or validate, by error code (invalid_event, card_number_refused, too_large)."}, []string{"code"})
	m.lag = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "vigil_kafka_consumer_lag", ConstLabels: cl,
		Help: "Messages of an assigned partition not yet decided: the high watermark minus the next offset whose decision is not acknowledged (it grows while producing decisions is stuck)."}, []string{"partition"})
	m.watermark = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "vigil_kafka_watermark_seconds", ConstLabels: cl,
		Help: "Newest event time scored on an assigned partition (Unix seconds)."}, []string{"partition"})
	m.late = prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_kafka_late_events_total", ConstLabels: cl,
		Help: "Events older than their partition's watermark minus the lateness bound."})
	e2e := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "vigil_kafka_end_to_end_seconds", ConstLabels: cl,
		Help:    "Time from an event to its decision being acknowledged by the decisions topic, from the event's own time (event_time) or from its append to the transactions topic (append_time).",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300}}, []string{"from"})
	m.e2eEvent = e2e.WithLabelValues("event_time")
	m.e2eAppend = e2e.WithLabelValues("append_time")
	m.errors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_kafka_errors_total", ConstLabels: cl,
		Help: "Kafka operations that failed and were retried, by operation (fetch, produce, commit, group, offsets, topics)."}, []string{"op"})
	m.assigned = prometheus.NewGauge(prometheus.GaugeOpts{Name: "vigil_kafka_partitions_assigned", ConstLabels: cl, Help: "Partitions of the transactions topic assigned to this instance."})
	m.ready = prometheus.NewGauge(prometheus.GaugeOpts{Name: "vigil_kafka_ready", ConstLabels: cl, Help: "1 when every assigned partition is rebuilt and caught up."})
	m.generations = prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_kafka_rebalances_total", ConstLabels: cl, Help: "Consumer group generations joined."})
	m.batch = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "vigil_kafka_batch_size", ConstLabels: cl, Help: "Events per scored batch.",
		Buckets: prometheus.ExponentialBuckets(1, 4, 7)})
	m.rebuildTime = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "vigil_kafka_rebuild_seconds", ConstLabels: cl, Help: "Time to rebuild the windows of a newly assigned partition.",
		Buckets: prometheus.ExponentialBuckets(0.01, 4, 9)})
	m.decisionsSent = prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_kafka_decisions_produced_total", ConstLabels: cl, Help: "Decision records acknowledged by the decisions topic."})
	// Every known series from the start, at 0: dashboards and increase()
	// alerts see a value before the first failure.
	for _, code := range []string{CodeInvalid, CodePAN, CodeIDReused, CodeTooLarge} {
		m.deadLettered.WithLabelValues(code)
		if code != CodeIDReused {
			m.decodeFailed.WithLabelValues(code)
		}
	}
	for _, op := range []string{"fetch", "produce", "commit", "group", "offsets", "topics"} {
		m.errors.WithLabelValues(op)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.events, m.deadLettered, m.decodeFailed, m.lag, m.watermark, m.late, e2e, m.errors, m.assigned, m.ready, m.generations, m.batch, m.rebuildTime, m.decisionsSent} {
			reg.MustRegister(c)
		}
	}
	return m
}

func partLabel(p int) string { return strconv.Itoa(p) }
