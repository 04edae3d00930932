/* alloc-producer migrate: placeholder until the db module lands (see issue 2). */
#include "check.h"
#include "commands.h"

int cmd_migrate(const alloc_config *cfg, int argc, char **argv) {
    (void)cfg; (void)argc; (void)argv;
    return ALLOC_EXIT_RUNTIME;
}
