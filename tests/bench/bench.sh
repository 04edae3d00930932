#!/usr/bin/env bash
# make bench: speed and memory of a run against the plain-SQL baseline on the
# same generated period. Prints figures; asserts nothing about speed.
#   ALLOC_BENCH_SCALE (default 1 = seed scale), ALLOC_BENCH_CONSUMERS (default 2),
#   ALLOC_BENCH_SKIP_BASELINE=1 to skip the baseline (5.5 minutes at seed scale).
# Uses the local cluster of `make demo` (.run/cluster) and a database `bench`.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
bin=${ALLOC_BUILD:-$repo/build}
scale=${ALLOC_BENCH_SCALE:-1}
nconsumers=${ALLOC_BENCH_CONSUMERS:-2}
period=2026-10
logs=$repo/.run/bench
mkdir -p "$logs"

eval "$(deploy/local/cluster.sh start 2>/dev/null)"
psql -X -q -d "$ALLOC_PG_DSN" -c "DROP DATABASE IF EXISTS bench WITH (FORCE)" -c "CREATE DATABASE bench"
export ALLOC_PG_DSN="${ALLOC_PG_DSN/dbname=alloc/dbname=bench}"
# its own vhost and Redis db, so a demo on the same cluster never meets the bench's consumers
deploy/local/rabbitmqctl.sh delete_vhost bench >/dev/null 2>&1 || true
deploy/local/rabbitmqctl.sh add_vhost bench >/dev/null
deploy/local/rabbitmqctl.sh set_permissions -p bench alloc '.*' '.*' '.*' >/dev/null
export ALLOC_AMQP_URL="${ALLOC_AMQP_URL%/*}/bench"
export ALLOC_REDIS_URL="${ALLOC_REDIS_URL%/*}/1"
"$bin/alloc-producer" migrate >/dev/null

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

echo "== generating scale $scale"
t0=$(now)
"$bin/alloc-gen" --scale "$scale" --seed 1 --period $period >"$logs/gen.out" 2>"$logs/gen.err"
t1=$(now)
echo "generate + load: $(secs "$t0" "$t1") s"
grep -E '^(total|data_source)' "$logs/gen.out" || true
psql -X -q -d "$ALLOC_PG_DSN" -c "VACUUM ANALYZE" >/dev/null

pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
for ((i = 1; i <= nconsumers; i++)); do
    "$bin/alloc-consumer" >"$logs/consumer-$i.log" 2>&1 &
    pids+=($!)
done
sleep 1

echo "== alloc-producer run with $nconsumers consumer(s)"
t0=$(now)
"$bin/alloc-producer" run --period $period >"$logs/run.out" 2>"$logs/run.err"
t1=$(now)
run_s=$(secs "$t0" "$t1")
run_id=$(psql -X -tA -d "$ALLOC_PG_DSN" -c "SELECT max(run_id) FROM alloc_run WHERE status = 'succeeded'")
echo "run $run_id: $run_s s wall"
grep -E 'snapshot in|published' "$logs/run.err" | sed 's/^.*\] /  /'
for ((i = 1; i <= nconsumers; i++)); do
    hwm=$(awk '/VmHWM/ { print $2 " " $3 }' "/proc/${pids[$((i - 1))]}/status" 2>/dev/null || echo "?")
    echo "  consumer $i peak RSS: $hwm"
done
psql -X -tA -d "$ALLOC_PG_DSN" -c "SELECT '  batches by ' || consumer || ': ' || count(*) FROM batch_marker WHERE run_id = $run_id GROUP BY consumer ORDER BY consumer"
psql -X -tA -d "$ALLOC_PG_DSN" -c "SELECT '  report_after rows: ' || count(*) FROM report_after WHERE run_id = $run_id"
"$bin/alloc-producer" report --period $period --run "$run_id" --checksum | sed 's/^/  checksum: /'

if [ "${ALLOC_BENCH_SKIP_BASELINE:-0}" != 1 ]; then
    echo "== SQL baseline (../shared/bench/sql_baseline.sql)"
    t0=$(now)
    psql -X -q -v ON_ERROR_STOP=1 -v period=$period -d "$ALLOC_PG_DSN" -f "$repo/../shared/bench/sql_baseline.sql" >"$logs/baseline.out"
    t1=$(now)
    base_s=$(secs "$t0" "$t1")
    echo "baseline: $base_s s wall"
    d=$(psql -X -tA -d "$ALLOC_PG_DSN" -c "
      SELECT (SELECT count(*) FROM (SELECT version, data_source, project_code, item_code, amount FROM report_after WHERE run_id = $run_id AND item_code IN (SELECT item_code FROM report_item ri JOIN alloc_run ar ON ar.ruleset = ri.ruleset AND ar.run_id = $run_id WHERE ri.kind = 'base')
                                    EXCEPT SELECT * FROM baseline_report_after) a)
           + (SELECT count(*) FROM (SELECT * FROM baseline_report_after
                                    EXCEPT SELECT version, data_source, project_code, item_code, amount FROM report_after WHERE run_id = $run_id AND item_code IN (SELECT item_code FROM report_item ri JOIN alloc_run ar ON ar.ruleset = ri.ruleset AND ar.run_id = $run_id WHERE ri.kind = 'base')) b)")
    echo "rows differing from the baseline: $d"
    awk -v a="$base_s" -v b="$run_s" 'BEGIN { printf "speed-up over the baseline: %.1fx\n", a / b }'
fi
