/* Exit codes of the CLI contract (DESIGN.md section 4) and the always-on invariant check. */
#ifndef ALLOC_CHECK_H
#define ALLOC_CHECK_H

#include <stdio.h>
#include <stdlib.h>

enum {
    ALLOC_EXIT_OK = 0,
    ALLOC_EXIT_RUNTIME = 1,    /* runtime failure */
    ALLOC_EXIT_USAGE = 2,      /* bad arguments */
    ALLOC_EXIT_VALIDATION = 3, /* input refused, nothing changed */
    ALLOC_EXIT_REFUSED = 4,    /* refused by state */
    ALLOC_EXIT_TIMEOUT = 5     /* timed out waiting; the run stays resumable */
};

/* An invariant that must hold whatever the input: logs file:line and aborts.
 * Never used for recoverable failures such as a server going away. */
#define ALLOC_ASSERT(cond)                                                                         \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "alloc: assertion failed at %s:%d: %s\n", __FILE__, __LINE__, #cond);  \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
