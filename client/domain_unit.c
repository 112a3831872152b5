/* domain_unit.c: saving several entities in one atomic append (the wire's append takes events
 * of several entities in one request, all stored or none), and the repository's typed find.
 *
 * After checking the list, it saves exactly as evs_repository_save does for one entity
 * (dom_repository_save: one append, conflicts in domain versions, publication through the
 * repository's kept events, snapshots when due). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_priv.h"
#include "domain_priv.h"

EVS_API void *evs_repository_find(evs_repository_t *r, const char *id) {
    evs_entity_t *e = NULL;
    if (evs_repository_get(r, id, &e) < 0) return NULL;
    return e;
}

/* Checks the list: every entity there, of the repository's entity type, each once. */
static int check_entities(evs_context_t *c, const evs_entity_type_t *type,
                          evs_entity_t *const *entities, size_t n) {
    if (n && !entities) return client_fail(c, EVS_EINVAL, "the list of entities is NULL");
    for (size_t i = 0; i < n; i++) {
        const evs_entity_t *e = entities[i];
        if (!e || !e->type || !e->id)
            return client_fail(c, EVS_EINVAL, "entity %zu of the list is NULL", i);
        if (e->type != type)
            return client_fail(c, EVS_EWRONG_TYPE,
                               "entity %s is of type %s: a repository of %s cannot save it", e->id,
                               e->type->topic, type->topic);
        for (size_t j = 0; j < i; j++)
            if (strcmp(entities[j]->id, e->id) == 0)
                return client_fail(c, EVS_EINVAL, "entity %s is twice in the list", e->id);
    }
    return 0;
}

EVS_API int evs_repository_save_all(evs_repository_t *r, evs_entity_t *const *entities, size_t n) {
    if (!r) return EVS_EINVAL;
    evs_context_t *c = dom_repository_context(r);
    int rc = client_begin(c);
    if (rc) return rc;
    if ((rc = check_entities(c, dom_repository_options(r)->type, entities, n)) < 0) return rc;
    return dom_repository_save(r, entities, n);
}

EVS_API int evs_repository_save_tracked(evs_repository_t *r, evs_entity_t *const *entities,
                                        size_t n, const char *consumer, uint64_t position) {
    if (!r) return EVS_EINVAL;
    evs_context_t *c = dom_repository_context(r);
    int rc = client_begin(c);
    if (rc) return rc;
    if ((rc = check_entities(c, dom_repository_options(r)->type, entities, n)) < 0) return rc;
    if (client_check_name(c, "consumer", consumer) < 0) return c->err;
    if (position == 0)
        return client_fail(c, EVS_EINVAL, "a tracking position is at least 1 (the event's)");
    return dom_repository_save_tracked(r, entities, n, consumer, position);
}
