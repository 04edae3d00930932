/* The producer's error lines (see cli.h). */
#include "cli.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "config.h"
#include "migrations.h"

/* The first error line of the process: what a failed run records as its cause. */
static char first_error[1024];
static int have_first_error;

/* Masks, in place, every word of text that looks like a connection string (a
 * URL with "://", or a DSN's password=...): an argument a user mistyped may be
 * one, and a credential is never printed. */
static void mask_words(char *text, size_t size) {
    char *p = text;
    while (*p) {
        while (*p == ' ' || *p == '\'' || *p == '"')
            p++;
        char *end = p;
        while (*end && *end != ' ' && *end != '\'' && *end != '"')
            end++;
        size_t n = (size_t)(end - p);
        if (n > 0 && n < 512) {
            char word[512], shown[600];
            memcpy(word, p, n);
            word[n] = '\0';
            if (strstr(word, "://") || strstr(word, "password=")) {
                config_mask_secret(word, shown, sizeof shown);
                size_t m = strlen(shown), rest = strlen(end);
                if ((size_t)(p - text) + m + rest + 1 <= size) {
                    memmove(p + m, end, rest + 1);
                    memcpy(p, shown, m);
                    end = p + m;
                }
            }
        }
        p = end;
    }
}

/* cli_error with a va_list; suffix (when not NULL) ends the line after ": ". */
static void error_line(const char *suffix, const char *fmt, va_list ap) {
    char line[sizeof first_error];
    int n0 = vsnprintf(line, sizeof line, fmt, ap);
    if (suffix && n0 >= 0 && (size_t)n0 < sizeof line)
        snprintf(line + n0, sizeof line - (size_t)n0, ": %s", suffix);
    mask_words(line, sizeof line);
    /* one line each: a library message may end in a newline or hold several */
    for (char *p = line; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    size_t n = strlen(line);
    while (n > 0 && line[n - 1] == ' ')
        line[--n] = '\0';
    fprintf(stderr, "alloc-producer: %s\n", line);
    if (!have_first_error) {
        memcpy(first_error, line, n + 1);
        have_first_error = 1;
    }
}

void cli_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    error_line(NULL, fmt, ap);
    va_end(ap);
}

const char *cli_first_error(void) {
    return have_first_error ? first_error : NULL;
}

int cli_usage_error(const char *usage, const char *fmt, va_list ap) {
    char line[sizeof first_error];
    vsnprintf(line, sizeof line, fmt, ap);
    mask_words(line, sizeof line);
    fprintf(stderr, "alloc-producer: %s\nusage: %s\n", line, usage);
    return ALLOC_EXIT_USAGE;
}

db_conn *cli_connect_db_unchecked(const alloc_config *cfg, const char *cmd) {
    char err[DB_ERRMSG_MAX];
    db_conn *c = db_connect(cfg->pg_dsn, err, sizeof err);
    if (!c && cmd)
        cli_error("%s: %s", cmd, err);
    else if (!c)
        cli_error("%s", err);
    return c;
}

db_conn *cli_connect_db(const alloc_config *cfg, const char *cmd) {
    db_conn *c = cli_connect_db_unchecked(cfg, cmd);
    if (c && cli_check_schema(c, cmd ? cmd : "alloc-producer") != ALLOC_EXIT_OK) {
        db_close(c);
        return NULL;
    }
    return c;
}

int cli_fail_db(const db_error *err, const char *fmt, ...) {
    char why[DB_ERRMSG_MAX + 64];
    if (cli_is_no_schema(err))
        snprintf(why, sizeof why, "%s (%s)", CLI_NO_SCHEMA, err->msg);
    else
        snprintf(why, sizeof why, "%s", err ? err->msg : "unknown error");
    va_list ap;
    va_start(ap, fmt);
    error_line(why, fmt, ap);
    va_end(ap);
    return ALLOC_EXIT_RUNTIME;
}

int cli_refuse(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    error_line(NULL, fmt, ap);
    va_end(ap);
    return ALLOC_EXIT_REFUSED;
}

int cli_check_schema(db_conn *c, const char *cmd) {
    db_error err;
    int64_t present = 0;
    if (db_query_int64(c,
                       "SELECT count(*) FROM pg_catalog.pg_class WHERE oid = "
                       "to_regclass('schema_migration')",
                       0, NULL, &present, &err) < 0) {
        cli_error("%s: checking the schema: %s", cmd, err.msg);
        return ALLOC_EXIT_RUNTIME;
    }
    if (!present) {
        cli_error("%s: %s", cmd, CLI_NO_SCHEMA);
        return ALLOC_EXIT_RUNTIME;
    }
    int64_t version = 0;
    if (db_query_int64(c, "SELECT coalesce(max(version), 0) FROM schema_migration", 0, NULL,
                       &version, &err) < 0) {
        cli_error("%s: checking the schema: %s", cmd, err.msg);
        return ALLOC_EXIT_RUNTIME;
    }
    int known = migrations_count > 0 ? migrations[migrations_count - 1].version : 0;
    if (version == 0) {
        cli_error("%s: %s", cmd, CLI_NO_SCHEMA);
        return ALLOC_EXIT_RUNTIME;
    }
    if (version < known) {
        cli_error("%s: the schema is at version %lld, this program needs version %d: run "
                  "alloc-producer migrate",
                  cmd, (long long)version, known);
        return ALLOC_EXIT_RUNTIME;
    }
    return ALLOC_EXIT_OK;
}

int cli_is_no_schema(const db_error *err) {
    return err && db_error_is(err, DB_SQLSTATE_UNDEFINED_TABLE);
}
