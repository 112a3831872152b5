/* pg/group_commit.h: the PostgreSQL store's write path.
 *
 * Appends that arrive while a transaction is in flight wait in a queue and all go into the next
 * transaction (a group). Each transaction, on the writer connection:
 *
 *   phase 1  BEGIN; pg_advisory_xact_lock(SCHEMA_APPEND_LOCK_KEY); take a block of positions from
 *            evs_position_seq; read the latest version of every entity of the group and every
 *            stored event that has one of the group's event ids.      -> sync, wait
 *   decide   in C, request by request in arrival order, exactly as the memory store decides one
 *            append: idempotent retry, version conflict, duplicate event id, or accepted (with
 *            versions and positions from the block, in order).
 *   phase 2  one INSERT ... SELECT FROM unnest(binary arrays) of every accepted event;
 *            NOTIFY SCHEMA_NOTIFY_CHANNEL with the last position written; COMMIT.
 *                                                                       -> sync, wait
 *
 * The fast path skips phase 1. The group commit remembers the next version of every entity it
 * has seen (version_cache.h), valid as of the value the position sequence had after its own last
 * COMMIT (every transaction that changes the events, on any daemon, takes the lock and then at
 * least one position). While that holds, a group is decided in C at once (decide.h; an entity
 * never seen is taken for new) and sent in one round trip:
 *
 *   BEGIN; pg_advisory_xact_lock; SELECT evs_append_guard(last sequence value we know, n,
 *   entities taken for new, client-chosen event ids); INSERT; NOTIFY; COMMIT  -> sync, wait
 *
 * The guard (migrations/003_append_guard.sql) proves under the lock that the sequence has not
 * moved, that the entities taken for new have no events and that none of the event ids is
 * stored, then takes the block of positions; otherwise it raises before anything is written,
 * and the group is rolled back and decided again the slow way. Any failure, a lost connection
 * and a reconnect forget what was remembered.
 *
 * A rejected request gets its conflict while the group's other requests still commit, because
 * the rejection happens before any row is written. The lock is held from before the positions
 * are taken until COMMIT, so positions are commit-ordered across every daemon on the database,
 * and the checks of phase 1 cannot be invalidated by another writer before the COMMIT.
 * delete-entity runs as its own transaction under the same lock, in queue order, and takes one
 * position (a gap) so that every daemon's remembered versions are known stale. */
#ifndef EVS_PG_GROUP_COMMIT_H
#define EVS_PG_GROUP_COMMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../../proto/codec.h"
#include "../../proto/event.h"
#include "conn.h"

/* Most events in one group, and most payload bytes (a request larger than that goes alone). */
#define GC_MAX_GROUP_EVENTS 20000
#define GC_MAX_GROUP_BYTES (8u << 20)

typedef struct gc_request gc_request_t;

struct gc_request {
    gc_request_t *next; /* queue link, owned by group_commit */
    bool is_delete;
    /* append: the events, owned by the request (filled with version, position, timestamp). */
    evs_event_t *events;
    size_t n;
    size_t bytes;
    uint64_t *positions, *versions;
    bool written; /* set by group_commit: accepted into the transaction in flight */
    /* Set by the owner when the client was already answered (deadline): a request still queued
     * is then dropped instead of being written after the client was told it failed. */
    bool cancelled;
    bool queued; /* set by group_commit: waiting in its queue, not yet in a transaction */
    struct group_commit *gc; /* set by gc_submit */
    /* delete: the entity, and the number of events removed. */
    char *entity_id;
    uint64_t deleted;
    /* A consumer's checkpoint (checkpoint.h): the tracking of an append (events may be none),
     * or a checkpoint set or deleted alone (no events; a delete counts in deleted). */
    enum { GC_TRACK_NONE, GC_TRACK_APPEND, GC_TRACK_SET, GC_TRACK_DELETE } track;
    char *consumer;
    uint64_t track_position;
    uint64_t track_fence; /* the writer's lease on the consumer (0: none) */
    /* The outcome: err.code == 0 for success. */
    codec_error_t err;
    /* Called exactly once when the request is finished (success or error); owns r afterwards. */
    void (*done)(gc_request_t *r);
    void *owner;
};

typedef struct group_commit group_commit_t;

/* A group commit on writer. NULL when out of memory. Every statement it sends is in schema.h;
 * its NOTIFY is the doorbell of every daemon's live feed (feed.h). */
group_commit_t *gc_new(pg_conn_t *writer);

/* Called after each COMMIT that wrote events, before the requests' done: the events in position
 * order (valid during the call) and the block of positions the transaction reserved under the
 * append lock, [block_first, block_last]. Every event's position is in the block; the block's
 * other positions stay gaps for good (no other transaction takes positions from it). */
typedef void (*gc_commit_hook)(void *arg, const evs_event_t *events, size_t n, uint64_t block_first,
                               uint64_t block_last);

/* Sets the function told once per writer connection how preparing the statements went: failure
 * NULL when they were prepared, else why not (the store reports it and rejects the connection,
 * pg_conn_reject). Without it a failure drops the connection. */
void gc_set_prepared_hook(group_commit_t *g, void (*hook)(void *arg, const pg_failure_t *failure),
                          void *arg);

/* What a transaction wrote, as gc_set_outcome_hook tells it (bits). */
enum { GC_WROTE_EVENTS = 1, GC_WROTE_CHECKPOINTS = 2, GC_WROTE_DELETE = 4 };

/* Sets the function told how each transaction ended: failure NULL when it committed, else its
 * first failure, classified (the store's condition reports a permission or schema failure once,
 * rather than each group logging it); wrote says what the transaction wrote (GC_WROTE_*). */
void gc_set_outcome_hook(group_commit_t *g,
                         void (*hook)(void *arg, const pg_failure_t *failure, unsigned wrote),
                         void *arg);

/* Sets the commit hook (the store's live feed); none by default. */
void gc_set_commit_hook(group_commit_t *g, gc_commit_hook hook, void *arg);

/* Fails every request still queued or in flight with EVS_EUNAVAILABLE, then frees g. */
void gc_free(group_commit_t *g);

/* Queues r and starts a transaction if none is in flight. r->done is called later (never from
 * inside gc_submit). The caller checks that the writer is ready first. */
void gc_submit(group_commit_t *g, gc_request_t *r);

/* True when a write of bytes may not be queued: the queue holds max_requests requests already,
 * or is not empty and would pass max_bytes with it (a single request larger than max_bytes is
 * still taken alone, so that any request the daemon accepts can be written). */
bool gc_queue_full(const group_commit_t *g, size_t bytes, size_t max_requests, size_t max_bytes);

/* Marks r cancelled (its client was already answered: its deadline passed). A request still
 * queued is taken out of the queue and finished at once with EVS_EUNAVAILABLE (r->done is called
 * before gc_cancel returns), so it is never written and its memory is freed now; a request
 * already sent is left to its transaction. */
void gc_cancel(gc_request_t *r);

/* While held, queued work waits and no transaction starts; releasing starts the queued work.
 * The PostgreSQL store holds its group commit until the live feed knows its head: a group that
 * committed before the feed's start query read max(position), but whose COMMIT result came
 * after, would otherwise be taken for delivered and never reach the commit listener. */
void gc_set_held(group_commit_t *g, bool held);

/* The writer connection became ready: prepare the statements, then (once PostgreSQL said they
 * are prepared) start the queued work; writes wait until then, so that a connection rejected
 * for its statements (a broken schema) fails them with the store's reason. */
void gc_on_ready(group_commit_t *g);

/* The writer connection was lost: fail what is queued (what was in flight already failed). */
void gc_on_lost(group_commit_t *g, const char *why);

#endif
