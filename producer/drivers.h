/* The driver names of allocation rules checked against the driver values
 * there are. A mistyped name ("headcuont") has no values, so every pending row
 * its rule allocates would go to #UNALLOCATED: `import --kind ruleset` and
 * `run` warn about such a driver, naming the closest known one. Warnings only:
 * a driver may get its values later. */
#ifndef ALLOC_PRODUCER_DRIVERS_H
#define ALLOC_PRODUCER_DRIVERS_H

#include <stddef.h>

#include "db.h"

typedef struct driver_names {
    char **names; /* sorted, byte order */
    size_t n;
} driver_names;

/* The distinct drivers that have values in period, or in any period when
 * period is NULL, into *out (free with drivers_free). Returns 0, or -1 with err. */
int drivers_known(db_conn *c, const char *period, driver_names *out, db_error *err);

/* Frees what d holds and empties it. Accepts NULL. */
void drivers_free(driver_names *d);

/* 1 when name is among d (or is the built-in driver "equal"). */
int drivers_has(const driver_names *d, const char *name);

/* The known name closest to name: at most 2 edits (insert, delete, replace or
 * swap two neighbours) and fewer edits than half of name's length; NULL when
 * none is that close. Points into d. */
const char *drivers_closest(const driver_names *d, const char *name);

/* Writes " (did you mean X?)" into buf, X the drivers_closest name, or ""
 * when none is close. */
void drivers_hint(const driver_names *d, const char *name, char *buf, size_t len);

/* The validation of a run of period: prints "alloc-producer: run: warning:
 * ..." on stderr for every allocation rule of the period's ruleset (of a
 * version in report_version) whose driver has no value in the period. Returns
 * the number of warnings, or -1 with err. */
int drivers_warn_period(db_conn *c, const char *period, db_error *err);

#endif
