#!/usr/bin/env bash
# Integration test of the AMQP module (common/mq.c): runs it_mq against a fresh
# vhost, then checks with rabbitmqctl that the queues landed in the vhosts the
# URLs named.
source "$(dirname "$0")/lib.sh"

ctl="$repo/deploy/local/rabbitmqctl.sh"
vh=t_mq
pct_vh="t_mq/pct" # a vhost whose name must be percent-encoded in a URL
use_fresh_vhost "$vh"
"$ctl" delete_vhost "$pct_vh" >/dev/null 2>&1 || true
"$ctl" add_vhost "$pct_vh" >/dev/null
"$ctl" set_permissions -p "$pct_vh" alloc '.*' '.*' '.*' >/dev/null

tmp=$(mktemp -d)
cleanup() {
    rm -rf "$tmp"
    "$ctl" delete_vhost "$pct_vh" >/dev/null 2>&1 || true
}
trap cleanup EXIT

# Closes the broker connections of this test's vhost only (other tests share the broker).
cat >"$tmp/kill.sh" <<EOF
"$ctl" list_connections --no-table-headers pid vhost | awk -F'\t' '\$2 == "$vh" { print \$1 }' |
    while read -r pid; do "$ctl" close_connection "\$pid" "t_mq reconnect test"; done
EOF

export ALLOC_IT_VHOST=$vh
export ALLOC_IT_PCT_URL="${ALLOC_AMQP_URL%/*}/t_mq%2Fpct"
export ALLOC_IT_KILL="bash $tmp/kill.sh"

"$BIN/tests/it_mq" | tee "$tmp/out"
rc=${PIPESTATUS[0]}
if [ "$rc" -ne 0 ] && ! grep -q '^not ok - ' "$tmp/out"; then
    not_ok "it_mq ran to completion" "exited $rc"
fi

queues=$("$ctl" list_queues -p "$vh" --no-table-headers name type | sort | tr '\t\n' ': ')
check_eq "topology declared as quorum queues in vhost $vh" "$queues" \
    "alloc.batches:quorum alloc.buckets:quorum alloc.dead:quorum alloc.exports:quorum alloc.formulas:quorum "
check_eq "percent-encoded vhost of the URL honoured" \
    "$("$ctl" list_queues -p "$pct_vh" --no-table-headers name)" "alloc.pct.probe"

finish
