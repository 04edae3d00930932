#!/usr/bin/env bash
# The local, process-based alloc cluster: throwaway PostgreSQL, Redis and
# RabbitMQ instances on loopback ports, all state under one git-ignored directory.
#
#   deploy/local/cluster.sh start    start what is not running yet, print the ALLOC_* environment
#   deploy/local/cluster.sh stop     stop exactly the servers this directory holds
#   deploy/local/cluster.sh env      print the ALLOC_* environment (eval "$(... env)")
#   deploy/local/cluster.sh status   say which servers answer
#
# ALLOC_CLUSTER_DIR  state directory (default: <repo>/.run/cluster)
# ALLOC_CLUSTER_PORT two-digit port prefix (default 15): PostgreSQL <p>432, Redis <p>379,
#                    AMQP <p>672, Erlang distribution <p>673, epmd <p>369,
#                    rabbitmqctl <p>700-<p>720
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
dir=${ALLOC_CLUSTER_DIR:-$repo/.run/cluster}
pfx=${ALLOC_CLUSTER_PORT:-15}
pg_port=${pfx}432
redis_port=${pfx}379
amqp_port=${pfx}672
dist_port=${pfx}673
epmd_port=${pfx}369
node="alloc${pfx}@localhost"
pg_bin=/usr/lib/postgresql/15/bin
rabbit_bin=/usr/lib/rabbitmq/bin

say() { printf 'cluster: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

as_pg() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

rabbit_env() {
    export RABBITMQ_NODENAME=$node
    export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
    export RABBITMQ_NODE_PORT=$amqp_port
    export RABBITMQ_DIST_PORT=$dist_port
    export ERL_EPMD_PORT=$epmd_port
    export ERL_EPMD_ADDRESS=127.0.0.1
    export RABBITMQ_MNESIA_BASE=$dir/rabbitmq/mnesia
    export RABBITMQ_LOG_BASE=$dir/rabbitmq/log
    export RABBITMQ_ENABLED_PLUGINS_FILE=$dir/rabbitmq/enabled_plugins
    export RABBITMQ_CONFIG_FILE=$dir/rabbitmq/rabbitmq
    export RABBITMQ_ADVANCED_CONFIG_FILE=$dir/rabbitmq/advanced.config
    export RABBITMQ_CONF_ENV_FILE=$dir/rabbitmq/rabbitmq-env.conf
    export RABBITMQ_PID_FILE=$dir/rabbitmq/rabbitmq.pid
    # rabbitmqctl's own distribution ports: the default 35672-35682 would meet
    # another cluster's ports
    export RABBITMQ_CTL_DIST_PORT_MIN=${pfx}700 RABBITMQ_CTL_DIST_PORT_MAX=${pfx}720
    export HOME=$dir/rabbitmq
}

print_env() {
    cat <<EOT
export ALLOC_PG_DSN='host=127.0.0.1 port=$pg_port dbname=alloc user=alloc'
export ALLOC_AMQP_URL='amqp://alloc:alloc@127.0.0.1:$amqp_port/alloc'
export ALLOC_REDIS_URL='redis://127.0.0.1:$redis_port/0'
export ALLOC_FILE_STORE='$dir/files'
EOT
}

pg_up() { "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$pg_port" >/dev/null 2>&1; }
redis_up() { [ "$(redis-cli -h 127.0.0.1 -p "$redis_port" ping 2>/dev/null)" = PONG ]; }
# The AMQP port answering is what clients need; rabbitmqctl is slow and flaky under load.
rabbit_up() { (exec 3<>"/dev/tcp/127.0.0.1/$amqp_port") 2>/dev/null; }

wait_for() { # name seconds command...
    local name=$1 secs=$2; shift 2
    local i
    for ((i = 0; i < secs * 4; i++)); do
        if "$@"; then return 0; fi
        sleep 0.25
    done
    die "$name did not answer within ${secs}s (logs under $dir)"
}

start_pg() {
    if pg_up; then say "postgresql already answers on $pg_port"; return; fi
    mkdir -p "$dir/pg"
    if [ "$(id -u)" -eq 0 ]; then chown postgres: "$dir/pg"; fi
    if [ ! -f "$dir/pg/data/PG_VERSION" ]; then
        as_pg "$pg_bin/initdb" -D "$dir/pg/data" -U postgres --auth=trust -E UTF8 \
            --locale=C >"$dir/pg/initdb.log" 2>&1 || die "initdb failed: see $dir/pg/initdb.log"
        cat >>"$dir/pg/data/postgresql.conf" <<EOT
listen_addresses = '127.0.0.1'
port = $pg_port
unix_socket_directories = '$dir/pg'
max_connections = 200
shared_buffers = 1GB
work_mem = 64MB
maintenance_work_mem = 512MB
fsync = off
synchronous_commit = off
full_page_writes = off
max_wal_size = 8GB
checkpoint_timeout = 30min
EOT
    fi
    as_pg "$pg_bin/pg_ctl" -D "$dir/pg/data" -l "$dir/pg/postgresql.log" -w -t 60 start >/dev/null 9>&- \
        || die "postgresql did not start: see $dir/pg/postgresql.log"
    wait_for postgresql 60 pg_up
    local psql=(psql -X -q -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres -v ON_ERROR_STOP=1)
    if [ -z "$("${psql[@]}" -tAc "SELECT 1 FROM pg_roles WHERE rolname = 'alloc'")" ]; then
        "${psql[@]}" -c "CREATE ROLE alloc LOGIN SUPERUSER"
    fi
    if [ -z "$("${psql[@]}" -tAc "SELECT 1 FROM pg_database WHERE datname = 'alloc'")" ]; then
        "${psql[@]}" -c "CREATE DATABASE alloc OWNER alloc"
    fi
    say "postgresql answers on 127.0.0.1:$pg_port"
}

start_redis() {
    if redis_up; then say "redis already answers on $redis_port"; return; fi
    mkdir -p "$dir/redis"
    redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$dir/redis" --daemonize yes \
        --pidfile "$dir/redis/redis.pid" --logfile "$dir/redis/redis.log" \
        --save "" --appendonly no >/dev/null 9>&-
    wait_for redis 30 redis_up
    say "redis answers on 127.0.0.1:$redis_port"
}

start_rabbit() {
    if rabbit_up; then say "rabbitmq already answers on $amqp_port"; return; fi
    mkdir -p "$dir/rabbitmq/mnesia" "$dir/rabbitmq/log"
    echo '[].' >"$dir/rabbitmq/enabled_plugins"
    : >"$dir/rabbitmq/rabbitmq-env.conf"
    cat >"$dir/rabbitmq/rabbitmq.conf" <<EOT
listeners.tcp.1 = 127.0.0.1:$amqp_port
loopback_users = none
disk_free_limit.absolute = 50MB
vm_memory_high_watermark.relative = 0.4
EOT
    echo '[].' >"$dir/rabbitmq/advanced.config"
    (
        rabbit_env
        if [ ! -f "$HOME/.erlang.cookie" ]; then
            head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$HOME/.erlang.cookie"
            chmod 400 "$HOME/.erlang.cookie"
        fi
        setsid nohup "$rabbit_bin/rabbitmq-server" >"$dir/rabbitmq/server.out" 2>&1 </dev/null 9>&- &
        # await_startup fails at once while the node is not yet registered: retry it.
        wait_for rabbitmq 120 "$rabbit_bin/rabbitmqctl" -q -n "$node" await_startup --timeout 30 \
            >/dev/null 2>&1
        ctl=("$rabbit_bin/rabbitmqctl" -q -n "$node")
        "${ctl[@]}" list_vhosts | grep -qx alloc || "${ctl[@]}" add_vhost alloc >/dev/null
        "${ctl[@]}" list_users | grep -q '^alloc' || "${ctl[@]}" add_user alloc alloc >/dev/null
        "${ctl[@]}" set_permissions -p alloc alloc '.*' '.*' '.*' >/dev/null
    )
    say "rabbitmq answers on 127.0.0.1:$amqp_port (vhost alloc)"
}

stop_all() {
    if [ -f "$dir/rabbitmq/enabled_plugins" ]; then
        (
            rabbit_env
            if rabbit_up; then "$rabbit_bin/rabbitmqctl" -q -n "$node" stop >/dev/null 2>&1 || true; fi
            if [ -f "$RABBITMQ_PID_FILE" ]; then
                pid=$(cat "$RABBITMQ_PID_FILE")
                for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
                kill -9 "$pid" 2>/dev/null || true
                rm -f "$RABBITMQ_PID_FILE"
            fi
            epmd -port "$epmd_port" -kill >/dev/null 2>&1 || true
            # -kill is refused while a (CLI) node is still registered: stop it by its port
            for pid in $(ss -ltnpH "sport = :$epmd_port" 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u); do
                kill "$pid" 2>/dev/null || true
            done
        )
        say "rabbitmq stopped"
    fi
    if [ -f "$dir/redis/redis.pid" ]; then
        redis-cli -h 127.0.0.1 -p "$redis_port" shutdown nosave >/dev/null 2>&1 || true
        pid=$(cat "$dir/redis/redis.pid" 2>/dev/null || true)
        if [ -n "$pid" ]; then
            for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
        fi
        rm -f "$dir/redis/redis.pid"
        say "redis stopped"
    fi
    if [ -f "$dir/pg/data/postmaster.pid" ]; then
        as_pg "$pg_bin/pg_ctl" -D "$dir/pg/data" -m fast -w stop >/dev/null 2>&1 || true
        say "postgresql stopped"
    fi
}

cmd=${1:-}
case "$cmd" in
start)
    mkdir -p "$dir/files"
    exec 9>"$dir/.lock"
    flock 9
    if ! command -v redis-server >/dev/null || [ ! -x "$pg_bin/initdb" ] || [ ! -x "$rabbit_bin/rabbitmq-server" ]; then
        "$repo/deploy/local/deps.sh"
    fi
    start_pg
    start_redis
    start_rabbit
    print_env
    ;;
stop)
    mkdir -p "$dir"
    exec 9>"$dir/.lock"
    flock 9
    stop_all
    ;;
env) print_env ;;
status)
    pg_up && say "postgresql up on $pg_port" || say "postgresql down"
    redis_up && say "redis up on $redis_port" || say "redis down"
    rabbit_up && say "rabbitmq up on $amqp_port" || say "rabbitmq down"
    ;;
*)
    echo "usage: $0 start|stop|env|status" >&2
    exit 2
    ;;
esac
