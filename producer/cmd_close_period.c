/* alloc-producer close-period: closes a period so that its ledger rows can no
 * longer change (the ledger_entry triggers of schemas/001_init.sql refuse
 * them). Refused while a run of the period is going. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "cli.h"
#include "commands.h"
#include "db.h"
#include "review.h"
#include "util.h"

static const char close_usage[] = "alloc-producer close-period --period P [--force]";

static void print_help(void) {
    printf("usage: %s\n\n"
           "Closes period P: sets its status to 'closed' and closed_at to now. From then\n"
           "on any insert, update or delete of its ledger rows fails, and it cannot be\n"
           "published again. Refused while a run of P is running, and when P has no\n"
           "published run (a closed period keeps its published report for good) unless\n"
           "--force. The period row is locked first, so a run starting, a publish or a\n"
           "ledger change committing at the same moment is either seen here (and\n"
           "refused or waited for) or sees the period closed.\n\n"
           "  --period P   the period, YYYY-MM (required)\n"
           "  --force      close it even though no run of it is published\n\n"
           "Exit status: 0 closed, 2 bad arguments, 4 refused (unknown period, already\n"
           "closed, a run is running, no published run without --force), 1 any other\n"
           "failure.\n\n%s",
           close_usage, config_flags_help());
}

/* The close, inside the open transaction; returns an exit code. On
 * ALLOC_EXIT_OK the caller commits, then prints msg. */
static int close_period(db_conn *c, const char *period, int force, char *msg, size_t msglen) {
    db_error err;
    const char *params[] = {period};
    /* FOR UPDATE waits for uncommitted ledger changes and run starts (whose
     * alloc_run foreign key holds a key-share lock on this row) and makes
     * later ones wait for this transaction. */
    PGresult *res = db_query(c,
                             "SELECT status, to_char(closed_at AT TIME ZONE 'UTC', "
                             "'YYYY-MM-DD HH24:MI:SS \"UTC\"') "
                             "FROM period WHERE period_code = $1 FOR UPDATE",
                             1, params, PGRES_TUPLES_OK, &err);
    if (!res)
        return cli_fail_db(&err, "close-period: locking the period");
    if (PQntuples(res) == 0) {
        PQclear(res);
        return cli_refuse("close-period: period %s does not exist", period);
    }
    if (strcmp(PQgetvalue(res, 0, 0), "closed") == 0) {
        int rc = cli_refuse("close-period: period %s is already closed (since %s)", period,
                            PQgetisnull(res, 0, 1) ? "an unknown time" : PQgetvalue(res, 0, 1));
        PQclear(res);
        return rc;
    }
    PQclear(res);

    int64_t running = 0;
    int found = db_query_int64(c,
                               "SELECT min(run_id) FROM alloc_run "
                               "WHERE period_code = $1 AND status = 'running'",
                               1, params, &running, &err);
    if (found < 0)
        return cli_fail_db(&err, "close-period: looking for running runs");
    if (found)
        return cli_refuse("close-period: period %s has run %" PRId64
                          " running; wait for it to finish or abort it",
                          period, running);

    int64_t published = 0;
    found = review_published(c, period, &published, &err);
    if (found < 0)
        return cli_fail_db(&err, "close-period: reading report_published");
    if (!found && !force)
        return cli_refuse("close-period: period %s has no published run: publish one first "
                          "(alloc-producer publish --period %s) or close it with --force",
                          period, period);

    if (db_exec_params(c,
                       "UPDATE period SET status = 'closed', closed_at = now() "
                       "WHERE period_code = $1",
                       1, params, &err) < 0)
        return cli_fail_db(&err, "close-period: closing the period");
    char published_text[24];
    snprintf(published_text, sizeof published_text, "%" PRId64, published);
    const char *log_params[] = {period, found ? published_text : NULL, force ? "true" : "false"};
    if (db_exec_params(c,
                       "INSERT INTO run_log (run_id, event, detail) VALUES "
                       "($2::bigint, 'period_closed', jsonb_build_object('period', $1::text, "
                       "'forced', $3::boolean))",
                       3, log_params, &err) < 0)
        return cli_fail_db(&err, "close-period: writing run_log");

    if (found)
        snprintf(msg, msglen, "closed period %s (published report: run %" PRId64 ")", period,
                 published);
    else
        snprintf(msg, msglen, "closed period %s (no report was published: --force)", period);
    return ALLOC_EXIT_OK;
}

int cmd_close_period(const alloc_config *cfg, int argc, char **argv) {
    if (wants_help(argc, argv)) {
        print_help();
        return ALLOC_EXIT_OK;
    }
    const char *period = NULL;
    int force = 0;
    for (int i = 0; i < argc; i++) {
        int got = review_arg(argc, argv, &i, "--period", &period);
        if (got < 0)
            return usage_error(close_usage, "close-period: --period needs a value");
        if (got)
            continue;
        if (!strcmp(argv[i], "--force")) {
            force = 1;
            continue;
        }
        return usage_error(close_usage, "close-period: unknown argument '%s'", argv[i]);
    }
    if (!period)
        return usage_error(close_usage, "close-period: --period is required");
    if (!util_period_valid(period))
        return usage_error(close_usage, "close-period: bad period '%s' (want YYYY-MM)", period);

    db_conn *c = cli_connect_db(cfg, "close-period");
    if (!c)
        return ALLOC_EXIT_RUNTIME;
    db_error err;
    int rc;
    char msg[256] = "";
    if (db_begin(c, NULL, &err) < 0) {
        rc = cli_fail_db(&err, "close-period: starting the transaction");
    } else {
        rc = close_period(c, period, force, msg, sizeof msg);
        if (rc == ALLOC_EXIT_OK) {
            if (db_commit(c, &err) < 0)
                rc = cli_fail_db(&err, "close-period: committing");
        } else {
            db_rollback(c, NULL);
        }
    }
    if (rc == ALLOC_EXIT_OK)
        printf("%s\n", msg);
    db_close(c);
    return rc;
}
