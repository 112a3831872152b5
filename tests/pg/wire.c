/* wire.c: raw-protocol client and daemon launcher for tests/pg (see wire.h). */
#include "wire.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_FRAME (64u << 20)

int64_t wire_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t wire_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---------------------------------------------------------------- frames */

int wire_connect(wire_t *w, const char *path) {
    memset(w, 0, sizeof *w);
    w->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (w->fd < 0) return -1;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    if (connect(w->fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(w->fd);
        w->fd = -1;
        return -1;
    }
    return 0;
}

void wire_close(wire_t *w) {
    if (w->fd >= 0) close(w->fd);
    w->fd = -1;
    free(w->buf);
    w->buf = NULL;
    w->off = w->len = w->cap = 0;
}

static int write_all(int fd, const void *data, size_t n) {
    const char *p = data;
    while (n) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

int wire_send(wire_t *w, const msgpack_sbuffer *body) {
    uint32_t len = htonl((uint32_t)body->size);
    char *frame = malloc(4 + body->size);
    if (!frame) return -1;
    memcpy(frame, &len, 4);
    memcpy(frame + 4, body->data, body->size);
    int rc = write_all(w->fd, frame, 4 + body->size);
    free(frame);
    return rc;
}

static size_t frame_len(const wire_t *w) {
    uint32_t be;
    memcpy(&be, w->buf + w->off, 4);
    return ntohl(be);
}

bool wire_buffered(const wire_t *w) {
    return w->len - w->off >= 4 && w->len - w->off >= 4 + frame_len(w);
}

int wire_next(wire_t *w, int timeout_ms, msgpack_unpacked *out) {
    const char *body;
    size_t n;
    int rc = wire_next_raw(w, timeout_ms, &body, &n);
    if (rc != 1) return rc;
    msgpack_unpacked_init(out);
    size_t used = 0;
    if (msgpack_unpack_next(out, body, n, &used) != MSGPACK_UNPACK_SUCCESS) {
        msgpack_unpacked_destroy(out);
        return -1;
    }
    return 1;
}

int wire_next_raw(wire_t *w, int timeout_ms, const char **body, size_t *len) {
    int64_t deadline = wire_now_ms() + timeout_ms;
    for (;;) {
        if (w->len - w->off >= 4) {
            size_t n = frame_len(w);
            if (n > MAX_FRAME) return -1;
            if (w->len - w->off >= 4 + n) {
                *body = w->buf + w->off + 4;
                *len = n;
                w->off += 4 + n;
                return 1;
            }
        }
        if (w->off > 0 && w->off == w->len) w->off = w->len = 0;
        if (w->cap - w->len < 65536) {
            if (w->off > 0) {
                memmove(w->buf, w->buf + w->off, w->len - w->off);
                w->len -= w->off;
                w->off = 0;
            }
            if (w->cap - w->len < 65536) {
                size_t cap = w->cap ? w->cap * 2 : 262144;
                char *b = realloc(w->buf, cap);
                if (!b) return -1;
                w->buf = b;
                w->cap = cap;
            }
        }
        int wait = (int)(deadline - wire_now_ms());
        if (wait < 0) wait = 0;
        struct pollfd p = {.fd = w->fd, .events = POLLIN};
        int pr = poll(&p, 1, wait);
        if (pr < 0 && errno == EINTR) continue;
        if (pr < 0) return -1;
        if (pr == 0) return 0;
        ssize_t k = recv(w->fd, w->buf + w->len, w->cap - w->len, 0);
        if (k < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (k <= 0) return -1;
        w->len += (size_t)k;
    }
}

const msgpack_object *wire_get(const msgpack_object *map, const char *key) {
    if (map->type != MSGPACK_OBJECT_MAP) return NULL;
    size_t kl = strlen(key);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == kl &&
            memcmp(k->via.str.ptr, key, kl) == 0)
            return &map->via.map.ptr[i].val;
    }
    return NULL;
}

uint64_t wire_uint(const msgpack_object *o) {
    if (!o) return 0;
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) return o->via.u64;
    return 0;
}

/* ---------------------------------------------------------------- requests */

static void pack_str(msgpack_packer *pk, const char *s) {
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

void wire_req_append(msgpack_sbuffer *sb, uint64_t id, const wire_event_t *evs, size_t n) {
    msgpack_sbuffer_clear(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    pack_str(&pk, "op");
    pack_str(&pk, "append");
    pack_str(&pk, "id");
    msgpack_pack_uint64(&pk, id);
    pack_str(&pk, "events");
    msgpack_pack_array(&pk, n);
    for (size_t i = 0; i < n; i++) {
        msgpack_pack_map(&pk, 3);
        pack_str(&pk, "entity_id");
        pack_str(&pk, evs[i].entity_id);
        pack_str(&pk, "topic");
        pack_str(&pk, evs[i].topic);
        pack_str(&pk, "payload");
        msgpack_pack_bin(&pk, evs[i].payload_len);
        msgpack_pack_bin_body(&pk, evs[i].payload, evs[i].payload_len);
    }
}

void wire_req_subscribe(msgpack_sbuffer *sb, uint64_t id, bool has_after, uint64_t after,
                        const char *const *topics, size_t ntopics, const char *prefix) {
    msgpack_sbuffer_clear(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2 + (has_after ? 1 : 0) + (ntopics ? 1 : 0) + (prefix ? 1 : 0));
    pack_str(&pk, "op");
    pack_str(&pk, "subscribe");
    pack_str(&pk, "id");
    msgpack_pack_uint64(&pk, id);
    if (has_after) {
        pack_str(&pk, "after");
        msgpack_pack_uint64(&pk, after);
    }
    if (ntopics) {
        pack_str(&pk, "topics");
        msgpack_pack_array(&pk, ntopics);
        for (size_t i = 0; i < ntopics; i++) pack_str(&pk, topics[i]);
    }
    if (prefix) {
        pack_str(&pk, "entity_prefix");
        pack_str(&pk, prefix);
    }
}

void wire_req_ping(msgpack_sbuffer *sb, uint64_t id) {
    msgpack_sbuffer_clear(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    pack_str(&pk, "op");
    pack_str(&pk, "ping");
    pack_str(&pk, "id");
    msgpack_pack_uint64(&pk, id);
}

/* ---------------------------------------------------------------- daemons */

const char *wire_evstored_bin(void) {
    static char path[PATH_MAX];
    const char *env = getenv("EVSTORED_BIN");
    if (env && *env) return env;
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return "build/san/bin/evstored";
    self[n] = '\0';
    /* BUILD/tests/pg -> BUILD/bin/evstored */
    char *dir = dirname(dirname(self));
    snprintf(path, sizeof path, "%s/bin/evstored", dir);
    return path;
}

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

/* True when the daemon serves a read: it is ready (what READY=1 means; on PostgreSQL the live
 * feed has started by then, so a subscription without "after" starts from "now"). */
static int ping(const char *sock) {
    wire_t w;
    if (wire_connect(&w, sock) != 0) return -1;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    pack_str(&pk, "op");
    pack_str(&pk, "read-all");
    pack_str(&pk, "id");
    msgpack_pack_uint64(&pk, 1);
    pack_str(&pk, "limit");
    msgpack_pack_uint64(&pk, 1);
    int rc = wire_send(&w, &sb);
    msgpack_sbuffer_destroy(&sb);
    msgpack_unpacked u;
    if (rc == 0 && wire_next(&w, 2000, &u) == 1) {
        const msgpack_object *ok = wire_get(&u.data, "ok");
        rc = ok && ok->type == MSGPACK_OBJECT_BOOLEAN && ok->via.boolean ? 0 : -1;
        msgpack_unpacked_destroy(&u);
    } else {
        rc = -1;
    }
    wire_close(&w);
    return rc;
}

int wire_daemon_start(wire_daemon_t *d, const char *store_url, const char *const *extra) {
    memset(d, 0, sizeof *d);
    snprintf(d->dir, sizeof d->dir, "/tmp/evs-wire.XXXXXX");
    if (!mkdtemp(d->dir)) return -1;
    snprintf(d->sock, sizeof d->sock, "%s/evstored.sock", d->dir);
    const char *bin = wire_evstored_bin();
    const char *level = getenv("EVSTORE_TEST_LOG_LEVEL");
    for (int attempt = 0; attempt < 5; attempt++) {
        char listen[64];
        snprintf(listen, sizeof listen, "127.0.0.1:%d", free_port());
        const char *argv[64];
        int n = 0;
        argv[n++] = bin;
        argv[n++] = "--listen";
        argv[n++] = listen;
        argv[n++] = "--unix";
        argv[n++] = d->sock;
        argv[n++] = "--store";
        argv[n++] = store_url;
        argv[n++] = "--log-level";
        argv[n++] = level && *level ? level : "warn";
        for (int i = 0; extra && extra[i] && n < 62; i++) argv[n++] = extra[i];
        argv[n] = NULL;
        pid_t parent = getpid();
        pid_t pid = fork();
        if (pid < 0) return -1;
        if (pid == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() != parent) _exit(126);
            sigset_t none;
            sigemptyset(&none);
            sigprocmask(SIG_SETMASK, &none, NULL);
            signal(SIGTERM, SIG_DFL);
            signal(SIGINT, SIG_DFL);
            signal(SIGPIPE, SIG_DFL);
            execv(bin, (char *const *)argv);
            fprintf(stderr, "wire: cannot run %s: %s\n", bin, strerror(errno));
            _exit(127);
        }
        d->pid = pid;
        int64_t deadline = wire_now_ms() + 20000;
        int status = 0;
        while (wire_now_ms() < deadline) {
            if (waitpid(pid, &status, WNOHANG) == pid) {
                d->pid = 0;
                break;
            }
            if (ping(d->sock) == 0) return 0;
            sleep_ms(20);
        }
        if (d->pid) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            d->pid = 0;
            return -1;
        }
        if (WIFEXITED(status) && WEXITSTATUS(status) == 127) return -1;
        /* It exited before answering: most likely the port was taken; try another. */
    }
    return -1;
}

int wire_daemon_stop(wire_daemon_t *d) {
    int rc = -1;
    if (d->pid > 0) {
        pid_t pid = d->pid;
        d->pid = 0;
        int status = 0;
        kill(pid, SIGTERM);
        int64_t deadline = wire_now_ms() + 20000;
        bool exited = false;
        while (wire_now_ms() < deadline) {
            if (waitpid(pid, &status, WNOHANG) == pid) {
                exited = true;
                break;
            }
            sleep_ms(10);
        }
        if (!exited) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
        } else if (WIFEXITED(status)) {
            rc = WEXITSTATUS(status);
        }
    }
    if (d->sock[0]) unlink(d->sock);
    if (d->dir[0]) rmdir(d->dir);
    d->sock[0] = d->dir[0] = '\0';
    return rc;
}
