#!/usr/bin/env bash
# make bench: speed and memory of a run against the plain-SQL baseline and the
# I/O floor on the same generated period. Prints figures; asserts nothing about speed.
#   ALLOC_BENCH_SCALES  comma-separated scales, each a fresh period (default: ALLOC_BENCH_SCALE or 1)
#   ALLOC_BENCH_CONSUMERS (default 2)
#   ALLOC_BENCH_CONSUMER_FLAGS  extra flags of each consumer (e.g. --threads 2)
#   ALLOC_BENCH_SKIP_BASELINE=1 to skip the baseline (about 7 minutes at seed scale)
# Uses the local cluster of `make demo` (.run/cluster) and a database `bench`.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
bin=${ALLOC_BUILD:-$repo/build}
scales=${ALLOC_BENCH_SCALES:-${ALLOC_BENCH_SCALE:-1}}
nconsumers=${ALLOC_BENCH_CONSUMERS:-2}
period=2026-10
logs=$repo/.run/bench
mkdir -p "$logs"

eval "$(deploy/local/cluster.sh start 2>/dev/null)"
admin_dsn=$ALLOC_PG_DSN
export ALLOC_PG_DSN="${ALLOC_PG_DSN/dbname=alloc/dbname=bench}"
# its own vhost and Redis db, so a demo on the same cluster never meets the bench's consumers
export ALLOC_AMQP_URL="${ALLOC_AMQP_URL%/*}/bench"
export ALLOC_REDIS_URL="${ALLOC_REDIS_URL%/*}/1"

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
q() { psql -X -q -tA -v ON_ERROR_STOP=1 -d "$ALLOC_PG_DSN" "$@"; }
# ts LINE: the seconds of day of a log line's timestamp (2026-12-04T16:45:30.118Z ...)
ts() { awk '{ split(substr($1, 12, 12), t, ":"); printf "%.3f\n", t[1] * 3600 + t[2] * 60 + t[3] }' <<<"$1"; }
# stage LABEL REGEX_FROM REGEX_TO: seconds between the first lines of the producer log matching each
stage() {
    local a b
    a=$(grep -m1 -E "$2" "$logs/run.err" || true)
    b=$(grep -m1 -E "$3" "$logs/run.err" || true)
    if [ -n "$a" ] && [ -n "$b" ]; then
        printf '  %-34s %6.1f s\n' "$1" "$(awk -v a="$(ts "$a")" -v b="$(ts "$b")" 'BEGIN { print b - a }')"
    fi
}
# peak_rss PID: follows VmHWM of a process until it exits; prints the last reading (kB)
peak_rss() {
    local pid=$1 hwm=0 v
    while v=$(awk '/VmHWM/ { print $2 }' "/proc/$pid/status" 2>/dev/null) && [ -n "$v" ]; do
        hwm=$v
        sleep 0.2
    done
    echo "$hwm"
}

bench_scale() {
    local scale=$1
    psql -X -q -d "$admin_dsn" -c "DROP DATABASE IF EXISTS bench WITH (FORCE)" -c "CREATE DATABASE bench" 2>/dev/null
    deploy/local/rabbitmqctl.sh delete_vhost bench >/dev/null 2>&1 || true
    deploy/local/rabbitmqctl.sh add_vhost bench >/dev/null
    deploy/local/rabbitmqctl.sh set_permissions -p bench alloc '.*' '.*' '.*' >/dev/null
    "$bin/alloc-producer" migrate >/dev/null

    echo "== scale $scale: generating"
    local t0 t1
    t0=$(now)
    "$bin/alloc-gen" --scale "$scale" --seed 1 --period $period >"$logs/gen.out" 2>"$logs/gen.err"
    t1=$(now)
    echo "generate + load: $(secs "$t0" "$t1") s"
    grep -E '^(total|data_source)' "$logs/gen.out" || true
    q -c "VACUUM ANALYZE" >/dev/null

    local pids=() i
    for ((i = 1; i <= nconsumers; i++)); do
        # shellcheck disable=SC2086 # the flags are words
        "$bin/alloc-consumer" ${ALLOC_BENCH_CONSUMER_FLAGS:-} >"$logs/consumer-$i.log" 2>&1 &
        pids+=($!)
    done
    sleep 1

    echo "== scale $scale: alloc-producer run with $nconsumers consumer(s)"
    t0=$(now)
    "$bin/alloc-producer" run --period $period >"$logs/run.out" 2>"$logs/run.err" &
    local prod=$!
    local prod_rss
    prod_rss=$(peak_rss "$prod")
    wait "$prod"
    t1=$(now)
    run_s=$(secs "$t0" "$t1")
    local run_id
    run_id=$(q -c "SELECT max(run_id) FROM alloc_run WHERE status = 'succeeded'")
    echo "run $run_id: $run_s s wall"
    echo "stages (producer log):"
    grep -oE 'snapshot in [0-9]+s' "$logs/run.err" | sed 's/^snapshot in /  snapshot                           /; s/s$/ s (whole seconds)/'
    stage "buckets published" 'snapshot in [0-9]+s' 'bucket\(s\) published'
    stage "allocate (consumers)" 'bucket\(s\) published' 'plan: unallocated findings'
    stage "plan" 'plan: unallocated findings' 'unit\(s\) to assemble'
    stage "formula units (consumers)" 'unit\(s\) to assemble' 'finish: roll-ups'
    stage "finish: roll-ups, key, attach, commit" 'finish: roll-ups' 'finish: succeeded'
    grep -E 'snapshot: |finish: ' "$logs/run.err" | sed 's/^.*\] /    /'
    echo "  producer peak RSS: $prod_rss kB"
    for ((i = 1; i <= nconsumers; i++)); do
        echo "  consumer $i peak RSS: $(awk '/VmHWM/ { print $2 " " $3 }' "/proc/${pids[$((i - 1))]}/status" 2>/dev/null || echo "?")"
    done
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    wait "${pids[@]}" 2>/dev/null || true
    q -c "SELECT '  batches by ' || consumer || ': ' || count(*) FROM batch_marker WHERE run_id = $run_id GROUP BY consumer ORDER BY consumer"
    q -c "SELECT '  report_after rows: ' || count(*) FROM report_after WHERE run_id = $run_id"
    "$bin/alloc-producer" report --period $period --run "$run_id" --checksum | sed 's/^/  checksum: /'

    # The I/O floor: the period's ledger rows copied out once and the run's report
    # rows copied in once, nothing else.
    local rows_file=$logs/report_rows.copy
    q -c "\\copy (SELECT * FROM report_after WHERE run_id = $run_id) TO '$rows_file'"
    q -c "CREATE UNLOGGED TABLE floor_rows (LIKE report_after)"
    t0=$(now)
    q -c "\\copy (SELECT * FROM ledger_entry WHERE period_code = '$period') TO '/dev/null'"
    q -c "\\copy floor_rows FROM '$rows_file'"
    t1=$(now)
    floor_s=$(secs "$t0" "$t1")
    q -c "DROP TABLE floor_rows"
    rm -f "$rows_file"
    echo "I/O floor (ledger rows out + report rows in): $floor_s s"
    awk -v a="$run_s" -v b="$floor_s" 'BEGIN { printf "alloc / floor: %.1fx\n", a / b }'

    if [ "${ALLOC_BENCH_SKIP_BASELINE:-0}" != 1 ]; then
        echo "== scale $scale: SQL baseline (../shared/bench/sql_baseline.sql)"
        t0=$(now)
        psql -X -q -v ON_ERROR_STOP=1 -v period=$period -d "$ALLOC_PG_DSN" -f "$repo/../shared/bench/sql_baseline.sql" >"$logs/baseline.out"
        t1=$(now)
        base_s=$(secs "$t0" "$t1")
        echo "baseline: $base_s s wall"
        local d
        d=$(q -c "
          WITH ours AS (SELECT version, data_source, project_code, item_code, amount FROM report_after
                        WHERE run_id = $run_id AND item_code IN (SELECT item_code FROM run_item
                                                                 WHERE run_id = $run_id AND kind = 'base'))
          SELECT (SELECT count(*) FROM (SELECT * FROM ours EXCEPT SELECT * FROM baseline_report_after) a)
               + (SELECT count(*) FROM (SELECT * FROM baseline_report_after EXCEPT SELECT * FROM ours) b)")
        echo "rows differing from the baseline: $d"
        awk -v a="$base_s" -v b="$run_s" 'BEGIN { printf "speed-up over the baseline: %.1fx\n", a / b }'
    fi
}

declare -A run_at
for scale in ${scales//,/ }; do
    bench_scale "$scale"
    run_at[$scale]=$run_s
done
if [ -n "${run_at[1]:-}" ] && [ -n "${run_at[2]:-}" ]; then
    awk -v a="${run_at[1]}" -v b="${run_at[2]}" \
        'BEGIN { printf "== scale 2 / scale 1 run time: %.1f s / %.1f s = %.2fx\n", b, a, b / a }'
fi
