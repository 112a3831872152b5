/* pg/checkpoint.c: consumers' checkpoints in the group commit (see checkpoint.h). */
#include "checkpoint.h"

#include <stdlib.h>
#include <string.h>

#include "../store.h"
#include "op.h"
#include "schema.h"

/* One consumer of the group: its checkpoint as the requests decided so far leave it. */
struct ckpt_node {
    const char *consumer; /* points into a request */
    uint64_t position;    /* 0: none */
    uint64_t lowest;      /* the fast path: the lowest position the group tracks */
    uint64_t fence;       /* the lease's fencing number, 0: never taken */
    bool exists;          /* a row exists (stored, or set by the group) */
    bool changed;         /* the group sets or deletes it */
    UT_hash_handle hh;
};

static ckpt_node_t *find(const ckpt_group_t *c, const char *consumer) {
    ckpt_node_t *node;
    HASH_FIND_STR(c->nodes, consumer, node);
    return node;
}

bool ckpt_group_tracks(const gc_request_t *group) {
    for (const gc_request_t *r = group; r; r = r->next)
        if (r->track != GC_TRACK_NONE) return true;
    return false;
}

int ckpt_list(ckpt_group_t *c, gc_request_t *group) {
    size_t n = 0;
    c->tracked = true;
    for (gc_request_t *r = group; r; r = r->next) {
        if (r->track == GC_TRACK_NONE || find(c, r->consumer)) continue;
        ckpt_node_t *node = calloc(1, sizeof *node);
        if (!node) return -1;
        node->consumer = r->consumer;
        HASH_ADD_KEYPTR(hh, c->nodes, node->consumer, strlen(node->consumer), node);
        n++;
    }
    pg_wire_reset(&c->consumers_param);
    pg_wire_array_begin(&c->consumers_param, PG_TEXTOID, n, false);
    for (ckpt_node_t *node = c->nodes; node; node = node->hh.next)
        pg_wire_array_elem(&c->consumers_param, node->consumer, strlen(node->consumer));
    return c->consumers_param.failed ? -1 : 0;
}

int ckpt_list_assumed(ckpt_group_t *c, gc_request_t *group, uint64_t head) {
    for (const gc_request_t *r = group; r; r = r->next)
        if (r->track != GC_TRACK_NONE && (r->track != GC_TRACK_APPEND || r->n == 0)) return 1;
    c->tracked = true;
    c->head = head;
    for (gc_request_t *r = group; r; r = r->next) {
        if (r->track == GC_TRACK_NONE) continue;
        ckpt_node_t *node = find(c, r->consumer);
        if (!node) {
            if (!(node = calloc(1, sizeof *node))) return -1;
            node->consumer = r->consumer;
            node->lowest = r->track_position;
            HASH_ADD_KEYPTR(hh, c->nodes, node->consumer, strlen(node->consumer), node);
        }
        if (r->track_position < node->lowest) node->lowest = r->track_position;
        if (r->track_fence && node->fence && r->track_fence != node->fence) {
            ckpt_clear(c);
            return 1;
        }
        if (r->track_fence) node->fence = r->track_fence;
    }
    return 0;
}

/* Appends one int8 element to an array parameter begun with pg_wire_array_begin. */
static void put_i64_elem(pg_wire_buf_t *b, int64_t v) {
    pg_wire_put_i32(b, 8);
    pg_wire_put_i64(b, v);
}

int ckpt_put_advance(ckpt_group_t *c) {
    size_t n = HASH_COUNT(c->nodes);
    pg_wire_reset(&c->consumers_param);
    pg_wire_reset(&c->lowest_param);
    pg_wire_reset(&c->positions_param);
    pg_wire_reset(&c->fences_param);
    pg_wire_array_begin(&c->consumers_param, PG_TEXTOID, n, false);
    pg_wire_array_begin(&c->lowest_param, PG_INT8OID, n, false);
    pg_wire_array_begin(&c->positions_param, PG_INT8OID, n, false);
    pg_wire_array_begin(&c->fences_param, PG_INT8OID, n, false);
    for (ckpt_node_t *node = c->nodes; node; node = node->hh.next) {
        pg_wire_array_elem(&c->consumers_param, node->consumer, strlen(node->consumer));
        put_i64_elem(&c->lowest_param, (int64_t)node->lowest);
        put_i64_elem(&c->positions_param, node->changed ? (int64_t)node->position : -1);
        put_i64_elem(&c->fences_param, (int64_t)node->fence);
    }
    return c->consumers_param.failed || c->lowest_param.failed || c->positions_param.failed ||
                   c->fences_param.failed
               ? -1
               : 0;
}

void ckpt_send_advance(const ckpt_group_t *c, pg_conn_t *w) {
    const pg_wire_buf_t *params[SCHEMA_CKPT_ADVANCE_NPARAMS] = {
        [SCHEMA_CKPT_ADVANCE_P_CONSUMERS] = &c->consumers_param,
        [SCHEMA_CKPT_ADVANCE_P_LOWEST] = &c->lowest_param,
        [SCHEMA_CKPT_ADVANCE_P_POSITIONS] = &c->positions_param,
        [SCHEMA_CKPT_ADVANCE_P_FENCES] = &c->fences_param,
    };
    const char *values[SCHEMA_CKPT_ADVANCE_NPARAMS];
    int lengths[SCHEMA_CKPT_ADVANCE_NPARAMS], formats[SCHEMA_CKPT_ADVANCE_NPARAMS];
    for (int k = 0; k < SCHEMA_CKPT_ADVANCE_NPARAMS; k++) {
        values[k] = params[k]->data;
        lengths[k] = (int)params[k]->len;
        formats[k] = 1;
    }
    pg_conn_send_prepared(w, schema_writes[SCHEMA_CKPT_ADVANCE].name, SCHEMA_CKPT_ADVANCE_NPARAMS,
                          values, lengths, formats, false);
}

void ckpt_read_rows(ckpt_group_t *c, const PGresult *res) {
    for (int row = 0; row < PQntuples(res); row++) {
        ckpt_node_t *node = find(c, PQgetvalue(res, row, SCHEMA_CKPT_READ_CONSUMER));
        if (!node) continue;
        uint64_t value = (uint64_t)pg_wire_get_i64(res, row, SCHEMA_CKPT_READ_VALUE);
        if (pg_wire_get_i32(res, row, SCHEMA_CKPT_READ_KIND) == 1) {
            node->fence = value;
            continue;
        }
        node->position = value;
        node->exists = true;
    }
}

bool ckpt_admit(ckpt_group_t *c, gc_request_t *r, bool retry) {
    ckpt_node_t *node = find(c, r->consumer);
    store_tracking_t t = {.consumer = r->consumer, .position = r->track_position};
    if (r->track_fence && r->track_fence != node->fence) {
        store_conflict_lease(&r->err, r->consumer);
        return false;
    }
    if (r->track == GC_TRACK_DELETE) {
        r->deleted = node->exists ? 1 : 0;
        node->exists = false;
        node->position = 0;
        node->changed = true;
        return false;
    }
    if (r->track == GC_TRACK_APPEND && retry && r->n > 0 && node->position >= t.position)
        return false; /* the first try committed both; its positions are filled */
    if (store_decide_tracking(&t, r->track == GC_TRACK_SET, node->position, c->head, &r->err) != 0)
        return false;
    if (r->track == GC_TRACK_SET) {
        if (t.position > node->position || !node->exists) {
            node->position = t.position;
            node->exists = node->changed = true;
        }
        return false;
    }
    return true;
}

void ckpt_accept(ckpt_group_t *c, gc_request_t *r) {
    ckpt_node_t *node = find(c, r->consumer);
    node->position = r->track_position;
    node->exists = node->changed = true;
}

int ckpt_send_writes(ckpt_group_t *c, pg_conn_t *w) {
    size_t nset = 0, ndel = 0;
    for (ckpt_node_t *node = c->nodes; node; node = node->hh.next)
        if (node->changed) {
            nset += node->exists;
            ndel += !node->exists;
        }
    pg_wire_reset(&c->consumers_param);
    pg_wire_reset(&c->positions_param);
    pg_wire_reset(&c->deleted_param);
    pg_wire_array_begin(&c->consumers_param, PG_TEXTOID, nset, false);
    pg_wire_array_begin(&c->positions_param, PG_INT8OID, nset, false);
    pg_wire_array_begin(&c->deleted_param, PG_TEXTOID, ndel, false);
    for (ckpt_node_t *node = c->nodes; node; node = node->hh.next) {
        if (!node->changed) continue;
        size_t len = strlen(node->consumer);
        if (!node->exists) {
            pg_wire_array_elem(&c->deleted_param, node->consumer, len);
            continue;
        }
        pg_wire_array_elem(&c->consumers_param, node->consumer, len);
        put_i64_elem(&c->positions_param, (int64_t)node->position);
    }
    if (c->consumers_param.failed || c->positions_param.failed || c->deleted_param.failed)
        return -1;
    const char *values[2];
    int lengths[2], formats[2] = {1, 1};
    if (ndel) {
        values[0] = c->deleted_param.data;
        lengths[0] = (int)c->deleted_param.len;
        pg_conn_send_prepared(w, schema_writes[SCHEMA_CKPT_DELETE].name, 1, values, lengths,
                              formats, false);
    }
    if (nset) {
        values[SCHEMA_CKPT_UPSERT_P_CONSUMERS] = c->consumers_param.data;
        lengths[SCHEMA_CKPT_UPSERT_P_CONSUMERS] = (int)c->consumers_param.len;
        values[SCHEMA_CKPT_UPSERT_P_POSITIONS] = c->positions_param.data;
        lengths[SCHEMA_CKPT_UPSERT_P_POSITIONS] = (int)c->positions_param.len;
        pg_conn_send_prepared(w, schema_writes[SCHEMA_CKPT_UPSERT].name, 2, values, lengths,
                              formats, false);
    }
    return 0;
}

void ckpt_clear(ckpt_group_t *c) {
    ckpt_node_t *node, *tmp;
    HASH_ITER(hh, c->nodes, node, tmp) {
        HASH_DEL(c->nodes, node);
        free(node);
    }
    c->tracked = false;
    c->head = 0;
}

void ckpt_free(ckpt_group_t *c) {
    ckpt_clear(c);
    pg_wire_free(&c->consumers_param);
    pg_wire_free(&c->positions_param);
    pg_wire_free(&c->deleted_param);
    pg_wire_free(&c->fences_param);
    pg_wire_free(&c->lowest_param);
}

/* ---------------------------------------------------------------- reads */

void ckpt_deliver(op_t *op, const PGresult *res) {
    int rows = PQntuples(res);
    if (op->kind == OP_LEASE) {
        uint64_t fence = rows ? (uint64_t)pg_wire_get_i64(res, 0, 0) : 0;
        op_answered(op);
        op->cb.lease(op->arg, NULL, rows > 0, fence);
        return;
    }
    if (op->kind == OP_LEASE_RELEASE) {
        op_answered(op);
        op->cb.count(op->arg, NULL, (uint64_t)rows);
        return;
    }
    if (op->kind == OP_GET_CHECKPOINT) {
        uint64_t position = rows ? (uint64_t)pg_wire_get_i64(res, 0, 0) : 0;
        op_answered(op);
        op->cb.position(op->arg, NULL, position);
        return;
    }
    uint64_t head = rows ? (uint64_t)pg_wire_get_i64(res, 0, SCHEMA_CONSUMERS_HEAD) : 0;
    store_consumer_t *list = calloc(rows ? (size_t)rows : 1, sizeof *list);
    if (!list) {
        codec_error_set(&op->err, EVS_EINTERNAL, "out of memory");
        op->has_err = true;
        return;
    }
    size_t n = 0;
    for (int row = 0; row < rows; row++) {
        if (PQgetisnull(res, row, SCHEMA_CONSUMERS_CONSUMER)) continue;
        list[n].consumer = PQgetvalue(res, row, SCHEMA_CONSUMERS_CONSUMER);
        list[n].position = (uint64_t)pg_wire_get_i64(res, row, SCHEMA_CONSUMERS_POSITION);
        list[n].active = *PQgetvalue(res, row, SCHEMA_CONSUMERS_ACTIVE) != 0;
        n++;
    }
    op_answered(op);
    op->cb.consumers(op->arg, NULL, list, n, head);
    free(list);
}
