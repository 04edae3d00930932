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

/* 3. The end of the allocation stage: 'unallocated' findings, the run's own
 * report_after table and the units of the formula stage (run3_units.c). */
int run_plan_units(run_state *st);

/* 4. The formula stage: the compiled ruleset cached in Redis, one message per
 * unit, waited for; each unit's consumer writes its projects' base rows,
 * formula rows and audit findings, and its per-item totals (run4_formula.c). */
int run_formula_stage(run_state *st);

/* 5. The last transaction: roll-ups from the units' totals, conservation, the
 * report's key and partition, succeeded, earlier unpublished results replaced;
 * then the event on alloc.events (run5_finish.c). */
int run_finish(run_state *st);
void run_announce(run_state *st);

#endif
