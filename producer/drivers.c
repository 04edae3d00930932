/* Driver names checked against the driver values there are (see drivers.h). */
#include "drivers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int drivers_known(db_conn *c, const char *period, driver_names *out, db_error *err) {
    memset(out, 0, sizeof *out);
    const char *params[] = {period};
    PGresult *res = db_query(c,
                             "SELECT DISTINCT driver COLLATE \"C\" FROM allocation_driver "
                             "WHERE $1::text IS NULL OR period_code = $1 ORDER BY 1",
                             1, params, PGRES_TUPLES_OK, err);
    if (!res)
        return -1;
    int rows = PQntuples(res);
    out->names = calloc(rows > 0 ? (size_t)rows : 1, sizeof *out->names);
    for (int i = 0; out->names && i < rows; i++) {
        out->names[i] = strdup(PQgetvalue(res, i, 0));
        if (!out->names[i])
            break;
        out->n++;
    }
    PQclear(res);
    if (!out->names || out->n != (size_t)rows) {
        drivers_free(out);
        snprintf(err->sqlstate, sizeof err->sqlstate, "%s", "");
        err->conn_lost = 0;
        snprintf(err->msg, sizeof err->msg, "out of memory");
        return -1;
    }
    return 0;
}

void drivers_free(driver_names *d) {
    if (!d)
        return;
    for (size_t i = 0; i < d->n; i++)
        free(d->names[i]);
    free(d->names);
    memset(d, 0, sizeof *d);
}

int drivers_has(const driver_names *d, const char *name) {
    if (!strcmp(name, "equal"))
        return 1;
    for (size_t i = 0; i < d->n; i++)
        if (!strcmp(d->names[i], name))
            return 1;
    return 0;
}

/* Optimal string alignment distance of a and b (bytes), or limit + 1 when it
 * is more than limit. Names longer than 63 bytes are never close. */
static size_t edit_distance(const char *a, const char *b, size_t limit) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63 || (la > lb ? la - lb : lb - la) > limit)
        return limit + 1;
    size_t d[64][64];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            size_t cost = a[i - 1] != b[j - 1];
            size_t best = d[i - 1][j - 1] + cost;
            if (d[i - 1][j] + 1 < best)
                best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    return d[la][lb] <= limit ? d[la][lb] : limit + 1;
}

const char *drivers_closest(const driver_names *d, const char *name) {
    const char *best = NULL;
    size_t best_edits = 3;
    for (size_t i = 0; i < d->n; i++) {
        size_t edits = edit_distance(name, d->names[i], 2);
        if (edits < best_edits && 2 * edits < strlen(name)) {
            best = d->names[i];
            best_edits = edits;
        }
    }
    return best;
}

void drivers_hint(const driver_names *d, const char *name, char *buf, size_t len) {
    const char *close = drivers_closest(d, name);
    if (close)
        snprintf(buf, len, " (did you mean %s?)", close);
    else if (len)
        buf[0] = '\0';
}

int drivers_warn_period(db_conn *c, const char *period, db_error *err) {
    const char *params[] = {period};
    PGresult *res = db_query(c,
                             "SELECT r.version, r.item_code, r.driver FROM allocation_rule r "
                             "JOIN period p ON p.ruleset = r.ruleset "
                             "JOIN report_version v ON v.version = r.version "
                             "WHERE p.period_code = $1 AND r.driver <> 'equal' "
                             "AND NOT EXISTS (SELECT 1 FROM allocation_driver d "
                             "  WHERE d.period_code = $1 AND d.driver = r.driver) "
                             "ORDER BY r.version COLLATE \"C\", r.item_code COLLATE \"C\"",
                             1, params, PGRES_TUPLES_OK, err);
    if (!res)
        return -1;
    int rows = PQntuples(res);
    driver_names known = {0};
    if (rows > 0 && drivers_known(c, period, &known, err) < 0) {
        PQclear(res);
        return -1;
    }
    for (int i = 0; i < rows; i++) {
        const char *driver = PQgetvalue(res, i, 2);
        char hint[160];
        drivers_hint(&known, driver, hint, sizeof hint);
        fprintf(stderr,
                "alloc-producer: run: warning: allocation rule %s/%s: driver %s has no value in "
                "period %s%s; the pending rows it allocates go to #UNALLOCATED\n",
                PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), driver, period, hint);
    }
    PQclear(res);
    drivers_free(&known);
    return rows;
}
