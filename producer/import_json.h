/* What the JSON file importers (templates: import_template.c; rulesets:
 * cmd_import_ruleset.c) share: the check that an object holds only the keys
 * its element may have. Pure (jansson only); thread-safe. */
#ifndef ALLOC_PRODUCER_IMPORT_JSON_H
#define ALLOC_PRODUCER_IMPORT_JSON_H

#include <jansson.h>

/* Comments allowed: keys starting with '_' are never unknown (templates). */
#define IMPORT_JSON_COMMENTS 1

/* The next key of obj, in the object's order, that the NULL-terminated list
 * allowed does not hold; NULL when there is no other. *iter holds the
 * position: NULL before the first call, then left to this function. With
 * flags IMPORT_JSON_COMMENTS keys starting with '_' are skipped. The key is
 * owned by obj. Use:
 *     void *it = NULL;
 *     for (const char *k; (k = import_json_unknown_key(obj, allowed, 0, &it));)
 *         report(k); */
const char *import_json_unknown_key(json_t *obj, const char *const *allowed, int flags,
                                    void **iter);

#endif
