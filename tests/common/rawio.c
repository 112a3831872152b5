/* rawio.c: the tests' raw-protocol client (see rawio.h). */
#include "rawio.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../../proto/codec.h"

/* Frames larger than this are treated as a broken stream: no test expects one. */
#define RAW_MAX_FRAME (64u * 1024 * 1024)

/* ---------------------------------------------------------------- requests */

void rq_init(rq_t *r) {
    msgpack_sbuffer_init(&r->sb);
    msgpack_packer_init(&r->pk, &r->sb, msgpack_sbuffer_write);
}

void rq_free(rq_t *r) {
    msgpack_sbuffer_destroy(&r->sb);
}

void pk_strn(msgpack_packer *pk, const char *s, size_t n) {
    msgpack_pack_str(pk, n);
    if (n) msgpack_pack_str_body(pk, s, n);
}

void pk_str(msgpack_packer *pk, const char *s) {
    pk_strn(pk, s, strlen(s));
}

void pk_bin(msgpack_packer *pk, const void *p, size_t n) {
    msgpack_pack_bin(pk, n);
    if (n) msgpack_pack_bin_body(pk, p, n);
}

/* Packs the head {"op": op, "id": id, ...} of a map of 2 + nmore keys. */
static void pack_head(msgpack_packer *pk, const char *op, uint64_t id, uint32_t nmore) {
    msgpack_pack_map(pk, 2 + nmore);
    pk_str(pk, "op");
    pk_str(pk, op);
    pk_str(pk, "id");
    msgpack_pack_uint64(pk, id);
}

void rq_begin(rq_t *r, const char *op, uint64_t id, uint32_t nmore) {
    rq_init(r);
    pack_head(&r->pk, op, id, nmore);
}

size_t rq_frame(const rq_t *r, uint8_t *out, size_t cap) {
    if (cap < 4 || r->sb.size > cap - 4) return 0;
    out[0] = (uint8_t)(r->sb.size >> 24);
    out[1] = (uint8_t)(r->sb.size >> 16);
    out[2] = (uint8_t)(r->sb.size >> 8);
    out[3] = (uint8_t)r->sb.size;
    memcpy(out + 4, r->sb.data, r->sb.size);
    return r->sb.size + 4;
}

void rq_append(msgpack_sbuffer *sb, uint64_t id, const rq_event_t *evs, size_t n) {
    msgpack_sbuffer_clear(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    pack_head(&pk, "append", id, 1);
    pk_str(&pk, "events");
    msgpack_pack_array(&pk, n);
    for (size_t i = 0; i < n; i++) {
        msgpack_pack_map(&pk, 3);
        pk_str(&pk, "entity_id");
        pk_str(&pk, evs[i].entity_id);
        pk_str(&pk, "topic");
        pk_str(&pk, evs[i].topic);
        pk_str(&pk, "payload");
        pk_bin(&pk, evs[i].payload, evs[i].payload_len);
    }
}

void rq_subscribe(msgpack_sbuffer *sb, uint64_t id, bool has_after, uint64_t after,
                  const char *const *topics, size_t ntopics, const char *prefix) {
    msgpack_sbuffer_clear(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    pack_head(&pk, "subscribe", id, (has_after ? 1 : 0) + (ntopics ? 1 : 0) + (prefix ? 1 : 0));
    if (has_after) {
        pk_str(&pk, "after");
        msgpack_pack_uint64(&pk, after);
    }
    if (ntopics) {
        pk_str(&pk, "topics");
        msgpack_pack_array(&pk, ntopics);
        for (size_t i = 0; i < ntopics; i++)
            pk_str(&pk, topics[i]);
    }
    if (prefix) {
        pk_str(&pk, "entity_prefix");
        pk_str(&pk, prefix);
    }
}

/* ---------------------------------------------------------------- sockets */

static void set_nodelay(int fd) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

int raw_connect_tcp(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    set_nodelay(fd);
    return fd;
}

int raw_connect_unix(const char *path) {
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int raw_connect(const char *addr) {
    if (strchr(addr, '/')) return raw_connect_unix(addr);
    const char *colon = strrchr(addr, ':');
    if (!colon || colon == addr) return -1;
    char host[256];
    snprintf(host, sizeof host, "%.*s", (int)(colon - addr), addr);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(host, colon + 1, &hints, &res) != 0) return -1;
    int fd = -1;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd >= 0) set_nodelay(fd);
    return fd;
}

int raw_send(int fd, const void *buf, size_t len) {
    const char *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                struct pollfd pfd = {.fd = fd, .events = POLLOUT};
                poll(&pfd, 1, 1000);
                continue;
            }
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int raw_send_frame(int fd, const void *body, size_t len) {
    uint8_t *buf = malloc(FRAME_HEADER + len);
    if (!buf) return -1;
    frame_put_header(buf, (uint32_t)len);
    if (len) memcpy(buf + FRAME_HEADER, body, len);
    int rc = raw_send(fd, buf, FRAME_HEADER + len);
    free(buf);
    return rc;
}

int raw_send_rq(int fd, const rq_t *r) {
    return raw_send_sb(fd, &r->sb);
}

int raw_send_sb(int fd, const msgpack_sbuffer *sb) {
    return raw_send_frame(fd, sb->data, sb->size);
}

/* ---------------------------------------------------------------- reading frames */

/* Reads from fd into rd until rd holds a whole frame, and takes it: 0 with *body and *len set,
 * RAW_EOF, RAW_TIMEOUT (no frame began before deadline, a monotonic time in ms, or a begun one
 * did not end within RAW_FRAME_GRACE_MS after it) or RAW_BAD. With exact, each read asks for no
 * more than the frame misses, so that bytes after it stay in the socket. */
static int read_frame(int fd, frame_reader_t *rd, bool exact, int64_t deadline,
                      const uint8_t **body, size_t *len) {
    for (;;) {
        int st = frame_reader_next(rd, body, len);
        if (st == FRAME_OK) return 0;
        if (st != FRAME_INCOMPLETE) return RAW_BAD;
        size_t want = frame_reader_missing(rd);
        uint8_t *room;
        size_t room_len;
        if (frame_reader_space(rd, want, &room, &room_len) != 0) return RAW_BAD;
        int64_t until = frame_reader_pending(rd) > 0 ? deadline + RAW_FRAME_GRACE_MS : deadline;
        int64_t left = until - now_ms();
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int pr = poll(&pfd, 1, left > 0 ? (int)left : 0);
        if (pr < 0 && errno == EINTR) continue;
        if (pr < 0) return RAW_EOF;
        if (pr == 0) return RAW_TIMEOUT;
        ssize_t got = recv(fd, room, exact ? want : room_len, 0);
        if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (got <= 0) return RAW_EOF;
        frame_reader_commit(rd, (size_t)got);
    }
}

/* Copies the frame body into r and unpacks it: 0 or RAW_BAD. */
static int reply_take(reply_t *r, const uint8_t *body, size_t len) {
    r->buf = malloc(len);
    if (!r->buf) return RAW_BAD;
    memcpy(r->buf, body, len);
    r->len = len;
    size_t off = 0;
    if (msgpack_unpack_next(&r->u, (const char *)r->buf, len, &off) != MSGPACK_UNPACK_SUCCESS ||
        off != len || r->u.data.type != MSGPACK_OBJECT_MAP)
        return RAW_BAD;
    return 0;
}

int raw_recv(int fd, int timeout_ms, reply_t *r) {
    memset(r, 0, sizeof *r);
    msgpack_unpacked_init(&r->u);
    frame_reader_t rd;
    frame_reader_init(&rd, RAW_MAX_FRAME);
    const uint8_t *body;
    size_t len;
    int rc = read_frame(fd, &rd, true, now_ms() + timeout_ms, &body, &len);
    if (rc == 0) rc = reply_take(r, body, len);
    frame_reader_free(&rd);
    if (rc) reply_free(r);
    return rc;
}

void reply_free(reply_t *r) {
    msgpack_unpacked_destroy(&r->u);
    free(r->buf);
    memset(r, 0, sizeof *r);
}

/* ---------------------------------------------------------------- reading replies */

bool obj_is_str(const msgpack_object *o, const char *s) {
    size_t n = strlen(s);
    return o && o->type == MSGPACK_OBJECT_STR && o->via.str.size == n &&
           memcmp(o->via.str.ptr, s, n) == 0;
}

const msgpack_object *obj_get(const msgpack_object *obj, const char *key) {
    return codec_map_get(obj, key);
}

uint64_t obj_uint(const msgpack_object *o) {
    return o && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? o->via.u64 : 0;
}

const msgpack_object *reply_get(const reply_t *r, const char *key) {
    return r->buf ? obj_get(&r->u.data, key) : NULL;
}

bool reply_id(const reply_t *r, uint64_t *id) {
    const msgpack_object *o = reply_get(r, "id");
    if (!o || o->type != MSGPACK_OBJECT_POSITIVE_INTEGER) return false;
    *id = o->via.u64;
    return true;
}

bool reply_ok(const reply_t *r) {
    const msgpack_object *o = reply_get(r, "ok");
    return o && o->type == MSGPACK_OBJECT_BOOLEAN && o->via.boolean;
}

const char *reply_code(const reply_t *r) {
    static _Thread_local char code[64]; /* per thread: the race tests call it from several */
    code[0] = '\0';
    const msgpack_object *ok = reply_get(r, "ok");
    if (!ok || ok->type != MSGPACK_OBJECT_BOOLEAN || ok->via.boolean) return code;
    const msgpack_object *c = obj_get(reply_get(r, "error"), "code");
    if (c && c->type == MSGPACK_OBJECT_STR && c->via.str.size < sizeof code) {
        memcpy(code, c->via.str.ptr, c->via.str.size);
        code[c->via.str.size] = '\0';
    }
    return code;
}

int raw_wait_closed(int fd, int timeout_ms) {
    int64_t deadline = now_ms() + timeout_ms;
    char buf[4096];
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left <= 0) return -1;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int pr = poll(&pfd, 1, (int)left);
        if (pr < 0 && errno == EINTR) continue;
        if (pr <= 0) return -1;
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n == 0) return 0;
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n < 0) return 0; /* reset: closed too */
    }
}

int raw_ping(int fd, uint64_t id, int timeout_ms) {
    rq_t r;
    rq_begin(&r, "ping", id, 0);
    int rc = raw_send_rq(fd, &r);
    rq_free(&r);
    if (rc) return -1;
    reply_t rep;
    rc = raw_recv(fd, timeout_ms, &rep);
    uint64_t got = 0;
    if (rc == 0 && !(reply_ok(&rep) && reply_id(&rep, &got) && got == id)) rc = -1;
    reply_free(&rep);
    return rc ? -1 : 0;
}

/* ---------------------------------------------------------------- buffered connections */

int raw_conn_open(raw_conn_t *c, const char *addr) {
    frame_reader_init(&c->rd, RAW_MAX_FRAME);
    c->fd = raw_connect(addr);
    return c->fd < 0 ? -1 : 0;
}

void raw_conn_close(raw_conn_t *c) {
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    frame_reader_free(&c->rd);
}

int raw_conn_next(raw_conn_t *c, int timeout_ms, const uint8_t **body, size_t *len) {
    return read_frame(c->fd, &c->rd, false, now_ms() + timeout_ms, body, len);
}

int raw_conn_recv(raw_conn_t *c, int timeout_ms, reply_t *r) {
    memset(r, 0, sizeof *r);
    msgpack_unpacked_init(&r->u);
    const uint8_t *body;
    size_t len;
    int rc = raw_conn_next(c, timeout_ms, &body, &len);
    if (rc == 0) rc = reply_take(r, body, len);
    if (rc) reply_free(r);
    return rc;
}

bool raw_conn_buffered(const raw_conn_t *c) {
    return frame_reader_pending(&c->rd) > 0 && frame_reader_missing(&c->rd) == 0;
}

/* ---------------------------------------------------------------- names */

/* tprefix and tname are called from the race tests' threads too. */
static pthread_mutex_t names_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *tprefix_locked(void) {
    static char prefix[32];
    if (!prefix[0]) {
        uint8_t r[6] = {0};
        if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
            int64_t t = now_ms();
            memcpy(r, &t, sizeof r);
        }
        snprintf(prefix, sizeof prefix, "r%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2], r[3], r[4],
                 r[5]);
    }
    return prefix;
}

const char *tprefix(void) {
    pthread_mutex_lock(&names_lock);
    const char *p = tprefix_locked();
    pthread_mutex_unlock(&names_lock);
    return p;
}

const char *tname(const char *suffix) {
    /* Kept in a static table, so that they stay reachable (no leak reports), and looked up, so
     * that asking again for the same name costs nothing. */
    static char *names[1024];
    static size_t n;
    pthread_mutex_lock(&names_lock);
    const char *prefix = tprefix_locked();
    size_t plen = strlen(prefix) + 1;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(names[i] + plen, suffix) == 0) {
            pthread_mutex_unlock(&names_lock);
            return names[i];
        }
    }
    char *s = NULL;
    if (asprintf(&s, "%s-%s", prefix, suffix) < 0) abort();
    if (n < sizeof names / sizeof names[0]) names[n++] = s;
    pthread_mutex_unlock(&names_lock);
    return s;
}
