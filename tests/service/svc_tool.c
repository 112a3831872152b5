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

#include "../common/rawio.h"

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

/* How long a command waits for the daemon's next frame before it gives up. */
#define REPLY_TIMEOUT_MS 30000

static int raw_op(const char *addr, const char *op) {
    int fd = raw_connect(addr);
    if (fd < 0) {
        fprintf(stderr, "svc-tool: cannot connect to %s\n", addr);
        return 2;
    }
    rq_t r;
    rq_begin(&r, op, 1, 0);
    int rc = raw_send_rq(fd, &r);
    rq_free(&r);
    reply_t rep;
    if (rc != 0 || raw_recv(fd, REPLY_TIMEOUT_MS, &rep) != 0) {
        fprintf(stderr, "svc-tool: no reply\n");
        close(fd);
        return 2;
    }
    msgpack_object_print(stdout, rep.u.data);
    printf("\n");
    rc = reply_ok(&rep) ? 0 : 1;
    reply_free(&rep);
    close(fd);
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
    int fd = raw_connect(addr);
    if (fd < 0) return 2;
    rq_t r;
    rq_begin(&r, "subscribe", 1, 0);
    int rc = raw_send_rq(fd, &r);
    rq_free(&r);
    if (rc != 0) return 2;
    reply_t rep;
    while (raw_recv(fd, REPLY_TIMEOUT_MS, &rep) == 0) {
        msgpack_object_print(stdout, rep.u.data);
        printf("\n");
        fflush(stdout);
        reply_free(&rep);
    }
    printf("eof\n");
    close(fd);
    return 0;
}

/* ---------------------------------------------------------------- stall */

static int stall(const char *addr) {
    int fd = raw_connect(addr);
    if (fd < 0) return 2;
    static uint8_t payload[16384];
    payload[0] = 0xc6; /* bin 32 header: an opaque payload is fine for the store */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    rq_event_t ev = {"stall", "stall", payload, sizeof payload};
    for (uint64_t id = 1; id <= 64; id++) {
        rq_append(&sb, id, &ev, 1);
        reply_t rep = {0};
        if (raw_send_sb(fd, &sb) != 0 || raw_recv(fd, REPLY_TIMEOUT_MS, &rep) != 0 ||
            !reply_ok(&rep)) {
            fprintf(stderr, "svc-tool: append failed: %s\n", reply_code(&rep));
            return 2;
        }
        reply_free(&rep);
    }
    for (uint64_t id = 100; id < 400; id++) {
        rq_t r;
        rq_begin(&r, "read-all", id, 0);
        int rc = raw_send_rq(fd, &r);
        rq_free(&r);
        if (rc != 0) break;
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
