#!/usr/bin/env bash
# services.sh — start, stop or describe every real service the tests need
# (Apache Kafka and ClickHouse, on loopback), for `make test`.
#   deploy/services.sh up     start both (idempotent)
#   deploy/services.sh env    print VIGIL_TEST_KAFKA=… VIGIL_TEST_CLICKHOUSE=…
#   deploy/services.sh down   stop both (idempotent)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
case "${1:-}" in
up)
	"$here/kafka/kafka.sh" up >/dev/null
	"$here/clickhouse/clickhouse.sh" up >/dev/null
	;;
env)
	echo "$("$here/kafka/kafka.sh" env) $("$here/clickhouse/clickhouse.sh" env)"
	;;
down)
	rc=0
	"$here/kafka/kafka.sh" down || rc=$?
	"$here/clickhouse/clickhouse.sh" down || rc=$?
	exit $rc
	;;
*)
	echo "usage: $0 up|env|down" >&2
	exit 2
	;;
esac
