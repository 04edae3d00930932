/* The exactly-once completion counter of a run's stage (DESIGN.md 5.6): a Redis
 * set of the batch ids processed so far, bumped by an atomic Lua script, so a
 * redelivered batch is never counted twice and exactly one caller learns that
 * the stage is complete. The PostgreSQL batch markers stay the truth: after
 * Redis lost a set, counter_rebuild re-adds the marked ids. */
#ifndef ALLOC_COUNTER_H
#define ALLOC_COUNTER_H

#include "cache.h"

#include <stddef.h>
#include <stdint.h>

/* Counter keys expire this long after their last bump or rebuild. */
#define COUNTER_TTL_S (7 * 24 * 3600)

typedef struct counter_result {
    int added;     /* 1 when this call added the batch id, 0 when it was counted already */
    int64_t count; /* distinct batch ids in the set after the call */
    int completed; /* 1 for exactly one call per set: the one that added the id that made
                      count reach the expected number */
    int completer; /* 1 when batch_id is the id whose addition completed the set; unlike
                      completed it is also 1 when that id is bumped again (a retry after a
                      lost reply, a redelivery), so a notification lost with a crash or a
                      broken connection can be sent again */
} counter_result;

/* Writes the key of (run_id, stage), "alloc:run:<id>:<stage>:done", to buf.
 * stage is a non-empty name of [a-z0-9_]. Returns 0, or -1 when stage is bad or
 * buf too small. */
int counter_key(char *buf, size_t size, int64_t run_id, const char *stage);

/* Counts batch_id for (run_id, stage) whose stage produces `expected` batches,
 * atomically on the server, and fills *out. Safe to repeat: a repeat reports
 * added = 0 and completed = 0. Refreshes the keys' TTL. Returns 0, or -1 with
 * the reason in err. */
int counter_bump(cache_conn *conn, int64_t run_id, const char *stage, const char *batch_id,
                 int64_t expected, counter_result *out, char *err, size_t errlen);

/* Re-adds the n batch ids (read by the caller from the PostgreSQL batch markers)
 * to the set of (run_id, stage) after Redis lost it; ids already present are
 * left alone. Completion is not reported here: the caller compares *count (when
 * count != NULL) with the expected number. Returns 0, or -1 with err. */
int counter_rebuild(cache_conn *conn, int64_t run_id, const char *stage,
                    const char *const *batch_ids, size_t n, int64_t *count, char *err,
                    size_t errlen);

/* The number of batch ids counted for (run_id, stage), 0 when the set does not
 * exist, or -1 with err. */
int64_t counter_count(cache_conn *conn, int64_t run_id, const char *stage, char *err,
                      size_t errlen);

/* Deletes every counter key of run_id (all stages). Returns 0, or -1 with err. */
int counter_clear(cache_conn *conn, int64_t run_id, char *err, size_t errlen);

#endif
