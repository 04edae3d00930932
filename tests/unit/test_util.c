/* Unit tests of common/util (the period check, the string copy) and
 * common/strbuf (the growable string buffer). */
#include <stdlib.h>

#include "harness.h"
#include "strbuf.h"
#include "util.h"

static void period_codes_are_checked(void) {
    CHECK(util_period_valid("2024-01"), "2024-01 is a period");
    CHECK(util_period_valid("1999-12"), "1999-12 is a period");
    const char *bad[] = {"2024-00", "2024-13",  "2024-1", "2024/01",
                         "24-01",   "2024-01x", "",       "abcd-ef"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(!util_period_valid(bad[i]), "'%s' is not a period", bad[i]);
    CHECK(!util_period_valid(NULL), "NULL is not a period");
}

static void strdup_copies_and_null_is_empty(void) {
    const char *s = "Rent income";
    char *c = util_strdup(s);
    CHECK_STR(c, "Rent income");
    CHECK(c != s, "a copy, not the same pointer");
    free(c);
    c = util_strdup(NULL);
    CHECK_STR(c, "");
    free(c);
}

static void strbuf_appends_and_stays_terminated(void) {
    strbuf b = {0};
    strbuf_addstr(&b, "cycle ");
    strbuf_add(&b, "A -> B", 6);
    strbuf_addf(&b, " -> %s (%d)", "A", 3);
    CHECK(!b.oom, "no allocation failure");
    CHECK_EQ_LL(b.len, strlen("cycle A -> B -> A (3)"));
    CHECK_STR(b.data, "cycle A -> B -> A (3)");
    strbuf_clear(&b);
    CHECK_EQ_LL(b.len, 0);
    CHECK_STR(b.data, "");
    strbuf_free(&b);
    CHECK(b.data == NULL && b.len == 0 && b.cap == 0, "free zeroes the buffer");
    strbuf_free(NULL);
}

static void strbuf_grows_past_its_first_allocation(void) {
    strbuf b = {0};
    for (int i = 0; i < 10000; i++)
        strbuf_add(&b, "0123456789", 10);
    CHECK(!b.oom, "no allocation failure");
    CHECK_EQ_LL(b.len, 100000);
    CHECK(b.cap > b.len, "room for the NUL");
    CHECK(b.data[b.len] == '\0', "terminated");
    CHECK(memcmp(b.data + 99990, "0123456789", 10) == 0, "the last append is at the end");
    strbuf_free(&b);
}

static void strbuf_is_binary_safe(void) {
    strbuf b = {0};
    strbuf_add(&b, "a\0b", 3);
    CHECK_EQ_LL(b.len, 3);
    CHECK(memcmp(b.data, "a\0b", 4) == 0, "bytes kept, NUL after them");
    strbuf_free(&b);
}

static void strbuf_direct_writes_are_counted(void) {
    strbuf b = {0};
    CHECK_EQ_LL(strbuf_room(&b), 0);
    CHECK(strbuf_reserve(&b, 5) == 0, "reserve");
    CHECK(strbuf_room(&b) >= 5, "room for what was reserved");
    memcpy(b.data + b.len, "hello", 5);
    strbuf_added(&b, 5);
    CHECK_STR(b.data, "hello");
    CHECK_EQ_LL(b.len, 5);
    strbuf_free(&b);
}

static void strbuf_take_hands_over_the_text(void) {
    strbuf b = {0};
    char *s = strbuf_take(&b);
    CHECK_STR(s, "");
    free(s);
    strbuf_addstr(&b, "x");
    s = strbuf_take(&b);
    CHECK_STR(s, "x");
    CHECK(b.data == NULL && b.len == 0, "the buffer is empty afterwards");
    free(s);
}

static void strbuf_oom_stops_appends(void) {
    strbuf b = {0};
    strbuf_addstr(&b, "kept");
    CHECK(strbuf_reserve(&b, (size_t)-1) < 0, "an impossible reserve fails");
    CHECK(b.oom, "oom is set");
    strbuf_addstr(&b, " dropped");
    CHECK_STR(b.data, "kept");
    CHECK(strbuf_take(&b) == NULL, "take of an oom buffer is NULL");
    CHECK(b.data == NULL, "and frees it");
}

TEST_MAIN(TEST(period_codes_are_checked), TEST(strdup_copies_and_null_is_empty),
          TEST(strbuf_appends_and_stays_terminated), TEST(strbuf_grows_past_its_first_allocation),
          TEST(strbuf_is_binary_safe), TEST(strbuf_direct_writes_are_counted),
          TEST(strbuf_take_hands_over_the_text), TEST(strbuf_oom_stops_appends))
