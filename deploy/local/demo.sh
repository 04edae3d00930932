#!/usr/bin/env bash
# make demo: starts the local cluster (.run/cluster), loads the demo period,
# runs it with two consumers and prints the report. The cluster stays up for
# exploring (eval "$(deploy/local/cluster.sh env)"); `make cluster-stop` stops it.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
bin=${ALLOC_BUILD:-$repo/build}
period=2026-10
logs=$repo/.run/cluster/logs
mkdir -p "$logs"

echo "== starting the local cluster (PostgreSQL, Redis, RabbitMQ on loopback)"
eval "$(deploy/local/cluster.sh start)"

echo "== migrating the schema"
"$bin/alloc-producer" migrate

echo "== loading the demo period $period"
"$bin/alloc-gen" --demo --replace --period "$period"

echo "== starting two consumers (logs in $logs)"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
for i in 1 2; do
    "$bin/alloc-consumer" --threads 1 >"$logs/consumer-$i.log" 2>&1 &
    pids+=($!)
done

# a demo interrupted earlier may have left its run going: abort it
for stale in $(psql -X -tA -d "$ALLOC_PG_DSN" -c "SELECT run_id FROM alloc_run WHERE period_code = '$period' AND status = 'running'"); do
    "$bin/alloc-producer" abort --run "$stale"
done

echo "== alloc-producer run --period $period"
"$bin/alloc-producer" run --period "$period" --timeout 120

echo
echo "== alloc-producer report --period $period"
"$bin/alloc-producer" report --period "$period"

echo
echo "== alloc-producer report --period $period --checksum"
"$bin/alloc-producer" report --period "$period" --checksum
echo
echo "The cluster is still running: eval \"\$(deploy/local/cluster.sh env)\" to use it, make cluster-stop to stop it."
