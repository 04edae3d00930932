/* Allocation of one batch of pending rows for every report version (DESIGN.md
 * 5.3), aggregated per (version, target project, item): what a consumer writes as
 * the batch's partial sums. Pure (no I/O); thread-safe for distinct results. */
#ifndef ALLOC_BATCH_H
#define ALLOC_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "msg.h"
#include "pubdata.h"

/* Target index of the #UNALLOCATED project of the batch's data source. */
#define BATCH_UNALLOCATED UINT32_MAX

/* A pending row as the batch message carries it: entry, company, bound item,
 * category, amount in cents. */
typedef msg_row batch_row;

/* Sum of the shares one (version, target, item) received in the batch; it exists
 * when at least one share of it was not 0 cents (its sum may still be 0). */
typedef struct batch_partial {
    uint32_t version; /* index into the public data's versions */
    uint32_t target;  /* project index, or BATCH_UNALLOCATED */
    const char *item_code;
    int64_t cents;
} batch_partial;

/* Rows of nonzero amount that went to #UNALLOCATED, per (version, item). */
typedef struct batch_unallocated {
    uint32_t version;
    const char *item_code;
    int64_t rows;
} batch_unallocated;

/* One allocated share of one pending row (run --detail). */
typedef struct batch_detail {
    uint32_t version;
    uint32_t target;
    int64_t entry_id;
    int64_t cents;
} batch_detail;

typedef struct batch_result {
    batch_partial *partials;
    size_t n_partials, cap_partials;
    batch_unallocated *unallocated;
    size_t n_unallocated, cap_unallocated;
    batch_detail *details;
    size_t n_details, cap_details;
    int64_t shares; /* (row, target) steps taken */
} batch_result;

/* Allocates rows (all of data source data_source) for every version that
 * includes their category. Item code pointers in the result point into rows,
 * which must outlive it. With detail, also lists every nonzero share. Returns 0,
 * or -1 with a message naming the row when a row has no allocation rule (the
 * producer's validation prevents that) or memory runs out. Free the result's
 * arrays with batch_result_free; the struct may be reused after. */
int batch_allocate(const pubdata *pd, const char *data_source, const batch_row *rows, size_t n,
                   int detail, batch_result *out, char *err, size_t errlen);

void batch_result_free(batch_result *r);

#endif
