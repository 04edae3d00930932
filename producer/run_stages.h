/* The stages of a run, in the order run.c drives them (DESIGN.md 5.1-5.6).
 * Each is written on run_state.h (and run_wait.h) only, never on another
 * stage or on run.c, and returns a DESIGN.md exit code. */
#ifndef ALLOC_PRODUCER_RUN_STAGES_H
#define ALLOC_PRODUCER_RUN_STAGES_H

#include "run_state.h"

/* 1. The snapshot transaction: validate, register, copy out (run1_snapshot.c). */
int run_snapshot(run_state *st, const run_opts *o);

/* 2. The public data cached in Redis, then the buckets of pending rows
 * published to the consumers, who split and allocate them (run2_buckets.c). */
int run_cache_public(run_state *st);
int run_publish_buckets(run_state *st, int *published);

/* 3. Aggregation into report_after with roll-ups and the conservation check;
 * moves the run to its formula stage (run3_aggregate.c). */
int run_aggregate(run_state *st, int has_rules);

/* 4. The formula stage: formula batches published and waited for
 * (run4_formula.c). run_has_rules: 1 when the run's compiled ruleset has
 * formulas or audit rules, 0 when not, -1 on error. */
int run_has_rules(run_state *st);
int run_formula_stage(run_state *st);

/* 5. The last transaction (succeeded; earlier unpublished results replaced)
 * and the event on alloc.events (run5_finish.c). */
int run_finish(run_state *st);
void run_announce(run_state *st);

#endif
