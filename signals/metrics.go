package signals

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Reasons a row is dropped (vigil_signals_dropped_rows_total{reason}).
const (
	reasonQueueFull = "queue_full"  // the in-memory queue was full at Put
	reasonSpillFull = "spill_full"  // the disk budget was exhausted
	reasonSpillErr  = "spill_error" // the spill could not be written (disk error)
	reasonCorrupt   = "corrupt"     // a damaged spill segment
	reasonClosed    = "closed"      // Put after the writer stopped
)

// metrics are the writer's Prometheus metrics.
type metrics struct {
	queueDepth      prometheus.GaugeFunc
	memoryBatches   prometheus.Gauge
	batchDuration   prometheus.Histogram
	rowsWritten     *prometheus.CounterVec
	written         map[string]prometheus.Counter
	insertErrors    prometheus.Counter
	spilledRows     prometheus.Counter
	spilledBytes    prometheus.Counter
	spillBytes      prometheus.Gauge
	spillRows       prometheus.Gauge
	spillSegments   prometheus.Gauge
	spillFull       prometheus.Gauge
	replayedRows    prometheus.Counter
	droppedRows     *prometheus.CounterVec
	drops           map[string]prometheus.Counter
	clickhouseUp    prometheus.Gauge
	labelsWritten   prometheus.Counter
	labelsFed       prometheus.Counter
	labelsUnmatched prometheus.Counter
	labelsInvalid   prometheus.Counter
	retentionDrops  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, queueLen func() float64) *metrics {
	m := &metrics{}
	m.queueDepth = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "vigil_signals_queue_depth", Help: "Signals waiting in the in-memory queue."}, queueLen)
	m.memoryBatches = prometheus.NewGauge(prometheus.GaugeOpts{Name: "vigil_signals_memory_batches", Help: "Full batches waiting in memory for ClickHouse."})
	m.batchDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "vigil_signals_batch_duration_seconds", Help: "Time to insert one batch into ClickHouse (successful inserts).",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	})
	m.rowsWritten = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_signals_rows_written_total", Help: "Signals inserted into ClickHouse, by path (direct from memory, or replay from the disk spill)."}, []string{"path"})
	m.written = map[string]prometheus.Counter{"direct": m.rowsWritten.WithLabelValues("direct"), "replay": m.rowsWritten.WithLabelValues("replay")}
	m.insertErrors = prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_signals_insert_errors_total", Help: "Failed batch inserts (retried)."})
	m.spilledRows = prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_signals_spilled_rows_total", Help: "Signals written to the disk spill."})
	m.spilledBytes = prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_signals_spilled_bytes_total", Help: "Bytes written to the disk spill."})
	m.spillBytes = prometheus.NewGauge(prometheus.GaugeOpts{Name: "vigil_signals_spill_bytes", Help: "Bytes on disk in the spill, waiting to be replayed."})
	m.spillRows = prometheus.NewGauge(prometheus.GaugeOpts{Name: "vigil_signals_spill_rows", Help: "Signals in the disk spill not replayed yet."})
	m.spillSegments = prometheus.NewGauge(prometheus.GaugeOpts{Name: "vigil_signals_spill_segments", Help: "Segment files in the disk spill."})
	m.spillFull = prometheus.NewGauge(prometheus.GaugeOpts{Name: "vigil_signals_spill_full", Help: "1 while the disk spill budget is exhausted: signals are dropped, or old segments deleted for room (drop_oldest), until a replay frees room."})
	m.replayedRows = prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_signals_replayed_rows_total", Help: "Signals replayed from the disk spill into ClickHouse."})
	m.droppedRows = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_signals_dropped_rows_total", Help: "Signals lost, by reason (queue_full, spill_full, spill_error, corrupt, closed). Alert on any increase."}, []string{"reason"})
	m.drops = map[string]prometheus.Counter{}
	for _, r := range []string{reasonQueueFull, reasonSpillFull, reasonSpillErr, reasonCorrupt, reasonClosed} {
		m.drops[r] = m.droppedRows.WithLabelValues(r)
	}
	m.clickhouseUp = prometheus.NewGauge(prometheus.GaugeOpts{Name: "vigil_signals_clickhouse_up", Help: "1 when the last insert into ClickHouse succeeded."})
	m.labelsWritten = prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_signals_labels_written_total", Help: "Labels inserted into ClickHouse."})
	m.labelsFed = prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_signals_labels_fed_total", Help: "Labels handed to the features engine (label_rate features)."})
	m.labelsUnmatched = prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_signals_labels_unmatched_total", Help: "Labels stored but not fed to the features engine: no signal row found for their event id, or the lookup failed (logged)."})
	m.labelsInvalid = prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_signals_labels_invalid_total", Help: "Invalid messages skipped on the labels Kafka topic."})
	m.retentionDrops = prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_signals_retention_partitions_dropped_total", Help: "Expired partitions dropped by the retention policy (servers without TTL)."})
	if reg != nil {
		for _, c := range []prometheus.Collector{m.queueDepth, m.memoryBatches, m.batchDuration, m.rowsWritten, m.insertErrors,
			m.spilledRows, m.spilledBytes, m.spillBytes, m.spillRows, m.spillSegments, m.spillFull, m.replayedRows,
			m.droppedRows, m.clickhouseUp, m.labelsWritten, m.labelsFed, m.labelsUnmatched, m.labelsInvalid, m.retentionDrops} {
			reg.MustRegister(c)
		}
	}
	return m
}

func (m *metrics) dropped(reason string, n int64) {
	if n > 0 {
		m.drops[reason].Add(float64(n))
	}
}

func (m *metrics) spilled(rows, bytes int) {
	m.spilledRows.Add(float64(rows))
	m.spilledBytes.Add(float64(bytes))
}

func (m *metrics) spillState(bytes, rows int64, segments int) {
	m.spillBytes.Set(float64(bytes))
	m.spillRows.Set(float64(rows))
	m.spillSegments.Set(float64(segments))
}

func (m *metrics) setSpillFull(v bool) {
	if v {
		m.spillFull.Set(1)
	} else {
		m.spillFull.Set(0)
	}
}
