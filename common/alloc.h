/* The allocation arithmetic of DESIGN.md 5.3, exact in integer cents: pure, no I/O,
 * thread-safe (all state is in the caller's arguments and scratch). */
#ifndef ALLOC_ALLOC_H
#define ALLOC_ALLOC_H

#include <stddef.h>
#include <stdint.h>

typedef unsigned __int128 alloc_u128;

/* Largest |amount| numeric(18,2) can hold, in cents. */
#define ALLOC_MAX_CENTS 999999999999999999LL
/* Driver values are numeric(18,6): scaled by 10^6 they fit in 64 bits. */
#define ALLOC_WEIGHT_SCALE 1000000ULL

/* Working memory of alloc_split, reused across calls by one thread. */
typedef struct alloc_scratch alloc_scratch;

/* Returns NULL when out of memory. alloc_scratch_free accepts NULL. */
alloc_scratch *alloc_scratch_new(void);
void alloc_scratch_free(alloc_scratch *s);

typedef enum {
    ALLOC_SPLIT_OK = 0,          /* shares[] holds the split */
    ALLOC_SPLIT_UNALLOCATED = 1, /* no target or zero total weight: nothing was written */
    ALLOC_SPLIT_NOMEM = -1
} alloc_split_result;

/* Splits amount_cents over n targets with integer weights (driver value x 10^6, or
 * 1 for 'equal'), which the caller gives in ascending project_code byte order: the
 * index order is the tie-break order. total_weight is the sum of weights (the
 * caller computes it once per target group). Each target gets
 * floor(a*w/W) cents of a = |amount|, the a - sum(floor) leftover cents go one
 * each to the targets with the largest remainders (a*w mod W), ties to the lower
 * index; every share takes the amount's sign. The shares sum to the amount exactly.
 * Writes shares[0..n-1]. */
alloc_split_result alloc_split(int64_t amount_cents, const uint64_t *weights, size_t n,
                               alloc_u128 total_weight, int64_t *shares, alloc_scratch *scratch);

/* Parses a numeric with at most `scale` decimals ("-12.5", "7", "0.000001") into
 * an integer scaled by 10^scale. Returns 0, or -1 when the text is not such a
 * number or does not fit in 64 bits. */
int alloc_parse_scaled(const char *text, int scale, int64_t *out);

/* Writes cents as a two-decimal numeric ("-1234.05", "0.00"; never "-0.00")
 * into buf (at least 24 bytes). Returns buf. */
char *alloc_format_cents(int64_t cents, char *buf);

#endif
