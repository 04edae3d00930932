/* AMQP I/O on rabbitmq-c 0.11 (see mq.h). Channel 1 publishes in confirm mode
 * and consumes; channel 2 carries declarations and basic.get, so a declaration
 * the broker refuses (which closes its channel) never costs the consumers. */
#include "mq.h"

#include "backoff.h"
#include "config.h"
#include "util.h"

#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CH_WORK 1  /* publishing (confirm mode) and consuming */
#define CH_ADMIN 2 /* declarations, deletions, basic.get */

/* Delivery tags handed to callers: bits 63..48 the channel incarnation, bit 47
 * set for channel 2, bits 46..0 the broker's tag (per channel, from 1). */
#define TAG_GEN_SHIFT 48
#define TAG_ADMIN_BIT ((uint64_t)1 << 47)
#define TAG_BROKER_MASK (TAG_ADMIN_BIT - 1)

#define CONNECT_TIMEOUT_S 10
#define RPC_TIMEOUT_S 30
#define CLOSE_TIMEOUT_S 2
#define REASON_MAX 1000 /* longest x-alloc-error value kept */

enum { SLOT_PENDING = 0, SLOT_ACKED, SLOT_NACKED };

/* Publisher confirms of channel 1: one slot per delivery tag from base (the
 * oldest unconfirmed) to next (the tag of the next publish), in a ring that
 * grows when acks come out of order and the span outgrows it. */
typedef struct confirm_window {
    uint64_t base;
    uint64_t next;
    unsigned char *slot; /* slot[tag & (cap - 1)] */
    size_t cap;          /* a power of 2 */
    size_t unconfirmed;
} confirm_window;

/* A consumer started with mq_consume, replayed on re-open and reconnect. */
typedef struct consumer {
    char *queue;
    int prefetch;
    char *tag; /* the broker's consumer tag; NULL while not consuming */
    struct consumer *next;
} consumer;

/* A declaration or binding made with mq_declare_queue / mq_bind, replayed on
 * reconnect (the broker may have lost it with its data). */
typedef struct declaration {
    int is_bind;
    char *queue;
    char *exchange; /* bindings */
    char *key;      /* bindings */
    mq_queue_opts opts;
    char *dl_exchange; /* owned copies of the opts strings */
    char *dl_key;
    struct declaration *next;
} declaration;

/* A delivery read while waiting for something else (a confirm, an RPC). */
typedef struct inbox_item {
    mq_delivery d;
    struct inbox_item *next;
} inbox_item;

struct mq_conn {
    char *url_buf; /* the URL copy amqp_parse_url cut up; info points into it */
    struct amqp_connection_info info;
    int heartbeat_s;
    amqp_connection_state_t state; /* NULL while disconnected */
    int alive;
    int open[3];     /* by channel number */
    unsigned gen[3]; /* incarnation of each channel, for stale tags */
    unsigned gen_counter;

    confirm_window win;
    size_t high_water;
    int confirm_timeout_ms;
    mq_stats stats;
    int fail_pending; /* nacks/returns/losses not yet reported to a publisher */
    int fail_count;
    char fail_msg[512]; /* the first of them */
    uint64_t watch_tag; /* a publish whose fate mq_dead_letter waits for */
    int watch_state;    /* SLOT_* of watch_tag, or -1 while pending */

    int consumer_err_pending; /* a consumer cancelled by the broker, for mq_next */
    char consumer_err[300];

    inbox_item *inbox_head, *inbox_tail;
    consumer *consumers;
    declaration *decls;
    int topology_declared;
    backoff bo;
};

/* ---- small helpers ---------------------------------------------------- */

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* A NUL-terminated malloc'ed copy of b (NULL when out of memory). */
static char *bytes_dup(amqp_bytes_t b) {
    char *s = malloc(b.len + 1);
    if (!s)
        return NULL;
    if (b.len)
        memcpy(s, b.bytes, b.len);
    s[b.len] = '\0';
    return s;
}

/* A name AMQP can carry as a short string. */
static int short_str_ok(const char *s) {
    return s && strlen(s) <= 255;
}

typedef struct deadline {
    int unlimited;
    struct timespec at;
} deadline;

static void deadline_in(deadline *d, int ms) {
    d->unlimited = ms < 0;
    clock_gettime(CLOCK_MONOTONIC, &d->at);
    if (ms > 0) {
        d->at.tv_sec += ms / 1000;
        d->at.tv_nsec += (long)(ms % 1000) * 1000000L;
        if (d->at.tv_nsec >= 1000000000L) {
            d->at.tv_sec++;
            d->at.tv_nsec -= 1000000000L;
        }
    }
}

/* The time left as a timeval for rabbitmq-c (zero once past), or NULL when
 * unlimited. */
static struct timeval *deadline_left(const deadline *d, struct timeval *tv) {
    if (d->unlimited)
        return NULL;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long long left_us =
        (long long)(d->at.tv_sec - now.tv_sec) * 1000000LL + (d->at.tv_nsec - now.tv_nsec) / 1000;
    if (left_us < 0)
        left_us = 0;
    tv->tv_sec = (time_t)(left_us / 1000000);
    tv->tv_usec = (suseconds_t)(left_us % 1000000);
    return tv;
}

/* Why an RPC failed, as text. */
static void reply_text(amqp_rpc_reply_t r, char *buf, size_t n) {
    switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
        snprintf(buf, n, "ok");
        break;
    case AMQP_RESPONSE_NONE:
        snprintf(buf, n, "no reply from the broker");
        break;
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        snprintf(buf, n, "%s", amqp_error_string2(r.library_error));
        break;
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
            const amqp_connection_close_t *m = r.reply.decoded;
            snprintf(buf, n, "connection closed by broker: %u %.*s", m->reply_code,
                     (int)m->reply_text.len, (const char *)m->reply_text.bytes);
        } else if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
            const amqp_channel_close_t *m = r.reply.decoded;
            snprintf(buf, n, "channel closed by broker: %u %.*s", m->reply_code,
                     (int)m->reply_text.len, (const char *)m->reply_text.bytes);
        } else {
            snprintf(buf, n, "unexpected reply %s", amqp_method_name(r.reply.id));
        }
        break;
    }
}

/* ---- confirm window --------------------------------------------------- */

static void window_reset(confirm_window *w) {
    w->base = w->next = 1;
    w->unconfirmed = 0;
}

/* Takes a slot for the next publish. Returns 0 when out of memory. */
static int window_add(confirm_window *w) {
    if (w->next - w->base >= w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 1024;
        unsigned char *slot = malloc(cap);
        if (!slot)
            return 0;
        for (uint64_t t = w->base; t < w->next; t++)
            slot[t & (cap - 1)] = w->slot[t & (w->cap - 1)];
        free(w->slot);
        w->slot = slot;
        w->cap = cap;
    }
    w->slot[w->next & (w->cap - 1)] = SLOT_PENDING;
    w->next++;
    w->unconfirmed++;
    return 1;
}

static void record_failure(mq_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void record_failure(mq_conn *c, const char *fmt, ...) {
    if (!c->fail_pending) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->fail_msg, sizeof c->fail_msg, fmt, ap);
        va_end(ap);
        c->fail_pending = 1;
        c->fail_count = 0;
    }
    c->fail_count++;
}

/* Reports the recorded failures as the error of operation `what` and forgets
 * them. Returns MQ_ERR. */
static int report_failure(mq_conn *c, const char *what, char *err, size_t errlen) {
    if (c->fail_count > 1)
        set_err(err, errlen, "%s: %s (and %d more failed messages)", what, c->fail_msg,
                c->fail_count - 1);
    else
        set_err(err, errlen, "%s: %s", what, c->fail_msg);
    c->fail_pending = 0;
    c->fail_count = 0;
    return MQ_ERR;
}

/* A basic.ack or basic.nack for tag (and every earlier one when multiple). */
static void window_settle(mq_conn *c, uint64_t tag, int multiple, int nack) {
    confirm_window *w = &c->win;
    if (tag < w->base || tag >= w->next)
        return; /* already settled, or not ours */
    uint64_t lo = multiple ? w->base : tag;
    for (uint64_t t = lo; t <= tag; t++) {
        unsigned char *s = &w->slot[t & (w->cap - 1)];
        if (*s != SLOT_PENDING)
            continue;
        *s = nack ? SLOT_NACKED : SLOT_ACKED;
        w->unconfirmed--;
        if (nack)
            c->stats.nacked++;
        else
            c->stats.confirmed++;
        if (t == c->watch_tag)
            c->watch_state = *s;
        else if (nack)
            record_failure(c, "broker nacked published message %llu", (unsigned long long)t);
    }
    while (w->base < w->next && w->slot[w->base & (w->cap - 1)] != SLOT_PENDING)
        w->base++;
}

/* ---- deliveries ------------------------------------------------------- */

void mq_delivery_free(mq_delivery *d) {
    if (!d)
        return;
    free(d->body);
    free(d->exchange);
    free(d->routing_key);
    free(d->queue);
    for (size_t i = 0; i < d->n_headers; i++) {
        free((char *)d->headers[i].name);
        free((char *)d->headers[i].value);
    }
    free(d->headers);
    memset(d, 0, sizeof *d);
}

const char *mq_delivery_header(const mq_delivery *d, const char *name) {
    for (size_t i = 0; i < d->n_headers; i++)
        if (strcmp(d->headers[i].name, name) == 0)
            return d->headers[i].value;
    return NULL;
}

static int field_integer(const amqp_field_value_t *v, long *out) {
    switch (v->kind) {
    case AMQP_FIELD_KIND_I8:
        *out = v->value.i8;
        return 1;
    case AMQP_FIELD_KIND_U8:
        *out = v->value.u8;
        return 1;
    case AMQP_FIELD_KIND_I16:
        *out = v->value.i16;
        return 1;
    case AMQP_FIELD_KIND_U16:
        *out = v->value.u16;
        return 1;
    case AMQP_FIELD_KIND_I32:
        *out = v->value.i32;
        return 1;
    case AMQP_FIELD_KIND_U32:
        *out = (long)v->value.u32;
        return 1;
    case AMQP_FIELD_KIND_I64:
        *out = (long)v->value.i64;
        return 1;
    case AMQP_FIELD_KIND_U64:
        *out = (long)v->value.u64;
        return 1;
    default:
        return 0;
    }
}

static uint64_t make_tag(const mq_conn *c, amqp_channel_t ch, uint64_t broker_tag) {
    return ((uint64_t)(c->gen[ch] & 0xffff) << TAG_GEN_SHIFT) |
           (ch == CH_ADMIN ? TAG_ADMIN_BIT : 0) | (broker_tag & TAG_BROKER_MASK);
}

/* Fills d from a message read off channel ch. Copies everything, so the
 * caller may release the library's buffers afterwards. Returns 0 when out of
 * memory (d is then freed). */
static int delivery_fill(mq_conn *c, mq_delivery *d, amqp_channel_t ch, uint64_t broker_tag,
                         int redelivered, amqp_bytes_t exchange, amqp_bytes_t routing_key,
                         const char *queue, const amqp_message_t *msg) {
    memset(d, 0, sizeof *d);
    d->tag = make_tag(c, ch, broker_tag);
    d->redelivered = redelivered ? 1 : 0;
    d->delivery_count = -1;
    d->body = bytes_dup(msg->body);
    d->len = msg->body.len;
    d->exchange = bytes_dup(exchange);
    d->routing_key = bytes_dup(routing_key);
    d->queue = util_strdup(queue);
    if (!d->body || !d->exchange || !d->routing_key || !d->queue)
        goto oom;
    if (msg->properties._flags & AMQP_BASIC_HEADERS_FLAG) {
        const amqp_table_t *t = &msg->properties.headers;
        if (t->num_entries > 0) {
            d->headers = calloc((size_t)t->num_entries, sizeof *d->headers);
            if (!d->headers)
                goto oom;
        }
        for (int i = 0; i < t->num_entries; i++) {
            const amqp_table_entry_t *e = &t->entries[i];
            long n;
            if (e->value.kind == AMQP_FIELD_KIND_UTF8 || e->value.kind == AMQP_FIELD_KIND_BYTES) {
                char *name = bytes_dup(e->key), *value = bytes_dup(e->value.value.bytes);
                if (!name || !value) {
                    free(name);
                    free(value);
                    goto oom;
                }
                d->headers[d->n_headers].name = name;
                d->headers[d->n_headers].value = value;
                d->n_headers++;
            } else if (e->key.len == 16 && memcmp(e->key.bytes, "x-delivery-count", 16) == 0 &&
                       field_integer(&e->value, &n)) {
                d->delivery_count = n;
            }
        }
    }
    return 1;
oom:
    mq_delivery_free(d);
    return 0;
}

static void inbox_push(mq_conn *c, inbox_item *it) {
    it->next = NULL;
    if (c->inbox_tail)
        c->inbox_tail->next = it;
    else
        c->inbox_head = it;
    c->inbox_tail = it;
}

static int inbox_pop(mq_conn *c, mq_delivery *out) {
    inbox_item *it = c->inbox_head;
    if (!it)
        return 0;
    c->inbox_head = it->next;
    if (!c->inbox_head)
        c->inbox_tail = NULL;
    *out = it->d;
    free(it);
    return 1;
}

static void inbox_drop(mq_conn *c) {
    mq_delivery d;
    while (inbox_pop(c, &d))
        mq_delivery_free(&d);
}

static consumer *consumer_by_tag(mq_conn *c, amqp_bytes_t tag) {
    for (consumer *k = c->consumers; k; k = k->next)
        if (k->tag && strlen(k->tag) == tag.len && memcmp(k->tag, tag.bytes, tag.len) == 0)
            return k;
    return NULL;
}

static void consumer_remove(mq_conn *c, consumer *gone) {
    for (consumer **p = &c->consumers; *p; p = &(*p)->next) {
        if (*p == gone) {
            *p = gone->next;
            free(gone->queue);
            free(gone->tag);
            free(gone);
            return;
        }
    }
}

/* ---- failures --------------------------------------------------------- */

/* Marks the connection lost. Returns MQ_ERR_CONN. */
static int conn_lost(mq_conn *c, const char *what, const char *why, char *err, size_t errlen) {
    c->alive = 0;
    c->open[CH_WORK] = c->open[CH_ADMIN] = 0;
    set_err(err, errlen, "%s: %s", what, why);
    return MQ_ERR_CONN;
}

/* Forgets what lived on channel ch after it closed: for channel 1 the
 * unconfirmed publishes (lost) and the deliveries not yet handed out (the
 * broker requeues them). Returns how many publishes were lost. */
static size_t channel_gone(mq_conn *c, amqp_channel_t ch) {
    size_t lost = 0;
    c->open[ch] = 0;
    if (ch == CH_WORK) {
        lost = c->win.unconfirmed;
        c->stats.lost += lost;
        window_reset(&c->win);
        c->watch_state = -1;
        c->watch_tag = 0;
        inbox_drop(c);
        for (consumer *k = c->consumers; k; k = k->next) {
            free(k->tag);
            k->tag = NULL;
        }
    }
    return lost;
}

/* The broker closed channel ch: confirms the close and forgets the channel,
 * which the next operation re-opens. Returns MQ_ERR with the reason. */
static int on_channel_close(mq_conn *c, amqp_channel_t ch, const amqp_channel_close_t *m,
                            const char *what, char *err, size_t errlen) {
    char why[400];
    snprintf(why, sizeof why, "channel %u closed by broker: %u %.*s", ch, m->reply_code,
             (int)m->reply_text.len, (const char *)m->reply_text.bytes);
    amqp_channel_close_ok_t ok;
    memset(&ok, 0, sizeof ok);
    int s = amqp_send_method(c->state, ch, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
    size_t lost = channel_gone(c, ch);
    if (s < 0)
        return conn_lost(c, what, amqp_error_string2(s), err, errlen);
    if (lost > 0) {
        record_failure(c, "%s (%zu unconfirmed message%s lost)", why, lost, lost == 1 ? "" : "s");
        set_err(err, errlen, "%s: %s (%zu unconfirmed message%s lost)", what, why, lost,
                lost == 1 ? "" : "s");
    } else {
        set_err(err, errlen, "%s: %s", what, why);
    }
    return MQ_ERR;
}

/* The broker closed the connection: confirms it. Returns MQ_ERR_CONN. */
static int on_connection_close(mq_conn *c, const amqp_connection_close_t *m, const char *what,
                               char *err, size_t errlen) {
    char why[400];
    snprintf(why, sizeof why, "connection closed by broker: %u %.*s", m->reply_code,
             (int)m->reply_text.len, (const char *)m->reply_text.bytes);
    amqp_connection_close_ok_t ok;
    memset(&ok, 0, sizeof ok);
    amqp_send_method(c->state, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
    return conn_lost(c, what, why, err, errlen);
}

/* Classifies the reply of an RPC (or of amqp_read_message) on channel ch:
 * MQ_OK; MQ_ERR when the broker closed the channel; MQ_ERR_CONN otherwise. */
static int check_reply(mq_conn *c, amqp_channel_t ch, amqp_rpc_reply_t r, const char *what,
                       char *err, size_t errlen) {
    char why[400];
    switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
        return MQ_OK;
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD)
            return on_channel_close(c, ch, r.reply.decoded, what, err, errlen);
        if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD)
            return on_connection_close(c, r.reply.decoded, what, err, errlen);
        /* fall through */
    default:
        reply_text(r, why, sizeof why);
        return conn_lost(c, what, why, err, errlen);
    }
}

/* ---- frames that arrive on their own ---------------------------------- */

/* Reads the content of a basic.return and records the failure. */
static int on_return(mq_conn *c, amqp_channel_t ch, const amqp_basic_return_t *r, const char *what,
                     char *err, size_t errlen) {
    char why[600];
    snprintf(why, sizeof why, "message to %.*s/%.*s returned by broker: %u %.*s",
             (int)r->exchange.len, (const char *)r->exchange.bytes, (int)r->routing_key.len,
             (const char *)r->routing_key.bytes, r->reply_code, (int)r->reply_text.len,
             (const char *)r->reply_text.bytes);
    amqp_message_t msg;
    amqp_rpc_reply_t rr = amqp_read_message(c->state, ch, &msg, 0);
    if (rr.reply_type != AMQP_RESPONSE_NORMAL)
        return check_reply(c, ch, rr, what, err, errlen);
    amqp_destroy_message(&msg);
    c->stats.returned++;
    record_failure(c, "%s", why);
    return MQ_OK;
}

/* Reads the content of a basic.deliver that arrived while waiting for
 * something else and keeps it for mq_next. */
static int on_deliver(mq_conn *c, amqp_channel_t ch, const amqp_basic_deliver_t *m,
                      const char *what, char *err, size_t errlen) {
    consumer *k = consumer_by_tag(c, m->consumer_tag);
    amqp_message_t msg;
    amqp_rpc_reply_t rr = amqp_read_message(c->state, ch, &msg, 0);
    if (rr.reply_type != AMQP_RESPONSE_NORMAL)
        return check_reply(c, ch, rr, what, err, errlen);
    inbox_item *it = malloc(sizeof *it);
    int ok = it && delivery_fill(c, &it->d, ch, m->delivery_tag, m->redelivered, m->exchange,
                                 m->routing_key, k ? k->queue : NULL, &msg);
    amqp_destroy_message(&msg);
    if (!ok) {
        free(it);
        /* the broker redelivers it once the channel or connection goes */
        set_err(err, errlen, "%s: out of memory reading a delivery", what);
        return MQ_ERR;
    }
    inbox_push(c, it);
    return MQ_OK;
}

/* Handles one frame read outside an RPC: publisher confirms, returns,
 * deliveries (kept in the inbox), consumer cancellations, closes. The frame's
 * data lives in the library's buffers: nothing here keeps a pointer to it.
 * Returns MQ_OK or the error the frame stands for. */
static int handle_frame(mq_conn *c, const amqp_frame_t *f, const char *what, char *err,
                        size_t errlen) {
    if (f->frame_type != AMQP_FRAME_METHOD)
        return MQ_OK; /* stray content: ignored */
    const amqp_method_t *m = &f->payload.method;
    switch (m->id) {
    case AMQP_BASIC_ACK_METHOD:
        if (f->channel == CH_WORK) {
            const amqp_basic_ack_t *a = m->decoded;
            window_settle(c, a->delivery_tag, a->multiple, 0);
        }
        return MQ_OK;
    case AMQP_BASIC_NACK_METHOD:
        if (f->channel == CH_WORK) {
            const amqp_basic_nack_t *n = m->decoded;
            window_settle(c, n->delivery_tag, n->multiple, 1);
        }
        return MQ_OK;
    case AMQP_BASIC_RETURN_METHOD:
        return on_return(c, f->channel, m->decoded, what, err, errlen);
    case AMQP_BASIC_DELIVER_METHOD:
        return on_deliver(c, f->channel, m->decoded, what, err, errlen);
    case AMQP_BASIC_CANCEL_METHOD: {
        /* the broker dropped a consumer (its queue was deleted) */
        const amqp_basic_cancel_t *cm = m->decoded;
        consumer *k = consumer_by_tag(c, cm->consumer_tag);
        if (k && !c->consumer_err_pending) {
            snprintf(c->consumer_err, sizeof c->consumer_err,
                     "consumer of queue %s cancelled by broker (queue deleted?)", k->queue);
            c->consumer_err_pending = 1;
        }
        if (k)
            consumer_remove(c, k);
        return MQ_OK;
    }
    case AMQP_CHANNEL_CLOSE_METHOD:
        return on_channel_close(c, f->channel, m->decoded, what, err, errlen);
    case AMQP_CONNECTION_CLOSE_METHOD:
        return on_connection_close(c, m->decoded, what, err, errlen);
    default:
        return MQ_OK; /* connection.blocked and the like */
    }
}

typedef int (*pump_done_fn)(const mq_conn *c, const void *arg);

/* Reads and handles frames until done(c, arg) holds. Returns MQ_OK, MQ_TIMEOUT
 * at the deadline (err not set), or the error a frame stood for. */
static int pump(mq_conn *c, const deadline *dl, pump_done_fn done, const void *arg,
                const char *what, char *err, size_t errlen) {
    while (!done(c, arg)) {
        amqp_maybe_release_buffers(c->state);
        struct timeval tv, *tvp = deadline_left(dl, &tv);
        amqp_frame_t f;
        int s = amqp_simple_wait_frame_noblock(c->state, &f, tvp);
        if (s == AMQP_STATUS_TIMEOUT)
            return MQ_TIMEOUT;
        if (s != AMQP_STATUS_OK)
            return conn_lost(c, what, amqp_error_string2(s), err, errlen);
        int rc = handle_frame(c, &f, what, err, errlen);
        if (rc != MQ_OK)
            return rc;
    }
    return MQ_OK;
}

static int never(const mq_conn *c, const void *arg) {
    (void)c;
    (void)arg;
    return 0;
}

static int window_at_most(const mq_conn *c, const void *arg) {
    return c->win.unconfirmed <= *(const size_t *)arg || !c->open[CH_WORK];
}

static int watch_settled(const mq_conn *c, const void *arg) {
    (void)arg;
    return c->watch_state >= 0 || !c->open[CH_WORK];
}

/* Handles whatever has already arrived, without waiting. */
static int drain(mq_conn *c, const char *what, char *err, size_t errlen) {
    deadline now;
    deadline_in(&now, 0);
    int rc = pump(c, &now, never, NULL, what, err, errlen);
    return rc == MQ_TIMEOUT ? MQ_OK : rc;
}

/* ---- channels and connection ------------------------------------------ */

static int start_consumer(mq_conn *c, consumer *k, char *err, size_t errlen) {
    char what[300];
    snprintf(what, sizeof what, "consume queue %s", k->queue);
    int prefetch = k->prefetch < 1 ? 1 : k->prefetch > 65535 ? 65535 : k->prefetch;
    amqp_basic_qos(c->state, CH_WORK, 0, (uint16_t)prefetch, 0);
    int rc = check_reply(c, CH_WORK, amqp_get_rpc_reply(c->state), what, err, errlen);
    if (rc != MQ_OK)
        return rc;
    amqp_basic_consume_ok_t *ok =
        amqp_basic_consume(c->state, CH_WORK, amqp_cstring_bytes(k->queue), amqp_empty_bytes, 0, 0,
                           0, amqp_empty_table);
    rc = check_reply(c, CH_WORK, amqp_get_rpc_reply(c->state), what, err, errlen);
    if (rc != MQ_OK)
        return rc;
    free(k->tag);
    k->tag = bytes_dup(ok->consumer_tag);
    if (!k->tag) {
        set_err(err, errlen, "%s: out of memory", what);
        return MQ_ERR;
    }
    return MQ_OK;
}

/* Opens channel ch; channel 1 also gets confirm mode and its consumers back.
 * A consumer the broker refuses is dropped (and reported). */
static int open_channel(mq_conn *c, amqp_channel_t ch, char *err, size_t errlen) {
    char what[64];
    snprintf(what, sizeof what, "open channel %u", ch);
    amqp_channel_open(c->state, ch);
    int rc = check_reply(c, ch, amqp_get_rpc_reply(c->state), what, err, errlen);
    if (rc != MQ_OK)
        return rc;
    c->open[ch] = 1;
    c->gen[ch] = ++c->gen_counter;
    if (ch != CH_WORK)
        return MQ_OK;

    window_reset(&c->win);
    amqp_confirm_select(c->state, CH_WORK);
    rc = check_reply(c, CH_WORK, amqp_get_rpc_reply(c->state), "enable publisher confirms", err,
                     errlen);
    if (rc != MQ_OK)
        return rc;
    for (consumer *k = c->consumers; k; k = k->next) {
        rc = start_consumer(c, k, err, errlen);
        if (rc == MQ_ERR) {
            size_t n = strlen(err ? err : "");
            if (err && n + 20 < errlen)
                snprintf(err + n, errlen - n, " (consumer dropped)");
            consumer_remove(c, k);
        }
        if (rc != MQ_OK)
            return rc;
    }
    return MQ_OK;
}

static int ensure_channel(mq_conn *c, amqp_channel_t ch, const char *what, char *err,
                          size_t errlen) {
    if (!c->alive) {
        set_err(err, errlen, "%s: connection lost (mq_reconnect)", what);
        return MQ_ERR_CONN;
    }
    if (c->open[ch])
        return MQ_OK;
    char why[512] = "";
    int rc = open_channel(c, ch, why, sizeof why);
    if (rc != MQ_OK)
        set_err(err, errlen, "%s: %s", what, why);
    return rc;
}

/* Closes (politely when alive) and frees the library connection. */
static void teardown(mq_conn *c) {
    if (c->state) {
        if (c->alive) {
            struct timeval tv = {CLOSE_TIMEOUT_S, 0};
            amqp_set_rpc_timeout(c->state, &tv);
            amqp_connection_close(c->state, AMQP_REPLY_SUCCESS);
        }
        amqp_destroy_connection(c->state);
        c->state = NULL;
    }
    c->alive = 0;
    channel_gone(c, CH_WORK);
    channel_gone(c, CH_ADMIN);
}

static int declare_topology_raw(mq_conn *c, char *err, size_t errlen);
static int replay_declarations(mq_conn *c, char *err, size_t errlen);

/* Connects, logs in, opens both channels and replays what was declared.
 * MQ_ERR_CONN when the broker cannot be reached or refuses the login; MQ_ERR
 * when it refuses a re-declaration. */
static int establish(mq_conn *c, char *err, size_t errlen) {
    const struct amqp_connection_info *ci = &c->info;
    char what[400];
    snprintf(what, sizeof what, "connect to %s:%d vhost %s", ci->host, ci->port, ci->vhost);
    c->state = amqp_new_connection();
    if (!c->state) {
        set_err(err, errlen, "%s: out of memory", what);
        return MQ_ERR_CONN;
    }
    amqp_socket_t *sock = amqp_tcp_socket_new(c->state);
    if (!sock) {
        set_err(err, errlen, "%s: cannot create socket", what);
        return MQ_ERR_CONN;
    }
    struct timeval connect_tv = {CONNECT_TIMEOUT_S, 0}, rpc_tv = {RPC_TIMEOUT_S, 0};
    int s = amqp_socket_open_noblock(sock, ci->host, ci->port, &connect_tv);
    if (s != AMQP_STATUS_OK) {
        set_err(err, errlen, "%s: %s", what, amqp_error_string2(s));
        return MQ_ERR_CONN;
    }
    amqp_set_handshake_timeout(c->state, &connect_tv);
    amqp_set_rpc_timeout(c->state, &rpc_tv);

    /* A name to spot the connection in rabbitmqctl list_connections, and
     * consumer_cancel_notify so a deleted queue cancels its consumer visibly. */
    char name[64];
    snprintf(name, sizeof name, "alloc pid %ld", (long)getpid());
    amqp_table_entry_t cap[1];
    cap[0].key = amqp_cstring_bytes("consumer_cancel_notify");
    cap[0].value.kind = AMQP_FIELD_KIND_BOOLEAN;
    cap[0].value.value.boolean = 1;
    amqp_table_entry_t prop[2];
    prop[0].key = amqp_cstring_bytes("connection_name");
    prop[0].value.kind = AMQP_FIELD_KIND_UTF8;
    prop[0].value.value.bytes = amqp_cstring_bytes(name);
    prop[1].key = amqp_cstring_bytes("capabilities");
    prop[1].value.kind = AMQP_FIELD_KIND_TABLE;
    prop[1].value.value.table.num_entries = 1;
    prop[1].value.value.table.entries = cap;
    amqp_table_t props = {2, prop};

    amqp_rpc_reply_t r =
        amqp_login_with_properties(c->state, ci->vhost, 0, AMQP_DEFAULT_FRAME_SIZE, c->heartbeat_s,
                                   &props, AMQP_SASL_METHOD_PLAIN, ci->user, ci->password);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        char why[400];
        reply_text(r, why, sizeof why);
        if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
            r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
            amqp_connection_close_ok_t ok;
            memset(&ok, 0, sizeof ok);
            amqp_send_method(c->state, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
        }
        /* the broker's refusal is its text: never echo the password */
        config_scrub_password(ci->password, why, sizeof why);
        set_err(err, errlen, "%s as %s: %s", what, ci->user, why);
        return MQ_ERR_CONN;
    }
    c->alive = 1;

    /* declarations first: a consumer's queue may have to be re-declared (a
     * broker that lost its data) before channel 1 consumes from it again */
    char why[512] = "";
    int rc = open_channel(c, CH_ADMIN, why, sizeof why);
    if (rc == MQ_OK && c->topology_declared)
        rc = declare_topology_raw(c, why, sizeof why);
    if (rc == MQ_OK)
        rc = replay_declarations(c, why, sizeof why);
    if (rc == MQ_OK)
        rc = open_channel(c, CH_WORK, why, sizeof why);
    if (rc != MQ_OK)
        set_err(err, errlen, "%s: %s", what, why);
    return rc;
}

mq_conn *mq_connect(const char *url, int heartbeat_s, char *err, size_t errlen) {
    mq_conn *c = calloc(1, sizeof *c);
    if (!c || !url || !(c->url_buf = strdup(url))) {
        set_err(err, errlen, "connect: %s", url ? "out of memory" : "no AMQP URL");
        free(c);
        return NULL;
    }
    /* amqp_parse_url cuts the string up in place and percent-decodes it; the
     * info fields point into url_buf, kept for reconnects. */
    if (amqp_parse_url(c->url_buf, &c->info) != AMQP_STATUS_OK) {
        /* the URL may hold a password: not echoed */
        set_err(err, errlen, "connect: bad AMQP URL (want amqp://user:pass@host:port/vhost)");
        mq_close(c);
        return NULL;
    }
    if (c->info.ssl) {
        set_err(err, errlen, "connect: amqps:// is not supported");
        mq_close(c);
        return NULL;
    }
    c->heartbeat_s = heartbeat_s < 0 ? 0 : heartbeat_s > 65535 ? 65535 : heartbeat_s;
    c->high_water = MQ_DEFAULT_HIGH_WATER;
    c->confirm_timeout_ms = MQ_DEFAULT_CONFIRM_TIMEOUT_MS;
    c->watch_state = -1;
    c->bo = (backoff)BACKOFF_INIT;
    window_reset(&c->win);
    if (establish(c, err, errlen) != MQ_OK) {
        mq_close(c);
        return NULL;
    }
    return c;
}

static void declaration_free(declaration *d) {
    free(d->queue);
    free(d->exchange);
    free(d->key);
    free(d->dl_exchange);
    free(d->dl_key);
    free(d);
}

void mq_close(mq_conn *c) {
    if (!c)
        return;
    teardown(c);
    while (c->consumers)
        consumer_remove(c, c->consumers);
    while (c->decls) {
        declaration *d = c->decls;
        c->decls = d->next;
        declaration_free(d);
    }
    free(c->win.slot);
    free(c->url_buf);
    free(c);
}

int mq_reconnect(mq_conn *c, int max_attempts, char *err, size_t errlen) {
    teardown(c);
    char why[512] = "no attempt made";
    for (int attempt = 0; max_attempts <= 0 || attempt < max_attempts; attempt++) {
        backoff_sleep(&c->bo);
        int rc = establish(c, why, sizeof why);
        if (rc == MQ_OK) {
            backoff_reset(&c->bo);
            return MQ_OK;
        }
        teardown(c);
        if (rc == MQ_ERR) {
            set_err(err, errlen, "reconnect: %s", why);
            return MQ_ERR;
        }
    }
    set_err(err, errlen, "reconnect: %s", why);
    return MQ_ERR_CONN;
}

int mq_is_alive(const mq_conn *c) {
    return c && c->alive;
}

const char *mq_vhost(const mq_conn *c) {
    return c->info.vhost;
}

void mq_set_high_water(mq_conn *c, size_t high_water) {
    c->high_water = high_water ? high_water : MQ_DEFAULT_HIGH_WATER;
}

void mq_get_stats(const mq_conn *c, mq_stats *out) {
    *out = c->stats;
    out->unconfirmed = c->win.unconfirmed;
}

const char *mq_status_string(int rc) {
    switch (rc) {
    case MQ_OK:
        return "ok";
    case MQ_TIMEOUT:
        return "timeout";
    case MQ_EMPTY:
        return "empty";
    case MQ_ERR_CONN:
        return "connection lost";
    default:
        return "error";
    }
}

/* ---- declarations ----------------------------------------------------- */

static int declare_exchange(mq_conn *c, const char *name, const char *type, char *err,
                            size_t errlen) {
    char what[300];
    snprintf(what, sizeof what, "declare exchange %s (%s)", name, type);
    amqp_exchange_declare(c->state, CH_ADMIN, amqp_cstring_bytes(name), amqp_cstring_bytes(type), 0,
                          1, 0, 0, amqp_empty_table);
    return check_reply(c, CH_ADMIN, amqp_get_rpc_reply(c->state), what, err, errlen);
}

static int declare_queue_raw(mq_conn *c, const char *name, const mq_queue_opts *o, char *err,
                             size_t errlen) {
    char what[300];
    snprintf(what, sizeof what, "declare queue %s", name);
    amqp_table_entry_t arg[5];
    int n = 0;
    if (o && o->quorum) {
        arg[n].key = amqp_cstring_bytes("x-queue-type");
        arg[n].value.kind = AMQP_FIELD_KIND_UTF8;
        arg[n++].value.value.bytes = amqp_cstring_bytes("quorum");
    }
    if (o && o->delivery_limit > 0) {
        arg[n].key = amqp_cstring_bytes("x-delivery-limit");
        arg[n].value.kind = AMQP_FIELD_KIND_I64;
        arg[n++].value.value.i64 = o->delivery_limit;
    }
    if (o && o->dead_letter_exchange) {
        arg[n].key = amqp_cstring_bytes("x-dead-letter-exchange");
        arg[n].value.kind = AMQP_FIELD_KIND_UTF8;
        arg[n++].value.value.bytes = amqp_cstring_bytes(o->dead_letter_exchange);
    }
    if (o && o->dead_letter_key) {
        arg[n].key = amqp_cstring_bytes("x-dead-letter-routing-key");
        arg[n].value.kind = AMQP_FIELD_KIND_UTF8;
        arg[n++].value.value.bytes = amqp_cstring_bytes(o->dead_letter_key);
    }
    if (o && o->expires_ms > 0) {
        arg[n].key = amqp_cstring_bytes("x-expires");
        arg[n].value.kind = AMQP_FIELD_KIND_I64;
        arg[n++].value.value.i64 = o->expires_ms;
    }
    amqp_table_t args = {n, arg};
    amqp_queue_declare(c->state, CH_ADMIN, amqp_cstring_bytes(name), 0, 1, 0, 0, args);
    return check_reply(c, CH_ADMIN, amqp_get_rpc_reply(c->state), what, err, errlen);
}

static int bind_raw(mq_conn *c, const char *queue, const char *exchange, const char *key, char *err,
                    size_t errlen) {
    char what[600];
    snprintf(what, sizeof what, "bind queue %s to %s/%s", queue, exchange, key);
    amqp_queue_bind(c->state, CH_ADMIN, amqp_cstring_bytes(queue), amqp_cstring_bytes(exchange),
                    amqp_cstring_bytes(key), amqp_empty_table);
    return check_reply(c, CH_ADMIN, amqp_get_rpc_reply(c->state), what, err, errlen);
}

static int declare_topology_raw(mq_conn *c, char *err, size_t errlen) {
    static const struct {
        const char *queue, *key;
    } work[] = {{MQ_QUEUE_BUCKETS, MQ_KEY_BUCKET},
                {MQ_QUEUE_BATCHES, MQ_KEY_BATCH},
                {MQ_QUEUE_FORMULAS, MQ_KEY_FORMULA},
                {MQ_QUEUE_EXPORTS, MQ_KEY_EXPORT}};
    int rc;
    if ((rc = declare_exchange(c, MQ_EXCHANGE_WORK, "direct", err, errlen)) != MQ_OK)
        return rc;
    if ((rc = declare_exchange(c, MQ_EXCHANGE_DLX, "direct", err, errlen)) != MQ_OK)
        return rc;
    if ((rc = declare_exchange(c, MQ_EXCHANGE_EVENTS, "topic", err, errlen)) != MQ_OK)
        return rc;
    if ((rc = declare_exchange(c, MQ_EXCHANGE_CONTROL, "direct", err, errlen)) != MQ_OK)
        return rc;
    mq_queue_opts dead = {.quorum = 1};
    if ((rc = declare_queue_raw(c, MQ_QUEUE_DEAD, &dead, err, errlen)) != MQ_OK)
        return rc;
    if ((rc = bind_raw(c, MQ_QUEUE_DEAD, MQ_EXCHANGE_DLX, MQ_DEAD_KEY, err, errlen)) != MQ_OK)
        return rc;
    mq_queue_opts o = {.quorum = 1,
                       .delivery_limit = MQ_DELIVERY_LIMIT,
                       .dead_letter_exchange = MQ_EXCHANGE_DLX,
                       .dead_letter_key = MQ_DEAD_KEY};
    for (size_t i = 0; i < sizeof work / sizeof work[0]; i++) {
        if ((rc = declare_queue_raw(c, work[i].queue, &o, err, errlen)) != MQ_OK)
            return rc;
        if ((rc = bind_raw(c, work[i].queue, MQ_EXCHANGE_WORK, work[i].key, err, errlen)) != MQ_OK)
            return rc;
    }
    return MQ_OK;
}

static int replay_declarations(mq_conn *c, char *err, size_t errlen) {
    for (declaration *d = c->decls; d; d = d->next) {
        int rc = d->is_bind ? bind_raw(c, d->queue, d->exchange, d->key, err, errlen)
                            : declare_queue_raw(c, d->queue, &d->opts, err, errlen);
        if (rc != MQ_OK)
            return rc;
    }
    return MQ_OK;
}

static void remember(mq_conn *c, declaration *d) {
    declaration **p = &c->decls;
    while (*p)
        p = &(*p)->next;
    *p = d;
}

int mq_declare_topology(mq_conn *c, char *err, size_t errlen) {
    int rc = ensure_channel(c, CH_ADMIN, "declare topology", err, errlen);
    if (rc != MQ_OK)
        return rc;
    rc = declare_topology_raw(c, err, errlen);
    if (rc == MQ_OK)
        c->topology_declared = 1;
    return rc;
}

int mq_declare_queue(mq_conn *c, const char *name, const mq_queue_opts *opts, char *err,
                     size_t errlen) {
    if (!short_str_ok(name) ||
        (opts && opts->dead_letter_exchange && !short_str_ok(opts->dead_letter_exchange))) {
        set_err(err, errlen, "declare queue: name missing or longer than 255 bytes");
        return MQ_ERR;
    }
    char what[300];
    snprintf(what, sizeof what, "declare queue %s", name);
    int rc = ensure_channel(c, CH_ADMIN, what, err, errlen);
    if (rc != MQ_OK)
        return rc;
    rc = declare_queue_raw(c, name, opts, err, errlen);
    if (rc != MQ_OK)
        return rc;
    for (declaration *d = c->decls; d; d = d->next)
        if (!d->is_bind && strcmp(d->queue, name) == 0)
            return MQ_OK; /* the broker agreed: same */
    declaration *d = calloc(1, sizeof *d);
    if (!d || !(d->queue = strdup(name))) {
        free(d);
        set_err(err, errlen, "%s: out of memory", what);
        return MQ_ERR;
    }
    if (opts) {
        d->opts = *opts;
        d->dl_exchange =
            opts->dead_letter_exchange ? util_strdup(opts->dead_letter_exchange) : NULL;
        d->dl_key = opts->dead_letter_key ? util_strdup(opts->dead_letter_key) : NULL;
        d->opts.dead_letter_exchange = d->dl_exchange;
        d->opts.dead_letter_key = d->dl_key;
    }
    remember(c, d);
    return MQ_OK;
}

int mq_bind(mq_conn *c, const char *queue, const char *exchange, const char *routing_key, char *err,
            size_t errlen) {
    if (!short_str_ok(queue) || !short_str_ok(exchange) || !short_str_ok(routing_key)) {
        set_err(err, errlen, "bind: name missing or longer than 255 bytes");
        return MQ_ERR;
    }
    int rc = ensure_channel(c, CH_ADMIN, "bind", err, errlen);
    if (rc != MQ_OK)
        return rc;
    rc = bind_raw(c, queue, exchange, routing_key, err, errlen);
    if (rc != MQ_OK)
        return rc;
    for (declaration *d = c->decls; d; d = d->next)
        if (d->is_bind && strcmp(d->queue, queue) == 0 && strcmp(d->exchange, exchange) == 0 &&
            strcmp(d->key, routing_key) == 0)
            return MQ_OK;
    declaration *d = calloc(1, sizeof *d);
    if (d) {
        d->is_bind = 1;
        d->queue = strdup(queue);
        d->exchange = strdup(exchange);
        d->key = strdup(routing_key);
    }
    if (!d || !d->queue || !d->exchange || !d->key) {
        if (d)
            declaration_free(d);
        set_err(err, errlen, "bind queue %s: out of memory", queue);
        return MQ_ERR;
    }
    remember(c, d);
    return MQ_OK;
}

int mq_delete_queue(mq_conn *c, const char *queue, char *err, size_t errlen) {
    if (!short_str_ok(queue)) {
        set_err(err, errlen, "delete queue: name missing or longer than 255 bytes");
        return MQ_ERR;
    }
    char what[300];
    snprintf(what, sizeof what, "delete queue %s", queue);
    /* our own consumer goes first, or the broker's cancel would read as an error */
    int rc = mq_cancel(c, queue, err, errlen);
    if (rc != MQ_OK)
        return rc;
    rc = ensure_channel(c, CH_ADMIN, what, err, errlen);
    if (rc != MQ_OK)
        return rc;
    amqp_queue_delete(c->state, CH_ADMIN, amqp_cstring_bytes(queue), 0, 0);
    rc = check_reply(c, CH_ADMIN, amqp_get_rpc_reply(c->state), what, err, errlen);
    if (rc != MQ_OK)
        return rc;
    for (declaration **p = &c->decls; *p;) {
        declaration *d = *p;
        if (strcmp(d->queue, queue) == 0) {
            *p = d->next;
            declaration_free(d);
        } else {
            p = &d->next;
        }
    }
    return MQ_OK;
}

/* ---- publishing ------------------------------------------------------- */

/* Waits until the window is below its low mark (70% of the high-water mark)
 * when it is at the high-water mark. */
static int window_room(mq_conn *c, const char *what, char *err, size_t errlen) {
    if (c->win.unconfirmed < c->high_water)
        return MQ_OK;
    size_t low = c->high_water * 7 / 10;
    c->stats.window_waits++;
    deadline dl;
    deadline_in(&dl, c->confirm_timeout_ms);
    int rc = pump(c, &dl, window_at_most, &low, what, err, errlen);
    if (rc == MQ_TIMEOUT)
        set_err(err, errlen, "%s: %zu messages unconfirmed after %d ms", what, c->win.unconfirmed,
                c->confirm_timeout_ms);
    return rc;
}

/* Sends one message on channel 1 and takes its confirm slot. */
static int send_publish(mq_conn *c, const char *exchange, const char *routing_key, const void *body,
                        size_t len, const mq_header *headers, size_t n_headers, const char *what,
                        char *err, size_t errlen) {
    amqp_basic_properties_t props;
    memset(&props, 0, sizeof props);
    props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
    props.content_type = amqp_cstring_bytes("application/json");
    props.delivery_mode = AMQP_DELIVERY_PERSISTENT;
    amqp_table_entry_t *entries = NULL;
    if (n_headers > 0) {
        entries = calloc(n_headers, sizeof *entries);
        if (!entries) {
            set_err(err, errlen, "%s: out of memory", what);
            return MQ_ERR;
        }
        for (size_t i = 0; i < n_headers; i++) {
            entries[i].key = amqp_cstring_bytes(headers[i].name);
            entries[i].value.kind = AMQP_FIELD_KIND_UTF8;
            entries[i].value.value.bytes =
                amqp_cstring_bytes(headers[i].value ? headers[i].value : "");
        }
        props._flags |= AMQP_BASIC_HEADERS_FLAG;
        props.headers.num_entries = (int)n_headers;
        props.headers.entries = entries;
    }
    if (!window_add(&c->win)) {
        free(entries);
        set_err(err, errlen, "%s: out of memory", what);
        return MQ_ERR;
    }
    amqp_bytes_t b = {len, (void *)body};
    int s = amqp_basic_publish(c->state, CH_WORK, amqp_cstring_bytes(exchange),
                               amqp_cstring_bytes(routing_key), 1, 0, &props, b);
    free(entries);
    /* a failed publish may have sent part of the message: the connection is
     * unusable either way */
    if (s != AMQP_STATUS_OK)
        return conn_lost(c, what, amqp_error_string2(s), err, errlen);
    c->stats.published++;
    if (c->win.unconfirmed > c->stats.max_unconfirmed)
        c->stats.max_unconfirmed = c->win.unconfirmed;
    return MQ_OK;
}

static int check_publish_args(const char *exchange, const char *routing_key,
                              const mq_header *headers, size_t n_headers, const char *what,
                              char *err, size_t errlen) {
    if (!exchange || strlen(exchange) > 255 || !routing_key || strlen(routing_key) > 255) {
        set_err(err, errlen, "%s: exchange or routing key missing or longer than 255 bytes", what);
        return MQ_ERR;
    }
    for (size_t i = 0; i < n_headers; i++)
        if (!short_str_ok(headers[i].name)) {
            set_err(err, errlen, "%s: header %zu: name missing or longer than 255 bytes", what, i);
            return MQ_ERR;
        }
    return MQ_OK;
}

int mq_publish(mq_conn *c, const char *exchange, const char *routing_key, const void *body,
               size_t len, const mq_header *headers, size_t n_headers, char *err, size_t errlen) {
    char what[600];
    snprintf(what, sizeof what, "publish to %s/%s", exchange ? exchange : "?",
             routing_key ? routing_key : "?");
    int rc = check_publish_args(exchange, routing_key, headers, n_headers, what, err, errlen);
    if (rc != MQ_OK)
        return rc;
    if ((rc = ensure_channel(c, CH_WORK, what, err, errlen)) != MQ_OK)
        return rc;
    /* look at what has come in, above all a channel the broker closed */
    if ((rc = drain(c, what, err, errlen)) != MQ_OK)
        goto fail;
    if (c->fail_pending)
        return report_failure(c, what, err, errlen);
    if ((rc = window_room(c, what, err, errlen)) != MQ_OK)
        goto fail;
    if (c->fail_pending)
        return report_failure(c, what, err, errlen);
    return send_publish(c, exchange, routing_key, body, len, headers, n_headers, what, err, errlen);
fail:
    if (rc == MQ_ERR)
        c->fail_pending = 0; /* the channel close being reported covers it */
    return rc;
}

int mq_flush(mq_conn *c, int timeout_ms, char *err, size_t errlen) {
    const char *what = "wait for publisher confirms";
    if (!c->alive) {
        set_err(err, errlen, "%s: connection lost (mq_reconnect)", what);
        return MQ_ERR_CONN;
    }
    size_t zero = 0;
    deadline dl;
    deadline_in(&dl, timeout_ms);
    int rc = c->open[CH_WORK] ? pump(c, &dl, window_at_most, &zero, what, err, errlen) : MQ_OK;
    if (rc == MQ_TIMEOUT) {
        set_err(err, errlen, "%s: %zu messages unconfirmed after %d ms", what, c->win.unconfirmed,
                timeout_ms);
        return rc;
    }
    if (rc == MQ_ERR)
        c->fail_pending = 0;
    if (rc != MQ_OK)
        return rc;
    if (c->fail_pending)
        return report_failure(c, what, err, errlen);
    return MQ_OK;
}

/* ---- consuming -------------------------------------------------------- */

int mq_consume(mq_conn *c, const char *queue, int prefetch, char *err, size_t errlen) {
    if (!short_str_ok(queue)) {
        set_err(err, errlen, "consume: queue name missing or longer than 255 bytes");
        return MQ_ERR;
    }
    char what[300];
    snprintf(what, sizeof what, "consume queue %s", queue);
    int rc = ensure_channel(c, CH_WORK, what, err, errlen);
    if (rc != MQ_OK)
        return rc;
    consumer *k = calloc(1, sizeof *k);
    if (!k || !(k->queue = strdup(queue))) {
        free(k);
        set_err(err, errlen, "%s: out of memory", what);
        return MQ_ERR;
    }
    k->prefetch = prefetch;
    rc = start_consumer(c, k, err, errlen);
    if (rc != MQ_OK) {
        free(k->queue);
        free(k->tag);
        free(k);
        return rc;
    }
    consumer **p = &c->consumers;
    while (*p)
        p = &(*p)->next;
    *p = k;
    return MQ_OK;
}

int mq_cancel(mq_conn *c, const char *queue, char *err, size_t errlen) {
    char what[300];
    snprintf(what, sizeof what, "cancel consumer of queue %s", queue);
    consumer *k = c->consumers;
    while (k && strcmp(k->queue, queue) != 0)
        k = k->next;
    if (!k)
        return MQ_OK;
    if (c->alive && c->open[CH_WORK] && k->tag) {
        amqp_basic_cancel(c->state, CH_WORK, amqp_cstring_bytes(k->tag));
        int rc = check_reply(c, CH_WORK, amqp_get_rpc_reply(c->state), what, err, errlen);
        if (rc == MQ_ERR_CONN)
            return rc; /* it stays registered for mq_reconnect */
    }
    consumer_remove(c, k);
    return MQ_OK;
}

int mq_next(mq_conn *c, int timeout_ms, mq_delivery *out, char *err, size_t errlen) {
    const char *what = "wait for a delivery";
    memset(out, 0, sizeof *out);
    int rc = ensure_channel(c, CH_WORK, what, err, errlen);
    if (rc != MQ_OK)
        return rc;
    deadline dl;
    deadline_in(&dl, timeout_ms);
    for (;;) {
        if (inbox_pop(c, out))
            return MQ_OK;
        if (c->consumer_err_pending) {
            c->consumer_err_pending = 0;
            set_err(err, errlen, "%s: %s", what, c->consumer_err);
            return MQ_ERR;
        }
        amqp_maybe_release_buffers(c->state);
        struct timeval tv, *tvp = deadline_left(&dl, &tv);
        amqp_envelope_t env;
        amqp_rpc_reply_t r = amqp_consume_message(c->state, &env, tvp, 0);
        if (r.reply_type == AMQP_RESPONSE_NORMAL) {
            consumer *k = consumer_by_tag(c, env.consumer_tag);
            int ok =
                delivery_fill(c, out, env.channel, env.delivery_tag, env.redelivered, env.exchange,
                              env.routing_key, k ? k->queue : NULL, &env.message);
            amqp_destroy_envelope(&env);
            if (!ok) {
                set_err(err, errlen, "%s: out of memory", what);
                return MQ_ERR;
            }
            return MQ_OK;
        }
        if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
            r.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
            /* something other than a delivery: a confirm, a return, a close */
            amqp_frame_t f;
            int s = amqp_simple_wait_frame(c->state, &f);
            if (s != AMQP_STATUS_OK)
                return conn_lost(c, what, amqp_error_string2(s), err, errlen);
            rc = handle_frame(c, &f, what, err, errlen);
            if (rc != MQ_OK)
                return rc;
            continue;
        }
        if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
            r.library_error == AMQP_STATUS_TIMEOUT)
            return MQ_TIMEOUT;
        return check_reply(c, env.channel ? env.channel : CH_WORK, r, what, err, errlen);
    }
}

int mq_get(mq_conn *c, const char *queue, mq_delivery *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    if (!short_str_ok(queue)) {
        set_err(err, errlen, "get: queue name missing or longer than 255 bytes");
        return MQ_ERR;
    }
    char what[300];
    snprintf(what, sizeof what, "get from queue %s", queue);
    int rc = ensure_channel(c, CH_ADMIN, what, err, errlen);
    if (rc != MQ_OK)
        return rc;
    amqp_maybe_release_buffers(c->state);
    amqp_rpc_reply_t r = amqp_basic_get(c->state, CH_ADMIN, amqp_cstring_bytes(queue), 0);
    if ((rc = check_reply(c, CH_ADMIN, r, what, err, errlen)) != MQ_OK)
        return rc;
    if (r.reply.id == AMQP_BASIC_GET_EMPTY_METHOD)
        return MQ_EMPTY;
    /* get-ok lives in the channel's buffers, which reading the content keeps */
    const amqp_basic_get_ok_t *ok = r.reply.decoded;
    amqp_message_t msg;
    amqp_rpc_reply_t rr = amqp_read_message(c->state, CH_ADMIN, &msg, 0);
    if ((rc = check_reply(c, CH_ADMIN, rr, what, err, errlen)) != MQ_OK)
        return rc;
    int filled = delivery_fill(c, out, CH_ADMIN, ok->delivery_tag, ok->redelivered, ok->exchange,
                               ok->routing_key, queue, &msg);
    amqp_destroy_message(&msg);
    if (!filled) {
        set_err(err, errlen, "%s: out of memory", what);
        return MQ_ERR;
    }
    return MQ_OK;
}

int mq_queue_info(mq_conn *c, const char *queue, uint32_t *messages, uint32_t *consumers, char *err,
                  size_t errlen) {
    if (!short_str_ok(queue)) {
        set_err(err, errlen, "queue info: name missing or longer than 255 bytes");
        return MQ_ERR;
    }
    char what[300];
    snprintf(what, sizeof what, "queue info of %s", queue);
    int rc = ensure_channel(c, CH_ADMIN, what, err, errlen);
    if (rc != MQ_OK)
        return rc;
    /* passive: only looks; a queue that does not exist closes the channel (404),
     * which the next use of the channel re-opens */
    amqp_queue_declare_ok_t *ok = amqp_queue_declare(c->state, CH_ADMIN, amqp_cstring_bytes(queue),
                                                     1, 0, 0, 0, amqp_empty_table);
    if ((rc = check_reply(c, CH_ADMIN, amqp_get_rpc_reply(c->state), what, err, errlen)) != MQ_OK)
        return rc;
    if (!ok) {
        set_err(err, errlen, "%s: no declare-ok from the broker", what);
        return MQ_ERR;
    }
    if (messages)
        *messages = ok->message_count;
    if (consumers)
        *consumers = ok->consumer_count;
    return MQ_OK;
}

/* Splits a caller's tag into channel and broker tag; MQ_ERR when the channel
 * it came from has been re-opened since. */
static int tag_channel(mq_conn *c, uint64_t tag, amqp_channel_t *ch, uint64_t *broker_tag,
                       const char *what, char *err, size_t errlen) {
    *ch = (tag & TAG_ADMIN_BIT) ? CH_ADMIN : CH_WORK;
    *broker_tag = tag & TAG_BROKER_MASK;
    if (!c->alive) {
        set_err(err, errlen, "%s: connection lost (mq_reconnect)", what);
        return MQ_ERR_CONN;
    }
    if (!c->open[*ch] || (c->gen[*ch] & 0xffff) != (unsigned)(tag >> TAG_GEN_SHIFT)) {
        set_err(err, errlen,
                "%s: stale delivery tag: its channel was re-opened since (the broker "
                "redelivers the message)",
                what);
        return MQ_ERR;
    }
    return MQ_OK;
}

int mq_ack(mq_conn *c, uint64_t tag, char *err, size_t errlen) {
    char what[64];
    snprintf(what, sizeof what, "ack delivery %llu", (unsigned long long)(tag & TAG_BROKER_MASK));
    amqp_channel_t ch;
    uint64_t t;
    int rc = tag_channel(c, tag, &ch, &t, what, err, errlen);
    if (rc != MQ_OK)
        return rc;
    int s = amqp_basic_ack(c->state, ch, t, 0);
    if (s != AMQP_STATUS_OK)
        return conn_lost(c, what, amqp_error_string2(s), err, errlen);
    return MQ_OK;
}

int mq_reject(mq_conn *c, uint64_t tag, int requeue, char *err, size_t errlen) {
    char what[64];
    snprintf(what, sizeof what, "reject delivery %llu",
             (unsigned long long)(tag & TAG_BROKER_MASK));
    amqp_channel_t ch;
    uint64_t t;
    int rc = tag_channel(c, tag, &ch, &t, what, err, errlen);
    if (rc != MQ_OK)
        return rc;
    int s = amqp_basic_reject(c->state, ch, t, requeue ? 1 : 0);
    if (s != AMQP_STATUS_OK)
        return conn_lost(c, what, amqp_error_string2(s), err, errlen);
    return MQ_OK;
}

/* reason on one line: control characters become spaces, long text is cut. */
static void flatten_reason(const char *reason, char *out, size_t n) {
    size_t i = 0;
    for (const char *p = reason ? reason : "unspecified"; *p && i + 1 < n; p++)
        out[i++] = ((unsigned char)*p < 0x20 || *p == 0x7f) ? ' ' : *p;
    out[i] = '\0';
}

int mq_dead_letter(mq_conn *c, const mq_delivery *d, const char *reason, char *err, size_t errlen) {
    char what[400];
    snprintf(what, sizeof what, "dead-letter delivery %llu from %s (%s)",
             (unsigned long long)(d->tag & TAG_BROKER_MASK), d->queue ? d->queue : "?",
             d->routing_key ? d->routing_key : "?");
    int rc = ensure_channel(c, CH_WORK, what, err, errlen);
    if (rc != MQ_OK)
        return rc;

    char why[REASON_MAX + 1];
    flatten_reason(reason, why, sizeof why);
    mq_header *h = calloc(d->n_headers + 3, sizeof *h);
    if (!h) {
        set_err(err, errlen, "%s: out of memory", what);
        return MQ_ERR;
    }
    size_t n = 0;
    for (size_t i = 0; i < d->n_headers; i++) {
        const char *name = d->headers[i].name;
        if (strcmp(name, MQ_HEADER_ERROR) && strcmp(name, MQ_HEADER_ORIGIN) &&
            strcmp(name, MQ_HEADER_QUEUE) && short_str_ok(name))
            h[n++] = d->headers[i];
    }
    h[n++] = (mq_header){MQ_HEADER_ERROR, why};
    h[n++] = (mq_header){MQ_HEADER_ORIGIN, d->routing_key ? d->routing_key : ""};
    h[n++] = (mq_header){MQ_HEADER_QUEUE, d->queue ? d->queue : ""};

    if ((rc = window_room(c, what, err, errlen)) != MQ_OK)
        goto out;
    uint64_t returned_before = c->stats.returned;
    c->watch_tag = c->win.next; /* the tag this publish gets */
    c->watch_state = -1;
    rc = send_publish(c, MQ_EXCHANGE_DLX, MQ_DEAD_KEY, d->body, d->len, h, n, what, err, errlen);
    if (rc != MQ_OK)
        goto out;
    deadline dl;
    deadline_in(&dl, c->confirm_timeout_ms);
    rc = pump(c, &dl, watch_settled, NULL, what, err, errlen);
    if (rc == MQ_TIMEOUT)
        set_err(err, errlen, "%s: no confirm from the broker in %d ms", what,
                c->confirm_timeout_ms);
    if (rc != MQ_OK)
        goto out;
    if (c->watch_state != SLOT_ACKED) {
        set_err(err, errlen, "%s: %s", what,
                c->watch_state == SLOT_NACKED ? "the broker nacked the copy"
                                              : "the channel closed before the copy was confirmed");
        rc = MQ_ERR;
        goto out;
    }
    if (c->stats.returned != returned_before) {
        set_err(err, errlen, "%s: the copy was returned unroutable (is the topology declared?)",
                what);
        rc = MQ_ERR;
        goto out;
    }
    rc = mq_ack(c, d->tag, err, errlen);
out:
    c->watch_tag = 0;
    c->watch_state = -1;
    free(h);
    return rc;
}
