#!/bin/sh
# The consumer container's command: alloc-consumer with --threads taken from
# ALLOC_CONSUMER_THREADS when it is set and not empty (unset: the program's
# default, 80% of the cores the container sees). Further arguments are passed
# on (e.g. --role split). exec: alloc-consumer gets SIGTERM from `docker stop`
# itself and finishes the batches in hand before it exits.
set -eu
if [ -n "${ALLOC_CONSUMER_THREADS:-}" ]; then
    exec alloc-consumer --threads "$ALLOC_CONSUMER_THREADS" "$@"
fi
exec alloc-consumer "$@"
