/* Allocation of a batch into per-(version, target, item) partial sums. Rows of a
 * batch arrive sorted by item, so each version accumulates one item at a time in
 * a dense per-project array and flushes it when the item changes: an array add
 * per share instead of a hash lookup. */
#include "batch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

typedef struct version_acc {
    const char *item; /* item being accumulated, NULL when none */
    int64_t *cents;   /* per project */
    uint8_t *touched; /* per project: a nonzero share arrived */
    uint32_t *touched_list;
    size_t n_touched;
    int64_t unalloc_cents;
    int unalloc_touched;
    int64_t unalloc_rows;
} version_acc;

#define GROW(arr, n, cap)                                                                          \
    ((n) < (cap) ? 0                                                                               \
                 : ((cap) = (cap) ? (cap)*2 : 256,                                                 \
                    ((arr) = realloc_or_free((arr), (cap) * sizeof *(arr))) ? 0 : -1))

static void *realloc_or_free(void *p, size_t size) {
    void *q = realloc(p, size);
    if (!q)
        free(p);
    return q;
}

static int flush(version_acc *a, uint32_t v, batch_result *out) {
    for (size_t i = 0; i < a->n_touched; i++) {
        uint32_t p = a->touched_list[i];
        if (GROW(out->partials, out->n_partials, out->cap_partials))
            return -1;
        out->partials[out->n_partials++] = (batch_partial){v, p, a->item, a->cents[p]};
        a->cents[p] = 0;
        a->touched[p] = 0;
    }
    a->n_touched = 0;
    if (a->unalloc_touched) {
        if (GROW(out->partials, out->n_partials, out->cap_partials))
            return -1;
        out->partials[out->n_partials++] =
            (batch_partial){v, BATCH_UNALLOCATED, a->item, a->unalloc_cents};
    }
    if (a->unalloc_rows) {
        if (GROW(out->unallocated, out->n_unallocated, out->cap_unallocated))
            return -1;
        out->unallocated[out->n_unallocated++] = (batch_unallocated){v, a->item, a->unalloc_rows};
    }
    a->unalloc_cents = 0;
    a->unalloc_touched = 0;
    a->unalloc_rows = 0;
    a->item = NULL;
    return 0;
}

int batch_allocate(const pubdata *pd, const char *data_source, const batch_row *rows, size_t n,
                   int detail, batch_result *out, char *err, size_t errlen) {
    size_t nv = pubdata_version_count(pd), np = pubdata_project_count(pd);
    version_acc acc[PUBDATA_MAX_VERSIONS];
    memset(acc, 0, sizeof acc);
    memset(out, 0, sizeof *out);
    alloc_scratch *scratch = alloc_scratch_new();
    int64_t *shares = malloc((np + 1) * sizeof *shares);
    int rc = -1;
    if (!scratch || !shares)
        goto oom;
    for (size_t v = 0; v < nv; v++) {
        acc[v].cents = calloc(np + 1, sizeof *acc[v].cents);
        acc[v].touched = calloc(np + 1, 1);
        acc[v].touched_list = malloc((np + 1) * sizeof *acc[v].touched_list);
        if (!acc[v].cents || !acc[v].touched || !acc[v].touched_list)
            goto oom;
    }

    for (size_t r = 0; r < n; r++) {
        const batch_row *row = &rows[r];
        for (size_t v = 0; v < nv; v++) {
            if (!pubdata_includes(pd, v, row->category))
                continue;
            const pubdata_rule *rule = pubdata_rule_for(pd, v, row->item_code);
            if (!rule) {
                snprintf(err, errlen, "entry %lld: item %s has no allocation rule in version %s",
                         (long long)row->entry_id, row->item_code, pubdata_version_name(pd, v));
                goto done;
            }
            version_acc *a = &acc[v];
            if (a->item && strcmp(a->item, row->item_code) != 0 && flush(a, (uint32_t)v, out))
                goto oom;
            a->item = row->item_code;
            const pubdata_group *g = pubdata_targets(pd, rule, data_source, row->company_code);
            alloc_split_result sr =
                alloc_split(row->cents, g->weight, g->n, g->total_weight, shares, scratch);
            if (sr == ALLOC_SPLIT_NOMEM)
                goto oom;
            if (sr == ALLOC_SPLIT_UNALLOCATED) {
                if (row->cents != 0) {
                    a->unalloc_cents += row->cents;
                    a->unalloc_touched = 1;
                    a->unalloc_rows++;
                    if (detail) {
                        if (GROW(out->details, out->n_details, out->cap_details))
                            goto oom;
                        out->details[out->n_details++] = (batch_detail){
                            (uint32_t)v, BATCH_UNALLOCATED, row->entry_id, row->cents};
                    }
                }
                continue;
            }
            out->shares += (int64_t)g->n;
            for (size_t t = 0; t < g->n; t++) {
                if (shares[t] == 0)
                    continue;
                uint32_t p = g->project[t];
                a->cents[p] += shares[t];
                if (!a->touched[p]) {
                    a->touched[p] = 1;
                    a->touched_list[a->n_touched++] = p;
                }
                if (detail) {
                    if (GROW(out->details, out->n_details, out->cap_details))
                        goto oom;
                    out->details[out->n_details++] =
                        (batch_detail){(uint32_t)v, p, row->entry_id, shares[t]};
                }
            }
        }
    }
    for (size_t v = 0; v < nv; v++)
        if (acc[v].item && flush(&acc[v], (uint32_t)v, out))
            goto oom;
    rc = 0;
    goto done;
oom:
    snprintf(err, errlen, "out of memory allocating a batch of %zu rows", n);
done:
    for (size_t v = 0; v < PUBDATA_MAX_VERSIONS; v++) {
        free(acc[v].cents);
        free(acc[v].touched);
        free(acc[v].touched_list);
    }
    free(shares);
    alloc_scratch_free(scratch);
    if (rc != 0)
        batch_result_free(out);
    return rc;
}

void batch_result_free(batch_result *r) {
    free(r->partials);
    free(r->unallocated);
    free(r->details);
    memset(r, 0, sizeof *r);
}
