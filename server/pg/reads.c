/* pg/reads.c: the PostgreSQL store's reads (events, snapshots, checkpoints, consumers, leases):
 * each an op sent on a reader connection as one pipelined statement with a sync point of its own,
 * so that one failing read aborts nothing else, its binary result handed to the callback in
 * place. A read that finds no usable reader waits (parked) until one is ready, or fails at once
 * when none may come soon. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../log.h"
#include "checkpoint.h"
#include "conn.h"
#include "op.h"
#include "schema.h"
#include "store_priv.h"
#include "wire.h"

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
    if (PQresultStatus(res) != PGRES_PIPELINE_ABORTED) pg_store_read_outcome(op->s, op->query, res);
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
        if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
            pg_store_read_outcome(op->s, op->query, NULL);
        if (st == PGRES_TUPLES_OK && op->kind == OP_EVENTS)
            deliver_events(op, res);
        else if (st == PGRES_TUPLES_OK && op->kind == OP_GET_SNAPSHOT)
            deliver_snapshot(op, res);
        else if (st == PGRES_TUPLES_OK &&
                 (op->kind == OP_GET_CHECKPOINT || op->kind == OP_CONSUMERS ||
                  op->kind == OP_LEASE || op->kind == OP_LEASE_RELEASE))
            ckpt_deliver(op, res);
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
        codec_error_t err;
        store_condition_error(&s->base, &err, NOT_CONNECTED);
        op_answer_error(op, &err);
        op_free(op);
    }
}

/* Resubmits every parked read (after a connection became ready or an attempt failed). The list
 * is rebuilt in arrival order. */
void pg_store_pump_parked(pg_store_t *s) {
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

void pg_store_get_by_entity(store_t *base, const char *entity_id, uint64_t from_version,
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

void pg_store_get_by_id(store_t *base, const uint8_t event_id[16], store_events_cb cb, void *arg) {
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

void pg_store_read(store_t *base, const store_read_t *q, store_events_cb cb, void *arg) {
    pg_store_t *s = (pg_store_t *)base;
    op_t *op = op_new(&s->ops, s, OP_EVENTS, arg);
    if (!op) return fail_now_events(cb, arg);
    op->cb.events = cb;
    set_i64(op, SCHEMA_READ_P_AFTER, clamp_i64(q->after));
    set_i64(op, SCHEMA_READ_P_LIMIT, q->limit);
    set_i64(op, SCHEMA_READ_P_BYTES, page_bytes(s));
    if (q->partition_count) {
        /* One statement for every partitioned read: its filter keeps the pages full. */
        op->query = SCHEMA_READ_PARTITION;
        pg_wire_buf_t *topics = param(op, SCHEMA_READ_PARTITION_P_TOPICS);
        pg_wire_array_begin(topics, PG_TEXTOID, q->ntopics, false);
        for (size_t k = 0; k < q->ntopics; k++)
            pg_wire_array_elem(topics, q->topics[k], strlen(q->topics[k]));
        set_text(op, SCHEMA_READ_PARTITION_P_PREFIX, q->entity_prefix ? q->entity_prefix : "");
        set_i64(op, SCHEMA_READ_PARTITION_P_COUNT, q->partition_count);
        set_i64(op, SCHEMA_READ_PARTITION_P_INDEX, q->partition_index);
        set_i64(op, SCHEMA_READ_PARTITION_P_WRAP,
                (int64_t)((UINT64_MAX % q->partition_count + 1) % q->partition_count));
        start_read(op);
        return;
    }
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

void pg_store_put_snapshot(store_t *base, const store_snapshot_t *snap, store_count_cb cb,
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

void pg_store_get_snapshot(store_t *base, const char *entity_id, uint64_t max_version,
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

void pg_store_delete_snapshots(store_t *base, const char *entity_id, store_count_cb cb, void *arg) {
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

void pg_store_lease(store_t *base, const char *consumer, uint64_t fence, uint32_t ttl_ms,
                    store_lease_cb cb, void *arg) {
    pg_store_t *s = (pg_store_t *)base;
    op_t *op = op_new(&s->ops, s, OP_LEASE, arg);
    if (!op) {
        codec_error_t err;
        codec_error_set(&err, EVS_EINTERNAL, "out of memory");
        cb(arg, &err, false, 0);
        return;
    }
    op->cb.lease = cb;
    op->query = SCHEMA_LEASE;
    set_text(op, SCHEMA_LEASE_P_CONSUMER, consumer);
    set_i64(op, SCHEMA_LEASE_P_FENCE, clamp_i64(fence));
    set_i64(op, SCHEMA_LEASE_P_TTL, ttl_ms);
    start_read(op);
}

void pg_store_lease_release(store_t *base, const char *consumer, uint64_t fence, store_count_cb cb,
                            void *arg) {
    pg_store_t *s = (pg_store_t *)base;
    op_t *op = op_new(&s->ops, s, OP_LEASE_RELEASE, arg);
    if (!op) {
        codec_error_t err;
        codec_error_set(&err, EVS_EINTERNAL, "out of memory");
        cb(arg, &err, 0);
        return;
    }
    op->cb.count = cb;
    op->query = SCHEMA_LEASE_RELEASE;
    set_text(op, SCHEMA_LEASE_RELEASE_P_CONSUMER, consumer);
    set_i64(op, SCHEMA_LEASE_RELEASE_P_FENCE, clamp_i64(fence));
    start_read(op);
}

void pg_store_get_checkpoint(store_t *base, const char *consumer, store_position_cb cb, void *arg) {
    pg_store_t *s = (pg_store_t *)base;
    op_t *op = op_new(&s->ops, s, OP_GET_CHECKPOINT, arg);
    if (!op) {
        codec_error_t err;
        codec_error_set(&err, EVS_EINTERNAL, "out of memory");
        cb(arg, &err, 0);
        return;
    }
    op->cb.position = cb;
    op->query = SCHEMA_GET_CHECKPOINT;
    set_text(op, SCHEMA_GET_CHECKPOINT_P_CONSUMER, consumer);
    start_read(op);
}

void pg_store_consumers(store_t *base, store_consumers_cb cb, void *arg) {
    pg_store_t *s = (pg_store_t *)base;
    op_t *op = op_new(&s->ops, s, OP_CONSUMERS, arg);
    if (!op) {
        codec_error_t err;
        codec_error_set(&err, EVS_EINTERNAL, "out of memory");
        cb(arg, &err, NULL, 0, 0);
        return;
    }
    op->cb.consumers = cb;
    op->query = SCHEMA_CONSUMERS;
    start_read(op);
}
