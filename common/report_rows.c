/* Writing report rows and audit findings (see report_rows.h). */
#include "report_rows.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void key_fields(db_conn *db, const report_vector *v) {
    db_copy_field_text(db, v->run_id);
    db_copy_field_text(db, v->version);
    db_copy_field_text(db, v->data_source);
    db_copy_field_text(db, v->project_code);
}

int report_rows_base(db_conn *db, const report_vector *v, const char *item_code, int64_t cents,
                     db_error *e) {
    key_fields(db, v);
    db_copy_field_text(db, item_code);
    db_copy_field_cents(db, cents);
    return db_copy_row_end(db, e);
}

/* Evaluates the vector's formulas and audit rules; sets failed[a] for each
 * audit rule whose value is 0 or NULL. 0, or -1 with e. */
static int eval_vector(const report_vector *v, const fx_ruleset *rs, fx_value *values,
                       fx_value *audits, fx_scratch *scratch, unsigned char *failed, db_error *e) {
    if (fx_ruleset_eval(rs, values, audits, scratch) != 0) {
        snprintf(e->msg, sizeof e->msg, "evaluating the formulas of %s/%s/%s: out of memory",
                 v->version, v->data_source, v->project_code);
        return -1;
    }
    size_t naudit = fx_ruleset_audit_count(rs);
    for (size_t a = 0; a < naudit; a++)
        failed[a] = !fx_value_true(audits[a]);
    return 0;
}

/* One formula row of the vector into the open COPY: its value stored to the
 * cent; NULL stays NULL, and a value beyond numeric(18,2) is stored as NULL
 * too (DESIGN.md 5.5). 0, or -1 with e. */
static int formula_row(db_conn *db, const report_vector *v, const fx_ruleset *rs, size_t slot,
                       fx_value value, db_error *e) {
    int64_t cents;
    key_fields(db, v);
    db_copy_field_text(db, fx_ruleset_slot_code(rs, slot));
    if (fx_store_cents(value, &cents) == FX_STORE_OK)
        db_copy_field_cents(db, cents);
    else
        db_copy_field_null(db);
    return db_copy_row_end(db, e);
}

int report_rows_formulas(db_conn *db, const report_vector *v, const fx_ruleset *rs,
                         fx_value *values, fx_value *audits, fx_scratch *scratch,
                         unsigned char *failed, db_error *e) {
    if (eval_vector(v, rs, values, audits, scratch, failed, e) != 0)
        return -1;
    size_t nform = fx_ruleset_formula_count(rs);
    for (size_t i = 0; i < nform; i++) {
        size_t slot = fx_ruleset_order(rs, i);
        if (formula_row(db, v, rs, slot, values[slot], e) != 0)
            return -1;
    }
    return (int)nform;
}

typedef struct slot_code {
    const char *code;
    size_t slot;
} slot_code;

static int slot_code_cmp(const void *a, const void *b) {
    return strcmp(((const slot_code *)a)->code, ((const slot_code *)b)->code);
}

size_t *report_rows_key_order(const fx_ruleset *rs) {
    size_t n = fx_ruleset_slot_count(rs);
    slot_code *sc = malloc((n + 1) * sizeof *sc);
    size_t *order = malloc((n + 1) * sizeof *order);
    if (!sc || !order) {
        free(sc);
        free(order);
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        sc[i] = (slot_code){fx_ruleset_slot_code(rs, i), i};
    qsort(sc, n, sizeof *sc, slot_code_cmp);
    for (size_t i = 0; i < n; i++)
        order[i] = sc[i].slot;
    free(sc);
    return order;
}

int report_rows_vector(db_conn *db, const report_vector *v, const fx_ruleset *rs,
                       const size_t *order, const int64_t *cents, const unsigned char *present,
                       fx_value *values, fx_value *audits, fx_scratch *scratch,
                       unsigned char *failed, db_error *e) {
    if (eval_vector(v, rs, values, audits, scratch, failed, e) != 0)
        return -1;
    int rows = 0;
    for (size_t i = 0, n = fx_ruleset_slot_count(rs); i < n; i++) {
        size_t slot = order[i];
        int rc;
        if (fx_ruleset_slot_is_formula(rs, slot))
            rc = formula_row(db, v, rs, slot, values[slot], e);
        else if (present[slot])
            rc = report_rows_base(db, v, fx_ruleset_slot_code(rs, slot), cents[slot], e);
        else
            continue;
        if (rc != 0)
            return -1;
        rows++;
    }
    return rows;
}

/* One failed audit rule of one vector. */
typedef struct finding {
    char *version, *data_source, *project_code;
    size_t rule;
} finding;

struct report_findings {
    finding *f;
    size_t n, cap;
};

report_findings *report_findings_new(void) {
    return calloc(1, sizeof(report_findings));
}

void report_findings_free(report_findings *f) {
    if (!f)
        return;
    for (size_t i = 0; i < f->n; i++) {
        free(f->f[i].version);
        free(f->f[i].data_source);
        free(f->f[i].project_code);
    }
    free(f->f);
    free(f);
}

int report_findings_add(report_findings *f, const report_vector *v, const unsigned char *failed,
                        size_t naudit) {
    for (size_t a = 0; a < naudit; a++) {
        if (!failed[a])
            continue;
        if (f->n == f->cap) {
            size_t cap = f->cap ? f->cap * 2 : 64;
            finding *g = realloc(f->f, cap * sizeof *g);
            if (!g)
                return -1;
            f->f = g;
            f->cap = cap;
        }
        finding *x = &f->f[f->n];
        x->version = strdup(v->version);
        x->data_source = strdup(v->data_source);
        x->project_code = strdup(v->project_code);
        x->rule = a;
        f->n++;
        if (!x->version || !x->data_source || !x->project_code)
            return -1;
    }
    return 0;
}

int64_t report_findings_copy(db_conn *db, const char *run_id, const report_findings *f,
                             const fx_ruleset *rs, const json_t *audits, db_error *e) {
    if (f->n == 0)
        return 0;
    if (db_copy_in_begin(db,
                         "COPY audit_finding (run_id, version, data_source, project_code, "
                         "rule_code, severity, message) FROM STDIN",
                         e) != 0)
        return -1;
    for (size_t i = 0; i < f->n; i++) {
        const finding *x = &f->f[i];
        const json_t *rule = json_array_get(audits, x->rule);
        const char *severity = json_string_value(json_array_get(rule, 1));
        const char *message = json_string_value(json_array_get(rule, 2));
        db_copy_field_text(db, run_id);
        db_copy_field_text(db, x->version);
        db_copy_field_text(db, x->data_source);
        db_copy_field_text(db, x->project_code);
        db_copy_field_text(db, fx_ruleset_audit_code(rs, x->rule));
        db_copy_field_text(db, severity ? severity : "error");
        db_copy_field_text(db, message ? message : "");
        if (db_copy_row_end(db, e) != 0) {
            db_copy_in_abort(db, "row failed");
            return -1;
        }
    }
    return db_copy_in_end(db, e) < 0 ? -1 : (int64_t)f->n;
}
