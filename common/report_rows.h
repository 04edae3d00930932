/* Writing report rows: the base rows, formula rows and audit findings of one
 * vector (version, data source, project), as the formula stage's units (in
 * the consumers) and the roll-ups (in the producer) both write them. Written
 * on db (COPY) and fx (evaluation); the rows are never read back. */
#ifndef ALLOC_REPORT_ROWS_H
#define ALLOC_REPORT_ROWS_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "db.h"
#include "fx.h"

/* The key of a vector's rows. */
typedef struct report_vector {
    const char *run_id;
    const char *version;
    const char *data_source;
    const char *project_code;
} report_vector;

/* The COPY a vector's rows go into: report_after's columns of the table given
 * (the run's own report_after_run_N). */
#define REPORT_ROWS_COPY_SQL                                                                       \
    "COPY %s (run_id, version, data_source, project_code, item_code, amount) FROM STDIN"

/* One base row (amount = cents) into the open COPY. 0, or -1 with e. */
int report_rows_base(db_conn *db, const report_vector *v, const char *item_code, int64_t cents,
                     db_error *e);

/* Evaluates the vector (values: one per slot of rs, the base slots set, the
 * others anything; audits: one per audit rule) and writes one row per formula
 * item into the open COPY: its value stored to the cent, NULL when it has
 * none or is beyond numeric(18,2) (DESIGN.md 5.5). Sets failed[a] to 1 for
 * each audit rule a whose value is 0 or NULL, else 0. Returns the rows
 * written, or -1 with e. */
int report_rows_formulas(db_conn *db, const report_vector *v, const fx_ruleset *rs,
                         fx_value *values, fx_value *audits, fx_scratch *scratch,
                         unsigned char *failed, db_error *e);

/* The slots of rs in byte order of their item codes (malloc'd, nslots of them;
 * NULL when out of memory): a vector's rows written in this order, vectors in
 * (version, project) order, come out in report_after's key order, which makes
 * keying a table of them one presorted pass. */
size_t *report_rows_key_order(const fx_ruleset *rs);

/* Evaluates the vector (values: the base slots set from cents where present,
 * the others anything) and writes all its rows into the open COPY in the
 * slot order given: each base slot that is present (amount = cents) and
 * every formula item, as report_rows_formulas does. Sets failed as
 * report_rows_formulas does. Returns the rows written, or -1 with e. */
int report_rows_vector(db_conn *db, const report_vector *v, const fx_ruleset *rs,
                       const size_t *order, const int64_t *cents, const unsigned char *present,
                       fx_value *values, fx_value *audits, fx_scratch *scratch,
                       unsigned char *failed, db_error *e);

/* Audit findings gathered while a COPY of rows is open, written after it. */
typedef struct report_findings report_findings;

report_findings *report_findings_new(void);
void report_findings_free(report_findings *f);

/* Remembers the failed audit rules of vector v (naudit flags; the strings are
 * copied). 0, or -1 when out of memory. */
int report_findings_add(report_findings *f, const report_vector *v, const unsigned char *failed,
                        size_t naudit);

/* Writes the findings gathered with COPY audit_finding, severity and message
 * from audits ([[rule_code, severity, message], ...] in fx audit order).
 * Returns how many were written, or -1 with e. */
int64_t report_findings_copy(db_conn *db, const char *run_id, const report_findings *f,
                             const fx_ruleset *rs, const json_t *audits, db_error *e);

#endif
