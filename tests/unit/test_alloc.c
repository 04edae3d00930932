/* Unit tests of the allocation arithmetic (common/alloc.c) against hand-computed
 * splits and a sort-based reference implementation. */
#include <stdlib.h>

#include "../../common/alloc.h"
#include "harness.h"

static alloc_u128 sum_w(const uint64_t *w, size_t n) {
    alloc_u128 s = 0;
    for (size_t i = 0; i < n; i++)
        s += w[i];
    return s;
}

/* Splits and compares with the expected shares. */
static void expect_split(const char *label, int64_t amount, const uint64_t *w, size_t n,
                         const int64_t *want) {
    alloc_scratch *s = alloc_scratch_new();
    int64_t got[64];
    alloc_split_result r = alloc_split(amount, w, n, sum_w(w, n), got, s);
    CHECK(r == ALLOC_SPLIT_OK, "%s: result %d", label, (int)r);
    for (size_t i = 0; i < n; i++)
        CHECK(got[i] == want[i], "%s: share %zu is %lld, want %lld", label, i, (long long)got[i],
              (long long)want[i]);
    alloc_scratch_free(s);
}

static void one_cent_over_three_goes_to_first_code(void) {
    uint64_t w[] = {1, 1, 1};
    expect_split("1 cent", 1, w, 3, (int64_t[]){1, 0, 0});
    expect_split("-1 cent", -1, w, 3, (int64_t[]){-1, 0, 0});
    expect_split("2 cents", 2, w, 3, (int64_t[]){1, 1, 0});
    expect_split("100 cents", 100, w, 3, (int64_t[]){34, 33, 33});
}

static void largest_remainder_wins_over_code_order(void) {
    /* a*w = 10,20,30 over W=6: q = 1,3,5; r = 4,2,0; one cent left -> target 0 */
    uint64_t w[] = {1000000, 2000000, 3000000};
    expect_split("10 over 1:2:3", 1000, w, 3, (int64_t[]){167, 333, 500});
    expect_split("10c over 1:2:3", 10, w, 3, (int64_t[]){2, 3, 5});
    /* weights with 6 decimals: 0.000001 and 0.000002; 100 cents: q = 33, 66; r = 1, 2 */
    uint64_t tiny[] = {1, 2};
    expect_split("6 decimals", 100, tiny, 2, (int64_t[]){33, 67});
    /* remainders 2,2,2,2 over W=4 for a=2: the two lowest codes get the cents */
    uint64_t four[] = {5, 5, 5, 5};
    expect_split("ties", 2, four, 4, (int64_t[]){1, 1, 0, 0});
    /* 7 over 2:1 (W=3): a*w = 14, 7; q = 4, 2; r = 2, 1; one cent -> target 0 */
    uint64_t two[] = {2, 1};
    expect_split("7 over 2:1", 7, two, 2, (int64_t[]){5, 2});
    expect_split("-7 over 2:1", -7, two, 2, (int64_t[]){-5, -2});
}

static void zero_weights_get_nothing(void) {
    uint64_t w[] = {0, 5, 0};
    expect_split("zero weights", 7, w, 3, (int64_t[]){0, 7, 0});
    uint64_t zeros[] = {0, 0};
    int64_t shares[2] = {-9, -9};
    alloc_scratch *s = alloc_scratch_new();
    CHECK(alloc_split(100, zeros, 2, 0, shares, s) == ALLOC_SPLIT_UNALLOCATED, "W=0 unallocated");
    CHECK(alloc_split(100, zeros, 0, 0, shares, s) == ALLOC_SPLIT_UNALLOCATED, "no targets");
    CHECK(shares[0] == -9, "unallocated writes nothing");
    expect_split("zero amount", 0, w, 3, (int64_t[]){0, 0, 0});
    alloc_scratch_free(s);
}

static void amounts_near_the_numeric_limit(void) {
    /* |amount| = 999,999,999,999,999.99 and weights 999,999,999,999.999999 (x10^6):
     * products near 10^35 and, with 20 targets, W beyond 64 bits. */
    uint64_t w[20];
    for (int i = 0; i < 20; i++)
        w[i] = 999999999999999999ULL - (uint64_t)i;
    alloc_scratch *s = alloc_scratch_new();
    int64_t shares[20];
    for (int sign = -1; sign <= 1; sign += 2) {
        int64_t amount = sign * ALLOC_MAX_CENTS;
        CHECK(alloc_split(amount, w, 20, sum_w(w, 20), shares, s) == ALLOC_SPLIT_OK, "ok");
        int64_t total = 0;
        for (int i = 0; i < 20; i++)
            total += shares[i];
        CHECK(total == amount, "sum %lld, want %lld", (long long)total, (long long)amount);
        /* nearly equal weights: every share within a cent of the mean */
        for (int i = 0; i < 20; i++) {
            int64_t d = shares[i] - amount / 20;
            CHECK(d >= -2 && d <= 2, "share %d off by %lld", i, (long long)d);
        }
    }
    uint64_t big2[] = {999999999999999999ULL, 1};
    expect_split("limit, two targets", ALLOC_MAX_CENTS, big2, 2,
                 (int64_t[]){ALLOC_MAX_CENTS - 1, 1});
    alloc_scratch_free(s);
}

/* Reference: the same rule with a full sort, slow and obvious. */
static const alloc_u128 *ref_rem;
static int ref_cmp(const void *x, const void *y) {
    size_t i = *(const size_t *)x, j = *(const size_t *)y;
    if (ref_rem[i] != ref_rem[j])
        return ref_rem[i] > ref_rem[j] ? -1 : 1;
    return i < j ? -1 : 1;
}

static void reference_split(int64_t amount, const uint64_t *w, size_t n, int64_t *out) {
    alloc_u128 W = sum_w(w, n);
    uint64_t a = amount < 0 ? (uint64_t)(-amount) : (uint64_t)amount;
    alloc_u128 rem[64];
    size_t idx[64];
    uint64_t given = 0;
    for (size_t i = 0; i < n; i++) {
        alloc_u128 p = (alloc_u128)a * w[i];
        out[i] = (int64_t)(p / W);
        rem[i] = p % W;
        given += (uint64_t)out[i];
        idx[i] = i;
    }
    ref_rem = rem;
    qsort(idx, n, sizeof idx[0], ref_cmp);
    for (uint64_t k = 0; k < a - given; k++)
        out[idx[k]]++;
    if (amount < 0)
        for (size_t i = 0; i < n; i++)
            out[i] = -out[i];
}

static uint64_t rng_state = 88172645463325252ULL;
static uint64_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void matches_reference_on_random_cases(void) {
    alloc_scratch *s = alloc_scratch_new();
    int mismatches = 0;
    for (int c = 0; c < 20000; c++) {
        size_t n = 1 + rnd() % 60;
        uint64_t w[64];
        for (size_t i = 0; i < n; i++) {
            switch (rnd() % 4) {
            case 0:
                w[i] = 0;
                break;
            case 1:
                w[i] = 1 + rnd() % 3;
                break; /* many ties */
            case 2:
                w[i] = rnd() % 1000000000ULL;
                break;
            default:
                w[i] = rnd() % 999999999999999999ULL;
                break;
            }
        }
        int64_t amount = (int64_t)(rnd() % (c % 3 ? 100000 : (uint64_t)ALLOC_MAX_CENTS));
        if (rnd() % 2)
            amount = -amount;
        alloc_u128 W = sum_w(w, n);
        int64_t got[64], want[64];
        alloc_split_result r = alloc_split(amount, w, n, W, got, s);
        if (W == 0) {
            if (r != ALLOC_SPLIT_UNALLOCATED)
                mismatches++;
            continue;
        }
        reference_split(amount, w, n, want);
        int64_t total = 0;
        for (size_t i = 0; i < n; i++) {
            total += got[i];
            if (got[i] != want[i])
                mismatches++;
        }
        if (total != amount)
            mismatches++;
    }
    CHECK(mismatches == 0, "%d mismatches against the reference", mismatches);
    alloc_scratch_free(s);
}

static void parses_and_formats_numerics(void) {
    int64_t v;
    CHECK(alloc_parse_scaled("123.45", 2, &v) == 0 && v == 12345, "123.45 -> %lld", (long long)v);
    CHECK(alloc_parse_scaled("-0.5", 2, &v) == 0 && v == -50, "-0.5 -> %lld", (long long)v);
    CHECK(alloc_parse_scaled("7", 2, &v) == 0 && v == 700, "7");
    CHECK(alloc_parse_scaled("0.000001", 6, &v) == 0 && v == 1, "0.000001");
    CHECK(alloc_parse_scaled("12.340000", 2, &v) == 0 && v == 1234, "trailing zeros");
    CHECK(alloc_parse_scaled("9999999999999999.99", 2, &v) == 0 && v == ALLOC_MAX_CENTS, "max");
    CHECK(alloc_parse_scaled("1.234", 2, &v) == -1, "too many decimals");
    CHECK(alloc_parse_scaled("abc", 2, &v) == -1, "not a number");
    CHECK(alloc_parse_scaled("", 2, &v) == -1, "empty");
    CHECK(alloc_parse_scaled("1.", 2, &v) == -1, "dot without digits");
    CHECK(alloc_parse_scaled("99999999999999999999", 2, &v) == -1, "overflow");
    char buf[32];
    CHECK_STR(alloc_format_cents(12345, buf), "123.45");
    CHECK_STR(alloc_format_cents(-5, buf), "-0.05");
    CHECK_STR(alloc_format_cents(0, buf), "0.00");
    CHECK_STR(alloc_format_cents(-100, buf), "-1.00");
    CHECK_STR(alloc_format_cents(ALLOC_MAX_CENTS, buf), "9999999999999999.99");
    CHECK_STR(alloc_format_cents(-ALLOC_MAX_CENTS, buf), "-9999999999999999.99");
}

TEST_MAIN(TEST(one_cent_over_three_goes_to_first_code),
          TEST(largest_remainder_wins_over_code_order), TEST(zero_weights_get_nothing),
          TEST(amounts_near_the_numeric_limit), TEST(matches_reference_on_random_cases),
          TEST(parses_and_formats_numerics))
