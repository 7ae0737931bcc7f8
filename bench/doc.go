// Package bench holds vigil's benchmarks: the score path end to end, the
// features engine, rule evaluation, Kafka and ClickHouse throughput. Run
// them with `make bench`; results and the commands that produced them are
// in RESULTS.md.
package bench
