#!/usr/bin/env bash
# End-to-end intake benchmark (BENCHMARKS.md, "ingest end to end"):
#
#  1. renders ROWS generated accesses (pipe format, LF framing) to a file;
#  2. starts a fresh ecstatic-ingest (release build) on spare ports;
#  3. sends the file over CONNECTIONS TCP connections with ecstatic-loadgen,
#     flat out, and times until ClickHouse holds every row; reads the
#     process's peak RSS;
#  4. exports the same rows as RowBinary and times one
#     `INSERT ... FORMAT RowBinary` over HTTP: ClickHouse's own ceiling here.
#
#   ROWS=2000000 CONNECTIONS=4 scripts/bench-ingest.sh
#   INGEST_ARGS="--batchers 4" scripts/bench-ingest.sh   # extra serve flags
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export ECSTATIC_RUN_DIR=${ECSTATIC_RUN_DIR:-$root/.run}
rows=${ROWS:-2000000}
connections=${CONNECTIONS:-4}
bin=${CARGO_TARGET_DIR:-$root/target}/release
work=$ECSTATIC_RUN_DIR/bench-ingest
ch=http://127.0.0.1:${ECSTATIC_CH_HTTP_PORT:-8123}/

scripts/clickhouse.sh start
cargo build --release --locked -p ecstatic-ingest -p ecstatic-benches --bins >&2
rm -rf "$work" && mkdir -p "$work"

sql() { curl -fsS "$ch" --data-binary "$1"; }
metric() { curl -fsS http://127.0.0.1:19199/metrics | awk -v m="$1" '$1 == m {print $2}'; }

echo "rendering $rows accesses" >&2
"$bin/ecstatic-loadgen" --generate --count "$rows" --sites 20 --seed 7 \
  --output "$work/stream.syslog" >/dev/null
bytes=$(stat -c %s "$work/stream.syslog")

sql "DROP DATABASE IF EXISTS bench_e2e"
"$bin/ecstatic-ingest" serve --tcp 127.0.0.1:15199 --udp off --http 127.0.0.1:19199 \
  --database bench_e2e --spool-dir "$work/spool" ${INGEST_ARGS:-} >"$work/ingest.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -fsS http://127.0.0.1:19199/readyz >/dev/null 2>&1 && break; sleep 0.1; done

start=$(date +%s.%N)
"$bin/ecstatic-loadgen" --file "$work/stream.syslog" --target 127.0.0.1:15199 \
  --connections "$connections" --count "$rows" >/dev/null
sent=$(date +%s.%N)
while [ "$(metric ingest_rows_inserted_total)" != "$rows" ]; do sleep 0.05; done
done_at=$(date +%s.%N)
peak_kib=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
# utime + stime of the ingest process, in clock ticks.
cpu_ticks=$(awk '{print $14 + $15}' "/proc/$pid/stat")
ticks=$(getconf CLK_TCK)
kill -TERM $pid; wait $pid || true

stored=$(sql "SELECT count() FROM bench_e2e.access_log")
[ "$stored" = "$rows" ] || { echo "stored $stored of $rows rows" >&2; exit 1; }

sql "SELECT * FROM bench_e2e.access_log FORMAT RowBinary" >"$work/rows.bin"
sql "DROP DATABASE IF EXISTS bench_ceiling"
sql "CREATE DATABASE bench_ceiling"
# LowCardinality columns need this setting before ClickHouse 19 (and are
# refused with it after).
major=$(sql "SELECT version()" | cut -d. -f1)
create_url=$ch
[ "$major" -lt 19 ] && create_url="${ch}?allow_experimental_low_cardinality_type=1"
curl -fsS "$create_url" --data-binary "CREATE TABLE bench_ceiling.access_log AS bench_e2e.access_log"
c_start=$(date +%s.%N)
curl -fsS "${ch}?query=INSERT%20INTO%20bench_ceiling.access_log%20FORMAT%20RowBinary" \
  --data-binary @"$work/rows.bin"
c_end=$(date +%s.%N)

python3 - "$rows" "$bytes" "$start" "$sent" "$done_at" "$peak_kib" "$c_start" "$c_end" \
  "$(stat -c %s "$work/rows.bin")" "$cpu_ticks" "$ticks" <<'PY'
import sys
rows, size = int(sys.argv[1]), int(sys.argv[2])
start, sent, done, peak_kib, cs, ce, rb, cpu_ticks, ticks = map(float, sys.argv[3:])
e2e = rows / (done - start)
ceiling = rows / (ce - cs)
print(f"rows: {rows}  stream: {size/1e6:.0f} MB  sent in {sent-start:.2f} s")
print(f"end to end: {done-start:.2f} s = {e2e:,.0f} rows/s  ({size/(done-start)/1e6:.0f} MB/s of syslog)")
print(f"ClickHouse ceiling (one RowBinary INSERT of {rb/1e6:.0f} MB): {ce-cs:.2f} s = {ceiling:,.0f} rows/s")
print(f"ratio: {100*e2e/ceiling:.0f} % of the ceiling")
print(f"ingest peak RSS: {peak_kib/1024:.0f} MiB")
cpu = cpu_ticks / ticks
print(f"ingest CPU: {cpu:.2f} s = {1e6*cpu/rows:.2f} us per row (of 2 cores shared with ClickHouse)")
PY
sql "DROP DATABASE bench_e2e"
sql "DROP DATABASE bench_ceiling"
