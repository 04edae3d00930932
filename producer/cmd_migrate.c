/* alloc-producer migrate: applies the schema migrations compiled into the binary
 * (schemas/NNN_name.sql, see common/migrations.h) that the database lacks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cli.h"
#include "commands.h"
#include "db.h"
#include "migrations.h"

static const char migrate_usage[] = "alloc-producer migrate [--help]";

/* The advisory lock key that serializes concurrent migrates ("alloc" in ASCII). */
#define MIGRATE_LOCK_KEY "418430414691"

static const char create_schema_migration[] = "CREATE TABLE IF NOT EXISTS schema_migration ("
                                              " version int PRIMARY KEY,"
                                              " name text NOT NULL,"
                                              " applied_at timestamptz NOT NULL DEFAULT now())";

static void print_help(void) {
    printf("usage: %s\n\n"
           "Creates the schema or upgrades it: applies, in order and each in its own\n"
           "transaction, the migrations this program carries that the database lacks,\n"
           "recording them in schema_migration. Running it again changes nothing.\n"
           "Concurrent runs wait for each other. Every other command refuses a database\n"
           "without this program's schema: \"the schema is not there: run alloc-producer\n"
           "migrate\".\n\n"
           "Exit status: 0 the schema is up to date, 2 bad arguments, 1 any other failure\n"
           "(a server not answering, a migration that failed: it is rolled back and the\n"
           "ones before it stay).\n\n%s",
           migrate_usage, config_flags_help());
}

/* 1 when version is among the applied ones. */
static int is_applied(const int *applied, int n, int version) {
    for (int i = 0; i < n; i++)
        if (applied[i] == version)
            return 1;
    return 0;
}

/* Applies one migration and records it, in one transaction. */
static int apply_one(db_conn *c, const migration *m, db_error *err) {
    char version[16];
    snprintf(version, sizeof version, "%d", m->version);
    const char *params[] = {version, m->name};
    if (db_begin(c, NULL, err) < 0)
        return -1;
    if (db_exec(c, m->sql, err) < 0 ||
        db_exec_params(c, "INSERT INTO schema_migration (version, name) VALUES ($1, $2)", 2, params,
                       err) < 0 ||
        db_commit(c, err) < 0) {
        db_error ignored;
        db_rollback(c, &ignored);
        return -1;
    }
    return 0;
}

/* Runs the migration on an open connection; returns an exit code. */
static int migrate(db_conn *c) {
    db_error err;
    const char *lock_key[] = {MIGRATE_LOCK_KEY};
    PGresult *res =
        db_query(c, "SELECT pg_advisory_lock($1::bigint)", 1, lock_key, PGRES_TUPLES_OK, &err);
    if (!res)
        return cli_fail_db(&err, "migrate: taking the migration lock");
    PQclear(res);

    if (db_exec(c, create_schema_migration, &err) < 0)
        return cli_fail_db(&err, "migrate: creating schema_migration");

    res = db_query(c, "SELECT version FROM schema_migration ORDER BY version", 0, NULL,
                   PGRES_TUPLES_OK, &err);
    if (!res)
        return cli_fail_db(&err, "migrate: reading schema_migration");
    int napplied = PQntuples(res);
    int *applied = malloc(sizeof *applied * (size_t)(napplied > 0 ? napplied : 1));
    if (!applied) {
        PQclear(res);
        fprintf(stderr, "alloc-producer: migrate: out of memory\n");
        return ALLOC_EXIT_RUNTIME;
    }
    for (int i = 0; i < napplied; i++)
        applied[i] = atoi(PQgetvalue(res, i, 0));
    PQclear(res);

    int rc = ALLOC_EXIT_OK;
    for (int i = 0; i < migrations_count; i++) {
        const migration *m = &migrations[i];
        if (i > 0 && m->version <= migrations[i - 1].version) {
            fprintf(stderr,
                    "alloc-producer: migrate: migrations %s and %s are out of order "
                    "or share a version number\n",
                    migrations[i - 1].name, m->name);
            rc = ALLOC_EXIT_RUNTIME;
            break;
        }
        if (is_applied(applied, napplied, m->version))
            continue;
        if (apply_one(c, m, &err) < 0) {
            rc = cli_fail_db(&err, "migrate: migration %s", m->name);
            break;
        }
        printf("applied migration %s\n", m->name);
        fflush(stdout);
    }
    free(applied);
    if (rc != ALLOC_EXIT_OK)
        return rc;

    int64_t version = 0;
    if (db_query_int64(c, "SELECT max(version) FROM schema_migration", 0, NULL, &version, &err) < 0)
        return cli_fail_db(&err, "migrate: reading schema_migration");
    int known = migrations_count > 0 ? migrations[migrations_count - 1].version : 0;
    if (version > known)
        fprintf(stderr,
                "alloc-producer: migrate: warning: the database schema (version %lld) "
                "is newer than this program's (version %d)\n",
                (long long)version, known);
    printf("schema up to date (version %lld)\n", (long long)version);
    /* the advisory lock goes with the session */
    return ALLOC_EXIT_OK;
}

int cmd_migrate(const alloc_config *cfg, int argc, char **argv) {
    if (wants_help(argc, argv)) {
        print_help();
        return ALLOC_EXIT_OK;
    }
    if (argc > 0)
        return usage_error(migrate_usage, "migrate: unexpected argument '%s'", argv[0]);

    db_conn *c = cli_connect_db_unchecked(cfg, "migrate");
    if (!c)
        return ALLOC_EXIT_RUNTIME;
    int rc = migrate(c);
    db_close(c);
    return rc;
}
