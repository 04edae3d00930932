/* The state of a run and the helpers its stages are written on: the bottom
 * layer of `alloc-producer run`. The layers depend only downward:
 *   run.c            the commands run / resume / abort; drives the stages in order
 *   run1_snapshot.c .. run5_finish.c   the stages (run_stages.h), in run order
 *   run_wait.c       waiting on a stage's batch markers (run_wait.h)
 *   run_state.c      this: the state, SQL steps, failure marking
 * Not a library interface outside producer/. */
#ifndef ALLOC_PRODUCER_RUN_STATE_H
#define ALLOC_PRODUCER_RUN_STATE_H

#include <signal.h>
#include <stdint.h>
#include <time.h>

#include "cache.h"
#include "config.h"
#include "db.h"
#include "fx.h"
#include "mq.h"

#define DEFAULT_BATCH_SIZE 2000
#define DEFAULT_BUCKET_ROWS 20000
#define PUBLIC_TTL_S (7 * 24 * 3600)
#define POLL_MS 1000
/* Projects per unit of the formula stage: a big data source is cut into
 * several units, so it is spread over the consumers too. */
#define RUN_UNIT_PROJECTS_TEXT "150"

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

/* The lock a run's snapshot transaction holds until it commits ($1 the run
 * id): the sweep of orphan tables (run_sweep_orphans) skips a run that holds
 * it. A collision of two ids in the 31 bits only delays a sweep. */
#define RUN_LOCK_KEY "hashtext('alloc.run'), ($1::bigint & 2147483647)::int"
#define RUN_LOCK_SQL "SELECT pg_advisory_xact_lock(" RUN_LOCK_KEY ")"

/* One SQL statement of a stage, with $1 = the run id, and its label for the log. */
typedef struct sql_step {
    const char *label;
    const char *sql;
} sql_step;

/* ---- helpers ---- */
/* v as decimal text into buf (a run id as a query parameter). */
void run_i64s(int64_t v, char *buf, size_t len);
/* Seconds since t0 (CLOCK_MONOTONIC). */
double run_elapsed(const struct timespec *t0);
/* SET synchronous_commit = on for the session: a run's commits must survive a
 * server crash even on a server that defaults to off. */
void run_durable_commits(db_conn *db);
/* db_reset, then run_durable_commits. Returns 0, or -1 with e. */
int run_reset_db(db_conn *db, int max_wait_ms, db_error *e);
/* Marks a running run failed with its cause (the error line that was printed)
 * and writes its run_log row; reconnects first when the connection is gone.
 * Changes no other run. */
void run_mark_failed(run_state *st, const char *error);

/* The compiled ruleset of a run, as its snapshot stored it (run_public):
 * the fx ruleset, its serialized bytes and the audit rules' JSON
 * ([[rule_code, severity, message], ...] in fx audit order). */
typedef struct run_formulas {
    fx_ruleset *rs;
    unsigned char *bytes;
    size_t len;
    char *audits;
} run_formulas;

/* Loads the run's compiled ruleset into *f (free with run_formulas_free).
 * Returns an exit code after printing why. */
int run_load_formulas(run_state *st, run_formulas *f);
void run_formulas_free(run_formulas *f);

/* Drops the tables of the run's own that are not attached (DESIGN.md 5.6: a
 * run that did not succeed changes nothing else): its snapshot's direct rows,
 * its partials, its report_before rows and its units' report_after rows.
 * Returns 0, or -1 with e. */
int run_drop_tables(db_conn *db, const char *run_id, db_error *e);
/* Drops the direct rows' copies of snapshots that never committed (a crash
 * between the copy's commit and its run's: run1_snapshot.c), inside the
 * caller's READ COMMITTED transaction. Returns the tables dropped, or -1 with e. */
int run_sweep_orphans(db_conn *db, db_error *e);

/* Runs steps with $1 = run id, logging each one's time. 0 or -1 with e. */
int run_steps(db_conn *db, const char *phase, const sql_step *steps, size_t n, const char *run_id,
              db_error *e);

#endif
