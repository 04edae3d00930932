#!/usr/bin/env bash
# DESIGN.md 5.6 "Run lifecycle", proved by a model (issue 8): lifecycle.py drives
# a seeded random sequence of runs (ok, failing at start, killed, timed out),
# resume, abort, publish, close-period, ledger postings and ruleset edits through
# the CLI on demo periods, and checks the database and every report against its
# model after every step. One ok / not ok line per check family.
#
#   ALLOC_LIFECYCLE_SEED=N    replay a sequence (default: time-based, printed)
#   ALLOC_LIFECYCLE_STEPS=N   steps (default 300)
#
# The consumers are started and stopped by lifecycle.py itself: some killed and
# timed-out runs stop them in the middle of the sequence.
source "$(dirname "$0")/../integration/lib.sh"
use_fresh_db t_lifecycle
# a vhost no consumer reads: runs sent there wait (killed and timed-out runs)
use_fresh_vhost t_lifecycle_idle
export ALLOC_LIFECYCLE_IDLE_AMQP_URL=$ALLOC_AMQP_URL
use_fresh_vhost t_lifecycle
use_fresh_redis 4
LOGS=$repo/.run/test-logs/t_lifecycle
rm -rf "$LOGS"; mkdir -p "$LOGS"

"$PRODUCER" migrate >"$LOGS/migrate.log" 2>&1 || { not_ok "migrate" "$(tail -3 "$LOGS/migrate.log")"; finish; }

ALLOC_BUILD=$BIN ALLOC_LIFECYCLE_LOGS=$LOGS python3 "$(dirname "$0")/lifecycle.py"
[ $? -eq 0 ] || T_FAILED=1
finish
