#!/usr/bin/env bash
# Redis cache and completion counter against the cluster's Redis (db 3):
# commands, EVALSHA with the NOSCRIPT reload, the exactly-once counter from
# several threads, counter rebuild, and reconnection after CLIENT KILL and
# across a restart of a private redis-server.
. "$(dirname "$0")/lib.sh"
use_fresh_redis 3

ALLOC_TEST_REDIS_SERVER=$(command -v redis-server || true)
export ALLOC_TEST_REDIS_SERVER
if [ ! -x "$BIN/tests/it_cache" ]; then
    not_ok it_cache "missing $BIN/tests/it_cache (run make)"
    finish
fi
# it_cache prints the ok / not ok lines itself
"$BIN/tests/it_cache" || T_FAILED=1
finish
