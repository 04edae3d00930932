/* alloc-producer findings: the audit findings of a run (DESIGN.md 5.3, 5.5) as a
 * table, CSV or JSON. The run is chosen as `report` chooses it (review.h
 * review_choose_run), in one REPEATABLE READ snapshot; the rows are streamed. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "cli.h"
#include "commands.h"
#include "db.h"
#include "findings.h"
#include "report_fmt.h"
#include "review.h"
#include "util.h"

static const char findings_usage[] = "alloc-producer findings --period P [--run ID] "
                                     "[--severity error|warning] [--format table|csv|json]";

typedef enum { FINDINGS_TABLE, FINDINGS_CSV, FINDINGS_JSON } findings_format;

static void print_help(void) {
    printf("usage: %s\n\n"
           "Lists the audit findings of a run: the audit rules whose value was 0 or NULL\n"
           "for a (version, data source, project), and the `unallocated` warnings of\n"
           "pending rows that found no target. The run is the one `report` reads: the\n"
           "published run of P, else its latest succeeded run; --run ID picks one.\n\n"
           "  --period P          the period, YYYY-MM (required)\n"
           "  --run ID            this run (it must belong to P, have succeeded and still\n"
           "                      have its results)\n"
           "  --severity S        only findings of severity S (error or warning)\n"
           "  --format F          table (default): a count per rule, then one line per\n"
           "                      finding (errors first, by rule, version, data source,\n"
           "                      project); csv: header version,data_source,project_code,\n"
           "                      rule_code,severity,message; json: an array of objects\n"
           "                      with those keys\n\n"
           "Exit status: 0 listed (also when there are none), 2 bad arguments, 4 unknown\n"
           "period or run, no succeeded run, or --run of a run that is running, failed,\n"
           "aborted or replaced (the line says which and why), 1 any other failure.\n\n%s",
           findings_usage, config_flags_help());
}

static const char rows_sql[] =
    "SELECT version, data_source, project_code, rule_code, severity, message "
    "FROM audit_finding WHERE run_id = $1 AND ($2::text IS NULL OR severity = $2) "
    "ORDER BY severity = 'error' DESC, rule_code COLLATE \"C\", version COLLATE \"C\", "
    "data_source COLLATE \"C\", project_code COLLATE \"C\", message COLLATE \"C\"";

static const char *const keys[] = {"version",   "data_source", "project_code",
                                   "rule_code", "severity",    "message"};

static void print_row(db_stream *s, findings_format format, int64_t n) {
    if (format == FINDINGS_CSV) {
        for (int col = 0; col < 6; col++) {
            if (col)
                putchar(',');
            report_fmt_csv_field(stdout, db_stream_get(s, col));
        }
        putchar('\n');
    } else if (format == FINDINGS_JSON) {
        fputs(n == 0 ? "\n  {" : ",\n  {", stdout);
        for (int col = 0; col < 6; col++) {
            printf("%s\"%s\": ", col ? ", " : "", keys[col]);
            report_fmt_json_string(stdout, db_stream_get(s, col));
        }
        putchar('}');
    } else {
        printf("%-8s  %-20s  %-3s  %-10s  %-14s  %s\n", db_stream_get(s, 4), db_stream_get(s, 3),
               db_stream_get(s, 0), db_stream_get(s, 1), db_stream_get(s, 2), db_stream_get(s, 5));
    }
}

/* The table's head: whose findings, and a count per rule. */
static int print_head(db_conn *c, const char *period, int64_t run_id, const char *how,
                      const char *severity) {
    findings_summary sum;
    db_error err;
    if (findings_summarize(c, run_id, 0, &sum, &err) < 0)
        return cli_fail_db(&err, "findings: reading the findings");
    printf("findings of period %s, run %" PRId64 " (%s): %" PRId64 " error, %" PRId64 " warning\n",
           period, run_id, how, sum.errors, sum.warnings);
    for (size_t i = 0; i < sum.nrules; i++)
        if (!severity || !strcmp(severity, sum.rules[i].severity))
            printf("  %-8s  %-20s  %" PRId64 "\n", sum.rules[i].severity, sum.rules[i].rule_code,
                   sum.rules[i].count);
    findings_summary_free(&sum);
    return ALLOC_EXIT_OK;
}

static int list_findings(db_conn *c, const char *period, int64_t run_arg, const char *severity,
                         findings_format format) {
    db_error err;
    int found = review_period(c, period, 0, NULL, 0, NULL, 0, &err);
    if (found < 0)
        return cli_fail_db(&err, "findings: reading the period");
    if (!found)
        return cli_refuse("findings: period %s does not exist", period);
    int64_t run_id = 0;
    const char *how = NULL;
    int rc = review_choose_run(c, "findings", period, run_arg, &run_id, &how);
    if (rc != ALLOC_EXIT_OK)
        return rc;
    if (format == FINDINGS_TABLE && (rc = print_head(c, period, run_id, how, severity)) != 0)
        return rc;

    char id[24];
    snprintf(id, sizeof id, "%" PRId64, run_id);
    const char *params[] = {id, severity};
    db_stream *s = db_stream_open(c, rows_sql, 2, params, &err);
    if (!s)
        return cli_fail_db(&err, "findings: reading audit_finding");
    if (format == FINDINGS_CSV)
        puts("version,data_source,project_code,rule_code,severity,message");
    else if (format == FINDINGS_JSON)
        putchar('[');
    int64_t n = 0;
    int more;
    while ((more = db_stream_next(s, &err)) == 1) {
        if (n == 0 && format == FINDINGS_TABLE)
            printf("\n%-8s  %-20s  %-3s  %-10s  %-14s  %s\n", "severity", "rule", "ver", "source",
                   "project", "message");
        print_row(s, format, n++);
    }
    db_stream_close(s);
    if (more < 0)
        return cli_fail_db(&err, "findings: reading audit_finding");
    if (format == FINDINGS_JSON)
        fputs(n > 0 ? "\n]\n" : "]\n", stdout);
    return ALLOC_EXIT_OK;
}

int cmd_findings(const alloc_config *cfg, int argc, char **argv) {
    if (wants_help(argc, argv)) {
        print_help();
        return ALLOC_EXIT_OK;
    }
    const char *period = NULL, *run_text = NULL, *severity = NULL, *format_text = NULL;
    static const char *const valued[] = {"--period", "--run", "--severity", "--format"};
    const char **slots[] = {&period, &run_text, &severity, &format_text};
    for (int i = 0; i < argc; i++) {
        int got = 0;
        size_t k = 0;
        for (; k < sizeof valued / sizeof valued[0]; k++)
            if ((got = review_arg(argc, argv, &i, valued[k], slots[k])) != 0)
                break;
        if (got < 0)
            return usage_error(findings_usage, "findings: %s needs a value", valued[k]);
        if (!got)
            return usage_error(findings_usage, "findings: unknown argument '%s'", argv[i]);
    }
    if (!period)
        return usage_error(findings_usage, "findings: --period is required");
    if (!util_period_valid(period))
        return usage_error(findings_usage, "findings: bad period '%s' (want YYYY-MM)", period);
    int64_t run_arg = 0;
    if (run_text && report_fmt_parse_id(run_text, &run_arg) < 0)
        return usage_error(findings_usage, "findings: bad run id '%s' (want a positive integer)",
                           run_text);
    if (severity && strcmp(severity, "error") != 0 && strcmp(severity, "warning") != 0)
        return usage_error(findings_usage, "findings: bad severity '%s' (want error or warning)",
                           severity);
    findings_format format = FINDINGS_TABLE;
    if (format_text) {
        if (!strcmp(format_text, "csv"))
            format = FINDINGS_CSV;
        else if (!strcmp(format_text, "json"))
            format = FINDINGS_JSON;
        else if (strcmp(format_text, "table") != 0)
            return usage_error(findings_usage,
                               "findings: bad format '%s' (want table, csv or json)", format_text);
    }

    db_conn *c = cli_connect_db(cfg, "findings");
    if (!c)
        return ALLOC_EXIT_RUNTIME;
    db_error err;
    int rc;
    if (db_begin(c, "REPEATABLE READ READ ONLY", &err) < 0)
        rc = cli_fail_db(&err, "findings: starting the read transaction");
    else
        rc = list_findings(c, period, run_arg, severity, format);
    db_rollback(c, NULL);
    db_close(c);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "alloc-producer: findings: writing the output: %s\n", strerror(errno));
        return ALLOC_EXIT_RUNTIME;
    }
    return rc;
}
