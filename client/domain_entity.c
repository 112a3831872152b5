/* domain_entity.c: entities (the evs_entity_t base embedded in the user's struct) and the event
 * player that rebuilds them from stored events.
 *
 * Every change to an entity goes through evs_entity_apply, whether the event is new (trigger)
 * or replayed (the player): one place checks that the event is the entity's and carries its
 * next version, runs the type's apply, and advances the version. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "../proto/codec.h"
#include "domain_priv.h"

EVS_API evs_entity_t *evs_entity_new(const evs_registry_t *reg, const evs_entity_type_t *type,
                                     const char *id) {
    if (!reg || !type || type->size < sizeof(evs_entity_t) || !id ||
        !codec_valid_name(id, strlen(id)) || evs_registry_entity_type(reg, type->topic) != type)
        return NULL;
    evs_entity_t *e = calloc(1, type->size);
    if (!e) return NULL;
    if (!(e->id = strdup(id))) {
        free(e);
        return NULL;
    }
    e->type = type;
    e->registry = reg;
    return e;
}

EVS_API void evs_entity_clear_pending(evs_entity_t *e) {
    if (!e) return;
    for (size_t i = 0; i < e->npending; i++)
        evs_domain_event_free(e->pending[i]);
    free(e->pending);
    e->pending = NULL;
    e->npending = e->pending_cap = 0;
}

EVS_API void evs_entity_free(evs_entity_t *e) {
    if (!e) return;
    if (e->type && e->type->clear) e->type->clear(e);
    evs_entity_clear_pending(e);
    free(e->id);
    free(e);
}

EVS_API int evs_entity_apply(evs_entity_t *e, const evs_domain_event_t *ev, evs_error_t *err) {
    dom_ok(err);
    if (!e || !ev || !ev->type)
        return dom_fail(err, EVS_EINVAL, "applying needs an entity and a typed event");
    if (strcmp(ev->entity_id, e->id) != 0)
        return dom_fail(err, EVS_EINVAL, "an event of entity %s cannot be applied to %s",
                        ev->entity_id, e->id);
    if (ev->version != e->version)
        return dom_fail(err, EVS_EINVAL,
                        "entity %s is at version %" PRIu64 ", the event (%s) carries %" PRIu64,
                        e->id, e->version, ev->type->topic, ev->version);
    if (e->discarded)
        return dom_fail(err, EVS_EINVAL, "entity %s is discarded: it takes no more events (%s)",
                        e->id, ev->type->topic);
    if (!evs_entity_type_owns(e->type, ev->type->topic))
        return dom_fail(err, EVS_EWRONG_TYPE,
                        "%s is not an event of entity type %s (entity %s): its type does not list "
                        "it",
                        ev->type->topic, e->type->topic, e->id);
    if (ev->entity_type && ev->entity_type != e->type &&
        strcmp(ev->entity_type->topic, e->type->topic) != 0)
        return dom_fail(err, EVS_EWRONG_TYPE,
                        "the event %s at version %" PRIu64 " of %s was triggered by entity type "
                        "%s, not %s",
                        ev->type->topic, ev->version, e->id, ev->entity_type->topic,
                        e->type->topic);
    if (ev->type->apply) {
        int r = ev->type->apply(e, ev, err);
        if (r < 0) {
            if (err && !err->code)
                dom_fail(err, r, "applying %s to %s failed", ev->type->topic, e->id);
            return r;
        }
    }
    e->version++;
    if (ev->type->discards) e->discarded = true;
    return 0;
}

EVS_API int evs_entity_trigger(evs_entity_t *e, const evs_event_type_t *type, evs_value_t *attrs,
                               evs_error_t *err) {
    dom_ok(err);
    if (!e || !type) {
        evs_value_free(attrs);
        return dom_fail(err, EVS_EINVAL, "triggering needs an entity and an event type");
    }
    if (e->discarded) {
        evs_value_free(attrs);
        return dom_fail(err, EVS_EINVAL, "entity %s is discarded: it takes no more events (%s)",
                        e->id, type->topic);
    }
    if (!evs_registry_topic_of(e->registry, type)) {
        evs_value_free(attrs);
        return dom_fail(err, EVS_EINVAL, "the event type %s is not registered",
                        type->topic ? type->topic : "(no topic)");
    }
    if (!evs_entity_type_owns(e->type, type->topic)) {
        evs_value_free(attrs);
        return dom_fail(err, EVS_EWRONG_TYPE,
                        "%s is not an event of entity type %s (entity %s): its type does not list "
                        "it",
                        type->topic, e->type->topic, e->id);
    }
    if (!attrs && !(attrs = evs_map_new()))
        return dom_fail(err, EVS_ENOMEM, "out of memory for the attributes of %s", type->topic);
    if (attrs->type == EVS_VAL_MAP && type->check) {
        int r = type->check(attrs, err);
        if (r < 0) {
            evs_value_free(attrs);
            if (err && !err->code)
                dom_fail(err, r, "the attributes of %s failed their check", type->topic);
            return r;
        }
    }
    if (e->npending == e->pending_cap) {
        size_t cap = e->pending_cap ? e->pending_cap * 2 : 4;
        evs_domain_event_t **p = realloc(e->pending, cap * sizeof *p);
        if (!p) {
            evs_value_free(attrs);
            return dom_fail(err, EVS_ENOMEM, "out of memory for a pending event");
        }
        e->pending = p;
        e->pending_cap = cap;
    }
    evs_domain_event_t *ev;
    int r = evs_domain_event_new(type, e->id, e->version, attrs, &ev, err);
    if (r < 0) return r;
    ev->entity_type = e->type;
    if ((r = evs_entity_apply(e, ev, err)) < 0) {
        evs_domain_event_free(ev);
        return r;
    }
    e->pending[e->npending++] = ev;
    return 0;
}

/* ---------------------------------------------------------------- the player */

/* 0 when the stored event s belongs to e's type: its topic is one the type lists and its
 * originator_topic, when it has one, is the type's (an event stored without one, before the
 * library recorded it, is accepted on its topic alone). EVS_EWRONG_TYPE otherwise: s was
 * stored by another entity type, and its apply must never run on e's struct. */
static int check_owner(const evs_entity_t *e, const evs_event_t *s, evs_error_t *err) {
    uint32_t schema;
    char originator[EVS_NAME_MAX + 1];
    int r = dom_stored_meta(s, &schema, originator, err);
    if (r < 0) return r;
    /* A topic the registry does not know is left to evs_domain_event_from_stored to report. */
    if (!evs_entity_type_owns(e->type, s->topic) && evs_registry_event_type(e->registry, s->topic))
        return dom_fail(err, EVS_EWRONG_TYPE,
                        "entity %s: its event at version %" PRIu64 " (%s) is not an event of "
                        "entity type %s (is it read through the wrong repository?)",
                        e->id, s->version, s->topic, e->type->topic);
    if (originator[0] && strcmp(originator, e->type->topic) != 0)
        return dom_fail(err, EVS_EWRONG_TYPE,
                        "entity %s: its event at version %" PRIu64 " (%s) was stored by entity "
                        "type %s, not %s (is it read through the wrong repository?)",
                        e->id, s->version, s->topic, originator, e->type->topic);
    return 0;
}

EVS_API int evs_player_play(evs_entity_t *e, const evs_event_t *events, size_t n, uint64_t until,
                            evs_error_t *err) {
    dom_ok(err);
    if (!e || (n && !events)) return dom_fail(err, EVS_EINVAL, "playing needs an entity");
    for (size_t i = 0; i < n && e->version < until; i++) {
        const evs_event_t *s = &events[i];
        if (!s->entity_id || strcmp(s->entity_id, e->id) != 0) continue;
        if (s->version < e->version) continue; /* already in the snapshot */
        if (s->version > e->version)
            return dom_fail(err, EVS_EINVAL,
                            "entity %s: expected the event at version %" PRIu64
                            ", found version %" PRIu64 " (events missing or out of order)",
                            e->id, e->version, s->version);
        int r = check_owner(e, s, err);
        if (r < 0) return r;
        evs_domain_event_t *ev;
        r = evs_domain_event_from_stored(e->registry, s, &ev, err);
        if (r < 0) return r;
        r = evs_entity_apply(e, ev, err);
        evs_domain_event_free(ev);
        if (r < 0) return r;
    }
    return 0;
}
