/* Exponential reconnect backoff with jitter. */
#include "backoff.h"

#include <stdlib.h>
#include <time.h>

int backoff_next_ms(backoff *b) {
    long d = b->base_ms;
    for (int i = 0; i < b->attempt && d < b->max_ms; i++)
        d *= 2;
    if (d > b->max_ms)
        d = b->max_ms;
    b->attempt++;
    /* jitter so that replicas that lost a server together do not return in step */
    long j = d / 4;
    if (j > 0)
        d += (long)(((unsigned)rand() % (unsigned)(2 * j + 1))) - j;
    return (int)d;
}

void backoff_sleep(backoff *b) {
    int ms = backoff_next_ms(b);
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

void backoff_reset(backoff *b) {
    b->attempt = 0;
}
