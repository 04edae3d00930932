/* Unit tests of the pure parts of the db module: COPY text escaping and the
 * cents-to-numeric formatting used for amounts. */
#include <stdint.h>
#include <string.h>

#include "db.h"
#include "harness.h"

static void escape_is(const char *src, const char *want) {
    char dst[256];
    size_t n = db_copy_escape(dst, src, strlen(src));
    dst[n] = '\0';
    CHECK(strcmp(dst, want) == 0, "escape of \"%s\": got \"%s\", want \"%s\"", src, dst, want);
}

static void copy_escape_leaves_plain_text(void) {
    escape_is("", "");
    escape_is("P-001 Rent", "P-001 Rent");
    escape_is("\xe5\x8c\x97\xe4\xba\xac", "\xe5\x8c\x97\xe4\xba\xac"); /* UTF-8 passes through */
    escape_is("N", "N");
    escape_is(".", ".");
}

static void copy_escape_quotes_the_special_bytes(void) {
    escape_is("a\tb", "a\\tb");
    escape_is("a\nb", "a\\nb");
    escape_is("a\rb", "a\\rb");
    escape_is("a\\b", "a\\\\b");
    escape_is("\\N", "\\\\N"); /* a literal backslash-N is text, not NULL */
    escape_is("\\.", "\\\\."); /* never the end-of-data marker */
    escape_is("\t\n\r\\", "\\t\\n\\r\\\\");
}

static void copy_escape_worst_case_doubles(void) {
    char src[64], dst[128];
    memset(src, '\\', sizeof src);
    CHECK_EQ_LL(db_copy_escape(dst, src, sizeof src), 2 * sizeof src);
}

static void cents_is(int64_t cents, const char *want) {
    char buf[32];
    int n = db_format_cents(cents, buf, sizeof buf);
    CHECK(strcmp(buf, want) == 0, "%lld cents: got \"%s\", want \"%s\"", (long long)cents, buf,
          want);
    CHECK_EQ_LL(n, strlen(want));
}

static void format_cents_writes_two_decimals(void) {
    cents_is(0, "0.00");
    cents_is(5, "0.05");
    cents_is(-5, "-0.05");
    cents_is(100, "1.00");
    cents_is(-1205, "-12.05");
    cents_is(123456789012, "1234567890.12");
    cents_is(INT64_MAX, "92233720368547758.07");
    cents_is(INT64_MIN, "-92233720368547758.08");
}

TEST_MAIN(TEST(copy_escape_leaves_plain_text), TEST(copy_escape_quotes_the_special_bytes),
          TEST(copy_escape_worst_case_doubles), TEST(format_cents_writes_two_decimals))
