/* wire.h: a small raw-protocol client and daemon launcher for tests/pg and its benchmarks.
 *
 * Blocking frames over a Unix socket (docs/protocol.md section 2), msgpack-c for the bodies, and
 * a real evstored started on a Unix socket in a temporary folder (plus a free loopback port,
 * since --listen is always bound). Independent of libevstore so that the tests see exactly what
 * the daemon sends. */
#ifndef EVS_TEST_PG_WIRE_H
#define EVS_TEST_PG_WIRE_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct wire {
    int fd;
    char *buf;
    size_t off, len, cap;
} wire_t;

/* Connects to the daemon's Unix socket: 0, or -1. */
int wire_connect(wire_t *w, const char *path);
void wire_close(wire_t *w);

/* Sends body (one msgpack map) as one frame: 0, or -1. */
int wire_send(wire_t *w, const msgpack_sbuffer *body);

/* The next frame, unpacked into *out (destroy it with msgpack_unpacked_destroy): 1; 0 when none
 * arrived within timeout_ms (0: do not wait); -1 when the connection ended or broke. */
int wire_next(wire_t *w, int timeout_ms, msgpack_unpacked *out);

/* The same without decoding: *body and *len are the frame's msgpack bytes, valid until the next
 * call on w. */
int wire_next_raw(wire_t *w, int timeout_ms, const char **body, size_t *len);

/* True when a whole frame is buffered already (wire_next would not read). */
bool wire_buffered(const wire_t *w);

/* The value of key in map, or NULL. */
const msgpack_object *wire_get(const msgpack_object *map, const char *key);
uint64_t wire_uint(const msgpack_object *o);

/* One event of an append request. */
typedef struct wire_event {
    const char *entity_id;
    const char *topic;
    const void *payload;
    size_t payload_len;
} wire_event_t;

/* Request bodies, written into sb (which is cleared first). */
void wire_req_append(msgpack_sbuffer *sb, uint64_t id, const wire_event_t *evs, size_t n);
void wire_req_subscribe(msgpack_sbuffer *sb, uint64_t id, bool has_after, uint64_t after,
                        const char *const *topics, size_t ntopics, const char *prefix);
void wire_req_ping(msgpack_sbuffer *sb, uint64_t id);

/* A real evstored. */
typedef struct wire_daemon {
    pid_t pid;
    char dir[64];   /* temporary folder holding the socket */
    char sock[128]; /* its Unix socket */
} wire_daemon_t;

/* $EVSTORED_BIN, or bin/evstored next to the build's tests folder of this executable. */
const char *wire_evstored_bin(void);

/* Starts evstored on store_url (and a Unix socket in a fresh temporary folder, log level
 * $EVSTORE_TEST_LOG_LEVEL or warn) with extra arguments (NULL-terminated, may be NULL), and
 * waits until it is ready: it serves a read-all (up to 20 s). 0, or -1. */
int wire_daemon_start(wire_daemon_t *d, const char *store_url, const char *const *extra);

/* SIGTERM, wait (up to 20 s, then SIGKILL): its exit status, or -1 when it was killed or died
 * of a signal. */
int wire_daemon_stop(wire_daemon_t *d);

/* Milliseconds and nanoseconds of a monotonic clock. */
int64_t wire_now_ms(void);
uint64_t wire_now_ns(void);

#endif
