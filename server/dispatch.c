/* dispatch.c: the op table and the handler of each op.
 *
 * The op table says which arguments each op needs, and dispatch_frame replies bad_request when
 * one is missing (the codec already checked every key's type); a handler checks what else its
 * op asks, then either replies at once or starts a store operation whose callback replies. A
 * request in flight holds a reference on its connection; a reply for a connection closed meanwhile
 * is dropped. */
#include "dispatch.h"

#include <stdlib.h>
#include <string.h>

#include "../proto/codec_request.h"
#include "auth.h"
#include "config.h"
#include "health.h"
#include "log.h"
#include "stats.h"
#include "subs.h"

typedef void (*op_handler_t)(conn_t *c, codec_request_t *req);

/* What a store callback needs to reply to its request. */
typedef struct pending {
    conn_t *conn;
    uint64_t id;
    int kind;            /* enum reply_kind */
    uint64_t started_ns; /* uv_hrtime() at the store call, for the latency stats */
    size_t op;           /* its index in op_table, for the per-op stats */
    uint64_t arrived_ns; /* uv_hrtime() when its frame was handed to dispatch */
} pending_t;

/* What a pending request replies with. The reads (every kind but REPLY_OTHER) count in the
 * connection's reads_inflight: their replies can be large, so the connection handles no further
 * request until they are packed (conn.h). */
enum reply_kind { REPLY_OTHER, REPLY_EVENTS, REPLY_EVENT, REPLY_SNAPSHOT };

/* The op whose request is being answered, for the per-op stats: set while a request is handled
 * (run_op) and while a store callback replies (pending_finish); STATS_OP_INVALID otherwise. And
 * when the frame being handled arrived. */
static size_t reply_op = STATS_OP_INVALID;
static uint64_t frame_arrived_ns;

void dispatch_reply_error_to(conn_t *c, size_t op, bool has_id, uint64_t id,
                             const codec_error_t *err) {
    stats_error_op(&c->srv->stats, op, err->code);
    codec_reply_error(&c->out, has_id, id, err);
    conn_schedule_flush(c);
}

void dispatch_reply_error(conn_t *c, bool has_id, uint64_t id, const codec_error_t *err) {
    dispatch_reply_error_to(c, reply_op, has_id, id, err);
}

/* Starts an ok reply frame with nresults result keys; returns the frame's start. */
static size_t reply_begin(conn_t *c, msgpack_packer *pk, uint64_t id, uint32_t nresults) {
    codec_packer_init(pk, &c->out);
    size_t start = codec_frame_begin(&c->out);
    codec_reply_ok_begin(pk, id, nresults);
    return start;
}

static void reply_end(conn_t *c, size_t start) {
    codec_frame_end(&c->out, start, UINT32_MAX);
    conn_schedule_flush(c);
}

static pending_t *pending_new(conn_t *c, uint64_t id, int kind) {
    pending_t *p = malloc(sizeof *p);
    if (!p) return NULL;
    p->conn = c;
    p->id = id;
    p->kind = kind;
    p->started_ns = uv_hrtime();
    p->op = reply_op;
    p->arrived_ns = frame_arrived_ns;
    conn_ref(c);
    c->inflight++;
    if (kind != REPLY_OTHER) c->reads_inflight++;
    return p;
}

/* Ends a pending request whose store call answered with code (0 or the error's); returns its
 * connection if a reply can still go to it. */
static conn_t *pending_done(pending_t *p, const codec_error_t *err, uint64_t *id, int *kind) {
    conn_t *c = p->conn;
    stats_store_done(&c->srv->stats, p->started_ns, err ? err->code : 0);
    stats_request_done(&c->srv->stats, p->op, p->arrived_ns);
    *id = p->id;
    if (kind) *kind = p->kind;
    if (p->kind != REPLY_OTHER) c->reads_inflight--;
    free(p);
    c->inflight--;
    if (!conn_is_open(c)) {
        conn_unref(c);
        return NULL;
    }
    conn_unref(c); /* still open: the handle holds a reference */
    return c;
}

/* Ends a pending request and replies its error, if it has one. Returns the connection to pack
 * the ok reply into, or NULL when there is nothing more to do. */
static conn_t *pending_finish(void *arg, const codec_error_t *err, uint64_t *id, int *kind) {
    size_t op = ((pending_t *)arg)->op;
    conn_t *c = pending_done(arg, err, id, kind);
    if (c && err) {
        dispatch_reply_error_to(c, op, true, *id, err);
        return NULL;
    }
    return c;
}

static bool no_memory(conn_t *c, const codec_request_t *req) {
    codec_error_t err;
    codec_error_set(&err, EVS_EINTERNAL, "out of memory");
    dispatch_reply_error(c, true, req->id, &err);
    return true;
}

/* The limit argument: default STORE_DEFAULT_LIMIT, at most STORE_MAX_LIMIT. */
static bool get_limit(conn_t *c, const codec_request_t *req, uint32_t *limit) {
    if (!(req->present & ARG_LIMIT)) {
        *limit = STORE_DEFAULT_LIMIT;
        return true;
    }
    if (req->limit > STORE_MAX_LIMIT) {
        codec_error_t err;
        codec_error_set(&err, EVS_EBAD_REQUEST, "limit must be at most %d", STORE_MAX_LIMIT);
        dispatch_reply_error(c, true, req->id, &err);
        return false;
    }
    *limit = (uint32_t)req->limit;
    return true;
}

/* ---------------------------------------------------------------- ping */

/* The optional capabilities ping lists in "features", each with the test that says whether this
 * daemon has it (NULL: always). docs/protocol.md (ping) says what each name means; a client
 * checks for a name before it relies on the capability. */
static bool has_snapshots(const store_t *s) {
    return s->ops->put_snapshot && s->ops->get_snapshot;
}
static bool has_delete_entity(const store_t *s) {
    return s->ops->delete_entity != NULL;
}
static bool has_delete_snapshots(const store_t *s) {
    return s->ops->delete_snapshots != NULL;
}
static const struct {
    const char *name;
    bool (*available)(const store_t *s);
} features[] = {
    {"strict-arguments", NULL},
    {"snapshots", has_snapshots},
    {"delete-entity", has_delete_entity},
    {"delete-snapshots", has_delete_snapshots},
    {"auth", NULL},
    {"consumers", NULL},
    {"partitions", NULL},
    {"health", NULL},
};
#define NFEATURES (sizeof features / sizeof features[0])

/* ping: the daemon's version, the store's identity ("" while a PostgreSQL store has not read
 * it yet), the newest committed position the daemon knows of (0 before any) and the optional
 * capabilities it has. */
static void op_ping(conn_t *c, codec_request_t *req) {
    const store_t *store = c->srv->store;
    uint64_t head = c->srv->head_position;
    if (store->live_head > head) head = store->live_head;
    uint32_t nfeatures = 0;
    for (size_t i = 0; i < NFEATURES; i++)
        nfeatures += !features[i].available || features[i].available(store);
    msgpack_packer pk;
    size_t start = reply_begin(c, &pk, req->id, 4);
    codec_pack_key(&pk, "version");
    codec_pack_cstr(&pk, EVS_VERSION);
    codec_pack_key(&pk, "store_id");
    codec_pack_cstr(&pk, store->store_id);
    codec_pack_key(&pk, "head");
    msgpack_pack_uint64(&pk, head);
    codec_pack_key(&pk, "features");
    msgpack_pack_array(&pk, nfeatures);
    for (size_t i = 0; i < NFEATURES; i++)
        if (!features[i].available || features[i].available(store))
            codec_pack_cstr(&pk, features[i].name);
    reply_end(c, start);
}

/* health: whether appends and reads can be served right now, and if not why (health.h); like
 * ping it never waits for the store. */
static void op_health(conn_t *c, codec_request_t *req) {
    health_t h;
    health_get(c->srv, &h);
    msgpack_packer pk;
    size_t start = reply_begin(c, &pk, req->id, HEALTH_NKEYS);
    health_pack(&pk, &h);
    reply_end(c, start);
}

/* ---------------------------------------------------------------- append */

/* Event ids are time-ordered (version 7) UUIDs, stamped when drawn on random bytes from a pool
 * filled 256 ids at a time by one getrandom call (the daemon never forks, so the pool is never
 * shared with another process). */
static uint8_t id_pool[256 * 16];
static size_t id_pool_left;

static int draw_event_id(uint8_t id[16]) {
    if (id_pool_left == 0) {
        if (evs_uuid_generate(id_pool, 256) != 0) return -1;
        id_pool_left = 256;
    }
    id_pool_left--;
    memcpy(id, id_pool + 16 * id_pool_left, 16);
    memset(id_pool + 16 * id_pool_left, 0, 16);
    evs_uuid_v7_stamp(id);
    return 0;
}

static void append_done(void *arg, const codec_error_t *err, const uint64_t *pos,
                        const uint64_t *ver, size_t n) {
    uint64_t id;
    server_t *srv = ((pending_t *)arg)->conn->srv;
    if (!err) srv->stats.events_appended += n; /* stored, even if the client has gone */
    conn_t *c = pending_finish(arg, err, &id, NULL);
    if (!c) return;
    msgpack_packer pk;
    size_t start = reply_begin(c, &pk, id, 2);
    codec_pack_key(&pk, "positions");
    msgpack_pack_array(&pk, n);
    for (size_t i = 0; i < n; i++)
        msgpack_pack_uint64(&pk, pos[i]);
    codec_pack_key(&pk, "versions");
    msgpack_pack_array(&pk, n);
    for (size_t i = 0; i < n; i++)
        msgpack_pack_uint64(&pk, ver[i]);
    reply_end(c, start);
}

/* Replies too_large (the connection stays open: the frame itself was within max_frame) when
 * an event of req is over max_event, so that no event is stored that a reply could not carry.
 * Returns whether it did. */
static bool event_too_large(conn_t *c, const codec_request_t *req) {
    size_t max = config_max_event(&c->srv->cfg);
    for (size_t i = 0; i < req->nevents; i++) {
        size_t size = codec_event_size(&req->events[i]);
        if (size <= max) continue;
        codec_error_t err;
        codec_error_set(&err, EVS_ETOO_LARGE,
                        "event %zu is %zu bytes, over max_event (%zu bytes: entity_id, topic, "
                        "payload and metadata plus %d); nothing was stored",
                        i, size, max, CODEC_EVENT_OVERHEAD);
        dispatch_reply_error(c, true, req->id, &err);
        return true;
    }
    return false;
}

static void op_append(conn_t *c, codec_request_t *req) {
    if (event_too_large(c, req)) return;
    /* Events without an id get a random one. */
    for (size_t i = 0; i < req->nevents; i++)
        if (!req->events[i].has_event_id && draw_event_id(req->events[i].event_id) != 0) {
            codec_error_t err;
            codec_error_set(&err, EVS_EUNAVAILABLE, "no randomness for event ids; retry");
            dispatch_reply_error(c, true, req->id, &err);
            return;
        }
    pending_t *p = pending_new(c, req->id, REPLY_OTHER);
    if (!p && no_memory(c, req)) return;
    store_t *s = c->srv->store;
    if (req->present & ARG_TRACKING) {
        store_tracking_t t = {.consumer = req->tracking_consumer,
                              .position = req->tracking_position,
                              .fence = subs_consumer_fence(c, req->tracking_consumer)};
        s->ops->append_tracked(s, req->events, req->nevents, &t, append_done, p);
        return;
    }
    s->ops->append(s, req->events, req->nevents, append_done, p);
}

/* ---------------------------------------------------------------- reads */

static void events_done(void *arg, const codec_error_t *err, const evs_event_t *evs, size_t n) {
    uint64_t id;
    int kind;
    conn_t *c = pending_finish(arg, err, &id, &kind);
    if (!c) return;
    msgpack_packer pk;
    if (kind == REPLY_EVENT) {
        size_t start = reply_begin(c, &pk, id, 1);
        codec_pack_key(&pk, "event");
        codec_pack_event(&pk, &evs[0]);
        reply_end(c, start);
        return;
    }
    /* A page is cut short rather than grow past max_frame bytes (a client's default limit for
     * a reply too) or the room left under the connection's output_limit; "truncated" tells the
     * client to go on paging from the last event. The store stops its read at the first event
     * past a page's budget (store_t.page_bytes), so an event past the cut says there is more. */
    size_t fit = codec_events_fitting(evs, n, conn_reply_room(c));
    size_t start = reply_begin(c, &pk, id, fit < n ? 2 : 1);
    codec_pack_key(&pk, "events");
    msgpack_pack_array(&pk, fit);
    for (size_t i = 0; i < fit; i++)
        codec_pack_event(&pk, &evs[i]);
    if (fit < n) {
        codec_pack_key(&pk, "truncated");
        msgpack_pack_true(&pk);
    }
    reply_end(c, start);
}

static void op_get_by_entity(conn_t *c, codec_request_t *req) {
    uint32_t limit = 0;
    if (!get_limit(c, req, &limit)) return;
    uint64_t from = req->present & ARG_FROM_VERSION ? req->from_version
                    : req->backwards                ? UINT64_MAX
                                                    : 0;
    pending_t *p = pending_new(c, req->id, REPLY_EVENTS);
    if (!p && no_memory(c, req)) return;
    c->srv->store->ops->get_by_entity(c->srv->store, req->entity_id, from, limit, req->backwards,
                                      events_done, p);
}

static void read_log(conn_t *c, codec_request_t *req, const char *const *topics, size_t ntopics) {
    uint32_t limit = 0;
    if (!get_limit(c, req, &limit)) return;
    store_read_t q = {.after = req->after,
                      .limit = limit,
                      .topics = topics,
                      .ntopics = ntopics,
                      .partition_count = req->partition_count,
                      .partition_index = req->partition_index};
    pending_t *p = pending_new(c, req->id, REPLY_EVENTS);
    if (!p && no_memory(c, req)) return;
    c->srv->store->ops->read(c->srv->store, &q, events_done, p);
}

static void op_get_by_topic(conn_t *c, codec_request_t *req) {
    read_log(c, req, &req->topic, 1);
}

static void op_read_all(conn_t *c, codec_request_t *req) {
    read_log(c, req, req->topics, req->ntopics);
}

static void op_get_by_id(conn_t *c, codec_request_t *req) {
    pending_t *p = pending_new(c, req->id, REPLY_EVENT);
    if (!p && no_memory(c, req)) return;
    c->srv->store->ops->get_by_id(c->srv->store, req->event_id, events_done, p);
}

/* ---------------------------------------------------------------- delete-entity */

static void delete_done(void *arg, const codec_error_t *err, uint64_t count) {
    uint64_t id;
    conn_t *c = pending_finish(arg, err, &id, NULL);
    if (!c) return;
    msgpack_packer pk;
    size_t start = reply_begin(c, &pk, id, 1);
    codec_pack_key(&pk, "deleted");
    msgpack_pack_uint64(&pk, count);
    reply_end(c, start);
}

static void op_delete_entity(conn_t *c, codec_request_t *req) {
    store_t *s = c->srv->store;
    if (!s->ops->delete_entity) {
        codec_error_t err;
        codec_error_set(&err, EVS_EINTERNAL, "the %s store cannot delete entities", s->ops->name);
        dispatch_reply_error(c, true, req->id, &err);
        return;
    }
    pending_t *p = pending_new(c, req->id, REPLY_OTHER);
    if (!p && no_memory(c, req)) return;
    s->ops->delete_entity(s, req->entity_id, delete_done, p);
}

/* ---------------------------------------------------------------- snapshots */

static bool snapshots_supported(conn_t *c, const codec_request_t *req) {
    store_t *s = c->srv->store;
    if (s->ops->put_snapshot && s->ops->get_snapshot) return true;
    codec_error_t err;
    codec_error_set(&err, EVS_EINTERNAL, "the %s store has no snapshots", s->ops->name);
    dispatch_reply_error(c, true, req->id, &err);
    return false;
}

static void put_snapshot_done(void *arg, const codec_error_t *err, uint64_t count) {
    uint64_t id;
    conn_t *c = pending_finish(arg, err, &id, NULL);
    (void)count;
    if (!c) return;
    msgpack_packer pk;
    size_t start = reply_begin(c, &pk, id, 0);
    reply_end(c, start);
}

static void op_put_snapshot(conn_t *c, codec_request_t *req) {
    if (!snapshots_supported(c, req)) return;
    if (req->version > INT64_MAX) {
        /* Versions are int64 in PostgreSQL: one range for every store. */
        codec_error_t err;
        codec_error_set(&err, EVS_EBAD_REQUEST, "version must be at most 2^63-1");
        dispatch_reply_error(c, true, req->id, &err);
        return;
    }
    store_snapshot_t snap = {.entity_id = req->entity_id,
                             .version = req->version,
                             .topic = req->topic,
                             .payload = req->payload,
                             .payload_len = req->payload_len};
    pending_t *p = pending_new(c, req->id, REPLY_OTHER);
    if (!p && no_memory(c, req)) return;
    c->srv->store->ops->put_snapshot(c->srv->store, &snap, put_snapshot_done, p);
}

static void get_snapshot_done(void *arg, const codec_error_t *err, const store_snapshot_t *sn) {
    uint64_t id;
    conn_t *c = pending_finish(arg, err, &id, NULL);
    if (!c) return;
    msgpack_packer pk;
    size_t start = reply_begin(c, &pk, id, 1);
    codec_pack_key(&pk, "snapshot");
    msgpack_pack_map(&pk, 5);
    codec_pack_key(&pk, "entity_id");
    codec_pack_cstr(&pk, sn->entity_id);
    codec_pack_key(&pk, "version");
    msgpack_pack_uint64(&pk, sn->version);
    codec_pack_key(&pk, "topic");
    codec_pack_cstr(&pk, sn->topic);
    codec_pack_key(&pk, "payload");
    codec_pack_bin(&pk, sn->payload, sn->payload_len);
    codec_pack_key(&pk, "timestamp");
    msgpack_pack_int64(&pk, sn->timestamp);
    reply_end(c, start);
}

static void op_get_snapshot(conn_t *c, codec_request_t *req) {
    if (!snapshots_supported(c, req)) return;
    uint64_t max = req->present & ARG_MAX_VERSION ? req->max_version : UINT64_MAX;
    pending_t *p = pending_new(c, req->id, REPLY_SNAPSHOT);
    if (!p && no_memory(c, req)) return;
    c->srv->store->ops->get_snapshot(c->srv->store, req->entity_id, max, get_snapshot_done, p);
}

/* delete-snapshots: removes an entity's snapshots, not its events (a snapshot its client can no
 * longer read). The reply is delete-entity's: {"deleted": N}. */
static void op_delete_snapshots(conn_t *c, codec_request_t *req) {
    store_t *s = c->srv->store;
    if (!s->ops->delete_snapshots) {
        codec_error_t err;
        codec_error_set(&err, EVS_EINTERNAL, "the %s store cannot delete snapshots", s->ops->name);
        dispatch_reply_error(c, true, req->id, &err);
        return;
    }
    pending_t *p = pending_new(c, req->id, REPLY_OTHER);
    if (!p && no_memory(c, req)) return;
    s->ops->delete_snapshots(s, req->entity_id, delete_done, p);
}

/* ---------------------------------------------------------------- subscriptions */

static void op_subscribe(conn_t *c, codec_request_t *req) {
    codec_error_t err;
    if (subs_subscribe(c->srv->subs, c, req, &err) != 0)
        dispatch_reply_error(c, true, req->id, &err);
}

static void op_unsubscribe(conn_t *c, codec_request_t *req) {
    if (subs_unsubscribe(c->srv->subs, c, req->sub) != 0) {
        codec_error_t err;
        codec_error_set(&err, EVS_ENOT_FOUND, "no subscription %llu on this connection",
                        (unsigned long long)req->sub);
        dispatch_reply_error(c, true, req->id, &err);
        return;
    }
    msgpack_packer pk;
    size_t start = reply_begin(c, &pk, req->id, 0);
    reply_end(c, start);
}

/* ---------------------------------------------------------------- consumers */

static void position_done(void *arg, const codec_error_t *err, uint64_t position) {
    uint64_t id;
    conn_t *c = pending_finish(arg, err, &id, NULL);
    if (!c) return;
    msgpack_packer pk;
    size_t start = reply_begin(c, &pk, id, 1);
    codec_pack_key(&pk, "position");
    msgpack_pack_uint64(&pk, position);
    reply_end(c, start);
}

static void op_checkpoint(conn_t *c, codec_request_t *req) {
    pending_t *p = pending_new(c, req->id, REPLY_OTHER);
    if (!p && no_memory(c, req)) return;
    store_tracking_t t = {.consumer = req->consumer,
                          .position = req->position,
                          .fence = subs_consumer_fence(c, req->consumer)};
    c->srv->store->ops->checkpoint(c->srv->store, &t, position_done, p);
}

static void op_get_checkpoint(conn_t *c, codec_request_t *req) {
    pending_t *p = pending_new(c, req->id, REPLY_OTHER);
    if (!p && no_memory(c, req)) return;
    c->srv->store->ops->get_checkpoint(c->srv->store, req->consumer, position_done, p);
}

static void op_delete_checkpoint(conn_t *c, codec_request_t *req) {
    pending_t *p = pending_new(c, req->id, REPLY_OTHER);
    if (!p && no_memory(c, req)) return;
    c->srv->store->ops->delete_checkpoint(c->srv->store, req->consumer, delete_done, p);
}

/* consumers: every consumer with its checkpoint, the head, the lag (head - position) and whether
 * a subscription holds it now. */
static void consumers_done(void *arg, const codec_error_t *err, const store_consumer_t *list,
                           size_t n, uint64_t head) {
    uint64_t id;
    conn_t *c = pending_finish(arg, err, &id, NULL);
    if (!c) return;
    msgpack_packer pk;
    size_t start = reply_begin(c, &pk, id, 2);
    codec_pack_key(&pk, "head");
    msgpack_pack_uint64(&pk, head);
    codec_pack_key(&pk, "consumers");
    msgpack_pack_array(&pk, n);
    for (size_t i = 0; i < n; i++) {
        msgpack_pack_map(&pk, 5);
        codec_pack_key(&pk, "consumer");
        codec_pack_cstr(&pk, list[i].consumer);
        codec_pack_key(&pk, "position");
        msgpack_pack_uint64(&pk, list[i].position);
        codec_pack_key(&pk, "head");
        msgpack_pack_uint64(&pk, head);
        codec_pack_key(&pk, "lag");
        msgpack_pack_uint64(&pk, head > list[i].position ? head - list[i].position : 0);
        codec_pack_key(&pk, "active");
        if (list[i].active)
            msgpack_pack_true(&pk);
        else
            msgpack_pack_false(&pk);
    }
    reply_end(c, start);
}

static void op_consumers(conn_t *c, codec_request_t *req) {
    pending_t *p = pending_new(c, req->id, REPLY_OTHER);
    if (!p && no_memory(c, req)) return;
    c->srv->store->ops->consumers(c->srv->store, consumers_done, p);
}

/* ---------------------------------------------------------------- stats and config */

static void op_stats(conn_t *c, codec_request_t *req);

static void op_config(conn_t *c, codec_request_t *req) {
    msgpack_packer pk;
    size_t start = reply_begin(c, &pk, req->id, 1);
    codec_pack_key(&pk, "config");
    config_pack(&pk, &c->srv->cfg);
    reply_end(c, start);
}

/* ---------------------------------------------------------------- auth */

/* Failed auth requests after which a connection is closed. */
#define AUTH_MAX_FAILURES 3

static void pack_permissions(msgpack_packer *pk, char *const *perms, size_t n) {
    msgpack_pack_array(pk, n);
    for (size_t i = 0; i < n; i++)
        codec_pack_cstr(pk, perms[i]);
}

/* auth: the token's principal becomes the connection's. Without an auth_file every client may
 * do everything, which the reply says (principal ""). A wrong token is logged with the peer's
 * address (never the token); the AUTH_MAX_FAILURES-th closes the connection after its reply. */
static void op_auth(conn_t *c, codec_request_t *req) {
    static char *const everything[] = {"read", "write", "delete", "admin"};
    const auth_principal_t *p = NULL;
    if (c->srv->auth && !(p = auth_find_token(c->srv->auth, req->token, req->token_len))) {
        unsigned n = ++c->auth_failures;
        bool last = n >= AUTH_MAX_FAILURES;
        log_warn("auth", "%s: auth failed (%u of %d): no principal has this token%s", c->peer, n,
                 AUTH_MAX_FAILURES, last ? "; closing the connection" : "");
        codec_error_t err;
        codec_error_set(&err, EVS_EUNAUTHORIZED, "no principal has this token%s",
                        last ? "; this was the last try on this connection, which closes" : "");
        dispatch_reply_error(c, true, req->id, &err);
        if (last) {
            c->close_when_flushed = true;
            conn_stop_reading(c);
        }
        return;
    }
    if (p) {
        c->principal = p;
        log_info("auth", "%s: authenticated as %s", c->peer, p->name);
    }
    msgpack_packer pk;
    size_t start = reply_begin(c, &pk, req->id, 2);
    codec_pack_key(&pk, "principal");
    codec_pack_cstr(&pk, p ? p->name : "");
    codec_pack_key(&pk, "permissions");
    if (p)
        pack_permissions(&pk, p->permissions, p->npermissions);
    else
        pack_permissions(&pk, everything, 4);
    reply_end(c, start);
}

/* Whether c may run an op that needs perm: always without an auth_file; else unauthorized for
 * a connection that is no principal yet (only AUTH_NONE ops), forbidden for a principal without
 * the permission. Replies the error when not. */
static bool op_allowed(conn_t *c, const codec_request_t *req, const char *op, auth_perm_t perm) {
    if (!c->srv->auth || perm == AUTH_NONE) return true;
    codec_error_t err;
    if (!c->principal)
        codec_error_set(&err, EVS_EUNAUTHORIZED,
                        "%s needs credentials: send auth with a token first (or connect as a Unix "
                        "uid or TLS client certificate the auth_file lists)",
                        op);
    else if (!auth_allows(c->principal, perm, NULL))
        codec_error_set(&err, EVS_EFORBIDDEN, "%s needs the %s permission, which %s lacks", op,
                        auth_perm_name(perm), c->principal->name);
    else
        return true;
    dispatch_reply_error(c, true, req->id, &err);
    return false;
}

/* Whether the principal's write or delete permission covers every entity the request touches
 * (a prefix-limited permission may not): an append touching one entity outside them is refused
 * whole, nothing stored. Replies forbidden when not. */
static bool entities_allowed(conn_t *c, const codec_request_t *req, auth_perm_t perm) {
    if (!c->srv->auth || (perm != AUTH_WRITE && perm != AUTH_DELETE)) return true;
    const char *denied = NULL;
    for (size_t i = 0; !denied && i < req->nevents; i++)
        if (!auth_allows(c->principal, perm, req->events[i].entity_id))
            denied = req->events[i].entity_id;
    if (!denied && (req->present & ARG_ENTITY_ID) &&
        !auth_allows(c->principal, perm, req->entity_id))
        denied = req->entity_id;
    if (!denied) return true;
    codec_error_t err;
    codec_error_set(&err, EVS_EFORBIDDEN,
                    "%s lacks the %s permission for entity \"%.*s\" (its %s permission is "
                    "limited to entity-id prefixes); nothing was done",
                    c->principal->name, auth_perm_name(perm), 255, denied, auth_perm_name(perm));
    dispatch_reply_error(c, true, req->id, &err);
    return false;
}

/* ---------------------------------------------------------------- the table */

/* Each op: its name on the wire, its handler, the arguments it cannot do without (ARG_* bits,
 * checked before the handler runs) and how a bad_request names them, the optional arguments
 * it takes (any other argument is bad_request naming it), and the permission it needs with an
 * auth_file (auth.h; AUTH_NONE: also before authenticating; an op added without thought is
 * AUTH_ADMIN). The index of an op is its slot in the stats' request counters. */
static const struct {
    const char *name;
    op_handler_t handler;
    uint32_t needs;
    const char *needs_text;
    uint32_t optional;
    auth_perm_t perm;
} op_table[] = {
    {"ping", op_ping, 0, NULL, 0, AUTH_NONE},
    {"append", op_append, ARG_EVENTS, "events", ARG_TRACKING, AUTH_WRITE},
    {"get-by-entity", op_get_by_entity, ARG_ENTITY_ID, "entity_id",
     ARG_FROM_VERSION | ARG_LIMIT | ARG_BACKWARDS, AUTH_READ},
    {"get-by-topic", op_get_by_topic, ARG_TOPIC, "topic", ARG_AFTER | ARG_LIMIT | ARG_PARTITION,
     AUTH_READ},
    {"get-by-id", op_get_by_id, ARG_EVENT_ID, "event_id", 0, AUTH_READ},
    {"read-all", op_read_all, 0, NULL, ARG_AFTER | ARG_LIMIT | ARG_TOPICS | ARG_PARTITION,
     AUTH_READ},
    {"subscribe", op_subscribe, 0, NULL,
     ARG_AFTER | ARG_TOPICS | ARG_ENTITY_PREFIX | ARG_CONSUMER | ARG_PARTITION | ARG_STANDBY,
     AUTH_READ},
    {"unsubscribe", op_unsubscribe, ARG_SUB, "sub", 0, AUTH_READ},
    {"delete-entity", op_delete_entity, ARG_ENTITY_ID, "entity_id", 0, AUTH_DELETE},
    {"put-snapshot", op_put_snapshot, ARG_ENTITY_ID | ARG_VERSION | ARG_TOPIC | ARG_PAYLOAD,
     "entity_id, version, topic and payload", 0, AUTH_WRITE},
    {"get-snapshot", op_get_snapshot, ARG_ENTITY_ID, "entity_id", ARG_MAX_VERSION, AUTH_READ},
    {"stats", op_stats, 0, NULL, 0, AUTH_ADMIN},
    {"config", op_config, 0, NULL, 0, AUTH_ADMIN},
    {"auth", op_auth, ARG_TOKEN, "token", 0, AUTH_NONE},
    {"delete-snapshots", op_delete_snapshots, ARG_ENTITY_ID, "entity_id", 0, AUTH_WRITE},
    {"checkpoint", op_checkpoint, ARG_CONSUMER | ARG_POSITION, "consumer and position", 0,
     AUTH_WRITE},
    {"get-checkpoint", op_get_checkpoint, ARG_CONSUMER, "consumer", 0, AUTH_READ},
    {"delete-checkpoint", op_delete_checkpoint, ARG_CONSUMER, "consumer", 0, AUTH_ADMIN},
    {"consumers", op_consumers, 0, NULL, 0, AUTH_READ},
    {"health", op_health, 0, NULL, 0, AUTH_NONE},
};
#define NOPS (sizeof op_table / sizeof op_table[0])

static void op_stats(conn_t *c, codec_request_t *req) {
    const char *names[NOPS];
    dispatch_op_names(names, NOPS);
    stats_gauges_t gauges;
    stats_consumers_refresh(&c->srv->consumers, c->srv->store, STATS_CONSUMERS_FRESH_MS);
    server_gauges(c->srv, &gauges);
    msgpack_packer pk;
    size_t start = reply_begin(c, &pk, req->id, 1);
    codec_pack_key(&pk, "stats");
    stats_pack(&pk, &c->srv->stats, &gauges, names, NOPS);
    reply_end(c, start);
}

/* The request being handled. Requests are handled one at a time and handlers copy what they
 * keep, so one request struct serves them all and its msgpack zone is reused (freed after a
 * large request, so that one big frame does not pin its memory). */
static codec_request_t current;

/* Runs the op that req names: counts it, replies bad_request when the op is unknown or an
 * argument it needs is missing, else calls its handler. */
static void run_op(conn_t *c, codec_request_t *req) {
    codec_error_t err;
    size_t i = 0;
    while (i < NOPS && strcmp(op_table[i].name, req->op) != 0)
        i++;
    if (i == NOPS) {
        c->srv->stats.requests_unknown++;
        reply_op = STATS_OP_UNKNOWN;
        codec_error_set(&err, EVS_EBAD_REQUEST, "unknown op \"%.64s\"", req->op);
        dispatch_reply_error(c, true, req->id, &err);
        return;
    }
    if (i < STATS_MAX_OPS) c->srv->stats.requests[i]++;
    reply_op = i < STATS_MAX_OPS ? i : STATS_OP_INVALID;
    if (!op_allowed(c, req, op_table[i].name, op_table[i].perm)) return;
    uint32_t unknown = req->present & ~(op_table[i].needs | op_table[i].optional);
    if (unknown) {
        codec_error_set(&err, EVS_EBAD_REQUEST, "%s takes no argument \"%s\"", op_table[i].name,
                        codec_arg_name(unknown & -unknown));
        dispatch_reply_error(c, true, req->id, &err);
        return;
    }
    if ((req->present & op_table[i].needs) != op_table[i].needs) {
        codec_error_set(&err, EVS_EBAD_REQUEST, "%s needs %s", op_table[i].name,
                        op_table[i].needs_text);
        dispatch_reply_error(c, true, req->id, &err);
        return;
    }
    if (!entities_allowed(c, req, op_table[i].perm)) return;
    op_table[i].handler(c, req);
}

void dispatch_frame(conn_t *c, const uint8_t *body, size_t len) {
    codec_request_t *req = &current;
    codec_error_t err;
    frame_arrived_ns = uv_hrtime();
    if (codec_request_decode_reusing(body, len, req, &err) == 0) {
        run_op(c, req);
        reply_op = STATS_OP_INVALID;
    } else {
        c->srv->stats.requests_invalid++;
        dispatch_reply_error(c, req->has_id, req->id, &err);
    }
    if (len > 64 * 1024) codec_request_free(req);
}

size_t dispatch_op_index(const char *op) {
    for (size_t i = 0; i < NOPS && i < STATS_MAX_OPS; i++)
        if (strcmp(op_table[i].name, op) == 0) return i;
    return STATS_OP_UNKNOWN;
}

size_t dispatch_op_names(const char **names, size_t max) {
    size_t n = 0;
    for (; n < NOPS && n < max; n++)
        names[n] = op_table[n].name;
    return n;
}

void dispatch_free(void) {
    codec_request_free(&current);
}
