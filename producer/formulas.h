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
    char *audits; /* JSON [[rule_code, severity, message], ...] in fx audit order */
} formulas;

/* Reads the ruleset's report items (in sort_order, item_code order) and audit
 * rules from db (in the caller's transaction) and compiles them. Returns 0 with
 * *out filled; the number of compile errors (> 0), each printed to stderr as
 * one line naming the item or rule, line and column; or -1 on a database or
 * memory failure (printed). Free with formulas_free. */
int formulas_compile(db_conn *db, const char *ruleset, formulas *out);
void formulas_free(formulas *f);

/* A report item or audit rule held in memory (a ruleset file being imported). */
typedef struct formulas_entry {
    const char *code;
    int is_formula;   /* items: a formula item (else base); audit rules: ignored */
    const char *text; /* the formula or expression; NULL counts as empty */
    int sort_order;   /* items only */
} formulas_entry;

/* Compiles items and audit rules held in memory as formulas_compile compiles
 * them from PostgreSQL, so that an import accepts exactly what a run accepts:
 * items in (sort_order, item_code byte order) order, audit rules in rule_code
 * byte order, a NULL formula as an empty one. The entries are copied. Returns
 * the compiled ruleset, errors and all (fx_ruleset_error_count; each error's
 * code names the item or rule), to be freed with fx_ruleset_free; or NULL
 * when out of memory. *errors (may be NULL) gets fx_ruleset_compile's result. */
fx_ruleset *formulas_compile_mem(const formulas_entry *items, size_t nitems,
                                 const formulas_entry *rules, size_t nrules, int *errors);

#endif
