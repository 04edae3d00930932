#!/usr/bin/env bash
# make test-deploy: the docker-compose cluster run for real on this machine.
# Installs what it needs (apt-get: docker.io, docker-compose, debootstrap),
# starts its own Docker engine (tests/deploy/engine.sh, under .run/docker),
# builds the images from Debian's packages (deploy/images/build.sh: no registry
# is reachable here), runs tests/deploy/t_*.sh against them and stops the
# engine it started. Every check prints "ok - name" or "not ok - name"; the run
# ends with one line "N passed, N failed" and fails when any check failed. An
# engine that cannot start is one failing check that says why: never a skip.
set -uo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo" || exit 1
export ALLOC_BUILD=${ALLOC_BUILD:-$repo/build}
export DOCKER=/usr/bin/docker # Debian's client, of the engine's version
log_dir=$repo/.run/test-logs/deploy-run
mkdir -p "$log_dir"

# ALLOC_TEST_DEPLOY_START: when the caller started (.ci/run: before make)
started_at=${ALLOC_TEST_DEPLOY_START:-$(date +%s)}
passed=0
failed=0
failures=()
ok() { echo "ok - $1"; passed=$((passed + 1)); }
not_ok() {
    echo "not ok - $1${2:+: $2}"
    failed=$((failed + 1))
    failures+=("$1${2:+: $2}")
}
summary() {
    echo "test-deploy took $(($(date +%s) - started_at)) s"
    if [ ${#failures[@]} -gt 0 ]; then
        echo "failures:"
        printf '  %s\n' "${failures[@]}"
    fi
    echo "$passed passed, $failed failed"
    [ $failed -eq 0 ]
    exit
}

# ---- packages -------------------------------------------------------------------------
missing=()
for p in docker.io docker-compose debootstrap; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "deploy: installing ${missing[*]}"
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo=sudo
    # The package would start the system's dockerd: this test runs its own.
    policy_added=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
        $sudo chmod +x /usr/sbin/policy-rc.d
        policy_added=1
    fi
    if $sudo apt-get update -qq >"$log_dir/apt.log" 2>&1 &&
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >>"$log_dir/apt.log" 2>&1; then
        ok "apt-get installs ${missing[*]}"
    else
        not_ok "apt-get installs ${missing[*]}" "$(tail -n 2 "$log_dir/apt.log" | tr '\n' '|')"
    fi
    [ $policy_added = 1 ] && $sudo rm -f /usr/sbin/policy-rc.d
fi

# ---- the engine -------------------------------------------------------------------------
engine_started=0
if ! env_out=$(tests/deploy/engine.sh start 2>"$log_dir/engine.log"); then
    # one line: what the engine said
    not_ok "the Docker engine starts" "$(grep '^engine:' "$log_dir/engine.log" | tail -n 1)"
    summary
fi
grep -q 'dockerd answers on' "$log_dir/engine.log" && engine_started=1
eval "$env_out"
ok "the Docker engine starts ($DOCKER_HOST)"
stop_engine() {
    # stop only an engine this run started
    [ $engine_started = 1 ] && tests/deploy/engine.sh stop >>"$log_dir/engine.log" 2>&1
    engine_started=0
}
trap stop_engine EXIT

# ---- the images ------------------------------------------------------------------------
build_step() { # what label
    local start=$SECONDS
    if deploy/images/build.sh "$1" >"$log_dir/build-$1.log" 2>&1; then
        ok "$2 ($((SECONDS - start)) s)"
    else
        not_ok "$2" "$(tail -n 3 "$log_dir/build-$1.log" | tr '\n' '|')"
        stop_engine
        summary
    fi
}
build_step base "the Debian base image (debootstrap, reused when built)"
build_step servers "the PostgreSQL, RabbitMQ and Redis images from Debian's packages"
build_step alloc "the alloc image from deploy/Dockerfile"
eval "$(deploy/images/build.sh env)"
# Old versions of rebuilt images: every layer is a full copy with vfs.
$DOCKER image prune -f >/dev/null 2>&1

# ---- the tests ----------------------------------------------------------------------------
for t in tests/deploy/t_*.sh; do
    out=$log_dir/$(basename "$t" .sh).log
    echo "== ${t#tests/}"
    bash "$t" >"$out" 2>&1
    rc=$?
    grep -E '^(ok|not ok) - |^# ' "$out" | sed 's/^/   /'
    passed=$((passed + $(grep -c '^ok - ' "$out")))
    while IFS= read -r line; do
        failed=$((failed + 1))
        failures+=("${t#tests/}: ${line#not ok - }")
    done < <(grep '^not ok - ' "$out")
    if [ $rc -ne 0 ] && ! grep -q '^not ok - ' "$out"; then
        failed=$((failed + 1))
        failures+=("${t#tests/}: exited $rc without a failing check (see $out)")
        tail -n 10 "$out" | sed 's/^/   | /'
    fi
done

stop_engine
trap - EXIT
summary
