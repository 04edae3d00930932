/* The report table's grid and its text layout (see report_table.h). */
#include "report_table.h"

#include <stdlib.h>
#include <string.h>

#include "report_fmt.h"
#include "reserved.h"

/* Item lookup: indices into item_codes sorted by code. */
typedef struct item_index {
    const char *code;
    size_t item;
} item_index;

static int item_index_cmp(const void *a, const void *b) {
    return strcmp(((const item_index *)a)->code, ((const item_index *)b)->code);
}

int report_table_column_rank(const char *code) {
    if (!strcmp(code, RESERVED_TOTAL) || !strcmp(code, RESERVED_ALL))
        return 2;
    return strcmp(code, RESERVED_UNALLOCATED) == 0;
}

static int col_cmp(const void *a, const void *b) {
    const char *x = *(const char *const *)a, *y = *(const char *const *)b;
    int rx = report_table_column_rank(x), ry = report_table_column_rank(y);
    if (rx != ry)
        return rx - ry;
    return strcmp(x, y);
}

void report_table_free(report_table *t) {
    if (!t)
        return;
    free(t->item_codes);
    free(t->item_names);
    free(t->item_src);
    free(t->cols);
    free(t->cells);
    memset(t, 0, sizeof *t);
}

static int add_item(report_table *t, const char *code, const char *name, int src) {
    if (t->nitems == t->cap_items) {
        size_t cap = t->cap_items ? 2 * t->cap_items : 64;
        const char **codes = realloc(t->item_codes, cap * sizeof *codes);
        if (!codes)
            return -1;
        t->item_codes = codes;
        const char **names = realloc(t->item_names, cap * sizeof *names);
        if (!names)
            return -1;
        t->item_names = names;
        int *srcs = realloc(t->item_src, cap * sizeof *srcs);
        if (!srcs)
            return -1;
        t->item_src = srcs;
        t->cap_items = cap;
    }
    t->item_codes[t->nitems] = code;
    t->item_names[t->nitems] = name;
    t->item_src[t->nitems] = src;
    t->nitems++;
    return 0;
}

int report_table_build(report_table *t, const report_table_item *items, size_t nitems,
                       const report_table_cell *cells, size_t ncells) {
    t->src_cells = cells;
    for (size_t i = 0; i < nitems; i++)
        if (add_item(t, items[i].code, items[i].name, (int)i) < 0)
            return -1;

    /* columns: distinct values of the cells, the reserved codes last */
    t->cols = malloc(sizeof *t->cols * (ncells > 0 ? ncells : 1));
    if (!t->cols)
        return -1;
    for (size_t r = 0; r < ncells; r++)
        t->cols[r] = cells[r].column;
    if (ncells > 0)
        qsort(t->cols, ncells, sizeof *t->cols, col_cmp);
    for (size_t r = 0; r < ncells; r++)
        if (t->ncols == 0 || strcmp(t->cols[t->ncols - 1], t->cols[r]) != 0)
            t->cols[t->ncols++] = t->cols[r];

    /* items of the cells that the given items lack */
    size_t nindex = t->nitems + ncells;
    item_index *index = malloc(sizeof *index * (nindex > 0 ? nindex : 1));
    if (!index)
        return -1;
    size_t n = 0;
    for (size_t i = 0; i < t->nitems; i++)
        index[n++] = (item_index){t->item_codes[i], i};
    qsort(index, n, sizeof *index, item_index_cmp);
    size_t known = n;
    for (size_t r = 0; r < ncells; r++) {
        item_index key = {cells[r].item_code, 0};
        if (bsearch(&key, index, known, sizeof *index, item_index_cmp))
            continue;
        int seen = 0;
        for (size_t k = known; k < n && !seen; k++)
            seen = strcmp(index[k].code, key.code) == 0;
        if (seen)
            continue;
        if (add_item(t, key.code, key.code, -1) < 0) {
            free(index);
            return -1;
        }
        index[n++] = (item_index){key.code, t->nitems - 1};
    }
    qsort(index, n, sizeof *index, item_index_cmp);

    t->cells = malloc(sizeof *t->cells * (t->nitems * t->ncols > 0 ? t->nitems * t->ncols : 1));
    if (!t->cells) {
        free(index);
        return -1;
    }
    for (size_t k = 0; k < t->nitems * t->ncols; k++)
        t->cells[k] = -1;
    for (size_t r = 0; r < ncells; r++) {
        item_index key = {cells[r].item_code, 0};
        const item_index *it = bsearch(&key, index, n, sizeof *index, item_index_cmp);
        const char *col = cells[r].column;
        const char **d = bsearch(&col, t->cols, t->ncols, sizeof *t->cols, col_cmp);
        if (it && d)
            t->cells[it->item * t->ncols + (size_t)(d - t->cols)] = (int)r;
    }
    free(index);
    return 0;
}

/* A cell's text: empty when no row, "n/a" for a NULL amount, else the amount
 * with thousands separators (as stored when it is not a numeric). */
static const char *cell_text(const report_table *t, size_t item, size_t d, char *buf, size_t len) {
    int r = t->cells[item * t->ncols + d];
    if (r < 0)
        return "";
    const char *amount = t->src_cells[r].amount;
    if (!amount)
        return "n/a";
    if (report_fmt_thousands_text(amount, buf, len) < 0)
        return amount;
    return buf;
}

static size_t min_size(size_t a, size_t b) {
    return a < b ? a : b;
}

int report_table_print(FILE *out, const report_table *t, const char *noun, size_t width_max) {
    char buf[REPORT_FMT_AMOUNT_MAX];
    size_t name_w = strlen("item");
    for (size_t i = 0; i < t->nitems; i++)
        if (report_fmt_display_width(t->item_names[i]) > name_w)
            name_w = report_fmt_display_width(t->item_names[i]);
    name_w = min_size(name_w, REPORT_TABLE_NAME_MAX);

    size_t *col_w = calloc(t->ncols ? t->ncols : 1, sizeof *col_w);
    if (!col_w)
        return -1;
    for (size_t d = 0; d < t->ncols; d++) {
        col_w[d] = min_size(report_fmt_display_width(t->cols[d]), REPORT_TABLE_HEADER_MAX);
        for (size_t i = 0; i < t->nitems; i++) {
            size_t w = strlen(cell_text(t, i, d, buf, sizeof buf));
            if (w > col_w[d])
                col_w[d] = w;
        }
    }

    for (size_t first = 0; first < t->ncols;) {
        size_t last = first, width = name_w + 2 + col_w[first];
        while (last + 1 < t->ncols && width + 2 + col_w[last + 1] <= width_max)
            width += 2 + col_w[++last];
        if (first > 0 || last + 1 < t->ncols)
            fprintf(out, "%s %zu-%zu of %zu\n", noun, first + 1, last + 1, t->ncols);
        report_fmt_pad(out, "item", name_w, 0);
        for (size_t d = first; d <= last; d++) {
            fputs("  ", out);
            report_fmt_pad(out, t->cols[d], col_w[d], 1);
        }
        fputc('\n', out);
        for (size_t k = 0; k < width; k++)
            fputc('-', out);
        fputc('\n', out);
        for (size_t i = 0; i < t->nitems; i++) {
            report_fmt_pad(out, t->item_names[i], name_w, 0);
            for (size_t d = first; d <= last; d++) {
                fputs("  ", out);
                report_fmt_pad(out, cell_text(t, i, d, buf, sizeof buf), col_w[d], 1);
            }
            fputc('\n', out);
        }
        first = last + 1;
        if (first < t->ncols)
            fputc('\n', out);
    }
    free(col_w);
    return 0;
}
