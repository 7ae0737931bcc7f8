package features

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are plain atomic counters on the hot path, exposed through a
// collector by Register.
type metrics struct {
	evictIdle, evictStale, evictActive, evictExpired atomic.Uint64
	sketches                                         atomic.Uint64
	geoHits, geoMisses, geoErrors                    atomic.Uint64
	reloadUnrecorded                                 atomic.Uint64
}

var (
	descEntities   = prometheus.NewDesc("vigil_features_entities", "Entities tracked, by entity kind.", []string{"entity"}, nil)
	descEvictions  = prometheus.NewDesc("vigil_features_evictions_total", "Entities dropped: under the max_entities cap idle (longest window expired, nothing else kept), stale (longest window expired, its first-seen, novelty, hour or travel history lost) or active (window counts lost); or expired past the retention.", []string{"reason"}, nil)
	descLate       = prometheus.NewDesc("vigil_features_late_events_total", "Events behind their entity's newest: accepted within the lateness (recorded) or dropped (not recorded).", []string{"entity", "outcome"}, nil)
	descSketches   = prometheus.NewDesc("vigil_features_distinct_sketches_total", "Distinct-count sets that outgrew exact counting and became HyperLogLog sketches.", nil, nil)
	descGeo        = prometheus.NewDesc("vigil_features_geo_lookups_total", "IP geography lookups: cache hit, miss (database read), error.", []string{"result"}, nil)
	descUnrecorded = prometheus.NewDesc("vigil_features_reload_unrecorded_total", "Events under way during a features reload whose entity state had already moved to the new definitions: scored without that history and not recorded.", nil, nil)
	descWatermark  = prometheus.NewDesc("vigil_features_watermark_seconds", "The watermark: the second newest event time seen (Unix seconds), against which entities are idle or expired.", nil, nil)
)

type collector struct{ e *Engine }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descEntities, descEvictions, descLate, descSketches, descGeo, descUnrecorded, descWatermark} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	e := c.e.live()
	m := e.m
	for _, k := range e.kinds {
		ch <- prometheus.MustNewConstMetric(descEntities, prometheus.GaugeValue, float64(k.tracked.Load()), k.name)
		ch <- prometheus.MustNewConstMetric(descLate, prometheus.CounterValue, float64(k.late.accepted.Load()), k.name, "accepted")
		ch <- prometheus.MustNewConstMetric(descLate, prometheus.CounterValue, float64(k.late.dropped.Load()), k.name, "dropped")
	}
	ch <- prometheus.MustNewConstMetric(descEvictions, prometheus.CounterValue, float64(m.evictIdle.Load()), "idle")
	ch <- prometheus.MustNewConstMetric(descEvictions, prometheus.CounterValue, float64(m.evictStale.Load()), "stale")
	ch <- prometheus.MustNewConstMetric(descEvictions, prometheus.CounterValue, float64(m.evictActive.Load()), "active")
	ch <- prometheus.MustNewConstMetric(descEvictions, prometheus.CounterValue, float64(m.evictExpired.Load()), "expired")
	ch <- prometheus.MustNewConstMetric(descSketches, prometheus.CounterValue, float64(m.sketches.Load()))
	ch <- prometheus.MustNewConstMetric(descGeo, prometheus.CounterValue, float64(m.geoHits.Load()), "hit")
	ch <- prometheus.MustNewConstMetric(descGeo, prometheus.CounterValue, float64(m.geoMisses.Load()), "miss")
	ch <- prometheus.MustNewConstMetric(descGeo, prometheus.CounterValue, float64(m.geoErrors.Load()), "error")
	ch <- prometheus.MustNewConstMetric(descUnrecorded, prometheus.CounterValue, float64(m.reloadUnrecorded.Load()))
	ch <- prometheus.MustNewConstMetric(descWatermark, prometheus.GaugeValue, float64(e.watermark()))
}

// Register registers the engine's metrics (which then follow its
// successors): vigil_features_entities{entity},
// vigil_features_evictions_total{reason}, vigil_features_late_events_total
// {entity,outcome}, vigil_features_distinct_sketches_total,
// vigil_features_geo_lookups_total{result},
// vigil_features_reload_unrecorded_total, vigil_features_watermark_seconds.
func (e *Engine) Register(reg prometheus.Registerer) error {
	return reg.Register(collector{e})
}

// Stats is a snapshot of the engine's counters, for tests and tools.
type Stats struct {
	Entities                                                 int64
	EvictedIdle, EvictedStale, EvictedActive, EvictedExpired uint64
	LateAccepted, LateDropped                                uint64
	Sketches                                                 uint64
}

// Stats returns the engine's counters (of its successor once one is
// active).
func (e *Engine) Stats() Stats {
	e = e.live()
	s := Stats{EvictedIdle: e.m.evictIdle.Load(), EvictedStale: e.m.evictStale.Load(), EvictedActive: e.m.evictActive.Load(),
		EvictedExpired: e.m.evictExpired.Load(), Sketches: e.m.sketches.Load()}
	for _, k := range e.kinds {
		s.Entities += k.tracked.Load()
		s.LateAccepted += k.late.accepted.Load()
		s.LateDropped += k.late.dropped.Load()
	}
	return s
}
