/* pg/store.c: the PostgreSQL store (see store.h and docs/architecture.md).
 *
 * Every operation becomes an op (op.h: listed by deadline, answered exactly once), then either
 * handed to the group commit (append, checkpoints, delete-entity: here) or sent on a reader
 * connection as one pipelined statement with a sync point of its own (reads.c). Results come back
 * in binary format and are handed to the callback in place, without copying. An op that passes its
 * deadline is answered EVS_EUNAVAILABLE at once and freed later, when its work comes back. */
#include "store.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../log.h"
#include "admin.h"
#include "checkpoint.h"
#include "conn.h"
#include "feed.h"
#include "group_commit.h"
#include "migrations.h"
#include "op.h"
#include "schema.h"
#include "wire.h"

#include "store_priv.h"

static void prepare_readers(pg_store_t *s);

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
            else if (op->kind == OP_CHECKPOINT)
                op->cb.position(op->arg, NULL, r->track_position);
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

static void pg_store_append_tracked(store_t *base, evs_event_t *events, size_t n,
                                    const store_tracking_t *t, store_append_cb cb, void *arg) {
    pg_store_t *s = (pg_store_t *)base;
    codec_error_t err;
    if (n == 0 && !t) {
        static const uint64_t none[1];
        cb(arg, NULL, none, none, 0);
        return;
    }
    if (!writer_usable(s)) {
        store_condition_error(&s->base, &err, NOT_CONNECTED);
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
    r->events = calloc(n ? n : 1, sizeof *r->events);
    r->positions = calloc(n ? n : 1, sizeof *r->positions);
    r->versions = calloc(n ? n : 1, sizeof *r->versions);
    if (!r->events || !r->positions || !r->versions) goto oom_op;
    if (t) {
        r->track = GC_TRACK_APPEND;
        r->track_position = t->position;
        r->track_fence = t->fence;
        if (!(r->consumer = strdup(t->consumer))) goto oom_op;
    }
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

static void pg_store_append(store_t *base, evs_event_t *events, size_t n, store_append_cb cb,
                            void *arg) {
    pg_store_append_tracked(base, events, n, NULL, cb, arg);
}

/* Queues a checkpoint set (OP_CHECKPOINT, answered with a position) or deleted (OP_DELETE,
 * answered with a count) in the group commit; cb is the op's callback of that kind. */
static void submit_checkpoint(pg_store_t *s, op_kind_t kind, const char *consumer,
                              uint64_t position, uint64_t fence, void (*cb)(void), void *arg) {
    codec_error_t err;
    if (!writer_usable(s))
        store_condition_error(&s->base, &err, NOT_CONNECTED);
    else if (!write_queue_full(s, 0, &err)) {
        op_t *op = op_new(&s->ops, s, kind, arg);
        if (op && (op->req.consumer = strdup(consumer))) {
            if (kind == OP_CHECKPOINT)
                op->cb.position = (store_position_cb)cb;
            else
                op->cb.count = (store_count_cb)cb;
            op->req.track = kind == OP_CHECKPOINT ? GC_TRACK_SET : GC_TRACK_DELETE;
            op->req.track_position = position;
            op->req.track_fence = fence;
            op->req.owner = op;
            op->req.done = on_request_done;
            gc_submit(s->gc, &op->req);
            return;
        }
        if (op) {
            op_answered(op);
            op_free(op);
        }
        codec_error_set(&err, EVS_EINTERNAL, "out of memory");
    }
    if (kind == OP_CHECKPOINT)
        ((store_position_cb)cb)(arg, &err, 0);
    else
        ((store_count_cb)cb)(arg, &err, 0);
}

static void pg_store_checkpoint(store_t *base, const store_tracking_t *t, store_position_cb cb,
                                void *arg) {
    submit_checkpoint((pg_store_t *)base, OP_CHECKPOINT, t->consumer, t->position, t->fence,
                      (void (*)(void))cb, arg);
}

static void pg_store_delete_checkpoint(store_t *base, const char *consumer, store_count_cb cb,
                                       void *arg) {
    submit_checkpoint((pg_store_t *)base, OP_DELETE, consumer, 0, 0, (void (*)(void))cb, arg);
}

static void pg_store_delete_entity(store_t *base, const char *entity_id, store_count_cb cb,
                                   void *arg) {
    pg_store_t *s = (pg_store_t *)base;
    codec_error_t err;
    if (!writer_usable(s)) {
        store_condition_error(&s->base, &err, NOT_CONNECTED);
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

/* ---------------------------------------------------------------- the condition */

/* What a failure of kind means, as the start of the condition's reason. */
static const char *failure_headline(pg_failure_kind_t kind) {
    switch (kind) {
    case PG_FAIL_UNREACHABLE:
        return "PostgreSQL is not reachable";
    case PG_FAIL_AUTH:
        return "PostgreSQL refused the login (authentication failed)";
    case PG_FAIL_PERMISSION:
        return "permission denied in PostgreSQL";
    case PG_FAIL_SCHEMA:
        return "broken schema";
    default:
        return "PostgreSQL failed";
    }
}

/* Makes the condition DOWN (or DEGRADED) because of failure f of the connection(s) named who. A
 * refused schema's text says it all. */
static void condition_from(pg_store_t *s, store_status_t status, const char *who,
                           const pg_failure_t *f, bool refused) {
    if (refused)
        store_set_condition(&s->base, status, pg_failure_kind_name(f->kind), true, "%s", f->text);
    else
        store_set_condition(&s->base, status, pg_failure_kind_name(f->kind), false, "%s: %s: %s",
                            failure_headline(f->kind), who, f->text);
}

/* The condition follows from the connections: the writer first (appends, and the schema), then
 * the live feed (every append waits for it to start; subscriptions need it), then the readers
 * (every read: one working reader serves them). A connection that has not failed but is not
 * working yet (its first attempt, or verifying a new connection) changes nothing: the condition
 * stays what it was. */
void pg_store_update_condition(pg_store_t *s) {
    const pg_failure_t *f = pg_conn_failure(s->writer);
    if (!s->writer_ok) {
        if (f->kind != PG_FAIL_NONE)
            condition_from(s, STORE_STATUS_DOWN, "writer", f, s->writer_refused);
        return;
    }
    if (s->write_failure.kind != PG_FAIL_NONE) {
        condition_from(s, STORE_STATUS_DOWN, "appends", &s->write_failure, false);
        return;
    }
    if (s->read_failure.kind != PG_FAIL_NONE) {
        condition_from(s, STORE_STATUS_DOWN, "reads", &s->read_failure, false);
        return;
    }
    f = pg_feed_failure(s->feed);
    if (!pg_feed_is_started(s->feed)) {
        if (f->kind != PG_FAIL_NONE) condition_from(s, STORE_STATUS_DOWN, "live feed", f, false);
        return;
    }
    int down = 0, working = 0;
    const pg_failure_t *rf = NULL;
    for (int k = 0; k < NREADERS; k++) {
        const pg_failure_t *kf = pg_conn_failure(s->readers[k]);
        if (s->reader_ok[k] && pg_conn_is_ready(s->readers[k])) {
            working++;
        } else if (kf->kind != PG_FAIL_NONE) {
            down++;
            rf = kf;
        }
    }
    if (down == NREADERS) {
        condition_from(s, STORE_STATUS_DOWN, "every reader connection (reads cannot be served)", rf,
                       false);
        return;
    }
    if (down) {
        char who[80];
        snprintf(who, sizeof who, "%d of %d reader connections (reads go to the others)", down,
                 NREADERS);
        condition_from(s, STORE_STATUS_DEGRADED, who, rf, false);
        return;
    }
    if (!pg_feed_is_connected(s->feed) && f->kind != PG_FAIL_NONE) {
        condition_from(s, STORE_STATUS_DEGRADED,
                       "live feed (subscriptions get no new events until it reconnects)", f, false);
        return;
    }
    if (!working) return; /* the readers' first attempts are under way */
    store_set_condition(&s->base, STORE_STATUS_OK, "ok", false, "%s", "");
}

/* Keeps a call's failure of kind permission or schema in *kept (what, its statement or what it
 * wrote, in *kept_what) until a call that did at least as much succeeds (failure NULL: done
 * says whether it did), and looks at the condition again when that changed it. */
static void note_outcome(pg_store_t *s, pg_failure_t *kept, unsigned *kept_what, unsigned what,
                         const pg_failure_t *failure, bool done) {
    bool reported =
        failure && (failure->kind == PG_FAIL_PERMISSION || failure->kind == PG_FAIL_SCHEMA);
    if (reported) {
        *kept = *failure;
        *kept_what = what;
    } else if (!failure && kept->kind != PG_FAIL_NONE && done) {
        kept->kind = PG_FAIL_NONE;
    } else {
        return; /* nothing new; another failure (the connection) lets the kept one stand */
    }
    pg_store_update_condition(s);
}

/* The group commit's outcome hook. */
static void write_outcome(void *arg, const pg_failure_t *failure, unsigned wrote) {
    pg_store_t *s = arg;
    note_outcome(s, &s->write_failure, &s->write_failure_wrote, wrote, failure,
                 (wrote & s->write_failure_wrote) == s->write_failure_wrote);
}

void pg_store_read_outcome(pg_store_t *s, int query, const PGresult *res) {
    pg_failure_t f;
    if (res) pg_failure_from_result(&f, res);
    unsigned kept_query = (unsigned)s->read_failure_query;
    note_outcome(s, &s->read_failure, &kept_query, (unsigned)query, res ? &f : NULL,
                 kept_query == (unsigned)query);
    s->read_failure_query = (int)kept_query;
}

/* Rejects the writer's new connection because of f (what the setup step or preparing its
 * statements found), refused when the schema itself is refused; the condition says why. */
static void reject_writer(pg_store_t *s, const char *doing, const pg_failure_t *f, bool refused) {
    pg_failure_t g = *f;
    if (!refused) pg_failure_set(&g, f->kind, "%s: %s", doing, f->text);
    if (f->kind == PG_FAIL_PERMISSION && !refused)
        pg_failure_set(&g, f->kind,
                       "%s: %s (the role may not %s; docs/service.md lists the privileges)", doing,
                       f->text,
                       s->base.never_migrate ? "use the schema" : "create or change the schema");
    s->writer_refused = refused;
    pg_conn_reject(s->writer, &g);
}

/* ---------------------------------------------------------------- connections */

/* The unit callback of reading the store's identity, the writer's last setup step: the writer
 * becomes ready when it was read, else the connection is rejected. */
static void on_store_id(void *arg, pg_conn_event_t ev, PGresult *res) {
    pg_store_t *s = arg;
    if (ev == PG_CONN_RESULT) {
        if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
            PQgetlength(res, 0, 0) == 36) {
            memcpy(s->base.store_id, PQgetvalue(res, 0, 0), 37);
        } else {
            pg_failure_t f;
            pg_failure_from_result(&f, res);
            if (PQresultStatus(res) == PGRES_TUPLES_OK)
                pg_failure_set(&f, PG_FAIL_SCHEMA, "evs_store does not hold one row");
            reject_writer(s, "reading the store's identity", &f, false);
        }
        return;
    }
    if (pg_conn_is_connecting(s->writer)) pg_conn_setup_done(s->writer, ev == PG_CONN_END);
}

/* The migrations ended: when they succeeded the store's identity is read (then the writer
 * becomes ready), else the writer's connection is rejected with why. */
static void on_migrated(void *arg, const migrations_result_t *r) {
    pg_store_t *s = arg;
    if (!r->ok) {
        reject_writer(s, s->base.never_migrate ? "checking the schema" : "applying the migrations",
                      &r->failure, r->refused);
        return;
    }
    s->migrated = true;
    if (pg_conn_send_simple(s->writer, SCHEMA_SQL_STORE_ID, on_store_id, s) != 0)
        pg_conn_setup_done(s->writer, false);
}

/* The writer connected: look at the schema, and migrate it unless migrate = no (pg_conn setup
 * step). */
static void writer_setup(void *arg, pg_conn_t *c) {
    pg_store_t *s = arg;
    migrations_run(c, !s->base.never_migrate, on_migrated, arg);
}

/* The group commit prepared its statements on the writer's new connection, or failed to
 * (failure): the writer works, or its connection is rejected. */
static void writer_prepared(void *arg, const pg_failure_t *failure) {
    pg_store_t *s = arg;
    if (failure) {
        reject_writer(s, "preparing the append statements", failure, false);
        return;
    }
    s->writer_ok = true;
    s->writer_refused = false;
    pg_store_update_condition(s);
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

/* The writer was lost (or its new connection rejected): the queued writes fail with the reason,
 * the parked reads are looked at again. */
static void writer_lost(void *arg, pg_conn_t *c) {
    pg_store_t *s = arg;
    (void)c;
    s->writer_ok = false;
    pg_store_update_condition(s);
    codec_error_t err;
    store_condition_error(&s->base, &err,
                          "the connection to PostgreSQL was lost before this request was sent; "
                          "retry it");
    gc_on_lost(s->gc, err.message);
    pg_store_pump_parked(s);
}

static int reader_index(pg_store_t *s, pg_conn_t *c) {
    for (int k = 0; k < NREADERS; k++)
        if (s->readers[k] == c) return k;
    return -1;
}

/* The unit callback of a reader's preparation: a failure rejects that connection, success
 * makes it count as working. */
static void on_reader_prepared(void *arg, pg_conn_event_t ev, PGresult *res) {
    pg_conn_t *c = arg;
    pg_store_t *s = pg_conn_arg(c);
    int k = reader_index(s, c);
    if (k < 0) return;
    if (ev == PG_CONN_RESULT && PQresultStatus(res) != PGRES_COMMAND_OK && !s->reader_failed[k]) {
        s->reader_failed[k] = true;
        pg_failure_t f, g;
        pg_failure_from_result(&f, res);
        pg_failure_set(&g, f.kind, "preparing the read statements: %s", f.text);
        pg_conn_reject(c, &g);
        return;
    }
    if (ev != PG_CONN_END || s->reader_failed[k]) return;
    s->reader_ok[k] = true;
    pg_store_update_condition(s);
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
        s->reader_failed[k] = false;
        if (pg_conn_sync(c, on_reader_prepared, c) == 0) s->prepared[k] = true;
    }
    pg_store_pump_parked(s);
}

/* A reader is ready (again): prepare its statements, then send the reads that waited. */
static void reader_ready(void *arg, pg_conn_t *c) {
    pg_store_t *s = arg;
    int k = reader_index(s, c);
    if (k < 0) return;
    s->prepared[k] = s->reader_ok[k] = false;
    prepare_readers(s);
}

/* A reader was lost: its statements are gone; parked reads go elsewhere or fail. */
static void reader_lost(void *arg, pg_conn_t *c) {
    pg_store_t *s = arg;
    int k = reader_index(s, c);
    if (k < 0) return;
    s->prepared[k] = s->reader_ok[k] = false;
    pg_store_update_condition(s);
    pg_store_pump_parked(s);
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
    pg_store_update_condition(s);
    pg_store_pump_parked(s);
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
    s->base.condition.kind = "starting";
    snprintf(s->base.condition.reason, sizeof s->base.condition.reason, "connecting to PostgreSQL");
    op_list_init(&s->ops, loop, &s->base.request_timeout_ms);
    static const pg_conn_cbs_t writer_cbs = {
        .setup = writer_setup, .on_ready = writer_ready, .on_lost = writer_lost};
    static const pg_conn_cbs_t reader_cbs = {.on_ready = reader_ready, .on_lost = reader_lost};
    s->writer = pg_conn_new(loop, conninfo, "writer", &writer_cbs, s);
    s->gc = s->writer ? gc_new(s->writer) : NULL;
    if (s->gc) gc_set_prepared_hook(s->gc, writer_prepared, s);
    if (s->gc) gc_set_outcome_hook(s->gc, write_outcome, s);
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

const store_driver_t pg_store_driver = {.name = "postgresql",
                                        .accepts = pg_store_accepts,
                                        .open = pg_store_open_on,
                                        .migrate = pg_admin_migrate,
                                        .new_id = pg_admin_new_store_id};
