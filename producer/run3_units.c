/* The end of the allocation stage (DESIGN.md 5.4): the 'unallocated' findings,
 * the index of the run's partials (built in one pass, partition by partition,
 * now that they are all written: a unit of a big data source reads its own
 * range of projects, not its data source's whole partition again), the run's
 * own report_after table, and the units the formula stage
 * assembles report rows in, all in one transaction that moves the run to that
 * stage. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "cli.h"
#include "log.h"
#include "reserved.h"
#include "run_stages.h"
#include "run_state.h"

/* Steps of the plan, $1 = run id. */
static const sql_step PLAN_STEPS[] = {
    {"unallocated findings",
     /* one 'unallocated' warning per (version, data source, item) */
     "INSERT INTO audit_finding (run_id, version, data_source, project_code, rule_code, severity, "
     "    message) "
     "SELECT $1::bigint, version, data_source, '" RESERVED_UNALLOCATED
     "', 'unallocated', 'warning', "
     "  'item ' || item_code || ': ' || sum(rows) || ' pending row(s) could not be allocated "
     "(no active target or zero total weight)' "
     "FROM alloc_unallocated WHERE run_id = $1 GROUP BY version, data_source, item_code"},
};

/* The units ($1 = run id, %s its number): each data source of the run (those
 * of its rows as the snapshot saw them, so a project moved or removed since
 * loses no rows) cut into ranges of RUN_UNIT_PROJECTS project codes of the
 * project table. Ranges are taken in the columns' own collation, as the
 * consumers compare them and as report_after_run_N is partitioned, so every key
 * falls in exactly one unit; the first range of a data source is open below
 * (it holds #UNALLOCATED), the last open above. */
static const char UNITS_SQL[] =
    "INSERT INTO run_unit (run_id, unit_id, data_source, project_lo, project_hi) "
    "SELECT $1::bigint, (row_number() OVER (ORDER BY data_source, lo NULLS FIRST))::int - 1, "
    "       data_source, lo, lead(lo) OVER (PARTITION BY data_source ORDER BY lo NULLS FIRST) "
    "FROM (SELECT data_source, CASE WHEN n = 0 THEN NULL ELSE project_code END AS lo "
    "      FROM (SELECT data_source, project_code, "
    "                   row_number() OVER (PARTITION BY data_source ORDER BY project_code) - 1 "
    "                   AS n "
    "            FROM project) p WHERE n %% " RUN_UNIT_PROJECTS_TEXT " = 0 "
    "      UNION "
    /* every data source the run has rows in opens with an unbounded unit,
     * whatever the live project table says now: those of its direct rows, of
     * its pending rows (#POOL), and of the projects its shares went to (the
     * snapshot's public data) */
    "      SELECT DISTINCT data_source, NULL FROM run_direct_%s "
    "      UNION "
    "      SELECT DISTINCT data_source, NULL FROM report_before_run_%s "
    "      UNION "
    "      SELECT DISTINCT p ->> 2, NULL FROM run_public r, "
    "             json_array_elements(r.body::json -> 'projects') p WHERE r.run_id = $1) u";

int run_plan_units(run_state *st) {
    char id[32];
    run_i64s(st->run_id, id, sizeof id);
    const char *p[] = {id};
    db_error e;
    if (db_begin(st->db, NULL, &e) != 0)
        return cli_fail_db(&e, "plan the formula stage");
    PGresult *r = db_query(st->db, "SELECT status FROM alloc_run WHERE run_id = $1 FOR UPDATE", 1,
                           p, PGRES_TUPLES_OK, &e);
    if (!r) {
        db_rollback(st->db, NULL);
        return cli_fail_db(&e, "plan the formula stage");
    }
    int running = PQntuples(r) && !strcmp(PQgetvalue(r, 0, 0), "running");
    PQclear(r);
    if (!running) {
        db_rollback(st->db, NULL);
        cli_error("run %s is no longer running", id);
        return ALLOC_EXIT_RUNTIME;
    }
    /* the run's rows go into a table of their own, partitioned like its
     * units: each unit writes and keys a table of its own, and the run's last
     * transaction attaches them all, then this table as the run's partition
     * of report_after */
    char sql[2048];
    snprintf(sql, sizeof sql,
             "CREATE TABLE report_after_run_%s (LIKE report_after INCLUDING DEFAULTS) "
             "PARTITION BY RANGE (data_source, project_code); "
             "CREATE INDEX ON alloc_partial_run_%s (data_source, project_code)",
             id, id);
    PGresult *ur = NULL;
    if (db_exec(st->db, sql, &e) != 0 ||
        run_steps(st->db, "plan", PLAN_STEPS, sizeof PLAN_STEPS / sizeof PLAN_STEPS[0], id, &e) !=
            0 ||
        snprintf(sql, sizeof sql, UNITS_SQL, id, id) < 0 ||
        db_exec_params(st->db, sql, 1, p, &e) < 0 ||
        !(ur = db_query(st->db,
                        "UPDATE alloc_run SET stage = 'formula', formula_batches = "
                        "(SELECT count(*) FROM run_unit WHERE run_id = $1) "
                        "WHERE run_id = $1 RETURNING formula_batches",
                        1, p, PGRES_TUPLES_OK, &e)) ||
        db_exec_params(st->db, "DELETE FROM alloc_unallocated WHERE run_id = $1", 1, p, &e) < 0 ||
        db_exec_params(st->db, "DELETE FROM run_pending WHERE run_id = $1", 1, p, &e) < 0) {
        PQclear(ur);
        db_rollback(st->db, NULL);
        return cli_fail_db(&e, "plan the formula stage");
    }
    int64_t units = strtoll(PQgetvalue(ur, 0, 0), NULL, 10);
    PQclear(ur);
    if (db_commit(st->db, &e) != 0)
        return cli_fail_db(&e, "commit the plan of the formula stage");
    st->formula_expected = units;
    snprintf(st->stage, sizeof st->stage, "formula");
    log_info("run %s: %" PRId64 " unit(s) to assemble", id, units);
    return ALLOC_EXIT_OK;
}
