/* Reconnect backoff shared by the PostgreSQL, AMQP and Redis modules: exponential
 * with jitter, capped. Pure apart from sleeping. */
#ifndef ALLOC_BACKOFF_H
#define ALLOC_BACKOFF_H

typedef struct backoff {
    int attempt; /* attempts so far */
    int base_ms; /* first delay */
    int max_ms;  /* cap of one delay */
} backoff;

#define BACKOFF_INIT                                                                               \
    { 0, 100, 5000 }

/* The delay before the next attempt (base * 2^attempt, capped, +-25% jitter);
 * counts the attempt. */
int backoff_next_ms(backoff *b);

/* Sleeps backoff_next_ms(b) milliseconds. */
void backoff_sleep(backoff *b);

/* Forgets past failures (after a success). */
void backoff_reset(backoff *b);

#endif
