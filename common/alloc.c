/* Exact allocation of one amount over weighted targets: floor shares plus the
 * largest-remainder method, with 128-bit products (DESIGN.md 5.3). */
#include "alloc.h"

#include <stdlib.h>
#include <string.h>

struct alloc_scratch {
    alloc_u128 *rem; /* remainder of target i */
    size_t *order;   /* indices, partially ordered by the selection */
    size_t cap;
};

alloc_scratch *alloc_scratch_new(void) {
    return calloc(1, sizeof(alloc_scratch));
}

void alloc_scratch_free(alloc_scratch *s) {
    if (!s)
        return;
    free(s->rem);
    free(s->order);
    free(s);
}

static int scratch_reserve(alloc_scratch *s, size_t n) {
    if (n <= s->cap)
        return 0;
    size_t cap = s->cap ? s->cap : 64;
    while (cap < n)
        cap *= 2;
    alloc_u128 *rem = realloc(s->rem, cap * sizeof *rem);
    if (!rem)
        return -1;
    s->rem = rem;
    size_t *order = realloc(s->order, cap * sizeof *order);
    if (!order)
        return -1;
    s->order = order;
    s->cap = cap;
    return 0;
}

/* Target i ranks before target j for a leftover cent: larger remainder, then lower index. */
static int ranks_before(const alloc_u128 *rem, size_t i, size_t j) {
    return rem[i] > rem[j] || (rem[i] == rem[j] && i < j);
}

/* Rearranges order[lo..hi] so that its first k entries are the k best-ranked ones
 * (quickselect, expected linear time). Ranks are distinct (the index breaks ties),
 * so the chosen set is exact whatever the pivots. */
static void select_best(const alloc_u128 *rem, size_t *order, size_t lo, size_t hi, size_t k) {
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        size_t pivot = order[mid];
        order[mid] = order[hi];
        order[hi] = pivot;
        size_t store = lo;
        for (size_t i = lo; i < hi; i++) {
            if (ranks_before(rem, order[i], pivot)) {
                size_t t = order[i];
                order[i] = order[store];
                order[store] = t;
                store++;
            }
        }
        order[hi] = order[store];
        order[store] = pivot;
        /* order[lo..store-1] rank before the pivot, which sits at `store`. */
        size_t rank = store - lo + 1;
        if (rank == k)
            return;
        if (k < rank) {
            hi = store - 1;
        } else {
            k -= rank;
            lo = store + 1;
        }
    }
}

alloc_split_result alloc_split(int64_t amount_cents, const uint64_t *weights, size_t n,
                               alloc_u128 total_weight, int64_t *shares, alloc_scratch *scratch) {
    if (n == 0 || total_weight == 0)
        return ALLOC_SPLIT_UNALLOCATED;
    if (scratch_reserve(scratch, n) != 0)
        return ALLOC_SPLIT_NOMEM;

    int negative = amount_cents < 0;
    uint64_t a = negative ? (uint64_t)0 - (uint64_t)amount_cents : (uint64_t)amount_cents;
    alloc_u128 *rem = scratch->rem;
    uint64_t given = 0;

    if (total_weight <= UINT64_MAX) {
        /* Common case: W and most products fit 64-bit division, which is much
         * cheaper than the 128-bit one. */
        uint64_t w64 = (uint64_t)total_weight;
        for (size_t i = 0; i < n; i++) {
            alloc_u128 p = (alloc_u128)a * weights[i];
            uint64_t q;
            if ((p >> 64) == 0) {
                q = (uint64_t)p / w64;
                rem[i] = (uint64_t)p % w64;
            } else {
                q = (uint64_t)(p / w64);
                rem[i] = p % w64;
            }
            shares[i] = (int64_t)q;
            given += q;
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            alloc_u128 p = (alloc_u128)a * weights[i];
            uint64_t q = (uint64_t)(p / total_weight);
            rem[i] = p % total_weight;
            shares[i] = (int64_t)q;
            given += q;
        }
    }

    /* sum(rem) = a*W - W*sum(q) < n*W, so fewer than n cents are left over. */
    uint64_t left = a - given;
    if (left > 0) {
        size_t *order = scratch->order;
        for (size_t i = 0; i < n; i++)
            order[i] = i;
        if (left < n)
            select_best(rem, order, 0, n - 1, (size_t)left);
        for (size_t i = 0; i < left && i < n; i++)
            shares[order[i]]++;
    }
    if (negative)
        for (size_t i = 0; i < n; i++)
            shares[i] = -shares[i];
    return ALLOC_SPLIT_OK;
}

int alloc_parse_scaled(const char *text, int scale, int64_t *out) {
    const char *p = text;
    int negative = 0;
    if (*p == '-' || *p == '+')
        negative = *p++ == '-';
    if (!(*p >= '0' && *p <= '9') && !(*p == '.' && p[1] >= '0' && p[1] <= '9'))
        return -1;
    uint64_t v = 0;
    const uint64_t limit = (uint64_t)INT64_MAX;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (v > (limit - (uint64_t)(*p - '0')) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    int decimals = 0;
    if (*p == '.') {
        p++;
        if (!(*p >= '0' && *p <= '9'))
            return -1;
        for (; *p >= '0' && *p <= '9'; p++) {
            if (decimals == scale) {
                if (*p != '0')
                    return -1; /* more precision than the scale holds */
                continue;
            }
            if (v > (limit - (uint64_t)(*p - '0')) / 10)
                return -1;
            v = v * 10 + (uint64_t)(*p - '0');
            decimals++;
        }
    }
    if (*p != '\0')
        return -1;
    for (; decimals < scale; decimals++) {
        if (v > limit / 10)
            return -1;
        v *= 10;
    }
    *out = negative ? -(int64_t)v : (int64_t)v;
    return 0;
}

char *alloc_format_cents(int64_t cents, char *buf) {
    uint64_t m = cents < 0 ? (uint64_t)0 - (uint64_t)cents : (uint64_t)cents;
    char tmp[24];
    int len = 0;
    uint64_t units = m / 100;
    do {
        tmp[len++] = (char)('0' + units % 10);
        units /= 10;
    } while (units);
    char *o = buf;
    if (cents < 0)
        *o++ = '-';
    while (len)
        *o++ = tmp[--len];
    *o++ = '.';
    *o++ = (char)('0' + (m % 100) / 10);
    *o++ = (char)('0' + m % 10);
    *o = '\0';
    return buf;
}
