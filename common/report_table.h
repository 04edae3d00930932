/* The layout of `report --format table`: one version's report rows as a grid
 * of report items by columns (data sources, or with --by project projects),
 * wrapped into blocks of columns no wider than the page. Works on plain
 * arrays (the command fills them from its query results); no database I/O;
 * thread-safe (no shared state). */
#ifndef ALLOC_REPORT_TABLE_H
#define ALLOC_REPORT_TABLE_H

#include <stddef.h>
#include <stdio.h>

/* The table is wrapped into blocks of columns no wider than this. */
#define REPORT_TABLE_WIDTH 132
/* Longest item name and column header shown, in columns (longer ones are cut). */
#define REPORT_TABLE_NAME_MAX 40
#define REPORT_TABLE_HEADER_MAX 20

/* A report item, in display order. */
typedef struct report_table_item {
    const char *code;
    const char *name;
} report_table_item;

/* A report row of the version: its column (a data source or project code),
 * item and amount (the numeric's text; NULL for SQL NULL). */
typedef struct report_table_cell {
    const char *column;
    const char *item_code;
    const char *amount;
} report_table_cell;

/* The grid. Read-only for callers; its strings and cells point into the
 * arrays given to report_table_build, which must outlive it. */
typedef struct report_table {
    const char **item_codes; /* the rows, in display order */
    const char **item_names;
    int *item_src; /* the row's index in the items given, -1 for an appended one */
    size_t nitems, cap_items;
    const char **cols; /* the columns: byte order, the reserved codes last */
    size_t ncols;
    int *cells; /* cells[i * ncols + k]: the index of row i, column k's cell, or -1 */
    const report_table_cell *src_cells;
} report_table;

/* Where a column goes: 0 for an ordinary code, 1 for #UNALLOCATED, 2 for the
 * roll-ups #TOTAL and #ALL (the last columns). */
int report_table_column_rank(const char *code);

/* Lays out cells over items into *t (zero-initialized): the rows are the
 * items in their order, then the item codes of cells that items lack, named
 * by their code, in order of first appearance; the columns are the cells'
 * distinct columns. Returns 0, or -1 when out of memory (free *t anyway). */
int report_table_build(report_table *t, const report_table_item *items, size_t nitems,
                       const report_table_cell *cells, size_t ncells);

/* Frees what report_table_build allocated and zeroes *t. Accepts NULL. */
void report_table_free(report_table *t);

/* Prints the grid to out: a header line ("item" and the columns), a rule and
 * one line per item, amounts right-aligned with thousands separators ("" for
 * no cell, "n/a" for a NULL amount). When the columns do not fit in width,
 * they are cut into blocks, each headed "NOUN first-last of n" and separated
 * by an empty line. Returns 0, or -1 when out of memory (nothing printed). */
int report_table_print(FILE *out, const report_table *t, const char *noun, size_t width);

#endif
