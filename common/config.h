/* Configuration: the ALLOC_* environment with loopback defaults that match the
 * local cluster (deploy/local/cluster.sh), overridable by command-line flags. */
#ifndef ALLOC_CONFIG_H
#define ALLOC_CONFIG_H

#define CONFIG_DEFAULT_PG_DSN "host=127.0.0.1 port=15432 dbname=alloc user=alloc"
#define CONFIG_DEFAULT_AMQP_URL "amqp://alloc:alloc@127.0.0.1:15672/alloc"
#define CONFIG_DEFAULT_REDIS_URL "redis://127.0.0.1:16379/0"
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

/* The usage text of the connection flags, for --help. */
const char *config_flags_help(void);

#endif
