/* domain_unit.c: saving several entities in one atomic append (the wire's append takes events
 * of several entities in one request, all stored or none), and the repository's typed find.
 *
 * It follows evs_repository_save step by step for each entity: encode the pending events, one
 * append, then publish, free the pending events and take the snapshots that are due. */
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

static void stored_free(evs_event_t *events, size_t n) {
    for (size_t i = 0; i < n; i++)
        evs_event_clear(&events[i]);
    free(events);
}

/* Checks the list: every entity there, of a type of the registry, each once. */
static int check_entities(evs_context_t *c, const evs_registry_t *reg,
                          evs_entity_t *const *entities, size_t n, size_t *total) {
    *total = 0;
    if (n && !entities) return client_fail(c, EVS_EINVAL, "the list of entities is NULL");
    for (size_t i = 0; i < n; i++) {
        const evs_entity_t *e = entities[i];
        if (!e || !e->type || !e->id)
            return client_fail(c, EVS_EINVAL, "entity %zu of the list is NULL", i);
        if (evs_registry_entity_type(reg, e->type->topic) != e->type)
            return client_fail(c, EVS_EINVAL,
                               "entity %s: its type %s is not registered in the repository's "
                               "registry",
                               e->id, e->type->topic);
        for (size_t j = 0; j < i; j++)
            if (strcmp(entities[j]->id, e->id) == 0)
                return client_fail(c, EVS_EINVAL, "entity %s is twice in the list", e->id);
        *total += e->npending;
    }
    return 0;
}

/* After the append: snapshots of the entities that passed a multiple of every. base[i] is the
 * version of entity i before its pending events. */
static int take_snapshots(evs_context_t *c, evs_entity_t *const *entities, size_t n,
                          const uint64_t *base, uint64_t every) {
    for (size_t i = 0; i < n && every; i++) {
        evs_entity_t *e = entities[i];
        if (!e->type->snapshot || e->discarded || e->version / every <= base[i] / every) continue;
        evs_error_t err = {0};
        evs_snapshot_t *snap;
        int rc = evs_entity_snapshot(e, &snap, &err);
        if (rc < 0)
            return client_fail(c, rc, "events of %s saved, but no snapshot: %s", e->id, err.str);
        rc = evs_put_snapshot(c, snap);
        evs_snapshot_free(snap);
        if (rc < 0) {
            char why[sizeof c->errstr];
            snprintf(why, sizeof why, "%s", c->errstr);
            if (c->priv->dead) return rc;
            return client_fail(c, rc, "events of %s saved, but the snapshot failed: %s", e->id,
                               why);
        }
    }
    return 0;
}

EVS_API int evs_repository_save_all(evs_repository_t *r, evs_entity_t *const *entities, size_t n) {
    if (!r) return EVS_EINVAL;
    evs_context_t *c = dom_repository_context(r);
    const evs_repository_options_t *o = dom_repository_options(r);
    int rc = client_begin(c);
    if (rc) return rc;
    size_t total;
    if ((rc = check_entities(c, o->registry, entities, n, &total)) < 0) return rc;
    if (!total) return 0;

    evs_event_t *events = calloc(total, sizeof *events);
    uint64_t *positions = calloc(total, sizeof *positions);
    const evs_domain_event_t **all = calloc(total, sizeof *all);
    uint64_t *base = calloc(n, sizeof *base);
    if (!events || !positions || !all || !base) {
        rc = client_fail(c, EVS_ENOMEM, "out of memory saving %zu entities", n);
        goto out;
    }
    size_t k = 0;
    evs_error_t err = {0};
    for (size_t i = 0; i < n; i++) {
        evs_entity_t *e = entities[i];
        base[i] = e->npending ? e->pending[0]->version : e->version;
        for (size_t j = 0; j < e->npending; j++, k++) {
            all[k] = e->pending[j];
            if ((rc = evs_domain_event_to_stored(e->pending[j], &events[k], &err)) < 0) {
                client_fail(c, rc, "%s", err.str);
                goto out;
            }
        }
    }
    /* One request: a conflict on any entity stores none of them and keeps every pending event. */
    if ((rc = evs_append(c, events, total, positions, NULL)) < 0) goto out;
    for (size_t i = 0; i < total; i++)
        ((evs_domain_event_t *)all[i])->position = positions[i];

    if (o->publish_to && (rc = evs_pubsub_publish(o->publish_to, all, total, &err)) < 0) {
        for (size_t i = 0; i < n; i++)
            evs_entity_clear_pending(entities[i]);
        client_fail(c, rc, "events of %zu entities saved, but a subscriber failed: %s", n, err.str);
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        evs_entity_clear_pending(entities[i]);
    rc = take_snapshots(c, entities, n, base, o->snapshot_every);
out:
    if (events) stored_free(events, total);
    free(positions);
    free(all);
    free(base);
    return rc;
}
