/* alloc-producer report: prints a run's report_after rows as a table, CSV or
 * JSON, or their checksum (DESIGN.md section 4), or writes them as an HTML page
 * with a chart. Everything is read in one REPEATABLE READ snapshot, so a run
 * started meanwhile (which deletes earlier unpublished results) cannot tear
 * the output; CSV, JSON and checksum rows are streamed, so memory stays bounded
 * whatever the run's size (the table and HTML forms hold one version's roll-up
 * rows, or one data source's rows with --by project). */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "alloc.h"
#include "check.h"
#include "cli.h"
#include "commands.h"
#include "db.h"
#include "findings.h"
#include "report_fmt.h"
#include "report_html.h"
#include "report_table.h"
#include "reserved.h"
#include "review.h"
#include "util.h"

static const char report_usage[] =
    "alloc-producer report --period P [--version V] [--run ID] [--by data-source|project] "
    "[--data-source X] [--format table|csv|json|html] [--out F.html] [--checksum]";

/* Rows fetched per round trip when streaming report_after. */
#define REPORT_FETCH_ROWS 20000

typedef enum { FORMAT_TABLE, FORMAT_CSV, FORMAT_JSON, FORMAT_HTML } report_format;

/* Report items shown in the HTML chart (see chart_rows). */
#define REPORT_CHART_LINES 3

/* What the command works on, once resolved. */
typedef struct report_target {
    const char *period;
    const char *version; /* NULL = every version */
    int64_t run_id;
    const char *how;   /* why this run: "published", "latest succeeded, not published", "--run" */
    char ruleset[256]; /* the run's ruleset: whose report_item rows name the table's rows */
    int byte_order;    /* report_after's key columns compare in byte order already */
    const char *data_source; /* --by project: the projects of this data source; else NULL */
} report_target;

static void print_help(void) {
    printf("usage: %s\n\n"
           "Prints the report of a period: the rows of report_after of its published run,\n"
           "or, when none is published, of its latest succeeded run; --run ID picks a\n"
           "succeeded run of the period instead.\n\n"
           "  --period P        the period, YYYY-MM (required)\n"
           "  --version V       only this report version (default: every version)\n"
           "  --run ID          this run (it must belong to P, have succeeded and still\n"
           "                    have its results: not replaced by a later run)\n"
           "  --by data-source  (default) table and html columns: the #TOTAL of each data\n"
           "                    source, plus #ALL\n"
           "  --by project      table and html columns: the projects of the data source\n"
           "                    given with --data-source, plus #UNALLOCATED and #TOTAL\n"
           "  --data-source X   the data source of --by project (implies it); csv and json\n"
           "                    then list only the rows of X\n"
           "  --format F        table (default): per version, report items in their sort\n"
           "                    order as rows and the columns of --by, wrapped into blocks\n"
           "                    of columns %d characters wide, then the run's audit\n"
           "                    findings: a count per rule and its first lines; csv: every\n"
           "                    row, header\n"
           "                    version,data_source,project_code,item_code,amount (a NULL\n"
           "                    amount is an empty field); json: an array of objects with\n"
           "                    those keys (amount a number or null); html: one\n"
           "                    self-contained page (needs --out) with the tables, the\n"
           "                    findings section (as under the table) and a bar\n"
           "                    chart of the main report lines per column (the first %d\n"
           "                    formula items that build on other formula items, else\n"
           "                    the first formula items, else the first items) of version\n"
           "                    M, or when M is not shown of the first version with rows\n"
           "  --out F.html      where --format html writes the page (replaced whole)\n"
           "  --checksum        print only the SHA-256 (lowercase hex) of the run's\n"
           "                    report_after rows, every version (--version, --by and\n"
           "                    --format do not apply), one line per row sorted in byte\n"
           "                    order: version|data_source|project_code|item_code|amount\n\n"
           "Exit status: 0 printed, 2 bad arguments, 4 unknown period, run, version or\n"
           "data source, no succeeded run, or --run of a run that is running, failed,\n"
           "aborted or replaced (the line says which and why), 1 any other failure (the\n"
           "page not written).\n\n%s",
           report_usage, REPORT_TABLE_WIDTH, REPORT_CHART_LINES, config_flags_help());
}

/* ---- run selection ----------------------------------------------------------- */

/* Resolves the run (and checks the period and version) inside the open
 * snapshot. Returns ALLOC_EXIT_OK or the exit code after printing why. */
static int resolve_target(db_conn *c, report_target *t, int64_t run_arg) {
    db_error err;
    int found = review_period(c, t->period, 0, NULL, 0, t->ruleset, sizeof t->ruleset, &err);
    if (found < 0)
        return cli_fail_db(&err, "report: reading the period");
    if (!found)
        return cli_refuse("report: period %s does not exist", t->period);

    int rc = review_choose_run(c, "report", t->period, run_arg, &t->run_id, &t->how);
    if (rc != ALLOC_EXIT_OK)
        return rc;

    /* The run's ruleset names the table's rows; the period's, when the run has none. */
    char id[24];
    snprintf(id, sizeof id, "%" PRId64, t->run_id);
    const char *id_param[] = {id};
    PGresult *res =
        db_query(c, "SELECT ruleset FROM alloc_run WHERE run_id = $1 AND ruleset IS NOT NULL", 1,
                 id_param, PGRES_TUPLES_OK, &err);
    if (!res)
        return cli_fail_db(&err, "report: reading the run");
    if (PQntuples(res) == 1)
        snprintf(t->ruleset, sizeof t->ruleset, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);

    if (t->version) {
        const char *params[] = {t->version};
        int64_t one;
        found = db_query_int64(c, "SELECT 1 FROM report_version WHERE version = $1", 1, params,
                               &one, &err);
        if (found < 0)
            return cli_fail_db(&err, "report: reading report_version");
        if (!found)
            return cli_refuse("report: version %s does not exist", t->version);
    }

    /* A data source is known when the run has rows of it or a project belongs
     * to it (then a version without its rows shows "no rows"). */
    if (t->data_source) {
        const char *params[] = {id, t->data_source};
        int64_t one;
        found = db_query_int64(c,
                               "SELECT 1 WHERE EXISTS (SELECT 1 FROM report_after "
                               "  WHERE run_id = $1 AND data_source = $2) "
                               "OR EXISTS (SELECT 1 FROM project WHERE data_source = $2)",
                               2, params, &one, &err);
        if (found < 0)
            return cli_fail_db(&err, "report: looking for the data source");
        if (!found)
            return cli_refuse("report: data source %s is unknown: no project and no row of run "
                              "%" PRId64 " has it",
                              t->data_source, t->run_id);
    }
    return ALLOC_EXIT_OK;
}

/* ---- checksum, csv, json: streamed rows ---------------------------------- */

/* The rows of the run in checksum order (byte order, field by field); $2 NULL
 * = every version, $3 NULL = every data source. rows_sql_c spells the order with COLLATE "C";
 * rows_sql_plain leaves it to the columns' collation, which lets the primary key index deliver the
 * rows in order (no sort of millions of rows) and is used only when that collation is byte order
 * (see db_keys_in_byte_order). */
#define ROWS_SQL(COLLATE)                                                                          \
    "SELECT version, data_source, project_code, item_code, amount::text "                          \
    "FROM report_after WHERE run_id = $1 AND ($2::text IS NULL OR version = $2) "                  \
    "AND ($3::text IS NULL OR data_source = $3) "                                                  \
    "ORDER BY version" COLLATE ", data_source" COLLATE ", project_code" COLLATE                    \
    ", item_code" COLLATE
static const char rows_sql_c[] = ROWS_SQL(" COLLATE \"C\"");
static const char rows_sql_plain[] = ROWS_SQL("");

typedef int (*row_fn)(db_stream *s, int64_t n, void *ud);

/* Streams the run's rows (of version and data_source; all when NULL) to fn.
 * Returns the number of rows, or -1 after printing why. */
static int64_t stream_rows(db_conn *c, const report_target *t, const char *version,
                           const char *data_source, row_fn fn, void *ud) {
    char id[24];
    snprintf(id, sizeof id, "%" PRId64, t->run_id);
    const char *params[] = {id, version, data_source};
    db_error err;
    db_stream *s = db_stream_open(c, t->byte_order ? rows_sql_plain : rows_sql_c, 3, params, &err);
    if (!s) {
        cli_fail_db(&err, "report: reading report_after");
        return -1;
    }
    db_stream_set_fetch_rows(s, REPORT_FETCH_ROWS);
    int64_t n = 0;
    int more;
    while ((more = db_stream_next(s, &err)) == 1) {
        if (fn(s, n, ud) < 0) {
            db_stream_close(s);
            return -1;
        }
        n++;
    }
    db_stream_close(s);
    if (more < 0) {
        cli_fail_db(&err, "report: reading report_after");
        return -1;
    }
    return n;
}

static int checksum_row(db_stream *s, int64_t n, void *ud) {
    (void)n;
    const char *amount = db_stream_get(s, 4);
    if (report_fmt_sha256_line(ud, db_stream_get(s, 0), db_stream_get(s, 1), db_stream_get(s, 2),
                               db_stream_get(s, 3), amount) < 0) {
        fprintf(stderr,
                "alloc-producer: report: checksum: cannot hash the row (%s, %s, %s, %s) "
                "with amount '%s'\n",
                db_stream_get(s, 0), db_stream_get(s, 1), db_stream_get(s, 2), db_stream_get(s, 3),
                amount ? amount : "NULL");
        return -1;
    }
    return 0;
}

static int print_checksum(db_conn *c, const report_target *t) {
    report_fmt_sha256 *h = report_fmt_sha256_new();
    if (!h) {
        fprintf(stderr, "alloc-producer: report: checksum: cannot start SHA-256\n");
        return ALLOC_EXIT_RUNTIME;
    }
    char hex[65];
    int rc = ALLOC_EXIT_RUNTIME;
    if (stream_rows(c, t, NULL, NULL, checksum_row, h) >= 0) {
        if (report_fmt_sha256_hex(h, hex) == 0) {
            printf("%s\n", hex);
            rc = ALLOC_EXIT_OK;
        } else {
            fprintf(stderr, "alloc-producer: report: checksum: SHA-256 failed\n");
        }
    }
    report_fmt_sha256_free(h);
    return rc;
}

/* Writes the amount column's text: the normalized numeric, or fallback for NULL. */
static int print_amount(const char *text, const char *null_text) {
    if (!text) {
        fputs(null_text, stdout);
        return 0;
    }
    char buf[REPORT_FMT_AMOUNT_MAX];
    if (report_fmt_amount(text, buf, sizeof buf) < 0) {
        fprintf(stderr, "alloc-producer: report: unexpected amount '%s'\n", text);
        return -1;
    }
    fputs(buf, stdout);
    return 0;
}

static int csv_row(db_stream *s, int64_t n, void *ud) {
    (void)n;
    (void)ud;
    for (int col = 0; col < 4; col++) {
        report_fmt_csv_field(stdout, db_stream_get(s, col));
        putchar(',');
    }
    if (print_amount(db_stream_get(s, 4), "") < 0)
        return -1;
    putchar('\n');
    return ferror(stdout) ? -1 : 0;
}

static const char *const row_keys[] = {"version", "data_source", "project_code", "item_code"};

static int json_row(db_stream *s, int64_t n, void *ud) {
    (void)ud;
    fputs(n == 0 ? "\n  {" : ",\n  {", stdout);
    for (int col = 0; col < 4; col++) {
        printf("\"%s\": ", row_keys[col]);
        report_fmt_json_string(stdout, db_stream_get(s, col));
        fputs(", ", stdout);
    }
    fputs("\"amount\": ", stdout);
    if (print_amount(db_stream_get(s, 4), "null") < 0)
        return -1;
    putchar('}');
    return ferror(stdout) ? -1 : 0;
}

static int print_csv(db_conn *c, const report_target *t) {
    fputs("version,data_source,project_code,item_code,amount\n", stdout);
    return stream_rows(c, t, t->version, t->data_source, csv_row, NULL) < 0 ? ALLOC_EXIT_RUNTIME
                                                                            : ALLOC_EXIT_OK;
}

static int print_json(db_conn *c, const report_target *t) {
    putchar('[');
    int64_t n = stream_rows(c, t, t->version, t->data_source, json_row, NULL);
    if (n < 0)
        return ALLOC_EXIT_RUNTIME;
    fputs(n > 0 ? "\n]\n" : "]\n", stdout);
    return ALLOC_EXIT_OK;
}

/* ---- table ------------------------------------------------------------------ */

/* One version's cells laid out as a report_table: row r of the cells result
 * (column, item_code, amount) is cell r of the table, the items are the rows
 * of the items result (item_code, name, kind, formula), so the table's
 * indices are the results' row numbers. The arrays point into both results. */
typedef struct version_table {
    report_table_item *items;
    report_table_cell *cells;
    report_table table;
} version_table;

static void version_table_free(version_table *vt) {
    free(vt->items);
    free(vt->cells);
    report_table_free(&vt->table);
    memset(vt, 0, sizeof *vt);
}

/* Returns 0, or -1 when out of memory (free *vt anyway). */
static int version_table_build(version_table *vt, const PGresult *items_res,
                               const PGresult *cells_res) {
    int nitems = PQntuples(items_res), ncells = PQntuples(cells_res);
    vt->items = malloc(sizeof *vt->items * (size_t)(nitems > 0 ? nitems : 1));
    vt->cells = malloc(sizeof *vt->cells * (size_t)(ncells > 0 ? ncells : 1));
    if (!vt->items || !vt->cells)
        return -1;
    for (int i = 0; i < nitems; i++)
        vt->items[i] =
            (report_table_item){PQgetvalue(items_res, i, 0), PQgetvalue(items_res, i, 1)};
    for (int r = 0; r < ncells; r++)
        vt->cells[r] =
            (report_table_cell){PQgetvalue(cells_res, r, 0), PQgetvalue(cells_res, r, 1),
                                PQgetisnull(cells_res, r, 2) ? NULL : PQgetvalue(cells_res, r, 2)};
    return report_table_build(&vt->table, vt->items, (size_t)nitems, vt->cells, (size_t)ncells);
}

/* The versions to show (version, name), in byte order; NULL after printing why. */
static PGresult *read_versions(db_conn *c, const report_target *t) {
    db_error err;
    const char *params[] = {t->version};
    PGresult *res = db_query(c,
                             "SELECT version, name FROM report_version "
                             "WHERE $1::text IS NULL OR version = $1 "
                             "ORDER BY version COLLATE \"C\"",
                             1, params, PGRES_TUPLES_OK, &err);
    if (!res)
        cli_fail_db(&err, "report: reading report_version");
    return res;
}

/* The run's report items (item_code, name, kind, formula) in display order:
 * as the run's snapshot kept them (run_item), so later ruleset edits never
 * rename or reorder a run's report; the ruleset's current items only for a run
 * that kept none (rows written by hand). NULL after printing why. */
static PGresult *read_items(db_conn *c, const report_target *t) {
    db_error err;
    char id[24];
    snprintf(id, sizeof id, "%" PRId64, t->run_id);
    const char *params[] = {id, t->ruleset};
    PGresult *res = db_query(c,
                             "SELECT item_code, name, kind, formula FROM ("
                             " SELECT item_code, name, kind, formula, sort_order FROM run_item "
                             " WHERE run_id = $1 "
                             " UNION ALL "
                             " SELECT item_code, name, kind, formula, sort_order FROM report_item "
                             " WHERE ruleset = $2 "
                             " AND NOT EXISTS (SELECT 1 FROM run_item WHERE run_id = $1)) i "
                             "ORDER BY sort_order, item_code COLLATE \"C\"",
                             2, params, PGRES_TUPLES_OK, &err);
    if (!res)
        cli_fail_db(&err, "report: reading report_item");
    return res;
}

/* One version's cells (column, item_code, amount): the #TOTAL row of each data
 * source, or with --by project every row of the data source. NULL after
 * printing why. */
static PGresult *read_cells(db_conn *c, const report_target *t, const char *version) {
    db_error err;
    char id[24];
    snprintf(id, sizeof id, "%" PRId64, t->run_id);
    const char *params[] = {id, version, t->data_source};
    PGresult *res =
        t->data_source
            ? db_query(c,
                       "SELECT project_code, item_code, amount::text FROM report_after "
                       "WHERE run_id = $1 AND version = $2 AND data_source = $3",
                       3, params, PGRES_TUPLES_OK, &err)
            : db_query(c,
                       "SELECT data_source, item_code, amount::text FROM report_after "
                       "WHERE run_id = $1 AND version = $2 AND project_code = '" RESERVED_TOTAL "'",
                       2, params, PGRES_TUPLES_OK, &err);
    if (!res)
        cli_fail_db(&err, "report: reading report_after");
    return res;
}

/* ---- findings ------------------------------------------------------------------- */

/* The findings section under the table report: a count per rule and its
 * first lines (all of them: `alloc-producer findings`). Returns an exit code. */
static int print_findings_section(db_conn *c, const report_target *t) {
    findings_summary sum;
    db_error err;
    if (findings_summarize(c, t->run_id, FINDINGS_FIRST_LINES, &sum, &err) < 0)
        return cli_fail_db(&err, "report: reading the findings");
    findings_print_summary(stdout, &sum, t->run_id, t->period);
    findings_summary_free(&sum);
    return ALLOC_EXIT_OK;
}

/* The findings section of the HTML page. Returns an exit code. */
static int html_add_findings(report_html *page, db_conn *c, const report_target *t) {
    findings_summary sum;
    db_error err;
    if (findings_summarize(c, t->run_id, FINDINGS_FIRST_LINES, &sum, &err) < 0)
        return cli_fail_db(&err, "report: reading the findings");
    report_html_finding *f = calloc(sum.nrules ? sum.nrules : 1, sizeof *f);
    int rc = ALLOC_EXIT_OK;
    if (f) {
        for (size_t i = 0; i < sum.nrules; i++)
            f[i] = (report_html_finding){
                sum.rules[i].rule_code, sum.rules[i].severity, sum.rules[i].count,
                (const char *const *)sum.rules[i].lines, sum.rules[i].nlines};
        char summary[96];
        snprintf(summary, sizeof summary, "%" PRId64 " error, %" PRId64 " warning", sum.errors,
                 sum.warnings);
        if (report_html_set_findings(page, summary, f, sum.nrules) < 0) {
            free(f);
            f = NULL;
        }
    }
    if (!f) {
        fprintf(stderr, "alloc-producer: report: out of memory building the page\n");
        rc = ALLOC_EXIT_RUNTIME;
    }
    free(f);
    findings_summary_free(&sum);
    return rc;
}

static int print_table(db_conn *c, const report_target *t) {
    PGresult *versions = read_versions(c, t);
    if (!versions)
        return ALLOC_EXIT_RUNTIME;
    PGresult *items = read_items(c, t);
    if (!items) {
        PQclear(versions);
        return ALLOC_EXIT_RUNTIME;
    }

    printf("report of period %s, run %" PRId64 " (%s)", t->period, t->run_id, t->how);
    if (t->data_source)
        printf(", projects of data source %s", t->data_source);
    putchar('\n');
    int rc = ALLOC_EXIT_OK;
    for (int v = 0; v < PQntuples(versions) && rc == ALLOC_EXIT_OK; v++) {
        const char *version = PQgetvalue(versions, v, 0);
        PGresult *cells = read_cells(c, t, version);
        if (!cells) {
            rc = ALLOC_EXIT_RUNTIME;
            break;
        }
        printf("\nversion %s (%s)\n", version, PQgetvalue(versions, v, 1));
        if (PQntuples(cells) == 0) {
            printf("no rows\n");
        } else {
            version_table vt = {0};
            if (version_table_build(&vt, items, cells) < 0 ||
                report_table_print(stdout, &vt.table, t->data_source ? "projects" : "data sources",
                                   REPORT_TABLE_WIDTH) < 0) {
                fprintf(stderr, "alloc-producer: report: out of memory laying out version %s\n",
                        version);
                rc = ALLOC_EXIT_RUNTIME;
            }
            version_table_free(&vt);
        }
        PQclear(cells);
    }
    if (rc == ALLOC_EXIT_OK)
        rc = print_findings_section(c, t);
    PQclear(items);
    PQclear(versions);
    return rc;
}

/* ---- html --------------------------------------------------------------------- */

/* 1 when `code` (len bytes) is a formula item of items (item_code, name, kind, formula). */
static int is_formula_code(const PGresult *items, const char *code, size_t len) {
    for (int i = 0; i < PQntuples(items); i++) {
        const char *c = PQgetvalue(items, i, 0);
        if (strlen(c) == len && memcmp(c, code, len) == 0)
            return strcmp(PQgetvalue(items, i, 2), "formula") == 0;
    }
    return 0;
}

/* 1 when the formula text refers to a formula item: an item reference is an
 * identifier not followed by '(' and not AND/OR/NOT, or a [bracketed] code
 * (DESIGN.md 5.5). A heuristic over the text, not a parse: a text that does
 * not compile cannot be in a succeeded run anyway. */
static int refers_to_formula(const char *text, const PGresult *items) {
    for (const char *p = text; p && *p;) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '[') {
            const char *end = strchr(p + 1, ']');
            if (!end)
                return 0;
            if (is_formula_code(items, p + 1, (size_t)(end - p - 1)))
                return 1;
            p = end + 1;
        } else if (isalpha(ch) || ch == '_') {
            const char *q = p;
            while (isalnum((unsigned char)*q) || *q == '_')
                q++;
            const char *after = q;
            while (isspace((unsigned char)*after))
                after++;
            size_t len = (size_t)(q - p);
            int keyword = (len == 3 && (!strncasecmp(p, "AND", 3) || !strncasecmp(p, "NOT", 3))) ||
                          (len == 2 && !strncasecmp(p, "OR", 2));
            if (*after != '(' && !keyword && is_formula_code(items, p, len))
                return 1;
            p = q;
        } else if (isdigit(ch) || ch == '.') {
            while (isalnum((unsigned char)*p) || *p == '.')
                p++;
        } else {
            p++;
        }
    }
    return 0;
}

/* Picks the chart's report lines among the grid's items that have a row: the
 * first REPORT_CHART_LINES formula items that build on other formula items
 * (the report's summary lines: revenue, cost, gross profit over their
 * subtotals), else, when fewer do, the first formula items, else the first
 * items. Writes their grid indices to rows; returns how many. */
static size_t chart_rows(const report_table *g, const PGresult *items, size_t *rows) {
    size_t n = 0;
    for (int pass = 0; pass < 3; pass++) {
        n = 0;
        for (size_t i = 0; i < g->nitems && n < REPORT_CHART_LINES; i++) {
            int has_row = 0;
            for (size_t k = 0; k < g->ncols && !has_row; k++)
                has_row = g->cells[i * g->ncols + k] >= 0;
            int src = g->item_src[i];
            int formula = src >= 0 && !strcmp(PQgetvalue(items, src, 2), "formula");
            if (!has_row || (pass < 2 && !formula))
                continue;
            if (pass == 0 && !refers_to_formula(PQgetvalue(items, src, 3), items))
                continue;
            rows[n++] = i;
        }
        if (n == REPORT_CHART_LINES)
            break;
    }
    return n;
}

/* Adds one version's table (and, when chart != 0, its chart) to the page.
 * Returns ALLOC_EXIT_OK, or the exit code after printing why. */
static int html_add_version(report_html *page, const report_target *t, const char *version,
                            const char *version_name, const PGresult *items, const PGresult *cells,
                            int chart) {
    char heading[512];
    snprintf(heading, sizeof heading, "Version %s \xE2\x80\x94 %s", version, version_name);
    version_table vt = {0};
    const report_table *g = &vt.table;
    report_html_cell *row = NULL;
    size_t *rows = NULL, *cols = NULL;
    int rc = ALLOC_EXIT_RUNTIME;
    if (PQntuples(cells) > 0 && version_table_build(&vt, items, cells) < 0)
        goto oom;
    long table = report_html_add_table(page, heading, "Item", g->ncols, g->cols);
    row = malloc(sizeof *row * (g->ncols ? g->ncols : 1));
    rows = malloc(sizeof *rows * REPORT_CHART_LINES);
    cols = malloc(sizeof *cols * (g->ncols ? g->ncols : 1));
    if (table < 0 || !row || !rows || !cols)
        goto oom;
    for (size_t i = 0; i < g->nitems; i++) {
        for (size_t k = 0; k < g->ncols; k++) {
            int r = g->cells[i * g->ncols + k];
            row[k] = (report_html_cell){REPORT_HTML_EMPTY, 0};
            if (r >= 0 && PQgetisnull(cells, r, 2)) {
                row[k].kind = REPORT_HTML_NULL;
            } else if (r >= 0) {
                row[k].kind = REPORT_HTML_AMOUNT;
                if (alloc_parse_scaled(PQgetvalue(cells, r, 2), 2, &row[k].cents) < 0) {
                    fprintf(stderr, "alloc-producer: report: unexpected amount '%s'\n",
                            PQgetvalue(cells, r, 2));
                    goto done;
                }
            }
        }
        int src = g->item_src[i];
        int formula = src >= 0 && !strcmp(PQgetvalue(items, src, 2), "formula");
        if (report_html_add_row(page, (size_t)table, g->item_names[i], g->item_codes[i], formula,
                                row) < 0)
            goto oom;
    }
    if (chart) {
        /* groups: the table's columns but the roll-up */
        size_t ncols = 0;
        for (size_t k = 0; k < g->ncols; k++)
            if (report_table_column_rank(g->cols[k]) < 2)
                cols[ncols++] = k;
        size_t nrows = chart_rows(g, items, rows);
        char title[600];
        if (t->data_source)
            snprintf(title, sizeof title, "Main report lines by project of %s, version %s",
                     t->data_source, version);
        else
            snprintf(title, sizeof title, "Main report lines by data source, version %s", version);
        if (report_html_add_chart(page, (size_t)table, title, rows, nrows, cols, ncols) < 0)
            goto oom;
    }
    rc = ALLOC_EXIT_OK;
    goto done;
oom:
    fprintf(stderr, "alloc-producer: report: out of memory laying out version %s\n", version);
done:
    free(row);
    free(rows);
    free(cols);
    version_table_free(&vt);
    return rc;
}

/* The header facts: period, run, status, versions, ruleset, columns. Returns
 * ALLOC_EXIT_OK, or the exit code after printing why. */
static int html_add_facts(report_html *page, db_conn *c, const report_target *t,
                          const PGresult *versions) {
    db_error err;
    int64_t published = 0;
    int found = review_published(c, t->period, &published, &err);
    if (found < 0)
        return cli_fail_db(&err, "report: reading report_published");
    char id[24];
    snprintf(id, sizeof id, "%" PRId64, t->run_id);
    const char *params[] = {id};
    PGresult *run = db_query(c,
                             "SELECT coalesce(to_char(finished_at AT TIME ZONE 'UTC', "
                             "'YYYY-MM-DD HH24:MI \"UTC\"'), '') FROM alloc_run WHERE run_id = $1",
                             1, params, PGRES_TUPLES_OK, &err);
    if (!run)
        return cli_fail_db(&err, "report: reading the run");

    char text[1024];
    int ok = report_html_add_fact(page, "Period", t->period, REPORT_HTML_PLAIN) == 0;
    if (PQntuples(run) == 1 && *PQgetvalue(run, 0, 0))
        snprintf(text, sizeof text, "%" PRId64 ", finished %s", t->run_id, PQgetvalue(run, 0, 0));
    else
        snprintf(text, sizeof text, "%" PRId64, t->run_id);
    PQclear(run);
    ok = ok && report_html_add_fact(page, "Run", text, REPORT_HTML_PLAIN) == 0;
    if (found && published == t->run_id)
        ok = ok && report_html_add_fact(page, "Status", "published", REPORT_HTML_GOOD) == 0;
    else {
        if (found)
            snprintf(text, sizeof text, "not published (run %" PRId64 " is the published one)",
                     published);
        else
            snprintf(text, sizeof text, "not published");
        ok = ok && report_html_add_fact(page, "Status", text, REPORT_HTML_WARN) == 0;
    }
    size_t len = 0;
    text[0] = '\0';
    for (int v = 0; v < PQntuples(versions) && len < sizeof text; v++)
        len += (size_t)snprintf(text + len, sizeof text - len, "%s%s (%s)", v ? ", " : "",
                                PQgetvalue(versions, v, 0), PQgetvalue(versions, v, 1));
    ok = ok && report_html_add_fact(page, "Versions", text, REPORT_HTML_PLAIN) == 0;
    ok = ok && report_html_add_fact(page, "Ruleset", t->ruleset, REPORT_HTML_PLAIN) == 0;
    if (t->data_source)
        snprintf(text, sizeof text,
                 "the projects of data source %s, " RESERVED_UNALLOCATED " and " RESERVED_TOTAL,
                 t->data_source);
    else
        snprintf(text, sizeof text,
                 "the " RESERVED_TOTAL " of each data source, and " RESERVED_ALL);
    ok = ok && report_html_add_fact(page, "Columns", text, REPORT_HTML_PLAIN) == 0;
    if (!ok) {
        fprintf(stderr, "alloc-producer: report: out of memory building the page\n");
        return ALLOC_EXIT_RUNTIME;
    }
    return ALLOC_EXIT_OK;
}

/* Writes the page to path through a temporary file in the same directory,
 * renamed over path at the end, so that a failure never leaves half a page.
 * Returns ALLOC_EXIT_OK, or ALLOC_EXIT_RUNTIME after printing why. */
static int write_page(const report_html *page, const char *path) {
    size_t len = strlen(path) + 32;
    char *tmp = malloc(len);
    if (!tmp) {
        fprintf(stderr, "alloc-producer: report: out of memory\n");
        return ALLOC_EXIT_RUNTIME;
    }
    snprintf(tmp, len, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) {
        fprintf(stderr, "alloc-producer: report: cannot write %s: %s\n", path, strerror(errno));
        free(tmp);
        return ALLOC_EXIT_RUNTIME;
    }
    int failed = report_html_write(page, f) < 0;
    int saved = errno;
    if (fclose(f) != 0 && !failed) {
        failed = 1;
        saved = errno;
    }
    if (!failed && rename(tmp, path) != 0) {
        failed = 1;
        saved = errno;
    }
    if (failed) {
        fprintf(stderr, "alloc-producer: report: cannot write %s: %s\n", path, strerror(saved));
        unlink(tmp);
        free(tmp);
        return ALLOC_EXIT_RUNTIME;
    }
    free(tmp);
    return ALLOC_EXIT_OK;
}

/* The HTML page: facts, a chart of version M (else of the first version with
 * rows) and a table per version. Built whole in memory before the file is
 * touched. */
static int write_html(db_conn *c, const report_target *t, const char *path) {
    PGresult *versions = read_versions(c, t);
    if (!versions)
        return ALLOC_EXIT_RUNTIME;
    PGresult *items = read_items(c, t);
    if (!items) {
        PQclear(versions);
        return ALLOC_EXIT_RUNTIME;
    }
    char title[512];
    if (t->data_source)
        snprintf(title, sizeof title, "Report of period %s, data source %s", t->period,
                 t->data_source);
    else
        snprintf(title, sizeof title, "Report of period %s", t->period);
    report_html *page = report_html_new(title);
    int rc = page ? html_add_facts(page, c, t, versions) : ALLOC_EXIT_RUNTIME;
    if (!page)
        fprintf(stderr, "alloc-producer: report: out of memory building the page\n");

    /* the charted version: M when selected and with rows, else the first with rows */
    int nversions = PQntuples(versions), charted = -1;
    PGresult **cells = calloc(nversions > 0 ? (size_t)nversions : 1, sizeof *cells);
    if (!cells && rc == ALLOC_EXIT_OK) {
        fprintf(stderr, "alloc-producer: report: out of memory\n");
        rc = ALLOC_EXIT_RUNTIME;
    }
    for (int v = 0; v < nversions && rc == ALLOC_EXIT_OK; v++) {
        cells[v] = read_cells(c, t, PQgetvalue(versions, v, 0));
        if (!cells[v]) {
            rc = ALLOC_EXIT_RUNTIME;
            break;
        }
        if (PQntuples(cells[v]) > 0 && (charted < 0 || !strcmp(PQgetvalue(versions, v, 0), "M")))
            charted = v;
    }
    for (int v = 0; v < nversions && rc == ALLOC_EXIT_OK; v++)
        rc = html_add_version(page, t, PQgetvalue(versions, v, 0), PQgetvalue(versions, v, 1),
                              items, cells[v], v == charted);
    if (rc == ALLOC_EXIT_OK)
        rc = html_add_findings(page, c, t);
    if (rc == ALLOC_EXIT_OK)
        rc = write_page(page, path);
    if (rc == ALLOC_EXIT_OK)
        printf("report of period %s, run %" PRId64 " (%s) written to %s\n", t->period, t->run_id,
               t->how, path);
    for (int v = 0; cells && v < nversions; v++)
        PQclear(cells[v]);
    free(cells);
    report_html_free(page);
    PQclear(items);
    PQclear(versions);
    return rc;
}

/* ---- command ------------------------------------------------------------------ */

int cmd_report(const alloc_config *cfg, int argc, char **argv) {
    if (wants_help(argc, argv)) {
        print_help();
        return ALLOC_EXIT_OK;
    }
    report_target t = {0};
    const char *run_text = NULL, *format_text = NULL, *by_text = NULL, *out_path = NULL;
    int checksum = 0;
    for (int i = 0; i < argc; i++) {
        const char *name = NULL;
        int got = 0;
        static const char *const valued[] = {"--period",      "--version", "--run", "--format",
                                             "--data-source", "--by",      "--out"};
        const char **slots[] = {&t.period,      &t.version, &run_text, &format_text,
                                &t.data_source, &by_text,   &out_path};
        for (int k = 0; k < 7 && !got; k++) {
            got = review_arg(argc, argv, &i, valued[k], slots[k]);
            name = valued[k];
        }
        if (got < 0)
            return usage_error(report_usage, "report: %s needs a value", name);
        if (got)
            continue;
        if (!strcmp(argv[i], "--checksum")) {
            checksum = 1;
            continue;
        }
        return usage_error(report_usage, "report: unknown argument '%s'", argv[i]);
    }
    if (!t.period)
        return usage_error(report_usage, "report: --period is required");
    if (!util_period_valid(t.period))
        return usage_error(report_usage, "report: bad period '%s' (want YYYY-MM)", t.period);
    int64_t run_arg = 0;
    if (run_text && report_fmt_parse_id(run_text, &run_arg) < 0)
        return usage_error(report_usage, "report: bad run id '%s' (want a positive integer)",
                           run_text);
    if (t.version && !*t.version)
        return usage_error(report_usage, "report: empty --version");
    report_format format = FORMAT_TABLE;
    if (format_text) {
        if (!strcmp(format_text, "table"))
            format = FORMAT_TABLE;
        else if (!strcmp(format_text, "csv"))
            format = FORMAT_CSV;
        else if (!strcmp(format_text, "json"))
            format = FORMAT_JSON;
        else if (!strcmp(format_text, "html"))
            format = FORMAT_HTML;
        else
            return usage_error(report_usage,
                               "report: bad format '%s' (want table, csv, json or html)",
                               format_text);
    }
    if (by_text && strcmp(by_text, "project") != 0 && strcmp(by_text, "data-source") != 0)
        return usage_error(report_usage, "report: bad --by '%s' (want data-source or project)",
                           by_text);
    if (by_text && !strcmp(by_text, "project") && !t.data_source)
        return usage_error(report_usage, "report: --by project needs --data-source");
    if (by_text && !strcmp(by_text, "data-source") && t.data_source)
        return usage_error(report_usage, "report: --data-source goes with --by project, "
                                         "not --by data-source");
    if (t.data_source && !*t.data_source)
        return usage_error(report_usage, "report: empty --data-source");
    if (checksum)
        t.data_source = NULL; /* the checksum covers every row */
    if (!checksum && format == FORMAT_HTML && (!out_path || !*out_path))
        return usage_error(report_usage, "report: --format html needs --out F.html");
    if (out_path && (checksum || format != FORMAT_HTML))
        return usage_error(report_usage,
                           "report: --out goes with --format html only (not --checksum)");

    db_conn *c = cli_connect_db(cfg, "report");
    if (!c)
        return ALLOC_EXIT_RUNTIME;
    db_error err;
    static const char *const tables[] = {"report_after"};
    /* outside the report's transaction, so that a failure here cannot abort it */
    t.byte_order = db_keys_in_byte_order(c, tables, 1);
    if (db_begin(c, "REPEATABLE READ READ ONLY", &err) < 0) {
        db_close(c);
        return cli_fail_db(&err, "report: starting the read transaction");
    }
    int rc = resolve_target(c, &t, run_arg);
    if (rc == ALLOC_EXIT_OK) {
        if (checksum)
            rc = print_checksum(c, &t);
        else if (format == FORMAT_CSV)
            rc = print_csv(c, &t);
        else if (format == FORMAT_JSON)
            rc = print_json(c, &t);
        else if (format == FORMAT_HTML)
            rc = write_html(c, &t, out_path);
        else
            rc = print_table(c, &t);
    }
    db_rollback(c, NULL); /* read only: nothing to keep */
    db_close(c);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "alloc-producer: report: writing the output: %s\n", strerror(errno));
        return ALLOC_EXIT_RUNTIME;
    }
    return rc;
}
