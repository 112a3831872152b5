/* store_memory.c: the in-memory store.
 *
 * The global log is one array of events in position order; an event's position is its index
 * plus one, so "after P" is an index and never a search. Deleted events stay in the array as
 * tombstones (entity_id NULL) so that positions keep their meaning and are never reused. Three
 * hash indexes (uthash) point into the array: entity -> its events in version order, topic -> its
 * events in position order, event id -> the event. Every operation completes before it returns,
 * so the callbacks run synchronously.
 *
 * The store counts the bytes it allocates for events, indexes and snapshots (m->bytes: what it
 * asks malloc for, without the allocator's own overhead or uthash's bucket arrays). Past
 * base.memory_limit, appends and put-snapshot fail with EVS_ELIMIT_EXCEEDED before changing
 * anything; reads and deletes go on, and a delete gives its bytes back. */
#include "store_memory.h"

#include "checkpoint_table.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uthash.h>

/* A growable array of indexes into the log. */
typedef struct idx_list {
    size_t *v;
    size_t n, cap;
} idx_list_t;

typedef struct entity_node {
    char *id;
    idx_list_t events; /* events[version] */
    UT_hash_handle hh;
} entity_node_t;

typedef struct topic_node {
    char *topic;
    idx_list_t events; /* increasing positions; may hold tombstones */
    UT_hash_handle hh;
} topic_node_t;

typedef struct id_node {
    uint8_t id[16];
    size_t index;
    UT_hash_handle hh;
} id_node_t;

typedef struct snap {
    uint64_t version;
    char *topic;
    uint8_t *payload;
    size_t payload_len;
    int64_t timestamp;
} snap_t;

/* An entity's snapshots, in increasing version order. */
typedef struct snap_node {
    char *entity_id;
    snap_t *v;
    size_t n, cap;
    UT_hash_handle hh;
} snap_node_t;

typedef struct store_memory {
    store_t base;
    snap_node_t *snaps;
    evs_event_t *log;
    size_t len, cap;
    entity_node_t *entities;
    topic_node_t *topics;
    id_node_t *ids;
    size_t bytes; /* allocated for events, indexes and snapshots */
    cpt_table_t checkpoints;
    cpt_table_t leases; /* position: the fencing number */
} store_memory_t;

static int idx_push(store_memory_t *m, idx_list_t *l, size_t i) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4;
        size_t *v = realloc(l->v, cap * sizeof *v);
        if (!v) return -1;
        m->bytes += (cap - l->cap) * sizeof *v;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = i;
    return 0;
}

static entity_node_t *find_entity(store_memory_t *m, const char *id) {
    entity_node_t *e;
    HASH_FIND_STR(m->entities, id, e);
    return e;
}

static id_node_t *find_id(store_memory_t *m, const uint8_t id[16]) {
    id_node_t *n;
    HASH_FIND(hh, m->ids, id, 16, n);
    return n;
}

/* ---------------------------------------------------------------- append */

/* What one append call has planned for one entity so far: the next version it will take. */
typedef struct plan_node {
    const char *id;
    uint64_t next;
    UT_hash_handle hh;
} plan_node_t;

typedef struct plan_id {
    const uint8_t *id;
    UT_hash_handle hh;
} plan_id_t;

/* The idempotent-retry rule: true (with positions and versions filled) when every event's id is
 * already stored at the same entity and, when given, the same version. */
static bool is_retry(store_memory_t *m, const evs_event_t *evs, size_t n, uint64_t *pos,
                     uint64_t *ver) {
    /* An id the server drew for this request cannot be stored yet. */
    for (size_t i = 0; i < n; i++)
        if (!evs[i].has_event_id) return false;
    for (size_t i = 0; i < n; i++) {
        id_node_t *f = find_id(m, evs[i].event_id);
        if (!f) return false;
        const evs_event_t *old = &m->log[f->index];
        if (strcmp(old->entity_id, evs[i].entity_id) != 0) return false;
        if (evs[i].has_version && evs[i].version != old->version) return false;
        pos[i] = old->position;
        ver[i] = old->version;
    }
    return store_positions_distinct(pos, n);
}

/* Checks the whole call before changing anything, so that a failure leaves the store as it was:
 * versions (counting earlier events of the same call) and event ids (stored or repeated within
 * the call). Fills versions. */
/* plan_append for the common append of one event: no per-request tables. *entity is the
 * entity's node (NULL when it is new), for commit_event. */
static int plan_one(store_memory_t *m, const evs_event_t *ev, uint64_t *ver, entity_node_t **entity,
                    codec_error_t *err) {
    entity_node_t *e = find_entity(m, ev->entity_id);
    uint64_t next = e ? e->events.n : 0;
    *entity = e;
    if (ev->has_version && ev->version != next) {
        store_conflict_version(err, ev->entity_id, ev->version, next);
        return EVS_ECONFLICT;
    }
    if (ev->has_event_id && find_id(m, ev->event_id)) {
        store_conflict_event_id(err, ev->event_id);
        return EVS_ECONFLICT;
    }
    *ver = next;
    return 0;
}

static int plan_append(store_memory_t *m, const evs_event_t *evs, size_t n, uint64_t *ver,
                       codec_error_t *err) {
    plan_node_t *plans = NULL, *p, *tmp;
    plan_id_t *ids = NULL, *pi, *tmpi;
    plan_node_t *pnodes = calloc(n, sizeof *pnodes);
    plan_id_t *inodes = calloc(n, sizeof *inodes);
    int rc = 0;
    if (!pnodes || !inodes) {
        rc = codec_error_set(err, EVS_EINTERNAL, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        const evs_event_t *ev = &evs[i];
        HASH_FIND_STR(plans, ev->entity_id, p);
        if (!p) {
            entity_node_t *e = find_entity(m, ev->entity_id);
            p = &pnodes[i];
            p->id = ev->entity_id;
            p->next = e ? e->events.n : 0;
            HASH_ADD_KEYPTR(hh, plans, p->id, strlen(p->id), p);
        }
        if (ev->has_version && ev->version != p->next) {
            store_conflict_version(err, ev->entity_id, ev->version, p->next);
            rc = EVS_ECONFLICT;
            break;
        }
        ver[i] = p->next++;
        if (!ev->has_event_id) continue; /* drawn by the server: 122 random bits, no check */
        HASH_FIND(hh, ids, ev->event_id, 16, pi);
        if (pi || find_id(m, ev->event_id)) {
            store_conflict_event_id(err, ev->event_id);
            rc = EVS_ECONFLICT;
            break;
        }
        pi = &inodes[i];
        pi->id = ev->event_id;
        HASH_ADD_KEYPTR(hh, ids, pi->id, 16, pi);
    }
done:
    HASH_ITER(hh, plans, p, tmp) HASH_DEL(plans, p);
    HASH_ITER(hh, ids, pi, tmpi) HASH_DEL(ids, pi);
    free(pnodes);
    free(inodes);
    return rc;
}

/* Stores one planned event at the end of the log and indexes it. Memory failures here would
 * leave a half-written append, so the caller reserved the log first and index growth failing is
 * fatal (the in-memory store has nowhere to roll back to). */
static void commit_event(store_memory_t *m, const evs_event_t *src, uint64_t version, int64_t ts,
                         entity_node_t *e) {
    size_t index = m->len;
    evs_event_t *ev = &m->log[index];
    if (evs_event_dup(ev, src) != 0) abort();
    m->bytes += codec_event_bytes(ev) + sizeof(id_node_t);
    ev->version = version;
    ev->position = index + 1;
    ev->timestamp = ts;
    ev->has_event_id = ev->has_version = 1;
    m->len++;

    if (!e) e = find_entity(m, ev->entity_id);
    if (!e) {
        if (!(e = calloc(1, sizeof *e)) || !(e->id = strdup(ev->entity_id))) abort();
        m->bytes += sizeof *e + strlen(e->id) + 1;
        HASH_ADD_KEYPTR(hh, m->entities, e->id, strlen(e->id), e);
    }
    topic_node_t *t;
    HASH_FIND_STR(m->topics, ev->topic, t);
    if (!t) {
        if (!(t = calloc(1, sizeof *t)) || !(t->topic = strdup(ev->topic))) abort();
        m->bytes += sizeof *t + strlen(t->topic) + 1;
        HASH_ADD_KEYPTR(hh, m->topics, t->topic, strlen(t->topic), t);
    }
    id_node_t *in = malloc(sizeof *in);
    if (!in || idx_push(m, &e->events, index) || idx_push(m, &t->events, index)) abort();
    memcpy(in->id, ev->event_id, 16);
    in->index = index;
    HASH_ADD(hh, m->ids, id, 16, in);
}

/* Fills err with EVS_ELIMIT_EXCEEDED and returns true when adding about more bytes would take
 * the store past its memory_limit. */
static bool over_limit(const store_memory_t *m, size_t more, codec_error_t *err) {
    size_t limit = m->base.memory_limit;
    size_t held = m->bytes + m->checkpoints.bytes + m->leases.bytes;
    if (!limit || (held <= limit && more <= limit - held)) return false;
    codec_error_set(err, EVS_ELIMIT_EXCEEDED,
                    "the in-memory store holds %zu bytes of its memory_limit of %zu bytes and "
                    "this needs %zu more: delete entities, or ask the operator to raise "
                    "memory_limit (or to use PostgreSQL)",
                    held, limit, more);
    return true;
}

/* The bytes n events take once stored: their own (one block each), their slot in the log, their
 * id node and their places in the entity and topic indexes. */
static size_t append_bytes(const evs_event_t *evs, size_t n) {
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++)
        bytes += codec_event_bytes(&evs[i]) + sizeof(evs_event_t) + sizeof(id_node_t) +
                 2 * sizeof(size_t);
    return bytes;
}

/* Appends evs and, with t, sets t's checkpoint in the same step (t already decided). */
static void append_events(store_t *s, evs_event_t *evs, size_t n, const store_tracking_t *t,
                          store_append_cb cb, void *arg) {
    store_memory_t *m = (store_memory_t *)s;
    codec_error_t err;
    /* One event (the common case) needs no allocation for its results. */
    uint64_t pos_one, ver_one;
    uint64_t *pos = n <= 1 ? &pos_one : malloc(n * sizeof *pos);
    uint64_t *ver = n <= 1 ? &ver_one : malloc(n * sizeof *ver);
    entity_node_t *entity = NULL;
    if (!pos || !ver) {
        codec_error_set(&err, EVS_EINTERNAL, "out of memory");
        cb(arg, &err, NULL, NULL, 0);
        goto out;
    }
    if ((n == 0 && !t) || (n > 0 && !t && is_retry(m, evs, n, pos, ver))) {
        cb(arg, NULL, pos, ver, n);
        goto out;
    }
    if ((n == 0   ? 0
         : n == 1 ? plan_one(m, evs, ver, &entity, &err)
                  : plan_append(m, evs, n, ver, &err)) != 0 ||
        over_limit(m, append_bytes(evs, n), &err)) {
        cb(arg, &err, NULL, NULL, 0);
        goto out;
    }
    if (m->cap - m->len < n) {
        size_t cap = m->cap ? m->cap : 1024;
        while (cap - m->len < n)
            cap *= 2;
        evs_event_t *log = realloc(m->log, cap * sizeof *log);
        if (!log) {
            codec_error_set(&err, EVS_EINTERNAL, "out of memory");
            cb(arg, &err, NULL, NULL, 0);
            goto out;
        }
        m->bytes += (cap - m->cap) * sizeof *log;
        m->log = log;
        m->cap = cap;
    }
    if (t && cpt_set(&m->checkpoints, t->consumer, t->position) != 0) {
        codec_error_set(&err, EVS_EINTERNAL, "out of memory");
        cb(arg, &err, NULL, NULL, 0);
        goto out;
    }
    size_t first = m->len;
    int64_t ts = store_now_us();
    for (size_t i = 0; i < n; i++) {
        commit_event(m, &evs[i], ver[i], ts, n == 1 ? entity : NULL);
        pos[i] = m->log[first + i].position;
    }
    if (s->on_commit && n) s->on_commit(s->on_commit_arg, &m->log[first], n);
    cb(arg, NULL, pos, ver, n);
out:
    if (pos != &pos_one) free(pos);
    if (ver != &ver_one) free(ver);
}

static void mem_append(store_t *s, evs_event_t *evs, size_t n, store_append_cb cb, void *arg) {
    append_events(s, evs, n, NULL, cb, arg);
}

/* ---------------------------------------------------------------- consumers */

/* The newest position taken: positions are indexes in the log plus one, tombstones included. */
static uint64_t head(const store_memory_t *m) {
    return m->len;
}

/* False, with err set, when t carries a fence that is not the consumer's current lease. */
static bool lease_current(const store_memory_t *m, const store_tracking_t *t, codec_error_t *err) {
    bool active;
    if (!t->fence || cpt_lease_fence(&m->leases, t->consumer, 0, &active) == t->fence) return true;
    store_conflict_lease(err, t->consumer);
    return false;
}

static void mem_append_tracked(store_t *s, evs_event_t *evs, size_t n, const store_tracking_t *t,
                               store_append_cb cb, void *arg) {
    store_memory_t *m = (store_memory_t *)s;
    if (!t) return append_events(s, evs, n, NULL, cb, arg);
    uint64_t stored = cpt_get(&m->checkpoints, t->consumer);
    codec_error_t err;
    if (!lease_current(m, t, &err)) {
        cb(arg, &err, NULL, NULL, 0);
        return;
    }
    if (n > 0 && stored >= t->position) {
        /* The retry of an append that committed with this tracking: its original answer. */
        uint64_t *pos = malloc(n * sizeof *pos), *ver = malloc(n * sizeof *ver);
        bool retry = pos && ver && is_retry(m, evs, n, pos, ver);
        if (retry) cb(arg, NULL, pos, ver, n);
        free(pos);
        free(ver);
        if (retry) return;
    }
    if (store_decide_tracking(t, false, stored, head(m), &err) != 0) {
        cb(arg, &err, NULL, NULL, 0);
        return;
    }
    append_events(s, evs, n, t, cb, arg);
}

static void mem_checkpoint(store_t *s, const store_tracking_t *tp, store_position_cb cb,
                           void *arg) {
    store_memory_t *m = (store_memory_t *)s;
    store_tracking_t t = *tp;
    const char *consumer = t.consumer;
    uint64_t position = t.position;
    uint64_t stored = cpt_get(&m->checkpoints, consumer);
    codec_error_t err;
    if (!lease_current(m, &t, &err) ||
        store_decide_tracking(&t, true, stored, head(m), &err) != 0 ||
        over_limit(m, 64 + strlen(consumer), &err)) {
        cb(arg, &err, 0);
        return;
    }
    if (position > stored && cpt_set(&m->checkpoints, consumer, position) != 0) {
        codec_error_set(&err, EVS_EINTERNAL, "out of memory");
        cb(arg, &err, 0);
        return;
    }
    cb(arg, NULL, position);
}

static void mem_get_checkpoint(store_t *s, const char *consumer, store_position_cb cb, void *arg) {
    cb(arg, NULL, cpt_get(&((store_memory_t *)s)->checkpoints, consumer));
}

static void mem_delete_checkpoint(store_t *s, const char *consumer, store_count_cb cb, void *arg) {
    cb(arg, NULL, cpt_delete(&((store_memory_t *)s)->checkpoints, consumer) ? 1 : 0);
}

static void mem_consumers(store_t *s, store_consumers_cb cb, void *arg) {
    store_memory_t *m = (store_memory_t *)s;
    size_t n;
    store_consumer_t *list = cpt_list(&m->checkpoints, &n);
    if (!list && n) {
        codec_error_t err;
        codec_error_set(&err, EVS_EINTERNAL, "out of memory");
        cb(arg, &err, NULL, 0, 0);
        return;
    }
    for (size_t i = 0; i < n; i++)
        cpt_lease_fence(&m->leases, list[i].consumer, store_now_us(), &list[i].active);
    cb(arg, NULL, list, n, head(m));
    free(list);
}

static void mem_lease(store_t *s, const char *consumer, uint64_t fence, uint32_t ttl_ms,
                      store_lease_cb cb, void *arg) {
    store_memory_t *m = (store_memory_t *)s;
    int64_t now = store_now_us();
    uint64_t got = 0;
    int held = cpt_lease(&m->leases, consumer, fence, now + (int64_t)ttl_ms * 1000, now, &got);
    if (held < 0) {
        codec_error_t err;
        codec_error_set(&err, EVS_EINTERNAL, "out of memory");
        cb(arg, &err, false, 0);
        return;
    }
    cb(arg, NULL, held == 1, got);
}

static void mem_lease_release(store_t *s, const char *consumer, uint64_t fence, store_count_cb cb,
                              void *arg) {
    cb(arg, NULL, cpt_lease_release(&((store_memory_t *)s)->leases, consumer, fence) ? 1 : 0);
}

/* ---------------------------------------------------------------- reads */

/* The byte bound of one read (store_t.page_bytes): events are taken while the ones before
 * take at most bound bytes, and the first two always, so the first event past the bound is taken
 * too and says there is more. */
typedef struct page {
    size_t bound; /* 0: none */
    size_t used;
    size_t taken;
} page_t;

static bool page_open(const page_t *pg) {
    return !pg->bound || pg->used <= pg->bound || pg->taken < 2;
}

static evs_event_t page_add(page_t *pg, const evs_event_t *ev) {
    if (pg->bound) pg->used += codec_event_size(ev);
    pg->taken++;
    return *ev;
}

static void mem_get_by_entity(store_t *s, const char *entity_id, uint64_t from, uint32_t limit,
                              bool backwards, store_events_cb cb, void *arg) {
    store_memory_t *m = (store_memory_t *)s;
    entity_node_t *e = find_entity(m, entity_id);
    size_t have = e ? e->events.n : 0, count = 0;
    evs_event_t *out = NULL;
    if (have && limit) {
        out = malloc((limit < have ? limit : have) * sizeof *out);
        if (!out) {
            codec_error_t err;
            codec_error_set(&err, EVS_EINTERNAL, "out of memory");
            cb(arg, &err, NULL, 0);
            return;
        }
        page_t pg = {.bound = s->page_bytes};
        if (!backwards) {
            for (uint64_t v = from; v < have && count < limit && page_open(&pg); v++)
                out[count++] = page_add(&pg, &m->log[e->events.v[v]]);
        } else {
            uint64_t v = from < have ? from : have - 1;
            for (;; v--) {
                out[count++] = page_add(&pg, &m->log[e->events.v[v]]);
                if (v == 0 || count == limit || !page_open(&pg)) break;
            }
        }
    }
    cb(arg, NULL, out, count);
    free(out);
}

static void mem_get_by_id(store_t *s, const uint8_t event_id[16], store_events_cb cb, void *arg) {
    store_memory_t *m = (store_memory_t *)s;
    id_node_t *f = find_id(m, event_id);
    if (!f) {
        codec_error_t err;
        char text[37];
        evs_uuid_format(event_id, text);
        codec_error_set(&err, EVS_ENOT_FOUND, "no event with id %s", text);
        cb(arg, &err, NULL, 0);
        return;
    }
    cb(arg, NULL, &m->log[f->index], 1);
}

static bool matches(const evs_event_t *ev, const store_read_t *q, size_t prefix_len) {
    if (!ev->entity_id) return false; /* tombstone */
    if (prefix_len && strncmp(ev->entity_id, q->entity_prefix, prefix_len) != 0) return false;
    if (q->partition_count &&
        evs_partition_hash(ev->entity_id) % q->partition_count != q->partition_index)
        return false;
    if (q->ntopics == 0) return true;
    for (size_t i = 0; i < q->ntopics; i++)
        if (strcmp(ev->topic, q->topics[i]) == 0) return true;
    return false;
}

/* Index of the first entry of l whose event has a position > after (l is in position order). */
static size_t first_after(const store_memory_t *m, const idx_list_t *l, uint64_t after) {
    size_t lo = 0, hi = l->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->log[l->v[mid]].position <= after)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void mem_read(store_t *s, const store_read_t *q, store_events_cb cb, void *arg) {
    store_memory_t *m = (store_memory_t *)s;
    size_t prefix_len = q->entity_prefix ? strlen(q->entity_prefix) : 0;
    size_t count = 0, cap = q->limit < 64 ? q->limit : 64;
    page_t pg = {.bound = s->page_bytes};
    evs_event_t *out = cap ? malloc(cap * sizeof *out) : NULL;
    codec_error_t err;
    if (cap && !out) goto oom;
#define EMIT(ev)                                                                                   \
    do {                                                                                           \
        if (count == cap) {                                                                        \
            cap = cap * 2 < q->limit ? cap * 2 : q->limit;                                         \
            evs_event_t *o2 = realloc(out, cap * sizeof *out);                                     \
            if (!o2) goto oom;                                                                     \
            out = o2;                                                                              \
        }                                                                                          \
        out[count++] = (ev);                                                                       \
    } while (0)
    if (q->ntopics == 1) {
        topic_node_t *t;
        HASH_FIND_STR(m->topics, q->topics[0], t);
        if (t)
            for (size_t i = first_after(m, &t->events, q->after);
                 i < t->events.n && count < q->limit && page_open(&pg); i++)
                if (matches(&m->log[t->events.v[i]], q, prefix_len))
                    EMIT(page_add(&pg, &m->log[t->events.v[i]]));
    } else {
        for (uint64_t i = q->after; i < m->len && count < q->limit && page_open(&pg); i++)
            if (matches(&m->log[i], q, prefix_len)) EMIT(page_add(&pg, &m->log[i]));
    }
#undef EMIT
    cb(arg, NULL, out, count);
    free(out);
    return;
oom:
    free(out);
    codec_error_set(&err, EVS_EINTERNAL, "out of memory");
    cb(arg, &err, NULL, 0);
}

/* ---------------------------------------------------------------- snapshots */

static void snap_clear(snap_t *sn) {
    free(sn->topic);
    free(sn->payload);
}

/* The bytes a snapshot's own allocations take. */
static size_t snap_bytes(const snap_t *sn) {
    return strlen(sn->topic) + 1 + (sn->payload_len ? sn->payload_len : 1);
}

/* The bytes a node of snapshots takes, snapshots included. */
static size_t snap_node_bytes(const snap_node_t *node) {
    size_t bytes = sizeof *node + strlen(node->entity_id) + 1 + node->cap * sizeof *node->v;
    for (size_t i = 0; i < node->n; i++)
        bytes += snap_bytes(&node->v[i]);
    return bytes;
}

static void snap_node_free(snap_node_t *node) {
    for (size_t i = 0; i < node->n; i++)
        snap_clear(&node->v[i]);
    free(node->v);
    free(node->entity_id);
    free(node);
}

static void mem_put_snapshot(store_t *s, const store_snapshot_t *snap, store_count_cb cb,
                             void *arg) {
    store_memory_t *m = (store_memory_t *)s;
    codec_error_t err;
    snap_node_t *node;
    if (over_limit(m,
                   sizeof *node + sizeof(snap_t) + strlen(snap->entity_id) + strlen(snap->topic) +
                       2 + snap->payload_len,
                   &err)) {
        cb(arg, &err, 0);
        return;
    }
    HASH_FIND_STR(m->snaps, snap->entity_id, node);
    if (!node) {
        if (!(node = calloc(1, sizeof *node)) || !(node->entity_id = strdup(snap->entity_id))) {
            free(node);
            goto oom;
        }
        HASH_ADD_KEYPTR(hh, m->snaps, node->entity_id, strlen(node->entity_id), node);
        m->bytes += sizeof *node + strlen(node->entity_id) + 1;
    }
    snap_t sn = {
        .version = snap->version, .payload_len = snap->payload_len, .timestamp = store_now_us()};
    sn.topic = strdup(snap->topic);
    sn.payload = malloc(snap->payload_len ? snap->payload_len : 1);
    if (!sn.topic || !sn.payload) {
        snap_clear(&sn);
        goto oom;
    }
    if (snap->payload_len) memcpy(sn.payload, snap->payload, snap->payload_len);
    size_t i = 0;
    while (i < node->n && node->v[i].version < sn.version)
        i++;
    if (i < node->n && node->v[i].version == sn.version) {
        m->bytes -= snap_bytes(&node->v[i]);
        snap_clear(&node->v[i]);
        node->v[i] = sn;
    } else {
        if (node->n == node->cap) {
            size_t cap = node->cap ? node->cap * 2 : 4;
            snap_t *v = realloc(node->v, cap * sizeof *v);
            if (!v) {
                snap_clear(&sn);
                goto oom;
            }
            m->bytes += (cap - node->cap) * sizeof *v;
            node->v = v;
            node->cap = cap;
        }
        memmove(&node->v[i + 1], &node->v[i], (node->n - i) * sizeof *node->v);
        node->v[i] = sn;
        node->n++;
    }
    m->bytes += snap_bytes(&sn);
    cb(arg, NULL, 1);
    return;
oom:
    codec_error_set(&err, EVS_EINTERNAL, "out of memory");
    cb(arg, &err, 0);
}

static void mem_get_snapshot(store_t *s, const char *entity_id, uint64_t max_version,
                             store_snapshot_cb cb, void *arg) {
    store_memory_t *m = (store_memory_t *)s;
    snap_node_t *node;
    HASH_FIND_STR(m->snaps, entity_id, node);
    size_t i = node ? node->n : 0;
    while (i > 0 && node->v[i - 1].version > max_version)
        i--;
    if (i == 0) {
        codec_error_t err;
        codec_error_set(&err, EVS_ENOT_FOUND,
                        "entity %.255s has no snapshot at or below version %llu", entity_id,
                        (unsigned long long)max_version);
        cb(arg, &err, NULL);
        return;
    }
    const snap_t *sn = &node->v[i - 1];
    store_snapshot_t out = {.entity_id = entity_id,
                            .version = sn->version,
                            .topic = sn->topic,
                            .payload = sn->payload,
                            .payload_len = sn->payload_len,
                            .timestamp = sn->timestamp};
    cb(arg, NULL, &out);
}

static void mem_delete_snapshots(store_t *s, const char *entity_id, store_count_cb cb, void *arg) {
    store_memory_t *m = (store_memory_t *)s;
    snap_node_t *node;
    HASH_FIND_STR(m->snaps, entity_id, node);
    uint64_t count = 0;
    if (node) {
        count = node->n;
        m->bytes -= snap_node_bytes(node);
        HASH_DEL(m->snaps, node);
        snap_node_free(node);
    }
    cb(arg, NULL, count);
}

/* ---------------------------------------------------------------- delete, free */

static void mem_delete_entity(store_t *s, const char *entity_id, store_count_cb cb, void *arg) {
    store_memory_t *m = (store_memory_t *)s;
    entity_node_t *e = find_entity(m, entity_id);
    uint64_t count = 0;
    if (e) {
        for (size_t i = 0; i < e->events.n; i++) {
            evs_event_t *ev = &m->log[e->events.v[i]];
            id_node_t *in = find_id(m, ev->event_id);
            if (in) {
                HASH_DEL(m->ids, in);
                free(in);
                m->bytes -= sizeof *in;
            }
            m->bytes -= codec_event_bytes(ev);
            /* The topic index keeps the tombstone's index, and binary searches need its
             * position; reads skip it. */
            uint64_t position = ev->position;
            evs_event_clear(ev);
            ev->position = position;
            count++;
        }
        HASH_DEL(m->entities, e);
        m->bytes -= sizeof *e + strlen(e->id) + 1 + e->events.cap * sizeof *e->events.v;
        free(e->events.v);
        free(e->id);
        free(e);
    }
    snap_node_t *node;
    HASH_FIND_STR(m->snaps, entity_id, node);
    if (node) {
        m->bytes -= snap_node_bytes(node);
        HASH_DEL(m->snaps, node);
        snap_node_free(node);
    }
    cb(arg, NULL, count);
}

static void mem_free(store_t *s) {
    store_memory_t *m = (store_memory_t *)s;
    for (size_t i = 0; i < m->len; i++)
        evs_event_clear(&m->log[i]);
    free(m->log);
    entity_node_t *e, *et;
    HASH_ITER(hh, m->entities, e, et) {
        HASH_DEL(m->entities, e);
        free(e->events.v);
        free(e->id);
        free(e);
    }
    topic_node_t *t, *tt;
    HASH_ITER(hh, m->topics, t, tt) {
        HASH_DEL(m->topics, t);
        free(t->events.v);
        free(t->topic);
        free(t);
    }
    id_node_t *in, *it;
    HASH_ITER(hh, m->ids, in, it) {
        HASH_DEL(m->ids, in);
        free(in);
    }
    snap_node_t *sn, *st;
    HASH_ITER(hh, m->snaps, sn, st) {
        HASH_DEL(m->snaps, sn);
        snap_node_free(sn);
    }
    cpt_free(&m->checkpoints);
    cpt_free(&m->leases);
    free(m);
}

static const store_ops_t memory_ops = STORE_OPS_INIT("memory", mem);

static bool memory_accepts(const char *url) {
    return strcmp(url, "memory") == 0 || strcmp(url, "memory://") == 0;
}

static store_t *memory_open(const char *url, void *loop, codec_error_t *err) {
    (void)url;
    (void)loop;
    store_t *s = store_memory_new();
    if (!s) codec_error_set(err, EVS_EINTERNAL, "out of memory");
    return s;
}

const store_driver_t store_memory_driver = {
    .name = "memory", .accepts = memory_accepts, .open = memory_open};

store_t *store_memory_new(void) {
    store_memory_t *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->base.ops = &memory_ops;
    m->base.live_ready = true; /* every append reaches the listener, from the first */
    m->base.condition = (store_condition_t){.status = STORE_STATUS_OK, .kind = "ok"};
    uint8_t id[16];
    if (evs_uuid_generate(id, 1) != 0) { /* the identity of this process's store */
        free(m);
        return NULL;
    }
    evs_uuid_format(id, m->base.store_id);
    return &m->base;
}
