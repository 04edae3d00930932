/* alloc-producer export: files an export task for a consumer's export worker
 * (DESIGN.md 5.7, consumer/export.c) and prints its id at once, or waits for
 * the file with --wait; `export --status ID` shows a task. The run is chosen
 * here, as `report` chooses it, and recorded on the task, so the file holds
 * that run's rows whatever is published meanwhile. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "check.h"
#include "cli.h"
#include "commands.h"
#include "db.h"
#include "report_fmt.h"
#include "review.h"
#include "util.h"

static const char export_usage[] =
    "alloc-producer export --period P [--version V] [--detail] [--run ID] --format csv.gz|xlsx "
    "[--wait [--timeout S]]\n"
    "       alloc-producer export --status ID [--json]";

/* How often --wait looks at the task, and after how long it says that no
 * worker seems to take it. */
#define EXPORT_WAIT_POLL_MS 300
#define EXPORT_WAIT_HINT_S 15

static void print_help(void) {
    printf("usage: %s\n\n"
           "Files an export task and prints its id at once (\"task ID\", then \"run ID\n"
           "(how chosen)\"); an alloc-consumer with role export (part of all) writes the\n"
           "file under its file store as PERIOD/ID.csv.gz or PERIOD/ID.xlsx and records\n"
           "its path, row count and SHA-256 on the task.\n\n"
           "The rows are those of report_after (columns version, data_source,\n"
           "project_code, item_code, amount) or, with --detail, of alloc_detail (version,\n"
           "entry_id, project_code, amount), in key order (byte order), with a header row.\n"
           "csv.gz: CSV as COPY ... (FORMAT csv) writes it, gzip-compressed. xlsx: one\n"
           "sheet, continued on further sheets past 1,048,575 rows, each with the header.\n\n"
           "  --period P        the period, YYYY-MM (required)\n"
           "  --version V       only this report version (default: every version)\n"
           "  --detail          the run's allocation detail (a run made with --detail)\n"
           "  --run ID          this run (it must belong to P, have succeeded and not be\n"
           "                    replaced by a later run); default: the published run,\n"
           "                    else the latest succeeded one\n"
           "  --format F        csv.gz or xlsx (required)\n"
           "  --wait            wait until the file is written, then print \"status done\",\n"
           "                    \"rows N\", \"path P\" and \"sha256 H\" lines\n"
           "  --timeout S       with --wait: give up after S seconds (exit 5; the task\n"
           "                    stays filed)\n"
           "  --status ID       show task ID (\"key value\" lines; fields without a value\n"
           "                    are left out)\n"
           "  --json            with --status: one JSON object\n\n"
           "Exit status: 0 filed (or done, or shown), 2 bad arguments, 4 unknown period,\n"
           "run, version or task, no succeeded run, a run running, failed, aborted or\n"
           "replaced, or no detail in the run, 5 timed out\n"
           "waiting, 1 the export failed or any other failure.\n\n%s",
           export_usage, config_flags_help());
}

/* What the command was asked. */
typedef struct export_args {
    const char *period, *version, *format, *run_text, *status_text, *timeout_text;
    int detail, wait, json;
    int64_t run_id, task_id;
    double timeout_s; /* 0 = none */
} export_args;

/* Parses argv into a. Returns ALLOC_EXIT_OK or ALLOC_EXIT_USAGE after printing why. */
static int parse_args(int argc, char **argv, export_args *a) {
    for (int i = 0; i < argc; i++) {
        static const char *const valued[] = {"--period", "--version", "--format",
                                             "--run",    "--status",  "--timeout"};
        const char **slots[] = {&a->period,   &a->version,     &a->format,
                                &a->run_text, &a->status_text, &a->timeout_text};
        int got = 0;
        const char *name = NULL;
        for (size_t k = 0; k < sizeof valued / sizeof valued[0] && !got; k++) {
            got = review_arg(argc, argv, &i, valued[k], slots[k]);
            name = valued[k];
        }
        if (got < 0)
            return usage_error(export_usage, "export: %s needs a value", name);
        if (got)
            continue;
        if (!strcmp(argv[i], "--detail"))
            a->detail = 1;
        else if (!strcmp(argv[i], "--wait"))
            a->wait = 1;
        else if (!strcmp(argv[i], "--json"))
            a->json = 1;
        else
            return usage_error(export_usage, "export: unknown argument '%s'", argv[i]);
    }

    if (a->status_text) {
        if (a->period || a->version || a->format || a->run_text || a->detail || a->wait ||
            a->timeout_text)
            return usage_error(export_usage, "export: --status shows a task; it takes only --json");
        if (report_fmt_parse_id(a->status_text, &a->task_id) < 0)
            return usage_error(export_usage, "export: bad task id '%s' (want a positive integer)",
                               a->status_text);
        return ALLOC_EXIT_OK;
    }
    if (a->json)
        return usage_error(export_usage, "export: --json goes with --status");
    if (!a->period)
        return usage_error(export_usage, "export: --period is required");
    if (!util_period_valid(a->period))
        return usage_error(export_usage, "export: bad period '%s' (want YYYY-MM)", a->period);
    if (!a->format)
        return usage_error(export_usage, "export: --format is required (csv.gz or xlsx)");
    if (strcmp(a->format, "csv.gz") != 0 && strcmp(a->format, "xlsx") != 0)
        return usage_error(export_usage, "export: bad format '%s' (want csv.gz or xlsx)",
                           a->format);
    if (a->version && !*a->version)
        return usage_error(export_usage, "export: empty --version");
    if (a->run_text && report_fmt_parse_id(a->run_text, &a->run_id) < 0)
        return usage_error(export_usage, "export: bad run id '%s' (want a positive integer)",
                           a->run_text);
    if (a->timeout_text) {
        char *end;
        errno = 0;
        a->timeout_s = strtod(a->timeout_text, &end);
        if (!a->wait)
            return usage_error(export_usage, "export: --timeout goes with --wait");
        if (errno || end == a->timeout_text || *end || !(a->timeout_s > 0))
            return usage_error(export_usage, "export: bad timeout '%s' (want seconds > 0)",
                               a->timeout_text);
    }
    return ALLOC_EXIT_OK;
}

/* ---- filing -------------------------------------------------------------------- */

/* Chooses the run (as `report` does) and checks that it has what the export
 * reads, inside the caller's transaction. Returns ALLOC_EXIT_OK with *run_id
 * and *how set, or the exit code after printing why. */
static int choose_run(db_conn *c, const export_args *a, int64_t *run_id, const char **how) {
    db_error err;
    int found = review_period(c, a->period, 0, NULL, 0, NULL, 0, &err);
    if (found < 0)
        return cli_fail_db(&err, "export: reading the period");
    if (!found)
        return cli_refuse("export: period %s does not exist", a->period);

    int rc = review_choose_run(c, "export", a->period, a->run_id, run_id, how);
    if (rc != ALLOC_EXIT_OK)
        return rc;

    if (a->version) {
        const char *params[] = {a->version};
        int64_t one;
        found = db_query_int64(c, "SELECT 1 FROM report_version WHERE version = $1", 1, params,
                               &one, &err);
        if (found < 0)
            return cli_fail_db(&err, "export: reading report_version");
        if (!found)
            return cli_refuse("export: version %s does not exist", a->version);
    }

    /* with --detail: the run's detail flag (its results are in place: the
     * run was chosen readable above) */
    if (!a->detail)
        return ALLOC_EXIT_OK;
    char id[24];
    snprintf(id, sizeof id, "%" PRId64, *run_id);
    const char *params[] = {id};
    PGresult *res = db_query(c, "SELECT detail FROM alloc_run WHERE run_id = $1", 1, params,
                             PGRES_TUPLES_OK, &err);
    if (!res)
        return cli_fail_db(&err, "export: reading the run");
    if (PQntuples(res) != 1)
        rc = cli_refuse("export: run %" PRId64 " does not exist", *run_id);
    else if (PQgetvalue(res, 0, 0)[0] != 't')
        rc = cli_refuse("export: run %" PRId64 " was made without --detail: it has no alloc_detail "
                        "rows (run --period %s --detail)",
                        *run_id, a->period);
    PQclear(res);
    return rc;
}

/* Inserts the task. Returns ALLOC_EXIT_OK with *task_id, or the exit code. */
static int file_task(db_conn *c, const export_args *a, int64_t *task_id, int64_t *run_id,
                     const char **how) {
    db_error err;
    if (db_begin(c, "REPEATABLE READ", &err) < 0)
        return cli_fail_db(&err, "export: starting the transaction");
    int rc = choose_run(c, a, run_id, how);
    if (rc == ALLOC_EXIT_OK) {
        char run[24];
        snprintf(run, sizeof run, "%" PRId64, *run_id);
        const char *params[] = {a->period, a->version, a->detail ? "true" : "false", a->format,
                                run};
        int found = db_query_int64(c,
                                   "INSERT INTO export_task (period_code, version, detail, format, "
                                   "  run_id) VALUES ($1, $2, $3, $4, $5) RETURNING task_id",
                                   5, params, task_id, &err);
        if (found != 1 || db_commit(c, &err) < 0)
            rc = cli_fail_db(&err, "export: filing the task");
    }
    if (rc != ALLOC_EXIT_OK)
        db_rollback(c, NULL);
    return rc;
}

/* ---- waiting and showing ----------------------------------------------------- */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Polls the task until it is done or failed (or the timeout passes). */
static int wait_task(db_conn *c, const export_args *a, int64_t task_id) {
    char id[24];
    snprintf(id, sizeof id, "%" PRId64, task_id);
    const char *params[] = {id};
    double t0 = now_s();
    int hinted = 0;
    for (;;) {
        db_error err;
        PGresult *res = db_query(c,
                                 "SELECT status, row_count, path, sha256, coalesce(error, '') "
                                 "FROM export_task WHERE task_id = $1",
                                 1, params, PGRES_TUPLES_OK, &err);
        if (!res) {
            if (err.conn_lost && db_reset(c, 30000, &err) == 0)
                continue;
            return cli_fail_db(&err, "export: reading the task");
        }
        if (PQntuples(res) != 1) {
            PQclear(res);
            return cli_refuse("export: task %" PRId64 " no longer exists", task_id);
        }
        const char *status = PQgetvalue(res, 0, 0);
        if (!strcmp(status, "done")) {
            printf("status done\nrows %s\npath %s\nsha256 %s\n", PQgetvalue(res, 0, 1),
                   PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 3));
            PQclear(res);
            return ALLOC_EXIT_OK;
        }
        if (!strcmp(status, "failed")) {
            printf("status failed\n");
            fprintf(stderr, "alloc-producer: export: task %" PRId64 " failed: %s\n", task_id,
                    PQgetvalue(res, 0, 4));
            PQclear(res);
            return ALLOC_EXIT_RUNTIME;
        }
        double waited = now_s() - t0;
        if (!hinted && !strcmp(status, "queued") && waited > EXPORT_WAIT_HINT_S) {
            fprintf(stderr,
                    "alloc-producer: export: task %" PRId64 " is still queued after %d s: is an "
                    "alloc-consumer with role export (or all) running?\n",
                    task_id, EXPORT_WAIT_HINT_S);
            hinted = 1;
        }
        if (a->timeout_s > 0 && waited >= a->timeout_s) {
            fprintf(stderr,
                    "alloc-producer: export: task %" PRId64 " is still %s after %g s; it stays "
                    "filed (export --status %" PRId64 ")\n",
                    task_id, status, a->timeout_s, task_id);
            PQclear(res);
            return ALLOC_EXIT_TIMEOUT;
        }
        PQclear(res);
        fflush(stdout);
        usleep(EXPORT_WAIT_POLL_MS * 1000);
    }
}

/* Columns of the task query, with their names for both outputs. */
static const char *const task_fields[] = {
    "task",       "period",      "run",          "version",    "data",    "format",
    "status",     "rows",        "path",         "sha256",     "error",   "created_at",
    "started_at", "finished_at", "heartbeat_at", "claimed_by", "attempts"};
/* Which of them are integers in JSON. */
static const int task_field_int[] = {1, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1};

#define UTC(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

static int show_task(db_conn *c, const export_args *a) {
    char id[24];
    snprintf(id, sizeof id, "%" PRId64, a->task_id);
    const char *params[] = {id};
    db_error err;
    PGresult *res = db_query(
        c,
        "SELECT task_id, period_code, run_id, coalesce(version, 'all'), "
        "  CASE WHEN detail THEN 'alloc_detail' ELSE 'report_after' END, "
        "  format, status, row_count, path, sha256, error, " UTC("created_at") ", " UTC(
            "started_at") ", " UTC("finished_at") ", " UTC("heartbeat_at") ", claimed_by, attempts "
                                                                           "FROM export_task WHERE "
                                                                           "task_id = $1",
        1, params, PGRES_TUPLES_OK, &err);
    if (!res)
        return cli_fail_db(&err, "export: reading the task");
    if (PQntuples(res) != 1) {
        PQclear(res);
        return cli_refuse("export: task %" PRId64 " does not exist", a->task_id);
    }
    int n = (int)(sizeof task_fields / sizeof task_fields[0]);
    int rc = ALLOC_EXIT_OK;
    if (a->json) {
        json_t *o = json_object();
        int failed = o == NULL;
        for (int col = 0; col < n && !failed; col++) {
            json_t *v;
            if (PQgetisnull(res, 0, col))
                v = json_null();
            else if (task_field_int[col])
                v = json_integer(strtoll(PQgetvalue(res, 0, col), NULL, 10));
            else
                v = json_string(PQgetvalue(res, 0, col));
            failed = json_object_set_new(o, task_fields[col], v ? v : json_null()) != 0;
        }
        char *text = failed ? NULL : json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (text) {
            printf("%s\n", text);
            free(text);
        } else {
            fprintf(stderr, "alloc-producer: export: cannot build the JSON of task %" PRId64 "\n",
                    a->task_id);
            rc = ALLOC_EXIT_RUNTIME;
        }
        json_decref(o);
    } else {
        for (int col = 0; col < n; col++)
            if (!PQgetisnull(res, 0, col))
                printf("%s %s\n", task_fields[col], PQgetvalue(res, 0, col));
    }
    PQclear(res);
    return rc;
}

/* ---- command ------------------------------------------------------------------ */

int cmd_export(const alloc_config *cfg, int argc, char **argv) {
    if (wants_help(argc, argv)) {
        print_help();
        return ALLOC_EXIT_OK;
    }
    export_args a;
    memset(&a, 0, sizeof a);
    int rc = parse_args(argc, argv, &a);
    if (rc != ALLOC_EXIT_OK)
        return rc;

    db_conn *c = cli_connect_db(cfg, "export");
    if (!c)
        return ALLOC_EXIT_RUNTIME;
    if (a.status_text) {
        rc = show_task(c, &a);
    } else {
        int64_t task_id = 0, run_id = 0;
        const char *how = "";
        rc = file_task(c, &a, &task_id, &run_id, &how);
        if (rc == ALLOC_EXIT_OK) {
            printf("task %" PRId64 "\nrun %" PRId64 " (%s)\n", task_id, run_id, how);
            fflush(stdout);
            if (a.wait)
                rc = wait_task(c, &a, task_id);
        }
    }
    db_close(c);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "alloc-producer: export: writing the output: %s\n", strerror(errno));
        return ALLOC_EXIT_RUNTIME;
    }
    return rc;
}
