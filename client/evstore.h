/* evstore.h: libevstore, the C client of the evstore event store daemon.
 *
 * A context (evs_context_t) is one connection to one evstored. Every operation is a blocking
 * call that sends one request and waits for its reply. In the style of hiredis:
 *
 *  - Every call returns 0 on success or a negative evs_code_t (<evstore/errors.h>), and the same
 *    code is left in c->err with a sentence in c->errstr. A successful call sets c->err to 0.
 *  - A server error (EVS_ECONFLICT, EVS_ENOT_FOUND, EVS_EBAD_REQUEST, EVS_EUNAVAILABLE, ...) is
 *    an answer: the context stays usable. c->detail holds the details the server sent (for a
 *    conflict: the entity, the version asked for and the current one; for a duplicate event id:
 *    the event id).
 *  - An I/O error, a timeout or a reply that is not the protocol (EVS_EIO, EVS_ETIMEOUT,
 *    EVS_EPROTOCOL) kills the context: every later call fails at once with the same error, and
 *    the only thing left to do is evs_free.
 *  - EVS_EINVAL means the arguments were refused before anything was sent (context unchanged).
 *
 * A context is not thread-safe: use one per thread. Subscriptions live in the context that made
 * them; their pushes may arrive while the context waits for a reply to another request, and are
 * queued (per subscription, in arrival order) until evs_sub_next takes them. The queue is not
 * bounded: a program that subscribes must call evs_sub_next.
 *
 * Ownership: every function that hands out an object says who frees it and with what. Events
 * handed in (evs_append) stay the caller's.
 */
#ifndef EVSTORE_H
#define EVSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <evstore/errors.h>
#include <evstore/event.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifdef EVS_BUILDING_LIB
#define EVS_API __attribute__((visibility("default")))
#else
#define EVS_API
#endif

#define EVS_DEFAULT_ADDR "127.0.0.1:7433"
#define EVS_DEFAULT_MAX_FRAME (16u * 1024 * 1024)
/* The longest frame the protocol allows (its length is 4 bytes): what a client accepts from the
 * server by default, whatever max_frame the daemon runs with, so that every event the daemon
 * stored can be read back. */
#define EVS_MAX_REPLY_FRAME UINT32_MAX
/* from_version for evs_get_by_entity backwards: start at the entity's latest version. */
#define EVS_LATEST UINT64_MAX
/* The most topics one subscription may filter on (the protocol's bound). */
#define EVS_MAX_TOPICS 1024

/* ---------------------------------------------------------------- context */

/* What the server said beside the code of its last error. Only the fields whose has_ flag is
 * set are meaningful; all flags are false after a call that did not fail with a server error. */
typedef struct evs_error_detail {
    bool has_entity_id;
    char entity_id[EVS_NAME_MAX + 1];
    bool has_version;
    uint64_t version; /* the version the request asked for */
    bool has_current_version;
    int64_t current_version; /* the entity's latest version; -1 when it has no events */
    bool has_event_id;
    uint8_t event_id[16];
    bool has_position;
    uint64_t position; /* a consumer's stored checkpoint */
    bool tracking;     /* an append's tracking was refused: the event was processed before */
} evs_error_detail_t;

/* How a TLS connection verifies the server and presents itself (evs_options_t.tls). The strings
 * are read while connecting and not kept. */
typedef struct evs_tls_options {
    const char *ca_file;   /* PEM CA certificates that verify the server; NULL: the system's */
    const char *cert_file; /* PEM client certificate to present, with key_file; NULL: none */
    const char *key_file;
    /* The name the server's certificate must carry; NULL: the host of the address (a DNS name,
     * or an IP address that must be in the certificate's IP addresses). */
    const char *server_name;
} evs_tls_options_t;

typedef struct evs_options {
    /* "HOST:PORT" ("[v6addr]:PORT" for IPv6), or a Unix socket path (any address containing a
     * '/'). NULL means EVS_DEFAULT_ADDR. "tls://HOST:PORT" connects with TLS (see tls). */
    const char *addr;
    /* Longest wait for connecting and for each reply, in milliseconds; 0 waits forever. */
    int timeout_ms;
    /* Largest frame, in bytes, in both directions: a longer request is refused with EVS_EINVAL
     * before it is sent, and a longer frame from the server is EVS_EPROTOCOL (the context dies)
     * and nothing is allocated for it. 0 means requests of up to EVS_DEFAULT_MAX_FRAME and
     * replies of any length the protocol allows (EVS_MAX_REPLY_FRAME): a daemon may run with a
     * larger max_frame than the default, and its replies carry every event it stored. */
    uint32_t max_frame;
    /* Non-NULL: connect with TLS (also when addr has no "tls://"), verifying the server as it
     * says; NULL with a "tls://" address: the system's CAs and the address's host. A server
     * that cannot be verified fails the connect with EVS_EIO and a reason. With TLS, c->fd is
     * the socket under the session: reading or polling it directly sees ciphertext. */
    const evs_tls_options_t *tls;
    /* A bearer token, sent in an auth request as soon as the connection is made (and on every
     * reconnect of a stream, or of the asynchronous context's connection): a daemon with an
     * auth_file serves only ping and auth before it. NULL means $EVSTORE_TOKEN when it is set;
     * "" sends none. A wrong token makes the connect fail with EVS_EUNAUTHORIZED (dead
     * context). */
    const char *token;
} evs_options_t;

struct evs_context_priv;

typedef struct evs_context {
    int err;          /* 0, or the evs_code_t of the last call's failure */
    char errstr[256]; /* a sentence saying what went wrong; "" when err is 0 */
    evs_error_detail_t detail;
    int fd;                        /* the socket, -1 when not connected */
    struct evs_context_priv *priv; /* private to the library */
} evs_context_t;

/* Connects to addr ("HOST:PORT" or a Unix socket path) with default options. Returns a context
 * to check for c->err (a context in error is dead but must still be freed with evs_free), or
 * NULL only when out of memory. */
EVS_API evs_context_t *evs_connect(const char *addr);

/* Same, with options (opts may be NULL). */
EVS_API evs_context_t *evs_connect_with_options(const evs_options_t *opts);

/* Closes the connection and frees the context, its queued pushes and everything it owns.
 * Objects already handed out (evs_events_t, evs_push_t, evs_event_t) stay valid. NULL is a
 * no-op. */
EVS_API void evs_free(evs_context_t *c);

/* Shorthands for c->err and c->errstr that accept NULL (a failed allocation): EVS_ENOMEM and
 * "out of memory". */
EVS_API int evs_err(const evs_context_t *c);
EVS_API const char *evs_errstr(const evs_context_t *c);

/* Authenticates the connection with token (evs_options_t.token does it at connect): the
 * connection is then the principal of the daemon's auth_file that holds the token's SHA-256,
 * whose name is copied into principal (cap bytes; may be NULL when cap is 0; "" from a daemon
 * without auth_file, where every client may do everything). EVS_EUNAUTHORIZED for a wrong token
 * (the context stays usable, but the daemon closes the connection after three). */
EVS_API int evs_auth(evs_context_t *c, const char *token, char *principal, size_t cap);

/* ---------------------------------------------------------------- results */

/* A list of events returned by a read. events[i] point into memory owned by the list.
 * Freed by the caller with evs_events_free. */
typedef struct evs_events {
    size_t n;
    evs_event_t *events;
    /* The server cut the page short (at its max_frame or the connection's output_limit): more
     * events may follow the last one even though n is below the limit asked for. */
    bool truncated;
} evs_events_t;

EVS_API void evs_events_free(evs_events_t *list);

/* Frees one event returned by evs_get_by_id (its bytes and the struct). NULL is a no-op. */
EVS_API void evs_event_free(evs_event_t *ev);

/* ---------------------------------------------------------------- operations */

/* Asks the server for its version string, copied (truncated, NUL-terminated) into version
 * (cap bytes; version may be NULL when cap is 0). */
EVS_API int evs_ping(evs_context_t *c, char *version, size_t cap);

/* The length of a store identity: a UUID string of 36 characters, plus its NUL. */
#define EVS_STORE_ID_LEN 37

/* Asks the server which store it serves: its identity, a UUID string copied into store_id
 * (EVS_STORE_ID_LEN bytes; "" from a server that has none yet, or from an older server), and,
 * when head is not NULL, the newest committed position it knows of (0 when none). Positions
 * belong to one store: a position remembered from another store_id means nothing here. */
EVS_API int evs_store_info(evs_context_t *c, char store_id[EVS_STORE_ID_LEN], uint64_t *head);

/* Appends events[0..n) atomically (they may span several entities). For each event the caller
 * sets entity_id, topic, payload/payload_len, and optionally metadata (one msgpack map),
 * event_id (with has_event_id; otherwise the server picks a random one) and version (with
 * has_version: the entity's next version, or the call fails with EVS_ECONFLICT and details).
 * The other fields are ignored. On success positions[i] and versions[i] (arrays of n that the
 * caller provides; either may be NULL) are where events[i] was stored. Retrying an append whose
 * events all carry event ids already stored at the same entity and version succeeds with the
 * original positions. n == 0 is a valid (empty) append. */
EVS_API int evs_append(evs_context_t *c, const evs_event_t *events, size_t n, uint64_t *positions,
                       uint64_t *versions);

/* The events of entity_id in version order: versions >= from_version, at most limit (0: the
 * server's default, 1000; the server caps it at 10000). With backwards, versions <=
 * from_version newest first (EVS_LATEST: from the latest). An unknown entity gives an empty
 * list. On success *out is a list the caller frees with evs_events_free; on failure NULL. */
EVS_API int evs_get_by_entity(evs_context_t *c, const char *entity_id, uint64_t from_version,
                              uint32_t limit, bool backwards, evs_events_t **out);

/* The events of topic with position > after, in position order, at most limit (0: default).
 * *out as for evs_get_by_entity. */
EVS_API int evs_get_by_topic(evs_context_t *c, const char *topic, uint64_t after, uint32_t limit,
                             evs_events_t **out);

/* The global log: events with position > after, in position order, at most limit (0: default).
 * Page by passing the last position seen. *out as for evs_get_by_entity. */
EVS_API int evs_read_all(evs_context_t *c, uint64_t after, uint32_t limit, evs_events_t **out);

/* One event by its id. EVS_ENOT_FOUND when there is none. On success *out is an event the
 * caller frees with evs_event_free; on failure NULL. */
EVS_API int evs_get_by_id(evs_context_t *c, const uint8_t event_id[16], evs_event_t **out);

/* Removes every event of entity_id (which may then start again at version 0). *deleted (may be
 * NULL) is the number of events removed. */
EVS_API int evs_delete_entity(evs_context_t *c, const char *entity_id, uint64_t *deleted);

/* ---------------------------------------------------------------- administration */

/* Asks the daemon for one of its administrative maps: op "stats" (counters and gauges: uptime,
 * connections, requests by op, errors by code, subscribers, store state and latency) or
 * "config" (each option's value, default and whether a reload can change it); docs/service.md
 * lists their keys. On success *out is the map as the daemon packed it, *len msgpack bytes in
 * the daemon's key order, which the caller frees with free(); evs_value_decode turns them into
 * an evs_value_t tree. EVS_EINVAL for any other op; on failure *out is NULL. */
EVS_API int evs_admin_call(evs_context_t *c, const char *op, uint8_t **out, size_t *len);

/* The daemon's health (the health op, docs/protocol.md): whether appends and reads can be served
 * right now. */
typedef enum evs_health_status {
    EVS_HEALTH_OK = 0,       /* everything works */
    EVS_HEALTH_DEGRADED = 1, /* served, but something is wrong (reason) */
    EVS_HEALTH_DOWN = 2,     /* appends or reads cannot be served now (reason) */
} evs_health_status_t;

typedef struct evs_health {
    evs_health_status_t status;
    char reason[512];     /* one sentence ("" when ok) */
    char kind[32];        /* what is wrong in one word: "ok", "starting", "unreachable",
                             "authentication", "permission", "schema", "error", "draining"... */
    char store_state[16]; /* as stats shows it: "ok", "degraded", "unavailable" or "unknown" */
} evs_health_t;

/* Asks the daemon for its health into *out (needs no permission, like ping). */
EVS_API int evs_health(evs_context_t *c, evs_health_t *out);

/* ---------------------------------------------------------------- subscriptions */

typedef struct evs_sub_options {
    /* With has_after, the server first sends every stored event with position > after, then one
     * caught-up marker, then live events. Without, only events committed after the reply. */
    bool has_after;
    uint64_t after;
    /* Only events of these topics (ntopics 0: every topic). Copied; the caller keeps them. */
    const char *const *topics;
    size_t ntopics;
    /* Only events whose entity_id starts with it (bytes; NULL or "": every entity). */
    const char *entity_prefix;
    /* A consumer name (NULL: none): the subscription holds the consumer (another holder is
     * EVS_ECONFLICT) and, without has_after, starts after its checkpoint. With standby, the
     * reply waits until it holds the consumer (use a context without a reply timeout). */
    const char *consumer;
    bool standby;
} evs_sub_options_t;

/* One push of a subscription: a batch of events in position order, or the caught-up marker
 * (caught_up true, n == 0). Freed by the caller with evs_push_free. */
typedef struct evs_push {
    uint64_t sub;
    bool caught_up;
    size_t n;
    evs_event_t *events;
} evs_push_t;

EVS_API void evs_push_free(evs_push_t *p);

/* Subscribes (opts may be NULL: live events of every topic). On success *sub is the
 * subscription's id, to pass to evs_sub_next and evs_unsubscribe, and evs_sub_started_after
 * tells the position it starts after. */
EVS_API int evs_subscribe(evs_context_t *c, const evs_sub_options_t *opts, uint64_t *sub);

/* The position subscription sub of c starts after: opts->after when it had one, otherwise the
 * newest position the server had committed when it subscribed (resume from there if nothing
 * came). EVS_ENOT_FOUND when c has no such subscription (context unchanged). */
EVS_API int evs_sub_started_after(const evs_context_t *c, uint64_t sub, uint64_t *after);

/* Ends subscription sub. Pushes of it still queued are dropped; none arrives after. */
EVS_API int evs_unsubscribe(evs_context_t *c, uint64_t sub);

/* Takes the next push of subscription sub (0: of any subscription of c), waiting for one up to
 * timeout_ms milliseconds (0: do not wait; -1: wait forever). Returns 0 with *out set to a push
 * the caller frees with evs_push_free, or 0 with *out NULL when none came in time (the context
 * stays usable), or a negative code (I/O errors kill the context as everywhere). A wait
 * interrupted by a signal returns early with *out NULL. */
EVS_API int evs_sub_next(evs_context_t *c, uint64_t sub, int timeout_ms, evs_push_t **out);

/* ------------------------------------------------------------ streams (resuming subscriptions)
 *
 * Here a "stream" is not an entity's events (evs_get_by_entity reads those): it is a
 * subscription that resumes by itself after a lost connection (client/resuming_subscription.c).
 *
 * A stream is a subscription that survives lost connections: it owns its own connection, and
 * when that fails (daemon restart, network cut, timeout) it reconnects with a backoff and
 * subscribes again from the last event it handed out. The application sees every matching event
 * exactly once and in position order, whatever happens to the connection. Pull style: call
 * evs_stream_next in a loop. Not thread-safe; one stream per thread. */
typedef struct evs_stream evs_stream_t;

typedef struct evs_stream_options {
    const char *addr; /* as evs_options_t.addr; NULL: EVS_DEFAULT_ADDR */
    int timeout_ms;   /* connect and reply timeout; 0: none */
    bool has_after;   /* start after this position (catch-up first); else live */
    uint64_t after;
    const char *const *topics; /* only these topics (copied); ntopics 0: all */
    size_t ntopics;
    const char *entity_prefix; /* only entities whose id starts with it (copied); NULL: all */
    int retry_min_ms;          /* first reconnect delay (default 100), doubling up to */
    int retry_max_ms;          /* this (default 5000) */
    uint32_t max_frame;        /* as evs_options_t.max_frame; 0: any reply the protocol allows */
    /* The store the position "after" belongs to (evs_stream_store_id of an earlier stream), or
     * NULL: unknown, taken from the first connection. */
    const char *store_id;
    /* When the stream connects to a store whose identity differs from the one its position
     * belongs to (the daemon restarted on the memory store, pointed at another database), it
     * starts from that store's beginning by default, since its position means nothing there;
     * with keep_position it resumes after its position anyway (events may be skipped). */
    bool keep_position;
    /* As evs_options_t.tls, for every connection of the stream (copied). */
    const evs_tls_options_t *tls;
    /* As evs_options_t.token, sent on every (re)connect. A daemon that refuses it
     * (EVS_EUNAUTHORIZED) or the subscription (EVS_EFORBIDDEN) stops the stream. */
    const char *token;
} evs_stream_options_t;

/* Makes a stream (it connects on the first evs_stream_next). NULL when out of memory or when an
 * option is invalid (a topic or prefix that is not UTF-8 of 1 to 255 bytes, too many topics).
 * Freed with evs_stream_close. */
EVS_API evs_stream_t *evs_stream_open(const evs_stream_options_t *opts);

/* Waits up to timeout_ms (-1: forever; 0: only what is already there) for the next event.
 * Returns 0 with *out an event the caller frees with evs_event_free, or 0 with *out NULL when none
 * came in time (connection failures are retried inside, not returned), or EVS_ENOMEM. A frame
 * from the server that this client cannot take (longer than max_frame, or not the protocol)
 * would come again after a reconnect, so it stops the stream instead: EVS_EPROTOCOL, from then
 * on at every call, with the reason in evs_stream_errstr. */
EVS_API int evs_stream_next(evs_stream_t *s, int timeout_ms, evs_event_t **out);

/* Position of the last event handed out (or where the stream started). */
EVS_API uint64_t evs_stream_position(const evs_stream_t *s);
/* True once the stream has caught up with the store at least once. */
EVS_API bool evs_stream_caught_up(const evs_stream_t *s);
/* Number of times the stream had to connect again after its first connection. */
EVS_API unsigned evs_stream_reconnects(const evs_stream_t *s);
/* Number of times the stream met a store whose identity differed from the one its position
 * belonged to (and, unless keep_position, started again from that store's beginning). */
EVS_API unsigned evs_stream_store_changes(const evs_stream_t *s);
/* The identity of the store the stream's position belongs to ("" while unknown). */
EVS_API const char *evs_stream_store_id(const evs_stream_t *s);
/* The last connection problem, "" when none. */
EVS_API const char *evs_stream_errstr(const evs_stream_t *s);

/* Closes the stream's connection and frees it. NULL is a no-op. */
EVS_API void evs_stream_close(evs_stream_t *s);

/* ---------------------------------------------------------------- helpers */

/* The wire name of a code, as in <evstore/errors.h> (exported for programs that link only the
 * shared library). */
EVS_API const char *evs_strcode(int code);

/* ================================================================ consumers (client/consumer.c)
 *
 * A consumer is a named reader of the global log whose checkpoint (the last position it has
 * processed) the server keeps (docs/protocol.md, section 11). */

/* Sets consumer's checkpoint to position. A lower position than the stored one fails with
 * EVS_ECONFLICT (c->detail.position: the stored one); one above the store's newest position
 * with EVS_EBAD_REQUEST. On success *stored (may be NULL) is the checkpoint now. */
EVS_API int evs_checkpoint(evs_context_t *c, const char *consumer, uint64_t position,
                           uint64_t *stored);

/* consumer's checkpoint into *position (0 when it has none). */
EVS_API int evs_get_checkpoint(evs_context_t *c, const char *consumer, uint64_t *position);

/* Removes consumer's checkpoint; *deleted (may be NULL) is 1 when it had one, else 0. */
EVS_API int evs_delete_checkpoint(evs_context_t *c, const char *consumer, uint64_t *deleted);

/* One consumer as evs_consumers lists it. */
typedef struct evs_consumer_info {
    char consumer[EVS_NAME_MAX + 1];
    uint64_t position; /* its checkpoint */
    uint64_t head;     /* the store's newest position */
    uint64_t lag;      /* head - position, in positions */
    bool active;       /* a subscription holds it now */
} evs_consumer_info_t;

/* Every consumer with a checkpoint, in byte order of their names: *out an array of *n the
 * caller frees with free() (NULL when none), *head (may be NULL) the store's newest position. */
EVS_API int evs_consumers(evs_context_t *c, evs_consumer_info_t **out, size_t *n, uint64_t *head);

/* evs_append with a tracking: the events (n may be 0) and consumer's checkpoint at position
 * commit together. When the consumer's checkpoint is already at or past position, nothing is
 * stored and the call fails with EVS_ECONFLICT and c->detail.tracking set: the event at
 * position was processed before (its effect is stored). A retry of an append that committed
 * succeeds with the original positions. */
EVS_API int evs_append_tracked(evs_context_t *c, const evs_event_t *events, size_t n,
                               const char *consumer, uint64_t position, uint64_t *positions,
                               uint64_t *versions);

/* ================================================================ snapshots (daemon calls) */

/* A snapshot of an entity's state at one version, as the daemon stores it. In snapshots handed
 * out by the library every pointer owns its memory; release with evs_snapshot_free. */
typedef struct evs_snapshot {
    char *entity_id;
    uint64_t version; /* the entity's version when taken: the number of events it covers */
    char *topic;      /* what the state is (the domain layer writes "ENTITY_TOPIC@SCHEMA") */
    uint8_t *payload; /* opaque bytes (the domain layer writes a canonical msgpack map) */
    size_t payload_len;
    int64_t timestamp; /* microseconds since the Unix epoch, set by the server; 0 when unsaved */
} evs_snapshot_t;

/* Frees a snapshot returned by evs_get_snapshot or evs_entity_snapshot. NULL is a no-op. */
EVS_API void evs_snapshot_free(evs_snapshot_t *snap);

/* Stores snap (entity_id, version, topic, payload; the timestamp is ignored). A second snapshot
 * of the same entity and version replaces the first. snap stays the caller's. */
EVS_API int evs_put_snapshot(evs_context_t *c, const evs_snapshot_t *snap);

/* The snapshot of entity_id with the greatest version <= max_version (EVS_LATEST: the newest).
 * EVS_ENOT_FOUND when there is none. On success *out is a snapshot the caller frees with
 * evs_snapshot_free; on failure NULL. */
EVS_API int evs_get_snapshot(evs_context_t *c, const char *entity_id, uint64_t max_version,
                             evs_snapshot_t **out);

/* Removes every snapshot of entity_id (its events stay). *deleted (may be NULL) is the number
 * removed (0 when it had none). Needs a daemon whose ping lists the feature
 * "delete-snapshots"; an older one answers EVS_EBAD_REQUEST. */
EVS_API int evs_delete_snapshots(evs_context_t *c, const char *entity_id, uint64_t *deleted);

/* ================================================================ domain layer
 *
 * Event-sourced entities on top of the calls above (docs/client.md walks through an example).
 *
 *  - Attributes are evs_value_t trees: a domain event's attributes and a snapshot's state are
 *    maps from string keys to values. The library encodes them canonically (keys sorted by their
 *    bytes, integers in their shortest form, floats as float64), so equal attributes always give
 *    the same payload bytes.
 *  - An event type (evs_event_type_t) is a topic, a schema version and an apply function; an
 *    entity type (evs_entity_type_t) is the size of the user's struct, whose first member is an
 *    evs_entity_t, plus optional snapshot/restore functions. Both are usually static const and
 *    must outlive the registry that knows them.
 *  - Versions: an entity's version is the number of events applied to it, which is also the
 *    version the next event carries (event versions start at 0). A snapshot "at version 5"
 *    holds the state after the events 0..4.
 *  - Schema versions: an event's schema version is stored in its metadata as {"schema": N}
 *    (absent: 1); a snapshot's is the suffix of its topic ("bank.Account@2"). Upcasters
 *    registered per topic and schema version turn older attributes into the current shape
 *    when they are read; stored bytes are never changed by a read.
 *  - Errors: pure functions return 0 or a negative evs_code_t and fill the evs_error_t they are
 *    given (it may be NULL). Domain failures the library finds (an unknown topic, a payload
 *    that does not decode, a missing upcaster, a discarded entity) are EVS_EINVAL, and an event
 *    of another entity type is EVS_EWRONG_TYPE; a code
 *    returned by the caller's own functions (apply, check, snapshot, restore, handlers) is
 *    passed on. Repository calls put their errors in the context, as every call above does.
 *  - Nothing here is thread-safe; a registry may be shared by threads once it is filled. */

typedef struct evs_error {
    int code;      /* 0, or the evs_code_t returned */
    char str[256]; /* a sentence; "" when code is 0 */
} evs_error_t;

/* ---------------------------------------------------------------- attribute values */

typedef enum evs_value_type {
    EVS_VAL_NIL,
    EVS_VAL_BOOL,
    EVS_VAL_INT,   /* any integer that fits int64_t */
    EVS_VAL_UINT,  /* only integers above INT64_MAX */
    EVS_VAL_FLOAT, /* a double (a float32 read from a payload is widened) */
    EVS_VAL_STR,   /* UTF-8 bytes; also NUL-terminated */
    EVS_VAL_BIN,
    EVS_VAL_ARRAY,
    EVS_VAL_MAP /* string keys, kept sorted; at most one value per key */
} evs_value_type_t;

typedef struct evs_value evs_value_t;
typedef struct evs_member evs_member_t;

struct evs_value {
    evs_value_type_t type;
    union {
        bool b;
        int64_t i;
        uint64_t u;
        double f;
        struct {
            char *ptr;
            size_t len;
        } str;
        struct {
            uint8_t *ptr;
            size_t len;
        } bin;
        struct {
            evs_value_t *items;
            size_t n, cap;
        } array;
        struct {
            evs_member_t *items; /* sorted by key bytes */
            size_t n, cap;
        } map;
    } via;
};

struct evs_member {
    char *key; /* NUL-terminated */
    size_t key_len;
    evs_value_t value;
};

/* A new empty map, freed by the caller with evs_value_free (or handed to a function that takes
 * it). NULL when out of memory. */
EVS_API evs_value_t *evs_map_new(void);

/* Frees a value made by evs_map_new, evs_value_dup or evs_value_decode, and all it holds. */
EVS_API void evs_value_free(evs_value_t *v);

/* A deep copy, freed with evs_value_free. NULL when out of memory. */
EVS_API evs_value_t *evs_value_dup(const evs_value_t *v);

/* True when a and b hold the same tree (maps compare key by key, floats bit for bit). */
EVS_API bool evs_value_equal(const evs_value_t *a, const evs_value_t *b);

/* Building. evs_map_put returns the slot of key in map (a fresh nil, replacing any value key
 * had) and evs_array_push a new nil slot at the end of array; fill it with the evs_value_set_
 * functions. Slots belong to their container and stay valid until the next put, push or
 * delete on that same container. NULL when out of memory or when map/array is not one. */
EVS_API evs_value_t *evs_map_put(evs_value_t *map, const char *key);
EVS_API evs_value_t *evs_array_push(evs_value_t *array);

/* Set a slot, first releasing what it held. The _str/_strn/_bin setters copy and return 0 or
 * EVS_ENOMEM (the slot is then nil); set_map and set_array make it an empty container. */
EVS_API void evs_value_set_nil(evs_value_t *v);
EVS_API void evs_value_set_bool(evs_value_t *v, bool b);
EVS_API void evs_value_set_int(evs_value_t *v, int64_t i);
EVS_API void evs_value_set_uint(evs_value_t *v, uint64_t u);
EVS_API void evs_value_set_float(evs_value_t *v, double f);
EVS_API int evs_value_set_str(evs_value_t *v, const char *s);
EVS_API int evs_value_set_strn(evs_value_t *v, const char *s, size_t len);
EVS_API int evs_value_set_bin(evs_value_t *v, const void *data, size_t len);
EVS_API void evs_value_set_map(evs_value_t *v);
EVS_API void evs_value_set_array(evs_value_t *v);

/* Shorthands: put key into map and set it. 0, or EVS_ENOMEM, or EVS_EINVAL (map is not one). */
EVS_API int evs_map_set_bool(evs_value_t *map, const char *key, bool b);
EVS_API int evs_map_set_int(evs_value_t *map, const char *key, int64_t i);
EVS_API int evs_map_set_uint(evs_value_t *map, const char *key, uint64_t u);
EVS_API int evs_map_set_float(evs_value_t *map, const char *key, double f);
EVS_API int evs_map_set_str(evs_value_t *map, const char *key, const char *s);
EVS_API int evs_map_set_bin(evs_value_t *map, const char *key, const void *data, size_t len);

/* Reading. evs_map_get returns the value of key, or NULL when absent (or map is not a map).
 * The typed getters return 0 with *out set, EVS_ENOT_FOUND when key is absent, or EVS_EINVAL
 * when its value has another type or does not fit (get_int accepts EVS_VAL_UINT only up to
 * INT64_MAX; get_float accepts integers). Strings and bytes point into map. */
EVS_API const evs_value_t *evs_map_get(const evs_value_t *map, const char *key);
EVS_API int evs_map_get_bool(const evs_value_t *map, const char *key, bool *out);
EVS_API int evs_map_get_int(const evs_value_t *map, const char *key, int64_t *out);
EVS_API int evs_map_get_uint(const evs_value_t *map, const char *key, uint64_t *out);
EVS_API int evs_map_get_float(const evs_value_t *map, const char *key, double *out);
EVS_API int evs_map_get_str(const evs_value_t *map, const char *key, const char **out);
EVS_API int evs_map_get_bin(const evs_value_t *map, const char *key, const uint8_t **out,
                            size_t *len);

/* Removing and renaming keys (for upcasters). 0, or EVS_ENOT_FOUND when from/key is absent;
 * renaming onto an existing key replaces it. */
EVS_API int evs_map_del(evs_value_t *map, const char *key);
EVS_API int evs_map_rename(evs_value_t *map, const char *from, const char *to);

/* Encodes v canonically. On success *out is a buffer of *len bytes the caller frees with
 * free(). EVS_ENOMEM otherwise. */
EVS_API int evs_value_encode(const evs_value_t *v, uint8_t **out, size_t *len);

/* Decodes the len bytes at buf, which must be exactly one msgpack map (any bytes: they are
 * checked first). Inside it: nil, bool, integers, float32/64, str, bin, arrays, and maps with
 * string keys; ext types and non-string or repeated map keys are EVS_EINVAL. On success *out
 * is a map the caller frees with evs_value_free. */
EVS_API int evs_value_decode(const uint8_t *buf, size_t len, evs_value_t **out, evs_error_t *err);

/* Checks that the len bytes at buf hold exactly one msgpack map that is safe to hand to
 * msgpack-c's unpacker: every declared length and element count fits in the bytes that are
 * really there and nesting is at most 32 deep, so unpacking cannot allocate for elements that
 * do not exist. For a caller that unpacks untrusted bytes (an event's payload, say) with
 * msgpack-c itself, in the order they were written. Returns 0, or EVS_EINVAL with a reason in
 * *why (a static string) when why is not NULL. */
EVS_API int evs_msgpack_check(const uint8_t *buf, size_t len, const char **why);

/* ---------------------------------------------------------------- types and the registry */

typedef struct evs_entity evs_entity_t;
typedef struct evs_domain_event evs_domain_event_t;
typedef struct evs_registry evs_registry_t;

/* A kind of domain event. apply changes the entity's own fields (the library then advances its
 * version); it is called both when an event is triggered and when one is replayed, so it must
 * not refuse an event that was once accepted: business rules belong in the command that
 * triggers the event. check (optional) validates attributes, after decoding and upcasting and
 * before a trigger: it is where a malformed stored event becomes a clear error. */
typedef struct evs_event_type {
    const char *topic;       /* e.g. "bank.AccountOpened"; 1..255 bytes, no '@' */
    uint32_t schema_version; /* the current shape of the attributes; 0 is read as 1 */
    int (*apply)(evs_entity_t *e, const evs_domain_event_t *ev, evs_error_t *err);
    int (*check)(const evs_value_t *attrs, evs_error_t *err);
    bool discards; /* applying it discards the entity (e.g. "account closed") */
    /* The field-table style (see "less to write" below; EVS_EVENT_FIELDS fills these with apply
     * = evs_apply_fields): the attributes are a C struct of attrs_size bytes that fields
     * describes, and applying decodes them into one and calls on (which cannot fail). */
    const struct evs_field *fields;
    size_t attrs_size;
    void (*on)(evs_entity_t *e, const void *attrs);
} evs_event_type_t;

/* A kind of entity. size is sizeof the user's struct, whose first member is an evs_entity_t;
 * the library allocates it zeroed. snapshot fills state (an empty map) from the entity and
 * restore sets the entity from a state; both NULL means no snapshots. clear releases what the
 * user's fields own (may be NULL).
 *
 * events (required) lists the event types of the entity, a NULL-terminated array: only those
 * can be triggered on it, applied to it or replayed into it; any other is EVS_EWRONG_TYPE, and
 * its apply never runs on this struct. An event type may belong to several entity types. Each
 * event an entity triggers records the entity type's topic in its metadata
 * ("originator_topic"); a stored event whose originator_topic is another entity type's is
 * refused even when its topic is listed here. */
typedef struct evs_entity_type {
    const char *topic;       /* names the snapshots, e.g. "bank.Account"; no '@' */
    uint32_t schema_version; /* of the snapshot state; 0 is read as 1 */
    size_t size;
    int (*snapshot)(const evs_entity_t *e, evs_value_t *state, evs_error_t *err);
    int (*restore)(evs_entity_t *e, const evs_value_t *state, evs_error_t *err);
    void (*clear)(evs_entity_t *e);
    const evs_event_type_t *const *events; /* e.g. EVS_EVENTS(&A, &B): {&A, &B, NULL} */
    /* The state as plain fields of the user's struct, for snapshot = evs_fields_snapshot and
     * restore = evs_fields_restore (EVS_ENTITY_FIELDS(T, table) fills the three, and size). */
    const struct evs_field *fields;
} evs_entity_type_t;

/* Turns attributes (or a snapshot state) of schema version from_version into from_version + 1,
 * in place. A failure (any code but EVS_ENOMEM) is reported as EVS_EINVAL. */
typedef int (*evs_upcast_fn)(evs_value_t *attrs, evs_error_t *err);

/* A registry of event types, entity types and upcasters. Freed with evs_registry_free (the
 * types stay the caller's). NULL when out of memory. */
EVS_API evs_registry_t *evs_registry_new(void);
EVS_API void evs_registry_free(evs_registry_t *reg);

/* Registers a type. EVS_EINVAL when its topic is invalid (empty, over 244 bytes, or with an
 * '@') or already registered (an event type and an entity type may not share a topic either),
 * or an entity type's size is below sizeof(evs_entity_t), or it lists no event types (or one
 * with an invalid topic); EVS_ENOMEM. The event types an entity type lists are registered on
 * their own, before or after it. What was wrong is in evs_registry_errstr. */
EVS_API int evs_registry_add_event(evs_registry_t *reg, const evs_event_type_t *type);
EVS_API int evs_registry_add_entity(evs_registry_t *reg, const evs_entity_type_t *type);

/* A sentence saying why the last evs_registry_add_* call on reg failed; "" after one that
 * succeeded (and for NULL). */
EVS_API const char *evs_registry_errstr(const evs_registry_t *reg);

/* True when events of the event type topic belong to entity type t (t lists it). */
EVS_API bool evs_entity_type_owns(const evs_entity_type_t *t, const char *topic);

/* Registers fn as the upcaster of topic (an event or entity topic) from schema from_version to
 * from_version + 1. EVS_EINVAL when one is already registered for that step. */
EVS_API int evs_registry_add_upcaster(evs_registry_t *reg, const char *topic, uint32_t from_version,
                                      evs_upcast_fn fn);

/* Topic -> type: NULL when the topic is unknown. Type -> topic: NULL when the type is not
 * registered here. */
EVS_API const evs_event_type_t *evs_registry_event_type(const evs_registry_t *reg,
                                                        const char *topic);
EVS_API const evs_entity_type_t *evs_registry_entity_type(const evs_registry_t *reg,
                                                          const char *topic);
EVS_API const char *evs_registry_topic_of(const evs_registry_t *reg, const evs_event_type_t *type);

/* Runs the upcasters of topic on attrs from schema from_version up to to_version. EVS_EINVAL
 * when a step has no upcaster or from_version > to_version (written by newer code). */
EVS_API int evs_registry_upcast(const evs_registry_t *reg, const char *topic, uint32_t from_version,
                                uint32_t to_version, evs_value_t *attrs, evs_error_t *err);

/* ---------------------------------------------------------------- domain events */

/* A domain event: a typed, decoded event of one entity. */
struct evs_domain_event {
    const evs_event_type_t *type;
    char *entity_id;
    uint64_t version; /* the entity's version before it (its index in the entity's stream) */
    uint8_t event_id[16];
    uint64_t position;  /* 0 until stored */
    int64_t timestamp;  /* 0 until stored */
    evs_value_t *attrs; /* a map, owned by the event */
    /* The entity type the event belongs to: set by evs_entity_trigger, and by
     * evs_domain_event_from_stored from the stored event's originator_topic when the registry
     * knows it; NULL otherwise (events stored before originator_topic existed). */
    const evs_entity_type_t *entity_type;
};

/* A new event of type for entity_id at version, with a random event id. attrs (a map, or NULL
 * for no attributes) is taken in every case. *out is freed with evs_domain_event_free. */
EVS_API int evs_domain_event_new(const evs_event_type_t *type, const char *entity_id,
                                 uint64_t version, evs_value_t *attrs, evs_domain_event_t **out,
                                 evs_error_t *err);
EVS_API void evs_domain_event_free(evs_domain_event_t *ev);

/* Domain event -> stored event as append takes it (event id and version set, payload the
 * canonical attributes, metadata {"schema": N}, plus {"originator_topic": ENTITY_TOPIC} when
 * ev->entity_type is set). *out owns its bytes: evs_event_clear. */
EVS_API int evs_domain_event_to_stored(const evs_domain_event_t *ev, evs_event_t *out,
                                       evs_error_t *err);

/* Stored event -> domain event: resolves the topic in reg, decodes the payload, runs the
 * upcasters up to the type's schema version and the type's check. The stored bytes are not
 * changed. *out is freed with evs_domain_event_free. */
EVS_API int evs_domain_event_from_stored(const evs_registry_t *reg, const evs_event_t *stored,
                                         evs_domain_event_t **out, evs_error_t *err);

/* ---------------------------------------------------------------- entities and the player */

/* The base of every entity, embedded as the first member of the user's struct. The pending
 * events are triggered but not saved yet; they belong to the entity. */
struct evs_entity {
    const evs_entity_type_t *type;
    const evs_registry_t *registry;
    char *id;
    uint64_t version; /* events applied so far = the version of the next event */
    bool discarded;
    evs_domain_event_t **pending;
    size_t npending, pending_cap;
};

/* A new entity of type (registered in reg) with no events, at version 0, allocated as
 * type->size zeroed bytes. Freed with evs_entity_free. NULL when out of memory, when type is
 * not registered in reg, or when id is not 1..255 bytes of UTF-8. */
EVS_API evs_entity_t *evs_entity_new(const evs_registry_t *reg, const evs_entity_type_t *type,
                                     const char *id);

/* Calls type->clear, frees the pending events and the entity. NULL is a no-op. */
EVS_API void evs_entity_free(evs_entity_t *e);

/* Applies ev to e: it must be of e's id, carry e's version, and e must not be discarded
 * (EVS_EINVAL otherwise, e unchanged); its type must be one e's type lists, and its entity_type
 * (when set) e's type (EVS_EWRONG_TYPE otherwise, e unchanged). Then the type's apply runs, the
 * version advances, and a discarding event marks e discarded. ev stays the caller's. */
EVS_API int evs_entity_apply(evs_entity_t *e, const evs_domain_event_t *ev, evs_error_t *err);

/* Makes a new event of type with attrs (taken in every case) at e's version, runs the type's
 * check on its attributes (an empty map when attrs is NULL), applies it and keeps it in e's
 * pending events. A discarded entity refuses (EVS_EINVAL); so does an event type that is not
 * registered, and one that e's type does not list is EVS_EWRONG_TYPE. */
EVS_API int evs_entity_trigger(evs_entity_t *e, const evs_event_type_t *type, evs_value_t *attrs,
                               evs_error_t *err);

/* Frees e's pending events (after they were saved, or to drop them). */
EVS_API void evs_entity_clear_pending(evs_entity_t *e);

/* Takes a snapshot of e at its version. EVS_EINVAL when e's type has no snapshot function or
 * e is discarded. *out is freed with evs_snapshot_free. */
EVS_API int evs_entity_snapshot(const evs_entity_t *e, evs_snapshot_t **out, evs_error_t *err);

/* The event player. evs_player_restore sets a fresh entity (version 0, no events applied) from
 * snap: the topic must be e's type's (EVS_EWRONG_TYPE otherwise), the state is upcast to the
 * current schema and given to restore; on failure e's version stays 0 (but restore may have
 * set fields: start again from a fresh entity, as the repository does). evs_player_play
 * then applies, in order, the stored events of events[0..n) that belong to e (others are
 * skipped, so an interleaved log replays entity by entity), skipping those below e's version
 * and stopping before version until (EVS_LATEST: all). A gap in the versions or a payload that
 * does not decode is EVS_EINVAL; an event whose topic e's type does not list, or whose
 * originator_topic is another entity type's, is EVS_EWRONG_TYPE (nothing of it is applied). */
EVS_API int evs_player_restore(evs_entity_t *e, const evs_snapshot_t *snap, evs_error_t *err);
EVS_API int evs_player_play(evs_entity_t *e, const evs_event_t *events, size_t n, uint64_t until,
                            evs_error_t *err);

/* ---------------------------------------------------------------- in-process publish-subscribe */

typedef struct evs_pubsub evs_pubsub_t;

/* A predicate says whether a subscription wants ev (NULL: every event). A handler returns 0
 * or a negative code (with err filled), which stops the publication. */
typedef bool (*evs_predicate_fn)(const evs_domain_event_t *ev, void *arg);
typedef int (*evs_handler_fn)(const evs_domain_event_t *ev, void *arg, evs_error_t *err);

/* Freed with evs_pubsub_free (which also drops every subscription). NULL when out of memory. */
EVS_API evs_pubsub_t *evs_pubsub_new(void);
EVS_API void evs_pubsub_free(evs_pubsub_t *ps);

/* Subscribes handler (with arg, passed to predicate too) to the events predicate accepts.
 * Returns the subscription's id (> 0), or 0 when out of memory. */
EVS_API uint64_t evs_pubsub_subscribe(evs_pubsub_t *ps, evs_predicate_fn predicate,
                                      evs_handler_fn handler, void *arg);

/* Ends subscription id. 0, or EVS_ENOT_FOUND. Safe inside a handler. */
EVS_API int evs_pubsub_unsubscribe(evs_pubsub_t *ps, uint64_t id);

/* Publishes events[0..n) in order. For each event, every handler (a handler is its function
 * and arg) with at least one matching subscription is called exactly once, in the order of its
 * first matching subscription. Subscriptions made during a publication see the next event. The
 * first handler failure stops it and is returned. */
EVS_API int evs_pubsub_publish(evs_pubsub_t *ps, const evs_domain_event_t *const *events, size_t n,
                               evs_error_t *err);

/* A persistence subscriber: appends every domain event published on ps to the daemon of c
 * (with its version, so a stale event is EVS_ECONFLICT, returned by publish). The events of one
 * evs_pubsub_publish call go in one append, made when the first of them reaches it: all are
 * stored or none. c must outlive it. evs_persistence_close unsubscribes and frees it: no event is
 * appended after. NULL when out of memory. */
typedef struct evs_persistence evs_persistence_t;
EVS_API evs_persistence_t *evs_persistence_new(evs_pubsub_t *ps, evs_context_t *c);
EVS_API void evs_persistence_close(evs_persistence_t *p);

/* ---------------------------------------------------------------- the event-sourced repository */

typedef struct evs_repository evs_repository_t;

typedef struct evs_repository_options {
    const evs_registry_t *registry; /* required; must outlive the repository */
    const evs_entity_type_t *type;  /* required; registered in registry */
    /* Take a snapshot after a save that reaches or passes a multiple of snapshot_every events
     * (0: never). Loading always starts from the newest usable snapshot when the type can
     * restore. */
    uint64_t snapshot_every;
    /* When set, the events of every successful save are published there afterwards, with the
     * position and timestamp the daemon stored them at. */
    evs_pubsub_t *publish_to;
    /* Called (with warning_arg) with a sentence when loading works around a problem instead of
     * failing: a snapshot that cannot be used (its schema has no upcaster, its restore failed,
     * its payload does not decode) is skipped and the entity rebuilt from its events alone.
     * NULL: nobody is told; the library never writes to stderr. */
    void (*on_warning)(const char *message, void *warning_arg);
    void *warning_arg;
} evs_repository_options_t;

/* A repository of one entity type on context c (which must outlive it, or be replaced first
 * with evs_repository_set_conn). Freed with evs_repository_free (with the events it still
 * keeps unpublished). NULL when out of memory or the options are incomplete. */
EVS_API evs_repository_t *evs_repository_new(evs_context_t *c,
                                             const evs_repository_options_t *opts);
EVS_API void evs_repository_free(evs_repository_t *r);

/* Rebinds r to the context c, e.g. a new connection after the old one died (a dead context
 * stays dead): the calls after use c, whose errors then carry theirs. The old context is not
 * freed. EVS_EINVAL when r or c is NULL. */
EVS_API int evs_repository_set_conn(evs_repository_t *r, evs_context_t *c);

/* The entity id, rebuilt from its newest snapshot and the events after it. EVS_ENOT_FOUND when
 * it has no events or was discarded. On success *out is an entity the caller frees with
 * evs_entity_free; on failure NULL. */
EVS_API int evs_repository_get(evs_repository_t *r, const char *id, evs_entity_t **out);

/* The entity as it was at version (after its first version events), discarded or not.
 * EVS_ENOT_FOUND when it never reached that version (or version is 0). *out as above. */
EVS_API int evs_repository_get_at(evs_repository_t *r, const char *id, uint64_t version,
                                  evs_entity_t **out);

/* Appends e's pending events with their versions in one request: if another writer saved the
 * entity meanwhile, EVS_ECONFLICT, nothing is stored and the pending events are kept. A
 * conflict speaks of entity versions as the domain layer counts them (the number of events):
 * c->detail.version is the version e was at when it was loaded (the one the save expected)
 * and c->detail.current_version the entity's version now (0 when it has no events), and
 * errstr says the same. On success the events are published (publish_to), a snapshot is taken
 * when due, and e's pending list is emptied. Nothing pending is a no-op.
 *
 * When the events are stored but a subscriber of publish_to fails, the result is
 * EVS_ESTORED_NOT_PUBLISHED (errstr says which handler failed): the save succeeded and must
 * not be repeated. The events from the one that failed on (to the end) are kept by r and
 * published again, before the new ones, by the next save, or by
 * evs_repository_publish_pending; each handler therefore sees every event at least once, and
 * a handler that ran before the failing one on that event sees it again. A failed snapshot
 * after stored events is returned as its error with the events saved (errstr says so). */
EVS_API int evs_repository_save(evs_repository_t *r, evs_entity_t *e);

/* Publishes again the events r keeps unpublished (after EVS_ESTORED_NOT_PUBLISHED). 0 when
 * there were none or all are now published; EVS_ESTORED_NOT_PUBLISHED when a subscriber failed
 * again (those from the failing one on stay kept). */
EVS_API int evs_repository_publish_pending(evs_repository_t *r);

/* The events r keeps unpublished, oldest first: *events points at n of them, owned by r and
 * valid until the next call on r. Returns n. */
EVS_API size_t evs_repository_unpublished(const evs_repository_t *r,
                                          const evs_domain_event_t *const **events);

/* Removes every snapshot of the entity id, keeping its events (a snapshot that keeps failing,
 * a snapshot schema dropped): the next load replays its events. *deleted (may be NULL) is the
 * number of snapshots removed. */
EVS_API int evs_repository_delete_snapshots(evs_repository_t *r, const char *id, uint64_t *deleted);

/* *out: whether get(id) would find the entity (it has events and is not discarded). Reads
 * only the entity's last event. */
EVS_API int evs_repository_contains(evs_repository_t *r, const char *id, bool *out);

/* Writes a random UUID as 36 characters plus NUL into out (handy for entity ids). */
EVS_API void evs_random_id(char out[37]);

/* Writes a time-ordered UUID (version 7, RFC 9562) as 36 characters plus NUL into out: each one
 * this process makes sorts after the one before (as text too), which keeps index inserts of
 * new ids at one end of a B-tree. */
EVS_API void evs_ordered_id(char out[37]);

/* ================================================================ domain layer: less to write
 *
 * A shorter way to write the same entities (docs/client.md shows it first):
 *
 *  - Field tables (client/domain_fields.c): an array of evs_field_t, built with the EVS_F
 *    macros and ended by {0}, maps the members of a C struct to the keys of an attribute map
 *    (the member's name is the key). An event type's attributes become a struct that its `on`
 *    function receives already decoded; an entity whose state is plain fields gets snapshot and
 *    restore for free (EVS_ENTITY_FIELDS); a hand-written snapshot stays possible.
 *  - Commands (client/domain_command.c): evs_command encodes an attribute struct, triggers the
 *    event and applies it in one call; evs_entity_start makes an entity and triggers its first
 *    event. evs_error_set fills an evs_error_t from a command, an apply or a check function.
 *  - evs_repository_save_all (client/domain_unit.c): several entities in one atomic append.
 *  - evs_domain_subscribe (client/domain_subscription.c): the daemon's events as upcast domain
 *    events, for the same handler an in-process evs_pubsub_t feeds. */

/* What one field holds. INT and UINT fields may be 1, 2, 4 or 8 bytes wide and FLOAT fields
 * float or double: the table records each member's size. */
typedef enum evs_field_kind {
    EVS_FIELD_BOOL = 1, /* bool <-> a msgpack bool */
    EVS_FIELD_INT,      /* a signed integer <-> an integer that fits it */
    EVS_FIELD_UINT,     /* an unsigned integer <-> a non-negative integer that fits it */
    EVS_FIELD_FLOAT,    /* float or double <-> a float (an integer is accepted on decode) */
    EVS_FIELD_STR,      /* char[N], NUL-terminated <-> a string of at most N - 1 bytes */
    /* const char * <-> a string, or nil for NULL. Decoding points into the attribute map, so it
     * is for an event's attribute struct only (valid while `on` runs); entity tables refuse it. */
    EVS_FIELD_STRREF,
    EVS_FIELD_STRUCT, /* a struct described by the table sub <-> a map */
} evs_field_kind_t;

/* One member of a struct. With cap > 0 the member is an array of cap elements of kind, each
 * size bytes, whose number in use is the unsigned integer of count_size bytes at count_offset
 * (an msgpack array of at most cap elements). */
typedef struct evs_field {
    const char *key; /* NULL ends a table */
    evs_field_kind_t kind;
    size_t offset, size;
    size_t cap, count_offset, count_size;
    const struct evs_field *sub; /* EVS_FIELD_STRUCT: the table of the member's struct */
} evs_field_t;

/* Table entries. EVS_F(T, m) is the member m of struct T under the key "m", its kind taken
 * from its C type (bool, any integer type, float, double, char[N], char * / const char *);
 * EVS_F_ARRAY(T, m, n) the array member m with its count in member n (kind from m[0]). The _AS
 * forms name the kind (for an enum, say). */
#define EVS_F_AS(T, m, k)                                                                          \
    { .key = #m, .kind = (k), .offset = offsetof(T, m), .size = sizeof(((T *)0)->m) }
#define EVS_F(T, m) EVS_F_AS(T, m, EVS_FIELD_KIND_OF_(((T *)0)->m))
#define EVS_F_ARRAY_AS(T, m, n, k)                                                                 \
    {                                                                                              \
        .key = #m, .kind = (k), .offset = offsetof(T, m), .size = sizeof(((T *)0)->m[0]),          \
        .cap = sizeof(((T *)0)->m) / sizeof(((T *)0)->m[0]), .count_offset = offsetof(T, n),       \
        .count_size = sizeof(((T *)0)->n)                                                          \
    }
#define EVS_F_ARRAY(T, m, n) EVS_F_ARRAY_AS(T, m, n, EVS_FIELD_KIND_OF_(((T *)0)->m[0]))
/* The struct member m (or array of structs m counted by n), whose struct table describes. */
#define EVS_F_STRUCT(T, m, table)                                                                  \
    {                                                                                              \
        .key = #m, .kind = EVS_FIELD_STRUCT, .offset = offsetof(T, m),                             \
        .size = sizeof(((T *)0)->m), .sub = (table)                                                \
    }
#define EVS_F_ARRAY_STRUCT(T, m, n, table)                                                         \
    {                                                                                              \
        .key = #m, .kind = EVS_FIELD_STRUCT, .offset = offsetof(T, m),                             \
        .size = sizeof(((T *)0)->m[0]), .cap = sizeof(((T *)0)->m) / sizeof(((T *)0)->m[0]),       \
        .count_offset = offsetof(T, n), .count_size = sizeof(((T *)0)->n), .sub = (table)          \
    }
/* A table whose struct is one value of type T (int64_t, say) under the key name: for an event of
 * one attribute, whose command then takes a pointer to that value. */
#define EVS_F_VALUE(T, name)                                                                       \
    { .key = (name), .kind = EVS_FIELD_KIND_OF_(*(T *)0), .offset = 0, .size = sizeof(T) }
/* The kind of an lvalue x by its type (0, refused by the functions, for any other type). A
 * char[N] decays to char * here, so the address tells it from a char *. */
#define EVS_FIELD_KIND_OF_(x)                                                                      \
    _Generic((x), _Bool: EVS_FIELD_BOOL, char: EVS_FIELD_INT, signed char: EVS_FIELD_INT,        \
        short: EVS_FIELD_INT, int: EVS_FIELD_INT, long: EVS_FIELD_INT, long long: EVS_FIELD_INT,   \
        unsigned char: EVS_FIELD_UINT, unsigned short: EVS_FIELD_UINT,                             \
        unsigned int: EVS_FIELD_UINT, unsigned long: EVS_FIELD_UINT,                               \
        unsigned long long: EVS_FIELD_UINT, float: EVS_FIELD_FLOAT, double: EVS_FIELD_FLOAT,       \
        char *: EVS_FIELD_STR_KIND_(&(x)), const char *: EVS_FIELD_STR_KIND_(&(x)),                \
        default: 0)
#define EVS_FIELD_STR_KIND_(p)                                                                     \
    _Generic((p), char **: EVS_FIELD_STRREF, const char **: EVS_FIELD_STRREF,                    \
        default: EVS_FIELD_STR)

/* Struct -> map: sets every field's key in map (an evs_value_t map). EVS_EINVAL (naming the
 * field) for a bad table, a char[N] without its NUL, an array count above cap; EVS_ENOMEM. */
EVS_API int evs_fields_encode(const evs_field_t *fields, const void *obj, evs_value_t *map,
                              evs_error_t *err);

/* Map -> struct: every field's key must be there with a value of its kind that fits (a string
 * shorter than a char[N], at most cap array elements); other keys are ignored. EVS_EINVAL
 * naming the key and what is wrong. obj may be partly written on failure. */
EVS_API int evs_fields_decode(const evs_field_t *fields, const evs_value_t *map, void *obj,
                              evs_error_t *err);

/* The snapshot and restore functions of an entity type whose state is e->type->fields. */
EVS_API int evs_fields_snapshot(const evs_entity_t *e, evs_value_t *state, evs_error_t *err);
EVS_API int evs_fields_restore(evs_entity_t *e, const evs_value_t *state, evs_error_t *err);

/* The apply function of an event type in the field-table style: decodes ev's attributes into a
 * zeroed struct of ev->type->attrs_size bytes with ev->type->fields (no fields: no struct, on
 * gets NULL) and calls ev->type->on. A decoding failure is EVS_EINVAL naming the topic and the
 * key, so an event that lacks an attribute is refused when triggered and never stored. */
EVS_API int evs_apply_fields(evs_entity_t *e, const evs_domain_event_t *ev, evs_error_t *err);

/* Designated initializers for the type structs:
 *   static const evs_event_type_t DEPOSITED = {.topic = "bank.Deposited",
 *                                              EVS_EVENT_FIELDS(amount_t, AMOUNT, on_deposit)};
 *   static const evs_entity_type_t ACCOUNT = {.topic = "bank.Account",
 *                                             EVS_ENTITY_FIELDS(account_t, ACCOUNT_STATE),
 *                                             EVS_EVENTS(&OPENED, &DEPOSITED, &CLOSED)};
 * EVS_EVENT_ON(fn) is an event without attributes whose applying calls fn(e, NULL).
 * EVS_EVENTS(...) sets an entity type's events to the listed event types and the NULL that ends
 * the list (a compound literal: constant at file scope, not in a function's static). */
#define EVS_EVENT_FIELDS(T, table, fn)                                                             \
    .fields = (table), .attrs_size = sizeof(T), .on = (fn), .apply = evs_apply_fields
#define EVS_EVENT_ON(fn) .on = (fn), .apply = evs_apply_fields
#define EVS_ENTITY_FIELDS(T, table)                                                                \
    .size = sizeof(T), .fields = (table), .snapshot = evs_fields_snapshot,                         \
    .restore = evs_fields_restore
/* clang-format off */
#define EVS_EVENTS(...) .events = (const evs_event_type_t *const[]){__VA_ARGS__, NULL}
/* clang-format on */

/* Fills err (may be NULL) with code and a printf-style sentence and returns code: for commands,
 * apply, check and handler functions. */
EVS_API int evs_error_set(evs_error_t *err, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* e as the user's struct T (whose first member is the evs_entity_t): NULL when e is NULL or of
 * a type whose size is not sizeof(T), so a mistaken cast fails at once instead of writing past
 * the entity. */
EVS_API void *evs_entity_cast(const evs_entity_t *e, size_t size);
#define EVS_ENTITY_CAST(T, e) ((T *)evs_entity_cast((e), sizeof(T)))

/* A command: encodes attrs (a struct described by type->fields; NULL when type has no fields)
 * and triggers type on e, which applies it and keeps it pending. 0, or the code of the first
 * failure with e unchanged. */
EVS_API int evs_command(evs_entity_t *e, const evs_event_type_t *type, const void *attrs,
                        evs_error_t *err);

/* A new entity of type with id whose first event, first of type first with attrs, is
 * triggered: the user's struct (cast by assignment), freed with evs_entity_free. NULL with err
 * filled when the entity cannot be made or the event is refused. */
EVS_API void *evs_entity_start(const evs_registry_t *reg, const evs_entity_type_t *type,
                               const char *id, const evs_event_type_t *first, const void *attrs,
                               evs_error_t *err);

/* evs_repository_get returning the user's struct: NULL with the error in the context. */
EVS_API void *evs_repository_find(evs_repository_t *r, const char *id);

/* Typed getters that return a value: def when key is absent or of another type (after a
 * check, or for attributes a field table decoded, the key is known to be there). */
EVS_API bool evs_attr_bool(const evs_value_t *map, const char *key, bool def);
EVS_API int64_t evs_attr_int(const evs_value_t *map, const char *key, int64_t def);
EVS_API double evs_attr_float(const evs_value_t *map, const char *key, double def);
EVS_API const char *evs_attr_str(const evs_value_t *map, const char *key, const char *def);

/* Arrays. evs_map_get_array: 0 with *items and *n (items point into map), EVS_ENOT_FOUND, or
 * EVS_EINVAL when the value is not an array. The _int_array and _str_array forms copy at most
 * cap elements (strings point into map) and set *n to the array's length; EVS_EINVAL when an
 * element has another type or the array has more than cap elements (*n is still set). */
EVS_API int evs_map_get_array(const evs_value_t *map, const char *key, const evs_value_t **items,
                              size_t *n);
EVS_API int evs_map_get_int_array(const evs_value_t *map, const char *key, int64_t *out, size_t cap,
                                  size_t *n);
EVS_API int evs_map_get_str_array(const evs_value_t *map, const char *key, const char **out,
                                  size_t cap, size_t *n);

/* Saves the pending events of entities[0..n) (each at most once; all of r's entity type, else
 * EVS_EWRONG_TYPE and nothing is stored) in one atomic append, as one would save them in one
 * transaction: if any of them meets a conflict, EVS_ECONFLICT (in domain versions, as
 * evs_repository_save), nothing is stored and every entity keeps its pending events. Once
 * stored, as evs_repository_save for each: published in order through r's kept events
 * (EVS_ESTORED_NOT_PUBLISHED when a subscriber fails), snapshots when due, freed.
 * EVS_SAVE_ALL(r, &a->base, &b->base) counts the list. */
EVS_API int evs_repository_save_all(evs_repository_t *r, evs_entity_t *const *entities, size_t n);
#define EVS_SAVE_ALL(r, ...)                                                                       \
    evs_repository_save_all((r), (evs_entity_t *const[]){__VA_ARGS__},                             \
                            sizeof((evs_entity_t *const[]){__VA_ARGS__}) / sizeof(evs_entity_t *))

/* For a process manager: evs_repository_save_all whose append also sets consumer's checkpoint
 * to position (the position of the event it reacted to), in one transaction (evs_append_tracked):
 * the reaction and the progress are stored both or neither. When the consumer's checkpoint is
 * already at or past position, nothing is stored and the result is EVS_EALREADY_PROCESSED (the
 * event was handled before, its effect is stored: drop the entities and go on); the pending
 * events are kept. A retry of a save whose reply was lost is ok, as for evs_append. With no
 * pending events (n may be 0) it stores just the checkpoint: the event caused nothing. Other
 * results as evs_repository_save_all (a version conflict stores nothing and is EVS_ECONFLICT:
 * load again and react again). */
EVS_API int evs_repository_save_tracked(evs_repository_t *r, evs_entity_t *const *entities,
                                        size_t n, const char *consumer, uint64_t position);

/* A domain subscription: a stream (evs_stream_t: it reconnects and resumes by itself) whose
 * events are decoded, upcast and checked through a registry, so that a read model's handler
 * takes the same evs_domain_event_t whether it is fed by the daemon or by an in-process
 * evs_pubsub_t. Events appended by other processes (or other connections) reach only daemon
 * subscriptions: the in-process pub-sub sees the saves of its own repositories and nothing else.
 * Not thread-safe. */
typedef struct evs_domain_subscription evs_domain_subscription_t;

typedef struct evs_domain_subscription_options {
    evs_stream_options_t stream;    /* where, from which position, which topics or entities */
    const evs_registry_t *registry; /* required; must outlive the subscription */
    /* Events whose topic the registry does not know are skipped (else they are EVS_EINVAL). */
    bool skip_unknown;
} evs_domain_subscription_options_t;

/* NULL when out of memory or the options are invalid (see evs_stream_open). Freed with
 * evs_domain_subscription_close. */
EVS_API evs_domain_subscription_t *
evs_domain_subscribe(const evs_domain_subscription_options_t *opts);

/* The next event, waiting up to timeout_ms as evs_stream_next: 0 with *out a domain event the
 * caller frees with evs_domain_event_free (position and timestamp set; entity_type set from
 * the stored originator_topic when the registry knows that entity type), or 0 with *out NULL
 * when none came in time. An event that does not decode, upcast or check is EVS_EINVAL with err
 * filled, one whose originator entity type does not list its topic EVS_EWRONG_TYPE (the player
 * refuses it too); the subscription has moved past it and goes on with the next. */
EVS_API int evs_domain_subscription_next(evs_domain_subscription_t *s, int timeout_ms,
                                         evs_domain_event_t **out, evs_error_t *err);

/* Hands events to handler (when predicate, which may be NULL, accepts them), the way
 * evs_pubsub_publish does: waits up to timeout_ms for a first event, then takes every event
 * already there. Returns the number of events handed (>= 0), or the first failure (a handler's
 * code, or as evs_domain_subscription_next; the events before it were handled). */
EVS_API int evs_domain_subscription_dispatch(evs_domain_subscription_t *s, int timeout_ms,
                                             evs_predicate_fn predicate, evs_handler_fn handler,
                                             void *arg, evs_error_t *err);

/* The underlying stream (its position, caught-up state, reconnects), owned by s. */
EVS_API evs_stream_t *evs_domain_subscription_stream(evs_domain_subscription_t *s);

/* Closes the stream and frees s. NULL is a no-op. */
EVS_API void evs_domain_subscription_close(evs_domain_subscription_t *s);

/* ================================================================ durable consumers
 * (client/consumer_runner.c)
 *
 * A consumer runner holds a consumer name with a subscription (one holder at a time across
 * every daemon; with standby it waits for its turn), hands each event to a handler (the stored
 * event, or a domain event decoded and upcast through a registry), and stores the consumer's
 * checkpoint every checkpoint_every events, every checkpoint_ms milliseconds, or when asked
 * (manual). It starts after the stored checkpoint, and after a lost connection it connects and
 * subscribes again after the last event handled. A handler that stores its effect with the
 * event's tracking (evs_repository_save_tracked with evs_consumer_position) is applied exactly
 * once; it may call evs_consumer_tracked so that no separate checkpoint is written for it.
 * Not thread-safe. */
typedef struct evs_consumer evs_consumer_t;

/* A handler: 0 when the event is handled, EVS_EALREADY_PROCESSED counts as handled; any other
 * negative code stops evs_consumer_run, which returns it (the event comes again on the next
 * run). It may use evs_consumer_context for its own requests. */
typedef int (*evs_consumer_fn)(evs_consumer_t *k, const evs_event_t *ev, void *arg);
typedef int (*evs_consumer_domain_fn)(evs_consumer_t *k, const evs_domain_event_t *ev, void *arg,
                                      evs_error_t *err);

typedef struct evs_consumer_options {
    const char *addr; /* as evs_options_t */
    int timeout_ms;   /* reply timeout (none while a standby waits: its connection has none) */
    const evs_tls_options_t *tls;
    const char *token;
    const char *consumer;      /* required: the consumer name (copied) */
    const char *const *topics; /* only these topics (copied); ntopics 0: all */
    size_t ntopics;
    const char *entity_prefix; /* copied; NULL: every entity */
    bool standby;              /* wait for the consumer instead of failing with EVS_ECONFLICT */
    /* When to store the checkpoint: after this many events handled, and/or this many ms after
     * the first event not checkpointed; both 0 and not manual: after every event. manual: only
     * evs_consumer_checkpoint (and the handler's tracked saves). */
    uint32_t checkpoint_every;
    int checkpoint_ms;
    bool manual;
    /* Exactly one of the two handlers. on_domain_event needs registry (which must outlive the
     * runner); skip_unknown as for a domain subscription. */
    evs_consumer_fn on_event;
    evs_consumer_domain_fn on_domain_event;
    const evs_registry_t *registry;
    bool skip_unknown;
    void *arg;
    int retry_min_ms, retry_max_ms; /* reconnect backoff (defaults 100 and 5000) */
} evs_consumer_options_t;

/* NULL when out of memory or the options are invalid. Connects on the first run. */
EVS_API evs_consumer_t *evs_consumer_new(const evs_consumer_options_t *opts);

/* Handles events for up to timeout_ms (-1: until a failure), reconnecting as needed (a standby
 * that waits for the consumer stays inside until it holds it, past timeout_ms). Returns
 * the number of events handled, or a failure: the handler's code, EVS_ECONFLICT when another
 * subscription holds the consumer (without standby) or a checkpoint was refused (the consumer
 * was taken over), EVS_EUNAUTHORIZED, EVS_EFORBIDDEN. A later run goes on after the last event
 * handled. */
EVS_API int evs_consumer_run(evs_consumer_t *k, int timeout_ms);

/* Stores the position of the last event handled as the checkpoint (a no-op when it is stored). */
EVS_API int evs_consumer_checkpoint(evs_consumer_t *k);

/* Inside a handler: its event's effect was stored with its tracking, so the checkpoint is at
 * its position already. */
EVS_API void evs_consumer_tracked(evs_consumer_t *k);

/* The runner's connection (NULL while it has none): the one a handler uses for its requests
 * (e.g. evs_repository_set_conn(repo, evs_consumer_context(k)) at the top of the handler; it
 * changes after a reconnect). Owned by k. */
EVS_API evs_context_t *evs_consumer_context(const evs_consumer_t *k);
/* The position of the event being handled (inside a handler) or of the last one handled. */
EVS_API uint64_t evs_consumer_position(const evs_consumer_t *k);
/* The checkpoint as the runner knows it stored. */
EVS_API uint64_t evs_consumer_checkpointed(const evs_consumer_t *k);
EVS_API unsigned evs_consumer_reconnects(const evs_consumer_t *k);
/* The last failure, "" when none. */
EVS_API const char *evs_consumer_errstr(const evs_consumer_t *k);

/* Stores the checkpoint (unless manual), closes the connection and frees k. Returns the
 * checkpoint's result. evs_consumer_free frees without a checkpoint. NULL is a no-op. */
EVS_API int evs_consumer_close(evs_consumer_t *k);
EVS_API void evs_consumer_free(evs_consumer_t *k);

/* ================================================================ end of the domain layer */

#ifdef __cplusplus
}
#endif

#endif
