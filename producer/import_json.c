/* The key check of the JSON file importers (see import_json.h). */
#include "import_json.h"

#include <string.h>

const char *import_json_unknown_key(json_t *obj, const char *const *allowed, int flags,
                                    void **iter) {
    void *it = *iter ? json_object_iter_next(obj, *iter) : json_object_iter(obj);
    for (; it; it = json_object_iter_next(obj, it)) {
        const char *key = json_object_iter_key(it);
        if ((flags & IMPORT_JSON_COMMENTS) && key[0] == '_')
            continue;
        int known = 0;
        for (const char *const *a = allowed; *a && !known; a++)
            known = !strcmp(*a, key);
        if (!known) {
            *iter = it;
            return key;
        }
    }
    return NULL;
}
