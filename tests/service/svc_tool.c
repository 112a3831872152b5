/* svc_tool.c: helpers for the service test scripts in tests/service: one binary, three commands.
 *
 *   svc-tool notify-listen SOCKET
 *       Binds a Unix datagram socket at SOCKET (a path, or "@name" for an abstract one), prints
 *       "listening" once bound, then prints each datagram received on one line, its newlines
 *       turned into spaces, until SIGTERM. The tests point NOTIFY_SOCKET at it.
 *
 *   svc-tool op ADDR OP
 *       Sends {"id": 1, "op": OP} and prints the reply map as JSON-ish text
 *       (msgpack_object_print). Exit 0 when the reply is ok.
 *
 *   svc-tool burst ADDR WRITERS FIFO_READY
 *       Subscribes to every event, then starts WRITERS child processes that append one event
 *       at a time as fast as they can until the connection fails, each reporting the position
 *       of every append it got an ok reply for. Writes "go" to FIFO_READY (a file) after the
 *       first acknowledged appends, so the test knows when to send SIGTERM. When the
 *       subscription ends (the daemon went away), checks that every acknowledged append was
 *       pushed to the subscriber, i.e. committed before the daemon exited. Prints
 *       "acked N seen M missing K" and exits 0 when K is 0 and N > 0. The acknowledged
 *       positions are left in FIFO_READY.acks, one per line.
 *
 *   svc-tool watch ADDR
 *       Sends a raw subscribe request and prints every frame received (one per line) until the
 *       daemon closes the connection; shows pushes the library would skip, like "closing".
 *
 *   svc-tool stall ADDR
 *       Appends 64 events of 16 KiB, then sends read-all requests for them without ever reading
 *       the replies, so the daemon holds output it cannot send; prints "stalled" and sleeps
 *       until killed. Used to make a drain wait. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <msgpack.h>

#include <evstore.h>

#include "../../proto/frame.h"

/* ---------------------------------------------------------------- notify-listen */

static volatile sig_atomic_t stop;
static void on_term(int sig) {
    (void)sig;
    stop = 1;
}

static int notify_listen(const char *path) {
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t n = strlen(path);
    if (fd < 0 || n >= sizeof sa.sun_path) return perror("socket"), 1;
    memcpy(sa.sun_path, path, n);
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    if (path[0] == '@')
        sa.sun_path[0] = '\0';
    else
        len++, unlink(path);
    if (bind(fd, (struct sockaddr *)&sa, len) != 0) return perror("bind"), 1;
    struct sigaction act = {.sa_handler = on_term};
    sigaction(SIGTERM, &act, NULL);
    sigaction(SIGINT, &act, NULL);
    printf("listening\n");
    fflush(stdout);
    char buf[8192];
    while (!stop) {
        ssize_t r = recv(fd, buf, sizeof buf - 1, 0);
        if (r < 0) {
            if (errno == EINTR) continue;
            perror("recv");
            return 1;
        }
        buf[r] = '\0';
        for (ssize_t i = 0; i < r; i++)
            if (buf[i] == '\n') buf[i] = ' ';
        printf("%s\n", buf);
        fflush(stdout);
    }
    if (path[0] != '@') unlink(path);
    return 0;
}

/* ---------------------------------------------------------------- op */

/* The library's socket is non-blocking: wait for it when it would block. */
static int wait_fd(int fd, short events) {
    struct pollfd p = {.fd = fd, .events = events};
    return poll(&p, 1, 30000) == 1 ? 0 : -1;
}

static int write_all(int fd, const void *p, size_t n) {
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && errno == EAGAIN) {
            if (wait_fd(fd, POLLOUT)) return -1;
            continue;
        }
        if (w <= 0) return -1;
        p = (const char *)p + w;
        n -= (size_t)w;
    }
    return 0;
}

static int read_all(int fd, void *p, size_t n) {
    while (n) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && errno == EAGAIN) {
            if (wait_fd(fd, POLLIN)) return -1;
            continue;
        }
        if (r <= 0) return -1;
        p = (char *)p + r;
        n -= (size_t)r;
    }
    return 0;
}

static int raw_op(const char *addr, const char *op) {
    evs_context_t *c = evs_connect(addr);
    if (!c || evs_err(c)) {
        fprintf(stderr, "svc-tool: connect: %s\n", evs_errstr(c));
        evs_free(c);
        return 2;
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str_with_body(&pk, "id", 2);
    msgpack_pack_uint64(&pk, 1);
    msgpack_pack_str_with_body(&pk, "op", 2);
    msgpack_pack_str_with_body(&pk, op, strlen(op));
    uint8_t hdr[FRAME_HEADER];
    frame_put_header(hdr, (uint32_t)sb.size);
    int rc = 2;
    uint32_t len;
    if (write_all(c->fd, hdr, sizeof hdr) || write_all(c->fd, sb.data, sb.size) ||
        read_all(c->fd, hdr, sizeof hdr)) {
        fprintf(stderr, "svc-tool: I/O error\n");
        goto out;
    }
    len = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
    char *body = malloc(len);
    if (!body || read_all(c->fd, body, len)) {
        free(body);
        fprintf(stderr, "svc-tool: short reply\n");
        goto out;
    }
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    if (msgpack_unpack_next(&u, body, len, NULL) == MSGPACK_UNPACK_SUCCESS) {
        msgpack_object_print(stdout, u.data);
        printf("\n");
        rc = 1;
        const msgpack_object *o = &u.data;
        if (o->type == MSGPACK_OBJECT_MAP)
            for (uint32_t i = 0; i < o->via.map.size; i++) {
                msgpack_object_kv *kv = &o->via.map.ptr[i];
                if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == 2 &&
                    memcmp(kv->key.via.str.ptr, "ok", 2) == 0 &&
                    kv->val.type == MSGPACK_OBJECT_BOOLEAN && kv->val.via.boolean)
                    rc = 0;
            }
    }
    msgpack_unpacked_destroy(&u);
    free(body);
out:
    msgpack_sbuffer_destroy(&sb);
    evs_free(c);
    return rc;
}

/* ---------------------------------------------------------------- burst */

/* One writer: appends until the connection fails, writing each acknowledged position to out. */
static int writer(const char *addr, int k, FILE *out) {
    evs_context_t *c = evs_connect(addr);
    if (!c || evs_err(c)) return 1;
    char entity[64];
    snprintf(entity, sizeof entity, "burst-%d", k);
    uint8_t payload[] = {0x81, 0xa1, 'k', 0x01}; /* {"k": 1} */
    for (;;) {
        evs_event_t ev = {.entity_id = entity,
                          .topic = "burst",
                          .payload = payload,
                          .payload_len = sizeof payload};
        uint64_t pos;
        if (evs_append(c, &ev, 1, &pos, NULL) < 0) break;
        fprintf(out, "%llu\n", (unsigned long long)pos);
        fflush(out);
    }
    evs_free(c);
    return 0;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int burst(const char *addr, int writers, const char *ready_file) {
    evs_context_t *sc = evs_connect(addr);
    if (!sc || evs_err(sc)) {
        fprintf(stderr, "svc-tool: connect: %s\n", evs_errstr(sc));
        return 2;
    }
    evs_sub_options_t so = {.has_after = true, .after = 0};
    uint64_t sub;
    if (evs_subscribe(sc, &so, &sub) < 0) {
        fprintf(stderr, "svc-tool: subscribe: %s\n", evs_errstr(sc));
        return 2;
    }
    /* Acknowledged positions, kept in READY_FILE.acks for the test to check against the store. */
    char path[4096];
    snprintf(path, sizeof path, "%s.acks", ready_file);
    FILE *acks = fopen(path, "w+");
    if (!acks) return perror(path), 2;
    fcntl(fileno(acks), F_SETFL, O_APPEND); /* the writers share it */
    pid_t *pids = calloc((size_t)writers, sizeof *pids);
    for (int k = 0; k < writers; k++) {
        pids[k] = fork();
        if (pids[k] == 0) {
            /* Each child appends to the shared file; lines are short and written whole. */
            setvbuf(acks, NULL, _IOLBF, 0);
            _exit(writer(addr, k, acks));
        }
    }
    size_t cap = 1 << 16, nseen = 0;
    uint64_t *seen = malloc(cap * sizeof *seen);
    bool told = false;
    for (;;) {
        evs_push_t *p;
        if (evs_sub_next(sc, sub, 1000, &p) < 0) break; /* the daemon closed the connection */
        if (!p) continue;
        for (size_t i = 0; i < p->n; i++) {
            if (nseen == cap) seen = realloc(seen, (cap *= 2) * sizeof *seen);
            seen[nseen++] = p->events[i].position;
        }
        evs_push_free(p);
        if (!told && nseen >= 200) {
            told = true;
            FILE *f = fopen(ready_file, "w");
            if (f) fputs("go\n", f), fclose(f);
        }
    }
    for (int k = 0; k < writers; k++)
        waitpid(pids[k], NULL, 0);
    qsort(seen, nseen, sizeof *seen, cmp_u64);
    rewind(acks);
    unsigned long long pos;
    size_t nacked = 0, missing = 0;
    while (fscanf(acks, "%llu", &pos) == 1) {
        nacked++;
        uint64_t key = pos;
        if (!bsearch(&key, seen, nseen, sizeof *seen, cmp_u64)) {
            if (missing < 5) fprintf(stderr, "acknowledged position %llu never pushed\n", pos);
            missing++;
        }
    }
    printf("acked %zu seen %zu missing %zu\n", nacked, nseen, missing);
    fclose(acks);
    free(seen);
    free(pids);
    evs_free(sc);
    return missing == 0 && nacked > 0 ? 0 : 1;
}

/* ---------------------------------------------------------------- watch */

static int watch(const char *addr) {
    evs_context_t *c = evs_connect(addr);
    if (!c || evs_err(c)) return 2;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str_with_body(&pk, "id", 2);
    msgpack_pack_uint64(&pk, 1);
    msgpack_pack_str_with_body(&pk, "op", 2);
    msgpack_pack_str_with_body(&pk, "subscribe", 9);
    uint8_t hdr[FRAME_HEADER];
    frame_put_header(hdr, (uint32_t)sb.size);
    if (write_all(c->fd, hdr, sizeof hdr) || write_all(c->fd, sb.data, sb.size)) return 2;
    msgpack_sbuffer_destroy(&sb);
    while (read_all(c->fd, hdr, sizeof hdr) == 0) {
        uint32_t len =
            (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
        char *body = malloc(len);
        if (!body || read_all(c->fd, body, len)) {
            free(body);
            break;
        }
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        if (msgpack_unpack_next(&u, body, len, NULL) == MSGPACK_UNPACK_SUCCESS) {
            msgpack_object_print(stdout, u.data);
            printf("\n");
            fflush(stdout);
        }
        msgpack_unpacked_destroy(&u);
        free(body);
    }
    printf("eof\n");
    evs_free(c);
    return 0;
}

/* ---------------------------------------------------------------- stall */

static int stall(const char *addr) {
    evs_context_t *c = evs_connect(addr);
    if (!c || evs_err(c)) return 2;
    static uint8_t payload[16384];
    payload[0] = 0xc6; /* bin 32 header: an opaque payload is fine for the store */
    for (int i = 0; i < 64; i++) {
        evs_event_t ev = {.entity_id = "stall",
                          .topic = "stall",
                          .payload = payload,
                          .payload_len = sizeof payload};
        if (evs_append(c, &ev, 1, NULL, NULL) < 0) {
            fprintf(stderr, "svc-tool: append: %s\n", evs_errstr(c));
            return 2;
        }
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    for (uint64_t id = 100; id < 400; id++) {
        uint8_t hdr[FRAME_HEADER];
        msgpack_sbuffer_clear(&sb);
        msgpack_pack_map(&pk, 2);
        msgpack_pack_str_with_body(&pk, "id", 2);
        msgpack_pack_uint64(&pk, id);
        msgpack_pack_str_with_body(&pk, "op", 2);
        msgpack_pack_str_with_body(&pk, "read-all", 8);
        frame_put_header(hdr, (uint32_t)sb.size);
        if (write_all(c->fd, hdr, sizeof hdr) || write_all(c->fd, sb.data, sb.size)) break;
    }
    msgpack_sbuffer_destroy(&sb);
    printf("stalled\n");
    fflush(stdout);
    for (;;)
        pause();
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "notify-listen") == 0) return notify_listen(argv[2]);
    if (argc == 4 && strcmp(argv[1], "op") == 0) return raw_op(argv[2], argv[3]);
    if (argc == 3 && strcmp(argv[1], "stall") == 0) return stall(argv[2]);
    if (argc == 3 && strcmp(argv[1], "watch") == 0) return watch(argv[2]);
    if (argc == 5 && strcmp(argv[1], "burst") == 0) return burst(argv[2], atoi(argv[3]), argv[4]);
    fprintf(stderr, "usage: svc-tool notify-listen SOCKET | op ADDR OP | "
                    "burst ADDR WRITERS READY_FILE | stall ADDR | watch ADDR\n");
    return 2;
}
