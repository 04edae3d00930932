/* A tiny unit-test harness: CHECK records a failure with file:line and a message
 * saying what differed; TEST_MAIN runs the listed tests and ends with one
 * "N passed, N failed" line (a test passes when none of its checks failed). */
#ifndef ALLOC_HARNESS_H
#define ALLOC_HARNESS_H

#include <stdio.h>
#include <string.h>

static int harness_failed_checks;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            harness_failed_checks++;                                                               \
            fprintf(stderr, "  %s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);             \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

#define CHECK_EQ_LL(got, want)                                                                     \
    CHECK((long long)(got) == (long long)(want), "got %lld, want %lld", (long long)(got),          \
          (long long)(want))

#define CHECK_STR(got, want)                                                                       \
    CHECK((got) != NULL && strcmp((got), (want)) == 0, "got \"%s\", want \"%s\"",                  \
          (got) ? (got) : "(null)", (want))

typedef struct harness_case {
    const char *name;
    void (*fn)(void);
} harness_case;

#define TEST(fn)                                                                                   \
    { #fn, fn }

#define TEST_MAIN(...)                                                                             \
    int main(void) {                                                                               \
        harness_case cases[] = {__VA_ARGS__};                                                      \
        int passed = 0, failed = 0;                                                                \
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {                              \
            int before = harness_failed_checks;                                                    \
            cases[i].fn();                                                                         \
            if (harness_failed_checks == before) {                                                 \
                passed++;                                                                          \
                printf("ok - %s\n", cases[i].name);                                                \
            } else {                                                                               \
                failed++;                                                                          \
                printf("not ok - %s\n", cases[i].name);                                            \
            }                                                                                      \
        }                                                                                          \
        printf("%d passed, %d failed\n", passed, failed);                                          \
        return failed ? 1 : 0;                                                                     \
    }

#endif
