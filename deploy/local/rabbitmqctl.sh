#!/usr/bin/env bash
# rabbitmqctl against the local cluster's node (same ALLOC_CLUSTER_* as cluster.sh).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
dir=${ALLOC_CLUSTER_DIR:-$repo/.run/cluster}
pfx=${ALLOC_CLUSTER_PORT:-15}
export HOME=$dir/rabbitmq ERL_EPMD_PORT=${pfx}369
export RABBITMQ_CTL_DIST_PORT_MIN=${pfx}700 RABBITMQ_CTL_DIST_PORT_MAX=${pfx}720
exec /usr/lib/rabbitmq/bin/rabbitmqctl -q -n "alloc${pfx}@localhost" "$@"
