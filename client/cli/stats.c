/* stats.c: `evstore stats` and `evstore config` (see stats.h).
 *
 * libevstore has no call for these ops yet, so this sends the request frame itself on the
 * context's socket (which is fresh: nothing else is in flight on it) and reads the one reply.
 * The socket is non-blocking, hence the polls. The reply's result map is printed with jansson
 * through json.c, so the output follows whatever counters the daemon adds. */
#include "stats.h"

#include <errno.h>
#include <jansson.h>
#include <msgpack.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../proto/codec.h"
#include "../../proto/frame.h"
#include "json.h"

#define REPLY_MAX (16u * 1024 * 1024)

static int io_wait(int fd, short events) {
    struct pollfd p = {.fd = fd, .events = events};
    int r;
    do
        r = poll(&p, 1, 30000);
    while (r < 0 && errno == EINTR);
    return r == 1 ? 0 : -1;
}

static int send_all(int fd, const void *buf, size_t n) {
    while (n) {
        ssize_t w = write(fd, buf, n);
        if (w < 0 && (errno == EINTR || errno == EAGAIN)) {
            if (errno == EAGAIN && io_wait(fd, POLLOUT)) return -1;
            continue;
        }
        if (w <= 0) return -1;
        buf = (const char *)buf + w;
        n -= (size_t)w;
    }
    return 0;
}

static int recv_all(int fd, void *buf, size_t n) {
    while (n) {
        ssize_t r = read(fd, buf, n);
        if (r < 0 && (errno == EINTR || errno == EAGAIN)) {
            if (errno == EAGAIN && io_wait(fd, POLLIN)) return -1;
            continue;
        }
        if (r <= 0) return -1;
        buf = (char *)buf + r;
        n -= (size_t)r;
    }
    return 0;
}

static int io_fail(const char *what) {
    fprintf(stderr, "evstore: io: %s\n", what);
    return 1;
}

/* Sends {"id": 1, "op": op} and prints the reply's result key as JSON. */
static int run_op(evs_context_t *c, const char *op, const char *key) {
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    codec_pack_key(&pk, "id");
    msgpack_pack_uint64(&pk, 1);
    codec_pack_key(&pk, "op");
    codec_pack_cstr(&pk, op);
    uint8_t hdr[FRAME_HEADER];
    frame_put_header(hdr, (uint32_t)sb.size);
    int sent = send_all(c->fd, hdr, sizeof hdr) == 0 && send_all(c->fd, sb.data, sb.size) == 0;
    msgpack_sbuffer_destroy(&sb);
    if (!sent) return io_fail("cannot send the request");
    if (recv_all(c->fd, hdr, sizeof hdr)) return io_fail("the server closed the connection");
    uint32_t len = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
    if (len == 0 || len > REPLY_MAX) return io_fail("a reply frame of a bad length");
    char *body = malloc(len);
    if (!body) return io_fail("out of memory");
    if (recv_all(c->fd, body, len)) {
        free(body);
        return io_fail("the server closed the connection");
    }
    const char *why = NULL;
    int rc = 1;
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    if (codec_prescan((const uint8_t *)body, len, 32, &why) != 0 ||
        msgpack_unpack_next(&u, body, len, NULL) != MSGPACK_UNPACK_SUCCESS) {
        io_fail("the reply is not msgpack");
        goto out;
    }
    const msgpack_object *ok = codec_map_get(&u.data, "ok");
    if (!ok || ok->type != MSGPACK_OBJECT_BOOLEAN || !ok->via.boolean) {
        const msgpack_object *err = codec_map_get(&u.data, "error");
        const msgpack_object *code = err ? codec_map_get(err, "code") : NULL;
        const msgpack_object *msg = err ? codec_map_get(err, "message") : NULL;
        fprintf(stderr, "evstore: %.*s: %.*s\n",
                code && code->type == MSGPACK_OBJECT_STR ? (int)code->via.str.size : 7,
                code && code->type == MSGPACK_OBJECT_STR ? code->via.str.ptr : "unknown",
                msg && msg->type == MSGPACK_OBJECT_STR ? (int)msg->via.str.size : 0,
                msg && msg->type == MSGPACK_OBJECT_STR ? msg->via.str.ptr : "");
        goto out;
    }
    const msgpack_object *result = codec_map_get(&u.data, key);
    json_t *j = result ? msgpack_to_json(result) : NULL;
    if (!j) {
        io_fail("the reply has no result");
        goto out;
    }
    int w = json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(j);
    fputc('\n', stdout);
    rc = w < 0 || fflush(stdout) != 0 ? io_fail("cannot write to stdout") : 0;
out:
    msgpack_unpacked_destroy(&u);
    free(body);
    return rc;
}

int cmd_stats(evs_context_t *c, int argc, char **argv) {
    (void)argv;
    if (argc) {
        fprintf(stderr, "evstore: stats takes no arguments\n");
        return 2;
    }
    return run_op(c, "stats", "stats");
}

int cmd_config(evs_context_t *c, int argc, char **argv) {
    (void)argv;
    if (argc) {
        fprintf(stderr, "evstore: config takes no arguments\n");
        return 2;
    }
    return run_op(c, "config", "config");
}
