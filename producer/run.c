/* alloc-producer run / resume / abort: the run coordinator of DESIGN.md 5.1-5.6.
 *
 * A run is: one REPEATABLE READ snapshot transaction that validates the period,
 * registers the run (the unique index on running runs makes a second one fail),
 * and copies everything the run needs out of the snapshot (pending rows with
 * their items, report_before, control totals, buckets, public data); then the
 * buckets are published, consumers split and allocate them, the producer waits
 * on its control queue and on the batch markers, one aggregation transaction
 * builds report_after and checks conservation, and the formula stage adds the
 * formula rows and audit findings; the last transaction marks it succeeded and
 * replaces the period's earlier unpublished results. This file holds the
 * commands and drives the stages, which live in run1_snapshot.c ..
 * run5_finish.c (run_stages.h) on top of run_wait.c and run_state.c; nothing
 * below calls back up here. */
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
#include "cli.h"
#include "commands.h"
#include "counter.h"
#include "db.h"
#include "drivers.h"
#include "log.h"
#include "mq.h"
#include "msg.h"
#include "run_stages.h"
#include "run_state.h"
#include "run_wait.h"
#include "util.h"
#include <jansson.h>

#define RUN_USAGE                                                                                  \
    "alloc-producer run --period YYYY-MM [--detail] [--timeout S] [--batch-size N] "               \
    "[--bucket-rows N]"
#define RESUME_USAGE "alloc-producer resume --run ID [--timeout S]"
#define ABORT_USAGE "alloc-producer abort --run ID"

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

/* ---- loading a registered run (run after its snapshot, or resume) ------------- */

static int load_run(run_state *st, int64_t run_id, int *running) {
    char id[32];
    run_i64s(run_id, id, sizeof id);
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
        return cli_fail_db(&e, "read run");
    if (PQntuples(r) == 0) {
        PQclear(r);
        cli_error("unknown run %" PRId64, run_id);
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

/* ---- driving a run ----------------------------------------------------------------- */

/* Connects to Redis and RabbitMQ. The error line names the run and the
 * server, with its URL masked (a credential is never printed). */
static int connect_services(run_state *st) {
    char err[512], shown[512];
    st->cache = cache_connect(st->cfg->redis_url, err, sizeof err);
    if (!st->cache) {
        config_mask_secret(st->cfg->redis_url, shown, sizeof shown);
        cli_error("run %" PRId64 ": connect to Redis %s: %s", st->run_id, shown, err);
        return ALLOC_EXIT_RUNTIME;
    }
    st->mq = mq_connect(st->cfg->amqp_url, 30, err, sizeof err);
    if (!st->mq) {
        config_mask_secret(st->cfg->amqp_url, shown, sizeof shown);
        cli_error("run %" PRId64 ": connect to RabbitMQ %s: %s", st->run_id, shown, err);
        return ALLOC_EXIT_RUNTIME;
    }
    if (mq_declare_topology(st->mq, err, sizeof err) != MQ_OK) {
        cli_error("run %" PRId64 ": declare queues: %s", st->run_id, err);
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
        cli_error("control queue %s: %s", queue, err);
        return ALLOC_EXIT_RUNTIME;
    }
    int allocating = strcmp(st->stage, "formula") != 0;
    if (allocating && st->expected > 0) {
        rc = run_cache_public(st);
        if (rc != ALLOC_EXIT_OK)
            return rc;
        int published = 0;
        rc = run_publish_buckets(st, &published);
        if (rc != ALLOC_EXIT_OK)
            return rc;
        log_info("run %" PRId64 " of %s: %d bucket(s) published, %" PRId64 " batch(es) expected",
                 st->run_id, st->period, published, st->expected);
        rc = run_wait_stage(st, "allocate", st->expected, NULL);
        if (rc != ALLOC_EXIT_OK)
            return rc;
    }
    if (allocating) {
        rc = run_plan_units(st);
        if (rc != ALLOC_EXIT_OK)
            return rc;
    }
    if (st->formula_expected > 0) {
        rc = run_formula_stage(st);
        if (rc != ALLOC_EXIT_OK)
            return rc;
    }
    rc = run_finish(st);
    if (rc != ALLOC_EXIT_OK)
        return rc;
    run_announce(st);
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
               "pending rows to the consumers, waits for them and aggregates report_after.\n"
               "While it waits it prints every 5 s the stage's batches done and how many\n"
               "consumers its queues have (\"0 consumers on alloc.batches: start\n"
               "alloc-consumer\"). A driver of an allocation rule with no value in P is\n"
               "warned about (its rows would go to #UNALLOCATED), not refused.\n\n"
               "  --detail         also write alloc_detail (one row per allocated share)\n"
               "  --timeout S      stop waiting after S seconds (exit 5)\n"
               "  --batch-size N   rows per allocation batch (default %d)\n"
               "  --bucket-rows N  rows per bucket message (default %d)\n\n"
               "Exit status: 0 the run succeeded, 2 bad arguments, 3 validation failed\n"
               "(unbound rows, unknown projects, missing allocation rules, formulas that do\n"
               "not compile: nothing written), 4 refused (period unknown or closed, a run of\n"
               "it already going), 5 --timeout passed or interrupted (the run goes on and\n"
               "stays resumable: resume --run ID), 1 the run failed (its cause is kept in\n"
               "alloc_run.error) or any other failure.\n\n%s",
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
            if (!util_period_valid(v))
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
    st.db = cli_connect_db(cfg, "run");
    if (!st.db)
        return ALLOC_EXIT_RUNTIME;
    run_durable_commits(st.db);
    /* a warning, not a refusal: a mistyped driver name ("headcuont") has no values */
    db_error warn_err;
    if (drivers_warn_period(st.db, o.period, &warn_err) < 0)
        log_warn("the drivers of period %s were not checked: %s", o.period, warn_err.msg);
    int rc = run_snapshot(&st, &o);
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
        /* the cause recorded is the first error line the run printed */
        if (rc == ALLOC_EXIT_RUNTIME && st.run_id)
            run_mark_failed(&st, cli_first_error() ? cli_first_error()
                                                   : "the producer failed; see its log");
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
            "not all done (done ones are never counted twice), waits and aggregates.\n\n"
            "  --run ID      the run (it must be running)\n"
            "  --timeout S   stop waiting after S seconds (exit 5)\n\n"
            "Exit status: 0 the run succeeded, 2 bad arguments, 4 refused (unknown run, or\n"
            "not running), 5 --timeout passed or interrupted (still resumable), 1 the run\n"
            "failed or any other failure.\n\n%s",
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
    st.db = cli_connect_db(cfg, "resume");
    if (!st.db)
        return ALLOC_EXIT_RUNTIME;
    run_durable_commits(st.db);
    int running = 0;
    rc = load_run(&st, run_id, &running);
    if (rc == ALLOC_EXIT_OK && !running) {
        cli_error("run %" PRId64 " is not running: nothing to resume", run_id);
        rc = ALLOC_EXIT_REFUSED;
    }
    if (rc == ALLOC_EXIT_OK) {
        /* republished buckets must be cut exactly as before */
        char id[32];
        run_i64s(run_id, id, sizeof id);
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
        printf("usage: %s\n\nAborts a running run: consumers drop its remaining batches; the\n"
               "period's earlier runs are untouched.\n\n"
               "Exit status: 0 aborted, 2 bad arguments, 4 refused (unknown run, or not\n"
               "running), 1 any other failure.\n\n%s",
               ABORT_USAGE, config_flags_help());
        return ALLOC_EXIT_OK;
    }
    int64_t run_id;
    int rc = parse_run_id(ABORT_USAGE, argc, argv, &run_id, NULL);
    if (rc != ALLOC_EXIT_OK)
        return rc;
    db_conn *db = cli_connect_db(cfg, "abort");
    if (!db)
        return ALLOC_EXIT_RUNTIME;
    char id[32];
    run_i64s(run_id, id, sizeof id);
    const char *p[] = {id};
    db_error e;
    int64_t n = db_exec_params(db,
                               "UPDATE alloc_run SET status = 'aborted', finished_at = now(), "
                               "error = 'aborted by the operator' WHERE run_id = $1 "
                               "AND status = 'running'",
                               1, p, &e);
    if (n < 0) {
        rc = cli_fail_db(&e, "abort");
    } else if (n == 0) {
        cli_error("run %s is unknown or not running", id);
        rc = ALLOC_EXIT_REFUSED;
    } else {
        static const char *const CLEANUP[] = {
            "DELETE FROM alloc_partial WHERE run_id = $1",
            "DELETE FROM alloc_unallocated WHERE run_id = $1",
            "DELETE FROM run_pending WHERE run_id = $1",
            "DELETE FROM run_unit_total WHERE run_id = $1",
            "INSERT INTO run_log (run_id, event) VALUES ($1, 'aborted')",
        };
        for (size_t i = 0; i < sizeof CLEANUP / sizeof CLEANUP[0]; i++)
            if (db_exec_params(db, CLEANUP[i], 1, p, &e) < 0)
                log_warn("abort cleanup: %s", e.msg);
        /* its tables (never attached): partials, direct rows, the rows its
         * formula stage wrote */
        if (run_drop_tables(db, id, &e) != 0)
            log_warn("abort cleanup: %s", e.msg);
        printf("run %s aborted\n", id);
    }
    db_close(db);
    return rc;
}
