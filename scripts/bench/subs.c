/* subs.c: the subscription benchmark (scripts/bench-subs.sh runs it).
 *
 *   bench-subs --store URL live [--subs 100] [--rate 10000] [--seconds 10] [--batch 10]
 *                 [--threads 2]
 *       starts evstored on URL, opens --subs live subscriptions (no "after"), then appends
 *       --rate events/s (appends of --batch events, paced by the clock, pipelined) for
 *       --seconds, and reports the time from each append's acknowledgement (its reply read by
 *       the writer) to each subscriber's receipt of each of its events: p50/p90/p99/p99.9/max.
 *       An event a subscriber received before its writer read the reply counts as 0.
 *   bench-subs --store URL catchup [--events 1000000]
 *       starts evstored on URL, appends events until the log holds --events (appends of 1000),
 *       then one subscription with "after": 0 reads them all: events/s from the subscribe
 *       request to the last event.
 *
 * Clients talk the raw protocol over the daemon's Unix socket (tests/common/rawio.h). The daemon
 * is $EVSTORED_BIN or BUILD/bin/evstored (tests/common/daemon.h). */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <unistd.h>

#include "../../tests/common/clock.h"
#include "../../tests/common/daemon.h"
#include "../../tests/common/rawio.h"

static const char PAYLOAD[] = "{\"amount\": 100, \"note\": \"a payload of about a hundred bytes, "
                              "like the other benchmarks\"}";

static void die(const char *what) {
    fprintf(stderr, "bench-subs: %s\n", what);
    exit(1);
}

/* ---------------------------------------------------------------- live */

/* Acknowledgement time of each position (index: position - base), 0 until acknowledged. */
static _Atomic uint64_t *ack_ns;
static uint64_t base_pos, npos;

typedef struct sample {
    uint64_t position;
    uint64_t recv_ns;
} sample_t;

typedef struct subscriber_thread {
    pthread_t th;
    raw_conn_t *conns;
    int nconns;
    sample_t *samples;
    size_t n, cap;
    atomic_bool stop;
    uint64_t events;
} sthread_t;

static void record(sthread_t *t, uint64_t pos, uint64_t now) {
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 1 << 20;
        t->samples = realloc(t->samples, t->cap * sizeof *t->samples);
        if (!t->samples) die("out of memory");
    }
    t->samples[t->n++] = (sample_t){pos, now};
}

static void *subscriber_main(void *arg) {
    sthread_t *t = arg;
    int ep = epoll_create1(0);
    for (int i = 0; i < t->nconns; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, t->conns[i].fd, &ev);
    }
    struct epoll_event evs[128];
    while (!atomic_load(&t->stop)) {
        int n = epoll_wait(ep, evs, 128, 50);
        for (int k = 0; k < n; k++) {
            raw_conn_t *c = &t->conns[evs[k].data.u32];
            int first = 1;
            while (first || raw_conn_buffered(c)) {
                first = 0;
                const uint8_t *b;
                size_t len;
                if (raw_conn_next(c, 0, &b, &len) != 0) break;
                const char *body = (const char *)b;
                uint64_t now = now_ns();
                /* Decoding 100 x 10,000 events/s with msgpack-c would make this client the
                 * bottleneck: find each event's "position" key (fixstr 8) and read its uint.
                 * The payloads are text that never holds those bytes. */
                const char *p = body, *end = body + len;
                while ((p = memmem(p, (size_t)(end - p), "\xa8position", 9)) != NULL) {
                    p += 9;
                    if (p >= end) break;
                    uint64_t v = 0;
                    unsigned char tb = (unsigned char)*p;
                    if (tb < 0x80)
                        v = tb, p += 1;
                    else if (tb == 0xcc && end - p >= 2)
                        v = (unsigned char)p[1], p += 2;
                    else if (tb == 0xcd && end - p >= 3)
                        v = (uint64_t)(unsigned char)p[1] << 8 | (unsigned char)p[2], p += 3;
                    else if (tb == 0xce && end - p >= 5) {
                        for (int b = 1; b <= 4; b++)
                            v = v << 8 | (unsigned char)p[b];
                        p += 5;
                    } else if (tb == 0xcf && end - p >= 9) {
                        for (int b = 1; b <= 8; b++)
                            v = v << 8 | (unsigned char)p[b];
                        p += 9;
                    } else {
                        continue;
                    }
                    record(t, v, now);
                    t->events++;
                }
            }
        }
    }
    close(ep);
    return NULL;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void live(const char *sock, int nsubs, int rate, int seconds, int batch, int nthreads) {
    raw_conn_t *conns = calloc((size_t)nsubs, sizeof *conns);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    for (int i = 0; i < nsubs; i++) {
        if (raw_conn_open(&conns[i], sock) != 0) die("cannot connect a subscriber");
        rq_subscribe(&sb, 1, false, 0, NULL, 0, NULL);
        if (raw_send_sb(conns[i].fd, &sb) != 0) die("subscribe failed");
        reply_t u;
        if (raw_conn_recv(&conns[i], 5000, &u) != 0) die("no subscribe reply");
        reply_free(&u);
    }
    /* The writer: where positions start (one append before the clock starts). */
    raw_conn_t w;
    if (raw_conn_open(&w, sock) != 0) die("cannot connect the writer");
    rq_event_t *evs = calloc((size_t)batch, sizeof *evs);
    char(*names)[32] = calloc((size_t)batch, 32);
    for (int i = 0; i < batch; i++) {
        snprintf(names[i], 32, "bench-%d", i % 64);
        evs[i] = (rq_event_t){names[i], "bench.Live", PAYLOAD, sizeof PAYLOAD - 1};
    }
    rq_append(&sb, 1, evs, 1);
    raw_send_sb(w.fd, &sb);
    reply_t u;
    if (raw_conn_recv(&w, 10000, &u) != 0) die("no reply to the first append");
    const msgpack_object *p = obj_get(&u.u.data, "positions");
    if (!p || p->type != MSGPACK_OBJECT_ARRAY || !p->via.array.size) die("first append failed");
    base_pos = obj_uint(&p->via.array.ptr[0]) + 1;
    reply_free(&u);
    npos = (uint64_t)rate * (uint64_t)seconds * 4 + 1000000;
    ack_ns = calloc(npos, sizeof *ack_ns);
    if (!ack_ns) die("out of memory");
    /* Let the first append's pushes arrive before the threads start. */
    for (int i = 0; i < nsubs; i++)
        while (raw_conn_recv(&conns[i], 100, &u) == 0)
            reply_free(&u);

    sthread_t *ts = calloc((size_t)nthreads, sizeof *ts);
    for (int k = 0; k < nthreads; k++) {
        ts[k].conns = conns + k * nsubs / nthreads;
        ts[k].nconns = (k + 1) * nsubs / nthreads - k * nsubs / nthreads;
        pthread_create(&ts[k].th, NULL, subscriber_main, &ts[k]);
    }

    uint64_t start = now_ns(), interval = 1000000000ull * (uint64_t)batch / (uint64_t)rate;
    uint64_t total_appends = (uint64_t)rate * (uint64_t)seconds / (uint64_t)batch;
    uint64_t sent = 0, replied = 0, acked_events = 0, failed = 0;
    while (replied < total_appends) {
        uint64_t now = now_ns();
        while (sent < total_appends && start + sent * interval <= now) {
            rq_append(&sb, sent + 2, evs, (size_t)batch);
            if (raw_send_sb(w.fd, &sb) != 0) die("append send failed");
            sent++;
        }
        uint64_t next = start + sent * interval;
        int wait_ms = sent < total_appends ? (int)((next > now ? next - now : 0) / 1000000) : 1000;
        int rc = raw_conn_recv(&w, wait_ms, &u);
        if (rc == RAW_TIMEOUT) continue;
        if (rc != 0) die("the writer's connection ended");
        uint64_t t = now_ns();
        const msgpack_object *pos = obj_get(&u.u.data, "positions");
        if (pos && pos->type == MSGPACK_OBJECT_ARRAY) {
            for (uint32_t i = 0; i < pos->via.array.size; i++) {
                uint64_t ps = obj_uint(&pos->via.array.ptr[i]);
                if (ps >= base_pos && ps - base_pos < npos) atomic_store(&ack_ns[ps - base_pos], t);
                acked_events++;
            }
        } else {
            failed++;
        }
        replied++;
        reply_free(&u);
        /* A writer that cannot keep up would make the rate a lie: say so. */
        while (raw_conn_buffered(&w) && replied < total_appends) {
            if (raw_conn_recv(&w, 0, &u) != 0) break;
            t = now_ns();
            pos = obj_get(&u.u.data, "positions");
            if (pos && pos->type == MSGPACK_OBJECT_ARRAY)
                for (uint32_t i = 0; i < pos->via.array.size; i++) {
                    uint64_t ps = obj_uint(&pos->via.array.ptr[i]);
                    if (ps >= base_pos && ps - base_pos < npos)
                        atomic_store(&ack_ns[ps - base_pos], t);
                    acked_events++;
                }
            else
                failed++;
            replied++;
            reply_free(&u);
        }
    }
    double elapsed = (double)(now_ns() - start) / 1e9;
    /* Give the last pushes time to arrive. */
    uint64_t want = acked_events * (uint64_t)nsubs, got = 0;
    for (int i = 0; i < 100; i++) {
        got = 0;
        for (int k = 0; k < nthreads; k++)
            got += ts[k].events;
        if (got >= want) break;
        sleep_ms(20);
    }
    for (int k = 0; k < nthreads; k++) {
        atomic_store(&ts[k].stop, true);
        pthread_join(ts[k].th, NULL);
    }
    size_t nsamples = 0;
    for (int k = 0; k < nthreads; k++)
        nsamples += ts[k].n;
    uint64_t *lat = malloc((nsamples + 1) * sizeof *lat);
    size_t m = 0, before_ack = 0, unknown = 0;
    for (int k = 0; k < nthreads; k++)
        for (size_t i = 0; i < ts[k].n; i++) {
            sample_t *s = &ts[k].samples[i];
            if (s->position < base_pos || s->position - base_pos >= npos) {
                unknown++;
                continue;
            }
            uint64_t a = atomic_load(&ack_ns[s->position - base_pos]);
            if (!a) {
                unknown++;
                continue;
            }
            if (s->recv_ns <= a) {
                before_ack++;
                lat[m++] = 0;
            } else {
                lat[m++] = s->recv_ns - a;
            }
        }
    qsort(lat, m, sizeof *lat, cmp_u64);
#define PCT(q) (m ? (double)lat[(size_t)((double)(m - 1) * (q))] / 1e6 : 0.0)
    printf("live: %d subscribers, %d events/s asked, %.0f events/s acknowledged (%llu appends of "
           "%d, %llu failed) over %.1f s\n",
           nsubs, rate, (double)acked_events / elapsed, (unsigned long long)replied, batch,
           (unsigned long long)failed, elapsed);
    printf("live: %llu receipts of %llu expected; %zu before the writer read its reply (count as "
           "0), %zu unmatched\n",
           (unsigned long long)got, (unsigned long long)want, before_ack, unknown);
    printf("live: ack -> receipt latency ms: p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f\n",
           PCT(0.50), PCT(0.90), PCT(0.99), PCT(0.999), m ? (double)lat[m - 1] / 1e6 : 0.0);
    for (int k = 0; k < nthreads; k++)
        free(ts[k].samples);
    free(ts);
    free(lat);
    for (int i = 0; i < nsubs; i++)
        raw_conn_close(&conns[i]);
    free(conns);
    raw_conn_close(&w);
    free(evs);
    free(names);
    free(ack_ns);
    msgpack_sbuffer_destroy(&sb);
}

/* ---------------------------------------------------------------- catch-up */

static uint64_t log_size(raw_conn_t *c) {
    /* Count by paging read-all: only used to top the log up, so an estimate from the last
     * position would do; exact is cheap enough at 10,000 per page. */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    uint64_t after = 0, n = 0;
    for (;;) {
        msgpack_sbuffer_clear(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 4);
        msgpack_pack_str_with_body(&pk, "op", 2);
        msgpack_pack_str_with_body(&pk, "read-all", 8);
        msgpack_pack_str_with_body(&pk, "id", 2);
        msgpack_pack_uint64(&pk, 1);
        msgpack_pack_str_with_body(&pk, "after", 5);
        msgpack_pack_uint64(&pk, after);
        msgpack_pack_str_with_body(&pk, "limit", 5);
        msgpack_pack_uint64(&pk, 10000);
        if (raw_send_sb(c->fd, &sb) != 0) die("read-all failed");
        reply_t u;
        if (raw_conn_recv(c, 60000, &u) != 0) die("no read-all reply");
        const msgpack_object *e = obj_get(&u.u.data, "events");
        uint32_t k = e && e->type == MSGPACK_OBJECT_ARRAY ? e->via.array.size : 0;
        if (k) after = obj_uint(obj_get(&e->via.array.ptr[k - 1], "position"));
        n += k;
        reply_free(&u);
        if (k == 0) break;
    }
    msgpack_sbuffer_destroy(&sb);
    return n;
}

static void catchup(const char *sock, uint64_t events) {
    raw_conn_t c;
    if (raw_conn_open(&c, sock) != 0) die("cannot connect");
    uint64_t have = log_size(&c);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    if (have < events) {
        enum { PER = 1000, WIN = 8 };
        static rq_event_t evs[PER];
        static char names[PER][32];
        for (int i = 0; i < PER; i++) {
            snprintf(names[i], 32, "catchup-%d", i % 997);
            evs[i] = (rq_event_t){names[i], "bench.CatchUp", PAYLOAD, sizeof PAYLOAD - 1};
        }
        uint64_t todo = (events - have + PER - 1) / PER, sent = 0, done = 0;
        uint64_t t0 = now_ns();
        while (done < todo) {
            while (sent < todo && sent - done < WIN) {
                rq_append(&sb, sent + 1, evs, PER);
                if (raw_send_sb(c.fd, &sb) != 0) die("append failed");
                sent++;
            }
            reply_t u;
            if (raw_conn_recv(&c, 60000, &u) != 0) die("no append reply");
            const msgpack_object *ok = obj_get(&u.u.data, "ok");
            if (!ok || ok->type != MSGPACK_OBJECT_BOOLEAN || !ok->via.boolean) die("append failed");
            reply_free(&u);
            done++;
        }
        fprintf(stderr, "catchup: stored %llu events in %.1f s\n", (unsigned long long)(todo * PER),
                (double)(now_ns() - t0) / 1e9);
        have += todo * PER;
    }
    raw_conn_close(&c);
    if (raw_conn_open(&c, sock) != 0) die("cannot connect");
    rq_subscribe(&sb, 1, true, 0, NULL, 0, NULL);
    uint64_t t0 = now_ns();
    if (raw_send_sb(c.fd, &sb) != 0) die("subscribe failed");
    uint64_t got = 0, pushes = 0;
    bool caught_up = false;
    while (!caught_up || got < have) {
        reply_t u;
        int rc = raw_conn_recv(&c, 30000, &u);
        if (rc != 0) die("the catch-up stalled");
        const msgpack_object *e = obj_get(&u.u.data, "events");
        if (e && e->type == MSGPACK_OBJECT_ARRAY) {
            got += e->via.array.size;
            pushes++;
        }
        if (obj_get(&u.u.data, "caught_up")) caught_up = true;
        reply_free(&u);
    }
    double s = (double)(now_ns() - t0) / 1e9;
    printf("catchup: %llu events in %llu pushes in %.2f s: %.0f events/s\n",
           (unsigned long long)got, (unsigned long long)pushes, s, (double)got / s);
    raw_conn_close(&c);
    msgpack_sbuffer_destroy(&sb);
}

/* ---------------------------------------------------------------- main */

int main(int argc, char **argv) {
    const char *store = NULL, *mode = NULL;
    int subs = 100, rate = 10000, seconds = 10, batch = 10, threads = 2;
    uint64_t events = 1000000;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--store") && v)
            store = argv[++i];
        else if (!strcmp(a, "--subs") && v)
            subs = atoi(argv[++i]);
        else if (!strcmp(a, "--rate") && v)
            rate = atoi(argv[++i]);
        else if (!strcmp(a, "--seconds") && v)
            seconds = atoi(argv[++i]);
        else if (!strcmp(a, "--batch") && v)
            batch = atoi(argv[++i]);
        else if (!strcmp(a, "--threads") && v)
            threads = atoi(argv[++i]);
        else if (!strcmp(a, "--events") && v)
            events = strtoull(argv[++i], NULL, 10);
        else if (!mode && (!strcmp(a, "live") || !strcmp(a, "catchup")))
            mode = a;
        else
            die("usage: bench-subs --store URL live|catchup [options] (see the source)");
    }
    if (!store || !mode) die("usage: bench-subs --store URL live|catchup [options]");
    if (subs < 1 || rate < 1 || seconds < 1 || batch < 1 || threads < 1 || threads > subs)
        die("bad option value");
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    test_daemon_t d;
    if (test_daemon_launch(&d, store, true, NULL) != 0) die("evstored did not start");
    if (!strcmp(mode, "live"))
        live(d.unix_path, subs, rate, seconds, batch, threads);
    else
        catchup(d.unix_path, events);
    int rc = test_daemon_stop(&d);
    if (rc != 0) fprintf(stderr, "bench-subs: evstored exited with %d\n", rc);
    return 0;
}
