#!/usr/bin/env bash
# The deploy test's own Docker engine: one dockerd with every file of it under
# one git-ignored directory (data root, exec root, socket, pidfile, log), so it
# meets no other engine on the machine and stopping it stops nothing else.
#
#   tests/deploy/engine.sh start    start it unless it answers, print the DOCKER_HOST line
#   tests/deploy/engine.sh stop     stop exactly the dockerd of this directory (by its pidfile)
#   tests/deploy/engine.sh env      print the DOCKER_HOST line (eval "$(... env)")
#   tests/deploy/engine.sh status   say whether it answers
#
# ALLOC_DOCKER_DIR  state directory (default: <repo>/.run/docker); images stay
#                   in its data/ between runs, so a second run reuses them.
#
# The engine: storage driver vfs (works on any file system, without overlay
# mounts; each layer is a full copy, so keep images few-layered), no iptables
# rules and no IP forwarding (nothing leaves the machine: containers reach each
# other on compose's bridge networks, builds that need Debian's packages use
# the host's network), no default bridge (compose makes its own networks).
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
dir=${ALLOC_DOCKER_DIR:-$repo/.run/docker}
sock=$dir/docker.sock
pidfile=$dir/docker.pid
# Debian's docker.io client: another `docker` earlier on PATH may be newer than
# the engine and speak another API.
docker_bin=/usr/bin/docker

say() { printf 'engine: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

engine_up() { DOCKER_HOST=unix://$sock "$docker_bin" version >/dev/null 2>&1; }

start_engine() {
    if engine_up; then say "dockerd already answers on $sock"; return; fi
    command -v dockerd >/dev/null || die "dockerd is not installed (Debian package docker.io)"
    mkdir -p "$dir/data" "$dir/exec"
    # A dockerd of this directory that died leaves its pidfile and socket.
    rm -f "$pidfile" "$sock"
    # The namespaces keep its containers apart from any other engine's, should
    # a system containerd exist that this dockerd then uses.
    setsid nohup dockerd \
        --storage-driver=vfs --iptables=false --ip-forward=false --bridge=none \
        --data-root "$dir/data" --exec-root "$dir/exec" \
        -H "unix://$sock" --pidfile "$pidfile" \
        --containerd-namespace alloc-deploy --containerd-plugins-namespace alloc-deploy-plugins \
        >"$dir/dockerd.log" 2>&1 </dev/null 9>&- &
    local i
    for ((i = 0; i < 240; i++)); do
        if engine_up; then say "dockerd answers on $sock"; return; fi
        # stop waiting as soon as the daemon has died
        if [ $i -gt 8 ] && ! { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; } &&
            ! pgrep -f -- "--pidfile $pidfile" >/dev/null; then
            break
        fi
        sleep 0.25
    done
    die "dockerd did not start: $(grep -E 'level=(fatal|error)' "$dir/dockerd.log" | tail -n 1 | cut -c1-300)"
}

# unmount_leftovers: dockerd leaves its host network namespace
# (exec/netns/default) mounted; unmount what is left under the directory, so
# that it can be removed.
unmount_leftovers() {
    local m
    for m in $(awk -v d="$dir/" 'index($2, d) == 1 {print $2}' /proc/self/mounts | sort -r); do
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || say "could not unmount $m"
    done
}

stop_engine() {
    if [ ! -f "$pidfile" ]; then
        say "no dockerd of $dir runs"
        engine_up || unmount_leftovers
        return
    fi
    local pid i
    pid=$(cat "$pidfile")
    kill -TERM "$pid" 2>/dev/null || true
    # dockerd stops its containers (10 s each at most) and its containerd first.
    for ((i = 0; i < 240; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    if kill -0 "$pid" 2>/dev/null; then
        say "dockerd $pid did not stop within 60 s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile" "$sock"
    unmount_leftovers
    say "dockerd stopped"
}

case "${1:-}" in
start)
    start_engine
    echo "export DOCKER_HOST=unix://$sock"
    ;;
stop) stop_engine ;;
env) echo "export DOCKER_HOST=unix://$sock" ;;
status) engine_up && say "dockerd answers on $sock" || say "dockerd down" ;;
*)
    echo "usage: $0 start|stop|env|status" >&2
    exit 2
    ;;
esac
