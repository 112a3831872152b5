/* domain_pubsub.c: in-process publish-subscribe of domain events.
 *
 * Subscriptions are an array in subscription order. A handler is its function and its arg: when
 * several subscriptions of one handler match an event, it is called once, at the place of the
 * first. Handlers may subscribe and unsubscribe while a publication runs: an unsubscribed entry
 * is only marked dead and is removed when the outermost publication ends, so indexes stay
 * valid; entries added meanwhile are beyond the count the current event looks at. */
#include <stdlib.h>
#include <string.h>

#include "domain_priv.h"

typedef struct ps_sub {
    uint64_t id;
    evs_predicate_fn predicate;
    evs_handler_fn handler;
    void *arg;
    bool dead;
} ps_sub_t;

struct evs_pubsub {
    ps_sub_t *subs;
    size_t n, cap;
    uint64_t next_id;
    int depth; /* publications running (a handler may publish) */
    /* The innermost publication running: its id, its events and the one being published. */
    uint64_t batch_id, last_batch_id;
    const evs_domain_event_t *const *batch;
    size_t batch_n, batch_i;
};

void dom_pubsub_batch(const evs_pubsub_t *ps, uint64_t *id,
                      const evs_domain_event_t *const **events, size_t *n, size_t *i) {
    *id = ps->batch_id;
    *events = ps->batch;
    *n = ps->batch_n;
    *i = ps->batch_i;
}

EVS_API evs_pubsub_t *evs_pubsub_new(void) {
    evs_pubsub_t *ps = calloc(1, sizeof *ps);
    if (ps) ps->next_id = 1;
    return ps;
}

EVS_API void evs_pubsub_free(evs_pubsub_t *ps) {
    if (!ps) return;
    free(ps->subs);
    free(ps);
}

EVS_API uint64_t evs_pubsub_subscribe(evs_pubsub_t *ps, evs_predicate_fn predicate,
                                      evs_handler_fn handler, void *arg) {
    if (!ps || !handler) return 0;
    if (ps->n == ps->cap) {
        size_t cap = ps->cap ? ps->cap * 2 : 8;
        ps_sub_t *s = realloc(ps->subs, cap * sizeof *s);
        if (!s) return 0;
        ps->subs = s;
        ps->cap = cap;
    }
    ps_sub_t *s = &ps->subs[ps->n++];
    *s = (ps_sub_t){.id = ps->next_id++, .predicate = predicate, .handler = handler, .arg = arg};
    return s->id;
}

static void compact(evs_pubsub_t *ps) {
    size_t k = 0;
    for (size_t i = 0; i < ps->n; i++)
        if (!ps->subs[i].dead) ps->subs[k++] = ps->subs[i];
    ps->n = k;
}

EVS_API int evs_pubsub_unsubscribe(evs_pubsub_t *ps, uint64_t id) {
    if (!ps || !id) return EVS_ENOT_FOUND;
    for (size_t i = 0; i < ps->n; i++) {
        if (ps->subs[i].id != id || ps->subs[i].dead) continue;
        ps->subs[i].dead = true;
        if (ps->depth == 0) compact(ps);
        return 0;
    }
    return EVS_ENOT_FOUND;
}

/* Calls each distinct handler whose subscriptions match ev once; the first failure ends it. */
static int publish_one(evs_pubsub_t *ps, const evs_domain_event_t *ev, evs_error_t *err) {
    size_t n = ps->n;
    if (!n) return 0;
    bool *called = calloc(n, sizeof *called);
    if (!called) return dom_fail(err, EVS_ENOMEM, "out of memory publishing an event");
    int r = 0;
    for (size_t i = 0; i < n && r == 0; i++) {
        ps_sub_t s = ps->subs[i]; /* a copy: handlers may grow the array */
        if (s.dead || (s.predicate && !s.predicate(ev, s.arg))) continue;
        bool dup = false;
        for (size_t j = 0; j < i && !dup; j++)
            dup = called[j] && ps->subs[j].handler == s.handler && ps->subs[j].arg == s.arg;
        if (dup) continue;
        called[i] = true;
        r = s.handler(ev, s.arg, err);
        if (r < 0 && err && !err->code)
            dom_fail(err, r, "a handler failed on %s (%s)", ev->entity_id,
                     ev->type ? ev->type->topic : "?");
    }
    free(called);
    return r;
}

EVS_API int evs_pubsub_publish(evs_pubsub_t *ps, const evs_domain_event_t *const *events, size_t n,
                               evs_error_t *err) {
    dom_ok(err);
    if (!ps || (n && !events)) return dom_fail(err, EVS_EINVAL, "publishing needs a pubsub");
    int r = 0;
    uint64_t outer_id = ps->batch_id;
    const evs_domain_event_t *const *outer = ps->batch;
    size_t outer_n = ps->batch_n, outer_i = ps->batch_i;
    ps->batch_id = ++ps->last_batch_id;
    ps->batch = events;
    ps->batch_n = n;
    ps->depth++;
    for (size_t i = 0; i < n && r == 0; i++) {
        ps->batch_i = i;
        r = publish_one(ps, events[i], err);
    }
    if (--ps->depth == 0) compact(ps);
    ps->batch_id = outer_id;
    ps->batch = outer;
    ps->batch_n = outer_n;
    ps->batch_i = outer_i;
    return r;
}
