#!/usr/bin/env bash
# The configuration defaults are the local cluster's, stated alike in three
# places: what `deploy/local/cluster.sh env` prints for the default cluster
# (prefix 15, default directory), what the programs were compiled with (their
# --help, from common/config.h), and README.md's configuration table. Also:
# `cluster.sh env` only prints, it starts nothing.
source "$(dirname "$0")/lib.sh"
LOGS=$repo/.run/test-logs/t_defaults
rm -rf "$LOGS"; mkdir -p "$LOGS"
VARS=(ALLOC_PG_DSN ALLOC_AMQP_URL ALLOC_REDIS_URL)

# --- what the default local cluster is
cluster_env=$(env -u ALLOC_CLUSTER_DIR ALLOC_CLUSTER_PORT=15 "$repo/deploy/local/cluster.sh" env 2>&1)
check_eq "cluster.sh env exits 0" "$?" 0
# cluster_value VAR: the value cluster.sh env exports for VAR
cluster_value() { printf '%s\n' "$cluster_env" | sed -n "s/^export $1='\\(.*\\)'\$/\\1/p"; }

# --- what the programs were compiled with: "  --flag ... (VAR)" then "default: VALUE"
"$PRODUCER" run --help >"$LOGS/run-help.txt" 2>&1
"$CONSUMER" --help >"$LOGS/consumer-help.txt" 2>&1
# help_value FILE VAR: the default stated on the line after the one naming VAR
help_value() { awk -v var="($2)" 'found { sub(/^ *default: /, ""); print; exit } index($0, var) { found = 1 }' "$1"; }

# --- what README.md's table says: | `VAR` | `--flag` | `VALUE` ... |
readme_value() { sed -n "s/^| \`$1\` | [^|]* | \`\\([^\`]*\\)\`.*/\\1/p" "$repo/README.md"; }

for var in "${VARS[@]}"; do
    want=$(cluster_value "$var")
    if [ -z "$want" ]; then
        not_ok "cluster.sh env prints $var" "$cluster_env"
        continue
    fi
    check_eq "alloc-producer run --help: $var default is the local cluster's" \
        "$(help_value "$LOGS/run-help.txt" "$var")" "$want"
    check_eq "alloc-consumer --help: $var default is the local cluster's" \
        "$(help_value "$LOGS/consumer-help.txt" "$var")" "$want"
    check_eq "README.md table: $var default is the local cluster's" "$(readme_value "$var")" "$want"
done
# the generator states its one default too
"$GEN" --help >"$LOGS/gen-help.txt" 2>&1
check_eq "alloc-gen --help: ALLOC_PG_DSN default is the local cluster's" \
    "$(help_value "$LOGS/gen-help.txt" ALLOC_PG_DSN)" "$(cluster_value ALLOC_PG_DSN)"

# --- env starts nothing: a directory and ports no cluster uses stay untouched
tmp=$(mktemp -d)
probe_dir=$tmp/cluster
start=$(date +%s)
ALLOC_CLUSTER_DIR=$probe_dir ALLOC_CLUSTER_PORT=47 timeout 20 "$repo/deploy/local/cluster.sh" env \
    >"$LOGS/probe-env.txt" 2>&1
rc=$?
check_eq "cluster.sh env on a fresh directory exits 0" "$rc" 0
check "cluster.sh env returns at once" test $(($(date +%s) - start)) -le 5
check "cluster.sh env creates no state directory" test ! -e "$probe_dir"
check "cluster.sh env prints the fresh directory's ports" grep -q "port=47432" "$LOGS/probe-env.txt"
listening=$(ss -ltnH 2>/dev/null | awk '{print $4}' | grep -E ':47(432|379|672|673|369)$')
check_eq "cluster.sh env leaves nothing listening on its ports" "$listening" ""
# no process was started with the fresh directory in its arguments
check_eq "cluster.sh env starts no process" "$(pgrep -f "$probe_dir" | tr '\n' ' ')" ""
rm -rf "$tmp"

finish
