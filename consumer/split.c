/* The split stage (level 1): a bucket of one data source's pending rows is cut
 * into uniform batches with deterministic ids (bucket id / index), so a
 * redelivered bucket yields the same batches and the batch markers drop the
 * repeats. The bucket is acked only once every batch is confirmed. This is what
 * spreads one huge city over every consumer. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consumer.h"
#include "log.h"
#include "msg.h"

int split_bucket(const consumer_env *env, mq_conn *mq, const mq_delivery *d) {
    (void)env;
    char err[512] = "";
    msg_any m;
    if (msg_decode(d->body, d->len, &m, err, sizeof err) != 0 || m.type != MSG_BUCKET) {
        char reason[640];
        if (m.type != MSG_BUCKET && err[0] == '\0')
            snprintf(reason, sizeof reason, "expected a bucket message on %s, got %s", d->queue,
                     msg_type_name(m.type));
        else
            snprintf(reason, sizeof reason, "malformed bucket message: %s", err);
        msg_any_free(&m);
        log_error("%s: dead-lettered", reason);
        int rc = mq_dead_letter(mq, d, reason, err, sizeof err);
        if (rc != MQ_OK)
            log_error("dead-letter: %s", err);
        return rc == MQ_ERR_CONN ? MQ_ERR_CONN : MQ_OK;
    }
    const msg_bucket *b = &m.bucket;
    log_set_run(b->run_id);
    size_t per = (size_t)b->batch_size, nbatches = (b->nrows + per - 1) / per;
    int rc = MQ_OK;
    for (size_t k = 0; k < nbatches && rc == MQ_OK; k++) {
        char batch_id[512];
        snprintf(batch_id, sizeof batch_id, "%s/%zu", b->bucket_id, k);
        size_t first = k * per, n = b->nrows - first < per ? b->nrows - first : per;
        msg_batch out = {
            .run_id = b->run_id,
            .period = b->period,
            .ruleset = b->ruleset,
            .stamp = b->stamp,
            .public_key = b->public_key,
            .batch_id = batch_id,
            .data_source = b->data_source,
            .detail = b->detail,
            .expected = b->expected,
            .rows = b->rows + first,
            .nrows = n,
        };
        size_t len;
        char *body = msg_encode_batch(&out, &len, err, sizeof err);
        if (!body) {
            log_error("encode batch %s: %s", batch_id, err);
            rc = MQ_ERR;
            break;
        }
        rc = mq_publish(mq, MQ_EXCHANGE_WORK, MQ_KEY_BATCH, body, len, NULL, 0, err, sizeof err);
        free(body);
    }
    if (rc == MQ_OK)
        rc = mq_flush(mq, 60000, err, sizeof err);
    if (rc == MQ_OK) {
        rc = mq_ack(mq, d->tag, err, sizeof err);
        if (rc == MQ_OK)
            log_info("bucket %s: %zu rows split into %zu batches", b->bucket_id, b->nrows,
                     nbatches);
    }
    if (rc == MQ_ERR) {
        /* not confirmed: let it come back (its batches are deduplicated by id) */
        log_warn("bucket %s not split: %s; requeued", b->bucket_id, err);
        rc = mq_reject(mq, d->tag, 1, err, sizeof err);
    }
    if (rc != MQ_ERR_CONN)
        rc = MQ_OK;
    msg_any_free(&m);
    log_set_run(0);
    return rc;
}
