/* conn.h: one client connection: input frame reader, output buffer and write queue,
 * pipelining, backpressure.
 *
 * A frame_reader_t (proto/frame.h) cuts the input into frames, in place in the buffer shared by
 * all connections when it can; every complete frame goes to dispatch. Replies are packed into
 * conn.out and handed to the socket in one write per loop iteration (uv_try_write first,
 * uv_write for what is left). When a connection's queued output passes cfg.out_limit it stops
 * reading (a client that pipelines without reading its replies is slowed by TCP, never by the
 * daemon's memory) and its subscribers stop being fed live; both resume when the output has
 * drained below half the limit. Requests waiting for the store are bounded the same way: at
 * CONN_MAX_INFLIGHT of them a connection stops reading until half are answered, so that the
 * replies of a client that pipelines without reading cannot pile up in memory from requests the
 * store is still serving. A read (its reply carries events) is cut to the room left under
 * cfg.out_limit when its reply is packed, and no further request is handled while one is waiting
 * for the store: so a connection's output stays within the limit plus one event, whatever the
 * client reads.
 *
 * Timeouts: a connection with no subscription, nothing in flight and nothing queued that sends
 * no request for idle_timeout is closed; so is one that began a frame and did not complete it
 * within frame_timeout while the daemon was reading it. Input: the frame readers of all
 * connections together hold at most about frame_memory_limit bytes; the connection whose
 * unfinished frame would take more gets an `unavailable` error and is closed.
 *
 * Transport: a connection accepted on the TLS listener carries a TLS session (tls.h) between
 * the socket and all of the above: ciphertext is read into the session and decrypted into the
 * frame reader, replies are encrypted when flushed, and the ciphertext waiting to be written is
 * what the output limit counts.
 *
 * Lifetime: a connection is reference-counted: its handle holds one reference, its timer one,
 * each request in
 * flight in the store one more, each uv_write one more. conn_close starts the close; the memory
 * is freed when the last reference goes, so a store callback arriving for a closed connection
 * finds it still valid and checks conn_is_open. */
#ifndef EVS_CONN_H
#define EVS_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "../proto/codec.h"
#include "../proto/frame.h"
#include "server.h"

typedef struct sub sub_t;
typedef struct tls_session tls_session_t;
typedef struct auth_principal auth_principal_t;

/* Most requests of one connection waiting for the store at once. */
#define CONN_MAX_INFLIGHT 256

struct conn {
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } h;
    server_t *srv;
    conn_t *next, *prev; /* in srv->conns */
    conn_t *flush_next;  /* in srv->flush_list */
    bool flush_queued;
    bool closing;     /* conn_close was called */
    bool reading;     /* uv_read_start is in effect */
    bool read_paused; /* reading stopped because of queued output */
    bool close_when_flushed;
    bool in_process;            /* inside process_input: drains are handled by its loop */
    bool shutting_down;         /* conn_shutdown was called */
    uv_shutdown_t shutdown_req; /* conn_shutdown's */
    int refs;
    unsigned inflight;       /* requests waiting for the store */
    unsigned reads_inflight; /* of which reads, whose replies take the room (conn_reply_room) */
    frame_reader_t in;       /* input; holds memory only while a frame is unfinished */
    codec_buf_t out;         /* packed output not yet handed to the socket */
    size_t writing;          /* bytes handed to uv_write and not yet written */
    sub_t *subs;             /* this connection's subscriptions */
    char peer[64];
    /* Timeouts (idle_timeout, frame_timeout): one timer, armed for the nearest deadline and
     * checked lazily (activity only moves deadlines later, so it does not touch the timer). */
    uv_timer_t timer;
    bool timer_started; /* the timer was initialised: conn_close closes it */
    uint64_t timer_due; /* uv_now when the armed timer fires; 0 when it is not armed */
    uint64_t active_ms; /* the last request, or the last check that found it busy */
    uint64_t frame_ms;  /* when the unfinished frame in the reader began */
    bool in_frame;      /* the reader holds the start of a frame that began at frame_ms */
    size_t in_counted;  /* in.cap as counted in srv->input_bytes (frame_memory_limit) */
    bool input_refused; /* on_alloc refused memory: frame_memory_limit would be passed */
    /* TLS (tls.h), NULL on a plain connection: the socket carries ciphertext, the reader and
     * c->out plaintext. c->out is encrypted into wire when flushed, and wire is written as
     * c->out is on a plain connection; the ciphertext waiting to be written is what
     * conn_queued counts. The handshake is timed as an unfinished frame (frame_timeout). */
    tls_session_t *tls;
    codec_buf_t wire;
    bool tls_pumping; /* inside tls_pump */
    /* Who the peer is (auth.h): NULL until an auth, a listed Unix uid or a listed certificate
     * CN makes it a principal of srv->auth (then a reload looks it up again by name). */
    const auth_principal_t *principal;
    unsigned auth_failures; /* failed auth requests; the third closes the connection */
    bool has_uid;           /* a Unix peer whose uid SO_PEERCRED gave */
    uid_t uid;
};

/* Makes a connection for a stream that listener accepts into conn->h (the caller initialises
 * the handle with conn->h and accepts, then calls conn_start). NULL when out of memory. */
conn_t *conn_new(server_t *srv);
/* Starts reading. */
void conn_start(conn_t *c);
/* Frees a conn_new'd connection whose handle was never initialised. */
void conn_discard(conn_t *c);
/* Makes a conn_new'd connection, before conn_start, a TLS one on the server context ctx. 0, or
 * -1 when out of memory. */
int conn_use_tls(conn_t *c, struct ssl_ctx_st *ctx);
/* The subject CN of the verified client certificate of a TLS connection (tls_ca set), once its
 * handshake is done; NULL otherwise. */
const char *conn_tls_peer_cn(const conn_t *c);

void conn_ref(conn_t *c);
void conn_unref(conn_t *c);
bool conn_is_open(const conn_t *c);

/* Starts closing the connection (once); why is logged when non-NULL. */
void conn_close(conn_t *c, const char *why);

/* Output bytes queued for this connection (packed and being written). */
size_t conn_queued(const conn_t *c);

/* The bytes the reply to a read may take now: the room left under output_limit by the output
 * queued, at most max_frame. A page of events is cut there (it always holds one event). */
size_t conn_reply_room(const conn_t *c);

/* Schedules c->out to be written before the loop next waits. Call after packing into c->out. */
void conn_schedule_flush(conn_t *c);

/* Writes what can be written now; closes a connection that was waiting for its output (and
 * its requests in flight) to finish. */
void conn_flush(conn_t *c);

/* Writes every scheduled connection's output: the server's flush handle runs it. */
void conn_flush_all(server_t *srv);

/* Stops reading new requests (shutdown). */
void conn_stop_reading(conn_t *c);
/* Ends the connection cleanly (the daemon's drain, once every reply is queued): no more requests
 * are read, the sending side is shut down once everything queued is written (the peer reads its
 * last reply, then EOF), then whatever the peer still sends is read and dropped until it closes
 * its side, and the connection closes. Reading to the peer's EOF is what makes the close a FIN:
 * closing a socket with unread input sends a reset, and the peer may then lose replies it has
 * not read yet. The caller bounds the wait by calling conn_close. */
void conn_shutdown(conn_t *c);

/* A TLS peer presented a verified client certificate with subject CN cn: the connection is the
 * principal that lists cert-cn:cn, if there is an auth_file and one does. */
void conn_auth_cert_cn(conn_t *c, const char *cn);

/* After srv->auth was replaced (a reload): each connection's principal is looked up again by
 * name in the new table (NULL when it is gone). Call before freeing the old table. */
void conn_auth_reloaded(server_t *srv);

/* Arms every connection's timer again after a reload changed the timeouts. */
void conn_timeouts_changed(server_t *srv);

#endif
