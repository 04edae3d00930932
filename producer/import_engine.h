/* The generic CSV importer: runs any import template (import_template.h) over one
 * CSV file into ledger_entry, allocation_driver or project (an upsert, no
 * period), all-or-nothing, in one transaction: lock the period row (projects:
 * the project table against other writers), pre_sql, COPY the file into a TEMP staging
 * table, validation queries on it (errors name the file line and the column),
 * map the rows, validate them against the target (a ledger row's project_code
 * must be a project, its data_source one that some project has), INSERT ...
 * SELECT, post_sql, commit. Nothing is changed unless everything passed. */
#ifndef ALLOC_PRODUCER_IMPORT_ENGINE_H
#define ALLOC_PRODUCER_IMPORT_ENGINE_H

#include <stdio.h>

#include "db.h"
#include "import_template.h"

/* At most this many error lines are printed; the rest are counted. */
#define IMPORT_MAX_ERRORS_SHOWN 100

typedef struct import_request {
    FILE *file;         /* the CSV, open for reading (not closed here) */
    const char *label;  /* the file's name in messages ("F.csv:17: ...") */
    const char *period; /* YYYY-MM, already checked; NULL for projects */
    int dry_run;        /* validate everything, then roll back */
} import_request;

/* Imports req->file with template t on connection c (no transaction open).
 * Prints every error to stderr, one line each ("F.csv:17: column amount:
 * \"12.345\" has more than 2 decimals"), and a summary to stdout. Returns
 * ALLOC_EXIT_OK, _VALIDATION (bad file or rows, a template step refused, or a
 * project's data source or company changed while a period it is in is closed:
 * nothing changed), _REFUSED (unknown or closed period) or _RUNTIME. */
int import_run(db_conn *c, const import_template *t, const import_request *req);

#endif
