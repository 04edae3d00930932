/* A run's audit findings summed up per rule, for the findings sections of
 * `report` (table and HTML) and the totals of `findings`: how many findings
 * each (rule, severity) has, and its first lines. */
#ifndef ALLOC_PRODUCER_FINDINGS_H
#define ALLOC_PRODUCER_FINDINGS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "db.h"

/* First lines kept per rule in a summary. */
#define FINDINGS_FIRST_LINES 3

typedef struct findings_rule {
    char *rule_code;
    char *severity; /* error | warning */
    int64_t count;
    char **lines; /* the first nlines findings: "M HKG/HKG-01: message", in key order */
    size_t nlines;
} findings_rule;

typedef struct findings_summary {
    findings_rule *rules; /* errors first, then by rule code (byte order) */
    size_t nrules;
    int64_t errors, warnings;
} findings_summary;

/* Reads the summary of run_id's findings (at most first_lines lines per rule)
 * into *out, which the caller frees with findings_summary_free. Returns 0, or
 * -1 with err (out is then empty). */
int findings_summarize(db_conn *c, int64_t run_id, size_t first_lines, findings_summary *out,
                       db_error *err);

/* Frees what s holds and empties it. Accepts NULL. */
void findings_summary_free(findings_summary *s);

/* Prints the section under a table report: "findings: 2 error, 1 warning",
 * then one block per rule with its count and first lines (or "findings: none"). */
void findings_print_summary(FILE *out, const findings_summary *s, int64_t run_id,
                            const char *period);

#endif
