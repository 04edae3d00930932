/* Integration test of common/mq against the running broker: topology,
 * confirms with backpressure, manual acks, requeue, dead-lettering, delivery
 * limit, broker-side errors and reconnect. Run by t_mq.sh, which makes a fresh
 * vhost and points ALLOC_AMQP_URL at it. */
#include "../unit/harness.h"

#include "mq.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ROUND_TRIP_N 2000
#define BIG_INDEX 1000 /* this message is larger than a frame */
#define BIG_PAD 300000
#define SAME_CONN_N 300

static const char *amqp_url(void) {
    const char *u = getenv("ALLOC_AMQP_URL");
    return u && *u ? u : "amqp://alloc:alloc@127.0.0.1:25672/t_mq";
}

static mq_conn *connect_ok(void) {
    char err[512] = "";
    mq_conn *c = mq_connect(amqp_url(), 10, err, sizeof err);
    CHECK(c != NULL, "connect to %s: %s", amqp_url(), err);
    return c;
}

/* The body of round-trip message i: JSON with a size that varies with i. */
static char *make_body(int i, size_t *len) {
    size_t pad = i == BIG_INDEX ? BIG_PAD : (size_t)(i % 97) * 13;
    char *b = malloc(pad + 64);
    int n = snprintf(b, 64, "{\"v\":1,\"seq\":%d,\"pad\":\"", i);
    memset(b + n, 'a' + i % 26, pad);
    memcpy(b + n + pad, "\"}", 3);
    *len = (size_t)n + pad + 2;
    return b;
}

/* Why a body cannot be used as an alloc message, or NULL when it can: not
 * JSON at all, or JSON without the "v" (version) field. */
static char *malformed_reason(const char *body, size_t len) {
    json_error_t jerr;
    json_t *j = json_loadb(body, len, 0, &jerr);
    char *why = NULL;
    if (!j) {
        why = malloc(400);
        snprintf(why, 400, "not JSON: %s at line %d column %d", jerr.text, jerr.line, jerr.column);
    } else if (!json_is_object(j) || !json_object_get(j, "v")) {
        why = strdup("foreign message: no \"v\" field");
    }
    json_decref(j);
    return why;
}

/* Takes everything out of alloc.dead (acked); returns how many. Bodies and
 * chosen headers go to the arrays when given. */
typedef struct dead_msg {
    char *body;
    char *error, *origin, *queue, *death_reason, *death_queue;
} dead_msg;

static size_t read_dead(mq_conn *c, dead_msg *out, size_t max) {
    size_t n = 0;
    char err[512];
    for (;;) {
        mq_delivery d;
        int rc = mq_get(c, MQ_QUEUE_DEAD, &d, err, sizeof err);
        if (rc == MQ_EMPTY)
            break;
        CHECK(rc == MQ_OK, "get from alloc.dead: %s (%s)", err, mq_status_string(rc));
        if (rc != MQ_OK)
            break;
        if (n < max) {
            const char *h;
            out[n].body = strdup(d.body);
            out[n].error = (h = mq_delivery_header(&d, MQ_HEADER_ERROR)) ? strdup(h) : NULL;
            out[n].origin = (h = mq_delivery_header(&d, MQ_HEADER_ORIGIN)) ? strdup(h) : NULL;
            out[n].queue = (h = mq_delivery_header(&d, MQ_HEADER_QUEUE)) ? strdup(h) : NULL;
            out[n].death_reason =
                (h = mq_delivery_header(&d, "x-first-death-reason")) ? strdup(h) : NULL;
            out[n].death_queue =
                (h = mq_delivery_header(&d, "x-first-death-queue")) ? strdup(h) : NULL;
        }
        n++;
        rc = mq_ack(c, d.tag, err, sizeof err);
        CHECK(rc == MQ_OK, "ack alloc.dead message: %s", err);
        mq_delivery_free(&d);
    }
    return n;
}

static void dead_free(dead_msg *m, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(m[i].body);
        free(m[i].error);
        free(m[i].origin);
        free(m[i].queue);
        free(m[i].death_reason);
        free(m[i].death_queue);
    }
}

static const dead_msg *find_dead(const dead_msg *m, size_t n, const char *body) {
    for (size_t i = 0; i < n; i++)
        if (m[i].body && strcmp(m[i].body, body) == 0)
            return &m[i];
    return NULL;
}

static int publish_one(mq_conn *c, const char *key, const char *body) {
    char err[512];
    int rc = mq_publish(c, MQ_EXCHANGE_WORK, key, body, strlen(body), NULL, 0, err, sizeof err);
    CHECK(rc == MQ_OK, "publish to %s: %s", key, err);
    if (rc == MQ_OK) {
        rc = mq_flush(c, 10000, err, sizeof err);
        CHECK(rc == MQ_OK, "flush: %s", err);
    }
    return rc;
}

/* Declaring the topology twice is a no-op; a conflicting re-declaration is an
 * MQ_ERR that leaves the connection usable. */
static void topology_is_idempotent(void) {
    mq_conn *c = connect_ok();
    if (!c)
        return;
    char err[512];
    const char *vhost = getenv("ALLOC_IT_VHOST");
    if (vhost)
        CHECK_STR(mq_vhost(c), vhost);
    int rc = mq_declare_topology(c, err, sizeof err);
    CHECK(rc == MQ_OK, "first declaration: %s", err);
    rc = mq_declare_topology(c, err, sizeof err);
    CHECK(rc == MQ_OK, "second declaration: %s", err);

    mq_queue_opts classic = {0};
    rc = mq_declare_queue(c, MQ_QUEUE_BUCKETS, &classic, err, sizeof err);
    CHECK(rc == MQ_ERR, "re-declaring alloc.buckets as a classic queue gave %s, want error",
          mq_status_string(rc));
    CHECK(strstr(err, "PRECONDITION_FAILED") && strstr(err, MQ_QUEUE_BUCKETS),
          "error should name the queue and the broker's reason: %s", err);
    printf("# conflicting declaration: %s\n", err);
    rc = mq_declare_topology(c, err, sizeof err);
    CHECK(rc == MQ_OK, "declaration after a refused one: %s", err);
    CHECK(mq_is_alive(c), "connection lost by a refused declaration");
    mq_close(c);
}

/* A vhost that does not exist is refused at connect time with its name. */
static void unknown_vhost_is_refused(void) {
    char url[512], err[512] = "";
    const char *u = amqp_url();
    const char *slash = strrchr(u, '/');
    snprintf(url, sizeof url, "%.*s/t_mq_no_such_vhost", (int)(slash - u), u);
    mq_conn *c = mq_connect(url, 10, err, sizeof err);
    CHECK(c == NULL, "connect to a missing vhost succeeded");
    CHECK(strstr(err, "t_mq_no_such_vhost") != NULL, "error should name the vhost: %s", err);
    printf("# missing vhost: %s\n", err);
    mq_close(c);

    c = mq_connect("http://example.com/", 10, err, sizeof err);
    CHECK(c == NULL && strstr(err, "bad AMQP URL"), "bad URL: %s", err);
}

/* 2,000 messages through alloc.batches with a high-water mark of 16: all
 * confirmed, the window never above 16, each consumed once in order with its
 * body intact, and nothing left after the acks. */
static void round_trip_with_backpressure(void) {
    mq_conn *p = connect_ok(), *q = connect_ok();
    if (!p || !q) {
        mq_close(p);
        mq_close(q);
        return;
    }
    char err[512];
    mq_set_high_water(p, 16);
    mq_header hdr[] = {{"x-alloc-run", "42"}};
    int rc = MQ_OK;
    for (int i = 0; i < ROUND_TRIP_N && rc == MQ_OK; i++) {
        size_t len;
        char *body = make_body(i, &len);
        rc = mq_publish(p, MQ_EXCHANGE_WORK, MQ_KEY_BATCH, body, len, hdr, 1, err, sizeof err);
        CHECK(rc == MQ_OK, "publish %d: %s", i, err);
        free(body);
    }
    rc = mq_flush(p, 30000, err, sizeof err);
    CHECK(rc == MQ_OK, "flush: %s", err);
    mq_stats st;
    mq_get_stats(p, &st);
    CHECK_EQ_LL(st.published, ROUND_TRIP_N);
    CHECK_EQ_LL(st.confirmed, ROUND_TRIP_N);
    CHECK_EQ_LL(st.nacked + st.returned + st.lost, 0);
    CHECK_EQ_LL(st.unconfirmed, 0);
    CHECK(st.max_unconfirmed <= 16, "window grew to %zu, high-water mark 16", st.max_unconfirmed);
    CHECK(st.window_waits > 0, "publishing never waited at the high-water mark");
    printf("# %d published, %llu confirmed, window at most %zu, %llu waits at the mark\n",
           ROUND_TRIP_N, (unsigned long long)st.confirmed, st.max_unconfirmed,
           (unsigned long long)st.window_waits);

    rc = mq_consume(q, MQ_QUEUE_BATCHES, 50, err, sizeof err);
    CHECK(rc == MQ_OK, "consume: %s", err);
    int got = 0, bad = 0;
    while (got < ROUND_TRIP_N && rc == MQ_OK) {
        mq_delivery d;
        rc = mq_next(q, 5000, &d, err, sizeof err);
        if (rc != MQ_OK) {
            CHECK(0, "delivery %d: %s (%s)", got, mq_status_string(rc), err);
            break;
        }
        size_t len;
        char *want = make_body(got, &len);
        if (bad < 5 &&
            (d.len != len || memcmp(d.body, want, len) != 0 || d.redelivered ||
             strcmp(d.routing_key, MQ_KEY_BATCH) || strcmp(d.exchange, MQ_EXCHANGE_WORK) ||
             strcmp(d.queue, MQ_QUEUE_BATCHES))) {
            bad++;
            CHECK(0, "delivery %d: len %zu (want %zu), redelivered %d, %s/%s from %s: %.40s", got,
                  d.len, len, d.redelivered, d.exchange, d.routing_key, d.queue, d.body);
        }
        const char *run = mq_delivery_header(&d, "x-alloc-run");
        if (bad < 5 && (!run || strcmp(run, "42"))) {
            bad++;
            CHECK(0, "delivery %d: header x-alloc-run is %s", got, run ? run : "(missing)");
        }
        free(want);
        rc = mq_ack(q, d.tag, err, sizeof err);
        CHECK(rc == MQ_OK, "ack %d: %s", got, err);
        mq_delivery_free(&d);
        got++;
    }
    CHECK_EQ_LL(got, ROUND_TRIP_N);
    mq_delivery extra;
    rc = mq_next(q, 300, &extra, err, sizeof err);
    CHECK(rc == MQ_TIMEOUT, "a delivery beyond the %d published: %s", ROUND_TRIP_N,
          rc == MQ_OK ? extra.body : err);
    if (rc == MQ_OK)
        mq_delivery_free(&extra);
    /* closing the consumer would requeue anything not acked */
    mq_close(q);
    rc = mq_get(p, MQ_QUEUE_BATCHES, &extra, err, sizeof err);
    CHECK(rc == MQ_EMPTY, "alloc.batches not empty after the acks: %s",
          rc == MQ_OK ? extra.body : err);
    if (rc == MQ_OK)
        mq_delivery_free(&extra);
    mq_close(p);
}

/* One connection that consumes and publishes at once: deliveries arriving
 * while it waits for confirms are kept, confirms arriving while it waits for
 * deliveries are counted. */
static void publish_and_consume_on_one_connection(void) {
    mq_conn *c = connect_ok();
    if (!c)
        return;
    char err[512];
    mq_set_high_water(c, 8);
    int rc = mq_consume(c, MQ_QUEUE_FORMULAS, 10, err, sizeof err);
    CHECK(rc == MQ_OK, "consume: %s", err);
    for (int i = 0; i < SAME_CONN_N && rc == MQ_OK; i++) {
        char body[64];
        int n = snprintf(body, sizeof body, "{\"v\":1,\"n\":%d}", i);
        rc = mq_publish(c, MQ_EXCHANGE_WORK, MQ_KEY_FORMULA, body, (size_t)n, NULL, 0, err,
                        sizeof err);
        CHECK(rc == MQ_OK, "publish %d: %s", i, err);
    }
    int got = 0;
    while (got < SAME_CONN_N && rc == MQ_OK) {
        mq_delivery d;
        rc = mq_next(c, 5000, &d, err, sizeof err);
        CHECK(rc == MQ_OK, "delivery %d: %s (%s)", got, mq_status_string(rc), err);
        if (rc != MQ_OK)
            break;
        char want[64];
        snprintf(want, sizeof want, "{\"v\":1,\"n\":%d}", got);
        CHECK(strcmp(d.body, want) == 0, "delivery %d out of order: %s", got, d.body);
        rc = mq_ack(c, d.tag, err, sizeof err);
        CHECK(rc == MQ_OK, "ack: %s", err);
        mq_delivery_free(&d);
        got++;
    }
    CHECK_EQ_LL(got, SAME_CONN_N);
    rc = mq_flush(c, 10000, err, sizeof err);
    CHECK(rc == MQ_OK, "flush: %s", err);
    mq_stats st;
    mq_get_stats(c, &st);
    CHECK_EQ_LL(st.confirmed, SAME_CONN_N);
    CHECK(st.max_unconfirmed <= 8, "window grew to %zu, high-water mark 8", st.max_unconfirmed);
    rc = mq_cancel(c, MQ_QUEUE_FORMULAS, err, sizeof err);
    CHECK(rc == MQ_OK, "cancel: %s", err);
    mq_close(c);
}

/* A delivery rejected with requeue comes back marked redelivered and counted. */
static void rejected_message_is_redelivered(void) {
    mq_conn *c = connect_ok();
    if (!c)
        return;
    char err[512];
    const char *body = "{\"v\":1,\"probe\":\"requeue\"}";
    if (publish_one(c, MQ_KEY_EXPORT, body) != MQ_OK)
        goto out;
    int rc = mq_consume(c, MQ_QUEUE_EXPORTS, 1, err, sizeof err);
    CHECK(rc == MQ_OK, "consume: %s", err);
    mq_delivery d;
    rc = mq_next(c, 5000, &d, err, sizeof err);
    CHECK(rc == MQ_OK, "first delivery: %s", err);
    if (rc != MQ_OK)
        goto out;
    CHECK(d.redelivered == 0, "first delivery marked redelivered");
    CHECK(d.delivery_count <= 0, "first delivery count %ld", d.delivery_count);
    rc = mq_reject(c, d.tag, 1, err, sizeof err);
    CHECK(rc == MQ_OK, "reject: %s", err);
    mq_delivery_free(&d);

    rc = mq_next(c, 5000, &d, err, sizeof err);
    CHECK(rc == MQ_OK, "redelivery: %s", err);
    if (rc != MQ_OK)
        goto out;
    CHECK_STR(d.body, body);
    CHECK(d.redelivered == 1, "redelivery not marked redelivered");
    CHECK(d.delivery_count == 1, "x-delivery-count %ld, want 1", d.delivery_count);
    rc = mq_ack(c, d.tag, err, sizeof err);
    CHECK(rc == MQ_OK, "ack: %s", err);
    mq_delivery_free(&d);
    rc = mq_next(c, 300, &d, err, sizeof err);
    CHECK(rc == MQ_TIMEOUT, "message still there after its ack: %s", rc == MQ_OK ? d.body : err);
    if (rc == MQ_OK)
        mq_delivery_free(&d);
out:
    mq_close(c);
}

/* A message that is not JSON and one without "v" are dead-lettered with their
 * reason by the consumer and found in alloc.dead; the work queue is empty. */
static void malformed_message_is_dead_lettered(void) {
    mq_conn *c = connect_ok();
    if (!c)
        return;
    char err[512];
    const char *not_json = "this is not json {";
    const char *foreign = "{\"hello\":\"world\"}";
    if (publish_one(c, MQ_KEY_BUCKET, not_json) != MQ_OK ||
        publish_one(c, MQ_KEY_BUCKET, foreign) != MQ_OK)
        goto out;
    int rc = mq_consume(c, MQ_QUEUE_BUCKETS, 4, err, sizeof err);
    CHECK(rc == MQ_OK, "consume: %s", err);
    for (int i = 0; i < 2 && rc == MQ_OK; i++) {
        mq_delivery d;
        rc = mq_next(c, 5000, &d, err, sizeof err);
        CHECK(rc == MQ_OK, "delivery %d: %s", i, err);
        if (rc != MQ_OK)
            break;
        char *why = malformed_reason(d.body, d.len);
        CHECK(why != NULL, "message judged well-formed: %s", d.body);
        if (why) {
            rc = mq_dead_letter(c, &d, why, err, sizeof err);
            CHECK(rc == MQ_OK, "dead-letter: %s", err);
        }
        free(why);
        mq_delivery_free(&d);
    }
    rc = mq_cancel(c, MQ_QUEUE_BUCKETS, err, sizeof err);
    CHECK(rc == MQ_OK, "cancel: %s", err);
    mq_delivery left;
    rc = mq_get(c, MQ_QUEUE_BUCKETS, &left, err, sizeof err);
    CHECK(rc == MQ_EMPTY, "alloc.buckets not empty: %s", rc == MQ_OK ? left.body : err);
    if (rc == MQ_OK)
        mq_delivery_free(&left);

    dead_msg dead[16] = {{0}};
    size_t n = read_dead(c, dead, 16);
    const dead_msg *a = find_dead(dead, n, not_json), *b = find_dead(dead, n, foreign);
    CHECK(a != NULL, "the non-JSON message is not in alloc.dead (%zu there)", n);
    CHECK(b != NULL, "the foreign message is not in alloc.dead (%zu there)", n);
    if (a) {
        CHECK(a->error && strncmp(a->error, "not JSON: ", 10) == 0, "x-alloc-error: %s",
              a->error ? a->error : "(missing)");
        CHECK(a->origin && strcmp(a->origin, MQ_KEY_BUCKET) == 0, "x-alloc-origin: %s",
              a->origin ? a->origin : "(missing)");
        CHECK(a->queue && strcmp(a->queue, MQ_QUEUE_BUCKETS) == 0, "x-alloc-queue: %s",
              a->queue ? a->queue : "(missing)");
    }
    if (b)
        CHECK(b->error && strstr(b->error, "\"v\""), "x-alloc-error: %s",
              b->error ? b->error : "(missing)");
    dead_free(dead, n < 16 ? n : 16);
    mq_stats st;
    mq_get_stats(c, &st);
    CHECK_EQ_LL(st.nacked + st.returned + st.lost, 0);
out:
    mq_close(c);
}

/* A message rejected with requeue again and again is dead-lettered by the
 * quorum queue once it exceeds x-delivery-limit. */
static void delivery_limit_dead_letters(void) {
    mq_conn *c = connect_ok();
    if (!c)
        return;
    char err[512];
    const char *body = "{\"v\":1,\"probe\":\"poison\"}";
    if (publish_one(c, MQ_KEY_FORMULA, body) != MQ_OK)
        goto out;
    int rc = mq_consume(c, MQ_QUEUE_FORMULAS, 1, err, sizeof err);
    CHECK(rc == MQ_OK, "consume: %s", err);
    int deliveries = 0;
    while (rc == MQ_OK && deliveries < 20) {
        mq_delivery d;
        rc = mq_next(c, 1000, &d, err, sizeof err);
        if (rc != MQ_OK)
            break;
        deliveries++;
        CHECK_STR(d.body, body);
        rc = mq_reject(c, d.tag, 1, err, sizeof err);
        CHECK(rc == MQ_OK, "reject: %s", err);
        mq_delivery_free(&d);
    }
    CHECK(rc == MQ_TIMEOUT, "waiting for redeliveries: %s", err);
    CHECK_EQ_LL(deliveries, MQ_DELIVERY_LIMIT + 1);

    dead_msg dead[16] = {{0}};
    size_t n = 0;
    const dead_msg *m = NULL;
    for (int tries = 0; tries < 50 && !m; tries++) {
        n = read_dead(c, dead, 16);
        m = find_dead(dead, n, body);
        if (!m) {
            dead_free(dead, n < 16 ? n : 16);
            memset(dead, 0, sizeof dead);
            struct timespec ts = {0, 100000000L};
            nanosleep(&ts, NULL);
        }
    }
    CHECK(m != NULL, "the poison message is not in alloc.dead");
    if (m) {
        CHECK(m->death_reason && strcmp(m->death_reason, "delivery_limit") == 0,
              "x-first-death-reason: %s", m->death_reason ? m->death_reason : "(missing)");
        CHECK(m->death_queue && strcmp(m->death_queue, MQ_QUEUE_FORMULAS) == 0,
              "x-first-death-queue: %s", m->death_queue ? m->death_queue : "(missing)");
    }
    dead_free(dead, n < 16 ? n : 16);
out:
    mq_close(c);
}

/* A channel error the client caused (acking a tag twice) is an MQ_ERR that
 * costs neither the connection nor the consumer; a delivery from before it
 * has a stale tag, and the broker redelivers it on the re-opened channel. */
static void channel_error_keeps_the_consumer(void) {
    mq_conn *c = connect_ok();
    if (!c)
        return;
    char err[512];
    const char *one = "{\"v\":1,\"probe\":\"one\"}", *two = "{\"v\":1,\"probe\":\"two\"}";
    if (publish_one(c, MQ_KEY_EXPORT, one) != MQ_OK || publish_one(c, MQ_KEY_EXPORT, two) != MQ_OK)
        goto out;
    int rc = mq_consume(c, MQ_QUEUE_EXPORTS, 2, err, sizeof err);
    CHECK(rc == MQ_OK, "consume: %s", err);
    mq_delivery d1, d2;
    rc = mq_next(c, 5000, &d1, err, sizeof err);
    CHECK(rc == MQ_OK, "first delivery: %s", err);
    if (rc != MQ_OK)
        goto out;
    rc = mq_next(c, 5000, &d2, err, sizeof err);
    CHECK(rc == MQ_OK, "second delivery: %s", err);
    if (rc != MQ_OK) {
        mq_delivery_free(&d1);
        goto out;
    }
    CHECK_STR(d2.body, two);
    rc = mq_ack(c, d1.tag, err, sizeof err);
    CHECK(rc == MQ_OK, "ack: %s", err);
    rc = mq_ack(c, d1.tag, err, sizeof err); /* the broker closes the channel for this */
    CHECK(rc == MQ_OK, "second ack is sent: %s", err);
    mq_delivery d;
    rc = mq_next(c, 5000, &d, err, sizeof err);
    CHECK(rc == MQ_ERR && strstr(err, "PRECONDITION_FAILED"),
          "after a double ack mq_next gave %s (%s), want the channel error", mq_status_string(rc),
          err);
    printf("# double ack: %s\n", err);
    if (rc == MQ_OK)
        mq_delivery_free(&d);
    CHECK(mq_is_alive(c), "connection lost by a channel error");
    rc = mq_ack(c, d2.tag, err, sizeof err);
    CHECK(rc == MQ_ERR && strstr(err, "stale"), "ack of a tag from the closed channel gave %s (%s)",
          mq_status_string(rc), err);
    rc = mq_next(c, 5000, &d, err, sizeof err);
    CHECK(rc == MQ_OK, "consumer not back after the channel error: %s (%s)", mq_status_string(rc),
          err);
    if (rc == MQ_OK) {
        CHECK_STR(d.body, two);
        CHECK(d.redelivered == 1, "redelivery not marked redelivered");
        rc = mq_ack(c, d.tag, err, sizeof err);
        CHECK(rc == MQ_OK, "ack of the redelivery: %s", err);
        mq_delivery_free(&d);
    }
    rc = mq_next(c, 300, &d, err, sizeof err);
    CHECK(rc == MQ_TIMEOUT, "alloc.exports not empty: %s", rc == MQ_OK ? d.body : err);
    if (rc == MQ_OK)
        mq_delivery_free(&d);
    mq_delivery_free(&d1);
    mq_delivery_free(&d2);
out:
    mq_close(c);
}

/* Deleting a queue under its consumer is reported by mq_next, once. */
static void cancelled_consumer_is_reported(void) {
    mq_conn *c = connect_ok(), *admin = connect_ok();
    if (!c || !admin) {
        mq_close(c);
        mq_close(admin);
        return;
    }
    char err[512];
    const char *queue = "alloc.test.cancel";
    int rc = mq_declare_queue(c, queue, NULL, err, sizeof err);
    CHECK(rc == MQ_OK, "declare: %s", err);
    rc = mq_consume(c, queue, 1, err, sizeof err);
    CHECK(rc == MQ_OK, "consume: %s", err);
    rc = mq_delete_queue(admin, queue, err, sizeof err);
    CHECK(rc == MQ_OK, "delete: %s", err);
    mq_delivery d;
    rc = mq_next(c, 5000, &d, err, sizeof err);
    CHECK(rc == MQ_ERR && strstr(err, "cancelled") && strstr(err, queue),
          "mq_next after the queue was deleted gave %s (%s)", mq_status_string(rc), err);
    if (rc == MQ_OK)
        mq_delivery_free(&d);
    rc = mq_next(c, 200, &d, err, sizeof err);
    CHECK(rc == MQ_TIMEOUT, "second mq_next gave %s (%s)", mq_status_string(rc), err);
    if (rc == MQ_OK)
        mq_delivery_free(&d);
    mq_close(admin);
    mq_close(c);
}

/* A publish to an exchange that does not exist and an unroutable publish are
 * errors the caller sees, and the connection goes on working. */
static void broker_refusals_are_errors(void) {
    mq_conn *c = connect_ok();
    if (!c)
        return;
    char err[512] = "";
    const char *body = "{\"v\":1}";
    int rc = mq_publish(c, "alloc.nope", "x", body, strlen(body), NULL, 0, err, sizeof err);
    if (rc == MQ_OK)
        rc = mq_flush(c, 10000, err, sizeof err);
    CHECK(rc == MQ_ERR, "publish to a missing exchange gave %s, want error", mq_status_string(rc));
    CHECK(strstr(err, "404") && strstr(err, "alloc.nope"), "error should name the exchange: %s",
          err);
    printf("# missing exchange: %s\n", err);
    CHECK(mq_is_alive(c), "connection lost by a channel error");

    rc = mq_publish(c, MQ_EXCHANGE_EVENTS, "run.nobody.listens", body, strlen(body), NULL, 0, err,
                    sizeof err);
    CHECK(rc == MQ_OK, "publish after the channel error: %s", err);
    rc = mq_flush(c, 10000, err, sizeof err);
    CHECK(rc == MQ_ERR, "unroutable publish gave %s, want error", mq_status_string(rc));
    CHECK(strstr(err, "NO_ROUTE") && strstr(err, "run.nobody.listens"),
          "error should say the message was unroutable: %s", err);
    printf("# unroutable: %s\n", err);

    rc = publish_one(c, MQ_KEY_EXPORT, body);
    mq_delivery d;
    rc = mq_get(c, MQ_QUEUE_EXPORTS, &d, err, sizeof err);
    CHECK(rc == MQ_OK, "get the message published after the errors: %s", err);
    if (rc == MQ_OK) {
        CHECK_STR(d.body, body);
        rc = mq_ack(c, d.tag, err, sizeof err);
        CHECK(rc == MQ_OK, "ack: %s", err);
        mq_delivery_free(&d);
    }
    mq_stats st;
    mq_get_stats(c, &st);
    CHECK_EQ_LL(st.returned, 1);
    CHECK_EQ_LL(st.lost, 1);
    mq_close(c);
}

/* After the broker drops the connection, mq_reconnect brings back the
 * declared control queue, its binding and its consumer. */
static void reconnect_restores_consumers(void) {
    const char *kill = getenv("ALLOC_IT_KILL");
    if (!kill) {
        printf("# reconnect test skipped: ALLOC_IT_KILL not set\n");
        return;
    }
    mq_conn *c = connect_ok();
    if (!c)
        return;
    char err[512];
    const char *queue = "alloc.control.run.7", *key = "run.7";
    mq_queue_opts qo = {.expires_ms = 600000};
    int rc = mq_declare_queue(c, queue, &qo, err, sizeof err);
    CHECK(rc == MQ_OK, "declare: %s", err);
    rc = mq_bind(c, queue, MQ_EXCHANGE_CONTROL, key, err, sizeof err);
    CHECK(rc == MQ_OK, "bind: %s", err);
    rc = mq_consume(c, queue, 4, err, sizeof err);
    CHECK(rc == MQ_OK, "consume: %s", err);

    CHECK(system(kill) == 0, "could not close the connections: %s", kill);
    mq_delivery d;
    rc = mq_next(c, 10000, &d, err, sizeof err);
    CHECK(rc == MQ_ERR_CONN, "after the broker closed the connection mq_next gave %s (%s)",
          mq_status_string(rc), err);
    printf("# connection closed: %s\n", err);
    if (rc == MQ_OK)
        mq_delivery_free(&d);
    CHECK(!mq_is_alive(c), "connection still believed alive");
    rc = mq_publish(c, MQ_EXCHANGE_CONTROL, key, "{}", 2, NULL, 0, err, sizeof err);
    CHECK(rc == MQ_ERR_CONN, "publish on a lost connection gave %s", mq_status_string(rc));

    /* as if the broker had lost its data: the queue must be declared again
     * before the consumer can come back */
    mq_conn *admin = connect_ok();
    if (admin) {
        rc = mq_delete_queue(admin, queue, err, sizeof err);
        CHECK(rc == MQ_OK, "delete the queue while disconnected: %s", err);
        mq_close(admin);
    }

    rc = mq_reconnect(c, 10, err, sizeof err);
    CHECK(rc == MQ_OK, "reconnect: %s", err);
    const char *body = "{\"v\":1,\"kind\":\"done\"}";
    rc = mq_publish(c, MQ_EXCHANGE_CONTROL, key, body, strlen(body), NULL, 0, err, sizeof err);
    CHECK(rc == MQ_OK, "publish after reconnect: %s", err);
    rc = mq_flush(c, 10000, err, sizeof err);
    CHECK(rc == MQ_OK, "flush after reconnect: %s", err);
    rc = mq_next(c, 5000, &d, err, sizeof err);
    CHECK(rc == MQ_OK, "consumer not back after reconnect: %s (%s)", mq_status_string(rc), err);
    if (rc == MQ_OK) {
        CHECK_STR(d.body, body);
        CHECK_STR(d.queue, queue);
        rc = mq_ack(c, d.tag, err, sizeof err);
        CHECK(rc == MQ_OK, "ack: %s", err);
        mq_delivery_free(&d);
    }
    rc = mq_delete_queue(c, queue, err, sizeof err);
    CHECK(rc == MQ_OK, "delete queue: %s", err);
    rc = mq_delete_queue(c, queue, err, sizeof err);
    CHECK(rc == MQ_OK, "deleting a missing queue: %s", err);
    mq_close(c);
}

/* The vhost in the URL is percent-decoded ("t_mq%2Fpct" is "t_mq/pct"); t_mq.sh
 * checks that the probe queue landed there. */
static void percent_encoded_vhost_is_honoured(void) {
    const char *url = getenv("ALLOC_IT_PCT_URL");
    if (!url) {
        printf("# percent-encoded vhost test skipped: ALLOC_IT_PCT_URL not set\n");
        return;
    }
    char err[512] = "";
    mq_conn *c = mq_connect(url, 10, err, sizeof err);
    CHECK(c != NULL, "connect to %s: %s", url, err);
    if (!c)
        return;
    CHECK_STR(mq_vhost(c), "t_mq/pct");
    int rc = mq_declare_queue(c, "alloc.pct.probe", NULL, err, sizeof err);
    CHECK(rc == MQ_OK, "declare: %s", err);
    mq_close(c);
}

TEST_MAIN(TEST(topology_is_idempotent), TEST(unknown_vhost_is_refused),
          TEST(round_trip_with_backpressure), TEST(publish_and_consume_on_one_connection),
          TEST(rejected_message_is_redelivered), TEST(malformed_message_is_dead_lettered),
          TEST(delivery_limit_dead_letters), TEST(channel_error_keeps_the_consumer),
          TEST(cancelled_consumer_is_reported), TEST(broker_refusals_are_errors),
          TEST(reconnect_restores_consumers), TEST(percent_encoded_vhost_is_honoured))
