/* store.h: the interface every event store implements.
 *
 * A store is a struct of function pointers (store_ops_t) behind a store_t header. Two
 * implementations: store_memory (the default) and pg/store (PostgreSQL). One conformance suite,
 * tests/store/, runs against both through this interface only.
 *
 * Every operation is asynchronous in form: it takes a callback that is called exactly once, with
 * either an error or the result. A store may call it before the operation returns (the memory
 * store always does) or later from the event loop (PostgreSQL). Event arrays passed to a callback
 * are valid only during the callback: copy what you keep.
 *
 * Rules every store keeps (docs/protocol.md is the normative text):
 *  - append is atomic: every event of the call is stored, or none is and the callback gets an
 *    error. Events without has_version get the entity's next version; with has_version it must
 *    be exactly the next version (counting earlier events of the same call) or the error is
 *    EVS_ECONFLICT with entity/version/current details. event_id is always set by the caller;
 *    has_event_id 0 means the daemon drew it at random for this request (122 random bits), so
 *    a store need not look it up for duplicates or retries.
 *  - idempotent retry: if every event's event_id is already stored at the same entity and
 *    version, the result is ok with the original positions and versions, nothing stored twice.
 *    An event_id stored anywhere else is EVS_ECONFLICT (with has_event_id).
 *  - positions are > 0 and strictly increasing in commit order; gaps are allowed.
 *  - after a commit, and before the append callback, the store calls its commit listener (if
 *    set) with the committed events in position order, timestamps and positions filled in.
 *    Each committed event reaches the listener exactly once, in position order across calls.
 *    The PostgreSQL store's listener also gets the events other daemons commit on the same
 *    database (server/pg/feed.h); there an append's callback may come before its events reach
 *    the listener only when the feed cannot deliver promptly (not connected, 1-2 s at most).
 */
#ifndef EVS_STORE_H
#define EVS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../proto/codec.h"
#include "../proto/event.h"

#define STORE_DEFAULT_LIMIT 1000
#define STORE_MAX_LIMIT 10000
#define STORE_DEFAULT_TIMEOUT_MS 30000
#define STORE_DEFAULT_WRITE_QUEUE_BYTES (64u << 20)
#define STORE_DEFAULT_WRITE_QUEUE_REQUESTS 10000

typedef struct store store_t;

/* ---------------------------------------------------------------- the store's condition */

/* Whether the store can serve right now, as the health op, stats' store_state and the errors of
 * requests that fail because of it say. */
typedef enum store_status {
    STORE_STATUS_STARTING = 0, /* not known yet: the first connection attempts are under way */
    STORE_STATUS_OK,           /* appends and reads are served */
    STORE_STATUS_DEGRADED,     /* served, but something is wrong (reason) */
    STORE_STATUS_DOWN,         /* appends or reads cannot be served now (reason) */
} store_status_t;

typedef struct store_condition {
    store_status_t status;
    /* What is wrong, one word (static string): "ok", "starting", "unreachable",
     * "authentication", "permission", "schema", "readers", "feed" or "error". */
    const char *kind;
    /* One sentence saying what is wrong and what to do ("" when ok). */
    char reason[480];
    /* The schema is one this daemon must not run on (newer than it knows, half-applied, or
     * behind with migrate = no): a daemon that was not ready yet exits instead of retrying. */
    bool refused;
} store_condition_t;

/* Called with err == NULL and the results, or with err set (and n == 0). positions[i] and
 * versions[i] belong to the call's i-th event. */
typedef void (*store_append_cb)(void *arg, const codec_error_t *err, const uint64_t *positions,
                                const uint64_t *versions, size_t n);

/* Called with err == NULL and the events found (possibly none), or with err set. */
typedef void (*store_events_cb)(void *arg, const codec_error_t *err, const evs_event_t *events,
                                size_t n);

/* Called with err == NULL and the number of events removed, or with err set. */
typedef void (*store_count_cb)(void *arg, const codec_error_t *err, uint64_t count);

/* A snapshot of an entity's state at one version. */
typedef struct store_snapshot {
    const char *entity_id;
    uint64_t version;  /* the entity version it was taken at; what that counts is the
                          client's choice (libevstore: the number of events applied) */
    const char *topic; /* names the state's type and schema, like an event topic */
    const uint8_t *payload;
    size_t payload_len;
    int64_t timestamp; /* set by the store when it is put; microseconds since the epoch */
} store_snapshot_t;

/* Called with err == NULL and the snapshot (valid during the callback), or with err set
 * (EVS_ENOT_FOUND when the entity has no snapshot at or below the version asked). */
typedef void (*store_snapshot_cb)(void *arg, const codec_error_t *err,
                                  const store_snapshot_t *snap);

/* The commit listener: events just committed, in position order. */
typedef void (*store_commit_cb)(void *arg, const evs_event_t *events, size_t n);

/* A read of the global log in position order: events with position > after, at most limit of
 * them, keeping only those whose topic is one of topics (when ntopics > 0), whose entity_id
 * starts with entity_prefix (when it is non-NULL and non-empty) and that are in the partition
 * (below). get-by-topic and read-all are
 * both this read; so is subscription catch-up. */
typedef struct store_read {
    uint64_t after;
    uint32_t limit;
    const char *const *topics;
    size_t ntopics;
    const char *entity_prefix;
    /* When partition_count > 0, only events whose evs_partition_hash(entity_id) %
     * partition_count is partition_index. */
    uint32_t partition_count, partition_index;
} store_read_t;

/* Durable consumers: a consumer's checkpoint is the last position it has processed (0 when it
 * has none). A tracking goes with an append: the events and the consumer's new checkpoint commit
 * together, or neither does (docs/protocol.md, "Consumers"). */
typedef struct store_tracking {
    const char *consumer;
    uint64_t position;
    uint64_t fence; /* the writer's lease on the consumer (0: none): refused unless current */
} store_tracking_t;

/* Called with err == NULL and whether the lease is held now (with its fencing number), or with
 * err set. */
typedef void (*store_lease_cb)(void *arg, const codec_error_t *err, bool held, uint64_t fence);

/* One consumer as the consumers operation lists it. */
typedef struct store_consumer {
    const char *consumer;
    uint64_t position;
    bool active; /* a subscription holds it now */
} store_consumer_t;

/* Called with err == NULL and a position (a checkpoint), or with err set. */
typedef void (*store_position_cb)(void *arg, const codec_error_t *err, uint64_t position);

/* Called with err == NULL, every consumer by name (valid during the call) and the store's head
 * (the newest position taken), or with err set. */
typedef void (*store_consumers_cb)(void *arg, const codec_error_t *err,
                                   const store_consumer_t *consumers, size_t n, uint64_t head);

typedef struct store_ops {
    const char *name;
    /* Appends events[0..n). The store may modify events only to fill position, version and
     * timestamp. The events and the bytes they point to belong to the caller and are valid only
     * until append returns: a store that finishes later copies them first. The same holds for
     * every pointer argument of every operation (entity_id, store_read_t and its strings...). */
    void (*append)(store_t *s, evs_event_t *events, size_t n, store_append_cb cb, void *arg);
    /* Events of one entity: forwards, versions >= from_version in increasing order; backwards,
     * versions <= from_version (from the last when from_version is UINT64_MAX) in decreasing
     * order. At most limit. */
    void (*get_by_entity)(store_t *s, const char *entity_id, uint64_t from_version, uint32_t limit,
                          bool backwards, store_events_cb cb, void *arg);
    /* One event by id: n == 1, or the error EVS_ENOT_FOUND. */
    void (*get_by_id)(store_t *s, const uint8_t event_id[16], store_events_cb cb, void *arg);
    void (*read)(store_t *s, const store_read_t *q, store_events_cb cb, void *arg);
    /* Removes every event of one entity, and its snapshots; the entity may then start again
     * from version 0. count is the number of events removed.
     * May be NULL in a store that does not support it yet. */
    void (*delete_entity)(store_t *s, const char *entity_id, store_count_cb cb, void *arg);
    /* Stores a snapshot; a second one for the same entity and version replaces the first.
     * Snapshots are not events: no position, no commit listener. count is 1. */
    void (*put_snapshot)(store_t *s, const store_snapshot_t *snap, store_count_cb cb, void *arg);
    /* The snapshot of entity_id with the greatest version <= max_version. */
    void (*get_snapshot)(store_t *s, const char *entity_id, uint64_t max_version,
                         store_snapshot_cb cb, void *arg);
    /* Removes every snapshot of entity_id, not its events; count is the number removed. May be
     * NULL in a store that does not support it. */
    void (*delete_snapshots)(store_t *s, const char *entity_id, store_count_cb cb, void *arg);
    /* append with a tracking (t may be NULL: then exactly append). When the consumer's stored
     * checkpoint is >= t->position the error is EVS_ECONFLICT with has_tracking (nothing is
     * stored), unless every event is an idempotent retry (store_tracked_retry); a position above
     * the head before the call is EVS_EBAD_REQUEST. Otherwise the events (maybe none) and the
     * checkpoint t->position commit together. */
    void (*append_tracked)(store_t *s, evs_event_t *events, size_t n, const store_tracking_t *t,
                           store_append_cb cb, void *arg);
    /* Sets the consumer's checkpoint: equal to the stored one is ok, lower is EVS_ECONFLICT with
     * has_position (the stored one), above the head is EVS_EBAD_REQUEST. Answers the position. */
    void (*checkpoint)(store_t *s, const store_tracking_t *t, store_position_cb cb, void *arg);
    /* The consumer's checkpoint, 0 when it has none. */
    void (*get_checkpoint)(store_t *s, const char *consumer, store_position_cb cb, void *arg);
    /* Removes the consumer's checkpoint; count is 1 when it had one, else 0. */
    void (*delete_checkpoint)(store_t *s, const char *consumer, store_count_cb cb, void *arg);
    /* Every consumer with a checkpoint, by name, and the head. */
    void (*consumers)(store_t *s, store_consumers_cb cb, void *arg);
    /* A consumer's lease: with fence 0, takes it when nobody holds it (never taken, released or
     * expired), with the next fencing number; with a fence, renews it when that is still the
     * current one. Either way it then expires ttl_ms from now. held is false when another holds
     * it (or took it since). Fencing numbers of one consumer only grow, across every daemon on
     * the store, and a tracking or checkpoint that carries a fence that is no longer current is
     * refused (EVS_ECONFLICT). */
    void (*lease)(store_t *s, const char *consumer, uint64_t fence, uint32_t ttl_ms,
                  store_lease_cb cb, void *arg);
    /* Gives the lease up at once when fence is still the current one (count 1, else 0). */
    void (*lease_release)(store_t *s, const char *consumer, uint64_t fence, store_count_cb cb,
                          void *arg);
    /* Frees the store. Callbacks of operations still pending are called first with
     * EVS_EUNAVAILABLE. */
    void (*free)(store_t *s);
} store_ops_t;

/* The ops table of an implementation named display_name whose functions are prefix_append,
 * prefix_get_by_entity, ... prefix_free (one per member of store_ops_t): every store's table has
 * the same shape, written once. */
#define STORE_OPS_INIT(display_name, prefix)                                                       \
    {                                                                                              \
        .name = display_name, .append = prefix##_append, .get_by_entity = prefix##_get_by_entity,  \
        .get_by_id = prefix##_get_by_id, .read = prefix##_read,                                    \
        .delete_entity = prefix##_delete_entity, .put_snapshot = prefix##_put_snapshot,            \
        .get_snapshot = prefix##_get_snapshot, .delete_snapshots = prefix##_delete_snapshots,      \
        .append_tracked = prefix##_append_tracked, .checkpoint = prefix##_checkpoint,              \
        .get_checkpoint = prefix##_get_checkpoint,                                                 \
        .delete_checkpoint = prefix##_delete_checkpoint, .consumers = prefix##_consumers,          \
        .lease = prefix##_lease, .lease_release = prefix##_lease_release, .free = prefix##_free,   \
    }

/* The common header of every store; implementations embed it first. */
struct store {
    const store_ops_t *ops;
    store_commit_cb on_commit;
    void *on_commit_arg;
    /* Deadline of every operation, in milliseconds (default STORE_DEFAULT_TIMEOUT_MS); past it a
     * store that waits on something (PostgreSQL) fails the operation with EVS_EUNAVAILABLE. The
     * daemon sets it after store_open from --request-timeout. */
    uint32_t request_timeout_ms;
    /* The byte bound of every read (get_by_entity and read; not get_by_id): a read returns its
     * events, in order, only while the events before the next one take at most page_bytes as
     * codec_event_size counts them, and its first two events whatever their size. So it
     * returns the events that fit in page_bytes and then the first that does not, which tells
     * the caller there is more (codec_events_fitting with the same budget cuts before it), even
     * when the first event alone is over the bound (stored under a larger max_frame). 0 means
     * no bound (the default); the daemon sets the budget of a page under max_frame. */
    size_t page_bytes;
    /* The most bytes and requests of writes a store that waits on something (PostgreSQL) keeps
     * queued for it; past either, a new write fails at once with EVS_EUNAVAILABLE instead of
     * being queued (0: the defaults below). The daemon sets them from write_queue_bytes and
     * write_queue_requests. */
    size_t write_queue_bytes;
    size_t write_queue_requests;
    /* The most bytes a store that keeps its events in the daemon's memory may allocate for them
     * and their indexes (0: no limit); past it, appends and snapshots fail with
     * EVS_ELIMIT_EXCEEDED and reads go on. The daemon sets it from memory_limit; a store that
     * keeps its events elsewhere (PostgreSQL) ignores it. */
    size_t memory_limit;
    /* Set by the store. live_ready: the commit listener hears of every commit with a position
     * above live_head (the memory store from the start; PostgreSQL once its live feed knows where
     * "now" is). Until then a subscription without "after" cannot say where its live stream
     * starts, so subs makes it wait (up to its deadline) until live_ready. */
    bool live_ready;
    uint64_t live_head;
    /* The store's identity: a UUID string made when the store was created (the memory store:
     * at store_open, so every process has its own; PostgreSQL: in the database, by a migration,
     * read when the writer connects). "" until known. Positions only mean something within one
     * identity: ping and subscribe return it, so that a client notices a different store. */
    char store_id[37];
    /* The store's condition (store_set_condition), kept current by the store itself. */
    store_condition_t condition;
    /* Set by the daemon from the option migrate = no: never change the database's schema; a
     * schema that lacks migrations is refused (store_condition_t.refused). */
    bool never_migrate;
    /* Optional: called after each change of the condition's status or kind. */
    void (*on_condition)(void *arg);
    void *on_condition_arg;
    /* Called by the store once, when live_ready becomes true after store_open returned (the
     * memory store is live from the start and never calls it). */
    void (*on_live)(void *arg);
    void *on_live_arg;
};

/* One store implementation, as store_open sees it. accepts(url) says whether url names a store of
 * this kind; open opens one (loop as in store_open) or returns NULL with err filled. */
typedef struct store_driver {
    const char *name;
    bool (*accepts)(const char *url);
    store_t *(*open)(const char *url, void *loop, codec_error_t *err);
    /* Optional: store_migrate and store_new_id for this kind of store. */
    int (*migrate)(const char *url, char *msg, size_t len);
    int (*new_id)(const char *url, char *msg, size_t len);
} store_driver_t;

/* The implementations store_open chooses from, each defined in its own file, so that this
 * interface includes none of them. */
extern const store_driver_t store_memory_driver; /* store_memory.c */
extern const store_driver_t pg_store_driver;     /* pg/store.c */

/* True when url names a store store_open can open: "memory", "memory://", "postgresql://...",
 * "postgres://..." or a "key=value" libpq string. (store_open also takes NULL or "" for memory.) */
bool store_url_is_valid(const char *url);

/* Opens the store that url names: "memory" (or NULL/empty) for the in-memory store,
 * "postgresql://..." or "postgres://..." or a "key=value" libpq string for PostgreSQL. loop is
 * the daemon's uv_loop_t (void * here so that tests of the memory store need not include uv.h).
 * Returns NULL with err filled when the URL is not usable. */
store_t *store_open(const char *url, void *loop, codec_error_t *err);

/* Registers the commit listener (one per store). */
void store_set_commit_listener(store_t *s, store_commit_cb cb, void *arg);

/* Registers the function the store calls when live_ready becomes true (one per store). */
void store_set_live_listener(store_t *s, void (*cb)(void *arg), void *arg);

/* The status's word in stats' store_state: "unknown" (starting), "ok", "degraded" or
 * "unavailable" (down). */
const char *store_status_state_name(store_status_t status);

/* The status's word in the health op: "starting" is "down" there (nothing is served yet). */
const char *store_status_health_name(store_status_t status);

/* Sets err to the EVS_EUNAVAILABLE of a request that cannot be served because of the store's
 * condition: its reason, then "retry later". fallback is the text when the condition has no
 * reason (ok, starting). */
void store_condition_error(const store_t *s, codec_error_t *err, const char *fallback);

/* One-shot administration of a store's database (evstored --migrate, --new-store-id): url
 * names the store. Each returns 0 with a line saying what it did in msg, or -1 with why not. */
int store_migrate(const char *url, char *msg, size_t len);
int store_new_id(const char *url, char *msg, size_t len);

/* ---------------------------------------------------------------- for implementations */

/* Makes the store's condition status, kind and the reason printf-formatted from fmt: logged
 * (down at error when refused, else at warning; degraded at warning; ok at info) and passed to
 * on_condition only when the status or the kind changes, so that a condition that lasts through
 * many retries is logged once; the reason is updated silently otherwise. */
void store_set_condition(store_t *s, store_status_t status, const char *kind, bool refused,
                         const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* The time stores stamp events with: microseconds since the epoch (CLOCK_REALTIME). */
int64_t store_now_us(void);

/* Sets err to the EVS_ECONFLICT of an event that asked for version asked of entity_id, whose next
 * version is next (details: entity, version, current version). Both stores use it, so that a
 * client reads the same text from either. */
void store_conflict_version(codec_error_t *err, const char *entity_id, uint64_t asked,
                            uint64_t next);

/* Sets err to the EVS_ECONFLICT of a client-chosen event id that is already stored for another
 * event, or repeated in the same request (detail: the event id). */
void store_conflict_event_id(codec_error_t *err, const uint8_t event_id[16]);

/* True when the n positions differ from each other. The idempotent-retry rule uses it: stored
 * ids map one to one to positions, so a request naming one stored id twice has a repeated
 * position, and is a duplicate rather than a retry. Allocates only when the positions are not
 * increasing (false when that allocation fails: the caller then decides the slow way). */
bool store_positions_distinct(const uint64_t *positions, size_t n);

/* Sets err to the EVS_ECONFLICT of a tracking whose consumer's checkpoint (stored) is already at
 * or past its position (detail: tracking). */
void store_conflict_tracking(codec_error_t *err, const store_tracking_t *t, uint64_t stored);

/* Sets err to the EVS_ECONFLICT of a checkpoint lower than the stored one (detail: position). */
void store_conflict_checkpoint(codec_error_t *err, const char *consumer, uint64_t asked,
                               uint64_t stored);

/* Sets err to the EVS_ECONFLICT of a tracking or checkpoint whose writer's lease on the consumer
 * was taken over (its fence is not the current one). */
void store_conflict_lease(codec_error_t *err, const char *consumer);

/* Sets err to the EVS_EBAD_REQUEST of a checkpoint or tracking position above the head. */
void store_bad_position(codec_error_t *err, uint64_t position, uint64_t head);

/* Decides a tracking (is_checkpoint false) or a checkpoint against the consumer's stored
 * checkpoint and the head, both stores alike: a position above the head is EVS_EBAD_REQUEST (and
 * a tracking at 0); a checkpoint lower than stored, or a tracking at or below it, is
 * EVS_ECONFLICT. Returns 0 when the request may go on (the checkpoint becomes t->position when
 * that is higher), or the error's code with err set. The idempotent retry of an append with a
 * tracking (every event stored, stored >= t->position) is the caller's to recognise first. */
int store_decide_tracking(const store_tracking_t *t, bool is_checkpoint, uint64_t stored,
                          uint64_t head, codec_error_t *err);

#endif
