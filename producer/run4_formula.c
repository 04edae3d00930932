/* The formula stage of a run (DESIGN.md 5.4, 5.5): the compiled ruleset cached
 * in Redis (and cached again while the stage is waited for, should Redis lose
 * it), one assemble message per unit (run3_units.c) that has no marker yet. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "cli.h"
#include "fx.h"
#include "log.h"
#include "msg.h"
#include "run_stages.h"
#include "run_state.h"
#include "run_wait.h"

/* ---- the formula stage (DESIGN.md 5.5) ---------------------------------------------- */

static char audits_key_buf[600];
static const char *audits_key(const run_state *st) {
    snprintf(audits_key_buf, sizeof audits_key_buf, "%s:audits", st->fx_key);
    return audits_key_buf;
}

static const run_formulas *cached_formulas; /* for the wait hook */

/* Puts the compiled formulas into Redis under their key (with the audit rules'
 * severities and messages beside them) unless they are there. */
static void cache_formulas(run_state *st) {
    if (!cached_formulas)
        return;
    redisReply *rep = cache_command(st->cache, "EXISTS %s %s", st->fx_key, audits_key(st));
    int present = rep && rep->type == REDIS_REPLY_INTEGER && rep->integer == 2;
    if (rep)
        freeReplyObject(rep);
    if (present)
        return;
    if (cache_set(st->cache, st->fx_key, cached_formulas->bytes, cached_formulas->len,
                  PUBLIC_TTL_S) != 0 ||
        cache_set(st->cache, audits_key(st), cached_formulas->audits,
                  strlen(cached_formulas->audits), PUBLIC_TTL_S) != 0)
        log_warn("cache formulas %s: %s", st->fx_key, cache_error(st->cache));
}

/* Publishes the units that have no batch marker yet (all of them, but on
 * resume): one assemble message each. Returns an exit code. */
static int publish_units(run_state *st) {
    char id[32];
    run_i64s(st->run_id, id, sizeof id);
    const char *p[] = {id};
    db_error e;
    PGresult *r = db_query(st->db,
                           "SELECT u.unit_id, u.data_source FROM run_unit u WHERE u.run_id = $1 "
                           "AND NOT EXISTS (SELECT 1 FROM batch_marker m WHERE m.run_id = u.run_id "
                           "  AND m.stage = 'formula' AND m.batch_id = 'u' || u.unit_id) "
                           "ORDER BY u.unit_id",
                           1, p, PGRES_TUPLES_OK, &e);
    if (!r)
        return cli_fail_db(&e, "read the run's units");
    int rc = ALLOC_EXIT_OK;
    char err[512];
    for (int i = 0; i < PQntuples(r) && rc == ALLOC_EXIT_OK; i++) {
        char batch_id[32];
        snprintf(batch_id, sizeof batch_id, "u%s", PQgetvalue(r, i, 0));
        msg_assemble m = {
            .run_id = st->run_id,
            .period = st->period,
            .ruleset = st->ruleset,
            .stamp = st->stamp,
            .batch_id = batch_id,
            .fx_key = st->fx_key,
            .expected = st->formula_expected,
            .data_source = PQgetvalue(r, i, 1),
            .unit_id = strtoll(PQgetvalue(r, i, 0), NULL, 10),
        };
        size_t len;
        char *body = msg_encode_assemble(&m, &len, err, sizeof err);
        if (!body) {
            cli_error("run %s: encode unit %s: %s", id, batch_id, err);
            rc = ALLOC_EXIT_RUNTIME;
            break;
        }
        if (mq_publish(st->mq, MQ_EXCHANGE_WORK, MQ_KEY_FORMULA, body, len, NULL, 0, err,
                       sizeof err) != MQ_OK) {
            cli_error("run %s: publish unit %s: %s", id, batch_id, err);
            rc = ALLOC_EXIT_RUNTIME;
        }
        free(body);
    }
    int published = PQntuples(r);
    PQclear(r);
    if (rc == ALLOC_EXIT_OK) {
        if (mq_flush(st->mq, -1, err, sizeof err) != MQ_OK) {
            cli_error("run %s: confirm units: %s", id, err);
            rc = ALLOC_EXIT_RUNTIME;
        } else {
            log_info("run %s: %d unit(s) published", id, published);
        }
    }
    return rc;
}

int run_formula_stage(run_state *st) {
    run_formulas f;
    int rc = run_load_formulas(st, &f);
    if (rc != ALLOC_EXIT_OK)
        return rc;
    cached_formulas = &f;
    cache_formulas(st);
    rc = publish_units(st);
    if (rc == ALLOC_EXIT_OK)
        rc = run_wait_stage(st, "formula", st->formula_expected, cache_formulas);
    cached_formulas = NULL;
    run_formulas_free(&f);
    return rc;
}
