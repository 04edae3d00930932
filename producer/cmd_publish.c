/* alloc-producer publish: makes a succeeded run the published report of its
 * period (report_published), refusing while the run has error findings unless
 * forced. The switch is one transaction: readers of report_current see the old
 * run or the new one, never a mix. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "cli.h"
#include "commands.h"
#include "db.h"
#include "report_fmt.h"
#include "review.h"
#include "util.h"

static const char publish_usage[] = "alloc-producer publish --period P [--run ID] [--force]";

static void print_help(void) {
    printf("usage: %s\n\n"
           "Publishes a run as the report of period P: its latest succeeded run, or run ID.\n"
           "The run must belong to P and have succeeded with its results in place (not\n"
           "replaced by a later run's success), and the period must be open.\n"
           "A run with audit findings of severity 'error' is refused unless --force.\n"
           "The previously published run stays readable until this switch, which is\n"
           "atomic; a run_log row 'published' records it. Publishing the run that is\n"
           "already published changes nothing.\n\n"
           "  --period P   the period, YYYY-MM (required)\n"
           "  --run ID     the run to publish (default: the latest succeeded run of P)\n"
           "  --force      publish even when the run has error findings\n\n"
           "Exit status: 0 published, 2 bad arguments, 4 refused (unknown or closed\n"
           "period, unknown run, run of another period, not succeeded or replaced, no\n"
           "succeeded run, error findings without --force), 1 any other failure.\n\n%s",
           publish_usage, config_flags_help());
}

/* The publication, inside the open transaction; returns an exit code. On
 * ALLOC_EXIT_OK the caller commits when *changed, then prints msg. */
static int publish(db_conn *c, const char *period, int64_t run_arg, int force, int *changed,
                   char *msg, size_t msglen) {
    db_error err;
    char status[32];
    /* The period row lock orders this against close-period and other publishes. */
    int found = review_period(c, period, 1, status, sizeof status, NULL, 0, &err);
    if (found < 0)
        return cli_fail_db(&err, "publish: locking the period");
    if (!found)
        return cli_refuse("publish: period %s does not exist", period);
    if (strcmp(status, "closed") == 0)
        return cli_refuse("publish: period %s is closed: its published report cannot change",
                          period);

    /* the run: --run, else the latest succeeded run whose results were not
     * replaced; either must be succeeded with its results in place */
    int64_t run_id = run_arg;
    if (run_arg) {
        review_run_info info;
        char why[1024];
        found = review_run(c, run_arg, &info, &err);
        if (found < 0)
            return cli_fail_db(&err, "publish: reading the run");
        if (!found)
            return cli_refuse("publish: run %" PRId64 " does not exist", run_arg);
        if (strcmp(info.period, period) != 0)
            return cli_refuse("publish: run %" PRId64 " belongs to period %s, not %s", run_arg,
                              info.period, period);
        if (!review_run_readable(run_arg, &info, why, sizeof why))
            return cli_refuse("publish: %s", why);
    } else {
        found = review_latest_succeeded(c, period, &run_id, &err);
        if (found < 0)
            return cli_fail_db(&err, "publish: looking for the latest succeeded run");
        if (!found)
            return cli_refuse("publish: period %s has no succeeded run", period);
    }

    char id[24];
    snprintf(id, sizeof id, "%" PRId64, run_id);
    const char *id_param[] = {id};
    int64_t errors = 0;
    if (db_query_int64(
            c, "SELECT count(*) FROM audit_finding WHERE run_id = $1 AND severity = 'error'", 1,
            id_param, &errors, &err) < 0)
        return cli_fail_db(&err, "publish: counting the run's error findings");
    if (errors > 0 && !force)
        return cli_refuse("publish: run %" PRId64 " of period %s has %" PRId64
                          " error finding%s; review them (alloc-producer findings --period "
                          "%s --run %" PRId64 ") or publish with --force",
                          run_id, period, errors, errors == 1 ? "" : "s", period, run_id);

    int64_t previous = 0;
    found = review_published(c, period, &previous, &err);
    if (found < 0)
        return cli_fail_db(&err, "publish: reading report_published");
    if (found && previous == run_id) {
        snprintf(msg, msglen, "run %" PRId64 " is already the published report of period %s",
                 run_id, period);
        return ALLOC_EXIT_OK;
    }

    const char *pub_params[] = {period, id};
    if (db_exec_params(c,
                       "INSERT INTO report_published (period_code, run_id, published_at) "
                       "VALUES ($1, $2, now()) ON CONFLICT (period_code) DO UPDATE "
                       "SET run_id = EXCLUDED.run_id, published_at = EXCLUDED.published_at",
                       2, pub_params, &err) < 0)
        return cli_fail_db(&err, "publish: switching report_published");

    char prev_text[24], errors_text[24];
    snprintf(prev_text, sizeof prev_text, "%" PRId64, previous);
    snprintf(errors_text, sizeof errors_text, "%" PRId64, errors);
    const char *log_params[] = {id, period, found ? prev_text : NULL, force ? "true" : "false",
                                errors_text};
    if (db_exec_params(c,
                       "INSERT INTO run_log (run_id, event, detail) VALUES ($1, 'published', "
                       "jsonb_build_object('period', $2::text, 'previous_run', $3::bigint, "
                       "'forced', $4::boolean, 'error_findings', $5::bigint))",
                       5, log_params, &err) < 0)
        return cli_fail_db(&err, "publish: writing run_log");
    *changed = 1;

    size_t n = (size_t)snprintf(msg, msglen, "published run %" PRId64 " as the report of period %s",
                                run_id, period);
    if (found && n < msglen)
        n += (size_t)snprintf(msg + n, msglen - n, " (replacing run %" PRId64 ")", previous);
    if (errors > 0 && n < msglen)
        snprintf(msg + n, msglen - n, " despite %" PRId64 " error finding%s (--force)", errors,
                 errors == 1 ? "" : "s");
    return ALLOC_EXIT_OK;
}

int cmd_publish(const alloc_config *cfg, int argc, char **argv) {
    if (wants_help(argc, argv)) {
        print_help();
        return ALLOC_EXIT_OK;
    }
    const char *period = NULL, *run_text = NULL;
    int force = 0;
    for (int i = 0; i < argc; i++) {
        int got = review_arg(argc, argv, &i, "--period", &period);
        if (got < 0)
            return usage_error(publish_usage, "publish: --period needs a value");
        if (got)
            continue;
        got = review_arg(argc, argv, &i, "--run", &run_text);
        if (got < 0)
            return usage_error(publish_usage, "publish: --run needs a value");
        if (got)
            continue;
        if (!strcmp(argv[i], "--force")) {
            force = 1;
            continue;
        }
        return usage_error(publish_usage, "publish: unknown argument '%s'", argv[i]);
    }
    if (!period)
        return usage_error(publish_usage, "publish: --period is required");
    if (!util_period_valid(period))
        return usage_error(publish_usage, "publish: bad period '%s' (want YYYY-MM)", period);
    int64_t run_id = 0;
    if (run_text && report_fmt_parse_id(run_text, &run_id) < 0)
        return usage_error(publish_usage, "publish: bad run id '%s' (want a positive integer)",
                           run_text);

    db_conn *c = cli_connect_db(cfg, "publish");
    if (!c)
        return ALLOC_EXIT_RUNTIME;
    db_error err;
    int rc;
    if (db_begin(c, NULL, &err) < 0) {
        rc = cli_fail_db(&err, "publish: starting the transaction");
    } else {
        int changed = 0;
        char msg[256] = "";
        rc = publish(c, period, run_id, force, &changed, msg, sizeof msg);
        if (rc == ALLOC_EXIT_OK && changed) {
            if (db_commit(c, &err) < 0)
                rc = cli_fail_db(&err, "publish: committing");
        } else {
            db_rollback(c, NULL);
        }
        if (rc == ALLOC_EXIT_OK)
            printf("%s\n", msg);
    }
    db_close(c);
    return rc;
}
