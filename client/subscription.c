/* subscription.c: subscribe, unsubscribe, and the per-subscription queues of pushes.
 *
 * Pushes ({"sub": SID, "events": [...]} or {"sub": SID, "caught_up": true}) may arrive at any
 * time, also while a call waits for its reply. Each is decoded into an evs_push_t at once and
 * appended to its subscription's queue, so none is lost and nothing of it points into the read
 * buffer. evs_sub_next hands them out in arrival order. */
#include <stdlib.h>
#include <string.h>

#include "client_priv.h"

static sub_queue_t *queue_find(evs_context_t *c, uint64_t sid) {
    for (sub_queue_t *q = c->priv->subs; q; q = q->next)
        if (q->sid == sid) return q;
    return NULL;
}

/* The queue of sid, created when a push comes before the subscribe reply was handled. */
static sub_queue_t *queue_get(evs_context_t *c, uint64_t sid) {
    sub_queue_t *q = queue_find(c, sid);
    if (q) return q;
    q = calloc(1, sizeof *q);
    if (!q) return NULL;
    q->sid = sid;
    q->next = c->priv->subs;
    c->priv->subs = q;
    return q;
}

static void queue_clear(sub_queue_t *q) {
    push_node_t *n = q->head;
    while (n) {
        push_node_t *next = n->next;
        evs_push_free(n->push);
        free(n);
        n = next;
    }
    q->head = q->tail = NULL;
}

void sub_queues_free(evs_context_t *c) {
    sub_queue_t *q = c->priv->subs;
    while (q) {
        sub_queue_t *next = q->next;
        queue_clear(q);
        free(q);
        q = next;
    }
    c->priv->subs = NULL;
}

EVS_API void evs_push_free(evs_push_t *p) {
    if (!p) return;
    free(p->events); /* the events and their bytes: one block (client_decode_events) */
    free(p);
}

int sub_queue_push_frame(evs_context_t *c, const msgpack_object *obj) {
    const msgpack_object *s = codec_map_get(obj, "sub");
    if (!s || s->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return client_fail(c, EVS_EPROTOCOL, "a push with a bad \"sub\"");
    sub_queue_t *q = queue_get(c, s->via.u64);
    if (!q) return client_fail(c, EVS_ENOMEM, "out of memory");
    const msgpack_object *cu = codec_map_get(obj, "caught_up");
    const msgpack_object *evs = codec_map_get(obj, "events");
    bool caught_up = cu && cu->type == MSGPACK_OBJECT_BOOLEAN && cu->via.boolean;
    if (!caught_up && !evs) return 0; /* a push of a kind this library does not know: skip */
    if (q->closed) return 0;
    evs_push_t *p = calloc(1, sizeof *p);
    push_node_t *node = calloc(1, sizeof *node);
    if (!p || !node) {
        free(p);
        free(node);
        return client_fail(c, EVS_ENOMEM, "out of memory");
    }
    p->sub = q->sid;
    p->caught_up = caught_up && !evs;
    if (evs) {
        evs_events_t *list;
        int r = client_decode_events(c, evs, &list);
        if (r < 0) {
            free(p);
            free(node);
            return r;
        }
        p->n = list->n;
        p->events = list->events;
        free(list);
    }
    node->push = p;
    node->seq = c->priv->push_seq++;
    if (q->tail)
        q->tail->next = node;
    else
        q->head = node;
    q->tail = node;
    /* A push carrying both events and caught_up becomes two, in that order. */
    if (caught_up && evs) {
        evs_push_t *m = calloc(1, sizeof *m);
        push_node_t *mn = calloc(1, sizeof *mn);
        if (!m || !mn) {
            free(m);
            free(mn);
            return client_fail(c, EVS_ENOMEM, "out of memory");
        }
        m->sub = q->sid;
        m->caught_up = true;
        mn->push = m;
        mn->seq = c->priv->push_seq++;
        q->tail->next = mn;
        q->tail = mn;
    }
    return 0;
}

/* Takes the oldest queued push of sid (0: of any open subscription), or NULL. */
static evs_push_t *queue_pop(evs_context_t *c, uint64_t sid) {
    sub_queue_t *best = NULL;
    for (sub_queue_t *q = c->priv->subs; q; q = q->next) {
        if (q->closed || !q->head || (sid && q->sid != sid)) continue;
        if (!best || q->head->seq < best->head->seq) best = q;
    }
    if (!best) return NULL;
    push_node_t *n = best->head;
    best->head = n->next;
    if (!best->head) best->tail = NULL;
    evs_push_t *p = n->push;
    free(n);
    return p;
}

EVS_API int evs_subscribe(evs_context_t *c, const evs_sub_options_t *opts, uint64_t *sub) {
    int r = client_begin(c);
    if (r) return r;
    evs_sub_options_t o = {0};
    if (opts) o = *opts;
    if (o.ntopics > CODEC_MAX_TOPICS)
        return client_fail(c, EVS_EINVAL, "at most %d topics", CODEC_MAX_TOPICS);
    for (size_t i = 0; i < o.ntopics; i++)
        if (!o.topics[i] || !codec_valid_name(o.topics[i], strlen(o.topics[i])))
            return client_fail(c, EVS_EINVAL, "topic %zu is not UTF-8 of 1 to %d bytes", i,
                               EVS_NAME_MAX);
    bool prefix = o.entity_prefix && *o.entity_prefix;
    if (prefix && (strlen(o.entity_prefix) > EVS_NAME_MAX ||
                   !codec_valid_name(o.entity_prefix, strlen(o.entity_prefix))))
        return client_fail(c, EVS_EINVAL, "entity_prefix is not UTF-8 of 1 to %d bytes",
                           EVS_NAME_MAX);
    if (o.consumer && client_check_name(c, "consumer", o.consumer) < 0) return c->err;
    if (o.standby && !o.consumer) return client_fail(c, EVS_EINVAL, "standby needs a consumer");
    msgpack_packer pk;
    uint64_t id;
    size_t start = client_request_begin(
        c, &pk, "subscribe",
        (uint32_t)o.has_after + (o.ntopics > 0) + prefix + (o.consumer != NULL) + o.standby, &id);
    if (o.consumer) {
        codec_pack_key(&pk, "consumer");
        codec_pack_cstr(&pk, o.consumer);
    }
    if (o.standby) {
        codec_pack_key(&pk, "standby");
        msgpack_pack_true(&pk);
    }
    if (o.has_after) {
        codec_pack_key(&pk, "after");
        msgpack_pack_uint64(&pk, o.after);
    }
    if (o.ntopics) {
        codec_pack_key(&pk, "topics");
        msgpack_pack_array(&pk, (uint32_t)o.ntopics);
        for (size_t i = 0; i < o.ntopics; i++)
            codec_pack_cstr(&pk, o.topics[i]);
    }
    if (prefix) {
        codec_pack_key(&pk, "entity_prefix");
        codec_pack_cstr(&pk, o.entity_prefix);
    }
    const msgpack_object *res;
    if ((r = client_request_end(c, start, id, &res)) < 0) return r;
    const msgpack_object *s = codec_map_get(res, "sub");
    if (!s || s->type != MSGPACK_OBJECT_POSITIVE_INTEGER || s->via.u64 == 0)
        return client_fail(c, EVS_EPROTOCOL, "a subscribe reply without a sub id");
    sub_queue_t *q = queue_get(c, s->via.u64);
    if (!q) return client_fail(c, EVS_ENOMEM, "out of memory");
    q->closed = false;
    const msgpack_object *after = codec_map_get(res, "after");
    q->started_after = after && after->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? after->via.u64
                       : o.has_after                                           ? o.after
                                                                               : 0;
    if (sub) *sub = s->via.u64;
    return 0;
}

EVS_API int evs_sub_started_after(const evs_context_t *c, uint64_t sub, uint64_t *after) {
    if (after) *after = 0;
    if (!c || !c->priv) return EVS_ENOT_FOUND;
    for (const sub_queue_t *q = c->priv->subs; q; q = q->next)
        if (q->sid == sub && !q->closed) {
            if (after) *after = q->started_after;
            return 0;
        }
    return EVS_ENOT_FOUND;
}

EVS_API int evs_unsubscribe(evs_context_t *c, uint64_t sub) {
    int r = client_begin(c);
    if (r) return r;
    msgpack_packer pk;
    uint64_t id;
    size_t start = client_request_begin(c, &pk, "unsubscribe", 1, &id);
    codec_pack_key(&pk, "sub");
    msgpack_pack_uint64(&pk, sub);
    const msgpack_object *res;
    r = client_request_end(c, start, id, &res);
    sub_queue_t *q = queue_find(c, sub);
    if (q && r == 0) {
        queue_clear(q);
        q->closed = true;
    }
    return r;
}

EVS_API int evs_sub_next(evs_context_t *c, uint64_t sub, int timeout_ms, evs_push_t **out) {
    *out = NULL;
    int r = client_begin(c);
    if (r) return r;
    if (sub) {
        sub_queue_t *q = queue_find(c, sub);
        if (!q || q->closed)
            return client_fail(c, EVS_EINVAL, "no subscription %llu on this connection",
                               (unsigned long long)sub);
    }
    if ((*out = queue_pop(c, sub))) return 0;
    int64_t deadline = client_deadline(timeout_ms);
    for (;;) {
        r = client_wait_frame(c, deadline, true);
        if (r == WAIT_TIMEOUT || r == WAIT_INTERRUPTED) return 0;
        if (r < 0) return r;
        const msgpack_object *obj = &c->priv->frame.data;
        if (codec_map_get(obj, "id") || !codec_map_get(obj, "sub"))
            return client_fail(c, EVS_EPROTOCOL, "a reply while no request was in flight");
        if ((r = sub_queue_push_frame(c, obj)) < 0) return r;
        client_frame_release(c);
        if ((*out = queue_pop(c, sub))) return 0;
    }
}
