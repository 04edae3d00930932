#!/usr/bin/env bash
# The docker-compose cluster, run for real (issue 10): the real
# deploy/docker-compose.yml on the Docker engine of tests/deploy/run.sh
# (DOCKER_HOST), with the images deploy/images/build.sh made from Debian's
# packages (ALLOC_*_IMAGE, exported by run.sh).
#
#   - the reference: the same period (alloc-gen, same seed and scale) run on a
#     local process-based cluster of its own (.run/deploy-local, ports 36xxx),
#     in the background while the compose cluster comes up;
#   - `up -d --scale consumer=3`: the servers become healthy, migrate runs once
#     and exits 0, three consumers run;
#   - alloc-gen loads the period from the producer container, `run --rm
#     producer run` ends with the reference's checksum;
#   - a second run of the period, slowed down in PostgreSQL so it lasts: one
#     consumer is killed (docker kill) mid-run and the cluster scaled down to
#     one consumer; the run still ends with the reference's checksum, every
#     batch marked once;
#   - `stop`: the consumers exit 0;
#   - the servers published on the host (deploy/docker/expose-servers.yml), no
#     compose consumer: a consumer started with `docker run` on the host's
#     network, as on another machine, does a third run alone, with the same
#     checksum, and exits 0 on docker stop;
#   - `down -v`: no container, volume or network of the project is left.
# The compose commands are those of deploy/README.md, from the repository root.
source "$(dirname "$0")/../integration/lib.sh"

PERIOD=2026-10
GEN_ARGS=(--scale 0.01 --seed 7 --period $PERIOD)
# small batches: many of them, so the kill lands mid-stage
RUN_ARGS=(--batch-size 100 --bucket-rows 500 --timeout 300)
LOGS=$repo/.run/test-logs/deploy
rm -rf "$LOGS"
mkdir -p "$LOGS"
COMPOSE_FILE_ARG=(-f deploy/docker-compose.yml)
PROJECT=deploy # docker-compose's default: the compose file's directory
DOCKER=${DOCKER:-/usr/bin/docker}
cd "$repo" || exit 1
# The commands' own output goes to a file; the test's output is its ok / not ok lines.
exec 3>&1 2>>"$LOGS/stderr.log"

# The defaults of the compose file, whatever the caller's environment says
# (the image names excepted: run.sh sets them).
unset ALLOC_DB_PASSWORD ALLOC_MQ_PASSWORD ALLOC_REDIS_PASSWORD ALLOC_IMAGE_TAG ALLOC_LOG_LEVEL COMPOSE_PROJECT_NAME COMPOSE_FILE
# Three consumers share two cores: one worker thread each.
export ALLOC_CONSUMER_THREADS=1

compose() { docker-compose "${COMPOSE_FILE_ARG[@]}" "$@"; }
# psql in the postgres container, on the cluster's database (docker exec: a
# tenth of the time docker-compose takes to start, for the polls mid-run)
csql() {
    $DOCKER exec -i "$(containers postgres)" psql -X -q -v ON_ERROR_STOP=1 -tA -U alloc -d alloc "$@"
}

BG_PID=
REF_PID=
LOCAL_STARTED=0
cleanup() {
    [ -n "$BG_PID" ] && kill "$BG_PID" 2>/dev/null
    [ -n "$REF_PID" ] && kill "$REF_PID" 2>/dev/null && wait "$REF_PID"
    $DOCKER rm -f alloc-consumer-remote >/dev/null 2>&1
    [ "$LOCAL_STARTED" = 1 ] && local_cluster stop >/dev/null 2>&1
    # a test that stopped half-way leaves nothing of the project running
    compose down -v --remove-orphans >>"$LOGS/down.log" 2>&1
    if [ "$T_FAILED" != 0 ]; then
        echo "# last lines of $LOGS/stderr.log:" >&3
        tail -n 15 "$LOGS/stderr.log" | tr -cd '\11\12\40-\176' | sed 's/^/#   /' >&3
    fi
}
trap cleanup EXIT
# the checks write to the saved standard output
ok() { echo "ok - $1" >&3; }
not_ok() { echo "not ok - $1${2:+: $2}" >&3; T_FAILED=1; }

# wait_until SECONDS COMMAND...: polls COMMAND every half second.
wait_until() {
    local secs=$1 i; shift
    for ((i = 0; i < secs * 2; i++)); do
        "$@" && return 0
        sleep 0.5
    done
    return 1
}

# ---- the reference: the period on a local process-based cluster -----------------------

local_cluster() { ALLOC_CLUSTER_DIR=$repo/.run/deploy-local ALLOC_CLUSTER_PORT=36 deploy/local/cluster.sh "$@"; }

# reference_checksum: prints the checksum of the period run on the local
# cluster. Run it in the background only (`&`: a subshell of its own, which it
# leaves with exit): its consumers are stopped whichever way it ends.
reference_checksum() {
    local env_out pids=() p rc
    trap 'for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done; wait' EXIT
    env_out=$(local_cluster start 2>"$LOGS/local-cluster.log") || exit 1
    eval "$env_out"
    # a database of its own, emptied first: the period is loaded anew
    psql -X -q -d "$ALLOC_PG_DSN" -c "DROP DATABASE IF EXISTS deploy_ref WITH (FORCE)" \
        -c "CREATE DATABASE deploy_ref" >&2 || exit 1
    export ALLOC_PG_DSN=${ALLOC_PG_DSN/dbname=alloc/dbname=deploy_ref}
    "$PRODUCER" migrate >&2 || exit 1
    "$GEN" "${GEN_ARGS[@]}" >&2 || exit 1
    for i in 1 2; do
        "$CONSUMER" --threads 1 >"$LOGS/local-consumer-$i.log" 2>&1 &
        pids+=($!)
    done
    "$PRODUCER" run --period $PERIOD "${RUN_ARGS[@]}" >&2
    rc=$?
    [ $rc -eq 0 ] || exit 1
    "$PRODUCER" report --period $PERIOD --checksum
    exit 0
}
# It runs in the background while the compose cluster comes up; await_reference
# collects its checksum (REF_SUM) and stops the local cluster.
LOCAL_STARTED=1
reference_checksum >"$LOGS/reference.sum" &
REF_PID=$!
await_reference() {
    wait "$REF_PID"
    REF_PID=
    REF_SUM=$(cat "$LOGS/reference.sum")
    local_cluster stop >>"$LOGS/local-cluster.log" 2>&1
    LOCAL_STARTED=0
    if [[ "$REF_SUM" =~ ^[0-9a-f]{64}$ ]]; then
        ok "the period run on the local cluster has a checksum ($REF_SUM)"
    else
        not_ok "the period run on the local cluster has a checksum" "got '$REF_SUM'"
        finish
    fi
}

# ---- up -d --scale consumer=3 ---------------------------------------------------------

# containers SERVICE [docker ps flags]: the ids of the service's containers.
containers() {
    local svc=$1; shift
    $DOCKER ps -q "$@" --filter "label=com.docker.compose.project=$PROJECT" \
        --filter "label=com.docker.compose.service=$svc"
}
count() { grep -c . || true; }
inspect() { $DOCKER inspect -f "$1" "$2" 2>/dev/null; }

start=$SECONDS
if compose up -d --scale consumer=3 >"$LOGS/up.log" 2>&1; then
    ok "up -d --scale consumer=3 ($((SECONDS - start)) s)"
else
    not_ok "up -d --scale consumer=3" "$(tail -n 3 "$LOGS/up.log" | tr '\n' '|')"
    finish
fi
for svc in postgres rabbitmq redis; do
    id=$(containers $svc)
    # `up` returned when migrate could start, that is when all three were healthy
    check_eq "$svc is healthy (its healthcheck passes)" "$(inspect '{{.State.Health.Status}}' "$id")" healthy
done
check_eq "the servers run the images built from Debian's packages" \
    "$(for svc in postgres rabbitmq redis; do inspect '{{.Config.Image}}' "$(containers $svc)"; done | tr '\n' ' ')" \
    "$ALLOC_PG_IMAGE $ALLOC_RABBITMQ_IMAGE $ALLOC_REDIS_IMAGE "
check_eq "postgres runs with the compose file's options (max_connections, shared_buffers, work_mem)" \
    "$(csql -c 'SHOW max_connections' -c 'SHOW shared_buffers' -c 'SHOW work_mem' | tr '\n' ' ')" "300 1GB 64MB "
# the user each server's main process (pid 1 in its container) runs as, by the container's names
check_eq "the servers run as postgres, rabbitmq and redis, not root" \
    "$(for svc in postgres rabbitmq redis; do $DOCKER exec "$(containers $svc)" stat -c %U /proc/1; done | tr '\n' ' ')" \
    "postgres rabbitmq redis "
migrate_ids=$(containers migrate -a)
check_eq "migrate ran in one container" "$(echo "$migrate_ids" | count)" 1
check_eq "migrate exited 0" "$(inspect '{{.State.Status}} {{.State.ExitCode}}' "$migrate_ids")" "exited 0"
compose logs --no-color migrate >"$LOGS/migrate.log" 2>&1
check "migrate brought the schema up to date" grep -q 'schema up to date' "$LOGS/migrate.log"
check_eq "migrate applied each migration once" \
    "$(grep -c 'applied migration' "$LOGS/migrate.log")" "$(ls schemas/[0-9]*.sql | count)"
# consumers start after migrate has completed
first_consumer_start=$(for id in $(containers consumer); do inspect '{{.State.StartedAt}}' "$id"; done | sort | head -n 1)
migrate_end=$(inspect '{{.State.FinishedAt}}' "$migrate_ids")
check "the consumers started after migrate completed ($migrate_end < $first_consumer_start)" \
    test "$(date -d "$migrate_end" +%s%N)" -lt "$(date -d "$first_consumer_start" +%s%N)"
# a consumer that fails to connect exits and is restarted: wait for three steady ones
consumers_running() { [ "$(containers consumer --filter status=running | count)" = "$1" ]; }
check "three consumers run" wait_until 30 consumers_running 3
sleep 3
restarts=$(for id in $(containers consumer); do inspect '{{.RestartCount}}' "$id"; done | tr '\n' ' ')
check_eq "no consumer restarted" "$restarts" "0 0 0 "

# ---- the period: alloc-gen and run from the producer container --------------------------

if compose run --rm --entrypoint alloc-gen producer "${GEN_ARGS[@]}" >"$LOGS/gen.log" 2>&1; then
    ok "alloc-gen loads the period from the producer container"
else
    not_ok "alloc-gen loads the period from the producer container" "$(tail -n 3 "$LOGS/gen.log" | tr '\n' '|')"
    finish
fi
start=$SECONDS
compose run --rm producer run --period $PERIOD "${RUN_ARGS[@]}" >"$LOGS/run1.log" 2>&1
check_eq "run --rm producer run --period $PERIOD exits 0 ($((SECONDS - start)) s)" "$?" 0
run1=$(csql -c "SELECT max(run_id) FROM alloc_run WHERE period_code = '$PERIOD' AND status = 'succeeded'")
check_eq "the run's batches went to all three consumers" \
    "$(csql -c "SELECT count(DISTINCT consumer) FROM batch_marker WHERE run_id = ${run1:-0}")" 3
sum1=$(compose run --rm producer report --period $PERIOD --checksum 2>>"$LOGS/report.log" | tr -d '\r')
await_reference
check_eq "the report's checksum equals the local cluster's" "$sum1" "$REF_SUM"

# ---- a second run: one consumer killed, the cluster scaled down to one ------------------

# The same slow-down as tests/faults: every batch transaction sleeps, so the
# run lasts long enough (about 85 batches of 0.5 s) for the kill to land in it.
{ csql <"$repo/tests/faults/slow_down.sql" &&
    csql -c "UPDATE faults_delay SET seconds = 0.5"; } >/dev/null || not_ok "the slow-down trigger is installed"
compose run --rm -T producer run --period $PERIOD "${RUN_ARGS[@]}" >"$LOGS/run2.log" 2>&1 &
BG_PID=$!
run2_registered() { [ "$(csql -c "SELECT coalesce(max(run_id), 0) FROM alloc_run")" -gt "${run1:-0}" ]; }
if ! wait_until 60 run2_registered; then
    not_ok "the second run registered" "$(tail -n 3 "$LOGS/run2.log" | tr '\n' '|')"
    finish
fi
run2=$(csql -c "SELECT max(run_id) FROM alloc_run")
markers() { csql -c "SELECT count(*) FROM batch_marker WHERE run_id = $run2 AND stage = '${1:-allocate}'"; }
markers_at_least() { [ "$(markers)" -ge "$1" ]; }
if wait_until 60 markers_at_least 6; then
    victim=${PROJECT}_consumer_1 # compose 1.x names replicas PROJECT_SERVICE_N
    $DOCKER kill "$victim" >/dev/null
    at_kill=$(markers)
    expected=$(csql -c "SELECT expected_batches FROM alloc_run WHERE run_id = $run2")
    check "docker kill of a consumer mid-run ($at_kill of $expected allocation batches marked)" \
        test "$at_kill" -lt "$expected"
    check_eq "the killed consumer died by SIGKILL" "$(inspect '{{.State.ExitCode}}' "$victim")" 137
    if compose up -d --scale consumer=1 >"$LOGS/scale.log" 2>&1; then
        ok "up -d --scale consumer=1 mid-run"
    else
        not_ok "up -d --scale consumer=1 mid-run" "$(tail -n 3 "$LOGS/scale.log" | tr '\n' '|')"
    fi
    check "the run was still going after the scale-down" \
        test "$(csql -c "SELECT status FROM alloc_run WHERE run_id = $run2")" = running
    check "one consumer runs" consumers_running 1
    # the rest of the run need not be slow
    csql -c "UPDATE faults_delay SET seconds = 0" >/dev/null
else
    not_ok "the second run's batches are marked" "$(markers) after 60 s"
fi
wait "$BG_PID"
check_eq "the disturbed run exits 0" "$?" 0
BG_PID=
check_eq "the disturbed run is succeeded" "$(csql -c "SELECT status FROM alloc_run WHERE run_id = $run2")" succeeded
check_eq "every allocation batch is marked once" \
    "$(markers allocate)" "$(csql -c "SELECT expected_batches FROM alloc_run WHERE run_id = $run2")"
check_eq "every formula batch is marked once" \
    "$(markers formula)" "$(csql -c "SELECT formula_batches FROM alloc_run WHERE run_id = $run2")"
sum2=$(compose run --rm producer report --period $PERIOD --run "$run2" --checksum 2>>"$LOGS/report.log" | tr -d '\r')
check_eq "the disturbed run's checksum equals the local cluster's" "$sum2" "$REF_SUM"

# ---- stop: the consumers exit 0 -----------------------------------------------------------

consumer_ids=$(containers consumer)
compose stop >"$LOGS/stop.log" 2>&1
check_eq "stop exits 0" "$?" 0
codes=$(for id in $consumer_ids; do inspect '{{.State.Status}} {{.State.ExitCode}}' "$id"; done | sort | uniq -c | sed 's/^ *//')
check_eq "the consumers exit 0 on stop" "$codes" "$(echo "$consumer_ids" | count) exited 0"

# ---- a consumer on another machine ---------------------------------------------------------

# The servers published on the host (deploy/docker/expose-servers.yml, with the
# three passwords; the database and broker ones are those their volumes were
# made with) and no compose consumer: a consumer of the image started with
# `docker run` on the host's network, as on another machine, does all the work
# of a third run. Its batch markers carry the host's name (a compose consumer's
# is its container id).
export ALLOC_DB_PASSWORD=alloc ALLOC_MQ_PASSWORD=alloc
ALLOC_REDIS_PASSWORD=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
export ALLOC_REDIS_PASSWORD
COMPOSE_FILE_ARG=(-f deploy/docker-compose.yml -f deploy/docker/expose-servers.yml)
HOST=127.0.0.1
if compose up -d --scale consumer=0 >"$LOGS/up-exposed.log" 2>&1; then
    ok "up -d with expose-servers.yml and no compose consumer"
else
    not_ok "up -d with expose-servers.yml and no compose consumer" "$(tail -n 3 "$LOGS/up-exposed.log" | tr '\n' '|')"
fi
REMOTE=alloc-consumer-remote
$DOCKER run -d --name $REMOTE --network host --restart unless-stopped --init --stop-timeout 120 \
    -e ALLOC_AMQP_URL="amqp://alloc:$ALLOC_MQ_PASSWORD@$HOST:5672/alloc" \
    -e ALLOC_REDIS_URL="redis://:$ALLOC_REDIS_PASSWORD@$HOST:6379/0" \
    -e ALLOC_PG_DSN="host=$HOST port=5432 dbname=alloc user=alloc password=$ALLOC_DB_PASSWORD" \
    -e ALLOC_CONSUMER_THREADS=1 \
    alloc:latest >"$LOGS/remote-run.log" 2>&1
check_eq "docker run of a consumer on the host's network" "$?" 0
remote_connected() { $DOCKER logs $REMOTE 2>&1 | grep -q 'export: worker started'; }
check "the other machine's consumer reaches the published servers" wait_until 30 remote_connected
check_eq "no compose consumer runs" "$(containers consumer | count)" 0
compose run --rm producer run --period $PERIOD "${RUN_ARGS[@]}" >"$LOGS/run3.log" 2>&1
check_eq "a run with only the other machine's consumer exits 0" "$?" 0
run3=$(csql -c "SELECT max(run_id) FROM alloc_run WHERE period_code = '$PERIOD' AND status = 'succeeded'")
check "it is a new run ($run3 > $run2)" test "${run3:-0}" -gt "$run2"
check_eq "every batch was done by the other machine's consumer" \
    "$(csql -c "SELECT string_agg(DISTINCT split_part(consumer, ':', 1), ' ') FROM batch_marker WHERE run_id = ${run3:-0}")" \
    "$(hostname)"
sum3=$(compose run --rm producer report --period $PERIOD --run "${run3:-0}" --checksum 2>>"$LOGS/report.log" | tr -d '\r')
check_eq "its checksum equals the local cluster's" "$sum3" "$REF_SUM"
$DOCKER stop $REMOTE >/dev/null
check_eq "the other machine's consumer exits 0 on docker stop" "$(inspect '{{.State.Status}} {{.State.ExitCode}}' $REMOTE)" "exited 0"
$DOCKER logs $REMOTE >"$LOGS/remote.log" 2>&1
$DOCKER rm $REMOTE >/dev/null

# ---- down -v: nothing is left --------------------------------------------------------------

compose down -v >"$LOGS/down.log" 2>&1
check_eq "down -v exits 0" "$?" 0
check_eq "down -v leaves no container of the project" \
    "$($DOCKER ps -aq --filter "label=com.docker.compose.project=$PROJECT" | count)" 0
check_eq "down -v leaves no volume of the project" \
    "$($DOCKER volume ls -q --filter "label=com.docker.compose.project=$PROJECT" | count)" 0
check_eq "down -v leaves no network of the project" \
    "$($DOCKER network ls -q --filter "label=com.docker.compose.project=$PROJECT" | count)" 0
check_eq "no container is left on the engine" "$($DOCKER ps -aq | count)" 0
finish
