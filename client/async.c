/* async.c: the asynchronous context of libevstore (evstore_async.h).
 *
 * One context is one non-blocking socket. Requests are packed into priv->wbuf as frames and
 * written when the socket takes them; the requests waiting for a reply sit in a ring in id order
 * (ids are consecutive, so a reply's id is its index). Bytes read go through one frame_reader_t;
 * each frame is pre-scanned, unpacked and decoded with the blocking client's decoders
 * (client_priv.h), then handed to its request's callback.
 *
 * A context dies once (async_kill): the adapter's cleanup hook runs, the socket is closed, then
 * the connect callback (when still connecting) and every waiting request's callback are called
 * with the error. evs_async_free from inside a callback only marks the context, and the entry
 * point that called the callback frees it on its way out. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../proto/frame.h"
#include "client_priv.h"
#include "evstore_async.h"

#define READ_CHUNK (64 * 1024)
#define READS_PER_EVENT 16 /* full reads in a row before giving the loop back */

typedef struct async_req {
    evs_async_fn *fn;
    void *privdata;
    uint32_t nevents;
    bool answered;
    bool is_auth; /* the context's own auth request (evs_options_t.token) */
} async_req_t;

/* ASYNC_HANDSHAKE: connected, the TLS handshake under way (only with TLS). */
enum async_state { ASYNC_CONNECTING, ASYNC_HANDSHAKE, ASYNC_CONNECTED, ASYNC_DEAD };

struct evs_async_priv {
    enum async_state state;
    char addr[256];     /* for error messages */
    uint32_t max_frame; /* of requests */
    uint32_t max_reply; /* of frames from the server */
    evs_async_events_t ev;
    bool attached, reading, writing;
    evs_async_connect_fn *connect_cb;
    /* Output: wbuf[wpos..len) is not written yet. */
    codec_buf_t wbuf;
    size_t wpos;
    /* Requests waiting for a reply: ring[(head + i) & (cap - 1)] has id base_id + i. */
    async_req_t *ring;
    size_t cap, head, count;
    uint64_t base_id;
    /* Input. */
    frame_reader_t reader;
    uint8_t *inbuf; /* READ_CHUNK bytes read into and lent to the reader */
    msgpack_unpacked frame;
    evs_context_t scratch; /* where the shared decoders leave errors (no priv, no socket) */
    uint64_t *uints;       /* positions then versions of the reply being decoded */
    size_t uints_cap;
    /* Inside an entry point from the loop (where every callback runs), and a free asked for
     * meanwhile. */
    bool in_handler, free_asked;
    client_tls_t *tls; /* the TLS session on fd (tls.c), or NULL */
};

static void async_destroy(evs_async_t *ac);

/* ---------------------------------------------------------------- hooks and callbacks */

static void want_read(evs_async_t *ac, bool on) {
    struct evs_async_priv *p = ac->priv;
    if (!p->attached || p->reading == on) return;
    p->reading = on;
    void (*hook)(void *) = on ? p->ev.add_read : p->ev.del_read;
    if (hook) hook(p->ev.data);
}

static void want_write(evs_async_t *ac, bool on) {
    struct evs_async_priv *p = ac->priv;
    if (!p->attached || p->writing == on) return;
    p->writing = on;
    void (*hook)(void *) = on ? p->ev.add_write : p->ev.del_write;
    if (hook) hook(p->ev.data);
}

static void call_connect(evs_async_t *ac, int status) {
    evs_async_connect_fn *fn = ac->priv->connect_cb;
    ac->priv->connect_cb = NULL; /* at most once */
    if (fn) fn(ac, status);
}

/* Kills the context: sets the error, lets the adapter stop watching, closes the socket, then
 * tells the connect callback (while connecting) and every waiting request. A no-op on a dead
 * context, so the first error is the one kept. Returns ac->err. */
static int async_kill(evs_async_t *ac, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int async_kill(evs_async_t *ac, int code, const char *fmt, ...) {
    struct evs_async_priv *p = ac->priv;
    if (p->state == ASYNC_DEAD) return ac->err;
    bool connecting = p->state == ASYNC_CONNECTING || p->state == ASYNC_HANDSHAKE;
    p->state = ASYNC_DEAD;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ac->errstr, sizeof ac->errstr, fmt, ap);
    va_end(ap);
    ac->err = code;
    if (p->attached && p->ev.cleanup) p->ev.cleanup(p->ev.data);
    p->attached = false;
    if (ac->fd >= 0) close(ac->fd);
    ac->fd = -1;
    if (connecting) call_connect(ac, code);
    /* Each waiting request is taken off the ring before its callback runs. */
    while (p->count) {
        async_req_t req = p->ring[p->head];
        p->head = (p->head + 1) & (p->cap - 1);
        p->count--;
        p->base_id++;
        if (!req.answered && req.fn) req.fn(ac, NULL, req.privdata);
    }
    return ac->err;
}

/* Ends an entry point from the loop: frees the context when a callback asked for it. */
static void leave_handler(evs_async_t *ac) {
    ac->priv->in_handler = false;
    if (ac->priv->free_asked) async_destroy(ac);
}

/* ---------------------------------------------------------------- connecting */

/* Opens a non-blocking socket for addr and starts connecting it. 0, or a negative code with
 * ac->errstr set (the context is then dead). */
static int start_connect(evs_async_t *ac, const char *addr) {
    if (strchr(addr, '/')) {
        struct sockaddr_un sun;
        memset(&sun, 0, sizeof sun);
        sun.sun_family = AF_UNIX;
        if (strlen(addr) >= sizeof sun.sun_path) {
            async_kill(ac, EVS_EINVAL, "Unix socket path longer than %zu bytes: %s",
                       sizeof sun.sun_path - 1, addr);
            return ac->err;
        }
        strcpy(sun.sun_path, addr);
        ac->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (ac->fd < 0 ||
            (connect(ac->fd, (struct sockaddr *)&sun, sizeof sun) < 0 && errno != EINPROGRESS))
            async_kill(ac, EVS_EIO, "connect to %s: %s", addr, strerror(errno));
        return ac->err;
    }
    evs_context_t *s = &ac->priv->scratch;
    struct addrinfo *res = NULL;
    if (client_resolve(s, addr, &res) < 0) return async_kill(ac, s->err, "%s", s->errstr);
    /* The first address whose connect starts; the others are tried only when it fails at once. */
    int last = 0;
    for (struct addrinfo *ai = res; ai && ac->fd < 0; ai = ai->ai_next) {
        int fd =
            socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            last = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 || errno == EINPROGRESS) {
            ac->fd = fd;
        } else {
            last = errno;
            close(fd);
        }
    }
    freeaddrinfo(res);
    if (ac->fd < 0) async_kill(ac, EVS_EIO, "connect to %s: %s", addr, strerror(last));
    return ac->err;
}

/* Runs the TLS handshake as far as the socket lets it; once done the connect callback learns it.
 * Returns false while it goes on or when the context died. */
static bool tls_handshake(evs_async_t *ac) {
    struct evs_async_priv *p = ac->priv;
    char err[300];
    int r = client_tls_handshake(p->tls, err, sizeof err);
    if (r == CLIENT_TLS_WANT_READ || r == CLIENT_TLS_WANT_WRITE) {
        want_read(ac, true);
        want_write(ac, r == CLIENT_TLS_WANT_WRITE);
        return false;
    }
    if (r == CLIENT_TLS_CLOSED)
        snprintf(err, sizeof err, "TLS: the server closed the connection during the handshake");
    if (r != 0) {
        async_kill(ac, EVS_EIO, "%s (%s)", err, p->addr);
        return false;
    }
    p->state = ASYNC_CONNECTED;
    want_read(ac, true);
    want_write(ac, p->wpos < p->wbuf.len);
    call_connect(ac, 0);
    return p->state == ASYNC_CONNECTED;
}

/* Finishes a connect once the socket is ready (and the TLS handshake, with TLS): the connect
 * callback learns how it went. Returns false while it is not done or when the context died. */
static bool finish_connect(evs_async_t *ac) {
    struct evs_async_priv *p = ac->priv;
    if (p->state == ASYNC_HANDSHAKE) return tls_handshake(ac);
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    if (getsockopt(ac->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0) soerr = errno;
    if (soerr) {
        async_kill(ac, EVS_EIO, "connect to %s: %s", p->addr, strerror(soerr));
        return false;
    }
    if (p->tls) {
        p->state = ASYNC_HANDSHAKE;
        return tls_handshake(ac);
    }
    p->state = ASYNC_CONNECTED;
    want_read(ac, true);
    call_connect(ac, 0);
    return p->state == ASYNC_CONNECTED;
}

static int ring_reserve(struct evs_async_priv *p);

/* Queues an auth request with token (nothing when it is NULL or ""), the first frame the
 * connection sends; a refusal kills the context with the server's error. */
static void queue_auth(evs_async_t *ac, const char *token) {
    struct evs_async_priv *p = ac->priv;
    size_t len = token ? strlen(token) : 0;
    if (len == 0) return;
    if (len > CODEC_MAX_TOKEN) {
        async_kill(ac, EVS_EINVAL, "a token is 1 to %d bytes", CODEC_MAX_TOKEN);
        return;
    }
    if (ring_reserve(p) < 0) {
        async_kill(ac, EVS_ENOMEM, "out of memory");
        return;
    }
    msgpack_packer pk;
    size_t start = codec_frame_begin(&p->wbuf);
    codec_packer_init(&pk, &p->wbuf);
    msgpack_pack_map(&pk, 3);
    codec_pack_key(&pk, "op");
    codec_pack_cstr(&pk, "auth");
    codec_pack_key(&pk, "id");
    msgpack_pack_uint64(&pk, p->base_id + p->count);
    codec_pack_key(&pk, "token");
    msgpack_pack_str_with_body(&pk, token, len);
    if (codec_frame_end(&p->wbuf, start, UINT32_MAX) < 0) {
        async_kill(ac, EVS_ENOMEM, "out of memory");
        return;
    }
    p->ring[(p->head + p->count) & (p->cap - 1)] = (async_req_t){.is_auth = true};
    p->count++;
}

EVS_API evs_async_t *evs_async_connect(const evs_options_t *opts) {
    evs_options_t o = {0};
    if (opts) o = *opts;
    if (!o.addr) o.addr = EVS_DEFAULT_ADDR;
    bool tls;
    o.addr = client_tls_strip(o.addr, &tls);
    evs_async_t *ac = calloc(1, sizeof *ac);
    if (!ac) return NULL;
    ac->fd = -1;
    ac->priv = calloc(1, sizeof *ac->priv);
    if (!ac->priv) {
        free(ac);
        return NULL;
    }
    struct evs_async_priv *p = ac->priv;
    snprintf(p->addr, sizeof p->addr, "%s", o.addr);
    p->max_frame = o.max_frame ? o.max_frame : EVS_DEFAULT_MAX_FRAME;
    p->max_reply = o.max_frame ? o.max_frame : EVS_MAX_REPLY_FRAME;
    p->base_id = 1;
    p->scratch.fd = -1;
    codec_buf_init(&p->wbuf);
    frame_reader_init(&p->reader, p->max_reply);
    msgpack_unpacked_init(&p->frame);
    char err[300];
    if (start_connect(ac, o.addr) == 0) {
        if ((tls || o.tls) && !(p->tls = client_tls_new(ac->fd, o.addr, o.tls, err, sizeof err)))
            async_kill(ac, EVS_EIO, "%s (%s)", err, o.addr);
        else
            queue_auth(ac, o.token ? o.token : getenv("EVSTORE_TOKEN"));
    }
    return ac;
}

EVS_API void evs_async_set_connect_callback(evs_async_t *ac, evs_async_connect_fn *fn) {
    if (ac && ac->priv->state == ASYNC_CONNECTING) ac->priv->connect_cb = fn;
}

EVS_API int evs_async_set_events(evs_async_t *ac, const evs_async_events_t *ev) {
    struct evs_async_priv *p = ac->priv;
    if (p->state == ASYNC_DEAD) return ac->err;
    if (p->attached) return EVS_EINVAL;
    p->ev = *ev;
    p->attached = true;
    /* A connect completes when the socket turns writable. */
    if (p->state == ASYNC_CONNECTING || p->wpos < p->wbuf.len) want_write(ac, true);
    if (p->state != ASYNC_CONNECTING) want_read(ac, true);
    if (p->state == ASYNC_HANDSHAKE) want_write(ac, true);
    return 0;
}

/* ---------------------------------------------------------------- writing */

/* Writes what wbuf holds until the socket is full, and watches for writability only then. */
static void flush_output(evs_async_t *ac) {
    struct evs_async_priv *p = ac->priv;
    while (p->wpos < p->wbuf.len) {
        ssize_t n;
        if (p->tls) {
            char err[300];
            n = client_tls_write(p->tls, p->wbuf.data + p->wpos, p->wbuf.len - p->wpos, err,
                                 sizeof err);
            if (n == CLIENT_TLS_WANT_READ) return; /* the reads under way will go on with it */
            if (n == CLIENT_TLS_CLOSED || n == CLIENT_TLS_ERROR) {
                async_kill(ac, EVS_EIO, "%s",
                           n == CLIENT_TLS_ERROR ? err : "the server closed the connection");
                return;
            }
            if (n < 0) errno = EAGAIN;
        } else {
            n = send(ac->fd, p->wbuf.data + p->wpos, p->wbuf.len - p->wpos, MSG_NOSIGNAL);
        }
        if (n > 0) {
            p->wpos += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            want_write(ac, true);
            return;
        }
        async_kill(ac, EVS_EIO, "write: %s", strerror(errno));
        return;
    }
    p->wbuf.len = p->wpos = 0;
    if (p->wbuf.cap > 4u * 1024 * 1024) { /* do not keep a huge append's buffer forever */
        codec_buf_free(&p->wbuf);
        codec_buf_init(&p->wbuf);
    }
    want_write(ac, false);
}

EVS_API void evs_async_handle_write(evs_async_t *ac) {
    struct evs_async_priv *p = ac->priv;
    if (p->state == ASYNC_DEAD || p->in_handler) return;
    p->in_handler = true;
    if (p->state == ASYNC_CONNECTED || finish_connect(ac)) flush_output(ac);
    leave_handler(ac);
}

/* Makes room in the ring for one more request. 0, or -1 when out of memory. */
static int ring_reserve(struct evs_async_priv *p) {
    if (p->count < p->cap) return 0;
    size_t cap = p->cap ? p->cap * 2 : 16;
    async_req_t *ring = malloc(cap * sizeof *ring);
    if (!ring) return -1;
    for (size_t i = 0; i < p->count; i++)
        ring[i] = p->ring[(p->head + i) & (p->cap - 1)];
    free(p->ring);
    p->ring = ring;
    p->cap = cap;
    p->head = 0;
    return 0;
}

/* Queues an append, with a tracking when consumer is not NULL. */
static int queue_append(evs_async_t *ac, const evs_event_t *events, size_t n, const char *consumer,
                        uint64_t position, evs_async_fn *fn, void *privdata) {
    struct evs_async_priv *p = ac->priv;
    if (p->state == ASYNC_DEAD) return ac->err;
    if (client_check_events(&p->scratch, events, n) < 0) return p->scratch.err;
    if (consumer && client_check_name(&p->scratch, "consumer", consumer) < 0) return p->scratch.err;
    if (ring_reserve(p) < 0) return EVS_ENOMEM;
    bool idle = p->wpos == p->wbuf.len;
    uint64_t id = p->base_id + p->count;
    msgpack_packer pk;
    p->wbuf.failed = false;
    size_t start = codec_frame_begin(&p->wbuf);
    codec_packer_init(&pk, &p->wbuf);
    msgpack_pack_map(&pk, consumer ? 4 : 3);
    codec_pack_key(&pk, "op");
    codec_pack_cstr(&pk, "append");
    codec_pack_key(&pk, "id");
    msgpack_pack_uint64(&pk, id);
    codec_pack_key(&pk, "events");
    msgpack_pack_array(&pk, (uint32_t)n);
    for (size_t i = 0; i < n; i++)
        codec_pack_event_for_append(&pk, &events[i]);
    if (consumer) {
        codec_pack_key(&pk, "tracking");
        msgpack_pack_map(&pk, 2);
        codec_pack_key(&pk, "consumer");
        codec_pack_cstr(&pk, consumer);
        codec_pack_key(&pk, "position");
        msgpack_pack_uint64(&pk, position);
    }
    if (codec_frame_end(&p->wbuf, start, p->max_frame) < 0)
        return p->wbuf.failed ? EVS_ENOMEM : EVS_EINVAL;
    p->ring[(p->head + p->count) & (p->cap - 1)] =
        (async_req_t){.fn = fn, .privdata = privdata, .nevents = (uint32_t)n};
    p->count++;
    /* Inside handle_read the requests go out together once the replies are handled. */
    if (idle && p->state == ASYNC_CONNECTED && !p->in_handler) want_write(ac, true);
    return 0;
}

EVS_API int evs_async_append(evs_async_t *ac, const evs_event_t *events, size_t n, evs_async_fn *fn,
                             void *privdata) {
    return queue_append(ac, events, n, NULL, 0, fn, privdata);
}

EVS_API int evs_async_append_tracked(evs_async_t *ac, const evs_event_t *events, size_t n,
                                     const char *consumer, uint64_t position, evs_async_fn *fn,
                                     void *privdata) {
    if (!consumer) return EVS_EINVAL;
    return queue_append(ac, events, n, consumer, position, fn, privdata);
}

/* ---------------------------------------------------------------- reading */

/* The request waiting for the reply with id oid, or NULL. */
static async_req_t *find_request(struct evs_async_priv *p, const msgpack_object *oid) {
    if (!oid || oid->type != MSGPACK_OBJECT_POSITIVE_INTEGER || oid->via.u64 < p->base_id ||
        oid->via.u64 - p->base_id >= p->count)
        return NULL;
    async_req_t *req = &p->ring[(p->head + (oid->via.u64 - p->base_id)) & (p->cap - 1)];
    return req->answered ? NULL : req;
}

/* Drops the answered requests at the head of the ring. */
static void ring_pop_answered(struct evs_async_priv *p) {
    while (p->count && p->ring[p->head].answered) {
        p->head = (p->head + 1) & (p->cap - 1);
        p->count--;
        p->base_id++;
    }
}

/* Decodes one reply frame and calls its request's callback. Anything that is not the protocol
 * kills the context. */
static int handle_frame(evs_async_t *ac, const uint8_t *body, size_t len) {
    struct evs_async_priv *p = ac->priv;
    evs_context_t *s = &p->scratch;
    const char *why = NULL;
    if (codec_prescan(body, len, CODEC_MAX_DEPTH, &why) < 0)
        return async_kill(ac, EVS_EPROTOCOL, "bad frame from the server: %s", why);
    if (p->frame.zone) msgpack_zone_clear(p->frame.zone);
    size_t off = 0;
    msgpack_unpack_return ur = msgpack_unpack_next(&p->frame, (const char *)body, len, &off);
    if (ur == MSGPACK_UNPACK_NOMEM_ERROR)
        return async_kill(ac, EVS_ENOMEM, "out of memory unpacking a reply");
    if (ur != MSGPACK_UNPACK_SUCCESS || off != len || p->frame.data.type != MSGPACK_OBJECT_MAP)
        return async_kill(ac, EVS_EPROTOCOL, "a frame from the server is not one map");
    const msgpack_object *obj = &p->frame.data;
    const msgpack_object *oid = codec_map_get(obj, "id"), *ok = codec_map_get(obj, "ok");
    if (!ok || ok->type != MSGPACK_OBJECT_BOOLEAN)
        return async_kill(ac, EVS_EPROTOCOL, "a reply without \"ok\"");
    s->err = 0;
    s->errstr[0] = '\0';
    memset(&s->detail, 0, sizeof s->detail);
    if (!oid && !ok->via.boolean) {
        /* An error the server could not tie to a request: it closes the connection after it. */
        int code = client_take_server_error(s, obj);
        return async_kill(ac, code, "%s", s->errstr);
    }
    async_req_t *req = find_request(p, oid);
    if (!req) return async_kill(ac, EVS_EPROTOCOL, "a reply to a request that was not sent");
    evs_async_reply_t reply = {.errstr = s->errstr, .detail = &s->detail};
    if (req->is_auth) {
        req->answered = true;
        ring_pop_answered(p);
        if (ok->via.boolean) return 0;
        int code = client_take_server_error(s, obj);
        return async_kill(ac, code, "auth: %s", s->errstr);
    }
    if (!ok->via.boolean) {
        reply.err = client_take_server_error(s, obj);
        if (reply.err == EVS_EPROTOCOL) return async_kill(ac, s->err, "%s", s->errstr);
    } else {
        size_t n = req->nevents;
        if (2 * n > p->uints_cap) {
            uint64_t *u = realloc(p->uints, 2 * n * sizeof *u);
            if (!u) return async_kill(ac, EVS_ENOMEM, "out of memory for an append reply");
            p->uints = u;
            p->uints_cap = 2 * n;
        }
        if (client_take_uints(s, obj, "positions", n, p->uints) < 0 ||
            client_take_uints(s, obj, "versions", n, p->uints + n) < 0)
            return async_kill(ac, s->err, "%s", s->errstr);
        reply.n = n;
        reply.positions = p->uints;
        reply.versions = p->uints + n;
    }
    req->answered = true;
    async_req_t taken = *req;
    ring_pop_answered(p);
    if (taken.fn) taken.fn(ac, &reply, taken.privdata);
    return 0;
}

/* Hands every whole frame the reader holds to handle_frame, while the context lives. */
static int handle_frames(evs_async_t *ac) {
    struct evs_async_priv *p = ac->priv;
    while (p->state != ASYNC_DEAD && !p->free_asked) {
        const uint8_t *body;
        size_t len = 0;
        int fs = frame_reader_next(&p->reader, &body, &len);
        if (fs == FRAME_INCOMPLETE) return 0;
        if (fs == FRAME_EMPTY)
            return async_kill(ac, EVS_EPROTOCOL, "the server sent an empty frame");
        if (fs == FRAME_TOO_LARGE)
            return async_kill(ac, EVS_EPROTOCOL,
                              "the server sent a %zu-byte frame, over this client's limit "
                              "(evs_options.max_frame %u): raise it to read this reply",
                              p->reader.declared, p->max_reply);
        handle_frame(ac, body, len);
    }
    return ac->err;
}

/* One read(2) into the reader: into the context's own buffer, lent to the reader without a copy,
 * when the reader sits between frames, else into the reader's room (room for the whole frame
 * when its length is known). Returns the bytes read, 0
 * when the socket had none, or -1 when the context died. */
static ssize_t read_once(evs_async_t *ac, size_t *room_len) {
    struct evs_async_priv *p = ac->priv;
    bool lend = frame_reader_pending(&p->reader) == 0;
    size_t missing = frame_reader_missing(&p->reader);
    uint8_t *room;
    if (lend) {
        if (!p->inbuf && !(p->inbuf = malloc(READ_CHUNK))) {
            async_kill(ac, EVS_ENOMEM, "out of memory for a read buffer");
            return -1;
        }
        room = p->inbuf;
        *room_len = READ_CHUNK;
    } else if (frame_reader_space(&p->reader, missing > READ_CHUNK ? missing : 0, &room, room_len) <
               0) {
        async_kill(ac, EVS_ENOMEM, "out of memory for a read buffer");
        return -1;
    }
    ssize_t n;
    if (p->tls) {
        char err[300];
        n = client_tls_read(p->tls, room, *room_len, err, sizeof err);
        if (n == CLIENT_TLS_ERROR) {
            async_kill(ac, EVS_EIO, "%s", err);
            return -1;
        }
        if (n < 0) errno = EAGAIN;
        if (n == CLIENT_TLS_CLOSED) n = 0;
    } else {
        do
            n = read(ac->fd, room, *room_len);
        while (n < 0 && errno == EINTR);
    }
    if (n == 0) {
        async_kill(ac, EVS_EIO, "the server closed the connection");
        return -1;
    }
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
        async_kill(ac, EVS_EIO, "read: %s", strerror(errno));
        return -1;
    }
    if (!lend) {
        frame_reader_commit(&p->reader, (size_t)n);
        handle_frames(ac);
        return n;
    }
    frame_reader_lend(&p->reader, room, (size_t)n);
    handle_frames(ac);
    if (frame_reader_keep(&p->reader) < 0) {
        async_kill(ac, EVS_ENOMEM, "out of memory for a read buffer");
        return -1;
    }
    return n;
}

EVS_API void evs_async_handle_read(evs_async_t *ac) {
    struct evs_async_priv *p = ac->priv;
    if (p->state == ASYNC_DEAD || p->in_handler) return;
    p->in_handler = true;
    bool up = p->state == ASYNC_CONNECTED || finish_connect(ac);
    for (int i = 0; up && p->state != ASYNC_DEAD && !p->free_asked; i++) {
        /* Bytes a TLS session decrypted wait in it, where the loop cannot see them. */
        bool tls_pending = p->tls && client_tls_pending(p->tls);
        if (i >= READS_PER_EVENT && !tls_pending) break;
        size_t room_len = 0;
        ssize_t n = read_once(ac, &room_len);
        if (n <= 0 || (!p->tls && (size_t)n < room_len)) break; /* drained (or dead) */
    }
    /* The requests the callbacks queued go out together. */
    if (p->state == ASYNC_CONNECTED && p->wpos < p->wbuf.len) flush_output(ac);
    leave_handler(ac);
}

/* ---------------------------------------------------------------- freeing */

static void async_destroy(evs_async_t *ac) {
    struct evs_async_priv *p = ac->priv;
    p->in_handler = true; /* callbacks called from here cannot free again */
    async_kill(ac, EVS_EIO, "the context was freed before the reply came");
    frame_reader_free(&p->reader);
    msgpack_unpacked_destroy(&p->frame);
    codec_buf_free(&p->wbuf);
    free(p->inbuf);
    free(p->uints);
    free(p->ring);
    client_tls_free(p->tls);
    free(p);
    free(ac);
}

EVS_API void evs_async_free(evs_async_t *ac) {
    if (!ac) return;
    struct evs_async_priv *p = ac->priv;
    if (p->in_handler) {
        p->free_asked = true; /* freed when the library is done with the callback */
        return;
    }
    async_destroy(ac);
}
