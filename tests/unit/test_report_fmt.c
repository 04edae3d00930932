/* Unit tests of common/report_fmt: argument checks, amount forms, CSV and JSON
 * quoting, display widths and the checksum lines' SHA-256. */
#include <stdlib.h>

#include "harness.h"
#include "report_fmt.h"

/* An array as a plain pointer, so CHECK_STR's NULL test does not warn. */
static const char *str(const char *s) {
    return s;
}

static void run_ids_are_positive_integers(void) {
    int64_t id = 0;
    CHECK(report_fmt_parse_id("42", &id) == 0, "42 parses");
    CHECK_EQ_LL(id, 42);
    CHECK(report_fmt_parse_id("9223372036854775807", &id) == 0, "INT64_MAX parses");
    CHECK_EQ_LL(id, INT64_MAX);
    const char *bad[] = {"", "0", "-1", "+1", "1x", "x", "9223372036854775808", " 1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(report_fmt_parse_id(bad[i], &id) < 0, "'%s' is not a run id", bad[i]);
}

static void amounts_have_two_decimals_and_no_negative_zero(void) {
    char buf[REPORT_FMT_AMOUNT_MAX];
    struct {
        const char *in, *out;
    } cases[] = {
        {"12.05", "12.05"},
        {"-12.05", "-12.05"},
        {"0.00", "0.00"},
        {"-0.00", "0.00"},
        {"5", "5.00"},
        {"-0.1", "-0.10"},
        {"1234567890123456.78", "1234567890123456.78"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK(report_fmt_amount(cases[i].in, buf, sizeof buf) > 0, "'%s' parses", cases[i].in);
        CHECK_STR(str(buf), cases[i].out);
    }
    CHECK(report_fmt_amount("1.005", buf, sizeof buf) < 0, "three decimals refused");
    CHECK(report_fmt_amount("abc", buf, sizeof buf) < 0, "text refused");
}

static void thousands_separators(void) {
    char buf[REPORT_FMT_AMOUNT_MAX];
    struct {
        int64_t cents;
        const char *out;
    } cases[] = {
        {0, "0.00"},
        {5, "0.05"},
        {-5, "-0.05"},
        {99999, "999.99"},
        {100000, "1,000.00"},
        {-123456789, "-1,234,567.89"},
        {100000000, "1,000,000.00"},
        {INT64_MIN, "-92,233,720,368,547,758.08"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        report_fmt_thousands(cases[i].cents, buf, sizeof buf);
        CHECK_STR(str(buf), cases[i].out);
    }
    CHECK(report_fmt_thousands_text("-1234.5", buf, sizeof buf) > 0, "text parses");
    CHECK_STR(str(buf), "-1,234.50");
}

/* Runs fn into a memory stream and returns what it wrote (caller frees). */
static char *captured(void (*fn)(FILE *, const char *), const char *arg) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    fn(f, arg);
    fclose(f);
    return buf;
}

static void csv_fields_are_quoted_when_needed(void) {
    struct {
        const char *in, *out;
    } cases[] = {
        {"plain", "plain"},
        {"with space", "with space"},
        {"a,b", "\"a,b\""},
        {"say \"x\"", "\"say \"\"x\"\"\""},
        {"line\nbreak", "\"line\nbreak\""},
        {" lead", "\" lead\""},
        {"", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *got = captured(report_fmt_csv_field, cases[i].in);
        CHECK_STR(got, cases[i].out);
        free(got);
    }
    char *got = captured(report_fmt_csv_field, NULL);
    CHECK_STR(got, "");
    free(got);
}

static void json_strings_are_escaped(void) {
    char *got = captured(report_fmt_json_string, "a\"b\\c\n\t\x01 é");
    CHECK_STR(got, "\"a\\\"b\\\\c\\n\\t\\u0001 é\"");
    free(got);
}

static void pad_right(FILE *f, const char *s) {
    report_fmt_pad(f, s, 6, 1);
}
static void pad_left_cut(FILE *f, const char *s) {
    report_fmt_pad(f, s, 4, 0);
}

static void display_width_and_padding(void) {
    CHECK_EQ_LL(report_fmt_display_width("abc"), 3);
    CHECK_EQ_LL(report_fmt_display_width("é"), 1);
    CHECK_EQ_LL(report_fmt_display_width("营业收入"), 8);
    char *got = captured(pad_right, "1.00");
    CHECK_STR(got, "  1.00");
    free(got);
    got = captured(pad_left_cut, "abcdef");
    CHECK_STR(got, "abc~");
    free(got);
    got = captured(pad_left_cut, "营业收入");
    CHECK_STR(got, "营~ ");
    free(got);
}

static void checksum_lines_hash_as_specified(void) {
    /* printf 'M|B|P 1|I|-0.50\nM|a|#TOTAL|I|NULL\n' | sha256sum */
    report_fmt_sha256 *h = report_fmt_sha256_new();
    CHECK(h != NULL, "hash created");
    if (!h)
        return;
    CHECK(report_fmt_sha256_line(h, "M", "B", "P 1", "I", "-0.50") == 0, "line 1 hashed");
    CHECK(report_fmt_sha256_line(h, "M", "a", "#TOTAL", "I", NULL) == 0, "line 2 hashed");
    char hex[65];
    CHECK(report_fmt_sha256_hex(h, hex) == 0, "digest");
    CHECK_STR(str(hex), "390b8527e61e68d2c1cbe4e084c690f19a457ea3593fbda062c1e5137561486b");
    report_fmt_sha256_free(h);
    report_fmt_sha256_free(NULL);

    h = report_fmt_sha256_new();
    if (!h)
        return;
    CHECK(report_fmt_sha256_hex(h, hex) == 0, "empty digest");
    CHECK_STR(str(hex), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    report_fmt_sha256_free(h);
}

TEST_MAIN(TEST(run_ids_are_positive_integers), TEST(amounts_have_two_decimals_and_no_negative_zero),
          TEST(thousands_separators), TEST(csv_fields_are_quoted_when_needed),
          TEST(json_strings_are_escaped), TEST(display_width_and_padding),
          TEST(checksum_lines_hash_as_specified))
