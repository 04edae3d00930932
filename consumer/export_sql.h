/* The export role's SQL: the export_task rows (claim, heartbeat, outcome),
 * the run check and the segment queries, which read a run's rows in key order
 * by keyset pagination. Every update of a task requires the claim's token
 * (its attempts value), so a worker whose task was claimed again cannot
 * overwrite the new owner's outcome. Each connection is the caller's (the
 * export thread's). */
#ifndef ALLOC_CONSUMER_EXPORT_SQL_H
#define ALLOC_CONSUMER_EXPORT_SQL_H

#include <stddef.h>
#include <stdint.h>

#include "db.h"
#include "export_internal.h"

/* Claims (for worker) the oldest queued task, or one whose worker stopped
 * beating for stale_seconds. Returns 1 with *t filled, 0 when there is none,
 * -1 with err. */
int export_sql_claim(db_conn *ctl, const char *worker, int stale_seconds, export_task *t,
                     db_error *err);

/* Beats the heartbeat and records the rows written so far. Returns 1 while
 * the claim holds, 0 when the task was claimed again by another worker, -1
 * with err. */
int export_sql_heartbeat(db_conn *ctl, const export_task *t, int64_t rows, db_error *err);

/* Records the task failed with why (when the claim still holds). ctl NULL:
 * there is no connection. A failure is logged: the task will be claimed again
 * once its heartbeat is stale. */
void export_sql_record_failed(db_conn *ctl, const export_task *t, const char *why);

/* Puts the task back in the queue (when the claim still holds); refund: the
 * attempt does not count (the worker stopped on purpose). ctl NULL and
 * failures as export_sql_record_failed. */
void export_sql_record_requeued(db_conn *ctl, const export_task *t, int refund);

/* Moves the temporary file tmp to final (in dir) and records the task done,
 * while the task row is locked, so that exactly one worker's file is the
 * recorded one. Returns EXPORT_OUTCOME_DONE, EXPORT_OUTCOME_LOST, EXPORT_OUTCOME_FAILED with why
 * (the file cannot be moved) or EXPORT_OUTCOME_RETRY (logged). */
export_outcome export_sql_record_done(db_conn *ctl, const export_task *t, const char *tmp,
                                      const char *final, const char *dir, int64_t rows,
                                      const char *sha, char *why, size_t whylen);

/* Checks, in the caller's snapshot on data, that the task's run can be
 * exported: it exists, succeeded, is of the task's period, has the detail
 * rows when asked and was not replaced. Returns 1 when it can, 0 when not
 * (the reason in why), -1 with err. */
int export_sql_check_run(db_conn *data, const export_task *t, const export_shape *s, char *why,
                         size_t whylen, db_error *err);

/* Writes into sql the segment query of shape s: $1 run, $2 limit, [$3 version
 * when by_version], then, when `after`, the last key of the previous segment;
 * ordered by the key columns, COLLATE "C" unless byte_order. */
void export_sql_segment(char *sql, size_t n, const export_shape *s, int by_version, int after,
                        int byte_order);

/* Reads one segment with sql (export_sql_segment's): the first when last is
 * NULL, else the rows after row last_row of last. Returns the result (the
 * caller PQclears) or NULL with err. */
PGresult *export_sql_fetch_segment(db_conn *data, const char *sql, const export_task *t,
                                   const char *limit_text, const export_shape *s,
                                   const PGresult *last, int last_row, db_error *err);

#endif
