/* group_commit.c: batching appends into transactions on the writer connection (see
 * group_commit.h for the protocol of one transaction). */
#include "group_commit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uthash.h>

#include "log.h"

enum phase { PH_IDLE, PH_CHECK, PH_WRITE, PH_DELETE };

/* What the group knows about one entity: the version its next event takes. stamp/tent hold the
 * tentative next version while one request is being decided. */
typedef struct entity_node {
    const char *id; /* points into a request's event */
    uint64_t next;
    size_t stamp;
    uint64_t tent;
    UT_hash_handle hh;
} entity_node_t;

/* One event id known to be stored: read in phase 1, or accepted earlier in the group. */
typedef struct id_node {
    uint8_t id[16];
    char *entity_id;
    bool owns_entity;
    uint64_t version, position;
    UT_hash_handle hh;
} id_node_t;

/* What the daemon knows between groups: the next version of entities it has seen, valid while
 * the position sequence still holds seq (the value after this connection's last COMMIT). */
typedef struct cache_node {
    uint64_t next;
    UT_hash_handle hh;
    char id[]; /* the entity id, NUL-terminated */
} cache_node_t;

/* Most entities remembered; past it the cache starts empty again. */
#define GC_CACHE_MAX 200000
/* Groups sent the slow way, after an entity taken for new turned out to have events, before the
 * fast path takes unseen entities for new again. */
#define GC_GUESS_BACKOFF 64

#define NPARAMS 8

struct group_commit {
    pg_conn_t *w;
    store_t *store;
    gc_commit_hook hook;
    void *hook_arg;
    gc_request_t *qhead, *qtail;
    gc_request_t *group; /* in flight, in arrival order */
    size_t group_events;
    enum phase phase;
    int nresults;
    bool failed, transient;
    char why[256];
    int64_t first_position; /* of the block taken in phase 1 */
    entity_node_t *entities;
    id_node_t *ids;
    entity_node_t *entity_nodes; /* one per event of the group: no allocation per entity */
    size_t naccepted;
    pg_buf_t bufs[NPARAMS];
    /* The fast path (migrations/003_append_guard.sql). */
    cache_node_t *cache;
    size_t cache_n;
    bool cache_valid; /* cache_seq is the sequence's value after our last COMMIT */
    int64_t cache_seq;
    bool fast;        /* the group in flight was decided from the cache */
    char guard[6];    /* the guard's SQLSTATE when it refused the group in flight */
    unsigned guess_backoff;
    int64_t delete_position; /* the position a delete-entity took (it changes evs_events) */
    uint64_t nfast, nslow, nguard; /* groups sent each way, guards that refused */
    bool held;                     /* gc_set_held */
};

static void start_next(group_commit_t *g);

static int64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---------------------------------------------------------------- queue */

static void enqueue(group_commit_t *g, gc_request_t *r) {
    r->next = NULL;
    if (g->qtail) g->qtail->next = r;
    else g->qhead = r;
    g->qtail = r;
}

static gc_request_t *dequeue(group_commit_t *g) {
    gc_request_t *r = g->qhead;
    if (r) {
        g->qhead = r->next;
        if (!g->qhead) g->qtail = NULL;
        r->next = NULL;
    }
    return r;
}

static void fail_list(gc_request_t *r, int code, const char *why) {
    while (r) {
        gc_request_t *next = r->next;
        if (r->err.code == 0) codec_error_set(&r->err, code, "%s", why);
        r->done(r);
        r = next;
    }
}

/* ---------------------------------------------------------------- group state */

static void clear_group_state(group_commit_t *g) {
    entity_node_t *e, *et;
    HASH_ITER(hh, g->entities, e, et) HASH_DEL(g->entities, e);
    free(g->entity_nodes);
    g->entity_nodes = NULL;
    id_node_t *in, *it;
    HASH_ITER(hh, g->ids, in, it) {
        HASH_DEL(g->ids, in);
        if (in->owns_entity) free(in->entity_id);
        free(in);
    }
    g->nresults = 0;
    g->failed = g->transient = false;
    g->why[0] = '\0';
    g->naccepted = 0;
    g->fast = false;
    g->guard[0] = '\0';
}

/* ---------------------------------------------------------------- the version cache */

static void cache_clear(group_commit_t *g) {
    cache_node_t *c, *ct;
    HASH_ITER(hh, g->cache, c, ct) {
        HASH_DEL(g->cache, c);
        free(c);
    }
    g->cache_n = 0;
}

/* Forgets everything: the next group reads the latest versions again. */
static void cache_invalidate(group_commit_t *g) {
    cache_clear(g);
    g->cache_valid = false;
}

static cache_node_t *cache_find(group_commit_t *g, const char *id) {
    cache_node_t *c;
    HASH_FIND_STR(g->cache, id, c);
    return c;
}

/* After a COMMIT: every entity of the group is at e->next, and the sequence at seq. */
static void cache_update(group_commit_t *g, int64_t seq) {
    for (entity_node_t *e = g->entities; e; e = e->hh.next) {
        cache_node_t *c = cache_find(g, e->id);
        if (!c) {
            if (g->cache_n >= GC_CACHE_MAX) cache_clear(g);
            size_t len = strlen(e->id);
            if (!(c = malloc(sizeof *c + len + 1))) {
                cache_invalidate(g);
                return;
            }
            memcpy(c->id, e->id, len + 1);
            HASH_ADD_KEYPTR(hh, g->cache, c->id, len, c);
            g->cache_n++;
        }
        c->next = e->next;
    }
    g->cache_seq = seq;
    g->cache_valid = true;
}

/* Records the first failure of the transaction in flight. */
static void note_failure(group_commit_t *g, PGresult *res) {
    if (g->failed) return;
    g->failed = true;
    g->transient = res ? pg_result_is_transient(res) : true;
    const char *msg = res ? PQresultErrorMessage(res) : "the connection to PostgreSQL was lost";
    snprintf(g->why, sizeof g->why, "%s", msg && *msg ? msg : "PostgreSQL failed the write");
    size_t n = strlen(g->why);
    while (n && (g->why[n - 1] == '\n' || g->why[n - 1] == ' ')) g->why[--n] = '\0';
}

/* Finishes the group: on success calls the commit hook with the accepted events in position
 * order, then every request's done. */
static void finish_group(group_commit_t *g, bool ok) {
    gc_request_t *list = g->group;
    size_t block = g->group_events; /* positions reserved by the transaction */
    bool append = g->phase != PH_DELETE;
    g->group = NULL;
    g->group_events = 0;
    g->phase = PH_IDLE;
    if (!ok) {
        int code = g->transient ? EVS_EUNAVAILABLE : EVS_EINTERNAL;
        char why[400];
        snprintf(why, sizeof why, "the write did not commit (%s)%s", g->why,
                 g->transient ? "; retry it (an append with the same event ids)" : "");
        log_warn("pg", "group of appends failed: %s", g->why);
        cache_invalidate(g); /* it may or may not have committed */
        clear_group_state(g);
        fail_list(list, code, why);
    } else {
        if (g->hook && g->naccepted) {
            evs_event_t *all = malloc(g->naccepted * sizeof *all);
            size_t k = 0;
            if (all) {
                for (gc_request_t *r = list; r; r = r->next)
                    if (r->written)
                        for (size_t i = 0; i < r->n; i++) all[k++] = r->events[i];
                g->hook(g->hook_arg, all, k, (uint64_t)g->first_position,
                        (uint64_t)g->first_position + block - 1);
                free(all);
            } else {
                log_error("pg", "out of memory: subscribers miss a committed group");
            }
        }
        if (append) cache_update(g, g->first_position + (int64_t)block - 1);
        clear_group_state(g);
        /* The next transaction goes out before the replies are written, so that PostgreSQL
         * works on it while the daemon answers this one's clients. */
        start_next(g);
        while (list) {
            gc_request_t *next = list->next;
            list->done(list);
            list = next;
        }
        return;
    }
    start_next(g);
}

/* ---------------------------------------------------------------- deciding */

static void set_version_conflict(codec_error_t *err, const char *entity, uint64_t asked,
                                 uint64_t next) {
    codec_error_set(err, EVS_ECONFLICT,
                    "entity %.255s is at version %lld: version %llu is not its next version "
                    "(%llu); reload the entity and retry",
                    entity, (long long)next - 1, (unsigned long long)asked,
                    (unsigned long long)next);
    err->has_entity = true;
    snprintf(err->entity_id, sizeof err->entity_id, "%s", entity);
    err->has_version = true;
    err->version = asked;
    err->has_current = true;
    err->current_version = (int64_t)next - 1;
}

static id_node_t *find_id(group_commit_t *g, const uint8_t id[16]) {
    id_node_t *n;
    HASH_FIND(hh, g->ids, id, 16, n);
    return n;
}

static entity_node_t *find_entity(group_commit_t *g, const char *id) {
    entity_node_t *e;
    HASH_FIND_STR(g->entities, id, e);
    return e;
}

/* The idempotent-retry rule of store.h: every event id already stored (or accepted earlier in
 * this group) at the same entity and, when given, the same version. */
static bool is_retry(group_commit_t *g, gc_request_t *r) {
    /* An id the daemon drew for this request (122 random bits) cannot be stored yet. */
    for (size_t i = 0; i < r->n; i++)
        if (!r->events[i].has_event_id) return false;
    for (size_t i = 0; i < r->n; i++) {
        const evs_event_t *ev = &r->events[i];
        id_node_t *f = find_id(g, ev->event_id);
        if (!f || strcmp(f->entity_id, ev->entity_id) != 0) return false;
        if (ev->has_version && ev->version != f->version) return false;
    }
    for (size_t i = 0; i < r->n; i++) {
        id_node_t *f = find_id(g, r->events[i].event_id);
        r->positions[i] = f->position;
        r->versions[i] = f->version;
    }
    return true;
}

/* Decides one request against what is stored and what the group accepted before it: fills its
 * versions and positions and records its ids, or sets its conflict and changes nothing. */
static void decide(group_commit_t *g, gc_request_t *r, size_t stamp, int64_t *next_pos) {
    if (is_retry(g, r)) return;
    size_t added = 0;
    bool ok = true;
    for (size_t i = 0; i < r->n && ok; i++) {
        evs_event_t *ev = &r->events[i];
        entity_node_t *e = find_entity(g, ev->entity_id);
        if (e->stamp != stamp) {
            e->stamp = stamp;
            e->tent = e->next;
        }
        if (ev->has_version && ev->version != e->tent) {
            set_version_conflict(&r->err, ev->entity_id, ev->version, e->tent);
            ok = false;
            break;
        }
        r->versions[i] = e->tent++;
        if (!ev->has_event_id) continue; /* drawn by the daemon: nothing to look up */
        if (find_id(g, ev->event_id)) {
            char text[37];
            evs_uuid_format(ev->event_id, text);
            codec_error_set(&r->err, EVS_ECONFLICT,
                            "event id %s is already stored (or repeated in this request) for "
                            "another event",
                            text);
            r->err.has_event_id = true;
            memcpy(r->err.event_id, ev->event_id, 16);
            ok = false;
            break;
        }
        id_node_t *in = calloc(1, sizeof *in);
        if (!in) {
            codec_error_set(&r->err, EVS_EINTERNAL, "out of memory");
            ok = false;
            break;
        }
        memcpy(in->id, ev->event_id, 16);
        in->entity_id = ev->entity_id;
        in->version = r->versions[i];
        HASH_ADD(hh, g->ids, id, 16, in);
        added++;
    }
    if (!ok) {
        for (size_t i = 0; i < r->n && added; i++) {
            if (!r->events[i].has_event_id) continue;
            id_node_t *in = find_id(g, r->events[i].event_id);
            if (!in || in->entity_id != r->events[i].entity_id) break;
            added--;
            HASH_DEL(g->ids, in);
            free(in);
        }
        /* Entities touched keep next; their stamp marks tent as belonging to a dead request. */
        for (size_t i = 0; i < r->n; i++) find_entity(g, r->events[i].entity_id)->stamp = 0;
        return;
    }
    for (size_t i = 0; i < r->n; i++) {
        evs_event_t *ev = &r->events[i];
        entity_node_t *e = find_entity(g, ev->entity_id);
        e->next = e->tent;
        ev->version = r->versions[i];
        ev->position = r->positions[i] = (uint64_t)(*next_pos)++;
        if (ev->has_event_id) find_id(g, ev->event_id)->position = ev->position;
    }
    r->written = true;
    g->naccepted += r->n;
}

/* ---------------------------------------------------------------- phase 2 */

static const char INSERT_SQL[] =
    "INSERT INTO evs_events (position, event_id, entity_id, version, topic, stored_at, payload, "
    "metadata) SELECT p, i, e, v, t, $6, d, m FROM unnest($1::bigint[], $2::uuid[], $3::text[], "
    "$4::bigint[], $5::text[], $7::bytea[], $8::bytea[]) AS u(p, i, e, v, t, d, m)";

static void on_write(void *arg, pg_event_t ev, PGresult *res);

/* Decides every request of the group (positions from first_position on), then queues the INSERT
 * of the accepted events with the NOTIFY (or a ROLLBACK when out of memory), and COMMIT. */
static void queue_write(group_commit_t *g) {
    int64_t next_pos = g->first_position;
    size_t stamp = 1;
    for (gc_request_t *r = g->group; r; r = r->next) decide(g, r, stamp++, &next_pos);
    if (g->naccepted) {
        int64_t ts = now_us();
        bool meta_nulls = false;
        size_t n = g->naccepted;
        for (int k = 0; k < NPARAMS; k++) pg_buf_reset(&g->bufs[k]);
        for (gc_request_t *r = g->group; r; r = r->next)
            if (r->written)
                for (size_t i = 0; i < r->n; i++) meta_nulls |= r->events[i].metadata == NULL;
        pg_buf_array_begin(&g->bufs[0], PG_INT8OID, n, false);
        pg_buf_array_begin(&g->bufs[1], PG_UUIDOID, n, false);
        pg_buf_array_begin(&g->bufs[2], PG_TEXTOID, n, false);
        pg_buf_array_begin(&g->bufs[3], PG_INT8OID, n, false);
        pg_buf_array_begin(&g->bufs[4], PG_TEXTOID, n, false);
        pg_buf_put_i64(&g->bufs[5], ts);
        pg_buf_array_begin(&g->bufs[6], PG_BYTEAOID, n, false);
        pg_buf_array_begin(&g->bufs[7], PG_BYTEAOID, n, meta_nulls);
        for (gc_request_t *r = g->group; r; r = r->next) {
            if (!r->written) continue;
            for (size_t i = 0; i < r->n; i++) {
                evs_event_t *ev = &r->events[i];
                ev->timestamp = ts;
                pg_buf_put_i32(&g->bufs[0], 8);
                pg_buf_put_i64(&g->bufs[0], (int64_t)ev->position);
                pg_buf_array_elem(&g->bufs[1], ev->event_id, 16);
                pg_buf_array_elem(&g->bufs[2], ev->entity_id, strlen(ev->entity_id));
                pg_buf_put_i32(&g->bufs[3], 8);
                pg_buf_put_i64(&g->bufs[3], (int64_t)ev->version);
                pg_buf_array_elem(&g->bufs[4], ev->topic, strlen(ev->topic));
                pg_buf_array_elem(&g->bufs[6], ev->payload ? (const void *)ev->payload : "",
                                  ev->payload_len);
                pg_buf_array_elem(&g->bufs[7], ev->metadata, ev->metadata_len);
            }
        }
        const char *values[NPARAMS];
        int lengths[NPARAMS], formats[NPARAMS];
        bool oom = false;
        for (int k = 0; k < NPARAMS; k++) {
            values[k] = g->bufs[k].data;
            lengths[k] = (int)g->bufs[k].len;
            formats[k] = 1;
            oom |= g->bufs[k].failed;
        }
        if (oom) {
            /* Nothing was written: roll back and fail the group (retryable). */
            note_failure(g, NULL);
            snprintf(g->why, sizeof g->why, "out of memory");
            pg_conn_send(g->w, "ROLLBACK", 0, NULL, NULL, NULL, NULL, false);
        } else {
            pg_conn_send_prepared(g->w, "gc_insert", NPARAMS, values, lengths, formats, false);
            /* The doorbell of every daemon's live feed: the last position written, no data. */
            char notify[80];
            snprintf(notify, sizeof notify, "NOTIFY " GC_NOTIFY_CHANNEL ", '%lld'",
                     (long long)(next_pos - 1));
            pg_conn_send(g->w, notify, 0, NULL, NULL, NULL, NULL, false);
        }
    }
    pg_conn_send(g->w, "COMMIT", 0, NULL, NULL, NULL, NULL, false);
}

/* Phase 2 of the slow path, once phase 1's results are in. */
static void send_write(group_commit_t *g) {
    g->phase = PH_WRITE;
    g->nresults = 0;
    queue_write(g);
    if (pg_conn_sync(g->w, on_write, g) != 0) {
        note_failure(g, NULL);
        finish_group(g, false);
    }
}

static void send_check(group_commit_t *g);

/* The guard refused the group and its transaction is rolled back: decide it again the slow way,
 * from scratch (nothing of the refused attempt was written or answered). */
static void on_guard_rollback(void *arg, pg_event_t ev, PGresult *res) {
    group_commit_t *g = arg;
    if (ev == PG_RESULT) {
        if (PQresultStatus(res) != PGRES_COMMAND_OK) note_failure(g, res);
        return;
    }
    if (ev == PG_LOST) note_failure(g, NULL);
    if (g->failed) {
        finish_group(g, false);
        return;
    }
    for (gc_request_t *r = g->group; r; r = r->next) {
        memset(&r->err, 0, sizeof r->err);
        r->written = false;
    }
    clear_group_state(g);
    send_check(g);
}

static void on_write(void *arg, pg_event_t ev, PGresult *res) {
    group_commit_t *g = arg;
    if (ev == PG_RESULT) {
        ExecStatusType st = PQresultStatus(res);
        g->nresults++;
        if (g->fast && !g->failed && !g->guard[0] && st == PGRES_FATAL_ERROR) {
            const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
            if (state && strncmp(state, "EVS0", 4) == 0) {
                snprintf(g->guard, sizeof g->guard, "%s", state);
                return;
            }
        }
        if (g->guard[0] && st == PGRES_PIPELINE_ABORTED) return;
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) note_failure(g, res);
        else if (strcmp(PQcmdStatus(res), "ROLLBACK") == 0 && !g->failed) {
            g->failed = true;
            snprintf(g->why, sizeof g->why, "the transaction was rolled back");
        }
        return;
    }
    if (ev == PG_LOST) note_failure(g, NULL);
    if (g->guard[0] && !g->failed) {
        /* Nothing was written: the transaction stopped at the guard. */
        g->nguard++;
        log_debug("pg", "the fast path was refused (%s); deciding the group again", g->guard);
        if (strcmp(g->guard, "EVS02") == 0) g->guess_backoff = GC_GUESS_BACKOFF;
        else if (strcmp(g->guard, "EVS01") == 0) cache_invalidate(g);
        pg_conn_send(g->w, "ROLLBACK", 0, NULL, NULL, NULL, NULL, false);
        if (pg_conn_sync(g->w, on_guard_rollback, g) != 0) {
            note_failure(g, NULL);
            finish_group(g, false);
        }
        return;
    }
    finish_group(g, !g->failed);
}

/* ---------------------------------------------------------------- phase 1 */

static const char CHECK_SQL[] =
    "SELECT 0::int4, e, (SELECT max(version) FROM evs_events WHERE entity_id = e), NULL::uuid, "
    "NULL::bigint FROM unnest($1::text[]) AS u(e) "
    "UNION ALL "
    "SELECT 1, entity_id, version, event_id, position FROM evs_events "
    "WHERE event_id = ANY($2::uuid[])";

static void read_check(group_commit_t *g, PGresult *res) {
    for (int row = 0; row < PQntuples(res); row++) {
        const char *entity = PQgetvalue(res, row, 1);
        if (pg_get_i32(res, row, 0) == 0) {
            entity_node_t *e = find_entity(g, entity);
            if (e && !PQgetisnull(res, row, 2)) e->next = (uint64_t)pg_get_i64(res, row, 2) + 1;
            continue;
        }
        id_node_t *in = calloc(1, sizeof *in);
        if (!in || !(in->entity_id = strdup(entity))) {
            free(in);
            g->failed = true;
            snprintf(g->why, sizeof g->why, "out of memory");
            return;
        }
        in->owns_entity = true;
        memcpy(in->id, PQgetvalue(res, row, 3), 16);
        in->version = (uint64_t)pg_get_i64(res, row, 2);
        in->position = (uint64_t)pg_get_i64(res, row, 4);
        id_node_t *dup = find_id(g, in->id);
        if (dup) {
            free(in->entity_id);
            free(in);
            continue;
        }
        HASH_ADD(hh, g->ids, id, 16, in);
    }
}

static void on_check(void *arg, pg_event_t ev, PGresult *res) {
    group_commit_t *g = arg;
    if (ev == PG_RESULT) {
        ExecStatusType st = PQresultStatus(res);
        int index = g->nresults++;
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
            note_failure(g, res);
            return;
        }
        if (index == 2 && PQntuples(res) == 1)
            g->first_position = pg_get_i64(res, 0, 0) - (int64_t)g->group_events + 1;
        else if (index == 3)
            read_check(g, res);
        return;
    }
    if (ev == PG_LOST) {
        note_failure(g, NULL);
        finish_group(g, false);
        return;
    }
    if (g->failed || g->nresults != 4) {
        /* The transaction is open and failed: roll it back before the next one. */
        pg_conn_send(g->w, "ROLLBACK", 0, NULL, NULL, NULL, NULL, false);
        g->phase = PH_WRITE;
        if (pg_conn_sync(g->w, on_write, g) != 0) finish_group(g, false);
        return;
    }
    send_write(g);
}

/* Lists the group's entities (g->entities, one node each in g->entity_nodes) and resets the
 * parameter buffers. Returns the number of entities, or -1 when out of memory. */
static ptrdiff_t add_entities(group_commit_t *g, size_t *total_out) {
    size_t total = 0;
    for (gc_request_t *r = g->group; r; r = r->next) total += r->n;
    *total_out = total;
    for (int k = 0; k < NPARAMS; k++) pg_buf_reset(&g->bufs[k]);
    g->entity_nodes = calloc(total, sizeof *g->entity_nodes);
    if (!g->entity_nodes) return -1;
    size_t nent = 0;
    for (gc_request_t *r = g->group; r; r = r->next)
        for (size_t i = 0; i < r->n; i++) {
            if (find_entity(g, r->events[i].entity_id)) continue;
            entity_node_t *e = &g->entity_nodes[nent++];
            e->id = r->events[i].entity_id;
            HASH_ADD_KEYPTR(hh, g->entities, e->id, strlen(e->id), e);
        }
    return (ptrdiff_t)nent;
}

/* The fast path: when the cache is valid, the group is decided now from the cache (an entity
 * the cache does not hold is taken for new) and sent in one round trip: BEGIN, the lock, the
 * guard (which proves under the lock that nothing changed since our last COMMIT and that the
 * entities taken for new and the client-chosen event ids are not stored, and takes the block of
 * positions), the INSERT, NOTIFY, COMMIT. Returns false, having sent nothing, when the group
 * must go the slow way. */
static bool send_fast(group_commit_t *g) {
    if (!g->cache_valid) return false;
    size_t total;
    ptrdiff_t nent = add_entities(g, &total);
    if (nent < 0) {
        clear_group_state(g);
        return false; /* the slow path reports it */
    }
    size_t nnew = 0;
    for (ptrdiff_t k = 0; k < nent; k++) {
        entity_node_t *e = &g->entity_nodes[k];
        cache_node_t *c = cache_find(g, e->id);
        if (c) e->next = c->next;
        else nnew++;
    }
    if (nnew && g->guess_backoff) {
        g->guess_backoff--;
        clear_group_state(g);
        return false;
    }
    pg_buf_array_begin(&g->bufs[0], PG_TEXTOID, nnew, false);
    for (ptrdiff_t k = 0; k < nent && nnew; k++)
        if (!cache_find(g, g->entity_nodes[k].id))
            pg_buf_array_elem(&g->bufs[0], g->entity_nodes[k].id, strlen(g->entity_nodes[k].id));
    size_t nids = 0;
    for (gc_request_t *r = g->group; r; r = r->next)
        for (size_t i = 0; i < r->n; i++) nids += r->events[i].has_event_id ? 1 : 0;
    pg_buf_array_begin(&g->bufs[1], PG_UUIDOID, nids, false);
    for (gc_request_t *r = g->group; r; r = r->next)
        for (size_t i = 0; i < r->n; i++)
            if (r->events[i].has_event_id)
                pg_buf_array_elem(&g->bufs[1], r->events[i].event_id, 16);
    pg_buf_put_i64(&g->bufs[2], g->cache_seq);
    pg_buf_put_i64(&g->bufs[3], (int64_t)total);
    for (int k = 0; k < 4; k++)
        if (g->bufs[k].failed) {
            clear_group_state(g);
            return false;
        }
    g->group_events = total;
    g->first_position = g->cache_seq + 1;
    g->fast = true;
    g->phase = PH_WRITE;
    g->nresults = 0;
    g->nfast++;
    static const int bin[4] = {1, 1, 1, 1};
    const char *vals[4];
    int lens[4];
    /* Our parameter buffers are copied into libpq's output buffer by the call. */
    vals[0] = g->bufs[2].data, lens[0] = (int)g->bufs[2].len;
    vals[1] = g->bufs[3].data, lens[1] = (int)g->bufs[3].len;
    vals[2] = g->bufs[0].data, lens[2] = (int)g->bufs[0].len;
    vals[3] = g->bufs[1].data, lens[3] = (int)g->bufs[1].len;
    pg_conn_send(g->w, "BEGIN", 0, NULL, NULL, NULL, NULL, false);
    pg_conn_send_prepared(g->w, "gc_lock", 0, NULL, NULL, NULL, false);
    pg_conn_send_prepared(g->w, "gc_guard", 4, vals, lens, bin, true);
    queue_write(g);
    if (pg_conn_sync(g->w, on_write, g) != 0) {
        note_failure(g, NULL);
        finish_group(g, false);
    }
    return true;
}

static void send_check(group_commit_t *g) {
    size_t total;
    ptrdiff_t snent = add_entities(g, &total);
    if (snent < 0) {
        note_failure(g, NULL);
        snprintf(g->why, sizeof g->why, "out of memory");
        finish_group(g, false);
        return;
    }
    size_t nent = (size_t)snent;
    g->nslow++;
    pg_buf_array_begin(&g->bufs[0], PG_TEXTOID, nent, false);
    for (size_t k = 0; k < nent; k++)
        pg_buf_array_elem(&g->bufs[0], g->entity_nodes[k].id, strlen(g->entity_nodes[k].id));
    /* Only ids the clients chose can already be stored. */
    size_t nids = 0;
    for (gc_request_t *r = g->group; r; r = r->next)
        for (size_t i = 0; i < r->n; i++) nids += r->events[i].has_event_id ? 1 : 0;
    pg_buf_array_begin(&g->bufs[1], PG_UUIDOID, nids, false);
    for (gc_request_t *r = g->group; r; r = r->next)
        for (size_t i = 0; i < r->n; i++)
            if (r->events[i].has_event_id)
                pg_buf_array_elem(&g->bufs[1], r->events[i].event_id, 16);
    pg_buf_put_i64(&g->bufs[2], (int64_t)total);
    if (g->bufs[0].failed || g->bufs[1].failed || g->bufs[2].failed) {
        note_failure(g, NULL);
        snprintf(g->why, sizeof g->why, "out of memory");
        finish_group(g, false);
        return;
    }
    g->group_events = total;
    g->phase = PH_CHECK;
    g->nresults = 0;
    static const int bin[2] = {1, 1};
    const char *check_vals[2] = {g->bufs[0].data, g->bufs[1].data};
    int check_lens[2] = {(int)g->bufs[0].len, (int)g->bufs[1].len};
    const char *seq_vals[1] = {g->bufs[2].data};
    int seq_lens[1] = {(int)g->bufs[2].len};
    pg_conn_send(g->w, "BEGIN", 0, NULL, NULL, NULL, NULL, false);
    pg_conn_send_prepared(g->w, "gc_lock", 0, NULL, NULL, NULL, false);
    pg_conn_send_prepared(g->w, "gc_positions", 1, seq_vals, seq_lens, bin, true);
    pg_conn_send_prepared(g->w, "gc_check", 2, check_vals, check_lens, bin, true);
    if (pg_conn_sync(g->w, on_check, g) != 0) {
        note_failure(g, NULL);
        finish_group(g, false);
    }
}

/* ---------------------------------------------------------------- delete */

static void on_delete(void *arg, pg_event_t ev, PGresult *res) {
    group_commit_t *g = arg;
    if (ev == PG_RESULT) {
        ExecStatusType st = PQresultStatus(res);
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) note_failure(g, res);
        else if (g->nresults == 2 && g->group)
            g->group->deleted = strtoull(PQcmdTuples(res), NULL, 10);
        else if (g->nresults == 4 && PQntuples(res) == 1)
            g->delete_position = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        else if (g->nresults == 5 && strcmp(PQcmdStatus(res), "COMMIT") != 0 && !g->failed) {
            g->failed = true;
            snprintf(g->why, sizeof g->why, "the transaction was rolled back");
        }
        g->nresults++;
        return;
    }
    if (ev == PG_LOST) note_failure(g, NULL);
    if (!g->failed && g->cache_valid && g->delete_position == g->cache_seq + 1) {
        /* Nothing else changed since our last COMMIT: the cache stays valid, the entity is new. */
        cache_node_t *c = cache_find(g, g->group->entity_id);
        if (c) c->next = 0;
        g->cache_seq = g->delete_position;
    } else {
        cache_invalidate(g);
    }
    finish_group(g, !g->failed);
}

static void send_delete(group_commit_t *g) {
    gc_request_t *r = g->group;
    g->phase = PH_DELETE;
    g->nresults = 0;
    const char *vals[1] = {r->entity_id};
    pg_conn_send(g->w, "BEGIN", 0, NULL, NULL, NULL, NULL, false);
    pg_conn_send_prepared(g->w, "gc_lock", 0, NULL, NULL, NULL, false);
    pg_conn_send(g->w, "DELETE FROM evs_events WHERE entity_id = $1", 1, NULL, vals, NULL, NULL,
                 false);
    pg_conn_send(g->w, "DELETE FROM evs_snapshots WHERE entity_id = $1", 1, NULL, vals, NULL,
                 NULL, false);
    /* A delete takes a position too, under the lock: every daemon's version cache sees that
     * evs_events changed (migrations/003_append_guard.sql). The position stays a gap. */
    g->delete_position = 0;
    pg_conn_send(g->w, "SELECT nextval('evs_position_seq')", 0, NULL, NULL, NULL, NULL, false);
    pg_conn_send(g->w, "COMMIT", 0, NULL, NULL, NULL, NULL, false);
    if (pg_conn_sync(g->w, on_delete, g) != 0) {
        note_failure(g, NULL);
        finish_group(g, false);
    }
}

/* ---------------------------------------------------------------- driving */

/* Starts the next transaction when none is in flight: a delete alone, or as many queued appends
 * as fit the group limits (at least one). */
static void start_next(group_commit_t *g) {
    if (g->phase != PH_IDLE || g->held || !pg_conn_is_ready(g->w)) return;
    while (g->qhead && g->qhead->cancelled) {
        gc_request_t *r = dequeue(g);
        codec_error_set(&r->err, EVS_EUNAVAILABLE, "cancelled before it was sent");
        r->done(r);
    }
    if (!g->qhead) return;
    if (g->qhead->is_delete) {
        g->group = dequeue(g);
        send_delete(g);
        return;
    }
    gc_request_t *tail = NULL;
    size_t events = 0, bytes = 0;
    while (g->qhead && !g->qhead->is_delete) {
        gc_request_t *r = g->qhead;
        if (r->cancelled) {
            dequeue(g);
            codec_error_set(&r->err, EVS_EUNAVAILABLE, "cancelled before it was sent");
            r->done(r);
            continue;
        }
        if (tail && (events + r->n > GC_MAX_GROUP_EVENTS || bytes + r->bytes > GC_MAX_GROUP_BYTES))
            break;
        dequeue(g);
        events += r->n;
        bytes += r->bytes;
        if (tail) tail->next = r;
        else g->group = r;
        tail = r;
    }
    if (!tail) {
        start_next(g); /* everything before the next delete was cancelled */
        return;
    }
    if (!send_fast(g)) send_check(g);
}

group_commit_t *gc_new(pg_conn_t *writer, store_t *store) {
    group_commit_t *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->w = writer;
    g->store = store;
    return g;
}

void gc_set_commit_hook(group_commit_t *g, gc_commit_hook hook, void *arg) {
    g->hook = hook;
    g->hook_arg = arg;
}

void gc_free(group_commit_t *g) {
    if (!g) return;
    gc_request_t *list = g->group;
    g->group = NULL;
    clear_group_state(g);
    fail_list(list, EVS_EUNAVAILABLE, "the store is closing");
    list = g->qhead;
    g->qhead = g->qtail = NULL;
    fail_list(list, EVS_EUNAVAILABLE, "the store is closing");
    for (int k = 0; k < NPARAMS; k++) pg_buf_free(&g->bufs[k]);
    log_debug("pg", "group commit: %llu groups decided from the cache, %llu read first, %llu "
              "refused by the guard", (unsigned long long)g->nfast, (unsigned long long)g->nslow,
              (unsigned long long)g->nguard);
    cache_clear(g);
    free(g);
}

void gc_submit(group_commit_t *g, gc_request_t *r) {
    enqueue(g, r);
    start_next(g);
}

static void on_prepared(void *arg, pg_event_t ev, PGresult *res) {
    group_commit_t *g = arg;
    if (ev == PG_RESULT && PQresultStatus(res) != PGRES_COMMAND_OK) {
        log_error("pg", "preparing the append statements failed: %s", PQresultErrorMessage(res));
        pg_conn_fail(g->w, "cannot prepare statements");
    }
}

/* Prepares the statements of every transaction once per connection (they are planned once,
 * generically: they only ever use the indexes named in the migrations). Queued before any work,
 * so nothing waits for it. */
static void prepare(group_commit_t *g) {
    static const Oid positions_types[1] = {PG_INT8OID};
    static const Oid check_types[2] = {PG_TEXTARRAYOID, PG_UUIDARRAYOID};
    static const Oid guard_types[4] = {PG_INT8OID, PG_INT8OID, PG_TEXTARRAYOID, PG_UUIDARRAYOID};
    static const Oid insert_types[NPARAMS] = {PG_INT8ARRAYOID,  PG_UUIDARRAYOID, PG_TEXTARRAYOID,
                                              PG_INT8ARRAYOID,  PG_TEXTARRAYOID, PG_INT8OID,
                                              PG_BYTEAARRAYOID, PG_BYTEAARRAYOID};
    char lock_sql[80];
    snprintf(lock_sql, sizeof lock_sql, "SELECT pg_advisory_xact_lock(%lld)",
             (long long)GC_APPEND_LOCK_KEY);
    pg_conn_send(g->w, "SET plan_cache_mode = force_generic_plan", 0, NULL, NULL, NULL, NULL,
                 false);
    pg_conn_prepare(g->w, "gc_lock", lock_sql, 0, NULL);
    pg_conn_prepare(g->w, "gc_positions",
                    "SELECT setval('evs_position_seq', nextval('evs_position_seq') + $1 - 1)", 1,
                    positions_types);
    pg_conn_prepare(g->w, "gc_check", CHECK_SQL, 2, check_types);
    pg_conn_prepare(g->w, "gc_guard", "SELECT evs_append_guard($1, $2, $3, $4)", 4, guard_types);
    pg_conn_prepare(g->w, "gc_insert", INSERT_SQL, NPARAMS, insert_types);
    pg_conn_sync(g->w, on_prepared, g);
}

void gc_set_held(group_commit_t *g, bool held) {
    g->held = held;
    if (!held) start_next(g);
}

void gc_on_ready(group_commit_t *g) {
    cache_invalidate(g); /* a new session: nothing is known */
    prepare(g);
    start_next(g);
}

void gc_on_lost(group_commit_t *g) {
    cache_invalidate(g);
    gc_request_t *list = g->qhead;
    g->qhead = g->qtail = NULL;
    fail_list(list, EVS_EUNAVAILABLE,
              "the connection to PostgreSQL was lost before this request was sent; retry it");
}
