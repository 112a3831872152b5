/* pg/store.c: the PostgreSQL store (see store.h and docs/architecture.md).
 *
 * Every operation becomes an op (op.h: listed by deadline, answered exactly once), then either
 * handed to the group commit
 * (append, delete-entity) or sent on a reader connection as one pipelined statement with a sync
 * point of its own (so that one failing read aborts nothing else). Results come back in binary
 * format and are handed to the callback in place, without copying. An op that passes its
 * deadline is answered EVS_EUNAVAILABLE at once and freed later, when its work comes back. */
#include "store.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../log.h"
#include "conn.h"
#include "feed.h"
#include "group_commit.h"
#include "migrations.h"
#include "op.h"
#include "schema.h"
#include "wire.h"

#define NREADERS 2

typedef struct pg_store pg_store_t;

struct pg_store {
    store_t base;
    pg_conn_t *writer;
    pg_conn_t *readers[NREADERS];
    bool prepared[NREADERS]; /* the reader's statements are prepared (or queued to be) */
    group_commit_t *gc;
    pg_feed_t *feed; /* every committed event to the commit listener, from every daemon */
    bool migrated;   /* the schema is known to be up to date */
    op_list_t ops;   /* unanswered ops by deadline */
    op_t *parked;
    size_t next_reader;
};

static void prepare_readers(pg_store_t *s);

/* ---------------------------------------------------------------- reads */

static pg_conn_t *pick_reader(pg_store_t *s) {
    pg_conn_t *best = NULL;
    for (size_t k = 0; k < NREADERS; k++) {
        size_t i = (s->next_reader + k) % NREADERS;
        pg_conn_t *r = s->readers[i];
        if (pg_conn_is_ready(r) && s->prepared[i] &&
            (!best || pg_conn_pending(r) < pg_conn_pending(best)))
            best = r;
    }
    s->next_reader++;
    return best;
}

/* True when a connection attempt is under way that could let a read be served soon. */
static bool read_may_wait(pg_store_t *s) {
    if (!s->migrated) return pg_conn_is_connecting(s->writer);
    if (!pg_feed_is_started(s->feed)) return pg_feed_may_start(s->feed);
    for (size_t k = 0; k < NREADERS; k++)
        if (pg_conn_is_connecting(s->readers[k])) return true;
    return false;
}

static void set_result_error(op_t *op, PGresult *res) {
    if (op->has_err) return;
    op->has_err = true;
    const char *msg = PQresultErrorMessage(res);
    size_t n = msg ? strlen(msg) : 0;
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        n--;
    if (PQresultStatus(res) == PGRES_PIPELINE_ABORTED || pg_conn_result_is_transient(res))
        codec_error_set(&op->err, EVS_EUNAVAILABLE, "PostgreSQL cannot serve now (%.*s); retry",
                        (int)n, msg ? msg : "");
    else
        codec_error_set(&op->err, EVS_EINTERNAL, "PostgreSQL failed the read: %.*s", (int)n,
                        msg ? msg : "");
}

static void deliver_events(op_t *op, PGresult *res) {
    int n = PQntuples(res);
    if (n == 0 && op->not_found_if_empty) {
        codec_error_set(&op->err, EVS_ENOT_FOUND, "no event with id %s", op->what);
        op->has_err = true;
        return;
    }
    evs_event_t *evs = n ? calloc((size_t)n, sizeof *evs) : NULL;
    if (n && !evs) {
        codec_error_set(&op->err, EVS_EINTERNAL, "out of memory");
        op->has_err = true;
        return;
    }
    for (int row = 0; row < n; row++)
        schema_event_from_row(res, row, &evs[row]);
    op_answered(op);
    op->cb.events(op->arg, NULL, evs, (size_t)n);
    free(evs);
}

static void deliver_snapshot(op_t *op, PGresult *res) {
    if (PQntuples(res) == 0) {
        codec_error_set(&op->err, EVS_ENOT_FOUND,
                        "entity %.255s has no snapshot at or below version %llu", op->what,
                        (unsigned long long)op->max_version);
        op->has_err = true;
        return;
    }
    store_snapshot_t snap = {
        .entity_id = op->what,
        .version = (uint64_t)pg_wire_get_i64(res, 0, SCHEMA_SNAPSHOT_VERSION),
        .topic = PQgetvalue(res, 0, SCHEMA_SNAPSHOT_TOPIC),
        .timestamp = pg_wire_get_i64(res, 0, SCHEMA_SNAPSHOT_STORED_AT),
        .payload = (const uint8_t *)PQgetvalue(res, 0, SCHEMA_SNAPSHOT_PAYLOAD),
        .payload_len = (size_t)PQgetlength(res, 0, SCHEMA_SNAPSHOT_PAYLOAD),
    };
    op_answered(op);
    op->cb.snapshot(op->arg, NULL, &snap);
}

/* The unit callback of one read: its one result is delivered to the op's callback in place, or
 * becomes the op's error; at the end of the unit an op still unanswered gets its error (or
 * EVS_EUNAVAILABLE), and the op is freed. */
static void on_read_unit(void *arg, pg_conn_event_t ev, PGresult *res) {
    op_t *op = arg;
    if (ev == PG_CONN_RESULT) {
        ExecStatusType st = PQresultStatus(res);
        if (op->answered || op->has_err) return;
        if (st == PGRES_TUPLES_OK && op->kind == OP_EVENTS)
            deliver_events(op, res);
        else if (st == PGRES_TUPLES_OK && op->kind == OP_GET_SNAPSHOT)
            deliver_snapshot(op, res);
        else if (st == PGRES_COMMAND_OK && op->kind == OP_PUT_SNAPSHOT) {
            op_answered(op);
            op->cb.count(op->arg, NULL, 1);
        } else if (st == PGRES_COMMAND_OK && op->kind == OP_DELETE_SNAPSHOTS) {
            op_answered(op);
            op->cb.count(op->arg, NULL, strtoull(PQcmdTuples(res), NULL, 10));
        } else
            set_result_error(op, res);
        return;
    }
    if (!op->answered) {
        if (!op->has_err)
            codec_error_set(&op->err, EVS_EUNAVAILABLE,
                            ev == PG_CONN_LOST ? "the connection to PostgreSQL was lost; retry"
                                               : "PostgreSQL returned no result; retry");
        op_answer_error(op, &op->err);
    }
    op_free(op);
}

static void send_read(op_t *op, pg_conn_t *r) {
    const char *values[OP_MAX_PARAMS];
    int lengths[OP_MAX_PARAMS], formats[OP_MAX_PARAMS];
    for (int i = 0; i < op->nparams; i++) {
        values[i] = op->params[i].data ? op->params[i].data : "";
        lengths[i] = (int)op->params[i].len;
        formats[i] = 1;
    }
    pg_conn_send_prepared(r, schema_reads[op->query].name, op->nparams, values, lengths, formats,
                          true);
    if (pg_conn_sync(r, on_read_unit, op) != 0) {
        op_answer_unavailable(op, "PostgreSQL is not connected; retry");
        op_free(op);
    }
}

/* Sends a read now, parks it until a connection attempt ends, or fails it. */
static void submit_read(op_t *op) {
    pg_store_t *s = op->s;
    /* No read before the feed has started: a subscription's catch-up read must see everything
     * the feed will not deliver (feed.h). */
    pg_conn_t *r = s->migrated && pg_feed_is_started(s->feed) ? pick_reader(s) : NULL;
    if (r) {
        send_read(op, r);
    } else if (read_may_wait(s)) {
        op->park_next = s->parked;
        s->parked = op;
    } else {
        op_answer_unavailable(
            op, "PostgreSQL is not reachable; the daemon keeps retrying, retry later");
        op_free(op);
    }
}

/* Resubmits every parked read (after a connection became ready or an attempt failed). The list
 * is rebuilt in arrival order. */
static void pump_parked(pg_store_t *s) {
    op_t *list = NULL, *op;
    while ((op = s->parked)) {
        s->parked = op->park_next;
        op->park_next = list;
        list = op;
    }
    while ((op = list)) {
        list = op->park_next;
        op->park_next = NULL;
        if (op->answered)
            op_free(op);
        else
            submit_read(op);
    }
}

/* The buffer of the read's parameter at position slot (schema.h names them). */
static pg_wire_buf_t *param(op_t *op, int slot) {
    if (op->nparams < slot + 1) op->nparams = slot + 1;
    return &op->params[slot];
}

static void set_bytes(op_t *op, int slot, const void *data, size_t len) {
    pg_wire_put(param(op, slot), data, len);
}

static void set_text(op_t *op, int slot, const char *text) {
    pg_wire_put(param(op, slot), text, strlen(text));
}

static void set_i64(op_t *op, int slot, int64_t v) {
    pg_wire_put_i64(param(op, slot), v);
}

static bool params_failed(op_t *op) {
    for (int i = 0; i < op->nparams; i++)
        if (op->params[i].failed) return true;
    return false;
}

/* Submits a read op whose sql and params are set, or fails it when memory ran short. */
static void start_read(op_t *op) {
    if (params_failed(op)) {
        codec_error_t err;
        codec_error_set(&err, EVS_EINTERNAL, "out of memory");
        op_answer_error(op, &err);
        op_free(op);
        return;
    }
    submit_read(op);
}

static void fail_now_events(store_events_cb cb, void *arg) {
    codec_error_t err;
    codec_error_set(&err, EVS_EINTERNAL, "out of memory");
    cb(arg, &err, NULL, 0);
}

static int64_t clamp_i64(uint64_t v) {
    return v > INT64_MAX ? INT64_MAX : (int64_t)v;
}

/* The byte bound of a read as SCHEMA_PAGE takes it (store_t.page_bytes; 0: none). */
static int64_t page_bytes(const pg_store_t *s) {
    size_t b = s->base.page_bytes;
    return b == 0 || b > INT64_MAX ? INT64_MAX : (int64_t)b;
}

static void pg_store_get_by_entity(store_t *base, const char *entity_id, uint64_t from_version,
                                   uint32_t limit, bool backwards, store_events_cb cb, void *arg) {
    pg_store_t *s = (pg_store_t *)base;
    op_t *op = op_new(&s->ops, s, OP_EVENTS, arg);
    if (!op) return fail_now_events(cb, arg);
    op->cb.events = cb;
    op->query = backwards ? SCHEMA_ENTITY_BWD : SCHEMA_ENTITY_FWD;
    set_text(op, SCHEMA_ENTITY_P_ID, entity_id);
    set_i64(op, SCHEMA_ENTITY_P_VERSION, clamp_i64(from_version));
    set_i64(op, SCHEMA_ENTITY_P_LIMIT, limit);
    set_i64(op, SCHEMA_ENTITY_P_BYTES, page_bytes(s));
    start_read(op);
}

static void pg_store_get_by_id(store_t *base, const uint8_t event_id[16], store_events_cb cb,
                               void *arg) {
    pg_store_t *s = (pg_store_t *)base;
    op_t *op = op_new(&s->ops, s, OP_EVENTS, arg);
    if (op) op->what = malloc(37);
    if (!op || !op->what) {
        if (op) {
            op_answered(op);
            op_free(op);
        }
        return fail_now_events(cb, arg);
    }
    op->cb.events = cb;
    op->not_found_if_empty = true;
    evs_uuid_format(event_id, op->what);
    op->query = SCHEMA_BY_ID;
    set_bytes(op, SCHEMA_BY_ID_P_ID, event_id, 16);
    start_read(op);
}

static void pg_store_read(store_t *base, const store_read_t *q, store_events_cb cb, void *arg) {
    pg_store_t *s = (pg_store_t *)base;
    op_t *op = op_new(&s->ops, s, OP_EVENTS, arg);
    if (!op) return fail_now_events(cb, arg);
    op->cb.events = cb;
    set_i64(op, SCHEMA_READ_P_AFTER, clamp_i64(q->after));
    set_i64(op, SCHEMA_READ_P_LIMIT, q->limit);
    set_i64(op, SCHEMA_READ_P_BYTES, page_bytes(s));
    /* The filters follow, in the order schema.h gives: topic(s), then the prefix. */
    int filter = SCHEMA_READ_P_FILTERS;
    bool prefix = q->entity_prefix && *q->entity_prefix;
    if (q->ntopics == 1) {
        op->query = prefix ? SCHEMA_READ_TOPIC_PREFIX : SCHEMA_READ_TOPIC;
        set_text(op, filter++, q->topics[0]);
    } else if (q->ntopics > 1) {
        op->query = prefix ? SCHEMA_READ_TOPICS_PREFIX : SCHEMA_READ_TOPICS;
        pg_wire_buf_t *topics = param(op, filter++);
        pg_wire_array_begin(topics, PG_TEXTOID, q->ntopics, false);
        for (size_t k = 0; k < q->ntopics; k++)
            pg_wire_array_elem(topics, q->topics[k], strlen(q->topics[k]));
    } else {
        op->query = prefix ? SCHEMA_READ_PREFIX : SCHEMA_READ;
    }
    if (prefix) set_text(op, filter, q->entity_prefix);
    start_read(op);
}

/* ---------------------------------------------------------------- snapshots */

static void pg_store_put_snapshot(store_t *base, const store_snapshot_t *snap, store_count_cb cb,
                                  void *arg) {
    pg_store_t *s = (pg_store_t *)base;
    op_t *op = op_new(&s->ops, s, OP_PUT_SNAPSHOT, arg);
    if (!op) {
        codec_error_t err;
        codec_error_set(&err, EVS_EINTERNAL, "out of memory");
        cb(arg, &err, 0);
        return;
    }
    op->cb.count = cb;
    op->query = SCHEMA_PUT_SNAPSHOT;
    set_text(op, SCHEMA_PUT_SNAPSHOT_P_ENTITY, snap->entity_id);
    set_i64(op, SCHEMA_PUT_SNAPSHOT_P_VERSION, clamp_i64(snap->version));
    set_text(op, SCHEMA_PUT_SNAPSHOT_P_TOPIC, snap->topic);
    set_bytes(op, SCHEMA_PUT_SNAPSHOT_P_PAYLOAD, snap->payload ? (const void *)snap->payload : "",
              snap->payload_len);
    start_read(op);
}

static void pg_store_get_snapshot(store_t *base, const char *entity_id, uint64_t max_version,
                                  store_snapshot_cb cb, void *arg) {
    pg_store_t *s = (pg_store_t *)base;
    op_t *op = op_new(&s->ops, s, OP_GET_SNAPSHOT, arg);
    if (op) op->what = strdup(entity_id);
    if (!op || !op->what) {
        codec_error_t err;
        codec_error_set(&err, EVS_EINTERNAL, "out of memory");
        if (op) {
            op_answered(op);
            op_free(op);
        }
        cb(arg, &err, NULL);
        return;
    }
    op->cb.snapshot = cb;
    op->max_version = max_version;
    op->query = SCHEMA_GET_SNAPSHOT;
    set_text(op, SCHEMA_GET_SNAPSHOT_P_ENTITY, entity_id);
    set_i64(op, SCHEMA_GET_SNAPSHOT_P_MAX_VERSION, clamp_i64(max_version));
    start_read(op);
}

static void pg_store_delete_snapshots(store_t *base, const char *entity_id, store_count_cb cb,
                                      void *arg) {
    pg_store_t *s = (pg_store_t *)base;
    op_t *op = op_new(&s->ops, s, OP_DELETE_SNAPSHOTS, arg);
    if (!op) {
        codec_error_t err;
        codec_error_set(&err, EVS_EINTERNAL, "out of memory");
        cb(arg, &err, 0);
        return;
    }
    op->cb.count = cb;
    op->query = SCHEMA_DELETE_SNAPSHOTS;
    set_text(op, SCHEMA_DELETE_SNAPSHOTS_P_ENTITY, entity_id);
    start_read(op);
}

/* ---------------------------------------------------------------- writes */

/* The feed has given the commit listener this append's events (or gave up waiting). */
static void on_feed_caught_up(void *arg) {
    op_t *op = arg;
    op_answer_committed(op);
    op_free(op);
}

/* The group commit finished a write (gc_request_t.done): an append that committed is answered
 * once the feed has given its events to the commit listener (or gave up waiting); any other
 * outcome is answered now. The op is freed unless it waits for the feed. */
static void on_request_done(gc_request_t *r) {
    op_t *op = r->owner;
    if (!op->answered && r->err.code == 0 && op->kind == OP_APPEND) {
        /* store.h: the listener hears of the events before the writer. With one daemon the feed
         * has them already; otherwise this waits for its read (pg_feed_wait bounds the wait). */
        uint64_t last = 0;
        for (size_t i = 0; i < r->n; i++)
            if (r->positions[i] > last) last = r->positions[i];
        op->committed = true;
        if (pg_feed_wait(op->s->feed, last, on_feed_caught_up, op) == 0) return;
    }
    if (!op->answered) {
        if (r->err.code != 0) {
            op_answer_error(op, &r->err);
        } else {
            op_answered(op);
            if (op->kind == OP_APPEND)
                op->cb.append(op->arg, NULL, r->positions, r->versions, r->n);
            else
                op->cb.count(op->arg, NULL, r->deleted);
        }
    }
    op_free(op);
}

/* True when a write can be queued now: the writer is ready, or trying to connect, and the feed
 * has started or may start soon (the group commit waits for it: gc_set_held). */
static bool writer_usable(pg_store_t *s) {
    return (pg_conn_is_ready(s->writer) || pg_conn_is_connecting(s->writer)) &&
           (pg_feed_is_started(s->feed) || pg_feed_may_start(s->feed));
}

/* True when a write of bytes finds the queue of writes waiting for PostgreSQL full; err is then
 * the EVS_EUNAVAILABLE to answer at once, without queuing anything. */
static bool write_queue_full(pg_store_t *s, size_t bytes, codec_error_t *err) {
    size_t max_requests = s->base.write_queue_requests ? s->base.write_queue_requests
                                                       : STORE_DEFAULT_WRITE_QUEUE_REQUESTS;
    size_t max_bytes =
        s->base.write_queue_bytes ? s->base.write_queue_bytes : STORE_DEFAULT_WRITE_QUEUE_BYTES;
    if (!gc_queue_full(s->gc, bytes, max_requests, max_bytes)) return false;
    codec_error_set(err, EVS_EUNAVAILABLE,
                    "PostgreSQL is slow: the queue of writes waiting for it is full (at most %zu "
                    "requests, option write_queue_requests; %zu bytes, option write_queue_bytes); "
                    "this request was not queued, retry later",
                    max_requests, max_bytes);
    return true;
}

static void pg_store_append(store_t *base, evs_event_t *events, size_t n, store_append_cb cb,
                            void *arg) {
    pg_store_t *s = (pg_store_t *)base;
    codec_error_t err;
    if (n == 0) {
        static const uint64_t none[1];
        cb(arg, NULL, none, none, 0);
        return;
    }
    if (!writer_usable(s)) {
        codec_error_set(&err, EVS_EUNAVAILABLE,
                        "PostgreSQL is not reachable; the daemon keeps retrying, retry later");
        cb(arg, &err, NULL, NULL, 0);
        return;
    }
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++)
        bytes += events[i].payload_len + events[i].metadata_len + 64;
    if (write_queue_full(s, bytes, &err)) {
        cb(arg, &err, NULL, NULL, 0);
        return;
    }
    op_t *op = op_new(&s->ops, s, OP_APPEND, arg);
    if (!op) goto oom;
    op->cb.append = cb;
    gc_request_t *r = &op->req;
    r->owner = op;
    r->done = on_request_done;
    r->events = calloc(n, sizeof *r->events);
    r->positions = calloc(n, sizeof *r->positions);
    r->versions = calloc(n, sizeof *r->versions);
    if (!r->events || !r->positions || !r->versions) goto oom_op;
    for (size_t i = 0; i < n; i++) {
        if (evs_event_dup(&r->events[i], &events[i]) != 0) goto oom_op;
        r->n = i + 1;
        r->events[i].position = 0;
        r->events[i].timestamp = 0;
    }
    r->bytes = bytes;
    gc_submit(s->gc, r);
    return;
oom_op:
    op_answered(op);
    op_free(op);
oom:
    codec_error_set(&err, EVS_EINTERNAL, "out of memory");
    cb(arg, &err, NULL, NULL, 0);
}

static void pg_store_delete_entity(store_t *base, const char *entity_id, store_count_cb cb,
                                   void *arg) {
    pg_store_t *s = (pg_store_t *)base;
    codec_error_t err;
    if (!writer_usable(s)) {
        codec_error_set(&err, EVS_EUNAVAILABLE,
                        "PostgreSQL is not reachable; the daemon keeps retrying, retry later");
        cb(arg, &err, 0);
        return;
    }
    if (write_queue_full(s, 0, &err)) {
        cb(arg, &err, 0);
        return;
    }
    op_t *op = op_new(&s->ops, s, OP_DELETE, arg);
    if (op) op->req.entity_id = strdup(entity_id);
    if (!op || !op->req.entity_id) {
        if (op) {
            op_answered(op);
            op_free(op);
        }
        codec_error_set(&err, EVS_EINTERNAL, "out of memory");
        cb(arg, &err, 0);
        return;
    }
    op->cb.count = cb;
    op->req.is_delete = true;
    op->req.owner = op;
    op->req.done = on_request_done;
    gc_submit(s->gc, &op->req);
}

/* ---------------------------------------------------------------- connections */

/* The unit callback of reading the store's identity, the writer's last setup step: the writer
 * becomes ready when it was read, else it reconnects. */
static void on_store_id(void *arg, pg_conn_event_t ev, PGresult *res) {
    pg_store_t *s = arg;
    if (ev == PG_CONN_RESULT) {
        if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
            PQgetlength(res, 0, 0) == 36)
            memcpy(s->base.store_id, PQgetvalue(res, 0, 0), 37);
        else
            log_error("pg", "reading the store's identity failed: %s", PQresultErrorMessage(res));
        return;
    }
    pg_conn_setup_done(s->writer, ev == PG_CONN_END && s->base.store_id[0]);
}

/* The migrations ended: when they succeeded the store's identity is read (then the writer
 * becomes ready), else the writer reconnects. */
static void on_migrated(void *arg, bool ok) {
    pg_store_t *s = arg;
    if (ok) s->migrated = true;
    if (!ok || pg_conn_send_simple(s->writer, SCHEMA_SQL_STORE_ID, on_store_id, s) != 0)
        pg_conn_setup_done(s->writer, false);
}

/* The writer connected: run the migrations before anything else (pg_conn setup step). */
static void writer_setup(void *arg, pg_conn_t *c) {
    migrations_run(c, on_migrated, arg);
}

/* The writer is ready: the group commit prepares and starts, the feed may start (the schema
 * exists), the readers may prepare. */
static void writer_ready(void *arg, pg_conn_t *c) {
    pg_store_t *s = arg;
    (void)c;
    gc_on_ready(s->gc);
    pg_feed_schema_ready(s->feed);
    prepare_readers(s);
}

/* The writer was lost: the queued writes fail, the parked reads are looked at again. */
static void writer_lost(void *arg, pg_conn_t *c) {
    pg_store_t *s = arg;
    (void)c;
    gc_on_lost(s->gc);
    pump_parked(s);
}

/* The unit callback of a reader's preparation: a failure drops that connection. */
static void on_reader_prepared(void *arg, pg_conn_event_t ev, PGresult *res) {
    pg_conn_t *c = arg;
    if (ev == PG_CONN_RESULT && PQresultStatus(res) != PGRES_COMMAND_OK) {
        log_error("pg", "%s: preparing the read statements failed: %s", pg_conn_name(c),
                  PQresultErrorMessage(res));
        pg_conn_fail(c, "cannot prepare statements");
    }
}

static int reader_index(pg_store_t *s, pg_conn_t *c) {
    for (int k = 0; k < NREADERS; k++)
        if (s->readers[k] == c) return k;
    return -1;
}

/* Prepares the read statements on every ready reader that lacks them (queued ahead of any read,
 * so nothing waits for it), once the schema exists, then sends the reads that waited. */
static void prepare_readers(pg_store_t *s) {
    if (!s->migrated) return;
    for (int k = 0; k < NREADERS; k++) {
        pg_conn_t *c = s->readers[k];
        if (s->prepared[k] || !pg_conn_is_ready(c)) continue;
        for (int q = 0; q < SCHEMA_NREADS; q++)
            pg_conn_prepare(c, schema_reads[q].name, schema_reads[q].sql, schema_reads[q].nparams,
                            schema_reads[q].types);
        if (pg_conn_sync(c, on_reader_prepared, c) == 0) s->prepared[k] = true;
    }
    pump_parked(s);
}

/* A reader is ready (again): prepare its statements, then send the reads that waited. */
static void reader_ready(void *arg, pg_conn_t *c) {
    pg_store_t *s = arg;
    s->prepared[reader_index(s, c)] = false;
    prepare_readers(s);
}

/* A reader was lost: its statements are gone; parked reads go elsewhere or fail. */
static void reader_lost(void *arg, pg_conn_t *c) {
    pg_store_t *s = arg;
    s->prepared[reader_index(s, c)] = false;
    pump_parked(s);
}

/* The feed started or lost its connection: reads that waited for it go now or fail, and once it
 * has started the appends that waited for it go (gc_set_held). */
static void feed_changed(void *arg) {
    pg_store_t *s = arg;
    if (pg_feed_is_started(s->feed) && !s->base.live_ready) {
        pg_feed_stats_t st;
        pg_feed_get_stats(s->feed, &st);
        s->base.live_head = st.head;
        s->base.live_ready = true;
        gc_set_held(s->gc, false);
        if (s->base.on_live) s->base.on_live(s->base.on_live_arg);
    }
    pump_parked(s);
}

/* ---------------------------------------------------------------- open and free */

/* The store is freed once the deadline timer is closed. */
static void on_ops_closed(uv_handle_t *h) {
    free(h->data);
}

static void pg_store_free(store_t *base) {
    pg_store_t *s = (pg_store_t *)base;
    op_list_close(&s->ops, "the store is closing", on_ops_closed, s);
    op_t *op;
    while ((op = s->parked)) {
        s->parked = op->park_next;
        op_free(op);
    }
    for (size_t k = 0; k < NREADERS; k++)
        pg_conn_close(s->readers[k]);
    pg_conn_close(s->writer); /* the group in flight fails now */
    gc_free(s->gc);           /* and then the queue */
    pg_feed_free(s->feed);    /* appends waiting for it were answered above */
}

static const store_ops_t pg_store_ops = STORE_OPS_INIT("postgresql", pg_store);

store_t *pg_store_open(const char *conninfo, uv_loop_t *loop, codec_error_t *err) {
    char *why = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &why);
    if (!opts) {
        codec_error_set(err, EVS_EBAD_REQUEST, "invalid PostgreSQL connection string: %s",
                        why ? why : "out of memory");
        size_t n = strlen(err->message);
        while (n && err->message[n - 1] == '\n')
            err->message[--n] = '\0';
        PQfreemem(why);
        return NULL;
    }
    PQconninfoFree(opts);
    pg_store_t *s = calloc(1, sizeof *s);
    if (!s) goto oom;
    s->base.ops = &pg_store_ops;
    s->base.request_timeout_ms = STORE_DEFAULT_TIMEOUT_MS;
    op_list_init(&s->ops, loop, &s->base.request_timeout_ms);
    static const pg_conn_cbs_t writer_cbs = {
        .setup = writer_setup, .on_ready = writer_ready, .on_lost = writer_lost};
    static const pg_conn_cbs_t reader_cbs = {.on_ready = reader_ready, .on_lost = reader_lost};
    s->writer = pg_conn_new(loop, conninfo, "writer", &writer_cbs, s);
    s->gc = s->writer ? gc_new(s->writer) : NULL;
    s->feed = s->gc ? pg_feed_new(loop, conninfo, &s->base, feed_changed, s) : NULL;
    if (s->feed) {
        gc_set_commit_hook(s->gc, pg_feed_committed, s->feed);
        gc_set_held(s->gc, true); /* until the feed has started: feed_changed */
    }
    bool ok = s->writer && s->gc && s->feed;
    for (size_t k = 0; k < NREADERS && ok; k++) {
        char name[32];
        snprintf(name, sizeof name, "reader %zu", k + 1);
        ok = (s->readers[k] = pg_conn_new(loop, conninfo, name, &reader_cbs, s)) != NULL;
    }
    if (!ok) {
        pg_store_free(&s->base);
        goto oom;
    }
    return &s->base;
oom:
    codec_error_set(err, EVS_EINTERNAL, "out of memory");
    return NULL;
}

static bool pg_store_accepts(const char *url) {
    return strncmp(url, "postgresql://", 13) == 0 || strncmp(url, "postgres://", 11) == 0 ||
           strchr(url, '=') != NULL;
}

static store_t *pg_store_open_on(const char *url, void *loop, codec_error_t *err) {
    return pg_store_open(url, loop, err);
}

const store_driver_t pg_store_driver = {
    .name = "postgresql", .accepts = pg_store_accepts, .open = pg_store_open_on};
