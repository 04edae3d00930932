#!/usr/bin/env bash
# Runs the unit tests and, unless --unit-only, the integration tests against a
# throwaway local cluster (.run/test, ports 25xxx) that it starts and, when it
# started it, stops. Every test prints "ok - name" or "not ok - name"; the run
# ends with one line "N passed, N failed" and fails when any test failed.
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
export ALLOC_BUILD=${ALLOC_BUILD:-$repo/build}
export ALLOC_CLUSTER_DIR=${ALLOC_CLUSTER_DIR:-$repo/.run/test}
export ALLOC_CLUSTER_PORT=${ALLOC_CLUSTER_PORT:-25}

unit_only=0
only=""
for a in "$@"; do
    case "$a" in
    --unit-only) unit_only=1 ;;
    *) only=$a ;;
    esac
done

passed=0
failed=0
failures=()
log_dir=$repo/.run/test-logs
mkdir -p "$log_dir"

# count_output FILE LABEL: adds the ok / not ok lines of one test program's output.
count_output() {
    local file=$1 label=$2 p f
    p=$(grep -c '^ok - ' "$file")
    f=$(grep -c '^not ok - ' "$file")
    passed=$((passed + p))
    failed=$((failed + f))
    while IFS= read -r line; do failures+=("$label: ${line#not ok - }"); done < <(grep '^not ok - ' "$file")
}

run_one() { # label command...
    local label=$1; shift
    local out=$log_dir/$(echo "$label" | tr '/' '_').log
    echo "== $label"
    "$@" >"$out" 2>&1
    local rc=$?
    grep -E '^(ok|not ok) - ' "$out" | sed 's/^/   /'
    count_output "$out" "$label"
    if [ $rc -ne 0 ] && ! grep -q '^not ok - ' "$out"; then
        failed=$((failed + 1))
        failures+=("$label: exited $rc without a failing check (see $out)")
        tail -n 20 "$out" | sed 's/^/   | /'
    elif [ $rc -ne 0 ]; then
        tail -n 30 "$out" | grep -v -E '^(ok|not ok) - ' | tail -n 15 | sed 's/^/   | /'
    fi
}

for t in "$ALLOC_BUILD"/tests/test_*; do
    [ -x "$t" ] || continue
    name=unit/$(basename "$t")
    [ -n "$only" ] && [[ "$name" != *"$only"* ]] && continue
    run_one "$name" "$t"
done

if [ $unit_only -eq 0 ]; then
    # Stop at the end only what this run started: cluster.sh says "already
    # answers" for a server that was up before.
    if ! env_out=$(deploy/local/cluster.sh start 2>"$log_dir/cluster-start.log"); then
        cat "$log_dir/cluster-start.log"
        echo "could not start the local cluster"
        echo "$passed passed, $((failed + 1)) failed"
        exit 1
    fi
    started_cluster=0
    if grep -qE '^cluster: [a-z]+ answers on' "$log_dir/cluster-start.log"; then
        started_cluster=1
        trap 'deploy/local/cluster.sh stop' EXIT
    fi
    eval "$env_out"
    for t in tests/integration/t_*.sh tests/faults/t_*.sh tests/lifecycle/t_*.sh; do
        [ -f "$t" ] || continue
        name=${t#tests/}
        name=${name%.sh}
        [ -n "$only" ] && [[ "$name" != *"$only"* ]] && continue
        run_one "$name" bash "$t"
    done
fi

# Stop what this run started before the summary, so that the summary is the last line.
if [ "${started_cluster:-0}" = 1 ]; then
    deploy/local/cluster.sh stop >"$log_dir/cluster-stop.log" 2>&1
    trap - EXIT
fi

if [ ${#failures[@]} -gt 0 ]; then
    echo "failures:"
    printf '  %s\n' "${failures[@]}"
fi
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
