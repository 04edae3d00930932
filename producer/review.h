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

/* Connects to PostgreSQL; on failure prints "alloc-producer: CMD: why" and
 * returns NULL. Free with db_close. */
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

/* The run row: period and status into the buffers given. Returns 1 when found,
 * 0 when not, -1 with err. */
int review_run(db_conn *c, int64_t run_id, char *period, size_t period_len, char *status,
               size_t status_len, db_error *err);

/* The latest succeeded run of the period (largest run_id). Returns 1 and sets
 * *run_id, 0 when there is none, -1 with err. */
int review_latest_succeeded(db_conn *c, const char *period, int64_t *run_id, db_error *err);

/* The published run of the period. Returns 1 and sets *run_id, 0 when none is
 * published, -1 with err. */
int review_published(db_conn *c, const char *period, int64_t *run_id, db_error *err);

#endif
