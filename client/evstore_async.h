/* evstore_async.h: the asynchronous API of libevstore, installed as <evstore/async.h>.
 *
 * An asynchronous context (evs_async_t) is one non-blocking connection driven by the
 * application's event loop (hiredis's async.h is the model). Requests are sent without waiting
 * (pipelined); each one names a callback that the library calls exactly once:
 *
 *  - with a reply when the server answers it: reply->err is 0, or the server's error code
 *    (EVS_ECONFLICT, EVS_EBAD_REQUEST, ...) with reply->errstr and reply->detail;
 *  - with a NULL reply when the context dies before the answer comes (lost connection, a reply
 *    that is not the protocol, evs_async_free): ac->err and ac->errstr then say why.
 *
 * Replies are matched to their requests by id, so the server may answer in any order.
 *
 * Errors are as in <evstore.h>: a function returns 0 or a negative evs_code_t. A context whose
 * ac->err is set is dead (there are no server errors on the context itself: they go to the
 * request's callback); the only thing left to do is evs_async_free. When a call that starts
 * something fails (evs_async_connect, evs_async_append), its callback is never called.
 *
 * The core does no I/O waiting of its own. An adapter ties it to an event loop: it installs
 * evs_async_events_t hooks (start/stop watching the socket for reading or writing, cleanup)
 * and calls evs_async_handle_read and evs_async_handle_write when the socket is ready.
 * <evstore/libuv.h> is such an adapter for libuv.
 *
 * Only append (with or without a tracking) is asynchronous for now; the other calls are the
 * blocking ones of <evstore.h>. Options: addr and max_frame are as for evs_connect_with_options;
 * timeout_ms is ignored (use the loop's timers and evs_async_free); a token (or $EVSTORE_TOKEN)
 * goes out in an auth request before any append, and a refusal kills the context with
 * EVS_EUNAUTHORIZED. A context is not thread-safe: use it from the thread that runs its loop. */
#ifndef EVSTORE_ASYNC_H
#define EVSTORE_ASYNC_H

#include <evstore.h>

#ifdef __cplusplus
extern "C" {
#endif

struct evs_async_priv;

typedef struct evs_async {
    int err;                     /* 0, or the evs_code_t that killed the context */
    char errstr[256];            /* a sentence saying what went wrong; "" when err is 0 */
    int fd;                      /* the socket, -1 once the context is dead */
    void *data;                  /* the application's, untouched by the library */
    struct evs_async_priv *priv; /* private to the library */
} evs_async_t;

/* What a request's callback receives when the server answered. Everything it points to is
 * valid only during the callback. */
typedef struct evs_async_reply {
    int err;                          /* 0, or the server's error code */
    const char *errstr;               /* the server's message; "" when err is 0 */
    const evs_error_detail_t *detail; /* as c->detail of <evstore.h> */
    /* append: where events[i] of the request were stored, n of each (NULL on error). */
    size_t n;
    const uint64_t *positions, *versions;
} evs_async_reply_t;

/* A request's callback: reply is NULL when the context died before the answer came. */
typedef void evs_async_fn(evs_async_t *ac, const evs_async_reply_t *reply, void *privdata);

/* The connect callback: status is 0 once connected, or the code that killed the context (which
 * is then dead; every request queued meanwhile gets its NULL reply right after). */
typedef void evs_async_connect_fn(evs_async_t *ac, int status);

/* The hooks an adapter installs. Each gets data; the library calls them only while the context
 * lives, and cleanup exactly once, when it dies or is freed, after which it never touches the
 * adapter again (the adapter stops watching the socket there, before the library closes it). */
typedef struct evs_async_events {
    void *data;
    void (*add_read)(void *data);
    void (*del_read)(void *data);
    void (*add_write)(void *data);
    void (*del_write)(void *data);
    void (*cleanup)(void *data);
} evs_async_events_t;

/* Starts a non-blocking connect to opts->addr (opts may be NULL: EVS_DEFAULT_ADDR). Returns a
 * context to check for ac->err (a context in error is dead but must still be freed with
 * evs_async_free; no callback of it will ever be called), or NULL only when out of memory.
 * The connection completes in the loop, once an adapter is attached. */
EVS_API evs_async_t *evs_async_connect(const evs_options_t *opts);

/* Sets the callback told when the connect completes or fails (called at most once). Set it
 * before the loop runs. */
EVS_API void evs_async_set_connect_callback(evs_async_t *ac, evs_async_connect_fn *fn);

/* Installs an adapter's hooks (copied) and asks them for what the context waits on. Returns 0,
 * ac->err on a dead context, or EVS_EINVAL when hooks are already installed. */
EVS_API int evs_async_set_events(evs_async_t *ac, const evs_async_events_t *ev);

/* Queues an append of events[0..n) (as evs_append takes them; they stay the caller's and may be
 * reused as soon as this returns). fn (may be NULL) is called with privdata exactly once, with
 * the reply or NULL. Requests queued before the connection is up are sent once it is. Returns
 * 0, or: ac->err on a dead context, EVS_EINVAL for invalid events or a request over max_frame,
 * EVS_ENOMEM; then nothing was queued and fn is never called. */
EVS_API int evs_async_append(evs_async_t *ac, const evs_event_t *events, size_t n, evs_async_fn *fn,
                             void *privdata);

/* evs_async_append with a tracking, as evs_append_tracked of <evstore.h>: the events (n may be 0)
 * and consumer's checkpoint at position commit together. When the checkpoint is already at or
 * past position, nothing is stored and the reply has err EVS_ECONFLICT and detail->tracking set.
 * Returns as evs_async_append, and EVS_EINVAL for an invalid consumer name. */
EVS_API int evs_async_append_tracked(evs_async_t *ac, const evs_event_t *events, size_t n,
                                     const char *consumer, uint64_t position, evs_async_fn *fn,
                                     void *privdata);

/* Called by the adapter when the socket is readable: reads what is there, calls the callbacks
 * of the replies it holds, then writes the requests those callbacks queued (so a client that
 * sends from its callbacks needs no wait for writability). When writable: completes the
 * connect or writes queued requests. Both do nothing on a dead context. */
EVS_API void evs_async_handle_read(evs_async_t *ac);
EVS_API void evs_async_handle_write(evs_async_t *ac);

/* Closes the connection and frees the context: every request still waiting gets its NULL reply
 * first (ac->err is then EVS_EIO unless the context was already dead). Called from inside one of
 * the context's callbacks, the free happens when the library is done with the callback. NULL is
 * a no-op. */
EVS_API void evs_async_free(evs_async_t *ac);

#ifdef __cplusplus
}
#endif

#endif
