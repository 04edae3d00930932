/* Waiting for a stage of a run on its batch markers (run_wait.c), used by the
 * coordinator for the allocation stage and by the formula stage. */
#ifndef ALLOC_PRODUCER_RUN_WAIT_H
#define ALLOC_PRODUCER_RUN_WAIT_H

#include "run_state.h"

/* Called on every poll of a wait. */
typedef void (*wait_hook)(run_state *st);

/* Waits until every batch of the stage has its marker, showing progress.
 * Returns an exit code: ALLOC_EXIT_TIMEOUT when --timeout passed or on
 * SIGINT/SIGTERM (the run goes on, resumable). */
int run_wait_stage(run_state *st, const char *stage, int64_t expected, wait_hook hook);

#endif
