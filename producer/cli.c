/* The producer's error lines (see cli.h). */
#include "cli.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* The first error line of the process: what a failed run records as its cause. */
static char first_error[1024];
static int have_first_error;

void cli_error(const char *fmt, ...) {
    char line[sizeof first_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    /* one line each: a library message may end in a newline or hold several */
    for (char *p = line; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    size_t n = strlen(line);
    while (n > 0 && line[n - 1] == ' ')
        line[--n] = '\0';
    fprintf(stderr, "alloc-producer: %s\n", line);
    if (!have_first_error) {
        memcpy(first_error, line, n + 1);
        have_first_error = 1;
    }
}

const char *cli_first_error(void) {
    return have_first_error ? first_error : NULL;
}
