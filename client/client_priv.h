/* client_priv.h: what the files of libevstore share inside the library (not installed).
 *
 * The context cuts what it reads into frames with a frame_reader_t (proto/frame.h). The frame
 * last read is unpacked into priv->frame, whose strings point into the frame's bytes in the
 * reader: they stay valid until the reader's next call, which only the next call into the
 * library makes, so a reply stays valid until then. Pushes are decoded and copied into their
 * subscription's queue as soon as they are read, so nothing of theirs points into the reader. */
#ifndef EVS_CLIENT_PRIV_H
#define EVS_CLIENT_PRIV_H

#include <msgpack.h>

#include "../proto/codec.h"
#include "../proto/frame.h"
#include "evstore.h"

typedef struct client_tls client_tls_t;

typedef struct push_node {
    evs_push_t *push;
    uint64_t seq; /* arrival order across every subscription of the context */
    struct push_node *next;
} push_node_t;

typedef struct sub_queue {
    uint64_t sid;
    bool closed;            /* unsubscribed: pushes that still arrive are dropped */
    uint64_t started_after; /* the "after" of the subscribe reply */
    push_node_t *head, *tail;
    struct sub_queue *next;
} sub_queue_t;

struct evs_context_priv {
    bool dead;
    int timeout_ms;
    uint32_t max_frame; /* of requests */
    uint32_t max_reply; /* of frames from the server */
    uint64_t next_id;
    frame_reader_t reader;
    codec_buf_t wbuf;
    msgpack_unpacked frame; /* the frame last read */
    sub_queue_t *subs;
    uint64_t push_seq;
    client_tls_t *tls; /* the TLS session on fd (tls.c), or NULL */
};

/* Forgets the frame last read but keeps its msgpack zone for the next one (client.c), so that
 * reading a large reply after another does not give its memory back to the system and fault it
 * in again. */
void client_frame_release(evs_context_t *c);

/* Outcome of client_wait_frame besides a negative code. */
enum { WAIT_FRAME = 0, WAIT_TIMEOUT = 1, WAIT_INTERRUPTED = 2 };

/* Sets c->err, c->errstr; I/O, protocol and timeout codes also kill the context. Returns code. */
int client_fail(evs_context_t *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Starts a call: fails at once on a dead context, else clears the error and the last frame. */
int client_begin(evs_context_t *c);

/* A monotonic deadline timeout_ms from now (-1: none). */
int64_t client_deadline(int timeout_ms);

/* Reads the next whole frame into priv->frame (waiting until deadline, -1 forever). Returns
 * WAIT_FRAME, WAIT_TIMEOUT, WAIT_INTERRUPTED (a signal; only when interruptible), or a negative
 * code with the context dead. */
int client_wait_frame(evs_context_t *c, int64_t deadline, bool interruptible);

/* Queues the push in priv->frame (a frame without "id" and with "sub"). 0, or a negative code
 * (protocol error or out of memory, the context is then dead). */
int sub_queue_push_frame(evs_context_t *c, const msgpack_object *obj);

void sub_queues_free(evs_context_t *c);

/* Fails with EVS_EINVAL unless s is a valid entity id or topic (UTF-8 of 1 to EVS_NAME_MAX
 * bytes); what names the argument in the message. */
int client_check_name(evs_context_t *c, const char *what, const char *s);

/* Decodes an array of events (a msgpack array as the server packs them) into a new list. */
int client_decode_events(evs_context_t *c, const msgpack_object *arr, evs_events_t **out);

/* Packs the request header: a map of 2 + nargs keys with "op" and a fresh "id" (stored in *id).
 * Call client_request_end after packing nargs key/value pairs with pk. */
size_t client_request_begin(evs_context_t *c, msgpack_packer *pk, const char *op, uint32_t nargs,
                            uint64_t *id);

/* Ends the request started at start, sends it, and waits for the reply with that id, which is
 * left in *result (the reply map) valid until the next call. Returns 0, a server error code
 * (context alive, detail filled), or a fatal code. */
int client_request_end(evs_context_t *c, size_t start, uint64_t id, const msgpack_object **result);

/* Shared with the asynchronous client (async.c), which calls them on a scratch context without
 * priv: client_fail then only sets err and errstr. */

/* Fills c->err, errstr and detail from an error reply's "error" map and returns the server's
 * code; EVS_EPROTOCOL when the map is malformed. */
int client_take_server_error(evs_context_t *c, const msgpack_object *reply);

/* Reads the array of n unsigned integers at key of a reply into out (may be NULL). 0, or
 * EVS_EPROTOCOL. */
int client_take_uints(evs_context_t *c, const msgpack_object *res, const char *key, size_t n,
                      uint64_t *out);

/* Resolves addr ("HOST:PORT" or "[v6addr]:PORT") into *res, which the caller frees with
 * freeaddrinfo. 0, or EVS_EINVAL (not such an address) or EVS_EIO (resolution failed). */
struct addrinfo;
int client_resolve(evs_context_t *c, const char *addr, struct addrinfo **res);

/* Milliseconds left until deadline, as poll wants them (-1: forever). */
int client_remaining_ms(int64_t deadline);

/* ---------------------------------------------------------------- TLS (tls.c) */

/* What the client_tls_* calls return besides a byte count. */
enum {
    CLIENT_TLS_WANT_READ = -1,  /* call again once the socket is readable */
    CLIENT_TLS_WANT_WRITE = -2, /* call again once it is writable */
    CLIENT_TLS_CLOSED = -3,     /* the server ended the connection */
    CLIENT_TLS_ERROR = -4,      /* the session failed: the reason is in err */
};

/* addr without its "tls://" prefix; *tls says whether it had one. */
const char *client_tls_strip(const char *addr, bool *tls);

/* A client session on the connected socket fd that verifies the server as o says (o may be
 * NULL: the system's CAs and addr's host). NULL with a reason in err. */
client_tls_t *client_tls_new(int fd, const char *addr, const evs_tls_options_t *o, char *err,
                             size_t errlen);
void client_tls_free(client_tls_t *t);
/* One step of the handshake: 0 once it is done, or CLIENT_TLS_*. */
int client_tls_handshake(client_tls_t *t, char *err, size_t errlen);
/* Plaintext read or written (> 0), or CLIENT_TLS_*. */
ssize_t client_tls_read(client_tls_t *t, void *buf, size_t len, char *err, size_t errlen);
ssize_t client_tls_write(client_tls_t *t, const void *buf, size_t len, char *err, size_t errlen);
/* True when decrypted bytes wait in the session: read them before waiting on the socket. */
bool client_tls_pending(const client_tls_t *t);

/* Makes the blocking context c, connected to addr, a TLS one: the handshake runs until deadline.
 * 0, or a fatal code (context dead). */
int client_tls_connect(evs_context_t *c, const char *addr, const evs_tls_options_t *o,
                       int64_t deadline);

/* Checks the events of an append before anything is packed: 0, or EVS_EINVAL. */
int client_check_events(evs_context_t *c, const evs_event_t *events, size_t n);

#endif
