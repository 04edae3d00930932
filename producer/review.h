/* What the review commands (report, status, publish, close-period) share:
 * flag parsing, error lines in the CLI's format, and the lookups of a period
 * and of the run a command works on. */
#ifndef ALLOC_PRODUCER_REVIEW_H
#define ALLOC_PRODUCER_REVIEW_H

#include <stdint.h>

#include "config.h"
#include "db.h"

/* Takes the value of option `name` at argv[*i], given as "NAME VALUE" or
 * "NAME=VALUE". Returns 1 when argv[*i] is that option (value in *value, *i
 * moved past it), 0 when argv[*i] is another argument, -1 when the value is
 * missing (the end of argv, or a next argument starting with "--"). */
int review_arg(int argc, char **argv, int *i, const char *name, const char **value);

/* Connects to PostgreSQL and checks the schema is there (cli_check_schema);
 * on failure prints "alloc-producer: CMD: why" and returns NULL. Free with
 * db_close. */
db_conn *review_connect(const alloc_config *cfg, const char *cmd);

/* Prints "alloc-producer: CMD: WHAT: db message" to stderr; returns ALLOC_EXIT_RUNTIME. */
int review_fail(const char *cmd, const char *what, const db_error *err);

/* Prints "alloc-producer: CMD: message" to stderr; returns ALLOC_EXIT_REFUSED. */
int review_refuse(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The period row: status ("open"/"closed") and ruleset into the buffers given
 * (either may be NULL). With lock != 0 the row is locked FOR UPDATE (inside
 * the caller's transaction). Returns 1 when found, 0 when not, -1 with err. */
int review_period(db_conn *c, const char *period, int lock, char *status, size_t status_len,
                  char *ruleset, size_t ruleset_len, db_error *err);

/* What the review commands know of one run. */
typedef struct review_run_info {
    char period[64];
    char status[32];     /* running | succeeded | failed | aborted */
    int64_t replaced_by; /* the run whose success deleted this run's results, or 0 */
    char error[512];     /* the cause a failed or aborted run recorded, or "" */
} review_run_info;

/* The run row into *info. Returns 1 when found, 0 when not, -1 with err. */
int review_run(db_conn *c, int64_t run_id, review_run_info *info, db_error *err);

/* 1 when the run's report can be read or published: it succeeded and its
 * results were not replaced by a later run. Otherwise 0, with why (e.g.
 * "run 4 is failed, not succeeded: consumer lost", "the results of run 3 were
 * replaced by run 5 ...") written to why. */
int review_run_readable(int64_t run_id, const review_run_info *info, char *why, size_t why_len);

/* The run a review command (report, export, publish) works on, inside the
 * caller's transaction: run_arg when not 0 (it must belong to the period and
 * be readable), else the published run of the period, else its latest
 * readable succeeded run. The period must exist. Returns ALLOC_EXIT_OK with
 * *run_id and *how ("published", "latest succeeded, not published", "chosen
 * with --run"), or the exit code after printing why on stderr as
 * "alloc-producer: CMD: ...". */
int review_choose_run(db_conn *c, const char *cmd, const char *period, int64_t run_arg,
                      int64_t *run_id, const char **how);

/* The latest succeeded run of the period (largest run_id) whose results were
 * not replaced. Returns 1 and sets
 * *run_id, 0 when there is none, -1 with err. */
int review_latest_succeeded(db_conn *c, const char *period, int64_t *run_id, db_error *err);

/* The published run of the period. Returns 1 and sets *run_id, 0 when none is
 * published, -1 with err. */
int review_published(db_conn *c, const char *period, int64_t *run_id, db_error *err);

#endif
