#!/usr/bin/env bash
# Export speed and memory (DESIGN.md 5.7, issue 5): generates a period, runs it
# with --detail on ALLOC_BENCH_CONSUMERS consumers (default 2), then exports
# alloc_detail (and report_after) as csv.gz and xlsx, each by a fresh consumer
# with role export only, so that its peak RSS (VmHWM) is the export's alone.
# Prints rows, file size, seconds, rows/s and the peak RSS; asserts nothing.
#   ALLOC_BENCH_SCALE (default 0.1), ALLOC_BENCH_CONSUMERS (default 2),
#   ALLOC_BENCH_THREADS (the export consumer's --threads, default its own default),
#   ALLOC_BENCH_FORMATS (default "csv.gz xlsx").
# Uses the local cluster (started when not running; ALLOC_CLUSTER_DIR and
# ALLOC_CLUSTER_PORT pick it) and a database, vhost and Redis db of its own.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
bin=${ALLOC_BUILD:-$repo/build}
scale=${ALLOC_BENCH_SCALE:-0.1}
nconsumers=${ALLOC_BENCH_CONSUMERS:-2}
formats=${ALLOC_BENCH_FORMATS:-csv.gz xlsx}
threads=()
[ -n "${ALLOC_BENCH_THREADS:-}" ] && threads=(--threads "$ALLOC_BENCH_THREADS")
period=2026-10
logs=$repo/.run/export-bench
rm -rf "$logs"
mkdir -p "$logs"

eval "$(deploy/local/cluster.sh start 2>/dev/null)"
export ALLOC_FILE_STORE=$logs/files
psql -X -q -d "$ALLOC_PG_DSN" -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS export_bench WITH (FORCE)" -c "CREATE DATABASE export_bench"
export ALLOC_PG_DSN="${ALLOC_PG_DSN/dbname=alloc/dbname=export_bench}"
deploy/local/rabbitmqctl.sh delete_vhost export_bench >/dev/null 2>&1 || true
deploy/local/rabbitmqctl.sh add_vhost export_bench >/dev/null
deploy/local/rabbitmqctl.sh set_permissions -p export_bench alloc '.*' '.*' '.*' >/dev/null
export ALLOC_AMQP_URL="${ALLOC_AMQP_URL%/*}/export_bench"
export ALLOC_REDIS_URL="${ALLOC_REDIS_URL%/*}/2"
redis-cli -u "$ALLOC_REDIS_URL" flushdb >/dev/null
"$bin/alloc-producer" migrate >/dev/null
q() { psql -X -tA -d "$ALLOC_PG_DSN" -c "$1"; }

pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

echo "== scale $scale: generate, run --detail with $nconsumers consumer(s)"
"$bin/alloc-gen" --scale "$scale" --seed 1 --period $period >"$logs/gen.out" 2>"$logs/gen.err"
q "VACUUM ANALYZE" >/dev/null
for ((i = 1; i <= nconsumers; i++)); do
    "$bin/alloc-consumer" --role all >"$logs/consumer-$i.log" 2>&1 &
    pids+=($!)
done
sleep 1
t0=$(date +%s.%N)
"$bin/alloc-producer" run --period $period --detail >"$logs/run.out" 2>"$logs/run.err"
t1=$(date +%s.%N)
run_id=$(q "SELECT max(run_id) FROM alloc_run WHERE status = 'succeeded'")
awk -v a="$t0" -v b="$t1" -v r="$run_id" 'BEGIN { printf "run %s: %.1f s\n", r, b - a }'
cleanup
pids=()
q "VACUUM ANALYZE alloc_detail, report_after" >/dev/null
echo "report_after rows: $(q "SELECT count(*) FROM report_after WHERE run_id = $run_id")"
echo "alloc_detail rows: $(q "SELECT count(*) FROM alloc_detail WHERE run_id = $run_id")"

# export_one WHAT FORMAT [--detail]: one export by a fresh export-only consumer.
export_one() {
    local what=$1 format=$2
    shift 2
    local log=$logs/export-${what}-${format}.log
    "$bin/alloc-consumer" --role export "${threads[@]}" >"$log" 2>&1 &
    local pid=$!
    pids=("$pid")
    sleep 1.5 # started and idle: its baseline RSS
    local idle_kb
    idle_kb=$(awk '/VmHWM/ { print $2 }' "/proc/$pid/status")
    local out
    out=$("$bin/alloc-producer" export --period $period --run "$run_id" --format "$format" "$@" --wait)
    local task hwm_kb
    task=$(awk '$1 == "task" { print $2 }' <<<"$out")
    hwm_kb=$(awk '/VmHWM/ { print $2 }' "/proc/$pid/status")
    kill -TERM "$pid"
    wait "$pid" || true
    pids=()
    local nthreads
    nthreads=$(grep -o '([0-9]* formatting' "$log" | tr -dc 0-9)
    q "SELECT row_count, extract(epoch FROM finished_at - started_at), path FROM export_task WHERE task_id = $task" |
        while IFS='|' read -r rows secs path; do
            awk -v w="$what" -v f="$format" -v n="$rows" -v s="$secs" -v b="$(stat -c %s "$path")" \
                -v h="$hwm_kb" -v i="$idle_kb" -v t="$nthreads" \
                'BEGIN { printf "%-12s %-6s %9d rows  %7.1f MB  %6.2f s  %9.0f rows/s  peak RSS %6.1f MB (idle %.1f MB)  %s thread(s)\n",
                         w, f, n, b / 1048576, s, (s > 0 ? n / s : 0), h / 1024, i / 1024, t }'
        done
}

echo "== exports (each by a fresh consumer --role export)"
for format in $formats; do
    export_one alloc_detail "$format" --detail
    export_one report_after "$format"
done
