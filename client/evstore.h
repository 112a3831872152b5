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
/* from_version for evs_get_by_entity backwards: start at the entity's latest version. */
#define EVS_LATEST UINT64_MAX

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
} evs_error_detail_t;

typedef struct evs_options {
    /* "HOST:PORT" ("[v6addr]:PORT" for IPv6), or a Unix socket path (any address containing a
     * '/'). NULL means EVS_DEFAULT_ADDR. */
    const char *addr;
    /* Longest wait for connecting and for each reply, in milliseconds; 0 waits forever. */
    int timeout_ms;
    /* Largest reply frame accepted (bytes); 0 means EVS_DEFAULT_MAX_FRAME. A longer frame from
     * the server is EVS_EPROTOCOL and nothing is allocated for it. */
    uint32_t max_frame;
} evs_options_t;

struct evs_context_priv;

typedef struct evs_context {
    int err;          /* 0, or the evs_code_t of the last call's failure */
    char errstr[256]; /* a sentence saying what went wrong; "" when err is 0 */
    evs_error_detail_t detail;
    int fd;           /* the socket, -1 when not connected */
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

/* ---------------------------------------------------------------- results */

/* A list of events returned by a read. events[i] point into memory owned by the list.
 * Freed by the caller with evs_events_free. */
typedef struct evs_events {
    size_t n;
    evs_event_t *events;
} evs_events_t;

EVS_API void evs_events_free(evs_events_t *list);

/* Frees one event returned by evs_get_by_id (its bytes and the struct). NULL is a no-op. */
EVS_API void evs_event_free(evs_event_t *ev);

/* ---------------------------------------------------------------- operations */

/* Asks the server for its version string, copied (truncated, NUL-terminated) into version
 * (cap bytes; version may be NULL when cap is 0). */
EVS_API int evs_ping(evs_context_t *c, char *version, size_t cap);

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

/* ---------------------------------------------------------------- subscriptions */

typedef struct evs_sub_options {
    /* With has_after, the server first sends every stored event with position > after, then one
     * caught-up marker, then live events. Without, only events committed after the reply. */
    bool has_after;
    uint64_t after;
    /* Only events of these topics (ntopics 0: every topic). Copied; the caller keeps them. */
    const char *const *topics;
    size_t ntopics;
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
 * subscription's id, to pass to evs_sub_next and evs_unsubscribe. */
EVS_API int evs_subscribe(evs_context_t *c, const evs_sub_options_t *opts, uint64_t *sub);

/* Ends subscription sub. Pushes of it still queued are dropped; none arrives after. */
EVS_API int evs_unsubscribe(evs_context_t *c, uint64_t sub);

/* Takes the next push of subscription sub (0: of any subscription of c), waiting for one up to
 * timeout_ms milliseconds (0: do not wait; -1: wait forever). Returns 0 with *out set to a push
 * the caller frees with evs_push_free, or 0 with *out NULL when none came in time (the context
 * stays usable), or a negative code (I/O errors kill the context as everywhere). A wait
 * interrupted by a signal returns early with *out NULL. */
EVS_API int evs_sub_next(evs_context_t *c, uint64_t sub, int timeout_ms, evs_push_t **out);

/* ---------------------------------------------------------------- helpers */

/* The wire name of a code, as in <evstore/errors.h> (exported for programs that link only the
 * shared library). */
EVS_API const char *evs_strcode(int code);

#ifdef __cplusplus
}
#endif

#endif
