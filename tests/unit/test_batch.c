/* Unit tests of the public-data parser and of batch allocation (common/pubdata.c,
 * common/batch.c) on a small hand-computed period. */
#include <stdlib.h>

#include "../../common/batch.h"
#include "../../common/pubdata.h"
#include "harness.h"

/* Versions M (all) and F (no mgmt_diff). City BJ has P1 (C1), P2 (C1), P3 (C2, weight 0);
 * city SH has P4 (C2); city GZ has no active project. */
static const char *doc =
    "{\"versions\": [[\"M\", null], [\"F\", [\"gl\", \"rent\"]]],"
    " \"rules\": [[\"M\", \"*\", \"headcount\", \"city\"], [\"F\", \"*\", \"equal\", \"city\"],"
    "           [\"M\", \"RENT\", \"area\", \"company\"], [\"X\", \"*\", \"equal\", \"city\"]],"
    " \"projects\": [[\"P1\", \"C1\", \"BJ\"], [\"P2\", \"C1\", \"BJ\"], [\"P3\", \"C2\", \"BJ\"],"
    "              [\"P4\", \"C2\", \"SH\"]],"
    " \"drivers\": [[\"headcount\", \"P1\", \"1.5\"], [\"headcount\", \"P2\", \"3.000000\"],"
    "             [\"headcount\", \"P3\", \"0\"], [\"area\", \"P3\", \"2\"], [\"area\", \"P4\", "
    "\"6\"],"
    "             [\"headcount\", \"P9\", \"5\"]]}";

static pubdata *load(void) {
    char err[256] = "";
    pubdata *pd = pubdata_parse(doc, strlen(doc), err, sizeof err);
    CHECK(pd != NULL, "parse failed: %s", err);
    return pd;
}

static void parses_versions_rules_and_groups(void) {
    pubdata *pd = load();
    if (!pd)
        return;
    CHECK_EQ_LL(pubdata_version_count(pd), 2);
    CHECK(pubdata_includes(pd, 0, "mgmt_diff"), "M includes everything");
    CHECK(!pubdata_includes(pd, 1, "mgmt_diff"), "F excludes mgmt_diff");
    CHECK(pubdata_includes(pd, 1, "rent"), "F includes rent");
    const pubdata_rule *r = pubdata_rule_for(pd, 0, "RENT");
    CHECK(r && !strcmp(r->driver, "area") && r->scope == PUBDATA_SCOPE_COMPANY, "item rule");
    r = pubdata_rule_for(pd, 0, "OTHER");
    CHECK(r && !strcmp(r->driver, "headcount"), "'*' rule");
    const pubdata_group *g = pubdata_targets(pd, r, "BJ", "C1");
    CHECK_EQ_LL(g->n, 3);
    CHECK(g->total_weight == 4500000, "W of headcount in BJ");
    g = pubdata_targets(pd, r, "GZ", "C1");
    CHECK_EQ_LL(g->n, 0);
    pubdata_free(pd);
}

static int64_t partial(const batch_result *res, const pubdata *pd, uint32_t v, const char *project,
                       const char *item, int *found) {
    for (size_t i = 0; i < res->n_partials; i++) {
        const batch_partial *p = &res->partials[i];
        const char *code =
            p->target == BATCH_UNALLOCATED ? "#UNALLOCATED" : pubdata_project_code(pd, p->target);
        if (p->version == v && !strcmp(code, project) && !strcmp(p->item_code, item)) {
            (*found)++;
            return p->cents;
        }
    }
    return 0;
}

static void allocates_a_batch_per_version(void) {
    pubdata *pd = load();
    if (!pd)
        return;
    batch_row rows[] = {
        {1, "C1", "COST", "gl", 100},        /* M: 1.5:3:0 -> 33/67/0? F: equal 34/33/33 */
        {2, "C1", "COST", "mgmt_diff", -10}, /* M only: -3.33/-6.67 -> -3/-7 */
        {3, "C2", "RENT", "rent", 80},       /* M: area over C2 = P3 2, P4 6 -> 20/60; F equal */
        {4, "C1", "ZERO", "gl", 0},          /* nothing anywhere */
    };
    batch_result res;
    char err[256] = "";
    int rc = batch_allocate(pd, "BJ", rows, 4, 1, &res, err, sizeof err);
    CHECK(rc == 0, "batch failed: %s", err);
    int f = 0;
    /* M COST: row 1: a*w = 150,300,0 over 4.5 -> q 33,66 r 150-33*4.5... in units: 100*1.5e6
     * mod 4.5e6 = 1.5e6, 100*3e6 mod 4.5e6 = 3e6 -> leftover 1 to P2: 33, 67.
     * row 2: 10*1.5e6/4.5e6 = 3 r 1.5e6; 10*3e6/4.5e6 = 6 r 3e6 -> P2: -3, -7. */
    CHECK_EQ_LL(partial(&res, pd, 0, "P1", "COST", &f), 30);
    CHECK_EQ_LL(partial(&res, pd, 0, "P2", "COST", &f), 60);
    /* F COST: only row 1 (mgmt_diff excluded), equal over 3: 34, 33, 33 */
    CHECK_EQ_LL(partial(&res, pd, 1, "P1", "COST", &f), 34);
    CHECK_EQ_LL(partial(&res, pd, 1, "P2", "COST", &f), 33);
    CHECK_EQ_LL(partial(&res, pd, 1, "P3", "COST", &f), 33);
    /* M RENT by company C2 over area: P3 2, P4 6 -> 20, 60 (P4 lands in SH) */
    CHECK_EQ_LL(partial(&res, pd, 0, "P3", "RENT", &f), 20);
    CHECK_EQ_LL(partial(&res, pd, 0, "P4", "RENT", &f), 60);
    /* F RENT: '*' equal by city BJ: 27, 27, 26 */
    CHECK_EQ_LL(partial(&res, pd, 1, "P1", "RENT", &f), 27);
    CHECK_EQ_LL(partial(&res, pd, 1, "P2", "RENT", &f), 27);
    CHECK_EQ_LL(partial(&res, pd, 1, "P3", "RENT", &f), 26);
    CHECK_EQ_LL(f, 10);
    CHECK_EQ_LL(res.n_partials, 10);
    /* no zero-cent partial: P3 has headcount 0 in M COST */
    f = 0;
    partial(&res, pd, 0, "P3", "COST", &f);
    CHECK_EQ_LL(f, 0);
    /* details: every nonzero share */
    CHECK_EQ_LL(res.n_details, 4 + 3 + 2 + 3);
    batch_result_free(&res);
    pubdata_free(pd);
}

static void unallocated_when_no_target(void) {
    pubdata *pd = load();
    if (!pd)
        return;
    batch_row rows[] = {
        {7, "C1", "COST", "gl", 500}, {8, "C1", "COST", "gl", -500}, {9, "C1", "COST", "gl", 0}};
    batch_result res;
    char err[256] = "";
    CHECK(batch_allocate(pd, "GZ", rows, 3, 0, &res, err, sizeof err) == 0, "%s", err);
    int f = 0;
    /* the row exists with sum 0.00: nonzero amounts reached it */
    CHECK_EQ_LL(partial(&res, pd, 0, "#UNALLOCATED", "COST", &f), 0);
    CHECK_EQ_LL(f, 1);
    CHECK_EQ_LL(res.n_unallocated, 2); /* M and F */
    CHECK_EQ_LL(res.unallocated[0].rows, 2);
    batch_result_free(&res);
    pubdata_free(pd);
}

static void refuses_bad_documents(void) {
    char err[256];
    const char *bad[] = {
        "", "[]", "{\"versions\": 3}",
        "{\"versions\": [], \"projects\": [[\"B\",\"C\",\"D\"],[\"A\",\"C\",\"D\"]],"
        " \"drivers\": [], \"rules\": []}",
        "{\"versions\": [], \"projects\": [], \"drivers\": [[\"d\",\"p\",\"x\"]],"
        " \"rules\": []}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        pubdata *pd = pubdata_parse(bad[i], strlen(bad[i]), err, sizeof err);
        CHECK(pd == NULL && err[0], "document %zu accepted", i);
        pubdata_free(pd);
    }
}

TEST_MAIN(TEST(parses_versions_rules_and_groups), TEST(allocates_a_batch_per_version),
          TEST(unallocated_when_no_target), TEST(refuses_bad_documents))
