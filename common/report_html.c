/* The report as a self-contained HTML page with inline-SVG bar charts (see
 * report_html.h). The markup is also well-formed XML (every element closed,
 * attributes quoted, only the XML character references), so a strict parser
 * reads it as well as a browser. */
#include "report_html.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "report_fmt.h"
#include "reserved.h"
#include "util.h"

typedef struct html_fact {
    char *label, *value;
    report_html_tone tone;
} html_fact;

typedef struct html_row {
    char *name, *code; /* code may be NULL */
    int is_formula;
    report_html_cell *cells; /* the table's ncols cells */
} html_row;

typedef struct html_table {
    char *heading, *corner;
    char **columns;
    size_t ncols;
    html_row *rows;
    size_t nrows, cap_rows;
} html_table;

typedef struct html_chart {
    size_t table;
    char *heading;
    size_t *rows, nrows; /* series: row indices of the table */
    size_t *cols, ncols; /* groups: column indices, at most REPORT_HTML_CHART_GROUPS */
    size_t ncols_asked;  /* groups asked for, to say how many were left out */
} html_chart;

typedef struct html_finding {
    char *rule_code, *severity;
    int64_t count;
    char **lines;
    size_t nlines;
} html_finding;

struct report_html {
    char *title;
    int has_findings;
    char *findings_summary;
    html_finding *findings;
    size_t nfindings;
    html_fact *facts;
    size_t nfacts, cap_facts;
    html_table *tables;
    size_t ntables, cap_tables;
    html_chart *charts;
    size_t ncharts, cap_charts;
};

/* ---- building ------------------------------------------------------------- */

/* Makes room for one more element in *items (n used, *cap allocated, each
 * `size` bytes). Returns 0, or -1 when out of memory (*items untouched). */
static int grow(void **items, size_t n, size_t *cap, size_t size) {
    if (n < *cap)
        return 0;
    size_t ncap = *cap ? 2 * *cap : 8;
    void *p = realloc(*items, ncap * size);
    if (!p)
        return -1;
    *items = p;
    *cap = ncap;
    return 0;
}

report_html *report_html_new(const char *title) {
    report_html *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->title = util_strdup(title);
    if (!h->title) {
        free(h);
        return NULL;
    }
    return h;
}

static void table_clear(html_table *t) {
    free(t->heading);
    free(t->corner);
    for (size_t c = 0; c < t->ncols; c++)
        free(t->columns[c]);
    free(t->columns);
    for (size_t r = 0; r < t->nrows; r++) {
        free(t->rows[r].name);
        free(t->rows[r].code);
        free(t->rows[r].cells);
    }
    free(t->rows);
}

static void findings_clear(report_html *h) {
    for (size_t i = 0; i < h->nfindings; i++) {
        free(h->findings[i].rule_code);
        free(h->findings[i].severity);
        for (size_t l = 0; l < h->findings[i].nlines; l++)
            free(h->findings[i].lines[l]);
        free(h->findings[i].lines);
    }
    free(h->findings);
    free(h->findings_summary);
    h->findings = NULL;
    h->findings_summary = NULL;
    h->nfindings = 0;
    h->has_findings = 0;
}

void report_html_free(report_html *h) {
    if (!h)
        return;
    findings_clear(h);
    free(h->title);
    for (size_t i = 0; i < h->nfacts; i++) {
        free(h->facts[i].label);
        free(h->facts[i].value);
    }
    free(h->facts);
    for (size_t i = 0; i < h->ntables; i++)
        table_clear(&h->tables[i]);
    free(h->tables);
    for (size_t i = 0; i < h->ncharts; i++) {
        free(h->charts[i].heading);
        free(h->charts[i].rows);
        free(h->charts[i].cols);
    }
    free(h->charts);
    free(h);
}

int report_html_add_fact(report_html *h, const char *label, const char *value,
                         report_html_tone tone) {
    if (grow((void **)&h->facts, h->nfacts, &h->cap_facts, sizeof *h->facts) < 0)
        return -1;
    html_fact f = {util_strdup(label), util_strdup(value), tone};
    if (!f.label || !f.value) {
        free(f.label);
        free(f.value);
        return -1;
    }
    h->facts[h->nfacts++] = f;
    return 0;
}

int report_html_set_findings(report_html *h, const char *summary, const report_html_finding *f,
                             size_t n) {
    findings_clear(h);
    h->findings_summary = util_strdup(summary);
    h->findings = calloc(n ? n : 1, sizeof *h->findings);
    int failed = !h->findings_summary || !h->findings;
    for (size_t i = 0; i < n && !failed; i++) {
        html_finding *d = &h->findings[h->nfindings++];
        d->rule_code = util_strdup(f[i].rule_code);
        d->severity = util_strdup(f[i].severity);
        d->count = f[i].count;
        d->lines = calloc(f[i].nlines ? f[i].nlines : 1, sizeof *d->lines);
        failed = !d->rule_code || !d->severity || !d->lines;
        for (size_t l = 0; l < f[i].nlines && !failed; l++) {
            d->lines[l] = util_strdup(f[i].lines[l]);
            failed = !d->lines[l];
            d->nlines += !failed;
        }
    }
    if (failed) {
        findings_clear(h);
        return -1;
    }
    h->has_findings = 1;
    return 0;
}

long report_html_add_table(report_html *h, const char *heading, const char *corner, size_t ncols,
                           const char *const *columns) {
    if (grow((void **)&h->tables, h->ntables, &h->cap_tables, sizeof *h->tables) < 0)
        return -1;
    html_table t = {0};
    t.heading = util_strdup(heading);
    t.corner = util_strdup(corner);
    t.columns = calloc(ncols ? ncols : 1, sizeof *t.columns);
    int failed = !t.heading || !t.corner || !t.columns;
    for (size_t c = 0; c < ncols && !failed; c++) {
        t.columns[c] = util_strdup(columns[c]);
        t.ncols = c + 1;
        failed = !t.columns[c];
    }
    if (failed) {
        table_clear(&t);
        return -1;
    }
    h->tables[h->ntables] = t;
    return (long)h->ntables++;
}

long report_html_add_row(report_html *h, size_t table, const char *name, const char *code,
                         int is_formula, const report_html_cell *cells) {
    if (table >= h->ntables)
        return -1;
    html_table *t = &h->tables[table];
    if (grow((void **)&t->rows, t->nrows, &t->cap_rows, sizeof *t->rows) < 0)
        return -1;
    html_row r = {util_strdup(name), code ? strdup(code) : NULL, is_formula != 0,
                  malloc(sizeof *r.cells * (t->ncols ? t->ncols : 1))};
    if (!r.name || (code && !r.code) || !r.cells) {
        free(r.name);
        free(r.code);
        free(r.cells);
        return -1;
    }
    if (t->ncols)
        memcpy(r.cells, cells, sizeof *r.cells * t->ncols);
    t->rows[t->nrows] = r;
    return (long)t->nrows++;
}

int report_html_add_chart(report_html *h, size_t table, const char *heading, const size_t *rows,
                          size_t nrows, const size_t *cols, size_t ncols) {
    if (table >= h->ntables)
        return -1;
    const html_table *t = &h->tables[table];
    for (size_t i = 0; i < nrows; i++)
        if (rows[i] >= t->nrows)
            return -1;
    for (size_t i = 0; i < ncols; i++)
        if (cols[i] >= t->ncols)
            return -1;
    if (grow((void **)&h->charts, h->ncharts, &h->cap_charts, sizeof *h->charts) < 0)
        return -1;
    html_chart ch = {table, util_strdup(heading), NULL, 0, NULL, 0, ncols};
    ch.nrows = nrows < REPORT_HTML_CHART_SERIES ? nrows : REPORT_HTML_CHART_SERIES;
    ch.ncols = ncols < REPORT_HTML_CHART_GROUPS ? ncols : REPORT_HTML_CHART_GROUPS;
    ch.rows = malloc(sizeof *ch.rows * (ch.nrows ? ch.nrows : 1));
    ch.cols = malloc(sizeof *ch.cols * (ch.ncols ? ch.ncols : 1));
    if (!ch.heading || !ch.rows || !ch.cols) {
        free(ch.heading);
        free(ch.rows);
        free(ch.cols);
        return -1;
    }
    if (ch.nrows)
        memcpy(ch.rows, rows, sizeof *ch.rows * ch.nrows);
    if (ch.ncols)
        memcpy(ch.cols, cols, sizeof *ch.cols * ch.ncols);
    h->charts[h->ncharts++] = ch;
    return 0;
}

/* ---- text helpers ---------------------------------------------------------- */

/* The length of the valid UTF-8 sequence at s (1..4), or 0 when s starts an
 * invalid one (a stray continuation byte, an overlong form, a surrogate, a
 * code point above U+10FFFF or a cut sequence). s[0] >= 0x80. */
static size_t utf8_valid_len(const unsigned char *s) {
    unsigned char c = s[0];
    size_t n;
    unsigned char lo = 0x80, hi = 0xBF; /* range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else {
        return 0;
    }
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return n;
}

void report_html_escape(FILE *out, const char *s) {
    static const char replacement[] = "\xEF\xBF\xBD"; /* U+FFFD */
    for (const unsigned char *p = (const unsigned char *)s; p && *p;) {
        unsigned char c = *p;
        if (c >= 0x80) {
            size_t n = utf8_valid_len(p);
            if (n == 0) {
                fputs(replacement, out);
                p++;
            } else {
                fwrite(p, 1, n, out);
                p += n;
            }
            continue;
        }
        switch (c) {
        case '&':
            fputs("&amp;", out);
            break;
        case '<':
            fputs("&lt;", out);
            break;
        case '>':
            fputs("&gt;", out);
            break;
        case '"':
            fputs("&quot;", out);
            break;
        case '\'':
            fputs("&#39;", out);
            break;
        default:
            if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7F)
                fputs(replacement, out);
            else
                putc(c, out);
        }
        p++;
    }
}

/* Writes s escaped, cut after `max` code points with an ellipsis. */
static void escape_cut(FILE *out, const char *s, size_t max) {
    size_t bytes = 0, points = 0, len = strlen(s);
    while (bytes < len && points < max) {
        size_t n =
            (unsigned char)s[bytes] < 0x80 ? 1 : utf8_valid_len((const unsigned char *)s + bytes);
        bytes += n ? n : 1;
        points++;
    }
    if (bytes >= len) {
        report_html_escape(out, s);
        return;
    }
    char *cut = strndup(s, bytes);
    report_html_escape(out, cut ? cut : "");
    free(cut);
    fputs("\xE2\x80\xA6", out); /* U+2026 */
}

/* Code points in s: a width estimate for SVG text, which has no layout. */
static size_t code_points(const char *s) {
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        n += (*p & 0xC0) != 0x80;
    return n;
}

/* Drops trailing decimal zeros, and the point when nothing follows it. */
static void trim_zeros(char *num) {
    size_t n = strlen(num);
    if (!strchr(num, '.'))
        return;
    while (num[n - 1] == '0')
        num[--n] = '\0';
    if (num[n - 1] == '.')
        num[--n] = '\0';
}

int report_html_compact(int64_t cents, char *buf, size_t len) {
    static const char *const suffix[] = {"", "k", "M", "B", "T"};
    /* via unsigned so that INT64_MIN has a magnitude */
    uint64_t mag = cents < 0 ? (uint64_t)0 - (uint64_t)cents : (uint64_t)cents;
    const char *sign = cents < 0 ? "-" : "";
    char num[32];
    if (mag < 100000) { /* below 1,000.00: exact, from the integer */
        snprintf(num, sizeof num, "%llu.%02llu", (unsigned long long)(mag / 100),
                 (unsigned long long)(mag % 100));
        trim_zeros(num);
        return snprintf(buf, len, "%s%s", sign, num);
    }
    size_t unit = 0;
    double scaled = (double)mag / 100.0;
    while (unit + 1 < sizeof suffix / sizeof suffix[0] && scaled >= 999.5) {
        scaled /= 1000.0;
        unit++;
    }
    /* three significant digits */
    snprintf(num, sizeof num, "%.*f", scaled < 9.995 ? 2 : scaled < 99.95 ? 1 : 0, scaled);
    trim_zeros(num);
    return snprintf(buf, len, "%s%s%s", sign, num, suffix[unit]);
}

/* ---- page ---------------------------------------------------------------- */

static const char page_css[] =
    ":root{color-scheme:light}\n"
    "body{font:14px/1.45 system-ui,-apple-system,\"Segoe UI\",Roboto,\"Noto Sans\",\"DejaVu "
    "Sans\",Arial,sans-serif;color:#1a1a1a;background:#fff;max-width:1220px;margin:24px "
    "auto;padding:0 16px}\n"
    "h1{font-size:22px;margin:0 0 10px}\n"
    "h2{font-size:17px;margin:28px 0 8px;padding-bottom:4px;border-bottom:1px solid #d0d4da}\n"
    "dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:2px 18px;margin:0}\n"
    "dl.facts dt{color:#555}\n"
    "dl.facts dd{margin:0}\n"
    ".badge{display:inline-block;padding:0 8px;border-radius:10px;font-weight:600}\n"
    ".good{background:#e3f4e6;color:#1b5e20}\n"
    ".warn{background:#fff3cd;color:#7a4f00}\n"
    "table{border-collapse:collapse;margin:6px 0 18px;font-variant-numeric:tabular-nums}\n"
    "caption{text-align:left;color:#555;padding:2px 0 4px}\n"
    "th,td{padding:4px 10px;border-bottom:1px solid #e3e6ea;white-space:nowrap}\n"
    "thead th{border-bottom:2px solid #333;text-align:right;font-weight:600}\n"
    "thead th.item,tbody th{text-align:left}\n"
    "tbody th{font-weight:normal;max-width:300px;overflow:hidden;text-overflow:ellipsis}\n"
    "div.scroll{overflow-x:auto}\n"
    "tr.formula th,tr.formula td{font-weight:600;background:#f5f7fa}\n"
    "td.num{text-align:right}\n"
    "td.lines{white-space:normal;font-size:13px}\n"
    "td.total,th.total{background:#eaf0f7}\n"
    "tr.formula td.total{background:#dde6f1}\n"
    ".neg{color:#b3261e}\n"
    ".na{color:#888;font-style:italic}\n"
    "p.note{color:#555}\n"
    "svg.chart{display:block;margin:8px 0 12px;max-width:100%;height:auto}\n"
    "svg.chart text{font-family:system-ui,\"DejaVu Sans\",Arial,sans-serif;font-size:12px;"
    "fill:#1a1a1a}\n"
    "svg.chart text.tick{fill:#555;font-size:11px}\n"
    "svg.chart text.value{font-size:11px}\n"
    "svg.chart text.value.neg{fill:#b3261e}\n"
    "svg.chart line.grid{stroke:#e3e6ea}\n"
    "svg.chart line.zero{stroke:#333;stroke-width:1.5}\n"
    "footer{margin-top:28px;color:#777;font-size:12px}\n"
    "@media print{body{margin:0;max-width:none}h2{break-after:avoid}tr{break-inside:avoid}}\n";

/* Series colours (Tableau 10), chosen to stay apart for colour-blind readers. */
static const char *const series_colour[REPORT_HTML_CHART_SERIES] = {
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#b07aa1"};

static void write_facts(const report_html *h, FILE *out) {
    if (h->nfacts == 0)
        return;
    fputs("<dl class=\"facts\">\n", out);
    for (size_t i = 0; i < h->nfacts; i++) {
        const html_fact *f = &h->facts[i];
        fputs("<dt>", out);
        report_html_escape(out, f->label);
        fputs("</dt><dd>", out);
        if (f->tone != REPORT_HTML_PLAIN)
            fprintf(out, "<span class=\"badge %s\">",
                    f->tone == REPORT_HTML_GOOD ? "good" : "warn");
        report_html_escape(out, f->value);
        if (f->tone != REPORT_HTML_PLAIN)
            fputs("</span>", out);
        fputs("</dd>\n", out);
    }
    fputs("</dl>\n", out);
}

/* Writes one amount cell. */
static void write_cell(FILE *out, const report_html_cell *cell, int total) {
    const char *extra = total ? " total" : "";
    if (cell->kind == REPORT_HTML_NULL) {
        fprintf(out, "<td class=\"num na%s\">n/a</td>", extra);
    } else if (cell->kind == REPORT_HTML_AMOUNT) {
        char buf[REPORT_FMT_AMOUNT_MAX];
        report_fmt_thousands(cell->cents, buf, sizeof buf);
        fprintf(out, "<td class=\"num%s%s\">%s</td>", cell->cents < 0 ? " neg" : "", extra, buf);
    } else {
        fprintf(out, "<td class=\"num%s\"></td>", extra);
    }
}

/* The roll-up columns (DESIGN.md reserved codes #TOTAL and #ALL) are shaded. */
static int is_rollup(const char *column) {
    return strcmp(column, RESERVED_TOTAL) == 0 || strcmp(column, RESERVED_ALL) == 0;
}

static void write_table(const html_table *t, FILE *out) {
    fputs("<section class=\"table\">\n<h2>", out);
    report_html_escape(out, t->heading);
    fputs("</h2>\n", out);
    if (t->nrows == 0 || t->ncols == 0) {
        fputs("<p class=\"note\">No rows.</p>\n</section>\n", out);
        return;
    }
    for (size_t first = 0; first < t->ncols; first += REPORT_HTML_BLOCK_COLUMNS) {
        size_t last = first + REPORT_HTML_BLOCK_COLUMNS;
        if (last > t->ncols)
            last = t->ncols;
        fputs("<div class=\"scroll\"><table>\n", out);
        if (last == first + 1 && first > 0)
            fprintf(out, "<caption>Column %zu of %zu</caption>\n", last, t->ncols);
        else if (first > 0 || last < t->ncols)
            fprintf(out, "<caption>Columns %zu&#8211;%zu of %zu</caption>\n", first + 1, last,
                    t->ncols);
        fputs("<thead><tr><th scope=\"col\" class=\"item\">", out);
        report_html_escape(out, t->corner);
        fputs("</th>", out);
        for (size_t c = first; c < last; c++) {
            fprintf(out, "<th scope=\"col\"%s>",
                    is_rollup(t->columns[c]) ? " class=\"total\"" : "");
            report_html_escape(out, t->columns[c]);
            fputs("</th>", out);
        }
        fputs("</tr></thead>\n<tbody>\n", out);
        for (size_t r = 0; r < t->nrows; r++) {
            const html_row *row = &t->rows[r];
            fputs(row->is_formula ? "<tr class=\"formula\">" : "<tr>", out);
            fputs("<th scope=\"row\"", out);
            if (row->code) {
                fputs(" title=\"", out);
                report_html_escape(out, row->code);
                putc('"', out);
            }
            putc('>', out);
            report_html_escape(out, row->name);
            fputs("</th>", out);
            for (size_t c = first; c < last; c++)
                write_cell(out, &row->cells[c], is_rollup(t->columns[c]));
            fputs("</tr>\n", out);
        }
        fputs("</tbody>\n</table></div>\n", out);
    }
    fputs("</section>\n", out);
}

/* ---- chart ------------------------------------------------------------------ */

/* Chart geometry, in SVG user units (= CSS pixels at 100%). */
#define CHART_WIDTH 1000.0
#define CHART_LABEL_W 170.0  /* group labels, right-aligned before the plot */
#define CHART_VALUE_PAD 80.0 /* room for a value label beyond a bar's end */
#define CHART_BAR_H 14.0
#define CHART_BAR_GAP 3.0
#define CHART_GROUP_GAP 14.0
#define CHART_CHAR_W 7.0 /* estimated width of a character at 12px */

/* The value axis: [lo, hi] in cents, a multiple of step at both ends, mapped
 * onto [x0, x0 + width]. */
typedef struct chart_scale {
    double lo, hi, step, x0, width;
} chart_scale;

/* A 1, 2 or 5 times a power of ten near raw (> 0). */
static double nice_step(double raw) {
    double mag = pow(10.0, floor(log10(raw)));
    double norm = raw / mag;
    return (norm <= 1.0 ? 1.0 : norm <= 2.0 ? 2.0 : norm <= 5.0 ? 5.0 : 10.0) * mag;
}

/* A scale through zero that holds every value in [vmin, vmax], with about five
 * ticks. */
static chart_scale make_scale(double vmin, double vmax, double x0, double width) {
    chart_scale s = {vmin < 0 ? vmin : 0, vmax > 0 ? vmax : 0, 1, x0, width};
    if (s.hi - s.lo < 1.0)
        s.hi = s.lo + 100.0; /* all zero: one currency unit */
    s.step = nice_step((s.hi - s.lo) / 5.0);
    s.lo = floor(s.lo / s.step) * s.step;
    s.hi = ceil(s.hi / s.step) * s.step;
    return s;
}

static double scale_x(const chart_scale *s, double cents) {
    return s->x0 + (cents - s->lo) / (s->hi - s->lo) * s->width;
}

static void write_chart(const report_html *h, const html_chart *ch, size_t index, FILE *out) {
    const html_table *t = &h->tables[ch->table];
    fputs("<section class=\"chart\">\n<h2>", out);
    report_html_escape(out, ch->heading);
    fputs("</h2>\n", out);
    if (ch->nrows == 0 || ch->ncols == 0) {
        fputs("<p class=\"note\">Nothing to chart.</p>\n</section>\n", out);
        return;
    }

    /* value range, and whether any bar points left (then leave room for its label) */
    double vmin = 0, vmax = 0;
    for (size_t r = 0; r < ch->nrows; r++)
        for (size_t c = 0; c < ch->ncols; c++) {
            const report_html_cell *cell = &t->rows[ch->rows[r]].cells[ch->cols[c]];
            if (cell->kind != REPORT_HTML_AMOUNT)
                continue;
            double v = (double)cell->cents;
            vmin = v < vmin ? v : vmin;
            vmax = v > vmax ? v : vmax;
        }
    double left_pad = vmin < 0 ? CHART_VALUE_PAD : 8.0;
    double plot_x0 = CHART_LABEL_W + 10.0 + left_pad;
    double plot_w = CHART_WIDTH - plot_x0 - CHART_VALUE_PAD;
    chart_scale s = make_scale(vmin, vmax, plot_x0, plot_w);

    /* legend rows: swatch, name, spacing; wrapped at the chart's width */
    double legend_x[REPORT_HTML_CHART_SERIES], legend_y[REPORT_HTML_CHART_SERIES];
    double lx = CHART_LABEL_W + 10.0, ly = 16.0;
    for (size_t r = 0; r < ch->nrows; r++) {
        size_t chars = code_points(t->rows[ch->rows[r]].name);
        double w = 18.0 + CHART_CHAR_W * (double)(chars < 32 ? chars : 32) + 22.0;
        if (lx + w > CHART_WIDTH && lx > CHART_LABEL_W + 10.0) {
            lx = CHART_LABEL_W + 10.0;
            ly += 20.0;
        }
        legend_x[r] = lx;
        legend_y[r] = ly;
        lx += w;
    }
    double plot_top = ly + 22.0;
    double group_h = (double)ch->nrows * (CHART_BAR_H + CHART_BAR_GAP) - CHART_BAR_GAP;
    double plot_bottom = plot_top + (double)ch->ncols * (group_h + CHART_GROUP_GAP);
    double height = plot_bottom + 28.0;

    fprintf(out,
            "<svg class=\"chart\" id=\"chart%zu\" viewBox=\"0 0 %.0f %.0f\" width=\"%.0f\" "
            "height=\"%.0f\" role=\"img\" aria-labelledby=\"chart%zu-title\">\n"
            "<title id=\"chart%zu-title\">",
            index, CHART_WIDTH, height, CHART_WIDTH, height, index, index);
    report_html_escape(out, ch->heading);
    fputs("</title>\n<rect x=\"0\" y=\"0\" width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n",
          out);

    fputs("<g class=\"legend\">\n", out);
    for (size_t r = 0; r < ch->nrows; r++) {
        fprintf(out,
                "<rect x=\"%.1f\" y=\"%.1f\" width=\"12\" height=\"12\" fill=\"%s\"/>"
                "<text x=\"%.1f\" y=\"%.1f\">",
                legend_x[r], legend_y[r] - 10.0, series_colour[r], legend_x[r] + 18.0, legend_y[r]);
        escape_cut(out, t->rows[ch->rows[r]].name, 32);
        fputs("</text>\n", out);
    }
    fputs("</g>\n", out);

    /* grid lines and tick labels; the zero line is drawn over the bars below */
    fputs("<g class=\"axis\">\n", out);
    long nticks = lround((s.hi - s.lo) / s.step);
    for (long k = 0; k <= nticks; k++) {
        double v = s.lo + (double)k * s.step, x = scale_x(&s, v);
        char label[32];
        report_html_compact(llround(v), label, sizeof label);
        fprintf(out,
                "<line class=\"grid\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>"
                "<text class=\"tick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n",
                x, plot_top - 6.0, x, plot_bottom, x, plot_bottom + 16.0, label);
    }
    fputs("</g>\n", out);

    double zero_x = scale_x(&s, 0.0);
    for (size_t c = 0; c < ch->ncols; c++) {
        const char *group = t->columns[ch->cols[c]];
        double gy = plot_top + (double)c * (group_h + CHART_GROUP_GAP);
        fputs("<g class=\"group\">\n", out);
        fprintf(out, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">", CHART_LABEL_W,
                gy + group_h / 2.0 + 4.0);
        escape_cut(out, group, 22);
        fputs("</text>\n", out);
        for (size_t r = 0; r < ch->nrows; r++) {
            const html_row *row = &t->rows[ch->rows[r]];
            const report_html_cell *cell = &row->cells[ch->cols[c]];
            double y = gy + (double)r * (CHART_BAR_H + CHART_BAR_GAP);
            double ty = y + CHART_BAR_H - 3.0;
            if (cell->kind == REPORT_HTML_EMPTY)
                continue;
            if (cell->kind == REPORT_HTML_NULL) {
                fprintf(out, "<text class=\"value\" x=\"%.1f\" y=\"%.1f\">n/a</text>\n",
                        zero_x + 4.0, ty);
                continue;
            }
            double x = scale_x(&s, (double)cell->cents);
            double bx = x < zero_x ? x : zero_x, bw = fabs(x - zero_x);
            char full[REPORT_FMT_AMOUNT_MAX], label[32];
            report_fmt_thousands(cell->cents, full, sizeof full);
            report_html_compact(cell->cents, label, sizeof label);
            fprintf(out,
                    "<rect class=\"bar\" x=\"%.2f\" y=\"%.1f\" width=\"%.2f\" height=\"%.0f\" "
                    "fill=\"%s\" data-cents=\"%lld\"><title>",
                    bx, y, bw, CHART_BAR_H, series_colour[r], (long long)cell->cents);
            report_html_escape(out, group);
            fputs(" \xC2\xB7 ", out);
            report_html_escape(out, row->name);
            fprintf(out, ": %s</title></rect>\n", full);
            if (cell->cents < 0)
                fprintf(out,
                        "<text class=\"value neg\" x=\"%.1f\" y=\"%.1f\" "
                        "text-anchor=\"end\">%s</text>\n",
                        x - 4.0, ty, label);
            else
                fprintf(out, "<text class=\"value\" x=\"%.1f\" y=\"%.1f\">%s</text>\n", x + 4.0, ty,
                        label);
        }
        fputs("</g>\n", out);
    }
    fprintf(out, "<line class=\"zero\" x1=\"%.2f\" y1=\"%.1f\" x2=\"%.2f\" y2=\"%.1f\"/>\n</svg>\n",
            zero_x, plot_top - 6.0, zero_x, plot_bottom);
    if (ch->ncols_asked > ch->ncols)
        fprintf(out, "<p class=\"note\">The chart shows the first %zu of %zu columns.</p>\n",
                ch->ncols, ch->ncols_asked);
    fputs("</section>\n", out);
}

static void write_findings(const report_html *h, FILE *out) {
    if (!h->has_findings)
        return;
    fputs("<section class=\"findings\">\n<h2>Findings: ", out);
    report_html_escape(out, h->findings_summary);
    fputs("</h2>\n", out);
    if (h->nfindings == 0) {
        fputs("<p class=\"note\">No findings.</p>\n</section>\n", out);
        return;
    }
    fputs("<table>\n<thead><tr><th scope=\"col\" class=\"item\">Severity</th>"
          "<th scope=\"col\" class=\"item\">Rule</th><th scope=\"col\">Count</th>"
          "<th scope=\"col\" class=\"item\">First findings</th></tr></thead>\n<tbody>\n",
          out);
    for (size_t i = 0; i < h->nfindings; i++) {
        const html_finding *f = &h->findings[i];
        fputs("<tr><td>", out);
        int error = strcmp(f->severity, "error") == 0;
        if (error)
            fputs("<span class=\"badge warn\">", out);
        report_html_escape(out, f->severity);
        if (error)
            fputs("</span>", out);
        fputs("</td><th scope=\"row\">", out);
        report_html_escape(out, f->rule_code);
        fprintf(out, "</th><td class=\"num\">%lld</td><td class=\"lines\">", (long long)f->count);
        for (size_t l = 0; l < f->nlines; l++) {
            if (l)
                fputs("<br/>", out);
            report_html_escape(out, f->lines[l]);
        }
        if (f->count > (int64_t)f->nlines)
            fprintf(out, "%s&#8230; and %lld more", f->nlines ? "<br/>" : "",
                    (long long)(f->count - (int64_t)f->nlines));
        fputs("</td></tr>\n", out);
    }
    fputs("</tbody>\n</table>\n</section>\n", out);
}

int report_html_write(const report_html *h, FILE *out) {
    fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n"
          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\n<title>",
          out);
    report_html_escape(out, h->title);
    fprintf(out, "</title>\n<style>\n%s</style>\n</head>\n<body>\n<header>\n<h1>", page_css);
    report_html_escape(out, h->title);
    fputs("</h1>\n", out);
    write_facts(h, out);
    fputs("</header>\n<main>\n", out);
    for (size_t i = 0; i < h->ncharts; i++)
        write_chart(h, &h->charts[i], i, out);
    for (size_t i = 0; i < h->ntables; i++)
        write_table(&h->tables[i], out);
    write_findings(h, out);
    fputs("</main>\n<footer>Amounts in the ledger's currency; n/a: a formula without a value; "
          "an empty cell: no row.</footer>\n</body>\n</html>\n",
          out);
    return ferror(out) ? -1 : 0;
}
