/* Unit tests of common/report_html: HTML escaping, compact amounts, the page's
 * tables (thousands separators, negatives marked, n/a, column blocks) and the
 * SVG bars' scale with negative values. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "report_html.h"

/* The text report_html_escape writes for s; the caller frees it. */
static char *escaped(const char *s) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    report_html_escape(f, s);
    fclose(f);
    return buf;
}

/* The whole page of h; the caller frees it. */
static char *page(const report_html *h) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    int rc = report_html_write(h, f);
    fclose(f);
    CHECK(rc == 0, "report_html_write returned %d", rc);
    return buf;
}

static size_t count(const char *hay, const char *needle) {
    size_t n = 0;
    for (const char *p = hay; p && (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

static void escapes_markup_characters(void) {
    char *got = escaped("<a href=\"x\">Tom & Jerry's</a>");
    CHECK_STR(got, "&lt;a href=&quot;x&quot;&gt;Tom &amp; Jerry&#39;s&lt;/a&gt;");
    free(got);
    got = escaped("plain text, 1,234.56");
    CHECK_STR(got, "plain text, 1,234.56");
    free(got);
    got = escaped("");
    CHECK_STR(got, "");
    free(got);
}

static void escapes_controls_and_bad_utf8(void) {
    char *got = escaped("Z\xC3\xBCrich \xE6\x9D\xB1\xE4\xBA\xAC \xF0\x9F\x93\x88");
    CHECK_STR(got, "Z\xC3\xBCrich \xE6\x9D\xB1\xE4\xBA\xAC \xF0\x9F\x93\x88"); /* valid passes */
    free(got);
    got = escaped("a\x01"
                  "b\x7f"
                  "c\td\ne");
    CHECK_STR(got, "a\xEF\xBF\xBD"
                   "b\xEF\xBF\xBD"
                   "c\td\ne");
    free(got);
    got = escaped("x\xFFy\xC0\xAFz");
    CHECK_STR(got, "x\xEF\xBF\xBDy\xEF\xBF\xBD\xEF\xBF\xBDz"); /* invalid and overlong */
    free(got);
    got = escaped("s\xED\xA0\x80t"); /* a UTF-16 surrogate */
    CHECK_STR(got, "s\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBDt");
    free(got);
    got = escaped("cut \xE6\x9D"); /* a sequence cut by the end of the string */
    CHECK_STR(got, "cut \xEF\xBF\xBD\xEF\xBF\xBD");
    free(got);
}

static void compact_amounts(void) {
    struct {
        int64_t cents;
        const char *want;
    } cases[] = {
        {0, "0"},
        {5, "0.05"},
        {1250, "12.5"},
        {-1, "-0.01"},
        {99999, "999.99"},
        {-99999, "-999.99"},
        {100000, "1k"},
        {123456, "1.23k"},
        {12345678, "123k"},
        {-50000000, "-500k"},
        {99950000, "1M"},
        {123456789, "1.23M"},
        {-123456789012, "-1.23B"},
        {150000000000000LL, "1.5T"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[32];
        int n = report_html_compact(cases[i].cents, buf, sizeof buf);
        CHECK(n == (int)strlen(buf), "length %d for %lld", n, (long long)cases[i].cents);
        CHECK(strcmp(buf, cases[i].want) == 0, "%lld cents: got \"%s\", want \"%s\"",
              (long long)cases[i].cents, buf, cases[i].want);
    }
    char buf[32];
    report_html_compact(INT64_MIN, buf, sizeof buf);
    CHECK(buf[0] == '-' && strchr(buf, 'T') != NULL, "INT64_MIN gives \"%s\"", buf);
}

static const report_html_cell EMPTY = {REPORT_HTML_EMPTY, 0};
static const report_html_cell NUL = {REPORT_HTML_NULL, 0};
static report_html_cell amount(int64_t cents) {
    return (report_html_cell){REPORT_HTML_AMOUNT, cents};
}

static void table_shows_names_amounts_and_marks(void) {
    report_html *h = report_html_new("Report <2024-03> & co");
    CHECK(h != NULL, "new");
    CHECK(report_html_add_fact(h, "Status", "published", REPORT_HTML_GOOD) == 0, "fact");
    const char *cols[] = {"B", "a&b", "#ALL"};
    long t = report_html_add_table(h, "Version M (Management view)", "Item", 3, cols);
    CHECK(t == 0, "first table is 0, got %ld", t);
    report_html_cell r1[] = {amount(123456789), amount(-100000000), amount(23456789)};
    report_html_cell r2[] = {NUL, EMPTY, amount(0)};
    CHECK(report_html_add_row(h, 0, "Revenue <net>", "rev\"1", 0, r1) == 0, "row 0");
    CHECK(report_html_add_row(h, 0, "Margin %", NULL, 1, r2) == 1, "row 1");
    CHECK(report_html_add_row(h, 5, "x", NULL, 0, r2) == -1, "a row of a missing table fails");
    char *html = page(h);
    CHECK(html != NULL, "page");
    CHECK(strstr(html, "<title>Report &lt;2024-03&gt; &amp; co</title>") != NULL, "title escaped");
    CHECK(strstr(html, "<span class=\"badge good\">published</span>") != NULL, "status badge");
    CHECK(strstr(html, "<th scope=\"row\" title=\"rev&quot;1\">Revenue &lt;net&gt;</th>") != NULL,
          "item name and code escaped");
    CHECK(strstr(html, "Revenue <net>") == NULL, "no raw markup from a name");
    CHECK(strstr(html, "<th scope=\"col\">a&amp;b</th>") != NULL, "column escaped");
    CHECK(strstr(html, "<th scope=\"col\" class=\"total\">#ALL</th>") != NULL, "#ALL shaded");
    CHECK(strstr(html, "<td class=\"num\">1,234,567.89</td>") != NULL, "thousands separators");
    CHECK(strstr(html, "<td class=\"num neg\">-1,000,000.00</td>") != NULL, "negative marked");
    CHECK(strstr(html, "<td class=\"num total\">234,567.89</td>") != NULL, "roll-up cell");
    CHECK(strstr(html, "<tr class=\"formula\"><th scope=\"row\">Margin %</th>"
                       "<td class=\"num na\">n/a</td><td class=\"num\"></td>"
                       "<td class=\"num total\">0.00</td></tr>") != NULL,
          "formula row: n/a, empty, zero");
    CHECK(strstr(html, "<caption>") == NULL, "3 columns need no blocks");
    CHECK(count(html, "<table>") == 1 && count(html, "</table>") == 1, "one table");
    CHECK(count(html, "<div class=\"scroll\">") == 1, "the table scrolls by itself");
    CHECK(strstr(html, "<link") == NULL && strstr(html, "<script") == NULL &&
              strstr(html, "http") == NULL,
          "self-contained: no link, script or URL");
    CHECK(strncmp(html, "<!DOCTYPE html>\n", 16) == 0, "doctype first");
    CHECK(strstr(html, "</html>\n") != NULL, "closed html");
    free(html);
    report_html_free(h);
    report_html_free(NULL);
}

static void wide_tables_are_split_into_blocks(void) {
    report_html *h = report_html_new("wide");
    const char *cols[19];
    char names[19][8];
    report_html_cell cells[19];
    for (int c = 0; c < 19; c++) {
        snprintf(names[c], sizeof names[c], "DS%02d", c);
        cols[c] = names[c];
        cells[c] = amount(c * 100);
    }
    report_html_add_table(h, "t", "Item", 19, cols);
    report_html_add_row(h, 0, "Revenue", "REV", 0, cells);
    char *html = page(h);
    CHECK(REPORT_HTML_BLOCK_COLUMNS == 6, "the checks below assume blocks of 6 columns");
    CHECK(count(html, "<table>") == 4, "19 columns in blocks of %d: got %zu tables",
          REPORT_HTML_BLOCK_COLUMNS, count(html, "<table>"));
    CHECK(strstr(html, "<caption>Columns 1&#8211;6 of 19</caption>") != NULL, "first block");
    CHECK(strstr(html, "<caption>Columns 13&#8211;18 of 19</caption>") != NULL, "third block");
    CHECK(strstr(html, "<caption>Column 19 of 19</caption>") != NULL, "last block of one");
    CHECK(count(html, ">Revenue</th>") == 4, "the item column repeats in each block");
    free(html);
    report_html_free(h);
}

/* One bar of the SVG: its rectangle and cents. */
typedef struct bar {
    double x, w;
    long long cents;
} bar;

/* Reads the bars and the zero line's x of the page's first chart. */
static size_t read_bars(const char *html, bar *bars, size_t max, double *zero_x) {
    size_t n = 0;
    for (const char *p = html; (p = strstr(p, "<rect class=\"bar\"")) != NULL && n < max; p++) {
        double y, height;
        char fill[16];
        if (sscanf(p,
                   "<rect class=\"bar\" x=\"%lf\" y=\"%lf\" width=\"%lf\" height=\"%lf\" "
                   "fill=\"%15[^\"]\" data-cents=\"%lld\"",
                   &bars[n].x, &y, &bars[n].w, &height, fill, &bars[n].cents) == 6)
            n++;
    }
    const char *z = strstr(html, "<line class=\"zero\" x1=\"");
    *zero_x = z ? atof(z + strlen("<line class=\"zero\" x1=\"")) : -1;
    return n;
}

static void bars_scale_through_zero_with_negatives(void) {
    report_html *h = report_html_new("chart");
    const char *cols[] = {"HKG", "MFM", "TPE", "#ALL"};
    report_html_add_table(h, "t", "Item", 4, cols);
    report_html_cell rev[] = {amount(100000000), amount(25000000), NUL, amount(125000000)};
    report_html_cell cost[] = {amount(-50000000), amount(-75000000), EMPTY, amount(-125000000)};
    report_html_cell gp[] = {amount(50000000), amount(-50000000), amount(0), amount(0)};
    report_html_add_row(h, 0, "Revenue", "REVENUE", 1, rev);
    report_html_add_row(h, 0, "Cost", "COST", 1, cost);
    report_html_add_row(h, 0, "Gross profit", "GROSS_PROFIT", 1, gp);
    size_t rows[] = {0, 1, 2}, groups[] = {0, 1, 2}; /* #ALL left out of the chart */
    CHECK(report_html_add_chart(h, 0, "Main lines by data source", rows, 3, groups, 3) == 0,
          "chart");
    size_t bad[] = {7};
    CHECK(report_html_add_chart(h, 0, "x", bad, 1, groups, 3) == -1, "a missing row fails");
    CHECK(report_html_add_chart(h, 0, "x", rows, 3, bad, 1) == -1, "a missing column fails");
    char *html = page(h);

    bar bars[16];
    double zero_x;
    size_t n = read_bars(html, bars, 16, &zero_x);
    /* 3 groups x 3 series, less the NULL revenue and the empty cost of TPE */
    CHECK(n == 7, "got %zu bars, want 7", n);
    CHECK(zero_x > 170.0 && zero_x < 1000.0, "zero line at %.2f", zero_x);
    double per_cent = -1;
    for (size_t i = 0; i < n; i++) {
        if (bars[i].cents > 0)
            CHECK(fabs(bars[i].x - zero_x) < 0.01,
                  "positive bar %lld starts at zero (%.2f vs %.2f)", bars[i].cents, bars[i].x,
                  zero_x);
        if (bars[i].cents < 0)
            CHECK(fabs(bars[i].x + bars[i].w - zero_x) < 0.01,
                  "negative bar %lld ends at zero (%.2f + %.2f vs %.2f)", bars[i].cents, bars[i].x,
                  bars[i].w, zero_x);
        if (bars[i].cents == 0)
            CHECK(bars[i].w == 0.0, "zero bar has no width (%.2f)", bars[i].w);
        if (bars[i].cents != 0) {
            double r = bars[i].w / (double)llabs(bars[i].cents);
            if (per_cent < 0)
                per_cent = r;
            CHECK(fabs(r - per_cent) / per_cent < 1e-3,
                  "bar %lld: width %.2f is not proportional (%.6g vs %.6g per cent)", bars[i].cents,
                  bars[i].w, r, per_cent);
        }
        CHECK(bars[i].x >= 170.0 && bars[i].x + bars[i].w <= 1000.0 - 80.0 + 0.01,
              "bar %lld inside the plot (%.2f..%.2f)", bars[i].cents, bars[i].x,
              bars[i].x + bars[i].w);
    }
    /* the axis spans -750,000 (cost of MFM) to 1,000,000 (revenue of HKG) at least */
    CHECK(per_cent > 0 && 100000000 * per_cent + 75000000 * per_cent <= 1000.0 - 80.0 - 170.0,
          "the largest bars fit: %.6g per cent", per_cent);
    CHECK(strstr(html, ">-750k</text>") != NULL, "negative value label");
    CHECK(strstr(html, ">1M</text>") != NULL, "positive value label");
    CHECK(strstr(html, ">n/a</text>") != NULL, "NULL shown as n/a");
    CHECK(strstr(html, "<title>MFM \xC2\xB7 Cost: -750,000.00</title>") != NULL,
          "bar tooltip with the exact amount");
    CHECK(count(html, "fill=\"#4e79a7\"") == 1 + 2, "legend swatch and 2 revenue bars");
    CHECK(strstr(html, ">#ALL</text>") == NULL, "#ALL is not a chart group");
    CHECK(count(html, "<svg") == 1 && count(html, "</svg>") == 1, "one svg, closed");
    CHECK(strstr(html, "<svg") < strstr(html, "<table>"), "the chart comes before the tables");
    free(html);
    report_html_free(h);
}

static void positive_only_bars_start_at_the_plot_edge(void) {
    report_html *h = report_html_new("chart");
    const char *cols[] = {"A", "B"};
    report_html_add_table(h, "t", "Item", 2, cols);
    report_html_cell rev[] = {amount(30000), amount(120000)};
    report_html_add_row(h, 0, "Revenue", NULL, 0, rev);
    size_t rows[] = {0}, groups[] = {0, 1};
    report_html_add_chart(h, 0, "c", rows, 1, groups, 2);
    char *html = page(h);
    bar bars[4];
    double zero_x;
    size_t n = read_bars(html, bars, 4, &zero_x);
    CHECK(n == 2, "got %zu bars", n);
    CHECK(zero_x < 200.0, "without negatives zero is at the left edge (%.2f)", zero_x);
    if (n == 2)
        CHECK(fabs(bars[1].w / bars[0].w - 4.0) < 1e-3, "1,200 is four times 300 (%.2f / %.2f)",
              bars[1].w, bars[0].w);
    free(html);
    report_html_free(h);
}

static void charts_keep_a_bounded_number_of_groups(void) {
    report_html *h = report_html_new("many");
    enum { N = 40 };
    const char *cols[N];
    char names[N][8];
    report_html_cell cells[N];
    size_t groups[N];
    for (int c = 0; c < N; c++) {
        snprintf(names[c], sizeof names[c], "C%02d", c);
        cols[c] = names[c];
        cells[c] = amount((c - 20) * 1000);
        groups[c] = (size_t)c;
    }
    report_html_add_table(h, "t", "Item", N, cols);
    report_html_add_row(h, 0, "Revenue", NULL, 0, cells);
    size_t rows[] = {0};
    report_html_add_chart(h, 0, "c", rows, 1, groups, N);
    char *html = page(h);
    bar bars[64];
    double zero_x;
    size_t n = read_bars(html, bars, 64, &zero_x);
    CHECK(n == REPORT_HTML_CHART_GROUPS, "got %zu bars, want %d", n, REPORT_HTML_CHART_GROUPS);
    CHECK(strstr(html, "The chart shows the first 30 of 40 columns.") != NULL, "says so");
    free(html);
    report_html_free(h);
}

static void long_names_are_cut_in_the_chart_only(void) {
    report_html *h = report_html_new("names");
    const char *cols[] = {"A data source with a very long name indeed"};
    report_html_add_table(h, "t", "Item", 1, cols);
    report_html_cell c[] = {amount(100)};
    report_html_add_row(h, 0, "An item <with> a name longer than thirty-two characters", NULL, 0,
                        c);
    size_t rows[] = {0}, groups[] = {0};
    report_html_add_chart(h, 0, "c", rows, 1, groups, 1);
    char *html = page(h);
    CHECK(strstr(html, ">A data source with a v\xE2\x80\xA6</text>") != NULL,
          "group label cut at 22 characters");
    CHECK(strstr(html, ">An item &lt;with&gt; a name longer tha\xE2\x80\xA6</text>") != NULL,
          "legend cut at 32 characters, escaped");
    CHECK(strstr(html, ">An item &lt;with&gt; a name longer than thirty-two characters</th>") !=
              NULL,
          "the table keeps the whole name");
    free(html);
    report_html_free(h);
}

static void findings_section_lists_rules_counts_and_first_lines(void) {
    report_html *h = report_html_new("findings");
    const char *margin_lines[] = {"M HKG/HKG-01: margin <5%", "M HKG/HKG-02: margin <5%"};
    report_html_finding f[] = {{"MARGIN_LOW", "error", 7, margin_lines, 2},
                               {"unallocated", "warning", 1, NULL, 0}};
    CHECK(report_html_set_findings(h, "7 error, 1 warning", f, 2) == 0, "set findings");
    char *html = page(h);
    CHECK(strstr(html, "<h2>Findings: 7 error, 1 warning</h2>") != NULL, "heading with summary");
    CHECK(strstr(html, "<td><span class=\"badge warn\">error</span></td><th scope=\"row\">"
                       "MARGIN_LOW</th><td class=\"num\">7</td>") != NULL,
          "error rule with badge and count");
    CHECK(strstr(html, "M HKG/HKG-01: margin &lt;5%<br/>M HKG/HKG-02: margin &lt;5%<br/>"
                       "&#8230; and 5 more") != NULL,
          "first lines escaped, then how many more");
    CHECK(strstr(html, "<td>warning</td><th scope=\"row\">unallocated</th>") != NULL,
          "warning rule without badge");
    CHECK(strstr(html, "<section class=\"findings\">") > strstr(html, "</main>") ? 0 : 1,
          "findings inside main");
    free(html);
    CHECK(report_html_set_findings(h, "none", NULL, 0) == 0, "set no findings");
    html = page(h);
    CHECK(strstr(html, "<p class=\"note\">No findings.</p>") != NULL, "no findings said");
    CHECK(strstr(html, "MARGIN_LOW") == NULL, "a second call replaces the first");
    free(html);
    report_html_free(h);
}

TEST_MAIN(TEST(escapes_markup_characters), TEST(escapes_controls_and_bad_utf8),
          TEST(compact_amounts), TEST(table_shows_names_amounts_and_marks),
          TEST(wide_tables_are_split_into_blocks), TEST(bars_scale_through_zero_with_negatives),
          TEST(positive_only_bars_start_at_the_plot_edge),
          TEST(charts_keep_a_bounded_number_of_groups), TEST(long_names_are_cut_in_the_chart_only),
          TEST(findings_section_lists_rules_counts_and_first_lines))
