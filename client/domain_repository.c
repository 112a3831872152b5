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
    /* Events stored but not yet published to every subscriber of o.publish_to, oldest first. */
    evs_domain_event_t **unpublished;
    size_t nunpublished, unpublished_cap;
};

struct evs_persistence {
    evs_pubsub_t *ps;
    evs_context_t *c;
    uint64_t sub;
    /* The publication whose events from its current one to batch_end are stored already. */
    uint64_t batch_id;
    size_t batch_end;
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
    if (!r) return;
    for (size_t i = 0; i < r->nunpublished; i++)
        evs_domain_event_free(r->unpublished[i]);
    free(r->unpublished);
    free(r);
}

EVS_API int evs_repository_set_conn(evs_repository_t *r, evs_context_t *c) {
    if (!r || !c) return EVS_EINVAL;
    r->c = c;
    return 0;
}

/* Tells the repository's on_warning, if any, a printf-style sentence. */
static void repo_warn(const evs_repository_t *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void repo_warn(const evs_repository_t *r, const char *fmt, ...) {
    if (!r->o.on_warning) return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    r->o.on_warning(msg, r->o.warning_arg);
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
    if (evs_registry_entity_type(r->o.registry, r->o.type->topic) != r->o.type)
        return repo_fail(c, EVS_EINVAL, "the entity type %s is not registered in the registry",
                         r->o.type->topic);
    evs_entity_t *e = evs_entity_new(r->o.registry, r->o.type, id);
    if (!e) return repo_fail(c, EVS_ENOMEM, "out of memory for entity %s", id);
    evs_error_t err = {0};
    if (r->o.type->restore) {
        evs_snapshot_t *snap = NULL;
        rc = evs_get_snapshot(c, id, until, &snap);
        if (rc == 0) {
            rc = evs_player_restore(e, snap, &err);
            uint64_t at = snap->version;
            evs_snapshot_free(snap);
            if (rc == EVS_EWRONG_TYPE || rc == EVS_ENOMEM) {
                evs_entity_free(e);
                return repo_fail_err(c, &err, rc);
            }
            if (rc < 0) {
                /* The snapshot is only a shortcut: the events say everything it said. restore
                 * may have set fields before it failed, so replay into a fresh entity. */
                repo_warn(r,
                          "entity %s: its snapshot at version %" PRIu64
                          " cannot be used (%s: %s); rebuilt from its events",
                          id, at, evs_code_name(rc), err.str);
                evs_entity_free(e);
                if (!(e = evs_entity_new(r->o.registry, r->o.type, id)))
                    return repo_fail(c, EVS_ENOMEM, "out of memory for entity %s", id);
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

/* Rewrites a conflict of the append of the pending events of entities[0..n) (entity i's
 * started at version base[i]) in the domain layer's versions: the wire's current_version is the
 * index of the entity's last event, the domain's version the number of its events. */
static int conflict_in_entity_versions(evs_context_t *c, evs_entity_t *const *entities, size_t n,
                                       const uint64_t *base) {
    evs_error_detail_t *d = &c->detail;
    size_t i = 0;
    while (i < n && !(d->has_entity_id && strcmp(d->entity_id, entities[i]->id) == 0))
        i++;
    if (i == n && n == 1) i = 0;
    if (!d->has_current_version || i == n) return EVS_ECONFLICT;
    d->current_version = d->current_version < 0 ? 0 : d->current_version + 1;
    d->has_version = true;
    d->version = base[i];
    return repo_fail(c, EVS_ECONFLICT,
                     "entity %s is at version %" PRId64 ", but this save expected it at version "
                     "%" PRIu64 " (another writer saved it since it was loaded): load it again "
                     "and retry the command",
                     entities[i]->id, d->current_version, base[i]);
}

/* Fills the timestamps of the events of q[0..n) that have none, from the daemon (the append
 * reply carries positions only): one read per run of consecutive versions of one entity. */
static int fill_timestamps(evs_repository_t *r, evs_domain_event_t **q, size_t n) {
    for (size_t i = 0; i < n;) {
        if (q[i]->timestamp) {
            i++;
            continue;
        }
        size_t j = i + 1;
        while (j < n && j - i < PAGE && !q[j]->timestamp &&
               strcmp(q[j]->entity_id, q[i]->entity_id) == 0 &&
               q[j]->version == q[j - 1]->version + 1)
            j++;
        evs_events_t *list;
        int rc = evs_get_by_entity(r->c, q[i]->entity_id, q[i]->version, (uint32_t)(j - i), false,
                                   &list);
        if (rc < 0) return rc;
        for (size_t k = 0; k < list->n; k++) {
            const evs_event_t *s = &list->events[k];
            for (size_t m = i; m < j; m++)
                if (q[m]->version == s->version && memcmp(q[m]->event_id, s->event_id, 16) == 0)
                    q[m]->timestamp = s->timestamp;
        }
        evs_events_free(list);
        i = j;
    }
    return 0;
}

/* Publishes the kept events to publish_to in order, each once, dropping each when every
 * handler took it. 0, or EVS_ESTORED_NOT_PUBLISHED (in the context) when a handler failed or
 * the timestamps could not be read: the events from that one on stay kept. */
static int publish_kept(evs_repository_t *r) {
    evs_context_t *c = r->c;
    size_t n = r->nunpublished, done = 0;
    evs_error_t err = {0};
    int rc = fill_timestamps(r, r->unpublished, n);
    if (rc < 0) {
        if (c->priv->dead) return rc; /* a dead context keeps its own error */
        char why[sizeof c->errstr];
        snprintf(why, sizeof why, "%s", c->errstr);
        return repo_fail(c, EVS_ESTORED_NOT_PUBLISHED,
                         "%zu events are stored but not published: reading their timestamps "
                         "failed (%s); they are kept and published again by the next save or "
                         "evs_repository_publish_pending",
                         n, why);
    }
    for (; done < n; done++) {
        const evs_domain_event_t *ev = r->unpublished[done];
        if ((rc = evs_pubsub_publish(r->o.publish_to, &ev, 1, &err)) < 0) break;
        evs_domain_event_free(r->unpublished[done]);
    }
    memmove(r->unpublished, r->unpublished + done, (n - done) * sizeof *r->unpublished);
    r->nunpublished = n - done;
    if (done == n) return 0;
    const evs_domain_event_t *ev = r->unpublished[0];
    return repo_fail(c, EVS_ESTORED_NOT_PUBLISHED,
                     "the events are stored, but a subscriber failed on %s (version %" PRIu64
                     " of %s): %s; the %zu events not published are kept and published again by "
                     "the next save or evs_repository_publish_pending",
                     ev->type->topic, ev->version, ev->entity_id, err.str, r->nunpublished);
}

EVS_API int evs_repository_publish_pending(evs_repository_t *r) {
    if (!r) return EVS_EINVAL;
    int rc = client_begin(r->c);
    if (rc) return rc;
    if (!r->nunpublished || !r->o.publish_to) return 0;
    return publish_kept(r);
}

EVS_API size_t evs_repository_unpublished(const evs_repository_t *r,
                                          const evs_domain_event_t *const **events) {
    if (events) *events = NULL;
    if (!r) return 0;
    if (events) *events = (const evs_domain_event_t *const *)r->unpublished;
    return r->nunpublished;
}

/* Takes the snapshots that are due after a save: of the entities of entities[0..n) that passed
 * a multiple of snapshot_every (entity i was at version base[i] before it). The events are
 * stored by then, so a snapshot that cannot be made or stored does not make the save fail (a
 * caller that took it for failed would run its command again): it is told to on_warning, and
 * the next due snapshot, or a load that replays the events, makes up for it. */
static void take_snapshots(evs_repository_t *r, evs_entity_t *const *entities, size_t n,
                           const uint64_t *base) {
    evs_context_t *c = r->c;
    uint64_t every = r->o.snapshot_every;
    for (size_t i = 0; i < n && every && !c->priv->dead; i++) {
        evs_entity_t *e = entities[i];
        if (!e->type->snapshot || e->discarded || e->version / every <= base[i] / every) continue;
        evs_error_t err = {0};
        evs_snapshot_t *snap;
        int rc = evs_entity_snapshot(e, &snap, &err);
        if (rc < 0) {
            repo_warn(r, "events of %s saved, but no snapshot: %s", e->id, err.str);
            continue;
        }
        rc = evs_put_snapshot(c, snap);
        evs_snapshot_free(snap);
        if (rc < 0)
            repo_warn(r, "events of %s saved, but the snapshot failed: %s", e->id, c->errstr);
    }
}

/* Encodes the pending events of entities[0..n) into events (zeroed, one slot per event; the
 * caller clears them in any case), noting in base[i] the version entity i was at before its
 * pending events. */
static int encode_pending(evs_context_t *c, evs_entity_t *const *entities, size_t n,
                          evs_event_t *events, uint64_t *base) {
    evs_error_t err = {0};
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const evs_entity_t *e = entities[i];
        base[i] = e->npending ? e->pending[0]->version : e->version;
        for (size_t j = 0; j < e->npending; j++, k++) {
            int rc = evs_domain_event_to_stored(e->pending[j], &events[k], &err);
            if (rc < 0) return repo_fail_err(c, &err, rc);
        }
    }
    return 0;
}

/* A tracked append refused because the consumer had processed position already. */
static int already_processed(evs_context_t *c, const char *consumer, uint64_t position) {
    return repo_fail(c, EVS_EALREADY_PROCESSED,
                     "consumer %s has processed position %" PRIu64 " already (its checkpoint "
                     "is at or past it): nothing was stored",
                     consumer, position);
}

int dom_repository_save(evs_repository_t *r, evs_entity_t *const *entities, size_t n) {
    return dom_repository_save_tracked(r, entities, n, NULL, 0);
}

int dom_repository_save_tracked(evs_repository_t *r, evs_entity_t *const *entities, size_t n,
                                const char *consumer, uint64_t position) {
    evs_context_t *c = r->c;
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += entities[i]->npending;
    if (!total && consumer) {
        /* Nothing to store but the checkpoint: the event caused nothing. */
        int rc = evs_append_tracked(c, NULL, 0, consumer, position, NULL, NULL);
        if (rc == EVS_ECONFLICT && c->detail.tracking)
            return already_processed(c, consumer, position);
        return rc;
    }
    if (!total) return 0;
    if (r->o.publish_to && r->unpublished_cap - r->nunpublished < total) {
        /* Room to keep the events unpublished, made before anything is stored. */
        size_t cap = r->nunpublished + total;
        evs_domain_event_t **q = realloc(r->unpublished, cap * sizeof *q);
        if (!q) return repo_fail(c, EVS_ENOMEM, "out of memory saving %s", entities[0]->id);
        r->unpublished = q;
        r->unpublished_cap = cap;
    }
    evs_event_t *events = calloc(total, sizeof *events);
    uint64_t *positions = calloc(total, sizeof *positions);
    uint64_t *base = calloc(n, sizeof *base);
    int rc = events && positions && base
                 ? encode_pending(c, entities, n, events, base)
                 : repo_fail(c, EVS_ENOMEM, "out of memory saving %s", entities[0]->id);
    if (rc < 0) {
        if (events) stored_free(events, total);
        free(positions);
        free(base);
        return rc;
    }
    /* One request: a conflict on any entity stores none of them and keeps every pending event. */
    rc = consumer ? evs_append_tracked(c, events, total, consumer, position, positions, NULL)
                  : evs_append(c, events, total, positions, NULL);
    stored_free(events, total);
    if (rc < 0) {
        free(positions);
        if (rc == EVS_ECONFLICT && consumer && c->detail.tracking)
            rc = already_processed(c, consumer, position);
        else if (rc == EVS_ECONFLICT)
            rc = conflict_in_entity_versions(c, entities, n, base);
        free(base);
        return rc;
    }
    for (size_t i = 0, k = 0; i < n; i++)
        for (size_t j = 0; j < entities[i]->npending; j++)
            entities[i]->pending[j]->position = positions[k++];
    free(positions);

    int published = 0;
    if (r->o.publish_to) {
        /* The pending events move to the kept ones, which publish_kept drops as they go. */
        for (size_t i = 0; i < n; i++) {
            evs_entity_t *e = entities[i];
            if (!e->npending) continue;
            memcpy(r->unpublished + r->nunpublished, e->pending, e->npending * sizeof *e->pending);
            r->nunpublished += e->npending;
            e->npending = 0;
        }
        published = publish_kept(r);
        if (published < 0 && c->priv->dead) {
            free(base);
            return published;
        }
    }
    for (size_t i = 0; i < n; i++)
        evs_entity_clear_pending(entities[i]);
    char unpublished_why[sizeof c->errstr];
    snprintf(unpublished_why, sizeof unpublished_why, "%s", c->errstr);
    take_snapshots(r, entities, n, base);
    free(base);
    if (published < 0) return repo_fail(c, published, "%s", unpublished_why);
    if (!c->priv->dead) c->err = 0; /* a failed snapshot is only a warning */
    return 0;
}

EVS_API int evs_repository_save(evs_repository_t *r, evs_entity_t *e) {
    if (!r) return EVS_EINVAL;
    evs_context_t *c = r->c;
    int rc = client_begin(c);
    if (rc) return rc;
    if (!e) return client_fail(c, EVS_EINVAL, "the entity is NULL");
    if (e->type != r->o.type)
        return repo_fail(c, EVS_EWRONG_TYPE,
                         "entity %s is of type %s: a repository of %s cannot save it", e->id,
                         e->type ? e->type->topic : "(none)", r->o.type->topic);
    return dom_repository_save(r, &e, 1);
}

EVS_API int evs_repository_delete_snapshots(evs_repository_t *r, const char *id,
                                            uint64_t *deleted) {
    if (deleted) *deleted = 0;
    if (!r) return EVS_EINVAL;
    return evs_delete_snapshots(r->c, id, deleted);
}

/* ---------------------------------------------------------------- the persistence subscriber */

/* Stores the publication's events from ev (the one being published) to its end in one append,
 * so that a publication is stored whole or not at all; the later events of the same
 * publication are then already stored. */
static int persist_event(const evs_domain_event_t *ev, void *arg, evs_error_t *err) {
    evs_persistence_t *p = arg;
    uint64_t id;
    const evs_domain_event_t *const *batch;
    size_t n, i;
    dom_pubsub_batch(p->ps, &id, &batch, &n, &i);
    if (!batch || i >= n || batch[i] != ev) { /* not published by evs_pubsub_publish */
        batch = &ev;
        n = 1;
        i = 0;
        id = 0;
    }
    if (id && id == p->batch_id && i < p->batch_end) return 0;
    size_t count = n - i;
    evs_event_t *stored = calloc(count, sizeof *stored);
    if (!stored) return dom_fail(err, EVS_ENOMEM, "out of memory persisting %s", ev->type->topic);
    int rc = 0;
    size_t made = 0;
    for (; made < count; made++)
        if ((rc = evs_domain_event_to_stored(batch[i + made], &stored[made], err)) < 0) break;
    if (rc == 0) rc = evs_append(p->c, stored, count, NULL, NULL);
    for (size_t k = 0; k < made; k++)
        evs_event_clear(&stored[k]);
    free(stored);
    if (rc < 0) {
        if (err && err->code) return rc;
        return dom_fail(err, rc,
                        "persisting %s at version %" PRIu64 " of %s (with the rest of its "
                        "publication, %zu events; none stored): %s",
                        ev->type->topic, ev->version, ev->entity_id, count, p->c->errstr);
    }
    p->batch_id = id;
    p->batch_end = n;
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
