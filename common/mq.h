/* AMQP I/O on rabbitmq-c: connection with reconnect, the alloc topology,
 * publishing with publisher confirms in a bounded window, consuming with manual
 * acks, and dead-lettering of messages a consumer cannot use. */
#ifndef ALLOC_MQ_H
#define ALLOC_MQ_H

#include <stddef.h>
#include <stdint.h>

/* One broker connection with its channels. Not thread-safe: an mq_conn is used
 * by one thread at a time, and heartbeats are only serviced while that thread
 * is inside an mq_ call, so a long pause between calls can cost the connection
 * (the caller then sees MQ_ERR_CONN and calls mq_reconnect). */
typedef struct mq_conn mq_conn;

/* Results. Every function that can fail returns one of these and, on failure,
 * writes one line of context into its err buffer ("publish to alloc.work/batch:
 * connection closed"). MQ_ERR_CONN means the connection is gone: call
 * mq_reconnect. MQ_ERR is anything else (the broker refused one operation;
 * the connection stays usable). */
enum {
    MQ_OK = 0,
    MQ_TIMEOUT = 1,  /* nothing arrived in time */
    MQ_EMPTY = 2,    /* mq_get: the queue had no message */
    MQ_ERR = -1,     /* an operation failed; the connection is still usable */
    MQ_ERR_CONN = -2 /* the connection is lost; mq_reconnect */
};

/* Topology (mq_declare_topology). Work messages go to the direct exchange
 * alloc.work with one routing key per kind; each kind has a quorum queue that
 * dead-letters, after MQ_DELIVERY_LIMIT redeliveries, to the direct exchange
 * alloc.dlx with routing key MQ_DEAD_KEY, where the quorum queue alloc.dead is
 * bound. mq_dead_letter publishes there too. alloc.events (topic) carries
 * notices; alloc.control (direct) carries per-run control messages. */
#define MQ_EXCHANGE_WORK "alloc.work"
#define MQ_EXCHANGE_DLX "alloc.dlx"
#define MQ_EXCHANGE_EVENTS "alloc.events"
#define MQ_EXCHANGE_CONTROL "alloc.control"
#define MQ_QUEUE_DEAD "alloc.dead"
#define MQ_QUEUE_BUCKETS "alloc.buckets"
#define MQ_QUEUE_BATCHES "alloc.batches"
#define MQ_QUEUE_FORMULAS "alloc.formulas"
#define MQ_QUEUE_EXPORTS "alloc.exports"
#define MQ_KEY_BUCKET "bucket"
#define MQ_KEY_BATCH "batch"
#define MQ_KEY_FORMULA "formula"
#define MQ_KEY_EXPORT "export"
#define MQ_DEAD_KEY "dead"
#define MQ_DELIVERY_LIMIT 5

/* Headers mq_dead_letter adds: what was wrong, and where the message came from. */
#define MQ_HEADER_ERROR "x-alloc-error"
#define MQ_HEADER_ORIGIN "x-alloc-origin"
#define MQ_HEADER_QUEUE "x-alloc-queue"

#define MQ_DEFAULT_HIGH_WATER 256
#define MQ_DEFAULT_CONFIRM_TIMEOUT_MS 30000

/* A string-valued message header. */
typedef struct mq_header {
    const char *name;
    const char *value;
} mq_header;

/* A received message. Everything in it is owned by the delivery and released
 * by mq_delivery_free. */
typedef struct mq_delivery {
    char *body;          /* the body, with a NUL after the last byte */
    size_t len;          /* body length, not counting that NUL */
    uint64_t tag;        /* pass unchanged to mq_ack / mq_reject (it also names
                            the channel incarnation, so a tag that outlived a
                            channel is recognised as stale) */
    char *exchange;      /* exchange it was published to ("" = default) */
    char *routing_key;   /* routing key it was published with */
    char *queue;         /* the queue it came from */
    int redelivered;     /* broker's redelivered flag */
    long delivery_count; /* x-delivery-count header (quorum queues), -1 if absent */
    mq_header *headers;  /* its string-valued headers */
    size_t n_headers;
} mq_delivery;

/* Queue options for mq_declare_queue; zero means "not set". */
typedef struct mq_queue_opts {
    int quorum;                       /* x-queue-type=quorum (else a classic queue) */
    int delivery_limit;               /* x-delivery-limit, quorum queues only */
    const char *dead_letter_exchange; /* x-dead-letter-exchange */
    const char *dead_letter_key;      /* x-dead-letter-routing-key */
    long expires_ms;                  /* x-expires: deleted after this long unused */
} mq_queue_opts;

/* Publishing counters since mq_connect. */
typedef struct mq_stats {
    uint64_t published;     /* messages sent */
    uint64_t confirmed;     /* basic.ack'ed by the broker */
    uint64_t nacked;        /* basic.nack'ed by the broker */
    uint64_t returned;      /* basic.return'ed (unroutable) */
    uint64_t lost;          /* unconfirmed when their channel or connection died */
    uint64_t window_waits;  /* times mq_publish blocked at the high-water mark */
    size_t unconfirmed;     /* now outstanding */
    size_t max_unconfirmed; /* the most ever outstanding */
} mq_stats;

/* Connects to url (amqp://user:pass@host:port/vhost; the vhost is
 * percent-decoded, "%2f" is "/"), opens channel 1 in confirm mode for
 * publishing and consuming and channel 2 for declarations and basic.get.
 * heartbeat_s = 0 disables heartbeats. Returns the connection (free with
 * mq_close), or NULL with the reason in err. */
mq_conn *mq_connect(const char *url, int heartbeat_s, char *err, size_t errlen);

/* Closes the connection politely when it is alive (unacked deliveries go back
 * to their queues) and frees everything. Accepts NULL. */
void mq_close(mq_conn *c);

/* Drops the current connection, if any, and connects again, sleeping the
 * connection's backoff before each attempt; up to max_attempts attempts
 * (0 = until it works). On success the channels, confirm mode, the declared
 * topology, queues and bindings and the consumers started with mq_consume are
 * all back. Deliveries received but not acked before are stale (the broker
 * redelivers them); messages unconfirmed before are counted as lost. Returns
 * MQ_OK, MQ_ERR_CONN when all attempts failed, or MQ_ERR when the broker
 * refused a re-declaration (retrying would not help). */
int mq_reconnect(mq_conn *c, int max_attempts, char *err, size_t errlen);

/* Whether the connection is believed alive (no MQ_ERR_CONN seen since it was
 * made). */
int mq_is_alive(const mq_conn *c);

/* The vhost the connection logs into (decoded from the URL). */
const char *mq_vhost(const mq_conn *c);

/* The high-water mark of unconfirmed publishes (0 = MQ_DEFAULT_HIGH_WATER).
 * A publish or mq_dead_letter waits MQ_DEFAULT_CONFIRM_TIMEOUT_MS for confirms
 * before giving up. */
void mq_set_high_water(mq_conn *c, size_t high_water);

void mq_get_stats(const mq_conn *c, mq_stats *out);

/* Declares the whole alloc topology (above), all durable. Idempotent: the
 * arguments are always the same, so a second declaration is a no-op. */
int mq_declare_topology(mq_conn *c, char *err, size_t errlen);

/* Declares durable queue `name` with opts (NULL = a plain classic queue),
 * remembered for mq_reconnect. A queue that exists with other arguments is an
 * MQ_ERR (406 PRECONDITION_FAILED). */
int mq_declare_queue(mq_conn *c, const char *name, const mq_queue_opts *opts, char *err,
                     size_t errlen);

/* Binds queue to exchange with routing_key, remembered for mq_reconnect. */
int mq_bind(mq_conn *c, const char *queue, const char *exchange, const char *routing_key, char *err,
            size_t errlen);

/* Deletes queue (with its messages); forgets its declaration and bindings. A
 * queue that does not exist is not an error. */
int mq_delete_queue(mq_conn *c, const char *queue, char *err, size_t errlen);

/* Publishes body (len bytes, copied) to exchange with routing_key as a
 * persistent application/json message with the given string headers, mandatory
 * (an unroutable message comes back and is an error). Blocks reading confirms
 * while the number of unconfirmed messages is at the high-water mark, until it
 * is down to 70% of it. Returns MQ_OK when sent; MQ_ERR when an earlier
 * message was nacked or returned, or the channel was closed by the broker (for
 * instance a publish to an exchange that does not exist; the error says so,
 * and this message was not sent); MQ_TIMEOUT when the window did not drain in
 * the confirm timeout (not sent); MQ_ERR_CONN. */
int mq_publish(mq_conn *c, const char *exchange, const char *routing_key, const void *body,
               size_t len, const mq_header *headers, size_t n_headers, char *err, size_t errlen);

/* Waits until every message published so far is confirmed. timeout_ms < 0
 * waits without limit. Returns MQ_OK when all were acked; MQ_ERR when one was
 * nacked, returned or lost with its channel since the last report; MQ_TIMEOUT;
 * MQ_ERR_CONN. */
int mq_flush(mq_conn *c, int timeout_ms, char *err, size_t errlen);

/* Starts consuming queue with manual acks and at most prefetch unacked
 * deliveries (basic.qos + basic.consume), remembered for mq_reconnect. */
int mq_consume(mq_conn *c, const char *queue, int prefetch, char *err, size_t errlen);

/* Stops the consumer of queue (deliveries already received are still returned
 * by mq_next). */
int mq_cancel(mq_conn *c, const char *queue, char *err, size_t errlen);

/* Waits up to timeout_ms (< 0: without limit) for the next delivery from any
 * consumer of this connection and fills *out (free with mq_delivery_free).
 * Publisher confirms arriving meanwhile are counted. Returns MQ_OK,
 * MQ_TIMEOUT, MQ_ERR (e.g. the broker closed the channel or cancelled a
 * consumer; the next call re-opens the channel and its consumers) or
 * MQ_ERR_CONN. */
int mq_next(mq_conn *c, int timeout_ms, mq_delivery *out, char *err, size_t errlen);

/* basic.get on queue (manual ack): MQ_OK with *out filled, MQ_EMPTY, or an
 * error. For tests and tools that read a queue, e.g. alloc.dead. */
int mq_get(mq_conn *c, const char *queue, mq_delivery *out, char *err, size_t errlen);

/* How many messages are ready in queue and how many consumers it has
 * (queue.declare with passive set: nothing is created). Either pointer may be
 * NULL. Returns MQ_OK, MQ_ERR (e.g. the queue does not exist) or MQ_ERR_CONN. */
int mq_queue_info(mq_conn *c, const char *queue, uint32_t *messages, uint32_t *consumers, char *err,
                  size_t errlen);

/* Acknowledges a delivery, or rejects it (requeue = 1 puts it back; 0 drops it
 * or dead-letters it when its queue has a dead-letter exchange). A tag from a
 * channel that has since been re-opened is MQ_ERR (the broker will redeliver
 * the message anyway). */
int mq_ack(mq_conn *c, uint64_t tag, char *err, size_t errlen);
int mq_reject(mq_conn *c, uint64_t tag, int requeue, char *err, size_t errlen);

/* Disposes of a message a consumer cannot use: publishes its body and string
 * headers to alloc.dlx (it lands in alloc.dead) with MQ_HEADER_ERROR = reason
 * (flattened to one line), MQ_HEADER_ORIGIN = its routing key and
 * MQ_HEADER_QUEUE = its queue, waits for the broker's confirm, then acks the
 * original. On failure the original is left unacked (it will be redelivered). */
int mq_dead_letter(mq_conn *c, const mq_delivery *d, const char *reason, char *err, size_t errlen);

/* The value of string header name of d, or NULL when absent. */
const char *mq_delivery_header(const mq_delivery *d, const char *name);

/* Frees what d owns and zeroes it (not d itself). Accepts NULL. */
void mq_delivery_free(mq_delivery *d);

/* "ok", "timeout", "empty", "error" or "connection lost". */
const char *mq_status_string(int rc);

#endif
