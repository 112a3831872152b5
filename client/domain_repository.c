/* domain_repository.c: the event-sourced repository and the persistence subscriber, the two
 * parts of the domain layer that talk to the daemon.
 *
 * Their errors live in the context like those of every other call. A domain failure found while
 * loading (an unknown topic, a missing upcaster) is reported as EVS_EINVAL without killing the
 * context: the connection is fine, the data or the registry is not. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_priv.h"
#include "domain_priv.h"

#define PAGE 1000 /* events asked for per get-by-entity while loading */

struct evs_repository {
    evs_context_t *c;
    evs_repository_options_t o;
};

struct evs_persistence {
    evs_pubsub_t *ps;
    evs_context_t *c;
    uint64_t sub;
};

/* Sets the context's error without killing it (a domain failure, not a connection failure). */
static int repo_fail(evs_context_t *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int repo_fail(evs_context_t *c, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->errstr, sizeof c->errstr, fmt, ap);
    va_end(ap);
    c->err = code;
    return code;
}

static int repo_fail_err(evs_context_t *c, const evs_error_t *err, int code) {
    return repo_fail(c, err->code ? err->code : code, "%s", err->str[0] ? err->str : "failed");
}

EVS_API evs_repository_t *evs_repository_new(evs_context_t *c,
                                             const evs_repository_options_t *opts) {
    if (!c || !opts || !opts->registry || !opts->type) return NULL;
    evs_repository_t *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->c = c;
    r->o = *opts;
    return r;
}

EVS_API void evs_repository_free(evs_repository_t *r) {
    free(r);
}

/* ---------------------------------------------------------------- loading */

/* Rebuilds id up to (not including) the event at version until: from the newest snapshot at or
 * below until when the type can restore, then the events after it, a page at a time. */
static int load(evs_repository_t *r, const char *id, uint64_t until, evs_entity_t **out) {
    evs_context_t *c = r->c;
    *out = NULL;
    int rc = client_begin(c);
    if (rc) return rc;
    if (!id || !codec_valid_name(id, strlen(id)))
        return client_fail(c, EVS_EINVAL, "entity_id must be UTF-8 of 1 to %d bytes", EVS_NAME_MAX);
    evs_entity_t *e = evs_entity_new(r->o.registry, r->o.type, id);
    if (!e) return repo_fail(c, EVS_ENOMEM, "out of memory for entity %s", id);
    evs_error_t err = {0};
    if (r->o.type->restore) {
        evs_snapshot_t *snap = NULL;
        rc = evs_get_snapshot(c, id, until, &snap);
        if (rc == 0) {
            rc = evs_player_restore(e, snap, &err);
            evs_snapshot_free(snap);
            if (rc < 0) {
                evs_entity_free(e);
                return repo_fail_err(c, &err, rc);
            }
        } else if (rc != EVS_ENOT_FOUND) {
            evs_entity_free(e);
            return rc;
        }
    }
    for (;;) {
        if (e->version >= until) break;
        evs_events_t *list;
        if ((rc = evs_get_by_entity(c, id, e->version, PAGE, false, &list)) < 0) {
            evs_entity_free(e);
            return rc;
        }
        size_t n = list->n;
        bool truncated = list->truncated;
        rc = evs_player_play(e, list->events, n, until, &err);
        evs_events_free(list);
        if (rc < 0) {
            evs_entity_free(e);
            return repo_fail_err(c, &err, rc);
        }
        if (n == 0 || (n < PAGE && !truncated)) break;
    }
    *out = e;
    return 0;
}

EVS_API int evs_repository_get(evs_repository_t *r, const char *id, evs_entity_t **out) {
    *out = NULL;
    if (!r) return EVS_EINVAL;
    evs_entity_t *e;
    int rc = load(r, id, EVS_LATEST, &e);
    if (rc < 0) return rc;
    if (e->version == 0 || e->discarded) {
        bool discarded = e->discarded;
        evs_entity_free(e);
        return repo_fail(r->c, EVS_ENOT_FOUND,
                         discarded ? "entity %s was discarded" : "entity %s has no events", id);
    }
    *out = e;
    return 0;
}

EVS_API int evs_repository_get_at(evs_repository_t *r, const char *id, uint64_t version,
                                  evs_entity_t **out) {
    *out = NULL;
    if (!r) return EVS_EINVAL;
    if (version == 0) {
        int rc = client_begin(r->c);
        if (rc) return rc;
        return repo_fail(r->c, EVS_ENOT_FOUND,
                         "no entity exists at version 0 (before its "
                         "first event)");
    }
    evs_entity_t *e;
    int rc = load(r, id, version, &e);
    if (rc < 0) return rc;
    if (e->version != version) {
        uint64_t had = e->version;
        evs_entity_free(e);
        return repo_fail(r->c, EVS_ENOT_FOUND,
                         "entity %s never reached version %" PRIu64 " (it has %" PRIu64 " events)",
                         id, version, had);
    }
    *out = e;
    return 0;
}

EVS_API int evs_repository_contains(evs_repository_t *r, const char *id, bool *out) {
    *out = false;
    if (!r) return EVS_EINVAL;
    evs_events_t *list;
    int rc = evs_get_by_entity(r->c, id, EVS_LATEST, 1, true, &list);
    if (rc < 0) return rc;
    if (list->n) {
        const evs_event_type_t *t = evs_registry_event_type(r->o.registry, list->events[0].topic);
        *out = !(t && t->discards);
    }
    evs_events_free(list);
    return 0;
}

/* ---------------------------------------------------------------- saving */

static void stored_free(evs_event_t *events, size_t n) {
    for (size_t i = 0; i < n; i++)
        evs_event_clear(&events[i]);
    free(events);
}

EVS_API int evs_repository_save(evs_repository_t *r, evs_entity_t *e) {
    if (!r) return EVS_EINVAL;
    evs_context_t *c = r->c;
    int rc = client_begin(c);
    if (rc) return rc;
    if (!e) return client_fail(c, EVS_EINVAL, "the entity is NULL");
    size_t n = e->npending;
    if (!n) return 0;
    evs_error_t err = {0};
    evs_event_t *events = calloc(n, sizeof *events);
    uint64_t *positions = calloc(n, sizeof *positions);
    if (!events || !positions) {
        free(events);
        free(positions);
        return repo_fail(c, EVS_ENOMEM, "out of memory saving %s", e->id);
    }
    for (size_t i = 0; i < n; i++) {
        if ((rc = evs_domain_event_to_stored(e->pending[i], &events[i], &err)) < 0) {
            stored_free(events, i);
            free(positions);
            return repo_fail_err(c, &err, rc);
        }
    }
    rc = evs_append(c, events, n, positions, NULL);
    stored_free(events, n);
    if (rc < 0) {
        free(positions);
        return rc; /* a conflict leaves the store and the pending events as they were */
    }
    for (size_t i = 0; i < n; i++)
        e->pending[i]->position = positions[i];
    free(positions);

    uint64_t base = e->pending[0]->version;
    if (r->o.publish_to) {
        rc = evs_pubsub_publish(r->o.publish_to, (const evs_domain_event_t *const *)e->pending, n,
                                &err);
        if (rc < 0) {
            evs_entity_clear_pending(e);
            return repo_fail(c, rc, "events of %s saved, but a subscriber failed: %s", e->id,
                             err.str);
        }
    }
    evs_entity_clear_pending(e);
    uint64_t every = r->o.snapshot_every;
    if (every && e->type->snapshot && !e->discarded && e->version / every > base / every) {
        evs_snapshot_t *snap;
        if ((rc = evs_entity_snapshot(e, &snap, &err)) < 0)
            return repo_fail(c, rc, "events of %s saved, but no snapshot: %s", e->id, err.str);
        rc = evs_put_snapshot(c, snap);
        evs_snapshot_free(snap);
        if (rc < 0) {
            char why[sizeof c->errstr];
            snprintf(why, sizeof why, "%s", c->errstr);
            if (c->priv->dead) return rc;
            return repo_fail(c, rc, "events of %s saved, but the snapshot failed: %s", e->id, why);
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- the persistence subscriber */

static int persist_event(const evs_domain_event_t *ev, void *arg, evs_error_t *err) {
    evs_persistence_t *p = arg;
    evs_event_t stored;
    int rc = evs_domain_event_to_stored(ev, &stored, err);
    if (rc < 0) return rc;
    rc = evs_append(p->c, &stored, 1, NULL, NULL);
    evs_event_clear(&stored);
    if (rc < 0) return dom_fail(err, rc, "persisting %s: %s", ev->type->topic, p->c->errstr);
    return 0;
}

EVS_API evs_persistence_t *evs_persistence_new(evs_pubsub_t *ps, evs_context_t *c) {
    if (!ps || !c) return NULL;
    evs_persistence_t *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->ps = ps;
    p->c = c;
    if (!(p->sub = evs_pubsub_subscribe(ps, NULL, persist_event, p))) {
        free(p);
        return NULL;
    }
    return p;
}

EVS_API void evs_persistence_close(evs_persistence_t *p) {
    if (!p) return;
    evs_pubsub_unsubscribe(p->ps, p->sub);
    free(p);
}

/* ---------------------------------------------------------------- for domain_unit.c */

evs_context_t *dom_repository_context(const evs_repository_t *r) {
    return r->c;
}

const evs_repository_options_t *dom_repository_options(const evs_repository_t *r) {
    return &r->o;
}
