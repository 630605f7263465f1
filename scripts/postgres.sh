#!/usr/bin/env bash
# Runs a private PostgreSQL cluster on loopback for development and tests.
#
#   scripts/postgres.sh start   install if missing, init if needed, start, wait
#   scripts/postgres.sh stop    stop the cluster this script started
#   scripts/postgres.sh status  say whether it answers
#   scripts/postgres.sh url     print the URL of the cluster's `postgres` database
#
# Data, log and socket live under $ECSTATIC_RUN_DIR/postgres (default: .run/ in
# the repository); port ECSTATIC_PG_PORT (5433). The superuser is `ecstatic`,
# trusted from 127.0.0.1 only: a throwaway cluster for tests, not production.
# PostgreSQL refuses to run as root, so as root the cluster runs as the
# `postgres` system user that Debian's package creates.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
run_dir=${ECSTATIC_RUN_DIR:-$root/.run}
pg_dir=$run_dir/postgres
data=$pg_dir/data
port=${ECSTATIC_PG_PORT:-5433}
lock=$run_dir/postgres.lock

log() { printf 'postgres.sh: %s\n' "$*" >&2; }

bin_dir() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  [ -n "$dir" ] && echo "$dir"
}

install_if_missing() {
  [ -n "$(bin_dir)" ] && return
  log "installing postgresql from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq postgresql >/dev/null
}

# Runs a command as the cluster's owner.
as_owner() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

answers() {
  local bin
  bin=$(bin_dir) || return 1
  "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" 2>/dev/null
}

start() {
  mkdir -p "$run_dir"
  # Test binaries run in parallel and may all call `start`: one at a time.
  exec 9>"$lock"
  flock 9
  if answers; then
    log "a server already answers on 127.0.0.1:$port; using it"
    return
  fi
  install_if_missing
  local bin
  bin=$(bin_dir)
  mkdir -p "$pg_dir"
  [ "$(id -u)" = 0 ] && chown postgres: "$pg_dir"
  if [ ! -f "$data/PG_VERSION" ]; then
    log "creating a cluster in $data"
    as_owner "$bin/initdb" -D "$data" -U ecstatic --auth=trust -E UTF8 >"$pg_dir/initdb.log"
  fi
  log "starting on 127.0.0.1:$port"
  # setsid: a Ctrl-C in a test run must not take the cluster down with it;
  # 9>&-: the server must not inherit (and hold) the start lock.
  as_owner setsid "$bin/pg_ctl" -D "$data" -l "$pg_dir/server.log" -w -t 60 \
    -o "-p $port -k $pg_dir -c listen_addresses=127.0.0.1" start >/dev/null 9>&- || {
    log "start failed; last log lines:"
    tail -n 20 "$pg_dir/server.log" >&2 || true
    exit 1
  }
  log "ready: $(url)"
}

stop() {
  local bin
  bin=$(bin_dir) || { log "postgresql is not installed"; return; }
  [ -f "$data/postmaster.pid" ] || { log "not running from $data"; return; }
  as_owner "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null
  log "stopped"
}

url() {
  echo "postgres://ecstatic@127.0.0.1:$port/postgres"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) if answers; then echo up; else echo down; exit 1; fi ;;
  url) url ;;
  *) echo "usage: $0 start|stop|status|url" >&2; exit 2 ;;
esac
