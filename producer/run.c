/* alloc-producer run / resume / abort: the run coordinator of DESIGN.md 5.1-5.6.
 *
 * A run is: one REPEATABLE READ snapshot transaction that validates the period,
 * registers the run (the unique index on running runs makes a second one fail),
 * and copies everything the run needs out of the snapshot (pending rows with
 * their items, report_before, control totals, buckets, public data); then the
 * buckets are published, consumers split and allocate them, the producer waits
 * on its control queue and on the batch markers, and one aggregation
 * transaction builds report_after and checks conservation. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cache.h"
#include "check.h"
#include "commands.h"
#include "counter.h"
#include "db.h"
#include "formulas.h"
#include "fx.h"
#include "log.h"
#include "mq.h"
#include "msg.h"
#include <jansson.h>

#define RUN_USAGE                                                                                  \
    "alloc-producer run --period YYYY-MM [--detail] [--timeout S] [--batch-size N] "               \
    "[--bucket-rows N]"
#define RESUME_USAGE "alloc-producer resume --run ID [--timeout S]"
#define ABORT_USAGE "alloc-producer abort --run ID"

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

static volatile sig_atomic_t run_interrupted;

static void on_signal(int sig) {
    (void)sig;
    run_interrupted = 1;
}

/* ---- small helpers -------------------------------------------------------- */

static int parse_long(const char *s, long min, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min)
        return -1;
    *out = v;
    return 0;
}

int run_valid_period(const char *p) {
    if (strlen(p) != 7 || p[4] != '-')
        return 0;
    for (int i = 0; i < 7; i++)
        if (i != 4 && (p[i] < '0' || p[i] > '9'))
            return 0;
    int month = (p[5] - '0') * 10 + (p[6] - '0');
    return month >= 1 && month <= 12;
}

static void i64s(int64_t v, char *buf, size_t len) {
    snprintf(buf, len, "%" PRId64, v);
}

/* FNV-1a of the public data: part of its cache key, so changed drivers or
 * projects under the same ruleset stamp never read a stale entry. */
static uint64_t fnv1a(const char *s, size_t len) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

static double elapsed_since(const struct timespec *t0) {
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

static int fail_db(const char *what, const db_error *e) {
    fprintf(stderr, "alloc-producer: %s: %s\n", what, e->msg);
    return ALLOC_EXIT_RUNTIME;
}

static void run_log_event(db_conn *db, int64_t run_id, const char *event, const char *detail_json) {
    char id[32];
    i64s(run_id, id, sizeof id);
    const char *p[] = {id, event, detail_json};
    db_error e;
    if (db_exec_params(db, "INSERT INTO run_log (run_id, event, detail) VALUES ($1, $2, $3::jsonb)",
                       3, p, &e) < 0)
        log_warn("run_log %s: %s", event, e.msg);
}

/* The run's commits (snapshot, aggregation, markers it reads back) must
 * survive a server crash even when the server defaults to
 * synchronous_commit = off, as the local cluster does: a lost aggregation
 * commit after its formula batches went out would finish the run without its
 * base rows. The setting is per session: made on connecting and after every
 * reset (reset_db). */
static void durable_commits(db_conn *db) {
    db_error e;
    if (db_exec(db, "SET synchronous_commit = on", &e) != 0)
        log_warn("SET synchronous_commit = on: %s", e.msg);
}

/* db_reset, then durable_commits. Returns 0, or -1 with e. */
static int reset_db(db_conn *db, int max_wait_ms, db_error *e) {
    if (db_reset(db, max_wait_ms, e) != 0)
        return -1;
    durable_commits(db);
    return 0;
}

/* Marks the run failed with its error (outside any transaction). */
static void mark_failed(run_state *st, const char *error) {
    char id[32];
    i64s(st->run_id, id, sizeof id);
    const char *p[] = {id, error};
    db_error e;
    /* the failure may have been a lost connection: without one the run would
     * stay `running` with nobody driving it */
    if (!db_ok(st->db))
        reset_db(st->db, 30000, NULL);
    db_rollback(st->db, NULL);
    if (db_exec_params(st->db,
                       "UPDATE alloc_run SET status = 'failed', error = $2, finished_at = now() "
                       "WHERE run_id = $1 AND status = 'running'",
                       2, p, &e) < 0)
        log_error("marking run failed: %s", e.msg);
    json_t *j = json_pack("{s:s}", "error", error);
    char *detail = j ? json_dumps(j, JSON_COMPACT) : NULL;
    run_log_event(st->db, st->run_id, "failed", detail ? detail : "{}");
    free(detail);
    json_decref(j);
}

/* ---- validation (DESIGN.md 5.2) -------------------------------------------- */

/* Prints one line per row of a validation query; returns the rows found, -1 on error. */
static int report_rows(db_conn *db, const char *sql, int np, const char *const *p,
                       const char *fmt_kind, db_error *e) {
    PGresult *r = db_query(db, sql, np, p, PGRES_TUPLES_OK, e);
    if (!r)
        return -1;
    int n = PQntuples(r);
    for (int i = 0; i < n; i++) {
        if (!strcmp(fmt_kind, "unbound"))
            fprintf(stderr,
                    "alloc-producer: unbound ledger rows: budget_item_code=%s account_code=%s "
                    "(%s rows)\n",
                    PQgetisnull(r, i, 0) ? "NULL" : PQgetvalue(r, i, 0),
                    PQgetisnull(r, i, 1) ? "NULL" : PQgetvalue(r, i, 1), PQgetvalue(r, i, 2));
        else if (!strcmp(fmt_kind, "project"))
            fprintf(stderr, "alloc-producer: unknown project %s on direct rows (%s rows)\n",
                    PQgetvalue(r, i, 0), PQgetvalue(r, i, 1));
        else if (!strcmp(fmt_kind, "item"))
            fprintf(stderr, "alloc-producer: bound item %s %s (%s rows)\n", PQgetvalue(r, i, 0),
                    PQgetvalue(r, i, 1), PQgetvalue(r, i, 2));
        else
            fprintf(stderr,
                    "alloc-producer: item %s has no allocation rule in version %s and the "
                    "version has no '*' rule (%s pending rows)\n",
                    PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2));
    }
    PQclear(r);
    return n;
}

/* The bound ledger rows of the period: $1 period, $2 ruleset. */
#define BOUND_ROWS                                                                                 \
    "SELECT e.entry_id, e.company_code, e.data_source, e.project_code, e.category, e.amount, "     \
    "       e.budget_item_code, e.account_code, coalesce(bb.item_code, ba.item_code) AS "          \
    "item_code "                                                                                   \
    "FROM ledger_entry e "                                                                         \
    "LEFT JOIN binding_rule bb ON bb.ruleset = $2 AND bb.match_kind = 'budget_item' "              \
    "     AND bb.match_code = e.budget_item_code "                                                 \
    "LEFT JOIN binding_rule ba ON ba.ruleset = $2 AND ba.match_kind = 'account' "                  \
    "     AND ba.match_code = e.account_code "                                                     \
    "WHERE e.period_code = $1"

static int validate(db_conn *db, const char *period, const char *ruleset, db_error *e) {
    const char *p[] = {period, ruleset};
    int total = 0, n;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    /* the bound rows of the snapshot, read once: every later step reads this */
    if (db_exec(db,
                "CREATE TEMP TABLE snap (entry_id bigint, company_code text, data_source text, "
                "project_code text, category text, amount numeric(18,2), budget_item_code text, "
                "account_code text, item_code text) ON COMMIT DROP",
                e) != 0 ||
        db_exec_params(db, "INSERT INTO snap " BOUND_ROWS, 2, p, e) < 0 ||
        db_exec(db, "ANALYZE snap", e) != 0)
        return -1;
    log_info("snapshot: bound ledger rows in %.1fs", elapsed_since(&t0));
    clock_gettime(CLOCK_MONOTONIC, &t0);
    n = report_rows(db,
                    "SELECT budget_item_code, account_code, count(*) FROM snap "
                    "WHERE item_code IS NULL AND $1::text IS NOT NULL AND $2::text IS NOT NULL "
                    "GROUP BY 1, 2 "
                    "ORDER BY budget_item_code COLLATE \"C\" NULLS FIRST, account_code COLLATE "
                    "\"C\" NULLS FIRST",
                    2, p, "unbound", e);
    if (n < 0)
        return -1;
    total += n;
    n = report_rows(
        db,
        /* group first, then look each distinct code up */
        "SELECT e.project_code, e.n FROM (SELECT project_code, count(*) AS n FROM snap "
        "  WHERE project_code IS NOT NULL GROUP BY project_code) e "
        "WHERE $1::text IS NOT NULL AND $2::text IS NOT NULL "
        "AND NOT EXISTS (SELECT 1 FROM project p WHERE p.project_code = e.project_code) "
        "ORDER BY e.project_code COLLATE \"C\"",
        2, p, "project", e);
    if (n < 0)
        return -1;
    total += n;
    n = report_rows(db,
                    "SELECT b.item_code, CASE WHEN ri.item_code IS NULL "
                    "  THEN 'does not exist in ruleset ' || $2 ELSE 'is not a base item' END, b.n "
                    "FROM (SELECT item_code, count(*) AS n FROM snap WHERE item_code IS NOT NULL "
                    "      GROUP BY item_code) b "
                    "LEFT JOIN report_item ri ON ri.ruleset = $2 AND ri.item_code = b.item_code "
                    "WHERE (ri.item_code IS NULL OR ri.kind <> 'base') AND $1::text IS NOT NULL "
                    "ORDER BY b.item_code COLLATE \"C\"",
                    2, p, "item", e);
    if (n < 0)
        return -1;
    total += n;
    n = report_rows(db,
                    "SELECT b.item_code, v.version, sum(b.n) FROM "
                    "  (SELECT item_code, category, count(*) AS n FROM snap "
                    "   WHERE project_code IS NULL AND item_code IS NOT NULL "
                    "   GROUP BY item_code, category) b "
                    "JOIN report_version v ON v.include_categories IS NULL "
                    "     OR b.category = ANY (v.include_categories) "
                    "WHERE $1::text IS NOT NULL "
                    "AND NOT EXISTS (SELECT 1 FROM allocation_rule r WHERE r.ruleset = $2 "
                    "    AND r.version = v.version AND r.item_code IN (b.item_code, '*')) "
                    "GROUP BY 1, 2 ORDER BY b.item_code COLLATE \"C\", v.version COLLATE \"C\"",
                    2, p, "rule", e);
    if (n < 0)
        return -1;
    total += n;
    log_info("snapshot: validation in %.1fs", elapsed_since(&t0));
    return total;
}

/* ---- the snapshot transaction ------------------------------------------------ */

typedef struct sql_step {
    const char *label;
    const char *sql;
} sql_step;

/* Copies of the snapshot the run keeps; $1 is the run id. They read `snap`, the
 * bound ledger rows of the period, materialized once by validate(). */
static const sql_step SNAPSHOT_STEPS[] = {
    {"pending rows",
     /* pending rows with their items: buckets are cut from here, now and by resume */
     "INSERT INTO run_pending (run_id, entry_id, data_source, company_code, item_code, category, "
     "    cents) "
     "SELECT $1::bigint, entry_id, data_source, company_code, item_code, category, "
     "       (amount * 100)::bigint "
     "FROM snap WHERE project_code IS NULL"},
    {"report_before",
     /* direct rows at their project (in its data source), pending ones at #POOL */
     "INSERT INTO report_before (run_id, version, data_source, project_code, item_code, amount) "
     "SELECT $1::bigint, v.version, p.data_source, b.project_code, b.item_code, sum(b.amount) "
     "FROM snap b JOIN project p ON p.project_code = b.project_code "
     "JOIN report_version v ON v.include_categories IS NULL OR b.category = ANY "
     "(v.include_categories) "
     "GROUP BY 2, 3, 4, 5 "
     "UNION ALL "
     "SELECT $1::bigint, v.version, b.data_source, '#POOL', b.item_code, sum(b.amount) "
     "FROM snap b "
     "JOIN report_version v ON v.include_categories IS NULL OR b.category = ANY "
     "(v.include_categories) "
     "WHERE b.project_code IS NULL GROUP BY 2, 3, 4, 5"},
    {"version totals",
     /* per version: what conservation must find again at the end */
     "INSERT INTO run_version_total (run_id, version, rows, amount) "
     "SELECT $1::bigint, v.version, count(b.entry_id), coalesce(sum(b.amount), 0) "
     "FROM report_version v LEFT JOIN snap b "
     "     ON v.include_categories IS NULL OR b.category = ANY (v.include_categories) "
     "GROUP BY v.version"},
    {"control totals",
     /* control totals and the period's change counter as the snapshot saw it */
     "UPDATE alloc_run r SET "
     "  rows_pending = t.rp, amount_pending = t.ap, rows_direct = t.rd, amount_direct = t.ad, "
     "  change_seq = (SELECT change_seq FROM period WHERE period_code = r.period_code) "
     "FROM (SELECT count(*) FILTER (WHERE project_code IS NULL) AS rp, "
     "             coalesce(sum(amount) FILTER (WHERE project_code IS NULL), 0) AS ap, "
     "             count(*) FILTER (WHERE project_code IS NOT NULL) AS rd, "
     "             coalesce(sum(amount) FILTER (WHERE project_code IS NOT NULL), 0) AS ad "
     "      FROM snap) t "
     "WHERE r.run_id = $1"},
    {"earlier results",
     /* results of earlier unpublished runs of the period go (DESIGN.md 5.6) */
     "WITH old AS (SELECT o.run_id FROM alloc_run o JOIN alloc_run r ON r.run_id = $1 "
     "             AND o.period_code = r.period_code AND o.run_id <> r.run_id "
     "             WHERE o.run_id NOT IN (SELECT run_id FROM report_published)), "
     " d1 AS (DELETE FROM report_after WHERE run_id IN (SELECT run_id FROM old)), "
     " d2 AS (DELETE FROM report_before WHERE run_id IN (SELECT run_id FROM old)), "
     " d3 AS (DELETE FROM alloc_detail WHERE run_id IN (SELECT run_id FROM old)), "
     " d4 AS (DELETE FROM audit_finding WHERE run_id IN (SELECT run_id FROM old)), "
     " d5 AS (DELETE FROM alloc_partial WHERE run_id IN (SELECT run_id FROM old)), "
     " d6 AS (DELETE FROM run_pending WHERE run_id IN (SELECT run_id FROM old)), "
     " d7 AS (DELETE FROM alloc_unallocated WHERE run_id IN (SELECT run_id FROM old)) "
     "SELECT 1"},
};

/* Runs steps with $1 = run id, logging how long each took. Returns 0 or -1 with e. */
static int run_steps(db_conn *db, const char *phase, const sql_step *steps, size_t n,
                     const char *run_id, db_error *e) {
    const char *p[] = {run_id};
    for (size_t i = 0; i < n; i++) {
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        PGresult *r =
            db_query(db, steps[i].sql, 1, p,
                     strncmp(steps[i].sql, "WITH", 4) ? PGRES_COMMAND_OK : PGRES_TUPLES_OK, e);
        if (!r)
            return -1;
        PQclear(r);
        log_info("%s: %s in %.1fs", phase, steps[i].label, elapsed_since(&t0));
    }
    return 0;
}

/* Buckets: each data source's pending rows in (item, entry) order, cut every
 * $4 rows; each bucket is split into batches of $5 rows. */
static const char *BUCKETS_SQL =
    "INSERT INTO run_bucket (run_id, bucket_id, data_source, first_row, row_count, batch_count) "
    "SELECT $1, s.data_source || '#' || k, s.data_source, k * $2::bigint, "
    "       least($2::bigint, s.n - k * $2::bigint), "
    "       ((least($2::bigint, s.n - k * $2::bigint) + $3::bigint - 1) / $3::bigint)::int "
    "FROM (SELECT data_source, count(*) AS n FROM run_pending WHERE run_id = $1 GROUP BY 1) s, "
    "     generate_series(0, (s.n - 1) / $2::bigint) k";

static const char *PUBLIC_SQL =
    "SELECT json_build_object("
    " 'versions', (SELECT coalesce(json_agg(json_build_array(version, include_categories) "
    "              ORDER BY version COLLATE \"C\"), '[]') FROM report_version),"
    " 'rules', (SELECT coalesce(json_agg(json_build_array(version, item_code, driver, scope) "
    "           ORDER BY version COLLATE \"C\", item_code COLLATE \"C\"), '[]') "
    "           FROM allocation_rule WHERE ruleset = $2),"
    " 'projects', (SELECT coalesce(json_agg(json_build_array(project_code, company_code, "
    "              data_source) ORDER BY project_code COLLATE \"C\"), '[]') FROM project "
    "              WHERE active),"
    " 'drivers', (SELECT coalesce(json_agg(json_build_array(d.driver, d.project_code, "
    "             d.value::text) ORDER BY d.driver COLLATE \"C\", d.project_code COLLATE \"C\"), "
    "             '[]') FROM allocation_driver d JOIN project p ON p.project_code = d.project_code "
    "             AND p.active WHERE d.period_code = $1)"
    ")::text";

/* The ruleset stamp: the latest updated_at over its rows (a rule's update time
 * is its version), with the row count so that a deleted rule changes it too. */
static const char *STAMP_SQL =
    "SELECT coalesce(to_char(max(u) AT TIME ZONE 'UTC', 'YYYYMMDD\"T\"HH24MISS.US'), 'empty') "
    "       || '-' || sum(n) FROM ("
    " SELECT max(updated_at) AS u, count(*) AS n FROM report_item WHERE ruleset = $1"
    " UNION ALL SELECT max(updated_at), count(*) FROM binding_rule WHERE ruleset = $1"
    " UNION ALL SELECT max(updated_at), count(*) FROM allocation_rule WHERE ruleset = $1"
    " UNION ALL SELECT max(updated_at), count(*) FROM audit_rule WHERE ruleset = $1) s";

/* Runs the snapshot transaction. Returns an exit code; on success st holds the
 * registered run. */
static int snapshot(run_state *st, const run_opts *o) {
    db_error e;
    const char *pp[] = {o->period};
    if (db_begin(st->db, "REPEATABLE READ", &e) != 0 ||
        db_exec(st->db, "SET LOCAL work_mem = '512MB'", &e) != 0)
        return fail_db("begin snapshot", &e);

    /* The period row, locked against a concurrent close-period until commit. */
    PGresult *r =
        db_query(st->db, "SELECT ruleset, status FROM period WHERE period_code = $1 FOR SHARE", 1,
                 pp, PGRES_TUPLES_OK, &e);
    if (!r) {
        db_rollback(st->db, NULL);
        return fail_db("read period", &e);
    }
    if (PQntuples(r) == 0) {
        PQclear(r);
        db_rollback(st->db, NULL);
        fprintf(stderr, "alloc-producer: unknown period %s\n", o->period);
        return ALLOC_EXIT_REFUSED;
    }
    snprintf(st->ruleset, sizeof st->ruleset, "%s", PQgetvalue(r, 0, 0));
    int closed = strcmp(PQgetvalue(r, 0, 1), "open") != 0;
    PQclear(r);
    if (closed) {
        db_rollback(st->db, NULL);
        fprintf(stderr, "alloc-producer: period %s is closed\n", o->period);
        return ALLOC_EXIT_REFUSED;
    }

    /* Register the run: the partial unique index admits one running run per period. */
    const char *rp[] = {o->period, st->ruleset, o->detail ? "true" : "false"};
    r = db_query(
        st->db,
        "INSERT INTO alloc_run (period_code, ruleset, status, stage, detail, heartbeat_at) "
        "VALUES ($1, $2, 'running', 'snapshot', $3::boolean, now()) RETURNING run_id",
        3, rp, PGRES_TUPLES_OK, &e);
    if (!r) {
        db_rollback(st->db, NULL);
        if (db_error_is(&e, DB_SQLSTATE_UNIQUE_VIOLATION)) {
            fprintf(stderr, "alloc-producer: period %s already has a running run\n", o->period);
            return ALLOC_EXIT_REFUSED;
        }
        return fail_db("register run", &e);
    }
    st->run_id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    log_set_run(st->run_id);

#define SNAP_FAIL(what)                                                                            \
    do {                                                                                           \
        formulas_free(&fx);                                                                        \
        db_rollback(st->db, NULL);                                                                 \
        return fail_db(what, &e);                                                                  \
    } while (0)
    int bad = validate(st->db, o->period, st->ruleset, &e);
    formulas fx;
    memset(&fx, 0, sizeof fx);
    if (bad >= 0) {
        int fx_errors = formulas_compile(st->db, st->ruleset, &fx);
        if (fx_errors < 0) {
            db_rollback(st->db, NULL);
            return ALLOC_EXIT_RUNTIME;
        }
        bad += fx_errors;
    }
    if (bad != 0) {
        formulas_free(&fx);
        db_rollback(st->db, NULL);
        if (bad < 0)
            return fail_db("validate", &e);
        fprintf(stderr, "alloc-producer: period %s refused: %d validation error(s), nothing sent\n",
                o->period, bad);
        return ALLOC_EXIT_VALIDATION;
    }

    char id[32];
    i64s(st->run_id, id, sizeof id);
    if (run_steps(st->db, "snapshot", SNAPSHOT_STEPS,
                  sizeof SNAPSHOT_STEPS / sizeof SNAPSHOT_STEPS[0], id, &e) != 0)
        SNAP_FAIL("snapshot");

    char bucket_rows[32], batch_size[32];
    snprintf(bucket_rows, sizeof bucket_rows, "%ld", o->bucket_rows);
    snprintf(batch_size, sizeof batch_size, "%ld", o->batch_size);
    const char *bp[] = {id, bucket_rows, batch_size};
    if (db_exec_params(st->db, BUCKETS_SQL, 3, bp, &e) < 0)
        SNAP_FAIL("buckets");

    const char *rs[] = {st->ruleset};
    r = db_query(st->db, STAMP_SQL, 1, rs, PGRES_TUPLES_OK, &e);
    if (!r)
        SNAP_FAIL("ruleset stamp");
    snprintf(st->stamp, sizeof st->stamp, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);

    const char *pub[] = {o->period, st->ruleset};
    r = db_query(st->db, PUBLIC_SQL, 2, pub, PGRES_TUPLES_OK, &e);
    if (!r)
        SNAP_FAIL("public data");
    const char *body = PQgetvalue(r, 0, 0);
    snprintf(st->public_key, sizeof st->public_key, "alloc:public:%s:%s:%s:%016" PRIx64, o->period,
             st->ruleset, st->stamp, fnv1a(body, strlen(body)));
    /* the digest guards against two rule sets with one stamp (an edit committed
     * late with an older updated_at): the key is always that of these bytes */
    snprintf(st->fx_key, sizeof st->fx_key, "alloc:fx:%s:%s:%016" PRIx64, st->ruleset, st->stamp,
             fnv1a((const char *)fx.bytes, fx.len) ^ fnv1a(fx.audits, strlen(fx.audits)));
    char *fx_hex = malloc(fx.len * 2 + 3);
    ALLOC_ASSERT(fx_hex != NULL);
    strcpy(fx_hex, "\\x");
    for (size_t i = 0; i < fx.len; i++)
        snprintf(fx_hex + 2 + 2 * i, 3, "%02x", fx.bytes[i]);
    const char *pk[] = {id, st->public_key, body, st->fx_key, fx_hex, fx.audits};
    int64_t ok =
        db_exec_params(st->db,
                       "INSERT INTO run_public (run_id, cache_key, body, fx_key, formulas, "
                       "audits) VALUES ($1, $2, $3, $4, $5::bytea, $6)",
                       6, pk, &e);
    free(fx_hex);
    PQclear(r);
    if (ok < 0)
        SNAP_FAIL("store public data");
    formulas_free(&fx);

    const char *up[] = {id, st->stamp, batch_size};
    if (db_exec_params(st->db,
                       "UPDATE alloc_run SET ruleset_stamp = $2, stage = 'allocate', "
                       "batch_size = $3::int, "
                       "expected_batches = (SELECT coalesce(sum(batch_count), 0) FROM run_bucket "
                       "WHERE run_id = $1) WHERE run_id = $1",
                       3, up, &e) < 0)
        SNAP_FAIL("start run");
#undef SNAP_FAIL
    if (db_commit(st->db, &e) != 0)
        return fail_db("commit snapshot", &e);
    return ALLOC_EXIT_OK;
}

/* ---- loading a registered run (run after its snapshot, or resume) ------------- */

static int load_run(run_state *st, int64_t run_id, int *running) {
    char id[32];
    i64s(run_id, id, sizeof id);
    const char *p[] = {id};
    db_error e;
    PGresult *r =
        db_query(st->db,
                 "SELECT r.period_code, r.ruleset, coalesce(r.ruleset_stamp, ''), r.status, "
                 "r.detail, coalesce(r.expected_batches, 0), coalesce(r.rows_pending, 0), "
                 "coalesce(u.cache_key, ''), coalesce(u.fx_key, ''), coalesce(r.stage, ''), "
                 "coalesce(r.formula_batches, -1) "
                 "FROM alloc_run r LEFT JOIN run_public u ON u.run_id = r.run_id "
                 "WHERE r.run_id = $1",
                 1, p, PGRES_TUPLES_OK, &e);
    if (!r)
        return fail_db("read run", &e);
    if (PQntuples(r) == 0) {
        PQclear(r);
        fprintf(stderr, "alloc-producer: unknown run %" PRId64 "\n", run_id);
        return ALLOC_EXIT_REFUSED;
    }
    st->run_id = run_id;
    snprintf(st->period, sizeof st->period, "%s", PQgetvalue(r, 0, 0));
    snprintf(st->ruleset, sizeof st->ruleset, "%s", PQgetvalue(r, 0, 1));
    snprintf(st->stamp, sizeof st->stamp, "%s", PQgetvalue(r, 0, 2));
    *running = !strcmp(PQgetvalue(r, 0, 3), "running");
    st->detail = !strcmp(PQgetvalue(r, 0, 4), "t");
    st->expected = strtoll(PQgetvalue(r, 0, 5), NULL, 10);
    st->rows_pending = strtoll(PQgetvalue(r, 0, 6), NULL, 10);
    snprintf(st->public_key, sizeof st->public_key, "%s", PQgetvalue(r, 0, 7));
    snprintf(st->fx_key, sizeof st->fx_key, "%s", PQgetvalue(r, 0, 8));
    snprintf(st->stage, sizeof st->stage, "%s", PQgetvalue(r, 0, 9));
    st->formula_expected = strtoll(PQgetvalue(r, 0, 10), NULL, 10);
    PQclear(r);
    return ALLOC_EXIT_OK;
}

/* ---- publishing buckets ------------------------------------------------------- */

/* Caches the public data in Redis under its key (from run_public). */
static int cache_public(run_state *st) {
    char id[32];
    i64s(st->run_id, id, sizeof id);
    const char *p[] = {id};
    db_error e;
    PGresult *r = db_query(st->db, "SELECT body FROM run_public WHERE run_id = $1", 1, p,
                           PGRES_TUPLES_OK, &e);
    if (!r)
        return fail_db("read public data", &e);
    int rc = ALLOC_EXIT_OK;
    if (PQntuples(r) == 1 && cache_set(st->cache, st->public_key, PQgetvalue(r, 0, 0),
                                       (size_t)PQgetlength(r, 0, 0), PUBLIC_TTL_S) != 0) {
        fprintf(stderr, "alloc-producer: cache public data of run %s: %s\n", id,
                cache_error(st->cache));
        rc = ALLOC_EXIT_RUNTIME;
    }
    PQclear(r);
    return rc;
}

typedef struct bucket_plan {
    char *bucket_id;
    char *data_source;
    int64_t first_row, row_count;
    int batch_count;
    int publish; /* not every batch of it is marked done */
} bucket_plan;

static void free_plans(bucket_plan *b, int n) {
    for (int i = 0; i < n; i++) {
        free(b[i].bucket_id);
        free(b[i].data_source);
    }
    free(b);
}

/* The run's buckets in (data source, first row) order, with whether each still
 * has batches without a marker. */
static bucket_plan *load_plans(run_state *st, int *n, db_error *e) {
    char id[32];
    i64s(st->run_id, id, sizeof id);
    const char *p[] = {id};
    PGresult *r = db_query(
        st->db,
        "SELECT b.bucket_id, b.data_source, b.first_row, b.row_count, b.batch_count, "
        "  (SELECT count(*) FROM batch_marker m WHERE m.run_id = b.run_id AND m.stage = 'allocate' "
        "   AND m.batch_id LIKE replace(replace(replace(b.bucket_id, '\\', '\\\\'), '%', '\\%'), "
        "       '_', '\\_') || '/%') "
        "FROM run_bucket b WHERE b.run_id = $1 "
        "ORDER BY b.data_source COLLATE \"C\", b.first_row",
        1, p, PGRES_TUPLES_OK, e);
    if (!r)
        return NULL;
    *n = PQntuples(r);
    bucket_plan *b = calloc((size_t)*n + 1, sizeof *b);
    for (int i = 0; b && i < *n; i++) {
        b[i].bucket_id = strdup(PQgetvalue(r, i, 0));
        b[i].data_source = strdup(PQgetvalue(r, i, 1));
        b[i].first_row = strtoll(PQgetvalue(r, i, 2), NULL, 10);
        b[i].row_count = strtoll(PQgetvalue(r, i, 3), NULL, 10);
        b[i].batch_count = atoi(PQgetvalue(r, i, 4));
        b[i].publish = strtoll(PQgetvalue(r, i, 5), NULL, 10) < b[i].batch_count;
    }
    PQclear(r);
    return b;
}

/* Publishes one bucket message built from rows[0..n). */
static int publish_bucket(run_state *st, const bucket_plan *b, msg_row *rows, size_t n) {
    msg_bucket m = {
        .run_id = st->run_id,
        .period = st->period,
        .ruleset = st->ruleset,
        .stamp = st->stamp,
        .public_key = st->public_key,
        .bucket_id = b->bucket_id,
        .data_source = b->data_source,
        .detail = st->detail,
        .batch_size = st->batch_size,
        .expected = st->expected,
        .rows = rows,
        .nrows = n,
    };
    char err[512];
    size_t len;
    char *body = msg_encode_bucket(&m, &len, err, sizeof err);
    if (!body) {
        fprintf(stderr, "alloc-producer: encode bucket %s: %s\n", b->bucket_id, err);
        return ALLOC_EXIT_RUNTIME;
    }
    int rc =
        mq_publish(st->mq, MQ_EXCHANGE_WORK, MQ_KEY_BUCKET, body, len, NULL, 0, err, sizeof err);
    free(body);
    if (rc != MQ_OK) {
        fprintf(stderr, "alloc-producer: publish bucket %s of run %" PRId64 ": %s\n", b->bucket_id,
                st->run_id, err);
        return ALLOC_EXIT_RUNTIME;
    }
    return ALLOC_EXIT_OK;
}

/* Streams the run's pending rows in bucket order and publishes every bucket
 * that still has unfinished batches. Memory: one bucket of rows. */
static int publish_buckets(run_state *st, int *published) {
    db_error e;
    int nplans = 0;
    bucket_plan *plans = load_plans(st, &nplans, &e);
    if (!plans)
        return fail_db("read buckets", &e);
    *published = 0;
    int todo = 0;
    for (int i = 0; i < nplans; i++)
        todo += plans[i].publish;
    if (todo == 0) {
        free_plans(plans, nplans);
        return ALLOC_EXIT_OK;
    }

    char id[32];
    i64s(st->run_id, id, sizeof id);
    const char *p[] = {id};
    db_stream *s =
        db_stream_open(st->db,
                       "SELECT entry_id, data_source, company_code, item_code, category, "
                       "cents FROM run_pending WHERE run_id = $1 "
                       "ORDER BY data_source COLLATE \"C\", item_code COLLATE \"C\", entry_id",
                       1, p, &e);
    if (!s) {
        free_plans(plans, nplans);
        return fail_db("stream pending rows", &e);
    }
    int rc = ALLOC_EXIT_OK;
    /* Rows of the current bucket; strings live in one arena per bucket. */
    size_t cap = 0, n = 0;
    msg_row *rows = NULL;
    char *arena = NULL;
    size_t arena_cap = 0, arena_len = 0;
    int cur = 0;
    int64_t row_in_source = 0;
    char prev_source[256] = "";
    int more;
    while (rc == ALLOC_EXIT_OK && (more = db_stream_next(s, &e)) == 1) {
        const char *ds = db_stream_get(s, 1);
        if (strcmp(ds, prev_source) != 0) {
            snprintf(prev_source, sizeof prev_source, "%s", ds);
            row_in_source = 0;
        }
        while (cur < nplans && (strcmp(plans[cur].data_source, ds) != 0 ||
                                row_in_source >= plans[cur].first_row + plans[cur].row_count))
            cur++;
        ALLOC_ASSERT(cur < nplans && row_in_source >= plans[cur].first_row);
        row_in_source++;
        if (!plans[cur].publish)
            continue;

        if (n == cap) {
            cap = cap ? cap * 2 : 1024;
            msg_row *grown = realloc(rows, cap * sizeof *rows);
            ALLOC_ASSERT(grown != NULL);
            rows = grown;
        }
        /* strings are copied into the arena and fixed up to pointers at publish time */
        size_t need = 0;
        for (int c = 2; c <= 4; c++)
            need += (size_t)db_stream_getlen(s, c) + 1;
        if (arena_len + need > arena_cap) {
            arena_cap = (arena_cap + need) * 2;
            char *grown = realloc(arena, arena_cap);
            ALLOC_ASSERT(grown != NULL);
            arena = grown;
        }
        msg_row *row = &rows[n++];
        row->entry_id = strtoll(db_stream_get(s, 0), NULL, 10);
        row->cents = strtoll(db_stream_get(s, 5), NULL, 10);
        size_t offs[3];
        for (int c = 2; c <= 4; c++) {
            offs[c - 2] = arena_len;
            size_t l = (size_t)db_stream_getlen(s, c);
            memcpy(arena + arena_len, db_stream_get(s, c), l + 1);
            arena_len += l + 1;
        }
        row->company_code = (const char *)(uintptr_t)offs[0];
        row->item_code = (const char *)(uintptr_t)offs[1];
        row->category = (const char *)(uintptr_t)offs[2];

        if (row_in_source == plans[cur].first_row + plans[cur].row_count) {
            for (size_t i = 0; i < n; i++) {
                rows[i].company_code = arena + (uintptr_t)rows[i].company_code;
                rows[i].item_code = arena + (uintptr_t)rows[i].item_code;
                rows[i].category = arena + (uintptr_t)rows[i].category;
            }
            rc = publish_bucket(st, &plans[cur], rows, n);
            (*published)++;
            n = 0;
            arena_len = 0;
        }
    }
    if (rc == ALLOC_EXIT_OK && more < 0)
        rc = fail_db("stream pending rows", &e);
    db_stream_close(s);
    free(rows);
    free(arena);
    free_plans(plans, nplans);
    if (rc == ALLOC_EXIT_OK) {
        char err[512];
        if (mq_flush(st->mq, -1, err, sizeof err) != MQ_OK) {
            fprintf(stderr, "alloc-producer: confirm buckets of run %" PRId64 ": %s\n", st->run_id,
                    err);
            rc = ALLOC_EXIT_RUNTIME;
        }
    }
    return rc;
}

/* ---- waiting for the allocation stage --------------------------------------------- */

static int64_t markers_done(run_state *st, const char *stage, db_error *e) {
    char id[32];
    i64s(st->run_id, id, sizeof id);
    const char *p[] = {id, stage};
    int64_t n = 0;
    if (db_query_int64(st->db, "SELECT count(*) FROM batch_marker WHERE run_id = $1 AND stage = $2",
                       2, p, &n, e) < 0)
        return -1;
    return n;
}

static int run_status(run_state *st, char *status, size_t len, db_error *e) {
    char id[32];
    i64s(st->run_id, id, sizeof id);
    const char *p[] = {id};
    PGresult *r = db_query(st->db,
                           "UPDATE alloc_run SET heartbeat_at = now() WHERE run_id = $1 "
                           "RETURNING status",
                           1, p, PGRES_TUPLES_OK, e);
    if (!r)
        return -1;
    snprintf(status, len, "%s", PQntuples(r) ? PQgetvalue(r, 0, 0) : "missing");
    PQclear(r);
    return 0;
}

/* Redis lost the counter (a restart): put the marked batch ids back so the
 * consumers' counts, and so their completion notice, stay right. */
static void rebuild_counter(run_state *st, const char *stage, int64_t marked) {
    char err[256];
    int64_t count = counter_count(st->cache, st->run_id, stage, err, sizeof err);
    if (count < 0 || count >= marked)
        return;
    char id[32];
    i64s(st->run_id, id, sizeof id);
    const char *p[] = {id, stage};
    db_error e;
    PGresult *r =
        db_query(st->db, "SELECT batch_id FROM batch_marker WHERE run_id = $1 AND stage = $2", 2, p,
                 PGRES_TUPLES_OK, &e);
    if (!r)
        return;
    int n = PQntuples(r);
    const char **ids = calloc((size_t)n + 1, sizeof *ids);
    for (int i = 0; ids && i < n; i++)
        ids[i] = PQgetvalue(r, i, 0);
    int64_t now = 0;
    if (ids &&
        counter_rebuild(st->cache, st->run_id, stage, ids, (size_t)n, &now, err, sizeof err) == 0)
        log_warn("%s counter of run %" PRId64 " had %" PRId64
                 " of %d marked batches: rebuilt from the markers",
                 stage, st->run_id, count, n);
    free(ids);
    PQclear(r);
}

/* Progress: one rewritten line on a terminal, timestamped lines every 5 s otherwise. */
static void show_progress(run_state *st, const char *stage, int64_t done, int64_t expected,
                          int final) {
    static time_t last_line;
    time_t now = time(NULL);
    long elapsed = (long)(now - st->started);
    double frac = expected ? (double)done / (double)expected : 1.0;
    long eta = frac > 0 && frac < 1 ? (long)((double)elapsed * (1 - frac) / frac) : 0;
    char rate[64] = "";
    if (!strcmp(stage, "allocate") && elapsed > 0)
        snprintf(rate, sizeof rate, ", %.0f rows/s",
                 frac * (double)st->rows_pending / (double)elapsed);
    if (isatty(STDOUT_FILENO)) {
        printf("\r%-9s batches %" PRId64 "/%" PRId64 "%s, elapsed %lds, ETA %lds   %s", stage, done,
               expected, rate, elapsed, eta, final ? "\n" : "");
        fflush(stdout);
    } else if (final || now - last_line >= 5) {
        last_line = now;
        char when[32];
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
        printf("%s run %" PRId64 " %s: batches %" PRId64 "/%" PRId64 "%s, elapsed %lds\n", when,
               st->run_id, stage, done, expected, rate, elapsed);
        fflush(stdout);
    }
}

/* Called on every poll of a stage's wait (e.g. to put lost cache entries back). */
typedef void (*wait_hook)(run_state *st);

/* Waits until every batch of a stage has its marker. The control message of
 * the completing consumer wakes the wait early; the markers decide. Returns an
 * exit code (ALLOC_EXIT_TIMEOUT when --timeout passed or on SIGINT/SIGTERM:
 * the run goes on and stays resumable). */
static int wait_stage(run_state *st, const char *stage, int64_t expected, wait_hook hook) {
    char err[512];
    db_error e;
    int64_t last_done = -1;
    for (;;) {
        int64_t done = markers_done(st, stage, &e);
        if (done < 0) {
            if (!db_ok(st->db) && reset_db(st->db, 60000, &e) == 0)
                continue;
            return fail_db("count batch markers", &e);
        }
        char status[32];
        if (run_status(st, status, sizeof status, &e) != 0) {
            /* PostgreSQL can go away here as well as in markers_done (a restart
             * while this UPDATE waits for a batch transaction's row lock) */
            if (!db_ok(st->db) && reset_db(st->db, 60000, &e) == 0)
                continue;
            return fail_db("read run status", &e);
        }
        if (strcmp(status, "running") != 0) {
            if (isatty(STDOUT_FILENO))
                printf("\n");
            fprintf(stderr, "alloc-producer: run %" PRId64 " is %s\n", st->run_id, status);
            return ALLOC_EXIT_RUNTIME;
        }
        if (done != last_done)
            show_progress(st, stage, done, expected, done >= expected);
        if (done >= expected)
            return ALLOC_EXIT_OK;
        if (done == last_done)
            rebuild_counter(st, stage, done);
        if (hook)
            hook(st);
        last_done = done;
        if (run_interrupted) {
            if (isatty(STDOUT_FILENO))
                printf("\n");
            fprintf(stderr,
                    "alloc-producer: interrupted; run %" PRId64 " goes on: "
                    "alloc-producer resume --run %" PRId64 "\n",
                    st->run_id, st->run_id);
            return ALLOC_EXIT_TIMEOUT;
        }
        if (st->timeout_s > 0 && time(NULL) - st->started >= st->timeout_s) {
            if (isatty(STDOUT_FILENO))
                printf("\n");
            fprintf(
                stderr,
                "alloc-producer: run %" PRId64 " timed out after %lds with %" PRId64 " of %" PRId64
                " %s batches done; it stays resumable: alloc-producer resume --run %" PRId64 "\n",
                st->run_id, st->timeout_s, done, expected, stage, st->run_id);
            return ALLOC_EXIT_TIMEOUT;
        }
        mq_delivery d;
        int rc = mq_next(st->mq, POLL_MS, &d, err, sizeof err);
        if (rc == MQ_OK) {
            msg_any m;
            char merr[256] = "";
            if (msg_decode(d.body, d.len, &m, merr, sizeof merr) != 0 || m.type != MSG_STAGE_DONE ||
                m.stage_done.run_id != st->run_id)
                log_warn("ignoring a foreign message on the control queue: %s",
                         m.type == MSG_STAGE_DONE ? "another run" : merr);
            msg_any_free(&m);
            mq_ack(st->mq, d.tag, err, sizeof err);
            mq_delivery_free(&d);
        } else if (rc == MQ_ERR_CONN) {
            log_warn("broker connection lost while waiting: %s; reconnecting", err);
            if (mq_reconnect(st->mq, 0, err, sizeof err) != MQ_OK)
                log_warn("reconnect failed: %s", err);
        }
    }
}

/* ---- aggregation (DESIGN.md 5.4) ------------------------------------------------ */

/* Aggregation, $1 = run id, into the temp table agg made by aggregate(). */
static const sql_step AGGREGATE_STEPS[] = {
    {"base rows",
     /* direct sums (report_before without #POOL) plus the allocated partials, in cents */
     "INSERT INTO agg (version, data_source, project_code, item_code, cents) "
     "SELECT version, data_source, project_code, item_code, sum(cents) FROM ("
     "  SELECT version, data_source, project_code, item_code, (amount * 100)::bigint AS cents "
     "  FROM report_before WHERE run_id = $1 AND project_code <> '#POOL' "
     "  UNION ALL "
     "  SELECT version, data_source, project_code, item_code, cents FROM alloc_partial "
     "  WHERE run_id = $1) s "
     "GROUP BY version, data_source, project_code, item_code"},
    {"report rows",
     /* base rows, #TOTAL of each data source, #ALL / #TOTAL */
     "INSERT INTO report_after (run_id, version, data_source, project_code, item_code, amount) "
     "SELECT $1::bigint, version, data_source, project_code, item_code, cents / 100.0 FROM agg "
     "UNION ALL "
     "SELECT $1::bigint, version, data_source, '#TOTAL', item_code, sum(cents) / 100.0 FROM agg "
     "GROUP BY version, data_source, item_code "
     "UNION ALL "
     "SELECT $1::bigint, version, '#ALL', '#TOTAL', item_code, sum(cents) / 100.0 FROM agg "
     "GROUP BY version, item_code "
     /* in key order: the primary key index then grows at its end */
     "ORDER BY 2, 3, 4, 5"},
    {"unallocated findings",
     /* one 'unallocated' warning per (version, data source, item) */
     "INSERT INTO audit_finding (run_id, version, data_source, project_code, rule_code, severity, "
     "    message) "
     "SELECT $1::bigint, version, data_source, '#UNALLOCATED', 'unallocated', 'warning', "
     "  'item ' || item_code || ': ' || sum(rows) || ' pending row(s) could not be allocated "
     "(no active target or zero total weight)' "
     "FROM alloc_unallocated WHERE run_id = $1 GROUP BY version, data_source, item_code"},
};

/* Conservation: per version, base rows over real projects plus #UNALLOCATED
 * equal the included ledger total. Returns 0 when it holds, 1 when not (with
 * the difference in msg), -1 on error. */
static int check_conservation(run_state *st, const char *id, char *msg, size_t len, db_error *e) {
    const char *p[] = {id};
    PGresult *r = db_query(
        st->db,
        "SELECT t.version, t.amount, coalesce(b.amount, 0) FROM run_version_total t "
        "LEFT JOIN (SELECT version, sum(amount) AS amount FROM report_after WHERE run_id = $1 "
        "  AND data_source <> '#ALL' AND project_code <> '#TOTAL' GROUP BY version) b "
        "  ON b.version = t.version "
        "WHERE t.run_id = $1 AND t.amount <> coalesce(b.amount, 0) ORDER BY t.version COLLATE "
        "\"C\"",
        1, p, PGRES_TUPLES_OK, e);
    if (!r)
        return -1;
    int bad = PQntuples(r) > 0;
    if (bad)
        snprintf(msg, len, "conservation failed for version %s: ledger total %s, report total %s",
                 PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2));
    PQclear(r);
    return bad;
}

/* Builds the base rows and roll-ups of report_after and checks conservation in
 * one transaction, which also moves the run to its formula stage (formula
 * batches: none when the ruleset has neither formulas nor audit rules). */
static int aggregate(run_state *st, int has_rules) {
    char id[32];
    i64s(st->run_id, id, sizeof id);
    const char *p[] = {id};
    db_error e;
    if (db_exec_params(st->db, "UPDATE alloc_run SET stage = 'aggregate' WHERE run_id = $1", 1, p,
                       &e) < 0)
        return fail_db("aggregate", &e);
    if (db_begin(st->db, NULL, &e) != 0 || db_exec(st->db, "SET LOCAL work_mem = '512MB'", &e) != 0)
        return fail_db("aggregate", &e);
    PGresult *r = db_query(st->db, "SELECT status FROM alloc_run WHERE run_id = $1 FOR UPDATE", 1,
                           p, PGRES_TUPLES_OK, &e);
    if (!r)
        return fail_db("aggregate", &e);
    int running = PQntuples(r) && !strcmp(PQgetvalue(r, 0, 0), "running");
    PQclear(r);
    if (!running) {
        db_rollback(st->db, NULL);
        fprintf(stderr, "alloc-producer: run %s is no longer running\n", id);
        return ALLOC_EXIT_RUNTIME;
    }
    if (db_exec(st->db,
                "CREATE TEMP TABLE agg (version text, data_source text, project_code text, "
                "item_code text, cents bigint) ON COMMIT DROP",
                &e) != 0 ||
        run_steps(st->db, "aggregate", AGGREGATE_STEPS,
                  sizeof AGGREGATE_STEPS / sizeof AGGREGATE_STEPS[0], id, &e) != 0) {
        db_rollback(st->db, NULL);
        return fail_db("aggregate", &e);
    }
    char msg[512];
    int bad = check_conservation(st, id, msg, sizeof msg, &e);
    if (bad != 0) {
        db_rollback(st->db, NULL);
        if (bad < 0)
            return fail_db("conservation check", &e);
        fprintf(stderr, "alloc-producer: run %s failed: %s\n", id, msg);
        mark_failed(st, msg);
        return ALLOC_EXIT_RUNTIME;
    }
    /* the formula stage evaluates every vector: (version, data source, project) of
     * the base rows, each data source's #TOTAL and #ALL / #TOTAL */
    char vpm[32];
    snprintf(vpm, sizeof vpm, "%d", has_rules ? FORMULA_VECTORS_PER_BATCH : 0);
    const char *fp[] = {id, vpm};
    static const char *const FINISH_ALLOCATION[] = {
        "DELETE FROM alloc_partial WHERE run_id = $1 AND $2::int IS NOT NULL",
        "DELETE FROM alloc_unallocated WHERE run_id = $1 AND $2::int IS NOT NULL",
        "DELETE FROM run_pending WHERE run_id = $1 AND $2::int IS NOT NULL",
        "UPDATE alloc_run SET stage = 'formula', formula_batches = CASE WHEN $2::int = 0 THEN 0 "
        "  ELSE ((SELECT count(*) FROM (SELECT DISTINCT version, data_source, project_code FROM "
        "agg) a)"
        "      + (SELECT count(*) FROM (SELECT DISTINCT version, data_source FROM agg) b)"
        "      + (SELECT count(DISTINCT version) FROM agg) + $2::int - 1) / $2::int END "
        "WHERE run_id = $1",
    };
    for (size_t i = 0; i < sizeof FINISH_ALLOCATION / sizeof FINISH_ALLOCATION[0]; i++) {
        if (db_exec_params(st->db, FINISH_ALLOCATION[i], 2, fp, &e) < 0) {
            db_rollback(st->db, NULL);
            return fail_db("finish allocation", &e);
        }
    }
    if (db_commit(st->db, &e) != 0)
        return fail_db("commit aggregation", &e);
    int64_t fb = 0;
    if (db_query_int64(st->db, "SELECT formula_batches FROM alloc_run WHERE run_id = $1", 1, p, &fb,
                       &e) < 0)
        return fail_db("read formula batches", &e);
    st->formula_expected = fb;
    snprintf(st->stage, sizeof st->stage, "formula");
    return ALLOC_EXIT_OK;
}

/* The run's last transaction: succeeded, with its run_log row. */
static int finish(run_state *st) {
    char id[32];
    i64s(st->run_id, id, sizeof id);
    const char *p[] = {id};
    db_error e;
    if (db_begin(st->db, NULL, &e) != 0)
        return fail_db("finish run", &e);
    int64_t n = db_exec_params(st->db,
                               "UPDATE alloc_run SET status = 'succeeded', stage = 'done', "
                               "finished_at = now() WHERE run_id = $1 AND status = 'running'",
                               1, p, &e);
    if (n <= 0) {
        db_rollback(st->db, NULL);
        if (n < 0)
            return fail_db("finish run", &e);
        fprintf(stderr, "alloc-producer: run %s is no longer running\n", id);
        return ALLOC_EXIT_RUNTIME;
    }
    if (db_exec_params(
            st->db,
            "INSERT INTO run_log (run_id, event, detail) "
            "SELECT run_id, 'succeeded', jsonb_build_object('period', period_code, "
            "  'rows_pending', rows_pending, 'rows_direct', rows_direct, "
            "  'allocate_batches', expected_batches, 'formula_batches', formula_batches, "
            "  'seconds', round(extract(epoch FROM finished_at - started_at)::numeric, 3), "
            "  'report_rows', (SELECT count(*) FROM report_after a WHERE a.run_id = r.run_id), "
            "  'findings', (SELECT count(*) FROM audit_finding f WHERE f.run_id = r.run_id)) "
            "FROM alloc_run r WHERE run_id = $1",
            1, p, &e) < 0 ||
        db_commit(st->db, &e) != 0) {
        db_rollback(st->db, NULL);
        return fail_db("finish run", &e);
    }
    return ALLOC_EXIT_OK;
}

/* The notice to the finance team: an event on alloc.events, kept in the durable
 * queue alloc.notices (bound to every run event) for whoever reads the notices. */
static void announce(run_state *st) {
    char body[1024], err[256];
    int n = snprintf(body, sizeof body,
                     "{\"event\":\"run.succeeded\",\"run_id\":%" PRId64 ",\"period\":\"%s\","
                     "\"ruleset\":\"%s\"}",
                     st->run_id, st->period, st->ruleset);
    mq_queue_opts qo = {0};
    for (int attempt = 0; attempt < 2; attempt++) {
        int rc = mq_declare_queue(st->mq, "alloc.notices", &qo, err, sizeof err);
        if (rc == MQ_OK)
            rc = mq_bind(st->mq, "alloc.notices", MQ_EXCHANGE_EVENTS, "run.#", err, sizeof err);
        if (rc == MQ_OK)
            rc = mq_publish(st->mq, MQ_EXCHANGE_EVENTS, "run.succeeded", body, (size_t)n, NULL, 0,
                            err, sizeof err);
        if (rc == MQ_OK)
            rc = mq_flush(st->mq, 10000, err, sizeof err);
        if (rc == MQ_OK)
            return;
        /* the aggregation may have outlasted the heartbeat: reconnect once */
        if (rc != MQ_ERR_CONN || mq_reconnect(st->mq, 3, err, sizeof err) != MQ_OK)
            break;
    }
    log_warn("event for run %" PRId64 " not published: %s", st->run_id, err);
}

/* ---- the formula stage (DESIGN.md 5.5) ---------------------------------------------- */

/* The compiled ruleset of the run, as its snapshot stored it. */
typedef struct run_formulas {
    fx_ruleset *rs;
    unsigned char *bytes;
    size_t len;
    char *audits;
} run_formulas;

static void run_formulas_free(run_formulas *f) {
    fx_ruleset_free(f->rs);
    free(f->bytes);
    free(f->audits);
    memset(f, 0, sizeof *f);
}

static int load_formulas(run_state *st, run_formulas *f) {
    memset(f, 0, sizeof *f);
    char id[32];
    i64s(st->run_id, id, sizeof id);
    const char *p[] = {id};
    db_error e;
    PGresult *r = db_query(st->db,
                           "SELECT encode(formulas, 'base64'), audits FROM run_public "
                           "WHERE run_id = $1 AND formulas IS NOT NULL",
                           1, p, PGRES_TUPLES_OK, &e);
    if (!r)
        return fail_db("read the run's formulas", &e);
    if (PQntuples(r) != 1) {
        PQclear(r);
        fprintf(stderr, "alloc-producer: run %s has no compiled formulas\n", id);
        return ALLOC_EXIT_RUNTIME;
    }
    /* base64 keeps the bytes intact through the text protocol */
    const char *b64 = PQgetvalue(r, 0, 0);
    size_t n = strlen(b64);
    f->bytes = malloc(n / 4 * 3 + 4);
    f->audits = strdup(PQgetvalue(r, 0, 1));
    ALLOC_ASSERT(f->bytes && f->audits);
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        const char *c = strchr(alphabet, b64[i]);
        if (!c || !b64[i])
            continue; /* newlines and '=' padding */
        acc = (acc << 6) | (uint32_t)(c - alphabet);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            f->bytes[f->len++] = (unsigned char)(acc >> bits);
        }
    }
    PQclear(r);
    char err[256];
    f->rs = fx_ruleset_deserialize(f->bytes, f->len, err, sizeof err);
    if (!f->rs) {
        fprintf(stderr, "alloc-producer: the compiled formulas of run %s are damaged: %s\n", id,
                err);
        run_formulas_free(f);
        return ALLOC_EXIT_RUNTIME;
    }
    return ALLOC_EXIT_OK;
}

static char audits_key_buf[600];
static const char *audits_key(const run_state *st) {
    snprintf(audits_key_buf, sizeof audits_key_buf, "%s:audits", st->fx_key);
    return audits_key_buf;
}

static const run_formulas *cached_formulas; /* for the wait hook */

/* Puts the compiled formulas into Redis under their key (with the audit rules'
 * severities and messages beside them) unless they are there. */
static void cache_formulas(run_state *st) {
    if (!cached_formulas)
        return;
    redisReply *rep = cache_command(st->cache, "EXISTS %s %s", st->fx_key, audits_key(st));
    int present = rep && rep->type == REDIS_REPLY_INTEGER && rep->integer == 2;
    if (rep)
        freeReplyObject(rep);
    if (present)
        return;
    if (cache_set(st->cache, st->fx_key, cached_formulas->bytes, cached_formulas->len,
                  PUBLIC_TTL_S) != 0 ||
        cache_set(st->cache, audits_key(st), cached_formulas->audits,
                  strlen(cached_formulas->audits), PUBLIC_TTL_S) != 0)
        log_warn("cache formulas %s: %s", st->fx_key, cache_error(st->cache));
}

typedef struct vector_buf {
    msg_vector *v;
    size_t n, cap;
    msg_item_value *items; /* items of the vector being filled */
    size_t nitems, cap_items;
} vector_buf;

static void vector_buf_clear(vector_buf *b) {
    for (size_t i = 0; i < b->n; i++) {
        free((char *)b->v[i].version);
        free((char *)b->v[i].data_source);
        free((char *)b->v[i].project_code);
        for (size_t k = 0; k < b->v[i].nitems; k++)
            free((char *)b->v[i].items[k].item_code);
        free(b->v[i].items);
    }
    b->n = 0;
}

static int publish_formula_batch(run_state *st, int64_t k, vector_buf *b) {
    char batch_id[32];
    snprintf(batch_id, sizeof batch_id, "F%" PRId64, k);
    msg_formula m = {
        .run_id = st->run_id,
        .period = st->period,
        .ruleset = st->ruleset,
        .stamp = st->stamp,
        .batch_id = batch_id,
        .fx_key = st->fx_key,
        .expected = st->formula_expected,
        .vectors = b->v,
        .nvectors = b->n,
    };
    char err[512];
    size_t len;
    char *body = msg_encode_formula(&m, &len, err, sizeof err);
    if (!body) {
        fprintf(stderr, "alloc-producer: encode formula batch %s: %s\n", batch_id, err);
        return ALLOC_EXIT_RUNTIME;
    }
    int rc =
        mq_publish(st->mq, MQ_EXCHANGE_WORK, MQ_KEY_FORMULA, body, len, NULL, 0, err, sizeof err);
    free(body);
    if (rc != MQ_OK) {
        fprintf(stderr, "alloc-producer: publish formula batch %s: %s\n", batch_id, err);
        return ALLOC_EXIT_RUNTIME;
    }
    return ALLOC_EXIT_OK;
}

/* Streams the base and roll-up rows of report_after vector by vector, packs
 * FORMULA_VECTORS_PER_BATCH vectors per message and publishes the batches that
 * have no marker yet (all of them, except on resume). Memory: one batch. */
static int publish_formulas(run_state *st, const fx_ruleset *rs) {
    char id[32];
    i64s(st->run_id, id, sizeof id);
    const char *p[] = {id};
    db_error e;
    PGresult *done = db_query(st->db,
                              "SELECT substr(batch_id, 2)::bigint FROM batch_marker "
                              "WHERE run_id = $1 AND stage = 'formula'",
                              1, p, PGRES_TUPLES_OK, &e);
    if (!done)
        return fail_db("read formula markers", &e);
    int ndone = PQntuples(done);
    db_stream *s = db_stream_open(st->db,
                                  "SELECT version, data_source, project_code, item_code, "
                                  "(amount * 100)::bigint FROM report_after WHERE run_id = $1 "
                                  "ORDER BY version, data_source, project_code",
                                  1, p, &e);
    if (!s) {
        PQclear(done);
        return fail_db("stream report rows", &e);
    }
    vector_buf b;
    memset(&b, 0, sizeof b);
    int64_t k = 0, published = 0;
    int rc = ALLOC_EXIT_OK, more;
    while (rc == ALLOC_EXIT_OK) {
        more = db_stream_next(s, &e);
        if (more < 0) {
            rc = fail_db("stream report rows", &e);
            break;
        }
        int new_vector = more == 0 || b.n == 0;
        if (more && b.n > 0) {
            const msg_vector *last = &b.v[b.n - 1];
            new_vector = strcmp(last->version, db_stream_get(s, 0)) ||
                         strcmp(last->data_source, db_stream_get(s, 1)) ||
                         strcmp(last->project_code, db_stream_get(s, 2));
        }
        /* a batch is full when the next vector starts (or the rows end) */
        if (new_vector && (b.n == FORMULA_VECTORS_PER_BATCH || (more == 0 && b.n > 0))) {
            int is_done = 0;
            for (int i = 0; i < ndone && !is_done; i++)
                is_done = strtoll(PQgetvalue(done, i, 0), NULL, 10) == k;
            if (!is_done) {
                rc = publish_formula_batch(st, k, &b);
                published++;
            }
            vector_buf_clear(&b);
            k++;
        }
        if (more == 0 || rc != ALLOC_EXIT_OK)
            break;
        long slot = fx_ruleset_slot(rs, db_stream_get(s, 3));
        if (slot >= 0 && fx_ruleset_slot_is_formula(rs, (size_t)slot))
            continue; /* a resumed run's */
        if (new_vector) {
            if (b.n == b.cap) {
                b.cap = b.cap ? b.cap * 2 : 64;
                b.v = realloc(b.v, b.cap * sizeof *b.v);
                ALLOC_ASSERT(b.v != NULL);
            }
            msg_vector *v = &b.v[b.n++];
            memset(v, 0, sizeof *v);
            v->version = strdup(db_stream_get(s, 0));
            v->data_source = strdup(db_stream_get(s, 1));
            v->project_code = strdup(db_stream_get(s, 2));
            b.cap_items = 0;
        }
        msg_vector *v = &b.v[b.n - 1];
        if (v->nitems == b.cap_items) {
            b.cap_items = b.cap_items ? b.cap_items * 2 : 64;
            v->items = realloc(v->items, b.cap_items * sizeof *v->items);
            ALLOC_ASSERT(v->items != NULL);
        }
        v->items[v->nitems].item_code = strdup(db_stream_get(s, 3));
        v->items[v->nitems].cents = strtoll(db_stream_get(s, 4), NULL, 10);
        v->nitems++;
    }
    vector_buf_clear(&b);
    free(b.v);
    db_stream_close(s);
    PQclear(done);
    if (rc == ALLOC_EXIT_OK && k != st->formula_expected) {
        fprintf(stderr,
                "alloc-producer: run %s: %" PRId64 " formula batches, %" PRId64 " expected\n", id,
                k, st->formula_expected);
        rc = ALLOC_EXIT_RUNTIME;
    }
    if (rc == ALLOC_EXIT_OK) {
        char err[512];
        if (mq_flush(st->mq, -1, err, sizeof err) != MQ_OK) {
            fprintf(stderr, "alloc-producer: confirm formula batches of run %s: %s\n", id, err);
            rc = ALLOC_EXIT_RUNTIME;
        } else {
            log_info("run %s: %" PRId64 " formula batch(es) published", id, published);
        }
    }
    return rc;
}

static int formula_stage(run_state *st) {
    run_formulas f;
    int rc = load_formulas(st, &f);
    if (rc != ALLOC_EXIT_OK)
        return rc;
    cached_formulas = &f;
    cache_formulas(st);
    rc = publish_formulas(st, f.rs);
    if (rc == ALLOC_EXIT_OK)
        rc = wait_stage(st, "formula", st->formula_expected, cache_formulas);
    cached_formulas = NULL;
    run_formulas_free(&f);
    return rc;
}

/* ---- driving a run ----------------------------------------------------------------- */

static int connect_services(run_state *st) {
    char err[512];
    st->cache = cache_connect(st->cfg->redis_url, err, sizeof err);
    if (!st->cache) {
        fprintf(stderr, "alloc-producer: connect to Redis %s: %s\n", st->cfg->redis_url, err);
        return ALLOC_EXIT_RUNTIME;
    }
    st->mq = mq_connect(st->cfg->amqp_url, 30, err, sizeof err);
    if (!st->mq) {
        fprintf(stderr, "alloc-producer: connect to RabbitMQ: %s\n", err);
        return ALLOC_EXIT_RUNTIME;
    }
    if (mq_declare_topology(st->mq, err, sizeof err) != MQ_OK) {
        fprintf(stderr, "alloc-producer: declare queues: %s\n", err);
        return ALLOC_EXIT_RUNTIME;
    }
    return ALLOC_EXIT_OK;
}

/* Publishes what is left of a registered run, waits for it and aggregates. */
static int drive(run_state *st) {
    int rc = connect_services(st);
    if (rc != ALLOC_EXIT_OK)
        return rc;
    char err[512], queue[64], key[64];
    snprintf(queue, sizeof queue, "alloc.control.run.%" PRId64, st->run_id);
    snprintf(key, sizeof key, "run.%" PRId64, st->run_id);
    mq_queue_opts qo = {0};
    qo.expires_ms = 7L * 24 * 3600 * 1000;
    if (mq_declare_queue(st->mq, queue, &qo, err, sizeof err) != MQ_OK ||
        mq_bind(st->mq, queue, MQ_EXCHANGE_CONTROL, key, err, sizeof err) != MQ_OK ||
        mq_consume(st->mq, queue, 16, err, sizeof err) != MQ_OK) {
        fprintf(stderr, "alloc-producer: control queue %s: %s\n", queue, err);
        return ALLOC_EXIT_RUNTIME;
    }
    int allocating = strcmp(st->stage, "formula") != 0;
    if (allocating && st->expected > 0) {
        rc = cache_public(st);
        if (rc != ALLOC_EXIT_OK)
            return rc;
        int published = 0;
        rc = publish_buckets(st, &published);
        if (rc != ALLOC_EXIT_OK)
            return rc;
        log_info("run %" PRId64 " of %s: %d bucket(s) published, %" PRId64 " batch(es) expected",
                 st->run_id, st->period, published, st->expected);
        rc = wait_stage(st, "allocate", st->expected, NULL);
        if (rc != ALLOC_EXIT_OK)
            return rc;
    }
    if (allocating) {
        run_formulas f;
        rc = load_formulas(st, &f);
        if (rc != ALLOC_EXIT_OK)
            return rc;
        int has_rules = fx_ruleset_formula_count(f.rs) + fx_ruleset_audit_count(f.rs) > 0;
        run_formulas_free(&f);
        rc = aggregate(st, has_rules);
        if (rc != ALLOC_EXIT_OK)
            return rc;
    }
    if (st->formula_expected > 0) {
        rc = formula_stage(st);
        if (rc != ALLOC_EXIT_OK)
            return rc;
    }
    rc = finish(st);
    if (rc != ALLOC_EXIT_OK)
        return rc;
    announce(st);
    mq_delete_queue(st->mq, queue, err, sizeof err);
    counter_clear(st->cache, st->run_id, err, sizeof err);
    printf("run %" PRId64 " of period %s succeeded in %lds\n", st->run_id, st->period,
           (long)(time(NULL) - st->started));
    return ALLOC_EXIT_OK;
}

static void close_state(run_state *st) {
    mq_close(st->mq);
    cache_close(st->cache);
    db_close(st->db);
}

static void install_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int cmd_run(const alloc_config *cfg, int argc, char **argv) {
    if (wants_help(argc, argv)) {
        printf("usage: %s\n\n"
               "Generates the report of period P: validates it, snapshots it, publishes its\n"
               "pending rows to the consumers, waits for them (progress on stdout) and\n"
               "aggregates report_after. Exit 3: validation failed, nothing written;\n"
               "4: period unknown or closed, or a run is already going; 5: --timeout passed\n"
               "(the run stays resumable with `resume --run ID`).\n\n"
               "  --detail         also write alloc_detail (one row per allocated share)\n"
               "  --timeout S      stop waiting after S seconds (exit 5)\n"
               "  --batch-size N   rows per allocation batch (default %d)\n"
               "  --bucket-rows N  rows per bucket message (default %d)\n\n%s",
               RUN_USAGE, DEFAULT_BATCH_SIZE, DEFAULT_BUCKET_ROWS, config_flags_help());
        return ALLOC_EXIT_OK;
    }
    run_opts o = {NULL, 0, 0, DEFAULT_BATCH_SIZE, DEFAULT_BUCKET_ROWS};
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--detail")) {
            o.detail = 1;
            continue;
        }
        if (i + 1 >= argc)
            return usage_error(RUN_USAGE, "%s: missing value or unknown option", a);
        const char *v = argv[++i];
        if (!strcmp(a, "--period")) {
            if (!run_valid_period(v))
                return usage_error(RUN_USAGE, "--period %s: expected YYYY-MM", v);
            o.period = v;
        } else if (!strcmp(a, "--timeout")) {
            if (parse_long(v, 1, &o.timeout_s))
                return usage_error(RUN_USAGE, "--timeout %s: expected seconds > 0", v);
        } else if (!strcmp(a, "--batch-size")) {
            if (parse_long(v, 1, &o.batch_size))
                return usage_error(RUN_USAGE, "--batch-size %s: expected N > 0", v);
        } else if (!strcmp(a, "--bucket-rows")) {
            if (parse_long(v, 1, &o.bucket_rows))
                return usage_error(RUN_USAGE, "--bucket-rows %s: expected N > 0", v);
        } else {
            return usage_error(RUN_USAGE, "unknown option %s", a);
        }
    }
    if (!o.period)
        return usage_error(RUN_USAGE, "--period is required");
    if (o.bucket_rows < o.batch_size)
        o.bucket_rows = o.batch_size;

    install_signals();
    run_state st;
    memset(&st, 0, sizeof st);
    st.cfg = cfg;
    st.started = time(NULL);
    st.timeout_s = o.timeout_s;
    st.batch_size = o.batch_size;
    char err[512];
    st.db = db_connect(cfg->pg_dsn, err, sizeof err);
    if (!st.db) {
        fprintf(stderr, "alloc-producer: connect to PostgreSQL: %s\n", err);
        return ALLOC_EXIT_RUNTIME;
    }
    durable_commits(st.db);
    int rc = snapshot(&st, &o);
    if (rc == ALLOC_EXIT_OK) {
        int running;
        rc = load_run(&st, st.run_id, &running);
        st.batch_size = o.batch_size;
    }
    if (rc == ALLOC_EXIT_OK) {
        log_info("run %" PRId64 " of %s: %" PRId64 " pending rows in %" PRId64 " batches, snapshot "
                 "in %lds",
                 st.run_id, st.period, st.rows_pending, st.expected,
                 (long)(time(NULL) - st.started));
        rc = drive(&st);
        if (rc == ALLOC_EXIT_RUNTIME && st.run_id)
            mark_failed(&st, "the producer failed; see its log");
    }
    close_state(&st);
    return rc;
}

static int parse_run_id(const char *usage, int argc, char **argv, int64_t *run_id, long *timeout) {
    *run_id = 0;
    for (int i = 0; i < argc; i++) {
        if (i + 1 >= argc)
            return usage_error(usage, "%s: missing value or unknown option", argv[i]);
        long v;
        if (!strcmp(argv[i], "--run")) {
            if (parse_long(argv[i + 1], 1, &v))
                return usage_error(usage, "--run %s: expected a run id", argv[i + 1]);
            *run_id = v;
        } else if (timeout && !strcmp(argv[i], "--timeout")) {
            if (parse_long(argv[i + 1], 1, &v))
                return usage_error(usage, "--timeout %s: expected seconds > 0", argv[i + 1]);
            *timeout = v;
        } else {
            return usage_error(usage, "unknown option %s", argv[i]);
        }
        i++;
    }
    if (!*run_id)
        return usage_error(usage, "--run is required");
    return ALLOC_EXIT_OK;
}

int cmd_resume(const alloc_config *cfg, int argc, char **argv) {
    if (wants_help(argc, argv)) {
        printf(
            "usage: %s\n\nFinishes an interrupted run: republishes the buckets whose batches are\n"
            "not all done (done ones are never counted twice), waits and aggregates.\n\n%s",
            RESUME_USAGE, config_flags_help());
        return ALLOC_EXIT_OK;
    }
    int64_t run_id;
    long timeout = 0;
    int rc = parse_run_id(RESUME_USAGE, argc, argv, &run_id, &timeout);
    if (rc != ALLOC_EXIT_OK)
        return rc;
    install_signals();
    run_state st;
    memset(&st, 0, sizeof st);
    st.cfg = cfg;
    st.started = time(NULL);
    st.timeout_s = timeout;
    st.batch_size = DEFAULT_BATCH_SIZE;
    char err[512];
    st.db = db_connect(cfg->pg_dsn, err, sizeof err);
    if (!st.db) {
        fprintf(stderr, "alloc-producer: connect to PostgreSQL: %s\n", err);
        return ALLOC_EXIT_RUNTIME;
    }
    durable_commits(st.db);
    int running = 0;
    rc = load_run(&st, run_id, &running);
    if (rc == ALLOC_EXIT_OK && !running) {
        fprintf(stderr, "alloc-producer: run %" PRId64 " is not running: nothing to resume\n",
                run_id);
        rc = ALLOC_EXIT_REFUSED;
    }
    if (rc == ALLOC_EXIT_OK) {
        /* republished buckets must be cut exactly as before */
        char id[32];
        i64s(run_id, id, sizeof id);
        const char *p[] = {id};
        db_error e;
        int64_t bs = 0;
        if (db_query_int64(st.db, "SELECT batch_size FROM alloc_run WHERE run_id = $1", 1, p, &bs,
                           &e) == 1 &&
            bs > 0)
            st.batch_size = (long)bs;
        log_set_run(run_id);
        log_info("resuming run %" PRId64 " of %s", run_id, st.period);
        rc = drive(&st);
    }
    close_state(&st);
    return rc;
}

int cmd_abort(const alloc_config *cfg, int argc, char **argv) {
    if (wants_help(argc, argv)) {
        printf("usage: %s\n\nAborts a running run: consumers drop its remaining batches.\n\n%s",
               ABORT_USAGE, config_flags_help());
        return ALLOC_EXIT_OK;
    }
    int64_t run_id;
    int rc = parse_run_id(ABORT_USAGE, argc, argv, &run_id, NULL);
    if (rc != ALLOC_EXIT_OK)
        return rc;
    char err[512];
    db_conn *db = db_connect(cfg->pg_dsn, err, sizeof err);
    if (!db) {
        fprintf(stderr, "alloc-producer: connect to PostgreSQL: %s\n", err);
        return ALLOC_EXIT_RUNTIME;
    }
    char id[32];
    i64s(run_id, id, sizeof id);
    const char *p[] = {id};
    db_error e;
    int64_t n = db_exec_params(db,
                               "UPDATE alloc_run SET status = 'aborted', finished_at = now(), "
                               "error = 'aborted by the operator' WHERE run_id = $1 "
                               "AND status = 'running'",
                               1, p, &e);
    if (n < 0) {
        rc = fail_db("abort", &e);
    } else if (n == 0) {
        fprintf(stderr, "alloc-producer: run %s is unknown or not running\n", id);
        rc = ALLOC_EXIT_REFUSED;
    } else {
        static const char *const CLEANUP[] = {
            "DELETE FROM alloc_partial WHERE run_id = $1",
            "DELETE FROM alloc_unallocated WHERE run_id = $1",
            "DELETE FROM run_pending WHERE run_id = $1",
            "INSERT INTO run_log (run_id, event) VALUES ($1, 'aborted')",
        };
        for (size_t i = 0; i < sizeof CLEANUP / sizeof CLEANUP[0]; i++)
            if (db_exec_params(db, CLEANUP[i], 1, p, &e) < 0)
                log_warn("abort cleanup: %s", e.msg);
        printf("run %s aborted\n", id);
    }
    db_close(db);
    return rc;
}
