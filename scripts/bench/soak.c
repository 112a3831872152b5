/* soak.c: the soak benchmark (scripts/bench-soak.sh runs it).
 *
 *   bench-soak [--store memory|URL] [--seconds 60] [--rate 100] [--only LOAD | --none]
 *
 * Starts evstored with its default options on --store (tests/common/daemon.h), then, all at
 * once and for --seconds, a hostile load next to 8 well-behaved clients. The hostile loads, each
 * bounded in connections and paced, all on 127.0.0.1:
 *   readall    30 connections each pipelining 100 read-all limit=10000 from 0, never reading
 *   subs       30 subscriptions from after=0, one per connection, never reading
 *   slow       100 connections each declaring a 16 MiB frame and sending one byte of it every
 *              3 s (a connection the daemon closes is opened again)
 *   tiny       one connection sending a 16 MiB map of 8.4 M nil:nil pairs, twice a second
 *   oversized  one connection appending an event over max_event, twice a second
 *   manysubs   one connection opening 300 subscriptions of 1024 topics each (past
 *              max_subscriptions), reading whatever comes
 *   large      one connection appending one 256 KiB event 4 times a second (data to read)
 * The well-behaved clients (libevstore's blocking API, one thread and one connection each) do
 * --rate requests/s each, alternately an append of one 100-byte event and a get-by-entity of an
 * entity of at most 50 events, and record each request's latency. --only runs the hostile loads
 * it lists (comma-separated names: to find which one costs what), --none none.
 *
 * Prints one JSON line: the well-behaved requests, their p50/p99/max latency, errors, the
 * daemon's peak RSS (VmHWM) and whether the goals (p99 < 20 ms, peak RSS < 300 MB) were met. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <evstore.h>

#include "../../tests/common/clock.h"
#include "../../tests/common/daemon.h"
#include "../../tests/common/rawio.h"
#include "../../tests/common/rss.h"

#define GOOD_CLIENTS 8
#define GOAL_P99_MS 20.0
#define GOAL_RSS_MB 300.0
#define MAX_FRAME (16u << 20)

static atomic_bool stop;
static const char *daemon_addr;

/* What the hostile loads did, for the output. */
static atomic_ulong h_readall_sent, h_subs_open, h_slow_bytes, h_slow_reopened, h_tiny_refused,
    h_oversized_refused, h_manysubs_ok, h_manysubs_refused, h_manysubs_pushes, h_large_appended,
    h_large_failed;

static void die(const char *what) {
    fprintf(stderr, "bench-soak: %s\n", what);
    exit(1);
}

/* Sleeps in steps of at most 100 ms until ms passed or the run stops. */
static void nap(int ms) {
    for (int64_t end = now_ms() + ms; !atomic_load(&stop) && now_ms() < end;)
        sleep_ms((int)(end - now_ms() < 100 ? end - now_ms() : 100));
}

/* A raw connection whose sends give up after 5 s, so that no hostile thread can block past the
 * end of the run on a daemon that stopped reading it. */
static int hostile_connect(void) {
    int fd = raw_connect(daemon_addr);
    if (fd < 0) return -1;
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    return fd;
}

/* ---------------------------------------------------------------- hostile loads */

/* Keeps the n connections of fds (-1: none) open, never reading them, until the run stops. */
static void hold_until_stop(const int *fds, int n) {
    while (!atomic_load(&stop))
        nap(100);
    for (int i = 0; i < n; i++)
        if (fds[i] >= 0) close(fds[i]);
}

static void *load_readall(void *arg) {
    (void)arg;
    int fds[30];
    rq_t r;
    for (int i = 0; i < 30; i++) {
        fds[i] = hostile_connect();
        for (int k = 0; fds[i] >= 0 && k < 100; k++) {
            rq_begin(&r, "read-all", (uint64_t)k + 1, 2);
            pk_str(&r.pk, "after");
            msgpack_pack_uint64(&r.pk, 0);
            pk_str(&r.pk, "limit");
            msgpack_pack_uint32(&r.pk, 10000);
            if (raw_send_rq(fds[i], &r) == 0) atomic_fetch_add(&h_readall_sent, 1);
            rq_free(&r);
        }
    }
    hold_until_stop(fds, 30);
    return NULL;
}

static void *load_subs(void *arg) {
    (void)arg;
    int fds[30];
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    for (int i = 0; i < 30; i++) {
        fds[i] = hostile_connect();
        rq_subscribe(&sb, 1, true, 0, NULL, 0, NULL);
        if (fds[i] >= 0 && raw_send_sb(fds[i], &sb) == 0) atomic_fetch_add(&h_subs_open, 1);
    }
    msgpack_sbuffer_destroy(&sb);
    hold_until_stop(fds, 30);
    return NULL;
}

static void *load_slow(void *arg) {
    (void)arg;
    enum { N = 100 };
    int fds[N];
    /* The 4-byte length of a max_frame frame; its body is then sent a byte at a time. */
    const uint8_t head[4] = {MAX_FRAME >> 24, (MAX_FRAME >> 16) & 0xff, (MAX_FRAME >> 8) & 0xff,
                             MAX_FRAME & 0xff};
    for (int i = 0; i < N; i++) {
        fds[i] = hostile_connect();
        if (fds[i] >= 0 && raw_send(fds[i], head, 4) != 0) close(fds[i]), fds[i] = -1;
    }
    while (!atomic_load(&stop)) {
        for (int i = 0; i < N && !atomic_load(&stop); i++) {
            if (fds[i] >= 0 && raw_send(fds[i], "\x83", 1) == 0) {
                atomic_fetch_add(&h_slow_bytes, 1);
            } else {
                if (fds[i] >= 0) close(fds[i]);
                fds[i] = hostile_connect();
                if (fds[i] >= 0 && raw_send(fds[i], head, 4) == 0)
                    atomic_fetch_add(&h_slow_reopened, 1);
            }
            nap(3000 / N);
        }
    }
    for (int i = 0; i < N; i++)
        if (fds[i] >= 0) close(fds[i]);
    return NULL;
}

/* Sends body (a whole frame's msgpack bytes) twice a second on one connection and counts the
 * replies whose error code is code. */
static void refused_loop(const uint8_t *body, size_t len, const char *code, atomic_ulong *count) {
    int fd = -1;
    while (!atomic_load(&stop)) {
        if (fd < 0 && (fd = hostile_connect()) < 0) {
            nap(500);
            continue;
        }
        reply_t r;
        if (raw_send_frame(fd, body, len) != 0 || raw_recv(fd, 10000, &r) != 0) {
            close(fd), fd = -1;
            continue;
        }
        if (strcmp(reply_code(&r), code) == 0) atomic_fetch_add(count, 1);
        reply_free(&r);
        nap(500);
    }
    if (fd >= 0) close(fd);
}

static void *load_tiny(void *arg) {
    (void)arg;
    size_t pairs = (MAX_FRAME - 5) / 2, len = 5 + 2 * pairs;
    uint8_t *buf = malloc(len);
    if (!buf) die("out of memory");
    buf[0] = 0xdf; /* map32 of pairs nil:nil */
    buf[1] = (uint8_t)(pairs >> 24), buf[2] = (uint8_t)(pairs >> 16);
    buf[3] = (uint8_t)(pairs >> 8), buf[4] = (uint8_t)pairs;
    memset(buf + 5, 0xc0, len - 5);
    refused_loop(buf, len, "bad_request", &h_tiny_refused);
    free(buf);
    return NULL;
}

static void *load_oversized(void *arg) {
    (void)arg;
    /* A frame under max_frame holding one event over max_event (max_frame - 64). */
    size_t plen = MAX_FRAME - 200;
    uint8_t *payload = malloc(plen);
    if (!payload) die("out of memory");
    memset(payload, 'o', plen);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    rq_event_t ev = {"soak-oversized", "soak.oversized", payload, plen};
    rq_append(&sb, 1, &ev, 1);
    if (sb.size > MAX_FRAME) die("the oversized append does not fit a frame");
    refused_loop((const uint8_t *)sb.data, sb.size, "too_large", &h_oversized_refused);
    msgpack_sbuffer_destroy(&sb);
    free(payload);
    return NULL;
}

static void *load_manysubs(void *arg) {
    (void)arg;
    int fd = hostile_connect();
    if (fd < 0) return NULL;
    char(*names)[32] = malloc(1024 * sizeof *names);
    const char *topics[1024];
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    for (int s = 0; s < 300 && !atomic_load(&stop); s++) {
        for (int t = 0; t < 1024; t++) {
            /* One topic of the first subscription is the large appends' topic, so this
             * connection also receives pushes; the others match nothing. */
            if (s == 0 && t == 0)
                snprintf(names[t], 32, "soak.large");
            else
                snprintf(names[t], 32, "soak.none-%d-%d", s, t);
            topics[t] = names[t];
        }
        rq_subscribe(&sb, (uint64_t)s + 1, false, 0, topics, 1024, NULL);
        if (raw_send_sb(fd, &sb) != 0) break;
        for (;;) {
            reply_t r;
            if (raw_recv(fd, 10000, &r) != 0) goto done;
            uint64_t id;
            bool is_reply = reply_id(&r, &id) && id == (uint64_t)s + 1;
            if (is_reply && reply_ok(&r))
                atomic_fetch_add(&h_manysubs_ok, 1);
            else if (is_reply)
                atomic_fetch_add(&h_manysubs_refused, 1);
            else
                atomic_fetch_add(&h_manysubs_pushes, 1);
            reply_free(&r);
            if (is_reply) break;
        }
    }
    while (!atomic_load(&stop)) {
        reply_t r;
        int rc = raw_recv(fd, 100, &r);
        if (rc == 0) {
            atomic_fetch_add(&h_manysubs_pushes, 1);
            reply_free(&r);
        } else if (rc != RAW_TIMEOUT) {
            break;
        }
    }
done:
    msgpack_sbuffer_destroy(&sb);
    free(names);
    close(fd);
    return NULL;
}

static void *load_large(void *arg) {
    (void)arg;
    size_t plen = 256 * 1024;
    uint8_t *payload = malloc(plen);
    if (!payload) die("out of memory");
    memset(payload, 'l', plen);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    int fd = -1;
    for (uint64_t k = 0; !atomic_load(&stop); k++) {
        if (fd < 0 && (fd = hostile_connect()) < 0) {
            nap(250);
            continue;
        }
        char entity[32];
        snprintf(entity, sizeof entity, "soak-large-%llu", (unsigned long long)k / 100);
        rq_event_t ev = {entity, "soak.large", payload, plen};
        rq_append(&sb, k + 1, &ev, 1);
        reply_t r;
        if (raw_send_sb(fd, &sb) != 0 || raw_recv(fd, 30000, &r) != 0) {
            atomic_fetch_add(&h_large_failed, 1);
            close(fd), fd = -1;
            continue;
        }
        atomic_fetch_add(reply_ok(&r) ? &h_large_appended : &h_large_failed, 1);
        reply_free(&r);
        nap(250);
    }
    if (fd >= 0) close(fd);
    msgpack_sbuffer_destroy(&sb);
    free(payload);
    return NULL;
}

typedef struct load {
    const char *name;
    void *(*run)(void *);
} load_t;

static const load_t LOADS[] = {
    {"readall", load_readall}, {"subs", load_subs},           {"slow", load_slow},
    {"tiny", load_tiny},       {"oversized", load_oversized}, {"manysubs", load_manysubs},
    {"large", load_large},
};
#define NLOADS (sizeof LOADS / sizeof LOADS[0])

/* ---------------------------------------------------------------- well-behaved clients */

typedef struct good {
    pthread_t th;
    int index;
    int rate;
    uint32_t *lat_us; /* one per request */
    size_t n, cap;
    unsigned long errors, reconnects;
} good_t;

static evs_context_t *good_connect(void) {
    evs_options_t o = {.addr = daemon_addr, .timeout_ms = 30000};
    return evs_connect_with_options(&o);
}

static void *good_main(void *arg) {
    good_t *g = arg;
    static const char payload[] = "{\"amount\": 100, \"note\": \"a payload of about a hundred "
                                  "bytes, like the other benchmarks\"}";
    evs_context_t *c = good_connect();
    uint64_t start = now_ns(), interval = 1000000000ull / (uint64_t)g->rate;
    for (uint64_t k = 0; !atomic_load(&stop); k++) {
        uint64_t due = start + k * interval, now = now_ns();
        if (due > now) {
            struct timespec ts = {(time_t)((due - now) / 1000000000ull),
                                  (long)((due - now) % 1000000000ull)};
            nanosleep(&ts, NULL);
        }
        if (atomic_load(&stop)) break;
        if (!c || c->fd < 0) {
            evs_free(c);
            c = good_connect();
            g->reconnects++;
            if (!c) {
                g->errors++;
                continue;
            }
        }
        char entity[48];
        snprintf(entity, sizeof entity, "soak-good-%d-%llu", g->index,
                 (unsigned long long)(k / 2) / 50);
        uint64_t t0 = now_ns();
        int rc;
        if (k % 2 == 0) {
            evs_event_t ev = {.entity_id = entity,
                              .topic = "soak.good",
                              .payload = (uint8_t *)payload,
                              .payload_len = sizeof payload - 1};
            rc = evs_append(c, &ev, 1, NULL, NULL);
        } else {
            evs_events_t *out = NULL;
            rc = evs_get_by_entity(c, entity, 0, 0, false, &out);
            evs_events_free(out);
        }
        uint64_t t = now_ns() - t0;
        if (rc != 0) g->errors++;
        if (g->n == g->cap) {
            g->cap = g->cap ? g->cap * 2 : 1 << 16;
            g->lat_us = realloc(g->lat_us, g->cap * sizeof *g->lat_us);
            if (!g->lat_us) die("out of memory");
        }
        g->lat_us[g->n++] = (uint32_t)(t / 1000 > UINT32_MAX ? UINT32_MAX : t / 1000);
    }
    evs_free(c);
    return NULL;
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* True when name is one of list's comma-separated names. */
static bool listed(const char *list, const char *name) {
    size_t n = strlen(name);
    for (const char *p = list; p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
        if (!strncmp(p, name, n) && (p[n] == ',' || p[n] == '\0')) return true;
    return false;
}

int main(int argc, char **argv) {
    const char *store = "memory", *only = NULL;
    int seconds = 60, rate = 100;
    bool none = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--store") && i + 1 < argc)
            store = argv[++i];
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--rate") && i + 1 < argc)
            rate = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--only") && i + 1 < argc)
            only = argv[++i];
        else if (!strcmp(argv[i], "--none"))
            none = true;
        else
            die("usage: bench-soak [--store memory|URL] [--seconds N] [--rate N] "
                "[--only LOAD | --none]");
    }
    if (seconds < 1 || rate < 1) die("--seconds and --rate must be positive");
    size_t nlisted = 0, commas = 0;
    for (size_t i = 0; i < NLOADS && only; i++)
        nlisted += listed(only, LOADS[i].name);
    for (const char *p = only; p && (p = strchr(p, ',')); p++)
        commas++;
    if (only && nlisted != commas + 1)
        die("--only takes a comma-separated list of readall, subs, slow, tiny, oversized, "
            "manysubs and large");
    signal(SIGPIPE, SIG_IGN);

    test_daemon_t d;
    if (test_daemon_launch(&d, store, false, NULL) != 0) die("the daemon did not start");
    daemon_addr = d.addr;

    pthread_t hostile[NLOADS];
    bool started[NLOADS] = {0};
    char loads[256] = "";
    for (size_t i = 0; i < NLOADS; i++) {
        if (none || (only && !listed(only, LOADS[i].name))) continue;
        if (pthread_create(&hostile[i], NULL, LOADS[i].run, NULL) != 0) die("pthread_create");
        started[i] = true;
        snprintf(loads + strlen(loads), sizeof loads - strlen(loads), "%s\"%s\"", *loads ? "," : "",
                 LOADS[i].name);
    }
    good_t goods[GOOD_CLIENTS] = {0};
    for (int i = 0; i < GOOD_CLIENTS; i++) {
        goods[i].index = i;
        goods[i].rate = rate;
        if (pthread_create(&goods[i].th, NULL, good_main, &goods[i]) != 0) die("pthread_create");
    }
    for (int64_t end = now_ms() + (int64_t)seconds * 1000; now_ms() < end;)
        sleep_ms(100);
    long peak_kb = rss_peak_kb(d.pid);
    atomic_store(&stop, true);
    for (int i = 0; i < GOOD_CLIENTS; i++)
        pthread_join(goods[i].th, NULL);
    for (size_t i = 0; i < NLOADS; i++)
        if (started[i]) pthread_join(hostile[i], NULL);
    bool alive = test_daemon_alive(&d);
    long end_peak_kb = rss_peak_kb(d.pid);
    if (end_peak_kb > peak_kb) peak_kb = end_peak_kb;
    test_daemon_stop(&d);

    size_t n = 0;
    unsigned long errors = 0, reconnects = 0;
    for (int i = 0; i < GOOD_CLIENTS; i++)
        n += goods[i].n, errors += goods[i].errors, reconnects += goods[i].reconnects;
    uint32_t *all = malloc((n ? n : 1) * sizeof *all);
    if (!all) die("out of memory");
    size_t at = 0;
    for (int i = 0; i < GOOD_CLIENTS; i++) {
        memcpy(all + at, goods[i].lat_us, goods[i].n * sizeof *all);
        at += goods[i].n;
        free(goods[i].lat_us);
    }
    qsort(all, n, sizeof *all, cmp_u32);
#define PCT(p) (n ? all[(size_t)((double)(n - 1) * (p))] / 1000.0 : 0.0)
    double p50 = PCT(0.50), p99 = PCT(0.99), max = n ? all[n - 1] / 1000.0 : 0.0;
    double peak_mb = peak_kb / 1024.0;
    bool ok = n > 0 && p99 < GOAL_P99_MS && peak_kb > 0 && peak_mb < GOAL_RSS_MB && !errors;
    printf("{\"bench\": \"soak\", \"store\": \"%s\", \"daemon_options\": \"defaults (no option "
           "but --listen, --store, --log-level warn)\", \"seconds\": %d, \"hostile\": [%s], "
           "\"good_clients\": %d, \"good_rate_per_client\": %d, \"requests\": %zu, "
           "\"p50_ms\": %.2f, \"p99_ms\": %.2f, \"max_ms\": %.2f, \"errors\": %lu, "
           "\"reconnects\": %lu, \"daemon_peak_rss_mb\": %.1f, \"daemon_alive\": %s, "
           "\"hostile_done\": {\"readall_sent\": %lu, \"subs_open\": %lu, \"slow_bytes\": %lu, "
           "\"slow_reopened\": %lu, \"tiny_refused\": %lu, \"oversized_refused\": %lu, "
           "\"manysubs_ok\": %lu, \"manysubs_refused\": %lu, \"manysubs_pushes\": %lu, "
           "\"large_appended\": %lu, \"large_failed\": %lu}, "
           "\"goals\": {\"p99_ms\": %.0f, \"peak_rss_mb\": %.0f, \"met\": %s}}\n",
           store, seconds, loads, GOOD_CLIENTS, rate, n, p50, p99, max, errors, reconnects, peak_mb,
           alive ? "true" : "false", atomic_load(&h_readall_sent), atomic_load(&h_subs_open),
           atomic_load(&h_slow_bytes), atomic_load(&h_slow_reopened), atomic_load(&h_tiny_refused),
           atomic_load(&h_oversized_refused), atomic_load(&h_manysubs_ok),
           atomic_load(&h_manysubs_refused), atomic_load(&h_manysubs_pushes),
           atomic_load(&h_large_appended), atomic_load(&h_large_failed), GOAL_P99_MS, GOAL_RSS_MB,
           ok ? "true" : "false");
    free(all);
    return 0;
}
