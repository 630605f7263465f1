#!/usr/bin/env bash
# Runs a private ClickHouse server on loopback for development and tests.
#
#   scripts/clickhouse.sh start   install if missing, start, wait for `SELECT 1`
#   scripts/clickhouse.sh stop    stop the server this script started
#   scripts/clickhouse.sh status  say whether it answers
#
# Everything lives under $ECSTATIC_RUN_DIR (default: .run/ in the repository):
# data, logs, config and the pid file. Ports: ECSTATIC_CH_HTTP_PORT (8123) and
# ECSTATIC_CH_TCP_PORT (9000).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
run_dir=${ECSTATIC_RUN_DIR:-$root/.run}
ch_dir=$run_dir/clickhouse
http_port=${ECSTATIC_CH_HTTP_PORT:-8123}
tcp_port=${ECSTATIC_CH_TCP_PORT:-9000}
pid_file=$ch_dir/server.pid

log() { printf 'clickhouse.sh: %s\n' "$*" >&2; }

answers() {
  curl -fsS --max-time 2 "http://127.0.0.1:$http_port/?query=SELECT%201" 2>/dev/null | grep -q '^1$'
}

install_if_missing() {
  if command -v clickhouse-server >/dev/null 2>&1 || [ -x /usr/sbin/clickhouse-server ]; then
    return
  fi
  log "installing clickhouse-server from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq clickhouse-server clickhouse-client curl >/dev/null
}

write_config() {
  mkdir -p "$ch_dir/data" "$ch_dir/tmp" "$ch_dir/user_files" "$ch_dir/format_schemas" "$ch_dir/log"
  cat >"$ch_dir/config.xml" <<XML
<?xml version="1.0"?>
<yandex>
  <logger>
    <level>warning</level>
    <log>$ch_dir/log/server.log</log>
    <errorlog>$ch_dir/log/server.err.log</errorlog>
    <size>100M</size>
    <count>2</count>
  </logger>
  <http_port>$http_port</http_port>
  <tcp_port>$tcp_port</tcp_port>
  <listen_host>127.0.0.1</listen_host>
  <max_connections>4096</max_connections>
  <keep_alive_timeout>10</keep_alive_timeout>
  <max_concurrent_queries>200</max_concurrent_queries>
  <mark_cache_size>536870912</mark_cache_size>
  <path>$ch_dir/data/</path>
  <tmp_path>$ch_dir/tmp/</tmp_path>
  <user_files_path>$ch_dir/user_files/</user_files_path>
  <format_schema_path>$ch_dir/format_schemas/</format_schema_path>
  <users_config>$ch_dir/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mlock_executable>false</mlock_executable>
</yandex>
XML
  cat >"$ch_dir/users.xml" <<XML
<?xml version="1.0"?>
<yandex>
  <profiles>
    <default>
      <max_memory_usage>4000000000</max_memory_usage>
      <load_balancing>random</load_balancing>
    </default>
  </profiles>
  <users>
    <default>
      <password></password>
      <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </default>
  </users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries>
    <errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows>
    <execution_time>0</execution_time></interval></default></quotas>
</yandex>
XML
}

start() {
  if answers; then
    log "a server already answers on 127.0.0.1:$http_port; using it"
    return
  fi
  install_if_missing
  write_config
  local bin
  bin=$(command -v clickhouse-server || echo /usr/sbin/clickhouse-server)
  log "starting $bin with data in $ch_dir"
  # setsid: the server must not share our process group, so that a Ctrl-C in
  # a test run does not take it down before `stop` flushes it.
  setsid "$bin" --config-file="$ch_dir/config.xml" >"$ch_dir/log/stdout.log" 2>&1 &
  echo $! >"$pid_file"
  for _ in $(seq 1 120); do
    if answers; then
      log "ready on http://127.0.0.1:$http_port"
      return
    fi
    if ! kill -0 "$(cat "$pid_file")" 2>/dev/null; then
      log "server exited during start; last log lines:"
      tail -n 20 "$ch_dir/log/server.err.log" "$ch_dir/log/stdout.log" >&2 || true
      exit 1
    fi
    sleep 0.5
  done
  log "server did not answer within 60 s; see $ch_dir/log/"
  exit 1
}

stop() {
  [ -f "$pid_file" ] || { log "not started by this script"; return; }
  local pid
  pid=$(cat "$pid_file")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 60); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.5
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  fi
  rm -f "$pid_file"
  log "stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) if answers; then echo up; else echo down; exit 1; fi ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
