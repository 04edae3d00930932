/* Unit tests of common/report_table: the grid of one version (column order
 * with the reserved codes last, items the ruleset lacks appended, cells in
 * place) and its text layout (widths, amounts, n/a, blocks of columns). */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "report_table.h"

static const report_table_item items[] = {
    {"REV", "Revenue"},
    {"COST", "Cost"},
    {"GP", "Gross profit"},
};

static const report_table_cell cells[] = {
    {"#ALL", "REV", "3000.00"},      {"TPE", "REV", "1000.00"}, {"HKG", "REV", "2000.00"},
    {"HKG", "COST", "-1234567.05"},  {"TPE", "GP", NULL},       {"HKG", "OTHER", "5.50"},
    {"#UNALLOCATED", "REV", "0.00"}, {"#ALL", "OTHER", "5.50"},
};
#define NCELLS (sizeof cells / sizeof cells[0])

/* The text report_table_print writes; the caller frees it. */
static char *printed(const report_table *t, size_t width) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    int rc = report_table_print(f, t, "data sources", width);
    fclose(f);
    CHECK(rc == 0, "report_table_print returned %d", rc);
    return buf;
}

static void columns_in_byte_order_with_the_reserved_codes_last(void) {
    report_table t = {0};
    CHECK(report_table_build(&t, items, 3, cells, NCELLS) == 0, "built");
    const char *want[] = {"HKG", "TPE", "#UNALLOCATED", "#ALL"};
    CHECK_EQ_LL(t.ncols, 4);
    for (size_t k = 0; k < 4 && k < t.ncols; k++)
        CHECK_STR(t.cols[k], want[k]);
    CHECK_EQ_LL(report_table_column_rank("HKG"), 0);
    CHECK_EQ_LL(report_table_column_rank("#UNALLOCATED"), 1);
    CHECK_EQ_LL(report_table_column_rank("#TOTAL"), 2);
    CHECK_EQ_LL(report_table_column_rank("#ALL"), 2);
    report_table_free(&t);
    report_table_free(NULL);
}

static void items_the_ruleset_lacks_are_appended_once(void) {
    report_table t = {0};
    CHECK(report_table_build(&t, items, 3, cells, NCELLS) == 0, "built");
    CHECK_EQ_LL(t.nitems, 4);
    if (t.nitems == 4) {
        CHECK_STR(t.item_codes[3], "OTHER");
        CHECK_STR(t.item_names[3], "OTHER");
        CHECK_EQ_LL(t.item_src[3], -1);
        CHECK_EQ_LL(t.item_src[1], 1);
    }
    report_table_free(&t);
}

static void cells_land_in_their_row_and_column(void) {
    report_table t = {0};
    CHECK(report_table_build(&t, items, 3, cells, NCELLS) == 0, "built");
    /* rows REV, COST, GP, OTHER; columns HKG, TPE, #UNALLOCATED, #ALL */
    int want[4][4] = {{2, 1, 6, 0}, {3, -1, -1, -1}, {-1, 4, -1, -1}, {5, -1, -1, 7}};
    for (size_t i = 0; i < 4 && i < t.nitems; i++)
        for (size_t k = 0; k < 4 && k < t.ncols; k++)
            CHECK(t.cells[i * t.ncols + k] == want[i][k], "cell (%zu, %zu): got %d, want %d", i, k,
                  t.cells[i * t.ncols + k], want[i][k]);
    report_table_free(&t);
}

static void the_table_is_printed_with_separators_and_na(void) {
    report_table t = {0};
    CHECK(report_table_build(&t, items, 3, cells, NCELLS) == 0, "built");
    char *text = printed(&t, REPORT_TABLE_WIDTH);
    const char *want = "item                    HKG       TPE  #UNALLOCATED      #ALL\n"
                       "-------------------------------------------------------------\n"
                       "Revenue            2,000.00  1,000.00          0.00  3,000.00\n"
                       "Cost          -1,234,567.05                                  \n"
                       "Gross profit                      n/a                        \n"
                       "OTHER                  5.50                              5.50\n";
    CHECK_STR(text, want);
    free(text);
    report_table_free(&t);
}

static void narrow_pages_cut_the_columns_into_blocks(void) {
    report_table t = {0};
    CHECK(report_table_build(&t, items, 3, cells, NCELLS) == 0, "built");
    char *text = printed(&t, 40);
    const char *want = "data sources 1-2 of 4\n"
                       "item                    HKG       TPE\n"
                       "-------------------------------------\n"
                       "Revenue            2,000.00  1,000.00\n"
                       "Cost          -1,234,567.05          \n"
                       "Gross profit                      n/a\n"
                       "OTHER                  5.50          \n"
                       "\n"
                       "data sources 3-4 of 4\n"
                       "item          #UNALLOCATED      #ALL\n"
                       "------------------------------------\n"
                       "Revenue               0.00  3,000.00\n"
                       "Cost                                \n"
                       "Gross profit                        \n"
                       "OTHER                           5.50\n";
    CHECK_STR(text, want);
    free(text);
    report_table_free(&t);
}

static void an_empty_version_prints_nothing(void) {
    report_table t = {0};
    CHECK(report_table_build(&t, items, 3, NULL, 0) == 0, "built");
    CHECK_EQ_LL(t.ncols, 0);
    char *text = printed(&t, REPORT_TABLE_WIDTH);
    CHECK_STR(text, "");
    free(text);
    report_table_free(&t);
}

TEST_MAIN(TEST(columns_in_byte_order_with_the_reserved_codes_last),
          TEST(items_the_ruleset_lacks_are_appended_once), TEST(cells_land_in_their_row_and_column),
          TEST(the_table_is_printed_with_separators_and_na),
          TEST(narrow_pages_cut_the_columns_into_blocks), TEST(an_empty_version_prints_nothing))
