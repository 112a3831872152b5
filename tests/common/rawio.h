/* rawio.h: the tests' raw-protocol client. It speaks the protocol over a plain socket, without
 * libevstore, so that the tests see exactly what the daemon sends and can send what no library
 * would (bad frames, pipelined requests, clients that never read).
 *
 * Requests are packed with msgpack-c into an rq_t and sent as one frame; frames are cut from the
 * socket by proto/frame.h's frame_reader_t and unpacked with msgpack_unpack_next.
 *
 * Two ways to read:
 *   - raw_recv(fd, ...) reads exactly one frame's bytes (what frame_reader_missing asks for), so
 *     that pipelined replies stay in the socket for the next call and any test may read the fd
 *     itself in between;
 *   - a raw_conn_t keeps a frame reader of its own and reads as much as the socket holds, for
 *     clients that read many frames fast (the PostgreSQL subscription tests, the benchmarks).
 *
 * A frame whose first bytes arrived in time is read to its end (for up to RAW_FRAME_GRACE_MS
 * more), so that a timeout never leaves the stream cut in the middle of a frame. */
#ifndef EVS_TEST_RAWIO_H
#define EVS_TEST_RAWIO_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../../proto/frame.h"
#include "clock.h"

#define RAW_FRAME_GRACE_MS 10000

/* ---------------------------------------------------------------- requests */

/* A request (or any msgpack bytes) under construction: pack into pk. */
typedef struct rq {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} rq_t;

void rq_init(rq_t *r);
void rq_free(rq_t *r);
/* Packs a string key or value. */
void pk_str(msgpack_packer *pk, const char *s);
void pk_strn(msgpack_packer *pk, const char *s, size_t n);
void pk_bin(msgpack_packer *pk, const void *p, size_t n);
/* Starts {"op": op, "id": id, ...} with nmore further keys for the caller to pack. Initialises
 * r: free it with rq_free. */
void rq_begin(rq_t *r, const char *op, uint64_t id, uint32_t nmore);

/* Writes r as one frame (the 4-byte length, then its bytes) into out; returns the frame's length,
 * or 0 when it does not fit in cap bytes. */
size_t rq_frame(const rq_t *r, uint8_t *out, size_t cap);

/* One event of an append request. */
typedef struct rq_event {
    const char *entity_id;
    const char *topic;
    const void *payload;
    size_t payload_len;
} rq_event_t;

/* Whole requests, written into sb (which is cleared first). */
void rq_append(msgpack_sbuffer *sb, uint64_t id, const rq_event_t *evs, size_t n);
void rq_subscribe(msgpack_sbuffer *sb, uint64_t id, bool has_after, uint64_t after,
                  const char *const *topics, size_t ntopics, const char *prefix);

/* ---------------------------------------------------------------- sockets */

/* A TCP connection to 127.0.0.1:port with TCP_NODELAY, a connection to the Unix socket at path,
 * or either from an address as the daemon's flags write it ("HOST:PORT", or a path holding a
 * '/'). The socket blocks. Each returns the fd, or -1. */
int raw_connect_tcp(int port);
int raw_connect_unix(const char *path);
int raw_connect(const char *addr);

/* Sends all len bytes (waiting while the socket is full); 0 or -1. */
int raw_send(int fd, const void *buf, size_t len);
/* Sends the 4-byte length then the body; 0 or -1. */
int raw_send_frame(int fd, const void *body, size_t len);
/* Sends r's bytes as one frame. */
int raw_send_rq(int fd, const rq_t *r);
/* Sends sb's bytes as one frame. */
int raw_send_sb(int fd, const msgpack_sbuffer *sb);

/* ---------------------------------------------------------------- replies */

enum { RAW_EOF = -1, RAW_TIMEOUT = -2, RAW_BAD = -3 };

/* One received frame, unpacked: u.data is its top-level map. A reply_t may be copied (it
 * holds no pointer into itself); free exactly one copy. */
typedef struct reply {
    uint8_t *buf;
    size_t len;
    msgpack_unpacked u;
} reply_t;

/* Reads one frame within timeout_ms (0: only what is there already): 0, RAW_EOF (closed or
 * reset, also in the middle of a frame), RAW_TIMEOUT, or RAW_BAD (a frame that is not one
 * msgpack map, or an empty or oversized one). On failure *r is left empty (reply_free is
 * allowed on it but not needed). */
int raw_recv(int fd, int timeout_ms, reply_t *r);
void reply_free(reply_t *r);

/* The value of key in r's top-level map (or in obj, a map), or NULL. */
const msgpack_object *reply_get(const reply_t *r, const char *key);
const msgpack_object *obj_get(const msgpack_object *obj, const char *key);
/* True when o is the string s. */
bool obj_is_str(const msgpack_object *o, const char *s);
/* o's value when it is an unsigned integer, else 0. */
uint64_t obj_uint(const msgpack_object *o);
/* r's "id" when it has one that is an unsigned integer. */
bool reply_id(const reply_t *r, uint64_t *id);
/* r's "ok" is true. */
bool reply_ok(const reply_t *r);
/* r's error code ("bad_request", ...) in a per-thread buffer, or "" when r is no error reply. */
const char *reply_code(const reply_t *r);

/* Waits until the peer closes fd (EOF or reset), reading and dropping whatever comes first.
 * 0 when it closed within timeout_ms, -1 otherwise. */
int raw_wait_closed(int fd, int timeout_ms);

/* Sends {"op": "ping", "id": id} and reads the reply; 0 when it is ok with that id. */
int raw_ping(int fd, uint64_t id, int timeout_ms);

/* ---------------------------------------------------------------- buffered connections */

/* A connection that reads ahead: frames already read wait in rd. Its fd may be watched with
 * poll or epoll, but check raw_conn_buffered first: frames in rd do not make the fd readable. */
typedef struct raw_conn {
    int fd;
    frame_reader_t rd;
} raw_conn_t;

/* Connects to addr (as raw_connect): 0, or -1. */
int raw_conn_open(raw_conn_t *c, const char *addr);
void raw_conn_close(raw_conn_t *c);

/* The next frame within timeout_ms (0: only what is there already), with raw_recv's results. */
int raw_conn_recv(raw_conn_t *c, int timeout_ms, reply_t *r);

/* The same without decoding: *body and *len are the frame's msgpack bytes, valid until the next
 * call on c. */
int raw_conn_next(raw_conn_t *c, int timeout_ms, const uint8_t **body, size_t *len);

/* True when a whole frame is buffered already (raw_conn_next would not read). */
bool raw_conn_buffered(const raw_conn_t *c);

/* ---------------------------------------------------------------- names */

/* PREFIX-suffix, where PREFIX is random and drawn once per process (each Criterion test runs in
 * a process of its own), so that tests sharing a store (a PostgreSQL database) never see each
 * other's entities or topics. Valid until the process ends. */
const char *tname(const char *suffix);
/* The prefix alone. */
const char *tprefix(void);

#endif
