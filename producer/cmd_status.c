/* alloc-producer status: the runs of a period (or one run, or the latest runs of
 * every period) with their stage, batch progress, control totals, staleness
 * against the live ledger and audit findings, as text or JSON. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "check.h"
#include "cli.h"
#include "commands.h"
#include "db.h"
#include "report_fmt.h"
#include "review.h"
#include "util.h"

static const char status_usage[] = "alloc-producer status [--period P | --run ID] [--json]";

/* Runs listed at most, newest first. */
#define STATUS_LIMIT 20

static void print_help(void) {
    printf("usage: %s\n\n"
           "Lists runs, newest first: the %d latest of every period, or of period P, or\n"
           "run ID alone. For each: status and stage, start and finish time (UTC), batch\n"
           "markers done in the current stage out of the number that stage expects (the\n"
           "allocation stage's batches, or the formula stage's units; the count of all\n"
           "markers once the run is done), control totals, how many ledger changes the\n"
           "period had after the run's snapshot (\"report is stale\" for a running or\n"
           "succeeded run), audit findings by severity, the error of a failed run, and\n"
           "whether the run is the published one, or the later run that replaced its\n"
           "results.\n\n"
           "  --period P   only runs of period P (YYYY-MM)\n"
           "  --run ID     only run ID\n"
           "  --json       a JSON array of objects, one per run (amounts as strings)\n\n"
           "Exit status: 0 listed, 2 bad arguments, 4 unknown period or run, or --run of\n"
           "a run with no readable report (running, failed, aborted, or its results\n"
           "replaced: it is listed, then refused naming why), 1 any other failure.\n\n%s",
           status_usage, STATUS_LIMIT, config_flags_help());
}

/* Columns of runs_sql, in order. */
enum {
    COL_RUN_ID,
    COL_PERIOD,
    COL_STATUS,
    COL_STAGE,
    COL_STARTED,
    COL_FINISHED,
    COL_BATCHES_STAGE,
    COL_BATCHES_TOTAL,
    COL_EXPECTED,
    COL_ROWS_PENDING,
    COL_ROWS_DIRECT,
    COL_AMOUNT_PENDING,
    COL_AMOUNT_DIRECT,
    COL_CHANGES,
    COL_ERRORS,
    COL_WARNINGS,
    COL_ERROR,
    COL_PUBLISHED,
    COL_REPLACED_BY
};

static const char runs_sql[] =
    "SELECT r.run_id, r.period_code, r.status, r.stage, "
    " to_char(r.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
    " to_char(r.finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
    " (SELECT count(*) FROM batch_marker b WHERE b.run_id = r.run_id AND b.stage = r.stage), "
    " (SELECT count(*) FROM batch_marker b WHERE b.run_id = r.run_id), "
    " CASE WHEN r.stage = 'formula' THEN r.formula_batches ELSE r.expected_batches END, "
    " r.rows_pending, r.rows_direct, "
    " r.amount_pending::text, r.amount_direct::text, "
    " p.change_seq - r.change_seq, "
    " (SELECT count(*) FROM audit_finding f WHERE f.run_id = r.run_id AND f.severity = 'error'), "
    " (SELECT count(*) FROM audit_finding f WHERE f.run_id = r.run_id AND f.severity = 'warning'), "
    " r.error, "
    " coalesce(pub.run_id = r.run_id, false), r.replaced_by "
    "FROM alloc_run r "
    "JOIN period p ON p.period_code = r.period_code "
    "LEFT JOIN report_published pub ON pub.period_code = r.period_code "
    "WHERE ($1::text IS NULL OR r.period_code = $1) AND ($2::bigint IS NULL OR r.run_id = $2) "
    "ORDER BY r.run_id DESC LIMIT $3";

/* The value of a column, NULL for SQL NULL. */
static const char *value(const PGresult *res, int row, int col) {
    return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

static long long int_value(const PGresult *res, int row, int col) {
    return PQgetisnull(res, row, col) ? 0 : strtoll(PQgetvalue(res, row, col), NULL, 10);
}

/* An amount with thousands separators, or the text as stored when it does not parse. */
static const char *amount_text(const char *text, char *buf, size_t len) {
    if (!text)
        return "-";
    return report_fmt_thousands_text(text, buf, len) < 0 ? text : buf;
}

/* 1 when the run's report (made or in the making) is older than the ledger:
 * the period changed after its snapshot. Failed and aborted runs have no report. */
static int run_stale(const PGresult *res, int row) {
    const char *st = PQgetvalue(res, row, COL_STATUS);
    return int_value(res, row, COL_CHANGES) > 0 &&
           (!strcmp(st, "succeeded") || !strcmp(st, "running"));
}

static void print_run(const PGresult *res, int row) {
    char a[REPORT_FMT_AMOUNT_MAX];
    const char *stage = value(res, row, COL_STAGE);
    printf("run %s  period %s  %s%s\n", PQgetvalue(res, row, COL_RUN_ID),
           PQgetvalue(res, row, COL_PERIOD), PQgetvalue(res, row, COL_STATUS),
           !strcmp(PQgetvalue(res, row, COL_PUBLISHED), "t") ? "  (published)" : "");
    printf("  stage     %s\n", stage ? stage : "-");
    printf("  started   %s   finished %s\n",
           value(res, row, COL_STARTED) ? value(res, row, COL_STARTED) : "-",
           value(res, row, COL_FINISHED) ? value(res, row, COL_FINISHED) : "-");
    /* "done / expected" means something while a stage is going (or stopped
     * mid-way); once the run is done only the count of markers is left. */
    if (value(res, row, COL_EXPECTED) && stage && strcmp(stage, "done") != 0)
        printf("  batches   %lld / %lld (stage %s; %lld markers in all stages)\n",
               int_value(res, row, COL_BATCHES_STAGE), int_value(res, row, COL_EXPECTED),
               stage ? stage : "-", int_value(res, row, COL_BATCHES_TOTAL));
    else
        printf("  batches   %lld markers\n", int_value(res, row, COL_BATCHES_TOTAL));
    if (value(res, row, COL_ROWS_PENDING) || value(res, row, COL_ROWS_DIRECT)) {
        printf("  pending   %s rows, amount %s\n",
               value(res, row, COL_ROWS_PENDING) ? value(res, row, COL_ROWS_PENDING) : "-",
               amount_text(value(res, row, COL_AMOUNT_PENDING), a, sizeof a));
        printf("  direct    %s rows, amount %s\n",
               value(res, row, COL_ROWS_DIRECT) ? value(res, row, COL_ROWS_DIRECT) : "-",
               amount_text(value(res, row, COL_AMOUNT_DIRECT), a, sizeof a));
    }
    printf("  findings  %lld error, %lld warning\n", int_value(res, row, COL_ERRORS),
           int_value(res, row, COL_WARNINGS));
    if (run_stale(res, row))
        printf("  report is stale: %lld changes after the snapshot\n",
               int_value(res, row, COL_CHANGES));
    if (value(res, row, COL_ERROR))
        printf("  error     %s\n", value(res, row, COL_ERROR));
    if (value(res, row, COL_REPLACED_BY))
        printf("  results   replaced by run %s (deleted when it succeeded)\n",
               value(res, row, COL_REPLACED_BY));
}

/* A JSON value of a column: an integer, a string, or null. Never NULL (a
 * failed allocation yields json_null so the caller's object stays whole). */
static json_t *json_int_col(const PGresult *res, int row, int col) {
    json_t *j = PQgetisnull(res, row, col) ? NULL : json_integer(int_value(res, row, col));
    return j ? j : json_null();
}

static json_t *json_str_col(const PGresult *res, int row, int col) {
    json_t *j = PQgetisnull(res, row, col) ? NULL : json_string(PQgetvalue(res, row, col));
    return j ? j : json_null();
}

static json_t *run_json(const PGresult *res, int row) {
    json_t *o = json_object();
    if (!o)
        return NULL;
    int failed = 0;
    failed |= json_object_set_new(o, "run_id", json_int_col(res, row, COL_RUN_ID));
    failed |= json_object_set_new(o, "period_code", json_str_col(res, row, COL_PERIOD));
    failed |= json_object_set_new(o, "status", json_str_col(res, row, COL_STATUS));
    failed |= json_object_set_new(o, "stage", json_str_col(res, row, COL_STAGE));
    failed |= json_object_set_new(o, "started_at", json_str_col(res, row, COL_STARTED));
    failed |= json_object_set_new(o, "finished_at", json_str_col(res, row, COL_FINISHED));
    failed |= json_object_set_new(o, "batches_done", json_int_col(res, row, COL_BATCHES_STAGE));
    failed |=
        json_object_set_new(o, "batches_all_stages", json_int_col(res, row, COL_BATCHES_TOTAL));
    failed |= json_object_set_new(o, "expected_batches", json_int_col(res, row, COL_EXPECTED));
    failed |= json_object_set_new(o, "rows_pending", json_int_col(res, row, COL_ROWS_PENDING));
    failed |= json_object_set_new(o, "rows_direct", json_int_col(res, row, COL_ROWS_DIRECT));
    failed |= json_object_set_new(o, "amount_pending", json_str_col(res, row, COL_AMOUNT_PENDING));
    failed |= json_object_set_new(o, "amount_direct", json_str_col(res, row, COL_AMOUNT_DIRECT));
    failed |= json_object_set_new(o, "changes_after_snapshot", json_int_col(res, row, COL_CHANGES));
    failed |= json_object_set_new(o, "stale", json_boolean(run_stale(res, row)));
    failed |= json_object_set_new(o, "findings",
                                  json_pack("{s:I,s:I}", "error",
                                            (json_int_t)int_value(res, row, COL_ERRORS), "warning",
                                            (json_int_t)int_value(res, row, COL_WARNINGS)));
    failed |= json_object_set_new(o, "error", json_str_col(res, row, COL_ERROR));
    failed |= json_object_set_new(o, "published",
                                  json_boolean(!strcmp(PQgetvalue(res, row, COL_PUBLISHED), "t")));
    failed |= json_object_set_new(o, "replaced_by", json_int_col(res, row, COL_REPLACED_BY));
    if (failed) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static int print_json(const PGresult *res) {
    json_t *arr = json_array();
    for (int row = 0; arr && row < PQntuples(res); row++) {
        if (json_array_append_new(arr, run_json(res, row)) < 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    if (!arr || json_dumpf(arr, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER) < 0) {
        json_decref(arr);
        fprintf(stderr, "alloc-producer: status: cannot build the JSON output\n");
        return ALLOC_EXIT_RUNTIME;
    }
    putchar('\n');
    json_decref(arr);
    return ALLOC_EXIT_OK;
}

/* Checks that the filter names something, then lists. Returns an exit code. */
static int status(db_conn *c, const char *period, const char *run_text, int64_t run_id, int json) {
    db_error err;
    if (period) {
        int found = review_period(c, period, 0, NULL, 0, NULL, 0, &err);
        if (found < 0)
            return cli_fail_db(&err, "status: reading the period");
        if (!found)
            return cli_refuse("status: period %s does not exist", period);
    }
    review_run_info info;
    if (run_text) {
        int found = review_run(c, run_id, &info, &err);
        if (found < 0)
            return cli_fail_db(&err, "status: reading the run");
        if (!found)
            return cli_refuse("status: run %" PRId64 " does not exist", run_id);
    }
    char limit[16];
    snprintf(limit, sizeof limit, "%d", STATUS_LIMIT);
    const char *params[] = {period, run_text, limit};
    PGresult *res = db_query(c, runs_sql, 3, params, PGRES_TUPLES_OK, &err);
    if (!res)
        return cli_fail_db(&err, "status: reading the runs");
    int rc = ALLOC_EXIT_OK;
    if (json) {
        rc = print_json(res);
    } else if (PQntuples(res) == 0) {
        if (period)
            printf("period %s has no runs\n", period);
        else
            printf("no runs\n");
    } else {
        for (int row = 0; row < PQntuples(res); row++) {
            if (row > 0)
                putchar('\n');
            print_run(res, row);
        }
    }
    PQclear(res);
    /* status --run of a run without a readable report: shown, then refused
     * (exit 4) naming the run and why (DESIGN.md 5.6) */
    char why[1024];
    if (rc == ALLOC_EXIT_OK && run_text && !review_run_readable(run_id, &info, why, sizeof why))
        rc = cli_refuse("status: %s", why);
    return rc;
}

int cmd_status(const alloc_config *cfg, int argc, char **argv) {
    if (wants_help(argc, argv)) {
        print_help();
        return ALLOC_EXIT_OK;
    }
    const char *period = NULL, *run_text = NULL;
    int json = 0;
    for (int i = 0; i < argc; i++) {
        int got = review_arg(argc, argv, &i, "--period", &period);
        if (got < 0)
            return usage_error(status_usage, "status: --period needs a value");
        if (got)
            continue;
        got = review_arg(argc, argv, &i, "--run", &run_text);
        if (got < 0)
            return usage_error(status_usage, "status: --run needs a value");
        if (got)
            continue;
        if (!strcmp(argv[i], "--json")) {
            json = 1;
            continue;
        }
        return usage_error(status_usage, "status: unknown argument '%s'", argv[i]);
    }
    if (period && run_text)
        return usage_error(status_usage, "status: give --period or --run, not both");
    if (period && !util_period_valid(period))
        return usage_error(status_usage, "status: bad period '%s' (want YYYY-MM)", period);
    int64_t run_id = 0;
    if (run_text && report_fmt_parse_id(run_text, &run_id) < 0)
        return usage_error(status_usage, "status: bad run id '%s' (want a positive integer)",
                           run_text);

    db_conn *c = cli_connect_db(cfg, "status");
    if (!c)
        return ALLOC_EXIT_RUNTIME;
    int rc = status(c, period, run_text, run_id, json);
    db_close(c);
    return rc;
}
