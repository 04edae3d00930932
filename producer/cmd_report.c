/* alloc-producer report: prints a run's report_after rows as a table, CSV or
 * JSON, or their checksum (DESIGN.md section 4). Everything is read in one
 * REPEATABLE READ snapshot, so a run started meanwhile (which deletes earlier
 * unpublished results) cannot tear the output; rows are streamed, so memory
 * stays bounded whatever the run's size. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "commands.h"
#include "db.h"
#include "report_fmt.h"
#include "review.h"

static const char report_usage[] =
    "alloc-producer report --period P [--version V] [--run ID] [--format table|csv|json] "
    "[--checksum]";

/* The table is wrapped into blocks of data-source columns no wider than this. */
#define REPORT_TABLE_WIDTH 132
/* Longest item name and data-source header shown in the table, in columns. */
#define REPORT_NAME_MAX 40
#define REPORT_HEADER_MAX 20

/* Rows fetched per round trip when streaming report_after. */
#define REPORT_FETCH_ROWS 20000

typedef enum { FORMAT_TABLE, FORMAT_CSV, FORMAT_JSON } report_format;

/* What the command works on, once resolved. */
typedef struct report_target {
    const char *period;
    const char *version; /* NULL = every version */
    int64_t run_id;
    const char *how;   /* why this run: "published", "latest succeeded, not published", "--run" */
    char ruleset[256]; /* the run's ruleset: whose report_item rows name the table's rows */
    int byte_order;    /* report_after's key columns compare in byte order already */
} report_target;

static void print_help(void) {
    printf("usage: %s\n\n"
           "Prints the report of a period: the rows of report_after of its published run,\n"
           "or, when none is published, of its latest succeeded run; --run ID picks a\n"
           "succeeded run of the period instead.\n\n"
           "  --period P        the period, YYYY-MM (required)\n"
           "  --version V       only this report version (default: every version)\n"
           "  --run ID          this run (it must belong to P and have succeeded)\n"
           "  --format F        table (default): per version, report items in their sort\n"
           "                    order as rows and the #TOTAL of each data source plus #ALL\n"
           "                    as columns, wrapped into blocks of columns %d characters\n"
           "                    wide; csv: every row, header\n"
           "                    version,data_source,project_code,item_code,amount (a NULL\n"
           "                    amount is an empty field); json: an array of objects with\n"
           "                    those keys (amount a number or null)\n"
           "  --checksum        print only the SHA-256 (lowercase hex) of the run's\n"
           "                    report_after rows, every version (--version and --format\n"
           "                    do not apply), one line per row sorted in byte order:\n"
           "                    version|data_source|project_code|item_code|amount\n\n"
           "Exit status: 0 printed, 2 bad arguments, 4 unknown period, run or version, or\n"
           "no succeeded run, 1 any other failure.\n\n%s",
           report_usage, REPORT_TABLE_WIDTH, config_flags_help());
}

/* ---- run selection ----------------------------------------------------------- */

/* Resolves the run (and checks the period and version) inside the open
 * snapshot. Returns ALLOC_EXIT_OK or the exit code after printing why. */
static int resolve_target(db_conn *c, report_target *t, int64_t run_arg) {
    db_error err;
    int found = review_period(c, t->period, 0, NULL, 0, t->ruleset, sizeof t->ruleset, &err);
    if (found < 0)
        return review_fail("report", "reading the period", &err);
    if (!found)
        return review_refuse("report", "period %s does not exist", t->period);

    if (run_arg) {
        char run_period[64], run_status[32];
        found = review_run(c, run_arg, run_period, sizeof run_period, run_status, sizeof run_status,
                           &err);
        if (found < 0)
            return review_fail("report", "reading the run", &err);
        if (!found)
            return review_refuse("report", "run %" PRId64 " does not exist", run_arg);
        if (strcmp(run_period, t->period) != 0)
            return review_refuse("report", "run %" PRId64 " belongs to period %s, not %s", run_arg,
                                 run_period, t->period);
        if (strcmp(run_status, "succeeded") != 0)
            return review_refuse("report",
                                 "run %" PRId64 " is %s, not succeeded: it has no "
                                 "complete report",
                                 run_arg, run_status);
        t->run_id = run_arg;
        t->how = "chosen with --run";
    } else {
        found = review_published(c, t->period, &t->run_id, &err);
        if (found < 0)
            return review_fail("report", "reading report_published", &err);
        t->how = "published";
        if (!found) {
            found = review_latest_succeeded(c, t->period, &t->run_id, &err);
            if (found < 0)
                return review_fail("report", "looking for the latest succeeded run", &err);
            if (!found)
                return review_refuse("report", "period %s has no succeeded run", t->period);
            t->how = "latest succeeded, not published";
        }
    }

    /* The run's ruleset names the table's rows; the period's, when the run has none. */
    char id[24];
    snprintf(id, sizeof id, "%" PRId64, t->run_id);
    const char *id_param[] = {id};
    PGresult *res =
        db_query(c, "SELECT ruleset FROM alloc_run WHERE run_id = $1 AND ruleset IS NOT NULL", 1,
                 id_param, PGRES_TUPLES_OK, &err);
    if (!res)
        return review_fail("report", "reading the run", &err);
    if (PQntuples(res) == 1)
        snprintf(t->ruleset, sizeof t->ruleset, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);

    if (t->version) {
        const char *params[] = {t->version};
        int64_t one;
        found = db_query_int64(c, "SELECT 1 FROM report_version WHERE version = $1", 1, params,
                               &one, &err);
        if (found < 0)
            return review_fail("report", "reading report_version", &err);
        if (!found)
            return review_refuse("report", "version %s does not exist", t->version);
    }
    return ALLOC_EXIT_OK;
}

/* ---- checksum, csv, json: streamed rows ---------------------------------- */

/* The rows of the run in checksum order (byte order, field by field); $2 NULL
 * = every version. rows_sql_c spells the order with COLLATE "C"; rows_sql_plain
 * leaves it to the columns' collation, which lets the primary key index deliver
 * the rows in order (no sort of millions of rows) and is used only when that
 * collation is byte order (see byte_order_columns). */
#define ROWS_SQL(COLLATE)                                                                          \
    "SELECT version, data_source, project_code, item_code, amount::text "                          \
    "FROM report_after WHERE run_id = $1 AND ($2::text IS NULL OR version = $2) "                  \
    "ORDER BY version" COLLATE ", data_source" COLLATE ", project_code" COLLATE                    \
    ", item_code" COLLATE
static const char rows_sql_c[] = ROWS_SQL(" COLLATE \"C\"");
static const char rows_sql_plain[] = ROWS_SQL("");

/* 1 when the key columns of report_after compare in byte order already: their
 * collation is C or POSIX, or the database default with a libc C or POSIX
 * locale (to_jsonb reads datlocprovider without failing on servers before 15,
 * which have only libc). 0 when not or when the check fails (the COLLATE "C"
 * form is always right, only slower). Runs outside the report's transaction,
 * so that a failure here cannot abort it. */
static int byte_order_columns(db_conn *c) {
    int64_t ok = 0;
    int found =
        db_query_int64(c,
                       "SELECT bool_and(CASE WHEN a.attcollation = 100 "
                       "  THEN coalesce(to_jsonb(d) ->> 'datlocprovider', 'c') = 'c' "
                       "       AND d.datcollate IN ('C', 'POSIX') "
                       "  ELSE coalesce(co.collname IN ('C', 'POSIX'), false) END)::int "
                       "FROM pg_attribute a "
                       "LEFT JOIN pg_collation co ON co.oid = a.attcollation "
                       "JOIN pg_database d ON d.datname = current_database() "
                       "WHERE a.attrelid = 'report_after'::regclass "
                       "  AND a.attname IN ('version', 'data_source', 'project_code', 'item_code')",
                       0, NULL, &ok, NULL);
    return found == 1 && ok == 1;
}

typedef int (*row_fn)(db_stream *s, int64_t n, void *ud);

/* Streams the run's rows (of version, or all when NULL) to fn. Returns the
 * number of rows, or -1 after printing why. */
static int64_t stream_rows(db_conn *c, const report_target *t, const char *version, row_fn fn,
                           void *ud) {
    char id[24];
    snprintf(id, sizeof id, "%" PRId64, t->run_id);
    const char *params[] = {id, version};
    db_error err;
    db_stream *s = db_stream_open(c, t->byte_order ? rows_sql_plain : rows_sql_c, 2, params, &err);
    if (!s) {
        review_fail("report", "reading report_after", &err);
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
        review_fail("report", "reading report_after", &err);
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
    if (stream_rows(c, t, NULL, checksum_row, h) >= 0) {
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
    return stream_rows(c, t, t->version, csv_row, NULL) < 0 ? ALLOC_EXIT_RUNTIME : ALLOC_EXIT_OK;
}

static int print_json(db_conn *c, const report_target *t) {
    putchar('[');
    int64_t n = stream_rows(c, t, t->version, json_row, NULL);
    if (n < 0)
        return ALLOC_EXIT_RUNTIME;
    fputs(n > 0 ? "\n]\n" : "]\n", stdout);
    return ALLOC_EXIT_OK;
}

/* ---- table ------------------------------------------------------------------ */

/* One version's #TOTAL rows laid out as a grid: row r of res is cell
 * (item, data source); cells[i * nds + d] holds that row index or -1. */
typedef struct report_grid {
    const char **item_codes; /* in display order */
    const char **item_names;
    size_t nitems, cap_items;
    const char **ds; /* data sources in byte order, #ALL last */
    size_t nds;
    int *cells;
} report_grid;

static void grid_free(report_grid *g) {
    free(g->item_codes);
    free(g->item_names);
    free(g->ds);
    free(g->cells);
    memset(g, 0, sizeof *g);
}

/* Item lookup: indices into item_codes sorted by code. */
typedef struct item_index {
    const char *code;
    size_t item;
} item_index;

static int item_index_cmp(const void *a, const void *b) {
    return strcmp(((const item_index *)a)->code, ((const item_index *)b)->code);
}

static int ds_cmp(const void *a, const void *b) {
    const char *x = *(const char *const *)a, *y = *(const char *const *)b;
    int xa = strcmp(x, "#ALL") == 0, ya = strcmp(y, "#ALL") == 0;
    if (xa != ya)
        return xa - ya;
    return strcmp(x, y);
}

static int grid_add_item(report_grid *g, const char *code, const char *name) {
    if (g->nitems == g->cap_items) {
        size_t cap = g->cap_items ? 2 * g->cap_items : 64;
        const char **codes = realloc(g->item_codes, cap * sizeof *codes);
        if (!codes)
            return -1;
        g->item_codes = codes;
        const char **names = realloc(g->item_names, cap * sizeof *names);
        if (!names)
            return -1;
        g->item_names = names;
        g->cap_items = cap;
    }
    g->item_codes[g->nitems] = code;
    g->item_names[g->nitems] = name;
    g->nitems++;
    return 0;
}

/* Lays out cells (rows: data_source, item_code, amount) over the items of
 * items_res (rows: item_code, name, in display order); item codes of cells
 * that the ruleset lacks are appended, named by their code. The grid points
 * into both results. Returns 0, or -1 when out of memory. */
static int grid_build(report_grid *g, const PGresult *items_res, const PGresult *cells_res) {
    int nitems = PQntuples(items_res), ncells = PQntuples(cells_res);
    for (int i = 0; i < nitems; i++)
        if (grid_add_item(g, PQgetvalue(items_res, i, 0), PQgetvalue(items_res, i, 1)) < 0)
            return -1;

    /* data sources: distinct values of the cells, #ALL last */
    g->ds = malloc(sizeof *g->ds * (size_t)(ncells > 0 ? ncells : 1));
    if (!g->ds)
        return -1;
    for (int r = 0; r < ncells; r++)
        g->ds[r] = PQgetvalue(cells_res, r, 0);
    if (ncells > 0)
        qsort(g->ds, (size_t)ncells, sizeof *g->ds, ds_cmp);
    for (int r = 0; r < ncells; r++)
        if (g->nds == 0 || strcmp(g->ds[g->nds - 1], g->ds[r]) != 0)
            g->ds[g->nds++] = g->ds[r];

    /* items of the cells that the ruleset lacks */
    size_t nindex = g->nitems + (size_t)ncells;
    item_index *index = malloc(sizeof *index * (nindex > 0 ? nindex : 1));
    if (!index)
        return -1;
    size_t n = 0;
    for (size_t i = 0; i < g->nitems; i++)
        index[n++] = (item_index){g->item_codes[i], i};
    qsort(index, n, sizeof *index, item_index_cmp);
    size_t known = n;
    for (int r = 0; r < ncells; r++) {
        item_index key = {PQgetvalue(cells_res, r, 1), 0};
        if (bsearch(&key, index, known, sizeof *index, item_index_cmp))
            continue;
        int seen = 0;
        for (size_t k = known; k < n && !seen; k++)
            seen = strcmp(index[k].code, key.code) == 0;
        if (seen)
            continue;
        if (grid_add_item(g, key.code, key.code) < 0) {
            free(index);
            return -1;
        }
        index[n++] = (item_index){key.code, g->nitems - 1};
    }
    qsort(index, n, sizeof *index, item_index_cmp);

    g->cells = malloc(sizeof *g->cells * (g->nitems * g->nds > 0 ? g->nitems * g->nds : 1));
    if (!g->cells) {
        free(index);
        return -1;
    }
    for (size_t k = 0; k < g->nitems * g->nds; k++)
        g->cells[k] = -1;
    for (int r = 0; r < ncells; r++) {
        item_index key = {PQgetvalue(cells_res, r, 1), 0};
        const item_index *it = bsearch(&key, index, n, sizeof *index, item_index_cmp);
        const char *ds = PQgetvalue(cells_res, r, 0);
        const char **d = bsearch(&ds, g->ds, g->nds, sizeof *g->ds, ds_cmp);
        if (it && d)
            g->cells[it->item * g->nds + (size_t)(d - g->ds)] = r;
    }
    free(index);
    return 0;
}

/* A cell's text: empty when no row, "n/a" for a NULL amount, else the amount
 * with thousands separators. */
static const char *cell_text(const report_grid *g, const PGresult *cells_res, size_t item, size_t d,
                             char *buf, size_t len) {
    int r = g->cells[item * g->nds + d];
    if (r < 0)
        return "";
    if (PQgetisnull(cells_res, r, 2))
        return "n/a";
    if (report_fmt_thousands_text(PQgetvalue(cells_res, r, 2), buf, len) < 0)
        return PQgetvalue(cells_res, r, 2);
    return buf;
}

static size_t min_size(size_t a, size_t b) {
    return a < b ? a : b;
}

/* Prints one version's grid, wrapped into blocks of columns. */
static void print_grid(const report_grid *g, const PGresult *cells_res) {
    char buf[REPORT_FMT_AMOUNT_MAX];
    size_t name_w = strlen("item");
    for (size_t i = 0; i < g->nitems; i++)
        if (report_fmt_display_width(g->item_names[i]) > name_w)
            name_w = report_fmt_display_width(g->item_names[i]);
    name_w = min_size(name_w, REPORT_NAME_MAX);

    size_t *col_w = calloc(g->nds ? g->nds : 1, sizeof *col_w);
    if (!col_w)
        return;
    for (size_t d = 0; d < g->nds; d++) {
        col_w[d] = min_size(report_fmt_display_width(g->ds[d]), REPORT_HEADER_MAX);
        for (size_t i = 0; i < g->nitems; i++) {
            size_t w = strlen(cell_text(g, cells_res, i, d, buf, sizeof buf));
            if (w > col_w[d])
                col_w[d] = w;
        }
    }

    for (size_t first = 0; first < g->nds;) {
        size_t last = first, width = name_w + 2 + col_w[first];
        while (last + 1 < g->nds && width + 2 + col_w[last + 1] <= REPORT_TABLE_WIDTH)
            width += 2 + col_w[++last];
        if (first > 0 || last + 1 < g->nds)
            printf("data sources %zu-%zu of %zu\n", first + 1, last + 1, g->nds);
        report_fmt_pad(stdout, "item", name_w, 0);
        for (size_t d = first; d <= last; d++) {
            fputs("  ", stdout);
            report_fmt_pad(stdout, g->ds[d], col_w[d], 1);
        }
        putchar('\n');
        for (size_t k = 0; k < width; k++)
            putchar('-');
        putchar('\n');
        for (size_t i = 0; i < g->nitems; i++) {
            report_fmt_pad(stdout, g->item_names[i], name_w, 0);
            for (size_t d = first; d <= last; d++) {
                fputs("  ", stdout);
                report_fmt_pad(stdout, cell_text(g, cells_res, i, d, buf, sizeof buf), col_w[d], 1);
            }
            putchar('\n');
        }
        first = last + 1;
        if (first < g->nds)
            putchar('\n');
    }
    free(col_w);
}

static int print_table(db_conn *c, const report_target *t) {
    db_error err;
    char id[24];
    snprintf(id, sizeof id, "%" PRId64, t->run_id);

    const char *vparams[] = {t->version};
    PGresult *versions = db_query(c,
                                  "SELECT version, name FROM report_version "
                                  "WHERE $1::text IS NULL OR version = $1 "
                                  "ORDER BY version COLLATE \"C\"",
                                  1, vparams, PGRES_TUPLES_OK, &err);
    if (!versions)
        return review_fail("report", "reading report_version", &err);
    const char *iparams[] = {t->ruleset};
    PGresult *items = db_query(c,
                               "SELECT item_code, name FROM report_item WHERE ruleset = $1 "
                               "ORDER BY sort_order, item_code COLLATE \"C\"",
                               1, iparams, PGRES_TUPLES_OK, &err);
    if (!items) {
        PQclear(versions);
        return review_fail("report", "reading report_item", &err);
    }

    printf("report of period %s, run %" PRId64 " (%s)\n", t->period, t->run_id, t->how);
    int rc = ALLOC_EXIT_OK;
    for (int v = 0; v < PQntuples(versions) && rc == ALLOC_EXIT_OK; v++) {
        const char *version = PQgetvalue(versions, v, 0);
        const char *cparams[] = {id, version};
        PGresult *cells = db_query(c,
                                   "SELECT data_source, item_code, amount::text FROM report_after "
                                   "WHERE run_id = $1 AND version = $2 AND project_code = '#TOTAL'",
                                   2, cparams, PGRES_TUPLES_OK, &err);
        if (!cells) {
            rc = review_fail("report", "reading report_after", &err);
            break;
        }
        printf("\nversion %s (%s)\n", version, PQgetvalue(versions, v, 1));
        if (PQntuples(cells) == 0) {
            printf("no rows\n");
        } else {
            report_grid g = {0};
            if (grid_build(&g, items, cells) < 0) {
                fprintf(stderr, "alloc-producer: report: out of memory laying out version %s\n",
                        version);
                rc = ALLOC_EXIT_RUNTIME;
            } else {
                print_grid(&g, cells);
            }
            grid_free(&g);
        }
        PQclear(cells);
    }
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
    const char *run_text = NULL, *format_text = NULL;
    int checksum = 0;
    for (int i = 0; i < argc; i++) {
        const char *name = NULL;
        int got = 0;
        static const char *const valued[] = {"--period", "--version", "--run", "--format"};
        const char **slots[] = {&t.period, &t.version, &run_text, &format_text};
        for (int k = 0; k < 4 && !got; k++) {
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
    if (!report_fmt_period_valid(t.period))
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
        else
            return usage_error(report_usage, "report: bad format '%s' (want table, csv or json)",
                               format_text);
    }

    db_conn *c = review_connect(cfg, "report");
    if (!c)
        return ALLOC_EXIT_RUNTIME;
    db_error err;
    t.byte_order = byte_order_columns(c);
    if (db_begin(c, "REPEATABLE READ READ ONLY", &err) < 0) {
        db_close(c);
        return review_fail("report", "starting the read transaction", &err);
    }
    int rc = resolve_target(c, &t, run_arg);
    if (rc == ALLOC_EXIT_OK) {
        if (checksum)
            rc = print_checksum(c, &t);
        else if (format == FORMAT_CSV)
            rc = print_csv(c, &t);
        else if (format == FORMAT_JSON)
            rc = print_json(c, &t);
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
