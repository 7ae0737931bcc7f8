#!/usr/bin/env bash
# Throwaway ClickHouse server for vigil's integration tests.
#
# Runs Debian's clickhouse-server (18.16 on Debian 12) as the CURRENT user,
# listening on 127.0.0.1 only, on free ports picked at start, with all state
# (config, data, logs, pid) under one directory. No systemd, no system service.
#
# Usage: deploy/clickhouse/clickhouse.sh COMMAND [--wipe]
#   up            install the package if missing, start the server, wait until it
#                 answers a query; prints the native address (127.0.0.1:PORT).
#                 Idempotent: if already running, just prints the address.
#   down [--wipe] stop the server (SIGTERM, then SIGKILL); idempotent.
#                 --wipe (or VIGIL_CLICKHOUSE_WIPE=1) also deletes the state dir.
#   status        exit 0 and print the addresses if the server is up, else exit 1.
#   env           print VIGIL_TEST_CLICKHOUSE=127.0.0.1:PORT for the running server.
#   stop-server   stop the server but keep data and ports (outage tests).
#   start-server  start it again on the same ports with the same data.
#
# Environment:
#   VIGIL_CLICKHOUSE_DIR      state dir (default /tmp/vigil-clickhouse)
#   VIGIL_CLICKHOUSE_TIMEOUT  seconds to wait for readiness (default 60)
#   VIGIL_CLICKHOUSE_WIPE=1   make `down` delete the state dir
#
# State dir layout: config.xml users.xml pid native http data/ tmp/ log/ ...
set -euo pipefail

DIR="${VIGIL_CLICKHOUSE_DIR:-/tmp/vigil-clickhouse}"
case "$DIR" in /*) ;; *) DIR="$PWD/$DIR" ;; esac
DIR="${DIR%/}"
TIMEOUT="${VIGIL_CLICKHOUSE_TIMEOUT:-60}"
CONFIG="$DIR/config.xml"
PIDFILE="$DIR/pid"
MARKER="vigil-clickhouse-state-dir" # written into config.xml; guards --wipe

log() { echo "clickhouse.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- binaries

# Find the server and client commands (Debian: clickhouse-server/-client;
# upstream packages: one `clickhouse` binary with `server`/`client` modes).
SERVER=() CLIENT=()
find_bins() {
  local p
  SERVER=() CLIENT=()
  for p in clickhouse-server /usr/sbin/clickhouse-server /usr/bin/clickhouse-server; do
    if command -v "$p" >/dev/null 2>&1; then SERVER=("$(command -v "$p")"); break; fi
  done
  for p in clickhouse-client /usr/bin/clickhouse-client; do
    if command -v "$p" >/dev/null 2>&1; then CLIENT=("$(command -v "$p")"); break; fi
  done
  if command -v clickhouse >/dev/null 2>&1; then
    [ ${#SERVER[@]} -gt 0 ] || SERVER=("$(command -v clickhouse)" server)
    [ ${#CLIENT[@]} -gt 0 ] || CLIENT=("$(command -v clickhouse)" client)
  fi
  [ ${#SERVER[@]} -gt 0 ] && [ ${#CLIENT[@]} -gt 0 ]
}

# Install Debian's clickhouse-server + clickhouse-client if they are missing.
ensure_installed() {
  if find_bins; then return 0; fi
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "clickhouse is not installed and we are not root (no sudo)"
    sudo="sudo"
  fi
  export DEBIAN_FRONTEND=noninteractive
  log "installing clickhouse-server and clickhouse-client with apt-get"

  # The package's postinst would start the system service (on 9000/8123) via
  # invoke-rc.d; a temporary policy-rc.d that answers 101 forbids that.
  local policy=/usr/sbin/policy-rc.d added_policy=0
  if [ ! -e "$policy" ]; then
    $sudo sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy"
    added_policy=1
    # shellcheck disable=SC2064 # expand now: locals are gone at exit
    trap "$sudo rm -f $policy" EXIT
  fi

  local pkgs=(clickhouse-server clickhouse-client) rc=0
  local install=(apt-get install -y -q -o Dpkg::Options::=--force-confdef
                 -o Dpkg::Options::=--force-confold --no-install-recommends "${pkgs[@]}")
  [ -z "$sudo" ] || install=("$sudo" "${install[@]}")
  # Refresh the package lists only when the package is unknown or the install fails
  # (e.g. stale lists pointing at removed .debs).
  if ! apt-cache show clickhouse-server >/dev/null 2>&1; then
    $sudo apt-get update -q >&2 || rc=$?
  fi
  if [ "$rc" -eq 0 ] && ! "${install[@]}" >&2; then
    log "install failed; running apt-get update and retrying"
    { $sudo apt-get update -q && "${install[@]}"; } >&2 || rc=$?
  fi

  if [ "$added_policy" -eq 1 ]; then $sudo rm -f "$policy"; trap - EXIT; fi
  [ "$rc" -eq 0 ] || die "apt-get failed (exit $rc)"
  find_bins || die "clickhouse binaries not found after install"
}

# ---------------------------------------------------------------- ports

port_free() {
  local p=$1
  if command -v ss >/dev/null 2>&1; then
    [ -z "$(ss -Htln "sport = :$p" 2>/dev/null)" ] || return 1
  fi
  # Nothing must answer on it either (also the only check when ss is missing).
  ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null
}

# Random free port below Linux's ephemeral range (32768+), not in $1 ($2...).
pick_port() {
  local p
  for _ in $(seq 1 200); do
    p=$((20000 + RANDOM % 12000))
    case " $* " in *" $p "*) continue ;; esac
    if port_free "$p"; then echo "$p"; return 0; fi
  done
  die "no free TCP port found"
}

# ---------------------------------------------------------------- config

write_config() {
  local tcp=$1 http=$2
  mkdir -p "$DIR"/{data,tmp,user_files,format_schemas,log}
  cat >"$CONFIG" <<EOF
<?xml version="1.0"?>
<!-- $MARKER: generated by deploy/clickhouse/clickhouse.sh; rewritten on each start -->
<yandex>
    <logger>
        <level>information</level>
        <log>$DIR/log/clickhouse-server.log</log>
        <errorlog>$DIR/log/clickhouse-server.err.log</errorlog>
        <size>50M</size>
        <count>2</count>
    </logger>

    <!-- loopback only; no interserver port, no TLS ports -->
    <listen_host>127.0.0.1</listen_host>
    <tcp_port>$tcp</tcp_port>
    <http_port>$http</http_port>

    <path>$DIR/data/</path>
    <tmp_path>$DIR/tmp/</tmp_path>
    <user_files_path>$DIR/user_files/</user_files_path>
    <format_schema_path>$DIR/format_schemas/</format_schema_path>
    <users_config>$DIR/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>

    <!-- small caches: this is a test server -->
    <mark_cache_size>67108864</mark_cache_size>
    <uncompressed_cache_size>67108864</uncompressed_cache_size>
    <max_concurrent_queries>100</max_concurrent_queries>
    <max_connections>1024</max_connections>
    <keep_alive_timeout>3</keep_alive_timeout>
    <mlock_executable>false</mlock_executable>
</yandex>
EOF
  # default user: no password, localhost only.
  cat >"$DIR/users.xml" <<EOF
<?xml version="1.0"?>
<yandex>
    <profiles>
        <default>
            <max_memory_usage>4000000000</max_memory_usage>
            <use_uncompressed_cache>0</use_uncompressed_cache>
            <load_balancing>random</load_balancing>
            <!-- 18.16 needs this for LowCardinality(...) columns -->
            <allow_experimental_low_cardinality_type>1</allow_experimental_low_cardinality_type>
        </default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks>
                <ip>::1</ip>
                <ip>127.0.0.1</ip>
            </networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
EOF
}

# ---------------------------------------------------------------- process

# Pid of our server if it is alive (pid file + cmdline points at our config).
running_pid() {
  [ -f "$PIDFILE" ] || return 1
  local pid
  pid="$(cat "$PIDFILE" 2>/dev/null)" || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  local cmdline
  cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
  [[ "$cmdline" == *"$CONFIG"* ]] || return 1
  echo "$pid"
}

port_of() { local a; a="$(cat "$DIR/$1" 2>/dev/null)" || return 1; echo "${a##*:}"; }

query() { # query PORT SQL
  [ ${#CLIENT[@]} -gt 0 ] || find_bins || return 1
  # `timeout`: a foreign listener on the port must not hang us (receive_timeout is 300 s).
  timeout 5 "${CLIENT[@]}" --host 127.0.0.1 --port "$1" --connect_timeout 2 \
    --receive_timeout 3 --send_timeout 3 -q "$2" 2>/dev/null
}

show_logs() {
  local f
  for f in "$DIR/log/stdout.log" "$DIR/log/clickhouse-server.err.log" "$DIR/log/clickhouse-server.log"; do
    [ -s "$f" ] || continue
    echo "----- tail $f" >&2
    tail -n 30 "$f" >&2
  done
}

# Start the server on the given ports and wait for `SELECT version()`.
# Returns 2 if the ports were taken meanwhile (caller may retry with new ones).
start_on() {
  local tcp=$1 http=$2 pid t0=$SECONDS
  port_free "$tcp" && port_free "$http" || return 2
  write_config "$tcp" "$http"
  echo "127.0.0.1:$tcp" >"$DIR/native"
  echo "127.0.0.1:$http" >"$DIR/http"
  : >"$DIR/log/stdout.log"
  # setsid: own session, so the server outlives the calling shell/terminal.
  # In a script (no job control) setsid execs in place, so $! is the server pid.
  setsid "${SERVER[@]}" --config-file="$CONFIG" </dev/null >>"$DIR/log/stdout.log" 2>&1 &
  pid=$!
  echo "$pid" >"$PIDFILE"
  log "started pid $pid (native 127.0.0.1:$tcp, http 127.0.0.1:$http), waiting up to ${TIMEOUT}s"
  while :; do
    if query "$tcp" 'SELECT version()' >/dev/null; then
      log "ready: ClickHouse $(query "$tcp" 'SELECT version()')"
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$PIDFILE"
      if grep -qs "Address already in use" "$DIR/log/stdout.log" "$DIR/log/clickhouse-server.err.log"; then
        return 2
      fi
      show_logs
      die "server exited during startup"
    fi
    if [ $((SECONDS - t0)) -ge "$TIMEOUT" ]; then
      show_logs
      stop_server
      die "server did not answer within ${TIMEOUT}s"
    fi
    sleep 0.2
  done
}

# SIGTERM, wait up to 30 s, then SIGKILL. Idempotent.
stop_server() {
  local pid t0=$SECONDS
  if pid="$(running_pid)"; then
    log "stopping pid $pid"
    kill -TERM "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null && [ $((SECONDS - t0)) -lt 30 ]; do
      sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "pid $pid still alive after 30s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
    fi
  fi
  rm -f "$PIDFILE"
}

# ---------------------------------------------------------------- commands

cmd_up() {
  local tcp http attempt rc
  if running_pid >/dev/null && query "$(port_of native)" 'SELECT 1' >/dev/null; then
    cat "$DIR/native"
    return 0
  fi
  stop_server # a stale or wedged process from an earlier run
  ensure_installed
  mkdir -p "$DIR"
  for attempt in 1 2 3; do
    tcp="$(pick_port)"
    http="$(pick_port "$tcp")"
    rc=0
    start_on "$tcp" "$http" || rc=$?
    [ "$rc" -eq 0 ] && { cat "$DIR/native"; return 0; }
    log "ports $tcp/$http were taken (attempt $attempt), retrying"
  done
  show_logs
  die "could not start the server"
}

cmd_start_server() {
  local tcp http rc=0
  if running_pid >/dev/null; then cat "$DIR/native"; return 0; fi
  # No recorded ports (never started, or `down` ran): behave like `up`.
  if ! tcp="$(port_of native)" || ! http="$(port_of http)"; then
    cmd_up
    return
  fi
  ensure_installed
  start_on "$tcp" "$http" || rc=$?
  [ "$rc" -eq 0 ] || die "could not restart on ports $tcp/$http (in use by something else?)"
  cat "$DIR/native"
}

cmd_down() {
  local wipe="${VIGIL_CLICKHOUSE_WIPE:-0}"
  [ "${1:-}" = "--wipe" ] && wipe=1
  stop_server
  rm -f "$DIR/native" "$DIR/http"
  if [ "$wipe" = 1 ] && [ -d "$DIR" ]; then
    # Only delete a directory this script created.
    if grep -qsF "$MARKER" "$CONFIG"; then
      rm -rf "$DIR"
      log "wiped $DIR"
    else
      die "refusing to wipe $DIR: no $MARKER config in it"
    fi
  fi
}

cmd_status() {
  local pid
  if pid="$(running_pid)" && query "$(port_of native)" 'SELECT 1' >/dev/null; then
    echo "native=$(cat "$DIR/native") http=$(cat "$DIR/http") pid=$pid dir=$DIR"
    return 0
  fi
  echo "clickhouse: not running (dir $DIR)"
  return 1
}

cmd_env() {
  running_pid >/dev/null || die "server not running (dir $DIR); run: $0 up"
  echo "VIGIL_TEST_CLICKHOUSE=$(cat "$DIR/native")"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down "${2:-}" ;;
  status) cmd_status ;;
  env) cmd_env ;;
  stop-server) stop_server ;;
  start-server) cmd_start_server ;;
  *)
    sed -n '8,22p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
