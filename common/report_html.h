/* The report as one self-contained HTML page (`report --format html`): a
 * header of facts (period, run, status, versions), inline-SVG bar charts and
 * the report tables, with inline CSS and no script or external resource. The
 * page is built in memory from plain data and written to a FILE*; no database
 * I/O. A report_html is not thread-safe; distinct ones may be used at once. */
#ifndef ALLOC_REPORT_HTML_H
#define ALLOC_REPORT_HTML_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct report_html report_html;

/* What a table cell holds. */
typedef enum {
    REPORT_HTML_EMPTY = 0, /* no row: an empty cell */
    REPORT_HTML_NULL = 1,  /* a row whose amount is NULL: "n/a" */
    REPORT_HTML_AMOUNT = 2 /* an amount, in cents */
} report_html_cell_kind;

typedef struct report_html_cell {
    report_html_cell_kind kind;
    int64_t cents; /* meaningful only for REPORT_HTML_AMOUNT */
} report_html_cell;

/* How a header fact is shown: plain, or as a green / amber badge. */
typedef enum { REPORT_HTML_PLAIN = 0, REPORT_HTML_GOOD = 1, REPORT_HTML_WARN = 2 } report_html_tone;

/* A table wider than this many amount columns is split into blocks of columns,
 * each repeating the item column, so that the page prints and fits a screen
 * (a block still too wide scrolls by itself, not the page). */
#define REPORT_HTML_BLOCK_COLUMNS 6
/* A chart shows at most this many groups (columns of its table); the page says
 * how many were left out. */
#define REPORT_HTML_CHART_GROUPS 30
/* At most this many series (rows) per chart: one colour each. */
#define REPORT_HTML_CHART_SERIES 6

/* A new empty page titled `title` (copied). Returns NULL when out of memory.
 * Free with report_html_free, which accepts NULL. */
report_html *report_html_new(const char *title);
void report_html_free(report_html *h);

/* Adds a fact to the page header ("Period" = "2024-03"). Copies both strings.
 * Returns 0, or -1 when out of memory. */
int report_html_add_fact(report_html *h, const char *label, const char *value,
                         report_html_tone tone);

/* Adds a table headed `heading`; `corner` names the row header column ("Item")
 * and columns[0..ncols-1] the amount columns (all copied); columns named by a
 * reserved roll-up code (#TOTAL, #ALL) are shaded. Tables are written in the
 * order added; negative amounts are shown in red. Returns the table's index, or -1 when out of
 * memory. */
long report_html_add_table(report_html *h, const char *heading, const char *corner, size_t ncols,
                           const char *const *columns);

/* Adds a row to table `table`: its shown name, its code (shown as a tooltip;
 * may be NULL), whether it is a formula item (set in bold) and ncols cells
 * (copied). Returns the row's index in the table, or -1 when out of memory or
 * when `table` does not exist. */
long report_html_add_row(report_html *h, size_t table, const char *name, const char *code,
                         int is_formula, const report_html_cell *cells);

/* Adds a grouped horizontal bar chart over table `table`: one group per
 * column (the first REPORT_HTML_CHART_GROUPS of cols[0..ncols-1]) and in each
 * group one bar per row of rows[0..nrows-1] (at most REPORT_HTML_CHART_SERIES),
 * with a legend, a value axis through zero and the values at the bars' ends.
 * Charts are written before the tables, in the order added. Returns 0, or -1
 * when out of memory or when an index is out of range. */
int report_html_add_chart(report_html *h, size_t table, const char *heading, const size_t *rows,
                          size_t nrows, const size_t *cols, size_t ncols);

/* One audit rule's findings in the page's findings section. */
typedef struct report_html_finding {
    const char *rule_code;
    const char *severity; /* "error" (shown as a warning badge) or "warning" */
    int64_t count;
    const char *const *lines; /* the first findings, nlines of them */
    size_t nlines;
} report_html_finding;

/* Sets the page's findings section, written after the tables: a heading with
 * `summary` ("2 error, 1 warning"), then one row per rule: severity, rule code,
 * count and its first lines (with "... and N more" when count exceeds nlines).
 * n = 0 says "No findings.". Copies everything; a second call replaces the
 * first. Returns 0, or -1 when out of memory (the page then has no section). */
int report_html_set_findings(report_html *h, const char *summary, const report_html_finding *f,
                             size_t n);

/* Writes the whole page. Returns 0, or -1 when writing failed (errno set by
 * stdio). */
int report_html_write(const report_html *h, FILE *out);

/* ---- pure helpers, exported for the tests --------------------------------- */

/* Writes s as HTML text or attribute value: & < > " ' as character
 * references, control characters other than tab, LF and CR and invalid UTF-8
 * bytes as U+FFFD. NULL writes nothing. */
void report_html_escape(FILE *out, const char *s);

/* An amount in few characters for chart labels: up to 999.99 as is (trailing
 * decimal zeros dropped: "12.5", "0"), above with three significant digits and
 * a suffix k, M, B or T ("1.23M", "-500k"). Writes at most len bytes (24 is
 * always enough) and returns the length. */
int report_html_compact(int64_t cents, char *buf, size_t len);

#endif
