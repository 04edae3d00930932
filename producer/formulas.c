/* Compiling a ruleset's formulas and audit rules read from PostgreSQL. */
#include "formulas.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void formulas_free(formulas *f) {
    if (!f)
        return;
    fx_ruleset_free(f->rs);
    free(f->bytes);
    free(f->audits);
    memset(f, 0, sizeof *f);
}

int formulas_compile(db_conn *db, const char *ruleset, formulas *out) {
    memset(out, 0, sizeof *out);
    const char *p[] = {ruleset};
    db_error e;
    PGresult *items = db_query(db,
                               "SELECT item_code, kind = 'formula', coalesce(formula, '') "
                               "FROM report_item WHERE ruleset = $1 "
                               "ORDER BY sort_order, item_code COLLATE \"C\"",
                               1, p, PGRES_TUPLES_OK, &e);
    PGresult *rules = items ? db_query(db,
                                       "SELECT rule_code, expr, severity, message FROM audit_rule "
                                       "WHERE ruleset = $1 ORDER BY rule_code COLLATE \"C\"",
                                       1, p, PGRES_TUPLES_OK, &e)
                            : NULL;
    if (!items || !rules) {
        fprintf(stderr, "alloc-producer: read ruleset %s: %s\n", ruleset, e.msg);
        if (items)
            PQclear(items);
        return -1;
    }
    int rc = -1;
    json_t *audits = json_array();
    out->rs = fx_ruleset_new();
    if (!out->rs || !audits)
        goto oom;
    for (int i = 0; i < PQntuples(items); i++)
        if (fx_ruleset_add_item(out->rs, PQgetvalue(items, i, 0),
                                !strcmp(PQgetvalue(items, i, 1), "t"),
                                PQgetvalue(items, i, 2)) != 0)
            goto oom;
    for (int i = 0; i < PQntuples(rules); i++) {
        if (fx_ruleset_add_audit(out->rs, PQgetvalue(rules, i, 0), PQgetvalue(rules, i, 1)) != 0)
            goto oom;
        json_array_append_new(audits, json_pack("[sss]", PQgetvalue(rules, i, 0),
                                                PQgetvalue(rules, i, 2), PQgetvalue(rules, i, 3)));
    }
    char err[512];
    int errors = fx_ruleset_compile(out->rs, err, sizeof err);
    if (errors < 0) {
        fprintf(stderr, "alloc-producer: compile ruleset %s: %s\n", ruleset, err);
        goto done;
    }
    if (errors > 0) {
        for (size_t i = 0; i < fx_ruleset_error_count(out->rs); i++)
            fprintf(stderr, "alloc-producer: %s %s: %s\n",
                    fx_ruleset_error(out->rs, i)->source == FX_ERROR_AUDIT ? "audit rule"
                                                                           : "formula",
                    ruleset, fx_ruleset_error(out->rs, i)->text);
        rc = errors;
        goto done;
    }
    if (fx_ruleset_serialize(out->rs, &out->bytes, &out->len) != 0)
        goto oom;
    out->audits = json_dumps(audits, JSON_COMPACT);
    if (!out->audits)
        goto oom;
    rc = 0;
    goto done;
oom:
    fprintf(stderr, "alloc-producer: compile ruleset %s: out of memory\n", ruleset);
done:
    json_decref(audits);
    PQclear(items);
    PQclear(rules);
    if (rc != 0)
        formulas_free(out);
    return rc;
}

/* (sort_order, code) in byte order: the ORDER BY of formulas_compile. */
static int entry_cmp_item(const void *a, const void *b) {
    const formulas_entry *x = *(const formulas_entry *const *)a,
                         *y = *(const formulas_entry *const *)b;
    if (x->sort_order != y->sort_order)
        return x->sort_order < y->sort_order ? -1 : 1;
    return strcmp(x->code, y->code);
}

static int entry_cmp_rule(const void *a, const void *b) {
    const formulas_entry *x = *(const formulas_entry *const *)a,
                         *y = *(const formulas_entry *const *)b;
    return strcmp(x->code, y->code);
}

fx_ruleset *formulas_compile_mem(const formulas_entry *items, size_t nitems,
                                 const formulas_entry *rules, size_t nrules, int *errors) {
    size_t n = nitems > nrules ? nitems : nrules;
    const formulas_entry **order = malloc((n ? n : 1) * sizeof *order);
    fx_ruleset *rs = fx_ruleset_new();
    if (!order || !rs)
        goto oom;
    for (size_t i = 0; i < nitems; i++)
        order[i] = &items[i];
    qsort(order, nitems, sizeof *order, entry_cmp_item);
    for (size_t i = 0; i < nitems; i++)
        if (fx_ruleset_add_item(rs, order[i]->code, order[i]->is_formula != 0,
                                order[i]->text ? order[i]->text : "") != 0)
            goto oom;
    for (size_t i = 0; i < nrules; i++)
        order[i] = &rules[i];
    qsort(order, nrules, sizeof *order, entry_cmp_rule);
    for (size_t i = 0; i < nrules; i++)
        if (fx_ruleset_add_audit(rs, order[i]->code, order[i]->text ? order[i]->text : "") != 0)
            goto oom;
    int e = fx_ruleset_compile(rs, NULL, 0);
    if (e < 0)
        goto oom;
    if (errors)
        *errors = e;
    free(order);
    return rs;
oom:
    free(order);
    fx_ruleset_free(rs);
    return NULL;
}
