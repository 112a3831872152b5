/* rawio.h: speaking the protocol over a raw socket, without libevstore, for the tests of bad
 * input and of the wire format itself (test_badinput.c, test_subscribe_raw.c) and for the
 * harness's readiness ping.
 *
 * Requests are packed with msgpack-c into an rq_t and sent with a 4-byte big-endian length;
 * replies are read one frame at a time (exactly its bytes, so pipelined replies stay in the
 * socket for the next call) and unpacked with msgpack_unpack_next. */
#ifndef EVS_TEST_RAWIO_H
#define EVS_TEST_RAWIO_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
/* Starts {"op": op, "id": id, ...} with nmore further keys for the caller to pack. */
void rq_begin(rq_t *r, const char *op, uint64_t id, uint32_t nmore);

/* Sends all len bytes; 0 or -1. */
int raw_send(int fd, const void *buf, size_t len);
/* Sends the 4-byte length then the body; 0 or -1. */
int raw_send_frame(int fd, const void *body, size_t len);
/* Sends r's bytes as one frame. */
int raw_send_rq(int fd, const rq_t *r);

enum { RAW_EOF = -1, RAW_TIMEOUT = -2, RAW_BAD = -3 };

/* One received frame, unpacked: u.data is its top-level map. A reply_t may be copied (it
 * holds no pointer into itself); free exactly one copy. */
typedef struct reply {
    uint8_t *buf;
    size_t len;
    msgpack_unpacked u;
} reply_t;

/* Reads one frame within timeout_ms: 0, RAW_EOF (closed or reset, also in the middle of a
 * frame), RAW_TIMEOUT, or RAW_BAD (a frame that is not one msgpack map). */
int raw_recv(int fd, int timeout_ms, reply_t *r);
void reply_free(reply_t *r);

/* The value of key in r's top-level map (or in obj, a map), or NULL. */
const msgpack_object *reply_get(const reply_t *r, const char *key);
const msgpack_object *obj_get(const msgpack_object *obj, const char *key);
/* True when o is the string s. */
bool obj_is_str(const msgpack_object *o, const char *s);
/* r's "id" when it has one that is an unsigned integer. */
bool reply_id(const reply_t *r, uint64_t *id);
/* r's "ok" is true. */
bool reply_ok(const reply_t *r);
/* r's error code ("bad_request", ...) in a static buffer, or "" when r is no error reply. */
const char *reply_code(const reply_t *r);

/* Waits until the peer closes fd (EOF or reset), reading and dropping whatever comes first.
 * 0 when it closed within timeout_ms, -1 otherwise. */
int raw_wait_closed(int fd, int timeout_ms);

/* Sends {"op": "ping", "id": id} and reads the reply; 0 when it is ok with that id. */
int raw_ping(int fd, uint64_t id, int timeout_ms);

/* PREFIX-suffix, where PREFIX is random and drawn once per process (each Criterion test runs in
 * a process of its own), so that tests sharing a store (a PostgreSQL database) never see each
 * other's entities or topics. Valid until the process ends. */
const char *tname(const char *suffix);
/* The prefix alone. */
const char *tprefix(void);

/* Milliseconds of a monotonic clock. */
int64_t now_ms(void);

#endif
