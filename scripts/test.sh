#!/usr/bin/env bash
# Runs every test of the repository, as CI does:
#   formatting, clippy, unit, integration and end-to-end tests (against a real
#   ClickHouse and a real PostgreSQL on loopback, real git pushes), doc tests,
#   and a short fuzzing run of every fuzz target.
#
# Installs what it needs (Debian packages, cargo-fuzz), starts ClickHouse and
# PostgreSQL under .run/ if they are not running, and stops what it started.
#
#   scripts/test.sh            everything
#   FUZZ_SECONDS=0 scripts/test.sh    skip fuzzing
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export ECSTATIC_RUN_DIR=${ECSTATIC_RUN_DIR:-$root/.run}
fuzz_seconds=${FUZZ_SECONDS:-15}

log() { printf '\n== %s\n' "$*" >&2; }

install_packages() {
  local missing=()
  command -v git >/dev/null || missing+=(git)
  command -v curl >/dev/null || missing+=(curl)
  [ -x /usr/sbin/clickhouse-server ] || command -v clickhouse-server >/dev/null \
    || missing+=(clickhouse-server clickhouse-client)
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

started=()
cleanup() {
  local status=$?
  for service in "${started[@]}"; do
    "scripts/$service.sh" stop || true
  done
  exit $status
}
trap cleanup EXIT

install_packages
# query/tests/sql_current.py runs every query shape on a current ClickHouse.
python3 -c 'import chdb' 2>/dev/null \
  || { log "installing chdb-core"; python3 -m pip install -q chdb-core; }

if ! scripts/clickhouse.sh status >/dev/null 2>&1; then
  scripts/clickhouse.sh start
  started+=(clickhouse)
fi
export ECSTATIC_TEST_CLICKHOUSE_URL=${ECSTATIC_TEST_CLICKHOUSE_URL:-http://127.0.0.1:${ECSTATIC_CH_HTTP_PORT:-8123}}

if [ -x scripts/postgres.sh ]; then
  if ! scripts/postgres.sh status >/dev/null 2>&1; then
    scripts/postgres.sh start
    started+=(postgres)
  fi
  export ECSTATIC_TEST_POSTGRES_URL=${ECSTATIC_TEST_POSTGRES_URL:-$(scripts/postgres.sh url)}
fi

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

log "building every binary (the end-to-end tests start them)"
cargo build --workspace --bins --locked

log "tests"
summary=$ECSTATIC_RUN_DIR/test-summary.txt
mkdir -p "$ECSTATIC_RUN_DIR"
if command -v cargo-nextest >/dev/null 2>&1; then
  # Doc tests first (nextest does not run them), so that the test runner's
  # own summary of every other test closes the test output.
  cargo test --workspace --doc --locked --quiet
  cargo nextest run --workspace --locked --no-fail-fast 2>&1 | tee "$summary"
  counts=$(grep -Eo '[0-9]+ tests? run: [0-9]+ passed' "$summary" | tail -n 1)
  passed=$(echo "$counts" | grep -Eo '[0-9]+ passed' | grep -Eo '[0-9]+')
else
  cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$summary"
  passed=$(grep -Eo '^test result: ok\. [0-9]+ passed' "$summary" \
    | awk '{n += $4} END {print n + 0}')
fi

if [ "$fuzz_seconds" != 0 ] && [ -x scripts/fuzz.sh ]; then
  log "fuzzing every target for ${fuzz_seconds}s"
  scripts/fuzz.sh "$fuzz_seconds"
fi

log "all tests passed"
echo "tests: ${passed:-0} passed, 0 failed"
