#!/usr/bin/env bash
# Brings up Ecstatic on this machine, on loopback only:
#   ClickHouse (installed from Debian's packages if missing), then
#   ecstatic-api, ecstatic-query, ecstatic-ingest and ecstatic-git (release
#   builds), a demo account with three sites, a replay of real and generated
#   traffic into ingest through ecstatic-loadgen, the rows per site read back
#   from ClickHouse, and a first analytics answer from the query API.
#
#   scripts/up.sh         start everything (stops an earlier run first)
#   scripts/up.sh stop    stop what it started, ClickHouse included
#
# State lives under .run/ (ECSTATIC_RUN_DIR): data, logs, pids and the JWT key.
# GENERATED=N sets how many generated accesses are sent (default 1,000,000).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export ECSTATIC_RUN_DIR=${ECSTATIC_RUN_DIR:-$root/.run}
run=$ECSTATIC_RUN_DIR
bin=${CARGO_TARGET_DIR:-$root/target}/release
generated=${GENERATED:-1000000}
email=demo@example.com
password=demo-password-1234

say() { printf '\n== %s\n' "$*" >&2; }
die() { printf 'up.sh: %s\n' "$*" >&2; exit 1; }

stop_services() {
  for name in git ingest query api; do
    local pid_file=$run/pids/$name.pid
    [ -f "$pid_file" ] || continue
    local pid
    pid=$(cat "$pid_file")
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid"
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$pid_file"
  done
}

if [ "${1:-}" = stop ]; then
  stop_services
  scripts/clickhouse.sh stop
  exit 0
fi

if ! command -v cargo >/dev/null; then
  die "cargo is missing: install Rust (https://rustup.rs) first"
fi
missing=()
command -v curl >/dev/null || missing+=(curl)
command -v git >/dev/null || missing+=(git)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

stop_services
mkdir -p "$run/logs" "$run/pids" "$run/data"

say "ClickHouse"
scripts/clickhouse.sh start

say "building release binaries (the first build takes several minutes)"
cargo build --release --locked --bins

if [ ! -s "$run/jwt-secret" ]; then
  (umask 077; head -c 48 /dev/urandom | base64 | tr -d '\n' >"$run/jwt-secret")
fi
ECSTATIC_JWT_SECRET=$(cat "$run/jwt-secret")
export ECSTATIC_JWT_SECRET
export ECSTATIC_DATA_DIR=$run/data

start() {
  local name=$1 probe=$2
  shift 2
  "$bin/ecstatic-$name" "$@" >"$run/logs/$name.log" 2>&1 &
  echo $! >"$run/pids/$name.pid"
  for _ in $(seq 1 200); do
    if curl -fsS --max-time 1 "$probe" >/dev/null 2>&1; then
      printf '%-7s ready (%s), log: %s\n' "$name" "$probe" "$run/logs/$name.log" >&2
      return
    fi
    kill -0 "$(cat "$run/pids/$name.pid")" 2>/dev/null \
      || die "ecstatic-$name exited; see $run/logs/$name.log"
    sleep 0.1
  done
  die "ecstatic-$name did not become ready; see $run/logs/$name.log"
}

say "services"
# git passes each pusher's address on in X-Forwarded-For, so that failed
# sign-ins are counted per pusher rather than all against git's address.
start api http://127.0.0.1:8080/readyz --client-ip-header X-Forwarded-For
start query http://127.0.0.1:8081/readyz
start ingest http://127.0.0.1:9100/readyz serve
start git http://127.0.0.1:8082/healthz

say "a demo account ($email) with three sites"
curl -sS -o /dev/null -X POST http://127.0.0.1:8080/v1/accounts \
  -H 'content-type: application/json' \
  -d "{\"email\":\"$email\",\"password\":\"$password\"}" || true
token() {
  curl -fsS -X POST http://127.0.0.1:8080/v1/sessions -H 'content-type: application/json' \
    -d "{\"email\":\"$email\",\"password\":\"$password\"}" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}
access_token=$(token)
site_count=$(curl -fsS http://127.0.0.1:8080/v1/sites -H "authorization: Bearer $access_token" \
  | python3 -c 'import json,sys; d=json.load(sys.stdin); print(len(d["sites"] if isinstance(d, dict) else d))')
for n in $(seq $((site_count + 1)) 3); do
  curl -fsS -o /dev/null -X POST http://127.0.0.1:8080/v1/sites \
    -H "authorization: Bearer $access_token" -H 'content-type: application/json' \
    -d "{\"nickname\":\"demo-$n\"}"
done
access_token=$(token)
sites=$(curl -fsS http://127.0.0.1:8080/v1/sites -H "authorization: Bearer $access_token" \
  | python3 -c 'import json,sys; d=json.load(sys.stdin); s=d["sites"] if isinstance(d, dict) else d; print(" ".join(str(x["id"]) for x in s))')
first_site=${sites%% *}
echo "sites: $sites" >&2

metric() {
  curl -fsS http://127.0.0.1:9100/metrics | awk -v m="$1" '$1 == m {print $2}'
}

say "replaying traffic into ingest"
before=$(metric ingest_records_accepted_total)
for sample in testdata/bunny/*.syslog testdata/bunny/*.log; do
  "$bin/ecstatic-loadgen" --file "$sample" >/dev/null
done
"$bin/ecstatic-loadgen" --apache testdata/access-logs/apache_access_1.log.gz \
  --sites 3 --zone-base "$first_site" >/dev/null
"$bin/ecstatic-loadgen" --apache testdata/access-logs/apache_access_2.log.gz \
  --sites 3 --zone-base "$first_site" >/dev/null
# Generated accesses are about a millisecond apart: start them an hour ago
# so that all of them lie in the past, inside the query API's default range.
start_time=$(date -u -d '-1 hour' +%Y-%m-%dT%H:%M:%SZ)
"$bin/ecstatic-loadgen" --generate --count "$generated" --connections 4 \
  --sites 3 --zone-base "$first_site" --seed "$RANDOM" --start "$start_time" >/dev/null

say "waiting until ClickHouse holds every accepted record"
for _ in $(seq 1 600); do
  accepted=$(metric ingest_records_accepted_total)
  inserted=$(metric ingest_rows_inserted_total)
  [ "${accepted%.*}" = "${inserted%.*}" ] && break
  sleep 0.2
done
echo "accepted $((${accepted%.*} - ${before%.*})) records this run; ClickHouse holds ${inserted%.*} rows from this process" >&2

say "rows per site in ClickHouse"
curl -fsS http://127.0.0.1:8123/ --data-binary \
  "SELECT site_id, count() AS rows FROM ecstatic.access_log GROUP BY site_id ORDER BY site_id FORMAT PrettyCompactMonoBlock"

say "first analytics answer: GET /v1/sites/$first_site/summary (last 7 days)"
curl -fsS "http://127.0.0.1:8081/v1/sites/$first_site/summary" \
  -H "authorization: Bearer $access_token" | python3 -m json.tool

cat >&2 <<MSG

Ecstatic is up on loopback: api :8080, query :8081, git :8082,
ingest syslog :5140 (TCP and UDP), ingest metrics :9100, ClickHouse :8123.
A token for $email:  export TOKEN=\$(cat $run/token)
Stop everything with:  scripts/up.sh stop
MSG
(umask 077; printf '%s' "$access_token" >"$run/token")
