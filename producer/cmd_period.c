/* alloc-producer period: opens a period (the row of `period` every import and
 * run of it needs, bound to a ruleset) and lists the periods with their
 * latest and published runs. */
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

static const char period_usage[] = "alloc-producer period open P --ruleset R\n"
                                   "       alloc-producer period list [--json]";

static void print_help(void) {
    printf("usage: %s\n\n"
           "  open P --ruleset R   creates period P (YYYY-MM), open, bound to ruleset R\n"
           "                       (a ruleset imported with `import --kind ruleset`).\n"
           "                       Ledger rows and driver values can then be imported\n"
           "                       into P and P can be run.\n"
           "  list [--json]        lists the periods, newest first: status, ruleset,\n"
           "                       ledger changes (change_seq), when closed, the latest\n"
           "                       run and its status, the published run. --json: an\n"
           "                       array of objects with those keys.\n\n"
           "Exit status: 0 done, 2 bad arguments, 4 refused (period P exists already,\n"
           "or ruleset R is unknown: no report item has it), 1 any other failure.\n\n%s",
           period_usage, config_flags_help());
}

/* Creates the period in one transaction: the ruleset must have report items
 * and the period must not exist. Returns an exit code. */
static int period_open(db_conn *c, const char *period, const char *ruleset) {
    db_error err;
    if (db_begin(c, NULL, &err) < 0)
        return cli_fail_db(&err, "period: starting the transaction");
    const char *rs[] = {ruleset};
    int64_t items = 0;
    if (db_query_int64(c, "SELECT count(*) FROM report_item WHERE ruleset = $1", 1, rs, &items,
                       &err) < 0) {
        db_rollback(c, NULL);
        return cli_fail_db(&err, "period: reading the ruleset");
    }
    if (items == 0) {
        db_rollback(c, NULL);
        return cli_refuse("period: ruleset %s is unknown: no report item has it (import it first: "
                          "alloc-producer import --kind ruleset --file R.json)",
                          ruleset);
    }
    const char *params[] = {period, ruleset};
    int64_t n = db_exec_params(c,
                               "INSERT INTO period (period_code, ruleset) VALUES ($1, $2) "
                               "ON CONFLICT (period_code) DO NOTHING",
                               2, params, &err);
    if (n < 0) {
        db_rollback(c, NULL);
        return cli_fail_db(&err, "period: creating the period");
    }
    if (n == 0) {
        char status[32] = "", existing[256] = "";
        int found =
            review_period(c, period, 0, status, sizeof status, existing, sizeof existing, &err);
        db_rollback(c, NULL);
        if (found < 0)
            return cli_fail_db(&err, "period: reading the period");
        return cli_refuse("period: period %s exists already (%s, ruleset %s)", period, status,
                          existing);
    }
    if (db_commit(c, &err) < 0)
        return cli_fail_db(&err, "period: committing");
    printf("period %s opened with ruleset %s (%lld report items)\n", period, ruleset,
           (long long)items);
    return ALLOC_EXIT_OK;
}

enum {
    COL_PERIOD,
    COL_RULESET,
    COL_STATUS,
    COL_CHANGES,
    COL_CLOSED,
    COL_LATEST,
    COL_LATEST_STATUS,
    COL_PUBLISHED
};

static const char list_sql[] =
    "SELECT p.period_code, p.ruleset, p.status, p.change_seq, "
    " to_char(p.closed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
    " r.run_id, r.status, pub.run_id "
    "FROM period p "
    "LEFT JOIN LATERAL (SELECT run_id, status FROM alloc_run a WHERE a.period_code = "
    "  p.period_code ORDER BY run_id DESC LIMIT 1) r ON true "
    "LEFT JOIN report_published pub ON pub.period_code = p.period_code "
    "ORDER BY p.period_code DESC";

static json_t *json_col(const PGresult *res, int row, int col, int integer) {
    json_t *j = NULL;
    if (!PQgetisnull(res, row, col))
        j = integer ? json_integer(strtoll(PQgetvalue(res, row, col), NULL, 10))
                    : json_string(PQgetvalue(res, row, col));
    return j ? j : json_null();
}

static int print_json(const PGresult *res) {
    static const struct {
        const char *key;
        int col, integer;
    } keys[] = {{"period_code", COL_PERIOD, 0},
                {"ruleset", COL_RULESET, 0},
                {"status", COL_STATUS, 0},
                {"change_seq", COL_CHANGES, 1},
                {"closed_at", COL_CLOSED, 0},
                {"latest_run", COL_LATEST, 1},
                {"latest_run_status", COL_LATEST_STATUS, 0},
                {"published_run", COL_PUBLISHED, 1}};
    json_t *arr = json_array();
    for (int row = 0; arr && row < PQntuples(res); row++) {
        json_t *o = json_object();
        int failed = !o;
        for (size_t k = 0; o && k < sizeof keys / sizeof keys[0]; k++)
            failed |= json_object_set_new(o, keys[k].key,
                                          json_col(res, row, keys[k].col, keys[k].integer));
        if (failed || json_array_append_new(arr, o) < 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    if (!arr || json_dumpf(arr, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER) < 0) {
        json_decref(arr);
        fprintf(stderr, "alloc-producer: period: cannot build the JSON output\n");
        return ALLOC_EXIT_RUNTIME;
    }
    putchar('\n');
    json_decref(arr);
    return ALLOC_EXIT_OK;
}

static const char *or_dash(const PGresult *res, int row, int col) {
    return PQgetisnull(res, row, col) ? "-" : PQgetvalue(res, row, col);
}

static int period_list(db_conn *c, int json) {
    db_error err;
    PGresult *res = db_query(c, list_sql, 0, NULL, PGRES_TUPLES_OK, &err);
    if (!res)
        return cli_fail_db(&err, "period: reading the periods");
    int rc = ALLOC_EXIT_OK;
    if (json) {
        rc = print_json(res);
    } else if (PQntuples(res) == 0) {
        printf("no periods (alloc-producer period open P --ruleset R creates one)\n");
    } else {
        printf("%-8s %-7s %-16s %10s %-21s %-22s %s\n", "period", "status", "ruleset", "changes",
               "closed", "latest run", "published");
        for (int row = 0; row < PQntuples(res); row++) {
            char latest[64] = "-";
            if (!PQgetisnull(res, row, COL_LATEST))
                snprintf(latest, sizeof latest, "%s (%s)", PQgetvalue(res, row, COL_LATEST),
                         PQgetvalue(res, row, COL_LATEST_STATUS));
            printf("%-8s %-7s %-16s %10s %-21s %-22s %s\n", PQgetvalue(res, row, COL_PERIOD),
                   PQgetvalue(res, row, COL_STATUS), PQgetvalue(res, row, COL_RULESET),
                   PQgetvalue(res, row, COL_CHANGES), or_dash(res, row, COL_CLOSED), latest,
                   or_dash(res, row, COL_PUBLISHED));
        }
    }
    PQclear(res);
    return rc;
}

int cmd_period(const alloc_config *cfg, int argc, char **argv) {
    if (wants_help(argc, argv)) {
        print_help();
        return ALLOC_EXIT_OK;
    }
    if (argc < 1)
        return usage_error(period_usage, "period: open or list is required");
    const char *sub = argv[0];
    const char *period = NULL, *ruleset = NULL;
    int json = 0;
    if (!strcmp(sub, "open")) {
        for (int i = 1; i < argc; i++) {
            int got = review_arg(argc, argv, &i, "--ruleset", &ruleset);
            if (got < 0)
                return usage_error(period_usage, "period open: --ruleset needs a value");
            if (got)
                continue;
            if (argv[i][0] == '-' || period)
                return usage_error(period_usage, "period open: unknown argument '%s'", argv[i]);
            period = argv[i];
        }
        if (!period)
            return usage_error(period_usage, "period open: the period P is required");
        if (!util_period_valid(period))
            return usage_error(period_usage, "period open: bad period '%s' (want YYYY-MM)", period);
        if (!ruleset || !*ruleset)
            return usage_error(period_usage, "period open: --ruleset is required");
    } else if (!strcmp(sub, "list")) {
        for (int i = 1; i < argc; i++) {
            if (!strcmp(argv[i], "--json") && !json)
                json = 1;
            else
                return usage_error(period_usage, "period list: unknown argument '%s'", argv[i]);
        }
    } else {
        return usage_error(period_usage, "period: unknown subcommand '%s' (want open or list)",
                           sub);
    }
    db_conn *c = cli_connect_db(cfg, "period");
    if (!c)
        return ALLOC_EXIT_RUNTIME;
    int rc = period ? period_open(c, period, ruleset) : period_list(c, json);
    db_close(c);
    return rc;
}
