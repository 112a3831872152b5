/* rawio.c: the protocol over a raw socket (see rawio.h). */
#include "rawio.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Replies larger than this are treated as a broken stream: no test expects one. */
#define RAW_MAX_REPLY (64u * 1024 * 1024)

int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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

void rq_begin(rq_t *r, const char *op, uint64_t id, uint32_t nmore) {
    rq_init(r);
    msgpack_pack_map(&r->pk, 2 + nmore);
    pk_str(&r->pk, "op");
    pk_str(&r->pk, op);
    pk_str(&r->pk, "id");
    msgpack_pack_uint64(&r->pk, id);
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
    uint8_t h[4] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8), (uint8_t)len};
    uint8_t *buf = malloc(4 + len);
    if (!buf) return -1;
    memcpy(buf, h, 4);
    if (len) memcpy(buf + 4, body, len);
    int rc = raw_send(fd, buf, 4 + len);
    free(buf);
    return rc;
}

int raw_send_rq(int fd, const rq_t *r) {
    return raw_send_frame(fd, r->sb.data, r->sb.size);
}

/* Reads exactly n bytes before deadline (monotonic ms): 0, RAW_EOF or RAW_TIMEOUT. */
static int read_exact(int fd, uint8_t *p, size_t n, int64_t deadline) {
    while (n > 0) {
        int64_t left = deadline - now_ms();
        if (left <= 0) return RAW_TIMEOUT;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int pr = poll(&pfd, 1, (int)left);
        if (pr < 0 && errno == EINTR) continue;
        if (pr < 0) return RAW_EOF;
        if (pr == 0) return RAW_TIMEOUT;
        ssize_t got = recv(fd, p, n, 0);
        if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (got <= 0) return RAW_EOF;
        p += got;
        n -= (size_t)got;
    }
    return 0;
}

int raw_recv(int fd, int timeout_ms, reply_t *r) {
    memset(r, 0, sizeof *r);
    msgpack_unpacked_init(&r->u);
    int64_t deadline = now_ms() + timeout_ms;
    uint8_t h[4];
    int rc = read_exact(fd, h, 4, deadline);
    if (rc) return rc;
    size_t len = (size_t)h[0] << 24 | (size_t)h[1] << 16 | (size_t)h[2] << 8 | h[3];
    if (len == 0 || len > RAW_MAX_REPLY) return RAW_BAD;
    r->buf = malloc(len);
    if (!r->buf) return RAW_BAD;
    r->len = len;
    rc = read_exact(fd, r->buf, len, deadline);
    if (rc) return rc;
    size_t off = 0;
    if (msgpack_unpack_next(&r->u, (const char *)r->buf, len, &off) != MSGPACK_UNPACK_SUCCESS ||
        off != len || r->u.data.type != MSGPACK_OBJECT_MAP)
        return RAW_BAD;
    return 0;
}

void reply_free(reply_t *r) {
    msgpack_unpacked_destroy(&r->u);
    free(r->buf);
    memset(r, 0, sizeof *r);
}

bool obj_is_str(const msgpack_object *o, const char *s) {
    size_t n = strlen(s);
    return o && o->type == MSGPACK_OBJECT_STR && o->via.str.size == n &&
           memcmp(o->via.str.ptr, s, n) == 0;
}

const msgpack_object *obj_get(const msgpack_object *obj, const char *key) {
    if (!obj || obj->type != MSGPACK_OBJECT_MAP) return NULL;
    for (uint32_t i = 0; i < obj->via.map.size; i++)
        if (obj_is_str(&obj->via.map.ptr[i].key, key)) return &obj->via.map.ptr[i].val;
    return NULL;
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
