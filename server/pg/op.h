/* pg/op.h: one operation of the PostgreSQL store, from its call to its one answer, by deadline.
 *
 * Every operation of the store becomes an op. It is listed by deadline while unanswered (one timer
 * for all: the deadline is the same for every op, so the list is in deadline order). Its callback
 * is called exactly once: with the result, or with an error (its deadline passed, the store is
 * closing, the database failed). An op that was answered early stays allocated until its work
 * comes back, then the store frees it. */
#ifndef EVS_PG_OP_H
#define EVS_PG_OP_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "../store.h"
#include "group_commit.h"
#include "schema.h"
#include "wire.h"

#define OP_MAX_PARAMS 5 /* the most any reader statement takes */

typedef enum op_kind {
    OP_APPEND,
    OP_DELETE,
    OP_EVENTS,
    OP_PUT_SNAPSHOT,
    OP_GET_SNAPSHOT,
    OP_DELETE_SNAPSHOTS
} op_kind_t;

typedef struct op op_t;
typedef struct op_list op_list_t;

struct op {
    op_t *prev, *next; /* deadline list, while unanswered */
    op_t *park_next;   /* reads waiting for a connection attempt */
    op_list_t *list;
    struct pg_store *s; /* the store the op belongs to */
    uint64_t deadline;
    bool answered;
    bool committed; /* an append that committed and waits for the feed: only ok is possible */
    op_kind_t kind;
    union {
        store_append_cb append;
        store_events_cb events;
        store_count_cb count;
        store_snapshot_cb snapshot;
    } cb;
    void *arg;
    /* reads */
    bool not_found_if_empty; /* get-by-id */
    codec_error_t err;
    bool has_err;
    enum schema_read query;
    int nparams;
    pg_wire_buf_t params[OP_MAX_PARAMS];
    char *what;           /* entity id or event id for not_found messages */
    uint64_t max_version; /* get-snapshot */
    /* writes */
    gc_request_t req;
};

/* The unanswered ops of one store, by deadline, and the timer that fails them at their deadline. */
struct op_list {
    op_t *head, *tail;
    uv_loop_t *loop;
    uv_timer_t timer;
    const uint32_t *timeout_ms; /* the store's request_timeout_ms (0: the default) */
};

/* Initialises l on loop; every op's deadline is *timeout_ms from its start. */
void op_list_init(op_list_t *l, uv_loop_t *loop, const uint32_t *timeout_ms);

/* Answers every op still listed with EVS_EUNAVAILABLE (why), then closes the timer; closed(h) is
 * called from the loop with h->data set to data (the memory holding l may be freed there). */
void op_list_close(op_list_t *l, const char *why, uv_close_cb closed, void *data);

/* A new op of kind for the store s, listed in l, whose callback will get arg. NULL when out of
 * memory. The caller sets op->cb. */
op_t *op_new(op_list_t *l, struct pg_store *s, op_kind_t kind, void *arg);

/* Frees op and everything it owns (unlisting it if it was never answered). */
void op_free(op_t *op);

/* Marks op answered and unlists it: the caller is calling its callback now (or drops it). */
void op_answered(op_t *op);

/* Answers an append that committed with its positions and versions (never twice). */
void op_answer_committed(op_t *op);

/* Calls the op's callback with err (never twice). An append that committed and waits for the
 * feed is answered ok instead: it cannot fail any more. A write still queued for the group commit
 * is dropped, not written late: it is finished and op is freed before this returns (gc_cancel);
 * any other op stays allocated until its work comes back. */
void op_answer_error(op_t *op, const codec_error_t *err);

/* op_answer_error with EVS_EUNAVAILABLE and why. */
void op_answer_unavailable(op_t *op, const char *why);

#endif
