/* pg/checkpoint.h: consumers' checkpoints in the group commit.
 *
 * A group with a checkpoint write (gc_request_t.track), or with a tracking the fast path cannot
 * carry (ckpt_list_assumed), goes the slow way: phase 1
 * also reads the checkpoints of the group's consumers (SCHEMA_CKPT_READ) under the append lock;
 * decide.c asks this file, request by request in arrival order, whether a tracking or checkpoint
 * may go on (store_decide_tracking against the checkpoint as the requests before it left it),
 * and applies it when the request is accepted; phase 2 writes each consumer's final state (one
 * DELETE, one upsert) before COMMIT. So a tracking commits with its events or not at all, a
 * conflicting one fails only its own request, and since every checkpoint write of every daemon
 * happens under the append lock, the checkpoints read in phase 1 cannot change before COMMIT. */
#ifndef EVS_PG_CHECKPOINT_H
#define EVS_PG_CHECKPOINT_H

#include <stdbool.h>
#include <stdint.h>
#include <uthash.h>

#include "conn.h"
#include "group_commit.h"
#include "wire.h"

typedef struct ckpt_node ckpt_node_t;

/* What a group knows of its consumers' checkpoints. A zeroed ckpt_group_t is empty. */
typedef struct ckpt_group {
    bool tracked;       /* the group has a request with a tracking or a checkpoint */
    uint64_t head;      /* the newest position taken before the group's block */
    ckpt_node_t *nodes; /* uthash by consumer */
    pg_wire_buf_t consumers_param, positions_param, deleted_param, fences_param, lowest_param;
} ckpt_group_t;

/* True when a request of group has a tracking or a checkpoint. */
bool ckpt_group_tracks(const gc_request_t *group);

/* Lists the group's consumers (their checkpoints 0 until read) and fills the parameter of
 * SCHEMA_CKPT_READ (consumers_param); sets tracked. Returns 0, or -1 when out of memory. */
int ckpt_list(ckpt_group_t *c, gc_request_t *group);

/* The fast path (009_tracking_advance.sql): when every request of group with a tracking is an
 * append with events, and the requests of one consumer carry at most one fence, lists the
 * consumers as if none had a checkpoint and each lease had that fence (ckpt_admit then decides
 * the group as the slow path would when the assumption holds), with head the newest position,
 * and the lowest position the group tracks for each; sets tracked. Returns 0, 1 when the group
 * must go the slow way (nothing kept), or -1 when out of memory. */
int ckpt_list_assumed(ckpt_group_t *c, gc_request_t *group, uint64_t head);
/* The fast path, once the group is decided: fills the parameters of SCHEMA_CKPT_ADVANCE, which
 * proves the assumption of ckpt_list_assumed under the lock and writes the checkpoints the group
 * moves (so ckpt_send_writes is not called). Returns 0, or -1 when out of memory. */
int ckpt_put_advance(ckpt_group_t *c);
/* Queues SCHEMA_CKPT_ADVANCE on w with the parameters ckpt_put_advance filled. */
void ckpt_send_advance(const ckpt_group_t *c, pg_conn_t *w);
/* Records SCHEMA_CKPT_READ's rows: the stored checkpoints. */
void ckpt_read_rows(ckpt_group_t *c, const PGresult *res);

/* Decides r's tracking before its events (decide.c). retry: every event of r is an idempotent
 * retry. Returns true when r's events are to be decided now; false when r is finished: rejected
 * (r->err set), a retry whose checkpoint is stored (ok), or a checkpoint set or deleted alone
 * (done, applied). */
bool ckpt_admit(ckpt_group_t *c, gc_request_t *r, bool retry);

/* r's events were accepted: its tracking moves the consumer. */
void ckpt_accept(ckpt_group_t *c, gc_request_t *r);

/* Queues the writes of the consumers the group changed (SCHEMA_CKPT_DELETE, SCHEMA_CKPT_UPSERT)
 * on w. Returns 0, or -1 when out of memory (nothing queued). */
int ckpt_send_writes(ckpt_group_t *c, pg_conn_t *w);

/* Forgets the group (keeps the parameters' memory). */
void ckpt_clear(ckpt_group_t *c);

/* Frees everything. */
void ckpt_free(ckpt_group_t *c);

struct op;

/* Answers a read of checkpoints (OP_GET_CHECKPOINT, OP_CONSUMERS) from its result, or sets the
 * op's error. */
void ckpt_deliver(struct op *op, const PGresult *res);

#endif
