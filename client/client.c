/* client.c: the libevstore connection and its blocking calls.
 *
 * One context is one socket. A call packs its request into priv->wbuf as one frame, writes it,
 * then reads frames until the reply with its id comes; pushes of subscriptions met on the way go
 * to their queues (subscription.c). Every frame is checked against max_frame before anything is
 * allocated for it, and pre-scanned (codec_prescan) before msgpack-c unpacks it. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "../proto/frame.h"
#include "client_priv.h"

/* ---------------------------------------------------------------- errors */

static bool code_is_fatal(int code) {
    return code == EVS_EIO || code == EVS_EPROTOCOL || code == EVS_ETIMEOUT || code == EVS_ENOMEM;
}

int client_fail(evs_context_t *c, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->errstr, sizeof c->errstr, fmt, ap);
    va_end(ap);
    c->err = code;
    if (code_is_fatal(code) && c->priv) {
        c->priv->dead = true;
        if (c->fd >= 0) close(c->fd);
        c->fd = -1;
    }
    return code;
}

int client_begin(evs_context_t *c) {
    if (!c) return EVS_ENOMEM;
    if (c->priv->dead) return c->err;
    c->err = 0;
    c->errstr[0] = '\0';
    memset(&c->detail, 0, sizeof c->detail);
    client_frame_release(c);
    return 0;
}

/* The zone of one frame is sized from the frame (FRAME_ZONE_FACTOR bytes of msgpack objects per
 * byte of body is enough for events and replies; a frame that needs more gets extra chunks,
 * freed with the next frame). The zone is kept from frame to frame, and replaced only when a
 * frame needs a larger one, or when it is over FRAME_ZONE_KEEP and 8 times what the frame
 * needs (so that one huge reply does not pin its memory). */
#define FRAME_ZONE_FACTOR 3
#define FRAME_ZONE_MIN 8192
#define FRAME_ZONE_KEEP (1u << 20)

void client_frame_release(evs_context_t *c) {
    msgpack_unpacked *f = &c->priv->frame;
    if (f->zone) msgpack_zone_clear(f->zone);
    f->data.type = MSGPACK_OBJECT_NIL;
}

/* Makes priv->frame's zone fit a frame of body_len bytes; -1 when out of memory. */
static int frame_zone_fit(evs_context_t *c, size_t body_len) {
    msgpack_unpacked *f = &c->priv->frame;
    size_t need = body_len * FRAME_ZONE_FACTOR, size = FRAME_ZONE_MIN;
    while (size < need)
        size *= 2;
    if (f->zone && f->zone->chunk_size >= size &&
        !(f->zone->chunk_size > FRAME_ZONE_KEEP && f->zone->chunk_size / 8 > size))
        return 0;
    msgpack_unpacked_destroy(f);
    msgpack_unpacked_init(f);
    f->zone = msgpack_zone_new(size);
    return f->zone ? 0 : -1;
}

EVS_API int evs_err(const evs_context_t *c) {
    return c ? c->err : EVS_ENOMEM;
}

EVS_API const char *evs_errstr(const evs_context_t *c) {
    return c ? c->errstr : "out of memory";
}

EVS_API const char *evs_strcode(int code) {
    return evs_code_name(code);
}

_Static_assert(EVS_MAX_TOPICS == CODEC_MAX_TOPICS, "the public topic bound is the protocol's");

EVS_API int evs_msgpack_check(const uint8_t *buf, size_t len, const char **why) {
    const char *reason = NULL;
    if (!buf || len == 0)
        reason = "no bytes";
    else if (codec_prescan(buf, len, CODEC_MAX_DEPTH, &reason) < 0 && !reason)
        reason = "not msgpack";
    if (why) *why = reason;
    return reason ? EVS_EINVAL : 0;
}

/* ---------------------------------------------------------------- time */

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t client_deadline(int timeout_ms) {
    return timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
}

int client_remaining_ms(int64_t deadline) {
    if (deadline < 0) return -1;
    int64_t left = deadline - now_ms();
    if (left < 0) return 0;
    return left > 1000000 ? 1000000 : (int)left;
}

/* ---------------------------------------------------------------- connecting */

/* Waits for a non-blocking connect on fd to finish. 0, or -1 with errno set. */
static int connect_wait(int fd, int timeout_ms) {
    int64_t deadline = client_deadline(timeout_ms > 0 ? timeout_ms : -1);
    struct pollfd pfd = {.fd = fd, .events = POLLOUT};
    for (;;) {
        int r = poll(&pfd, 1, client_remaining_ms(deadline));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return -1;
        if (r == 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        break;
    }
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0) return -1;
    if (soerr) {
        errno = soerr;
        return -1;
    }
    return 0;
}

static int try_connect(int fd, const struct sockaddr *sa, socklen_t len, int timeout_ms) {
    if (connect(fd, sa, len) == 0) return 0;
    if (errno != EINPROGRESS && errno != EAGAIN) return -1;
    return connect_wait(fd, timeout_ms);
}

static int connect_unix(evs_context_t *c, const char *path, int timeout_ms) {
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof sun);
    sun.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sun.sun_path)
        return client_fail(c, EVS_EINVAL, "Unix socket path longer than %zu bytes: %s",
                           sizeof sun.sun_path - 1, path);
    strcpy(sun.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return client_fail(c, EVS_EIO, "socket: %s", strerror(errno));
    if (try_connect(fd, (struct sockaddr *)&sun, sizeof sun, timeout_ms) < 0) {
        int e = errno;
        close(fd);
        return client_fail(c, EVS_EIO, "connect to %s: %s", path, strerror(e));
    }
    c->fd = fd;
    return 0;
}

int client_resolve(evs_context_t *c, const char *addr, struct addrinfo **res) {
    char host[256];
    const char *colon = strrchr(addr, ':');
    if (!colon || colon == addr || !colon[1] || (size_t)(colon - addr) >= sizeof host)
        return client_fail(c, EVS_EINVAL, "address is not HOST:PORT or a socket path: %s", addr);
    const char *h = addr;
    size_t hlen = (size_t)(colon - addr);
    if (h[0] == '[' && hlen >= 2 && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    int gai = getaddrinfo(host, colon + 1, &hints, res);
    if (gai != 0) return client_fail(c, EVS_EIO, "cannot resolve %s: %s", addr, gai_strerror(gai));
    return 0;
}

static int connect_tcp(evs_context_t *c, const char *addr, int timeout_ms) {
    struct addrinfo *res = NULL;
    if (client_resolve(c, addr, &res) < 0) return c->err;
    int last = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd =
            socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            last = errno;
            continue;
        }
        if (try_connect(fd, ai->ai_addr, ai->ai_addrlen, timeout_ms) == 0) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            c->fd = fd;
            freeaddrinfo(res);
            return 0;
        }
        last = errno;
        close(fd);
    }
    freeaddrinfo(res);
    return client_fail(c, EVS_EIO, "connect to %s: %s", addr, strerror(last));
}

EVS_API evs_context_t *evs_connect_with_options(const evs_options_t *opts) {
    evs_options_t o = {0};
    if (opts) o = *opts;
    if (!o.addr) o.addr = EVS_DEFAULT_ADDR;
    bool tls;
    o.addr = client_tls_strip(o.addr, &tls);
    evs_context_t *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->fd = -1;
    c->priv = calloc(1, sizeof *c->priv);
    if (!c->priv) {
        free(c);
        return NULL;
    }
    struct evs_context_priv *p = c->priv;
    p->timeout_ms = o.timeout_ms;
    p->max_frame = o.max_frame ? o.max_frame : EVS_DEFAULT_MAX_FRAME;
    p->max_reply = o.max_frame ? o.max_frame : EVS_MAX_REPLY_FRAME;
    p->next_id = 1;
    codec_buf_init(&p->wbuf);
    msgpack_unpacked_init(&p->frame);
    frame_reader_init(&p->reader, p->max_reply);
    if (o.timeout_ms < 0) {
        client_fail(c, EVS_EINVAL, "timeout_ms must be >= 0");
        p->dead = true;
        return c;
    }
    int64_t deadline = client_deadline(o.timeout_ms > 0 ? o.timeout_ms : -1);
    int r = strchr(o.addr, '/') ? connect_unix(c, o.addr, o.timeout_ms)
                                : connect_tcp(c, o.addr, o.timeout_ms);
    if (r == 0 && (tls || o.tls)) r = client_tls_connect(c, o.addr, o.tls, deadline);
    if (r < 0) p->dead = true; /* even for EVS_EINVAL: a context that never connected is dead */
    const char *token = o.token ? o.token : getenv("EVSTORE_TOKEN");
    if (r == 0 && token && *token && evs_auth(c, token, NULL, 0) != 0 && !p->dead) {
        /* A connection the daemon does not serve is of no use: dead, with the server's error. */
        p->dead = true;
        close(c->fd);
        c->fd = -1;
    }
    return c;
}

EVS_API evs_context_t *evs_connect(const char *addr) {
    evs_options_t o = {.addr = addr};
    return evs_connect_with_options(&o);
}

EVS_API void evs_free(evs_context_t *c) {
    if (!c) return;
    if (c->fd >= 0) close(c->fd);
    if (c->priv) {
        client_tls_free(c->priv->tls);
        sub_queues_free(c);
        msgpack_unpacked_destroy(&c->priv->frame);
        codec_buf_free(&c->priv->wbuf);
        frame_reader_free(&c->priv->reader);
        free(c->priv);
    }
    free(c);
}

/* ---------------------------------------------------------------- reading */

/* Reads once from the socket into the reader, with room for at least min bytes. Returns the
 * number of bytes read, 0 when the socket had none yet, or a negative code (context dead). */
static ssize_t read_into_reader(evs_context_t *c, size_t min) {
    frame_reader_t *r = &c->priv->reader;
    uint8_t *room;
    size_t room_len;
    if (frame_reader_space(r, min, &room, &room_len) < 0)
        return client_fail(c, EVS_ENOMEM, "out of memory for a %zu-byte read buffer",
                           frame_reader_pending(r) + min);
    if (c->priv->tls) {
        char err[300];
        ssize_t n = client_tls_read(c->priv->tls, room, room_len, err, sizeof err);
        if (n > 0) frame_reader_commit(r, (size_t)n);
        if (n > 0 || n == CLIENT_TLS_WANT_READ || n == CLIENT_TLS_WANT_WRITE) return n > 0 ? n : 0;
        if (n == CLIENT_TLS_CLOSED)
            return client_fail(c, EVS_EIO, "the server closed the connection");
        return client_fail(c, EVS_EIO, "%s", err);
    }
    ssize_t n = read(c->fd, room, room_len);
    if (n > 0) {
        frame_reader_commit(r, (size_t)n);
        return n;
    }
    if (n == 0) return client_fail(c, EVS_EIO, "the server closed the connection");
    if (errno == EINTR || errno == EAGAIN) return 0;
    return client_fail(c, EVS_EIO, "read: %s", strerror(errno));
}

/* Reads what the socket has into the reader (room for at least want bytes), waiting until
 * deadline for it to be readable. */
static int read_some(evs_context_t *c, size_t want, int64_t deadline, bool interruptible) {
    struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
    for (;;) {
        bool ready = c->priv->tls && client_tls_pending(c->priv->tls);
        int r = ready ? 1 : poll(&pfd, 1, client_remaining_ms(deadline));
        if (r < 0 && errno == EINTR) {
            if (interruptible) return WAIT_INTERRUPTED;
            continue;
        }
        if (r < 0) return client_fail(c, EVS_EIO, "poll: %s", strerror(errno));
        if (r == 0) return WAIT_TIMEOUT;
        ssize_t n = read_into_reader(c, want < FRAME_READ_CHUNK ? FRAME_READ_CHUNK : want);
        if (n < 0) return (int)n;
        if (n > 0) return WAIT_FRAME;
    }
}

int client_wait_frame(evs_context_t *c, int64_t deadline, bool interruptible) {
    struct evs_context_priv *p = c->priv;
    for (;;) {
        const uint8_t *body;
        size_t body_len = 0;
        int fs = frame_reader_next(&p->reader, &body, &body_len);
        if (fs == FRAME_OK) {
            const char *why = NULL;
            if (codec_prescan(body, body_len, CODEC_MAX_DEPTH, &why) < 0)
                return client_fail(c, EVS_EPROTOCOL, "bad frame from the server: %s", why);
            size_t off = 0;
            client_frame_release(c);
            if (frame_zone_fit(c, body_len) < 0)
                return client_fail(c, EVS_ENOMEM, "out of memory unpacking a reply");
            msgpack_unpack_return ur =
                msgpack_unpack_next(&p->frame, (const char *)body, body_len, &off);
            if (ur == MSGPACK_UNPACK_NOMEM_ERROR)
                return client_fail(c, EVS_ENOMEM, "out of memory unpacking a reply");
            if (ur != MSGPACK_UNPACK_SUCCESS || off != body_len ||
                p->frame.data.type != MSGPACK_OBJECT_MAP)
                return client_fail(c, EVS_EPROTOCOL, "a frame from the server is not one map");
            return WAIT_FRAME;
        }
        if (fs == FRAME_EMPTY)
            return client_fail(c, EVS_EPROTOCOL, "the server sent an empty frame");
        if (fs == FRAME_TOO_LARGE)
            return client_fail(c, EVS_EPROTOCOL,
                               "the server sent a %zu-byte frame, over this client's limit "
                               "(evs_options.max_frame %u): raise it to read this reply",
                               p->reader.declared, p->max_reply);
        /* Incomplete: read more, room for the whole frame when its length is known. */
        int r = read_some(c, frame_reader_missing(&p->reader), deadline, interruptible);
        if (r != WAIT_FRAME) return r;
    }
}

/* ---------------------------------------------------------------- writing */

/* Writes all of wbuf, reading into the reader whatever the server sends meanwhile so that neither
 * side can block the other. */
static int send_all(evs_context_t *c, int64_t deadline) {
    struct evs_context_priv *p = c->priv;
    size_t off = 0;
    while (off < p->wbuf.len) {
        ssize_t n;
        if (p->tls) {
            char err[300];
            n = client_tls_write(p->tls, p->wbuf.data + off, p->wbuf.len - off, err, sizeof err);
            if (n == CLIENT_TLS_CLOSED || n == CLIENT_TLS_ERROR)
                return client_fail(c, EVS_EIO, "%s",
                                   n == CLIENT_TLS_ERROR ? err
                                                         : "the server closed the connection");
            if (n < 0) errno = EAGAIN;
        } else {
            n = send(c->fd, p->wbuf.data + off, p->wbuf.len - off, MSG_NOSIGNAL);
        }
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno != EAGAIN) return client_fail(c, EVS_EIO, "write: %s", strerror(errno));
        struct pollfd pfd = {.fd = c->fd, .events = POLLOUT | POLLIN};
        int r = poll(&pfd, 1, client_remaining_ms(deadline));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return client_fail(c, EVS_EIO, "poll: %s", strerror(errno));
        if (r == 0) return client_fail(c, EVS_ETIMEOUT, "timed out sending a request");
        if ((pfd.revents & POLLIN) && read_into_reader(c, FRAME_READ_CHUNK) < 0) return c->err;
    }
    p->wbuf.len = 0;
    if (p->wbuf.cap > 4u * 1024 * 1024) { /* do not keep a huge append's buffer forever */
        codec_buf_free(&p->wbuf);
        codec_buf_init(&p->wbuf);
    }
    return 0;
}

/* ---------------------------------------------------------------- requests and replies */

size_t client_request_begin(evs_context_t *c, msgpack_packer *pk, const char *op, uint32_t nargs,
                            uint64_t *id) {
    struct evs_context_priv *p = c->priv;
    p->wbuf.len = 0;
    p->wbuf.failed = false;
    size_t start = codec_frame_begin(&p->wbuf);
    codec_packer_init(pk, &p->wbuf);
    *id = p->next_id++;
    msgpack_pack_map(pk, 2 + nargs);
    codec_pack_key(pk, "op");
    codec_pack_cstr(pk, op);
    codec_pack_key(pk, "id");
    msgpack_pack_uint64(pk, *id);
    return start;
}

static bool obj_uint(const msgpack_object *o, uint64_t *v) {
    if (!o || o->type != MSGPACK_OBJECT_POSITIVE_INTEGER) return false;
    *v = o->via.u64;
    return true;
}

static bool obj_int(const msgpack_object *o, int64_t *v) {
    if (!o) return false;
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT64_MAX) {
        *v = (int64_t)o->via.u64;
        return true;
    }
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *v = o->via.i64;
        return true;
    }
    return false;
}

static void copy_str(char *dst, size_t cap, const msgpack_object *o) {
    size_t n = o->via.str.size < cap - 1 ? o->via.str.size : cap - 1;
    memcpy(dst, o->via.str.ptr, n);
    dst[n] = '\0';
}

/* Fills c->err, errstr and detail from an error reply's "error" map (not fatal). */
int client_take_server_error(evs_context_t *c, const msgpack_object *reply) {
    const msgpack_object *e = codec_map_get(reply, "error");
    if (!e || e->type != MSGPACK_OBJECT_MAP)
        return client_fail(c, EVS_EPROTOCOL, "an error reply without an error map");
    const msgpack_object *code = codec_map_get(e, "code"), *msg = codec_map_get(e, "message");
    if (!code || code->type != MSGPACK_OBJECT_STR)
        return client_fail(c, EVS_EPROTOCOL, "an error reply without a code");
    int k = evs_code_from_name(code->via.str.ptr, code->via.str.size);
    if (k >= 0 || k <= EVS_EIO) k = EVS_EINTERNAL; /* only server codes come from a server */
    c->err = k;
    if (msg && msg->type == MSGPACK_OBJECT_STR)
        copy_str(c->errstr, sizeof c->errstr, msg);
    else
        snprintf(c->errstr, sizeof c->errstr, "%s", evs_code_name(k));
    evs_error_detail_t *d = &c->detail;
    const msgpack_object *o;
    if ((o = codec_map_get(e, "entity_id")) && o->type == MSGPACK_OBJECT_STR) {
        d->has_entity_id = true;
        copy_str(d->entity_id, sizeof d->entity_id, o);
    }
    d->has_version = obj_uint(codec_map_get(e, "version"), &d->version);
    o = codec_map_get(e, "current_version");
    if (o && o->type == MSGPACK_OBJECT_NIL) { /* the entity has no events */
        d->has_current_version = true;
        d->current_version = -1;
    } else {
        d->has_current_version = obj_int(o, &d->current_version);
    }
    o = codec_map_get(e, "event_id");
    if (o && o->type == MSGPACK_OBJECT_BIN && o->via.bin.size == 16) {
        d->has_event_id = true;
        memcpy(d->event_id, o->via.bin.ptr, 16);
    }
    d->has_position = obj_uint(codec_map_get(e, "position"), &d->position);
    o = codec_map_get(e, "tracking");
    d->tracking = o && o->type == MSGPACK_OBJECT_BOOLEAN && o->via.boolean;
    return k;
}

int client_request_end(evs_context_t *c, size_t start, uint64_t id, const msgpack_object **result) {
    struct evs_context_priv *p = c->priv;
    *result = NULL;
    if (codec_frame_end(&p->wbuf, start, p->max_frame) < 0) {
        bool oom = p->wbuf.failed;
        p->wbuf.len = 0;
        if (oom) return client_fail(c, EVS_ENOMEM, "out of memory packing a request");
        return client_fail(c, EVS_EINVAL, "the request is larger than max_frame (%u bytes)",
                           p->max_frame);
    }
    int64_t deadline = client_deadline(p->timeout_ms > 0 ? p->timeout_ms : -1);
    int r = send_all(c, deadline);
    if (r < 0) return r;
    for (;;) {
        r = client_wait_frame(c, deadline, false);
        if (r == WAIT_TIMEOUT)
            return client_fail(c, EVS_ETIMEOUT, "no reply within %d ms", p->timeout_ms);
        if (r < 0) return r;
        const msgpack_object *obj = &p->frame.data;
        const msgpack_object *oid = codec_map_get(obj, "id");
        uint64_t rid;
        if (oid) {
            if (!obj_uint(oid, &rid) || rid != id)
                return client_fail(c, EVS_EPROTOCOL, "a reply to a request that was not sent");
        } else if (codec_map_get(obj, "sub")) {
            if ((r = sub_queue_push_frame(c, obj)) < 0) return r;
            continue;
        }
        /* Our reply, or an error the server could not tie to a request id (which can only be
         * about the one request in flight). */
        const msgpack_object *ok = codec_map_get(obj, "ok");
        if (!ok || ok->type != MSGPACK_OBJECT_BOOLEAN)
            return client_fail(c, EVS_EPROTOCOL, "a reply without \"ok\"");
        if (!ok->via.boolean) return client_take_server_error(c, obj);
        if (!oid) return client_fail(c, EVS_EPROTOCOL, "an ok reply without an id");
        *result = obj;
        return 0;
    }
}

/* ---------------------------------------------------------------- events */

EVS_API void evs_events_free(evs_events_t *list) {
    if (!list) return;
    free(list->events); /* the events and their bytes: one block (client_decode_events) */
    free(list);
}

EVS_API void evs_event_free(evs_event_t *ev) {
    if (!ev) return;
    evs_event_clear(ev);
    free(ev);
}

/* Decodes one event of the current frame into *dst as an independent copy. */
static int decode_event_copy(evs_context_t *c, const msgpack_object *o, evs_event_t *dst) {
    evs_event_t ev;
    const char *why = NULL;
    memset(&ev, 0, sizeof ev);
    if (codec_decode_event(o, c->priv->frame.zone, &ev, &why) < 0)
        return client_fail(c, EVS_EPROTOCOL, "bad event from the server: %s", why);
    if (evs_event_dup(dst, &ev) < 0) return client_fail(c, EVS_ENOMEM, "out of memory");
    return 0;
}

int client_decode_events(evs_context_t *c, const msgpack_object *arr, evs_events_t **out) {
    *out = NULL;
    if (!arr || arr->type != MSGPACK_OBJECT_ARRAY)
        return client_fail(c, EVS_EPROTOCOL, "a reply without an events array");
    size_t n = arr->via.array.size;
    /* Decoded in place first (the events point into the frame), then copied into one block:
     * the events array followed by every event's bytes, so that a list is two allocations. */
    evs_event_t *tmp = n ? malloc(n * sizeof *tmp) : NULL;
    if (n && !tmp) return client_fail(c, EVS_ENOMEM, "out of memory for %zu events", n);
    size_t bytes = n * sizeof(evs_event_t);
    for (size_t i = 0; i < n; i++) {
        const char *why = NULL;
        memset(&tmp[i], 0, sizeof tmp[i]);
        if (codec_decode_event(&arr->via.array.ptr[i], c->priv->frame.zone, &tmp[i], &why) < 0) {
            free(tmp);
            return client_fail(c, EVS_EPROTOCOL, "bad event from the server: %s", why);
        }
        bytes += codec_event_bytes(&tmp[i]);
    }
    evs_events_t *list = calloc(1, sizeof *list);
    char *block = n ? malloc(bytes) : NULL;
    if (!list || (n && !block)) {
        free(tmp);
        free(list);
        free(block);
        return client_fail(c, EVS_ENOMEM, "out of memory for %zu events", n);
    }
    list->events = (evs_event_t *)block;
    char *at = n ? block + n * sizeof(evs_event_t) : NULL; /* NULL + 0 is undefined */
    for (size_t i = 0; i < n; i++)
        at = codec_event_copy_into(&list->events[i], &tmp[i], at);
    list->n = n;
    free(tmp);
    *out = list;
    return 0;
}

/* ---------------------------------------------------------------- operations */

/* Sends a ping and waits for its reply; *res is the reply map (valid until the next call). */
static int ping_reply(evs_context_t *c, const msgpack_object **res) {
    int r = client_begin(c);
    if (r) return r;
    msgpack_packer pk;
    uint64_t id;
    size_t start = client_request_begin(c, &pk, "ping", 0, &id);
    return client_request_end(c, start, id, res);
}

EVS_API int evs_ping(evs_context_t *c, char *version, size_t cap) {
    const msgpack_object *res;
    int r = ping_reply(c, &res);
    if (r != 0) return r;
    const msgpack_object *v = codec_map_get(res, "version");
    if (!v || v->type != MSGPACK_OBJECT_STR)
        return client_fail(c, EVS_EPROTOCOL, "a ping reply without a version");
    if (version && cap) copy_str(version, cap, v);
    return 0;
}

EVS_API int evs_health(evs_context_t *c, evs_health_t *out) {
    memset(out, 0, sizeof *out);
    int r = client_begin(c);
    if (r) return r;
    msgpack_packer pk;
    uint64_t id;
    size_t start = client_request_begin(c, &pk, "health", 0, &id);
    const msgpack_object *res;
    if ((r = client_request_end(c, start, id, &res)) < 0) return r;
    const msgpack_object *st = codec_map_get(res, "status");
    if (!st || st->type != MSGPACK_OBJECT_STR)
        return client_fail(c, EVS_EPROTOCOL, "a health reply without a status");
    char status[16];
    copy_str(status, sizeof status, st);
    out->status = strcmp(status, "ok") == 0         ? EVS_HEALTH_OK
                  : strcmp(status, "degraded") == 0 ? EVS_HEALTH_DEGRADED
                                                    : EVS_HEALTH_DOWN;
    const msgpack_object *v = codec_map_get(res, "reason");
    if (v && v->type == MSGPACK_OBJECT_STR) copy_str(out->reason, sizeof out->reason, v);
    v = codec_map_get(res, "kind");
    if (v && v->type == MSGPACK_OBJECT_STR) copy_str(out->kind, sizeof out->kind, v);
    v = codec_map_get(res, "store_state");
    if (v && v->type == MSGPACK_OBJECT_STR) copy_str(out->store_state, sizeof out->store_state, v);
    return 0;
}

EVS_API int evs_store_info(evs_context_t *c, char store_id[EVS_STORE_ID_LEN], uint64_t *head) {
    store_id[0] = '\0';
    if (head) *head = 0;
    const msgpack_object *res;
    int r = ping_reply(c, &res);
    if (r != 0) return r;
    const msgpack_object *v = codec_map_get(res, "store_id");
    if (v && v->type == MSGPACK_OBJECT_STR) {
        if (v->via.str.size != EVS_STORE_ID_LEN - 1 && v->via.str.size != 0)
            return client_fail(c, EVS_EPROTOCOL, "a ping reply with a store_id that is no UUID");
        copy_str(store_id, EVS_STORE_ID_LEN, v);
    }
    v = codec_map_get(res, "head");
    if (head && v && !obj_uint(v, head))
        return client_fail(c, EVS_EPROTOCOL, "a ping reply with a bad head");
    return 0;
}

EVS_API int evs_auth(evs_context_t *c, const char *token, char *principal, size_t cap) {
    if (principal && cap) principal[0] = '\0';
    int r = client_begin(c);
    if (r) return r;
    size_t len = token ? strlen(token) : 0;
    if (len == 0 || len > CODEC_MAX_TOKEN)
        return client_fail(c, EVS_EINVAL, "a token is 1 to %d bytes", CODEC_MAX_TOKEN);
    msgpack_packer pk;
    uint64_t id;
    const msgpack_object *res;
    size_t start = client_request_begin(c, &pk, "auth", 1, &id);
    codec_pack_key(&pk, "token");
    msgpack_pack_str_with_body(&pk, token, len);
    r = client_request_end(c, start, id, &res);
    if (r != 0) return r;
    const msgpack_object *v = codec_map_get(res, "principal");
    if (!v || v->type != MSGPACK_OBJECT_STR)
        return client_fail(c, EVS_EPROTOCOL, "an auth reply without a principal");
    if (principal && cap) copy_str(principal, cap, v);
    return 0;
}

int client_check_name(evs_context_t *c, const char *what, const char *s) {
    if (!s || !codec_valid_name(s, strlen(s)))
        return client_fail(c, EVS_EINVAL, "%s must be UTF-8 of 1 to %d bytes", what, EVS_NAME_MAX);
    return 0;
}

/* Reads an array of n unsigned integers of a reply into out (may be NULL). */
int client_take_uints(evs_context_t *c, const msgpack_object *res, const char *key, size_t n,
                      uint64_t *out) {
    const msgpack_object *a = codec_map_get(res, key);
    if (!a || a->type != MSGPACK_OBJECT_ARRAY || a->via.array.size != n)
        return client_fail(c, EVS_EPROTOCOL, "an append reply without %zu %s", n, key);
    for (size_t i = 0; i < n; i++) {
        uint64_t v;
        if (!obj_uint(&a->via.array.ptr[i], &v))
            return client_fail(c, EVS_EPROTOCOL, "an append reply with a bad %s", key);
        if (out) out[i] = v;
    }
    return 0;
}

int client_check_events(evs_context_t *c, const evs_event_t *events, size_t n) {
    if (n && !events) return client_fail(c, EVS_EINVAL, "events is NULL");
    if (n > UINT32_MAX) return client_fail(c, EVS_EINVAL, "too many events");
    for (size_t i = 0; i < n; i++) {
        if (client_check_name(c, "entity_id", events[i].entity_id) < 0) return c->err;
        if (client_check_name(c, "topic", events[i].topic) < 0) return c->err;
        if (events[i].payload_len && !events[i].payload)
            return client_fail(c, EVS_EINVAL, "event %zu has payload_len but no payload", i);
    }
    return 0;
}

EVS_API int evs_append(evs_context_t *c, const evs_event_t *events, size_t n, uint64_t *positions,
                       uint64_t *versions) {
    int r = client_begin(c);
    if (r) return r;
    if (client_check_events(c, events, n) < 0) return c->err;
    msgpack_packer pk;
    uint64_t id;
    size_t start = client_request_begin(c, &pk, "append", 1, &id);
    codec_pack_key(&pk, "events");
    msgpack_pack_array(&pk, (uint32_t)n);
    for (size_t i = 0; i < n; i++)
        codec_pack_event_for_append(&pk, &events[i]);
    const msgpack_object *res;
    if ((r = client_request_end(c, start, id, &res)) < 0) return r;
    if ((r = client_take_uints(c, res, "positions", n, positions)) < 0) return r;
    return client_take_uints(c, res, "versions", n, versions);
}

/* Sends a read whose reply is {"events": [...]}; the args are packed by pack(). */
static int events_call(evs_context_t *c, size_t start, uint64_t id, evs_events_t **out) {
    const msgpack_object *res;
    int r = client_request_end(c, start, id, &res);
    if (r < 0) return r;
    if ((r = client_decode_events(c, codec_map_get(res, "events"), out)) < 0) return r;
    const msgpack_object *t = codec_map_get(res, "truncated");
    (*out)->truncated = t && t->type == MSGPACK_OBJECT_BOOLEAN && t->via.boolean;
    return r;
}

EVS_API int evs_get_by_entity(evs_context_t *c, const char *entity_id, uint64_t from_version,
                              uint32_t limit, bool backwards, evs_events_t **out) {
    *out = NULL;
    int r = client_begin(c);
    if (r) return r;
    if (client_check_name(c, "entity_id", entity_id) < 0) return c->err;
    bool send_from = !(backwards && from_version == EVS_LATEST);
    msgpack_packer pk;
    uint64_t id;
    size_t start = client_request_begin(c, &pk, "get-by-entity",
                                        1 + (uint32_t)send_from + (limit > 0) + backwards, &id);
    codec_pack_key(&pk, "entity_id");
    codec_pack_cstr(&pk, entity_id);
    if (send_from) {
        codec_pack_key(&pk, "from_version");
        msgpack_pack_uint64(&pk, from_version);
    }
    if (limit) {
        codec_pack_key(&pk, "limit");
        msgpack_pack_uint32(&pk, limit);
    }
    if (backwards) {
        codec_pack_key(&pk, "backwards");
        msgpack_pack_true(&pk);
    }
    return events_call(c, start, id, out);
}

EVS_API int evs_get_by_topic(evs_context_t *c, const char *topic, uint64_t after, uint32_t limit,
                             evs_events_t **out) {
    *out = NULL;
    int r = client_begin(c);
    if (r) return r;
    if (client_check_name(c, "topic", topic) < 0) return c->err;
    msgpack_packer pk;
    uint64_t id;
    size_t start = client_request_begin(c, &pk, "get-by-topic", 2 + (limit > 0), &id);
    codec_pack_key(&pk, "topic");
    codec_pack_cstr(&pk, topic);
    codec_pack_key(&pk, "after");
    msgpack_pack_uint64(&pk, after);
    if (limit) {
        codec_pack_key(&pk, "limit");
        msgpack_pack_uint32(&pk, limit);
    }
    return events_call(c, start, id, out);
}

EVS_API int evs_read_all(evs_context_t *c, uint64_t after, uint32_t limit, evs_events_t **out) {
    *out = NULL;
    int r = client_begin(c);
    if (r) return r;
    msgpack_packer pk;
    uint64_t id;
    size_t start = client_request_begin(c, &pk, "read-all", 1 + (limit > 0), &id);
    codec_pack_key(&pk, "after");
    msgpack_pack_uint64(&pk, after);
    if (limit) {
        codec_pack_key(&pk, "limit");
        msgpack_pack_uint32(&pk, limit);
    }
    return events_call(c, start, id, out);
}

EVS_API int evs_get_by_id(evs_context_t *c, const uint8_t event_id[16], evs_event_t **out) {
    *out = NULL;
    int r = client_begin(c);
    if (r) return r;
    if (!event_id) return client_fail(c, EVS_EINVAL, "event_id is NULL");
    msgpack_packer pk;
    uint64_t id;
    size_t start = client_request_begin(c, &pk, "get-by-id", 1, &id);
    codec_pack_key(&pk, "event_id");
    codec_pack_bin(&pk, event_id, 16);
    const msgpack_object *res;
    if ((r = client_request_end(c, start, id, &res)) < 0) return r;
    const msgpack_object *o = codec_map_get(res, "event");
    if (!o) return client_fail(c, EVS_EPROTOCOL, "a get-by-id reply without an event");
    evs_event_t *ev = calloc(1, sizeof *ev);
    if (!ev) return client_fail(c, EVS_ENOMEM, "out of memory");
    if ((r = decode_event_copy(c, o, ev)) < 0) {
        free(ev);
        return r;
    }
    *out = ev;
    return 0;
}

EVS_API int evs_delete_entity(evs_context_t *c, const char *entity_id, uint64_t *deleted) {
    int r = client_begin(c);
    if (r) return r;
    if (client_check_name(c, "entity_id", entity_id) < 0) return c->err;
    msgpack_packer pk;
    uint64_t id;
    size_t start = client_request_begin(c, &pk, "delete-entity", 1, &id);
    codec_pack_key(&pk, "entity_id");
    codec_pack_cstr(&pk, entity_id);
    const msgpack_object *res;
    if ((r = client_request_end(c, start, id, &res)) < 0) return r;
    uint64_t n;
    if (!obj_uint(codec_map_get(res, "deleted"), &n))
        return client_fail(c, EVS_EPROTOCOL, "a delete-entity reply without \"deleted\"");
    if (deleted) *deleted = n;
    return 0;
}

EVS_API int evs_admin_call(evs_context_t *c, const char *op, uint8_t **out, size_t *len) {
    *out = NULL;
    *len = 0;
    int r = client_begin(c);
    if (r) return r;
    if (!op || (strcmp(op, "stats") != 0 && strcmp(op, "config") != 0))
        return client_fail(c, EVS_EINVAL, "op must be \"stats\" or \"config\"");
    msgpack_packer pk;
    uint64_t id;
    size_t start = client_request_begin(c, &pk, op, 0, &id);
    const msgpack_object *res;
    if ((r = client_request_end(c, start, id, &res)) < 0) return r;
    const msgpack_object *m = codec_map_get(res, op);
    if (!m || m->type != MSGPACK_OBJECT_MAP)
        return client_fail(c, EVS_EPROTOCOL, "a %s reply without a %s map", op, op);
    /* The map's objects point into the frame: packed again into bytes the caller owns. */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer copy;
    msgpack_packer_init(&copy, &sb, msgpack_sbuffer_write);
    if (msgpack_pack_object(&copy, *m) != 0) {
        msgpack_sbuffer_destroy(&sb);
        return client_fail(c, EVS_ENOMEM, "out of memory for the %s map", op);
    }
    *len = sb.size;
    *out = (uint8_t *)msgpack_sbuffer_release(&sb);
    return 0;
}
