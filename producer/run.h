/* Internals of `alloc-producer run`, shared by its files: the run's state and
 * the stages a run goes through (producer/run*.c). Not a library interface. */
#ifndef ALLOC_PRODUCER_RUN_H
#define ALLOC_PRODUCER_RUN_H

#include <signal.h>
#include <stdint.h>
#include <time.h>

#include "cache.h"
#include "config.h"
#include "db.h"
#include "mq.h"

#define DEFAULT_BATCH_SIZE 2000
#define DEFAULT_BUCKET_ROWS 20000
#define PUBLIC_TTL_S (7 * 24 * 3600)
#define POLL_MS 1000
#define FORMULA_VECTORS_PER_BATCH 50

typedef struct run_opts {
    const char *period;
    int detail;
    long timeout_s; /* 0: wait without limit */
    long batch_size;
    long bucket_rows;
} run_opts;

typedef struct run_state {
    const alloc_config *cfg;
    db_conn *db;
    mq_conn *mq;
    cache_conn *cache;
    int64_t run_id;
    char period[16];
    char ruleset[256];
    char stamp[64];
    char public_key[512];
    char fx_key[512];
    char stage[32];
    int detail;
    long batch_size;
    int64_t expected;         /* batches of the allocation stage */
    int64_t formula_expected; /* batches of the formula stage */
    int64_t rows_pending;
    time_t started;
    long timeout_s;
} run_state;

/* Set by SIGINT / SIGTERM: the producer stops waiting, the run goes on. */
extern volatile sig_atomic_t run_interrupted;

/* One SQL statement of a stage, with $1 = the run id, and its label for the log. */
typedef struct sql_step {
    const char *label;
    const char *sql;
} sql_step;

/* ---- helpers (run.c) ---- */
void run_i64s(int64_t v, char *buf, size_t len);
double run_elapsed(const struct timespec *t0);
/* Prints "alloc-producer: what: why" and returns ALLOC_EXIT_RUNTIME. */
int run_fail_db(const char *what, const db_error *e);
void run_durable_commits(db_conn *db);
int run_reset_db(db_conn *db, int max_wait_ms, db_error *e);
void run_mark_failed(run_state *st, const char *error);

/* ---- stages; each returns a DESIGN.md exit code ---- */
/* The snapshot transaction: validate, register, copy out (run_snapshot.c). */
int run_snapshot(run_state *st, const run_opts *o);
/* Runs steps with $1 = run id, logging each one's time. 0 or -1 with e. */
int run_steps(db_conn *db, const char *phase, const sql_step *steps, size_t n, const char *run_id,
              db_error *e);
/* Buckets of pending rows and the public data in Redis (run_buckets.c). */
int run_cache_public(run_state *st);
int run_publish_buckets(run_state *st, int *published);
/* Waiting on a stage's batch markers and control messages (run_wait.c). */
typedef void (*wait_hook)(run_state *st); /* called on every poll of a wait */
int run_wait_stage(run_state *st, const char *stage, int64_t expected, wait_hook hook);
/* Aggregation into report_after, the last transaction, the event (run_aggregate.c). */
int run_aggregate(run_state *st, int has_rules);
int run_finish(run_state *st);
void run_announce(run_state *st);
/* The formula stage (run_formula.c). */
int run_formula_stage(run_state *st);
/* 1 when the run's compiled ruleset has formulas or audit rules, 0 when not, -1 on error. */
int run_has_rules(run_state *st);

#endif
