/* Compiling a ruleset's formulas and audit rules from PostgreSQL (DESIGN.md 5.5),
 * for the run snapshot and for imports. */
#ifndef ALLOC_PRODUCER_FORMULAS_H
#define ALLOC_PRODUCER_FORMULAS_H

#include <stddef.h>

#include "db.h"
#include "fx.h"

/* The compiled rules of one ruleset. */
typedef struct formulas {
    fx_ruleset *rs;
    unsigned char *bytes; /* fx_ruleset_serialize() */
    size_t len;
    char *audits;         /* JSON [[rule_code, severity, message], ...] in fx audit order */
} formulas;

/* Reads the ruleset's report items (in sort_order, item_code order) and audit
 * rules from db (in the caller's transaction) and compiles them. Returns 0 with
 * *out filled; the number of compile errors (> 0), each printed to stderr as
 * one line naming the item or rule, line and column; or -1 on a database or
 * memory failure (printed). Free with formulas_free. */
int formulas_compile(db_conn *db, const char *ruleset, formulas *out);
void formulas_free(formulas *f);

#endif
