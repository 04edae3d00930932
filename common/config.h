/* Configuration: the ALLOC_* environment with loopback defaults that match the
 * local cluster (deploy/local/cluster.sh), overridable by command-line flags;
 * and the masking that keeps passwords out of what is printed. */
#ifndef ALLOC_CONFIG_H
#define ALLOC_CONFIG_H

#include <stddef.h>

/* The defaults, in this one place: config_load and config_flags_help use them,
 * README.md's configuration table states them, and tests/integration/t_defaults.sh
 * checks them against `deploy/local/cluster.sh env`. The local cluster's servers
 * listen on <prefix>432 (PostgreSQL), <prefix>672 (AMQP) and <prefix>379
 * (Redis), the prefix being ALLOC_CLUSTER_PORT, default 15. */
#define CONFIG_LOCAL_PORT_PREFIX "15"
#define CONFIG_DEFAULT_PG_DSN                                                                      \
    "host=127.0.0.1 port=" CONFIG_LOCAL_PORT_PREFIX "432 dbname=alloc user=alloc"
#define CONFIG_DEFAULT_AMQP_URL "amqp://alloc:alloc@127.0.0.1:" CONFIG_LOCAL_PORT_PREFIX "672/alloc"
#define CONFIG_DEFAULT_REDIS_URL "redis://127.0.0.1:" CONFIG_LOCAL_PORT_PREFIX "379/0"
#define CONFIG_DEFAULT_FILE_STORE "./.run/cluster/files"

typedef struct alloc_config {
    const char *pg_dsn;     /* ALLOC_PG_DSN, --pg-dsn */
    const char *amqp_url;   /* ALLOC_AMQP_URL, --amqp-url */
    const char *redis_url;  /* ALLOC_REDIS_URL, --redis-url */
    const char *file_store; /* ALLOC_FILE_STORE, --file-store */
} alloc_config;

/* Fills cfg from the environment, defaults where a variable is unset or empty.
 * The strings point into the environment or static storage: nothing to free. */
void config_load(alloc_config *cfg);

/* Applies one connection flag ("--pg-dsn", "--amqp-url", "--redis-url",
 * "--file-store") with its value. Returns 1 when the flag was one of these,
 * 0 otherwise. The value is kept by pointer (argv outlives the config). */
int config_apply_flag(alloc_config *cfg, const char *flag, const char *value);

/* The usage text of the connection flags, for --help, with their defaults. */
const char *config_flags_help(void);

/* Writes into out (size outlen) a printable copy of a connection string with
 * every password replaced by "***":
 *   scheme://user:pass@host...     -> scheme://user:***@host...  (any scheme)
 *   redis://:pass@host:port/db     -> redis://:***@host:port/db
 *   ...?password=pass&...          -> ...?password=***&...        (URL query)
 *   host=x password='a b' user=y   -> host=x password=*** user=y  (libpq keyword/value)
 * A URL with a user and no password, or a DSN without password=, is copied
 * unchanged. Control characters become '?' (tab and line ends a space). When
 * in doubt (an unencoded '@' after a '/'), more is masked rather than less.
 * Always NUL-terminates when outlen > 0, truncating the copy to fit; a NULL
 * input gives "". Pure and thread-safe. */
void config_mask_secret(const char *url_or_dsn, char *out, size_t outlen);

/* Replaces, in the NUL-terminated text (a buffer of textlen bytes), every
 * occurrence of a password of url_or_dsn, as written or decoded (%XX, quotes,
 * backslashes), with "***"; the result is truncated to fit. For error messages
 * of libraries that may echo the connection string (libpq does, on a malformed
 * URI). Pure and thread-safe. */
void config_scrub_secret(const char *url_or_dsn, char *text, size_t textlen);

/* As config_scrub_secret, for one password already known in clear (a parsed
 * URL's): every occurrence in text becomes "***". An empty password or NULL
 * changes nothing. */
void config_scrub_password(const char *password, char *text, size_t textlen);

#endif
