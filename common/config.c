/* Configuration from the environment and flags. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

static const char *env_or(const char *name, const char *fallback) {
    const char *v = getenv(name);
    return v && *v ? v : fallback;
}

void config_load(alloc_config *cfg) {
    cfg->pg_dsn = env_or("ALLOC_PG_DSN", CONFIG_DEFAULT_PG_DSN);
    cfg->amqp_url = env_or("ALLOC_AMQP_URL", CONFIG_DEFAULT_AMQP_URL);
    cfg->redis_url = env_or("ALLOC_REDIS_URL", CONFIG_DEFAULT_REDIS_URL);
    cfg->file_store = env_or("ALLOC_FILE_STORE", CONFIG_DEFAULT_FILE_STORE);
}

int config_apply_flag(alloc_config *cfg, const char *flag, const char *value) {
    if (!strcmp(flag, "--pg-dsn"))
        cfg->pg_dsn = value;
    else if (!strcmp(flag, "--amqp-url"))
        cfg->amqp_url = value;
    else if (!strcmp(flag, "--redis-url"))
        cfg->redis_url = value;
    else if (!strcmp(flag, "--file-store"))
        cfg->file_store = value;
    else
        return 0;
    return 1;
}

const char *config_flags_help(void) {
    return "connection flags (override the environment):\n"
           "  --pg-dsn DSN       PostgreSQL connection string   (ALLOC_PG_DSN)\n"
           "  --amqp-url URL     amqp://user:pass@host:port/vhost (ALLOC_AMQP_URL)\n"
           "  --redis-url URL    redis://host:port/db            (ALLOC_REDIS_URL)\n"
           "  --file-store DIR   directory for exported files     (ALLOC_FILE_STORE)\n";
}
