// Package signals turns every decision into a normalized signal stored in
// ClickHouse for analysts and data teams: dashboards, rule hit rates,
// precision against confirmed fraud labels and threshold tuning.
//
// The Writer (an engine.Sink) batches records into native-protocol
// inserts; scoring never waits on ClickHouse: a bounded queue, then an
// append-only checksummed disk spill while ClickHouse is slow or down,
// replayed in order when it returns. Migrations create the tables and the
// analyst views on ClickHouse 18.16 and later, using LowCardinality,
// DateTime64 and TTL where the server has them. Labels arrive through
// POST /v1/labels. Tune and TuneCandidate compute the threshold-tuning and
// per-rule precision/recall reports of `vigil tune`. docs/signals.md is the
// reference.
package signals
