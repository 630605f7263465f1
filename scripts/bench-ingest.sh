#!/usr/bin/env bash
# End-to-end intake benchmark (BENCHMARKS.md, "ingest end to end"):
#
#  1. renders ROWS generated accesses (pipe format, LF framing) to a file;
#  2. RUNS times, alternating:
#     a. starts a fresh ecstatic-ingest (release build) on spare ports, sends
#        the file over CONNECTIONS TCP connections with ecstatic-loadgen, flat
#        out, and times until ClickHouse holds every row; reads the process's
#        peak RSS and CPU time;
#     b. times one `INSERT ... FORMAT RowBinary` of the same rows over HTTP
#        into an empty table: ClickHouse's own ceiling here.
#     Before each timing, ClickHouse is left to finish its merges, so that
#     neither side pays for the other's background work;
#  3. prints every run and the medians.
#
#   ROWS=2000000 CONNECTIONS=4 RUNS=5 scripts/bench-ingest.sh
#   INGEST_ARGS="--batchers 4" scripts/bench-ingest.sh   # extra serve flags
#   INGEST_BIN=/tmp/other/ecstatic-ingest scripts/bench-ingest.sh  # another build
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export ECSTATIC_RUN_DIR=${ECSTATIC_RUN_DIR:-$root/.run}
rows=${ROWS:-1000000}
connections=${CONNECTIONS:-4}
runs=${RUNS:-3}
bin=${CARGO_TARGET_DIR:-$root/target}/release
work=$ECSTATIC_RUN_DIR/bench-ingest
ch=http://127.0.0.1:${ECSTATIC_CH_HTTP_PORT:-8123}/

scripts/clickhouse.sh start
cargo build --release --locked -p ecstatic-ingest -p ecstatic-benches --bins >&2
rm -rf "$work" && mkdir -p "$work"

sql() { curl -fsS "$ch" --data-binary "$1"; }
metric() { curl -fsS http://127.0.0.1:19199/metrics | awk -v m="$1" '$1 == m {print $2}'; }
now() { date +%s.%N; }
# Waits until ClickHouse runs no merge (at most 60 s).
settle() {
  for _ in $(seq 1 600); do
    [ "$(sql "SELECT count() FROM system.merges")" = 0 ] && return
    sleep 0.1
  done
}
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null || true' EXIT

echo "rendering $rows accesses" >&2
"$bin/ecstatic-loadgen" --generate --count "$rows" --sites 20 --seed 7 \
  --output "$work/stream.syslog" >/dev/null
bytes=$(stat -c %s "$work/stream.syslog")

# LowCardinality columns need this setting before ClickHouse 19 (and are
# refused with it after).
major=$(sql "SELECT version()" | cut -d. -f1)
ddl_url=$ch
[ "$major" -lt 19 ] && ddl_url="${ch}?allow_experimental_low_cardinality_type=1"

# One end-to-end run; prints "seconds sent_seconds peak_kib cpu_seconds".
e2e_run() {
  sql "DROP DATABASE IF EXISTS bench_e2e"
  settle
  "${INGEST_BIN:-$bin/ecstatic-ingest}" serve --tcp 127.0.0.1:15199 --udp off --http 127.0.0.1:19199 \
    --database bench_e2e --spool-dir "$work/spool" ${INGEST_ARGS:-} >"$work/ingest.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do
    curl -fsS http://127.0.0.1:19199/readyz >/dev/null 2>&1 && break
    sleep 0.1
  done
  local start sent done_at peak_kib cpu_ticks stored
  start=$(now)
  "$bin/ecstatic-loadgen" --file "$work/stream.syslog" --target 127.0.0.1:15199 \
    --connections "$connections" --count "$rows" >/dev/null
  sent=$(now)
  while [ "$(metric ingest_rows_inserted_total)" != "$rows" ]; do sleep 0.02; done
  done_at=$(now)
  peak_kib=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  # utime + stime of the ingest process, in clock ticks.
  cpu_ticks=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  kill -TERM $pid
  wait $pid || true
  pid=
  stored=$(sql "SELECT count() FROM bench_e2e.access_log")
  [ "$stored" = "$rows" ] || { echo "stored $stored of $rows rows" >&2; exit 1; }
  python3 -c "import sys; a=list(map(float, sys.argv[1:])); \
print(a[2]-a[0], a[1]-a[0], int(a[3]), a[4]/a[5])" \
    "$start" "$sent" "$done_at" "$peak_kib" "$cpu_ticks" "$(getconf CLK_TCK)"
}

# One timing of ClickHouse taking the rows as one insert; prints seconds.
ceiling_run() {
  sql "DROP DATABASE IF EXISTS bench_ceiling"
  sql "CREATE DATABASE bench_ceiling"
  curl -fsS "$ddl_url" --data-binary "$(sql "SHOW CREATE TABLE bench_e2e.access_log" \
    | sed 's/\\n/ /g; s/\\//g; s/bench_e2e\./bench_ceiling./')"
  settle
  local start end
  start=$(now)
  curl -fsS "${ch}?query=INSERT%20INTO%20bench_ceiling.access_log%20FORMAT%20RowBinary" \
    --data-binary @"$work/rows.bin"
  end=$(now)
  sql "DROP DATABASE bench_ceiling"
  python3 -c "import sys; print(float(sys.argv[2]) - float(sys.argv[1]))" "$start" "$end"
}

results=()
for run in $(seq 1 "$runs"); do
  e2e=$(e2e_run)
  # The ceiling inserts exactly the rows ingest stored.
  [ -f "$work/rows.bin" ] || sql "SELECT * FROM bench_e2e.access_log FORMAT RowBinary" \
    >"$work/rows.bin"
  ceiling=$(ceiling_run)
  echo "run $run: end to end / sent / peak KiB / CPU s: $e2e; ceiling s: $ceiling" >&2
  results+=("$e2e $ceiling")
done
sql "DROP DATABASE bench_e2e"

printf '%s\n' "${results[@]}" | python3 -c '
import statistics, sys
rows, size, rb = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
runs = [list(map(float, line.split())) for line in sys.stdin if line.strip()]
for i, (e2e, sent, peak, cpu, ceil) in enumerate(runs, 1):
    print(f"run {i}: end to end {rows/e2e:,.0f} rows/s (sent in {sent:.2f} s), "
          f"ceiling {rows/ceil:,.0f} rows/s, ratio {100*ceil/e2e:.0f} %, "
          f"peak RSS {peak/1024:.0f} MiB, CPU {1e6*cpu/rows:.2f} us/row")
med = lambda k: statistics.median(r[k] for r in runs)
e2e, ceil = med(0), med(4)
print(f"rows: {rows}  stream: {size/1e6:.0f} MB  runs: {len(runs)} (medians below)")
print(f"end to end: {e2e:.2f} s = {rows/e2e:,.0f} rows/s  ({size/e2e/1e6:.0f} MB/s of syslog)")
print(f"ClickHouse ceiling (one RowBinary INSERT of {rb/1e6:.0f} MB): {ceil:.2f} s = "
      f"{rows/ceil:,.0f} rows/s")
# The two timings of a run follow each other within seconds: the median of
# the per-run ratios compares like with like on a machine whose speed drifts.
ratio = statistics.median(r[4] / r[0] for r in runs)
print(f"ratio: {100*ratio:.0f} % of the ceiling (median of the runs\x27 ratios)")
print(f"ingest peak RSS: {max(r[2] for r in runs)/1024:.0f} MiB (highest of the runs)")
print(f"ingest CPU: {med(3):.2f} s = {1e6*med(3)/rows:.2f} us per row "
      "(of 2 cores shared with ClickHouse)")
' "$rows" "$bytes" "$(stat -c %s "$work/rows.bin")"
