/* Loading one generated period into PostgreSQL, all in one transaction: the
 * report versions, the ruleset and projects when missing, the period, its
 * driver values and its ledger rows (COPY). */
#ifndef GEN_LOAD_H
#define GEN_LOAD_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef struct gen_load_options {
    const char *pg_dsn;
    uint64_t seed;
    double scale;
    const char *period;  /* YYYY-MM */
    const char *ruleset; /* ruleset name bound to the period */
    bool demo;           /* the small demo world and ruleset instead of the standard ones */
    bool replace;        /* delete the period's ledger rows and drivers first */
} gen_load_options;

/* Generates and loads the period; prints progress on stderr and the summary
 * (rows per data source, totals, time) on summary. Returns an ALLOC_EXIT_*
 * code: 0 loaded; 1 runtime failure (nothing kept); 3 a kept ruleset does not
 * bind the generated rows; 4 refused by state (the period is closed, or
 * already has rows or drivers without --replace, or is bound to another
 * ruleset). */
int gen_load(const gen_load_options *opt, FILE *summary);

#endif
