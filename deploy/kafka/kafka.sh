#!/usr/bin/env bash
# Local single-node Apache Kafka (KRaft, broker+controller) for vigil's
# integration tests. Needs only Java 17+ and Maven: the broker jars are fetched
# from Maven Central once and cached outside the repo.
#
# Usage: deploy/kafka/kafka.sh COMMAND
#   up              fetch jars (first time), start the broker, wait until it
#                   answers; prints 127.0.0.1:PORT. No-op if already running.
#   down [--wipe]   stop the broker (SIGTERM, then SIGKILL after 30 s);
#                   --wipe (or VIGIL_KAFKA_WIPE=1) also deletes data and config.
#   status          print the bootstrap address, exit 0 if running, 1 if not.
#   env             print VIGIL_TEST_KAFKA=127.0.0.1:PORT (exit 1 if not running).
#   stop-broker     stop the broker, keep its data and ports.
#   start-broker    start the stopped broker again on the same ports and data.
#   restart-broker  stop-broker + start-broker.
#   topics ARGS...  run kafka-topics against the broker (e.g. topics --list).
#   tool CLASS ARGS...  run any Java main class from the Kafka jars.
#
# Environment:
#   KAFKA_VERSION          Kafka release from Maven Central (default below)
#   VIGIL_KAFKA_DIR        state dir: data, logs, pid, bootstrap (/tmp/vigil-kafka)
#   VIGIL_KAFKA_CACHE      jar cache (${XDG_CACHE_HOME:-~/.cache}/vigil/kafka/<version>)
#   VIGIL_KAFKA_HEAP       broker heap flags (-Xms256m -Xmx512m)
#   VIGIL_KAFKA_TIMEOUT    seconds to wait for the broker to answer (90)
#   VIGIL_KAFKA_MVN_ARGS   extra mvn arguments (e.g. -Dmaven.repo.local=...)
set -euo pipefail

KAFKA_VERSION="${KAFKA_VERSION:-4.3.1}"
LOG4J_VERSION="${VIGIL_KAFKA_LOG4J_VERSION:-2.25.4}" # slf4j->log4j2 binding, matches Kafka's log4j-core
DEP_PLUGIN="org.apache.maven.plugins:maven-dependency-plugin:3.8.1"

STATE="${VIGIL_KAFKA_DIR:-/tmp/vigil-kafka}"
CACHE="${VIGIL_KAFKA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vigil/kafka/$KAFKA_VERSION}"
HEAP="${VIGIL_KAFKA_HEAP:--Xms256m -Xmx512m}"
TIMEOUT="${VIGIL_KAFKA_TIMEOUT:-90}"

# Make paths absolute so the script works from any working directory.
mkabs() { case "$1" in /*) printf '%s' "$1" ;; *) printf '%s/%s' "$PWD" "$1" ;; esac; }
STATE="$(mkabs "$STATE")"
CACHE="$(mkabs "$CACHE")"

LIBS="$CACHE/libs"
DATA="$STATE/data"
PIDFILE="$STATE/broker.pid"
LOGFILE="$STATE/broker.log"
PROPS="$STATE/server.properties"
BOOTSTRAP_FILE="$STATE/bootstrap"

log() { echo "kafka.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- jars ----

# Fetch kafka_2.13 + kafka-tools (admin/console tools) + an slf4j binding with
# all runtime dependencies into $LIBS. Skipped (no network) once cached.
fetch_jars() {
  [[ -f "$CACHE/.complete" ]] && return 0
  command -v mvn >/dev/null || die "mvn not found (needed once to fetch Kafka $KAFKA_VERSION)"
  log "fetching Kafka $KAFKA_VERSION jars from Maven Central into $CACHE"
  mkdir -p "$CACHE"
  local tmp
  tmp="$(mktemp -d "$CACHE/.fetch.XXXXXX")"
  cat >"$tmp/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>vigil.local</groupId><artifactId>kafka-runtime</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$KAFKA_VERSION</version>
      <!-- Kafka Connect (jetty, jersey, ...) is not needed for the CLI tools -->
      <exclusions><exclusion><groupId>org.apache.kafka</groupId><artifactId>connect-runtime</artifactId></exclusion></exclusions>
    </dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>$LOG4J_VERSION</version></dependency>
  </dependencies>
</project>
EOF
  # shellcheck disable=SC2086 # VIGIL_KAFKA_MVN_ARGS is a word list on purpose
  if ! mvn -q -B -f "$tmp/pom.xml" ${VIGIL_KAFKA_MVN_ARGS:-} \
      "$DEP_PLUGIN:copy-dependencies" -DincludeScope=runtime \
      -DoutputDirectory="$tmp/libs" >"$tmp/mvn.log" 2>&1; then
    cat "$tmp/mvn.log" >&2
    rm -rf "$tmp"
    die "maven could not fetch org.apache.kafka:kafka_2.13:$KAFKA_VERSION"
  fi
  # Swap in atomically, then mark the cache complete.
  rm -rf "$LIBS"
  mv "$tmp/libs" "$LIBS"
  rm -rf "$tmp"
  touch "$CACHE/.complete"
  log "cached $(find "$LIBS" -name '*.jar' | wc -l) jars in $LIBS"
}

# Quiet log4j2 config for CLI tools (the broker gets its own, see write_config).
tools_log4j() {
  local f="$CACHE/tools-log4j2.properties"
  [[ -f "$f" ]] || cat >"$f" <<'EOF'
status = error
appender.err.type = Console
appender.err.name = ERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.err.ref = ERR
EOF
  printf '%s' "$f"
}

# run_tool CLASS ARGS... : run a Kafka main class with a small, fast-starting JVM.
run_tool() {
  local cls="$1"; shift
  fetch_jars
  java -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="file:$(tools_log4j)" \
    -cp "$LIBS/*" "$cls" "$@"
}

# ------------------------------------------------------------- helpers ----

bootstrap() { cat "$BOOTSTRAP_FILE" 2>/dev/null; }
port_of() { local b; b="$(bootstrap)"; printf '%s' "${b##*:}"; }

# Something accepts TCP connections on 127.0.0.1:$1.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Pick a random free port in 20000-59999 (not in use and not $1).
free_port() {
  local p i
  for ((i = 0; i < 200; i++)); do
    p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
    [[ "$p" != "${1:-}" ]] && ! port_open "$p" && { echo "$p"; return 0; }
  done
  die "no free TCP port found on 127.0.0.1"
}

# The pid in $PIDFILE is alive and is our broker (guards against pid reuse).
broker_pid() {
  local pid
  pid="$(cat "$PIDFILE" 2>/dev/null)" || return 1
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$PROPS" || return 1
  echo "$pid"
}

# A real Kafka protocol round trip: send ApiVersions v0 (correlation id 7) and
# check the reply's correlation id. Pure bash, no JVM, ~ms.
api_versions_ok() {
  local port="$1" reply
  reply="$(
    exec 2>/dev/null
    exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
    # size=10 | api_key=18 | api_version=0 | correlation_id=7 | client_id=""
    printf '\x00\x00\x00\x0a\x00\x12\x00\x00\x00\x00\x00\x07\x00\x00' >&3
    timeout 5 head -c 8 <&3 | od -An -tx1 | tr -d ' \n'
  )" || return 1
  [[ "${reply:8:8}" == "00000007" ]]
}

running() { broker_pid >/dev/null && api_versions_ok "$(port_of)"; }

# ------------------------------------------------------------- config ----

write_config() {
  local port="$1" cport="$2"
  cat >"$PROPS" <<EOF
# Generated by deploy/kafka/kafka.sh: single-node KRaft broker+controller.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$DATA
num.partitions=4
auto.create.topics.enable=true
# Single replica everywhere; small internal topics so first use is fast.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# Small segments; keep data a day.
log.segment.bytes=16777216
log.retention.hours=24
EOF
  cat >"$STATE/log4j2.properties" <<'EOF'
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = OUT
logger.kafka.name = kafka.server.KafkaApis
logger.kafka.level = WARN
EOF
  echo "127.0.0.1:$port" >"$BOOTSTRAP_FILE"
  echo "$cport" >"$STATE/controller.port"
}

# Fresh state: new ports, config, and storage formatted with a random cluster id.
init_state() {
  rm -rf "$DATA" "$PIDFILE"
  mkdir -p "$DATA"
  : >"$LOGFILE"
  local port cport cid
  port="$(free_port)"
  cport="$(free_port "$port")"
  write_config "$port" "$cport"
  # Kafka cluster ids are 16 random bytes, base64url without padding.
  cid="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
  echo "$cid" >"$STATE/cluster.id"
  run_tool kafka.tools.StorageTool format -t "$cid" -c "$PROPS" >"$STATE/format.log" 2>&1 ||
    { cat "$STATE/format.log" >&2; die "storage format failed"; }
}

# ------------------------------------------------------- start / stop ----

fail_start() {
  log "broker log tail ($LOGFILE):"
  tail -n 40 "$LOGFILE" >&2 || true
  die "$1"
}

start_broker() {
  running && return 0
  [[ -f "$PROPS" && -f "$DATA/meta.properties" ]] || die "no broker state in $STATE (run 'up' first)"
  local port cport
  port="$(port_of)"
  cport="$(cat "$STATE/controller.port")"
  port_open "$port" && die "port $port is taken by another process"
  port_open "$cport" && die "controller port $cport is taken by another process"
  fetch_jars
  # Detached from our stdio/session so "$(kafka.sh up)" returns and Ctrl-C
  # in a calling make does not kill the broker.
  (
    cd "$STATE"
    exec 9>&- # do not hand our lock fd to the long-lived broker
    # shellcheck disable=SC2086 # HEAP is a list of JVM flags
    exec setsid java $HEAP -XX:+UseG1GC -Djava.awt.headless=true \
      -Dlog4j2.configurationFile="file:$STATE/log4j2.properties" \
      -Dkafka.logs.dir="$STATE" \
      -cp "$LIBS/*" kafka.Kafka "$PROPS" </dev/null >>"$LOGFILE" 2>&1
  ) &
  local pid=$!
  echo "$pid" >"$PIDFILE"
  log "starting broker (pid $pid) on 127.0.0.1:$port, log $LOGFILE"

  # Wait: process alive -> port accepts -> ApiVersions -> metadata (list topics).
  # Alive is `kill -0` on the pid just started, not broker_pid: until the
  # subshell has exec'd java its command line is still this script's (a
  # loaded machine showed that window, and a false "exited during startup").
  local deadline=$((SECONDS + TIMEOUT))
  until api_versions_ok "$port"; do
    kill -0 "$pid" 2>/dev/null || fail_start "broker exited during startup"
    ((SECONDS < deadline)) || fail_start "broker did not answer within ${TIMEOUT}s"
    sleep 0.3
  done
  until run_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$port" \
      --list >/dev/null 2>"$STATE/probe.log"; do
    kill -0 "$pid" 2>/dev/null || fail_start "broker exited during startup"
    ((SECONDS < deadline)) || { cat "$STATE/probe.log" >&2; fail_start "broker metadata not ready within ${TIMEOUT}s"; }
    sleep 1
  done
  # Create __consumer_offsets now (a FindCoordinator for a dummy group does it):
  # otherwise a client's first group join fails with "coordinator not
  # available" and kafka-go then sleeps JoinGroupBackoff (5 s).
  if [[ ! -d "$DATA/__consumer_offsets-0" ]]; then
    run_tool org.apache.kafka.tools.consumer.group.ConsumerGroupCommand \
      --bootstrap-server "127.0.0.1:$port" --describe --group vigil-warmup >/dev/null 2>&1 || true
  fi
  log "broker ready on 127.0.0.1:$port"
}

stop_broker() {
  local pid i
  if pid="$(broker_pid)"; then
    log "stopping broker (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 300; i++)); do # 30 s
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "broker did not stop in 30s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
    fi
  fi
  rm -f "$PIDFILE"
}

# ----------------------------------------------------------- commands ----

cmd_up() {
  if running; then bootstrap; return 0; fi
  fetch_jars
  stop_broker # clean up a stale/hung process from this state dir, if any
  local port cport
  if [[ -f "$DATA/meta.properties" && -f "$PROPS" ]]; then
    port="$(port_of)"; cport="$(cat "$STATE/controller.port" 2>/dev/null || echo 0)"
    if port_open "$port" || port_open "$cport"; then
      log "old ports $port/$cport are taken; starting a fresh broker"
      init_state
    else
      log "reusing existing data in $STATE"
    fi
  else
    init_state
  fi
  start_broker
  bootstrap
}

# Serialize commands on one state dir (e.g. parallel test packages).
mkdir -p "$STATE"
if command -v flock >/dev/null; then
  exec 9>"$STATE/.lock"
  flock -w 180 9 || die "timed out waiting for lock $STATE/.lock"
fi

usage() { sed -n '6,25p' "$0" | sed 's/^# \{0,1\}//' >&2; }

cmd="${1:-}"
shift || true
case "$cmd" in
  up) cmd_up ;;
  down)
    stop_broker
    if [[ "${1:-}" == "--wipe" || "${VIGIL_KAFKA_WIPE:-0}" == 1 ]]; then
      rm -rf "$DATA" "$BOOTSTRAP_FILE" "$PROPS" "$STATE"/*.log "$STATE/controller.port" "$STATE/cluster.id" "$STATE/log4j2.properties"
      log "wiped $STATE"
    fi
    ;;
  status)
    if running; then bootstrap; else log "not running"; exit 1; fi
    ;;
  env)
    running || die "broker not running (run: deploy/kafka/kafka.sh up)"
    echo "VIGIL_TEST_KAFKA=$(bootstrap)"
    ;;
  stop-broker) stop_broker ;;
  start-broker) start_broker; bootstrap ;;
  restart-broker) stop_broker; start_broker; bootstrap ;;
  topics)
    running || die "broker not running"
    run_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$(bootstrap)" "$@"
    ;;
  tool)
    [[ $# -ge 1 ]] || die "usage: kafka.sh tool CLASS [ARGS...]"
    run_tool "$@"
    ;;
  help | -h | --help) usage; exit 0 ;;
  *) usage; exit 2 ;;
esac
