/* domain_subscription.c: a daemon subscription that hands out domain events.
 *
 * It is a stream (resuming_subscription.c: its own connection, reconnecting and resuming after
 * the last event handed out) whose stored events go through evs_domain_event_from_stored (the
 * registry, the upcasters, the type's check) and, for an event type with a field table, through
 * a decode of its attributes, so that a handler sees exactly what an in-process publication of
 * the same event would give it (ev->entity_type included, from the stored originator_topic). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain_priv.h"

struct evs_domain_subscription {
    evs_stream_t *stream;
    const evs_registry_t *reg;
    bool skip_unknown;
};

EVS_API evs_domain_subscription_t *
evs_domain_subscribe(const evs_domain_subscription_options_t *opts) {
    if (!opts || !opts->registry) return NULL;
    evs_domain_subscription_t *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    if (!(s->stream = evs_stream_open(&opts->stream))) {
        free(s);
        return NULL;
    }
    s->reg = opts->registry;
    s->skip_unknown = opts->skip_unknown;
    return s;
}

EVS_API void evs_domain_subscription_close(evs_domain_subscription_t *s) {
    if (!s) return;
    evs_stream_close(s->stream);
    free(s);
}

EVS_API evs_stream_t *evs_domain_subscription_stream(evs_domain_subscription_t *s) {
    return s ? s->stream : NULL;
}

/* ev belongs to the entity type that triggered it (ev->entity_type, from its originator_topic,
 * when the registry knows that type): an event whose originator does not list its topic is
 * EVS_EWRONG_TYPE, as the player refuses it (an entity of that type never replays it). */
static int check_owner(const evs_domain_event_t *ev, evs_error_t *err) {
    if (!ev->entity_type || evs_entity_type_owns(ev->entity_type, ev->type->topic)) return 0;
    return dom_fail(err, EVS_EWRONG_TYPE,
                    "the event %s at version %" PRIu64 " of %s was stored by entity type %s, "
                    "which does not list it",
                    ev->type->topic, ev->version, ev->entity_id, ev->entity_type->topic);
}

/* The attributes of ev decode with its type's field table (when it has one). */
static int check_fields(const evs_domain_event_t *ev, evs_error_t *err) {
    const evs_event_type_t *t = ev->type;
    if (!t->fields || !t->attrs_size) return 0;
    void *scratch = calloc(1, t->attrs_size);
    if (!scratch) return dom_fail(err, EVS_ENOMEM, "out of memory");
    int r = evs_fields_decode(t->fields, ev->attrs, scratch, err);
    free(scratch);
    if (r < 0) {
        char why[sizeof err->str];
        snprintf(why, sizeof why, "%s", err ? err->str : "");
        return dom_fail(err, r, "%s of %s: %s", t->topic, ev->entity_id, why);
    }
    return 0;
}

EVS_API int evs_domain_subscription_next(evs_domain_subscription_t *s, int timeout_ms,
                                         evs_domain_event_t **out, evs_error_t *err) {
    *out = NULL;
    dom_ok(err);
    if (!s) return dom_fail(err, EVS_EINVAL, "no subscription");
    for (;;) {
        evs_event_t *stored;
        int r = evs_stream_next(s->stream, timeout_ms, &stored);
        if (r < 0)
            return dom_fail(err, r, "the subscription's stream failed: %s",
                            evs_stream_errstr(s->stream));
        if (!stored) return 0;
        r = dom_event_from_feed(s->reg, s->skip_unknown, stored, out, err);
        evs_event_free(stored);
        if (r < 0 || *out) return r;
    }
}

int dom_event_from_feed(const evs_registry_t *reg, bool skip_unknown, const evs_event_t *stored,
                        evs_domain_event_t **out, evs_error_t *err) {
    *out = NULL;
    if (skip_unknown && !evs_registry_event_type(reg, stored->topic)) return 0;
    evs_domain_event_t *ev;
    int r = evs_domain_event_from_stored(reg, stored, &ev, err);
    if (r < 0) return r;
    if ((r = check_owner(ev, err)) < 0 || (r = check_fields(ev, err)) < 0) {
        evs_domain_event_free(ev);
        return r;
    }
    *out = ev;
    return 0;
}

EVS_API int evs_domain_subscription_dispatch(evs_domain_subscription_t *s, int timeout_ms,
                                             evs_predicate_fn predicate, evs_handler_fn handler,
                                             void *arg, evs_error_t *err) {
    dom_ok(err);
    if (!handler) return dom_fail(err, EVS_EINVAL, "dispatching needs a handler");
    int handed = 0;
    for (int wait = timeout_ms;; wait = 0) {
        evs_domain_event_t *ev;
        int r = evs_domain_subscription_next(s, wait, &ev, err);
        if (r < 0) return r;
        if (!ev) return handed;
        if (!predicate || predicate(ev, arg)) {
            r = handler(ev, arg, err);
            if (r < 0) {
                if (err && !err->code)
                    dom_fail(err, r, "a handler failed on %s of %s", ev->type->topic,
                             ev->entity_id);
                evs_domain_event_free(ev);
                return r;
            }
            if (handed < INT32_MAX) handed++;
        }
        evs_domain_event_free(ev);
    }
}
