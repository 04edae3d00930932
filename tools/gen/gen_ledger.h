/* Ledger rows of one period for alloc-gen, generated city by city as COPY text
 * (the column order of GEN_LEDGER_COLUMNS). Pure: no I/O, deterministic in
 * (world, ruleset, drivers, period, seed). */
#ifndef GEN_LEDGER_H
#define GEN_LEDGER_H

#include "gen_model.h"
#include "gen_text.h"

#define GEN_LEDGER_COLUMNS                                                                         \
    "period_code, company_code, data_source, business_line, budget_item_code, account_code, "      \
    "project_code, category, amount"

typedef struct gen_ledger gen_ledger;

/* Counts per data source, and over all rows. */
typedef struct gen_ledger_stats {
    int64_t rows, pending, direct;
    int64_t cross_source; /* direct rows whose data source is not their project's */
    int64_t mgmt_diff;    /* rows of category mgmt_diff (in M only) */
    int64_t via_account;  /* rows bound through their account code */
    int64_t negative, zero;
} gen_ledger_stats;

/* What the allocation of the generated rows will cost, as far as the generated
 * projects go: (pending row, version) pairs with targets and a positive total
 * weight, their (row, target) steps, and the pairs that go to #UNALLOCATED. */
typedef struct gen_ledger_work {
    int64_t pairs, steps, unallocated_pairs;
} gen_ledger_work;

/* A generator over w's cities. Borrows w, rs and d (they must outlive it);
 * period is copied. NULL when out of memory. Free with gen_ledger_free. */
gen_ledger *gen_ledger_new(const gen_world *w, const gen_ruleset *rs, const gen_drivers *d,
                           const char *period, uint64_t seed);
void gen_ledger_free(gen_ledger *g);

/* Appends rows to out until out->len reaches min_bytes or the rows run out.
 * Returns 1 while rows remain, 0 when all are written, -1 when out of memory. */
int gen_ledger_fill(gen_ledger *g, gen_text *out, size_t min_bytes);

/* Rows written so far. */
int64_t gen_ledger_done(const gen_ledger *g);

/* Counts of city c of the world (rows written so far), the sum over all
 * cities into *total, and the allocation work. */
const gen_ledger_stats *gen_ledger_city_stats(const gen_ledger *g, size_t c);
void gen_ledger_total_stats(const gen_ledger *g, gen_ledger_stats *total);
const gen_ledger_work *gen_ledger_work_stats(const gen_ledger *g);

#endif
