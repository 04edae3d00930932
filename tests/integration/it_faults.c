/* A broker tool for the fault-injection tests (tests/faults/): puts raw messages
 * on the work queues, delivers messages twice, and reads alloc.dead. Talks to
 * the broker of ALLOC_AMQP_URL through common/mq.
 *
 *   it_faults put KEY BODY        publish BODY to alloc.work with routing key KEY
 *                                 (bucket, batch, formula), persistent, confirmed
 *   it_faults dup QUEUE N SECS    take N messages from QUEUE (waiting up to SECS for
 *                                 them), publish each one twice with its routing key
 *                                 and ack the original; prints the id
 *                                 (bucket_id / batch_id) of each one duplicated
 *   it_faults dead                drain alloc.dead; one line per message:
 *                                 queue TAB origin TAB x-alloc-error TAB body
 *
 * Exit 0 on success, 1 on any failure (reason on stderr), 2 on usage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mq.h"
#include "msg.h"

#define USAGE "usage: it_faults put KEY BODY | dup QUEUE N SECS | dead\n"

static mq_conn *connect_broker(void) {
    const char *url = getenv("ALLOC_AMQP_URL");
    char err[512];
    if (!url || !*url) {
        fprintf(stderr, "it_faults: ALLOC_AMQP_URL is not set\n");
        return NULL;
    }
    mq_conn *c = mq_connect(url, 30, err, sizeof err);
    if (!c) {
        fprintf(stderr, "it_faults: connect to %s: %s\n", url, err);
        return NULL;
    }
    if (mq_declare_topology(c, err, sizeof err) != MQ_OK) {
        fprintf(stderr, "it_faults: declare topology: %s\n", err);
        mq_close(c);
        return NULL;
    }
    return c;
}

static int publish_confirmed(mq_conn *c, const char *key, const char *body, size_t len) {
    char err[512];
    if (mq_publish(c, MQ_EXCHANGE_WORK, key, body, len, NULL, 0, err, sizeof err) != MQ_OK ||
        mq_flush(c, 10000, err, sizeof err) != MQ_OK) {
        fprintf(stderr, "it_faults: publish to %s/%s: %s\n", MQ_EXCHANGE_WORK, key, err);
        return -1;
    }
    return 0;
}

/* The bucket or batch id of an alloc message, "?" when it has none. */
static void message_id(const mq_delivery *d, char *buf, size_t len) {
    msg_any m;
    char err[256];
    snprintf(buf, len, "?");
    if (msg_decode(d->body, d->len, &m, err, sizeof err) != 0)
        return;
    if (m.type == MSG_BUCKET)
        snprintf(buf, len, "%s", m.bucket.bucket_id);
    else if (m.type == MSG_BATCH)
        snprintf(buf, len, "%s", m.batch.batch_id);
    else if (m.type == MSG_FORMULA)
        snprintf(buf, len, "%s", m.formula.batch_id);
    else if (m.type == MSG_ASSEMBLE)
        snprintf(buf, len, "%s", m.assemble.batch_id);
    msg_any_free(&m);
}

static int cmd_dup(mq_conn *c, const char *queue, long n, long secs) {
    char err[512];
    time_t deadline = time(NULL) + secs;
    long done = 0;
    while (done < n) {
        mq_delivery d;
        int rc = mq_get(c, queue, &d, err, sizeof err);
        if (rc == MQ_EMPTY) {
            if (time(NULL) >= deadline) {
                fprintf(stderr, "it_faults: only %ld of %ld messages came on %s in %lds\n", done, n,
                        queue, secs);
                return -1;
            }
            struct timespec ts = {0, 50 * 1000 * 1000};
            nanosleep(&ts, NULL);
            continue;
        }
        if (rc != MQ_OK) {
            fprintf(stderr, "it_faults: get from %s: %s\n", queue, err);
            return -1;
        }
        char id[512];
        message_id(&d, id, sizeof id);
        int ok = publish_confirmed(c, d.routing_key, d.body, d.len) == 0 &&
                 publish_confirmed(c, d.routing_key, d.body, d.len) == 0;
        if (ok && mq_ack(c, d.tag, err, sizeof err) != MQ_OK) {
            fprintf(stderr, "it_faults: ack on %s: %s\n", queue, err);
            ok = 0;
        }
        mq_delivery_free(&d);
        if (!ok)
            return -1;
        printf("%s\n", id);
        done++;
    }
    return 0;
}

static int cmd_dead(mq_conn *c) {
    char err[512];
    for (;;) {
        mq_delivery d;
        int rc = mq_get(c, MQ_QUEUE_DEAD, &d, err, sizeof err);
        if (rc == MQ_EMPTY)
            return 0;
        if (rc != MQ_OK) {
            fprintf(stderr, "it_faults: get from %s: %s\n", MQ_QUEUE_DEAD, err);
            return -1;
        }
        const char *q = mq_delivery_header(&d, MQ_HEADER_QUEUE);
        const char *o = mq_delivery_header(&d, MQ_HEADER_ORIGIN);
        const char *e = mq_delivery_header(&d, MQ_HEADER_ERROR);
        /* bodies are printed on one line; long ones are cut */
        char body[201];
        size_t bl = d.len < sizeof body - 1 ? d.len : sizeof body - 1;
        for (size_t i = 0; i < bl; i++)
            body[i] = d.body[i] == '\n' || d.body[i] == '\t' ? ' ' : d.body[i];
        body[bl] = '\0';
        printf("%s\t%s\t%s\t%s\n", q ? q : "-", o ? o : "-", e ? e : "-", body);
        rc = mq_ack(c, d.tag, err, sizeof err);
        mq_delivery_free(&d);
        if (rc != MQ_OK) {
            fprintf(stderr, "it_faults: ack on %s: %s\n", MQ_QUEUE_DEAD, err);
            return -1;
        }
    }
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fputs(USAGE, stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!((!strcmp(cmd, "put") && argc == 4) || (!strcmp(cmd, "dup") && argc == 5) ||
          (!strcmp(cmd, "dead") && argc == 2))) {
        fputs(USAGE, stderr);
        return 2;
    }
    mq_conn *c = connect_broker();
    if (!c)
        return 1;
    int rc;
    if (!strcmp(cmd, "put"))
        rc = publish_confirmed(c, argv[2], argv[3], strlen(argv[3]));
    else if (!strcmp(cmd, "dup"))
        rc = cmd_dup(c, argv[2], strtol(argv[3], NULL, 10), strtol(argv[4], NULL, 10));
    else
        rc = cmd_dead(c);
    mq_close(c);
    return rc == 0 ? 0 : 1;
}
