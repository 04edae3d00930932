/* A run's audit findings summed up per rule (see findings.h). */
#include "findings.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* Per (rule, severity): the count and the first $2 findings in key order; errors first. */
static const char summary_sql[] =
    "SELECT rule_code, severity, n, version, data_source, project_code, message FROM ("
    " SELECT f.*, count(*) OVER w AS n, row_number() OVER (w ORDER BY version COLLATE \"C\", "
    "  data_source COLLATE \"C\", project_code COLLATE \"C\", message COLLATE \"C\") AS k "
    " FROM audit_finding f WHERE run_id = $1 "
    " WINDOW w AS (PARTITION BY rule_code, severity)) x "
    "WHERE k <= $2 "
    "ORDER BY severity = 'error' DESC, rule_code COLLATE \"C\", severity, k";

static char *copy(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p)
        memcpy(p, s, n);
    return p;
}

void findings_summary_free(findings_summary *s) {
    if (!s)
        return;
    for (size_t i = 0; i < s->nrules; i++) {
        free(s->rules[i].rule_code);
        free(s->rules[i].severity);
        for (size_t l = 0; l < s->rules[i].nlines; l++)
            free(s->rules[i].lines[l]);
        free(s->rules[i].lines);
    }
    free(s->rules);
    memset(s, 0, sizeof *s);
}

int findings_summarize(db_conn *c, int64_t run_id, size_t first_lines, findings_summary *out,
                       db_error *err) {
    memset(out, 0, sizeof *out);
    char id[24], limit[24];
    snprintf(id, sizeof id, "%" PRId64, run_id);
    snprintf(limit, sizeof limit, "%zu", first_lines ? first_lines : 1);
    const char *params[] = {id, limit};
    PGresult *res = db_query(c, summary_sql, 2, params, PGRES_TUPLES_OK, err);
    if (!res)
        return -1;
    int rows = PQntuples(res);
    /* at most one rule per row */
    out->rules = calloc(rows > 0 ? (size_t)rows : 1, sizeof *out->rules);
    int oom = !out->rules;
    for (int r = 0; r < rows && !oom; r++) {
        const char *code = PQgetvalue(res, r, 0), *severity = PQgetvalue(res, r, 1);
        findings_rule *rule = out->nrules ? &out->rules[out->nrules - 1] : NULL;
        if (!rule || strcmp(rule->rule_code, code) != 0 || strcmp(rule->severity, severity) != 0) {
            rule = &out->rules[out->nrules++];
            rule->rule_code = copy(code);
            rule->severity = copy(severity);
            rule->count = strtoll(PQgetvalue(res, r, 2), NULL, 10);
            rule->lines = calloc(first_lines ? first_lines : 1, sizeof *rule->lines);
            oom = !rule->rule_code || !rule->severity || !rule->lines;
            if (!strcmp(severity, "error"))
                out->errors += rule->count;
            else
                out->warnings += rule->count;
        }
        if (oom || rule->nlines >= first_lines)
            continue;
        size_t len = strlen(PQgetvalue(res, r, 3)) + strlen(PQgetvalue(res, r, 4)) +
                     strlen(PQgetvalue(res, r, 5)) + strlen(PQgetvalue(res, r, 6)) + 8;
        char *line = malloc(len);
        if (!line) {
            oom = 1;
            continue;
        }
        snprintf(line, len, "%s %s/%s: %s", PQgetvalue(res, r, 3), PQgetvalue(res, r, 4),
                 PQgetvalue(res, r, 5), PQgetvalue(res, r, 6));
        rule->lines[rule->nlines++] = line;
    }
    PQclear(res);
    if (oom) {
        findings_summary_free(out);
        snprintf(err->sqlstate, sizeof err->sqlstate, "%s", "");
        err->conn_lost = 0;
        snprintf(err->msg, sizeof err->msg, "out of memory");
        return -1;
    }
    return 0;
}

/* A finding's line is cut after this many bytes (at a UTF-8 boundary), so the
 * section keeps within the table report's width. */
#define FINDINGS_LINE_MAX 110

static void print_cut(FILE *out, const char *line) {
    size_t n = strlen(line);
    if (n <= FINDINGS_LINE_MAX) {
        fprintf(out, "          %s\n", line);
        return;
    }
    n = FINDINGS_LINE_MAX;
    while (n > 0 && ((unsigned char)line[n] & 0xC0) == 0x80)
        n--;
    fprintf(out, "          %.*s...\n", (int)n, line);
}

void findings_print_summary(FILE *out, const findings_summary *s, int64_t run_id,
                            const char *period) {
    if (s->nrules == 0) {
        fprintf(out, "\nfindings: none\n");
        return;
    }
    fprintf(out, "\nfindings: %" PRId64 " error, %" PRId64 " warning", s->errors, s->warnings);
    fprintf(out, " (all of them: alloc-producer findings --period %s --run %" PRId64 ")\n", period,
            run_id);
    for (size_t i = 0; i < s->nrules; i++) {
        const findings_rule *r = &s->rules[i];
        fprintf(out, "  %-7s %s: %" PRId64 " finding%s\n", r->severity, r->rule_code, r->count,
                r->count == 1 ? "" : "s");
        for (size_t l = 0; l < r->nlines; l++)
            print_cut(out, r->lines[l]);
        if (r->count > (int64_t)r->nlines)
            fprintf(out, "          ... and %" PRId64 " more\n", r->count - (int64_t)r->nlines);
    }
}
