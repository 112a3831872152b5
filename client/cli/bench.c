/* bench.c: evstore bench, an append load generator.
 *
 * One libuv loop drives every connection through libevstore's asynchronous API (<evstore/async.h>
 * with its libuv adapter), so one process can keep 64 or more connections busy. Each connection
 * keeps `pipeline` append requests in flight (pipelined; the library matches replies to requests
 * by id), each carrying `events` events of `size`
 * payload bytes, without explicit versions, spread over `entities` entities per connection.
 * After a warm-up, it counts acknowledged events and the latency of each request (send to
 * reply) for `duration` seconds, then prints throughput, latency percentiles and one JSON line.
 *
 * With --tracking every append carries a tracking, as a process manager's would: each request
 * slot of each connection is its own consumer, and tracks the newest position its previous append
 * was stored at. That position is above the one the previous append tracked (it was committed
 * after it), so no tracking ever conflicts; a slot's first append goes without one. With
 * --tracking-per-connection each connection is one consumer instead, as a process manager that
 * pipelines its appends is: each append tracks the newest position the connection's appends were
 * stored at, when that moved since the connection's previous tracking (replies come in request
 * order and positions in commit order, so it only grows); the others go without one. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>
#include <uv.h>

#include <evstore/async.h>
#include <evstore/libuv.h>

#include "bench.h"

typedef struct bench bench_t;
typedef struct conn conn_t;

/* One request in flight: its callback's privdata. */
typedef struct slot {
    conn_t *c;
    uint64_t sent_ns;
    uint64_t acked; /* the newest position of this slot's last stored append, 0 before one */
    bool used;
} slot_t;

struct conn {
    evs_async_t *ac;
    bench_t *b;
    int index;
    slot_t *slots;
    int inflight;
    uint64_t seq;
    uint64_t acked, tracked; /* --tracking-per-connection: newest stored, newest tracked */
    char prefix[40]; /* "bench-PID-CONN-": the entity ids of this connection, before a number */
    size_t prefix_len;
};

struct bench {
    uv_loop_t loop;
    uv_timer_t timer;
    conn_t *conns;
    int nconns, depth, events, size, entities;
    double duration, warmup;
    const char *addr;
    uint8_t *payload;
    evs_event_t *evs;   /* the events of the request being packed */
    char (*entity)[64]; /* and their entity ids */
    int connected;
    bool measuring, stopping, failed;
    uint64_t t_start, t_end;
    uint64_t requests, events_ok, errors;
    uint32_t *lat;
    size_t nlat, caplat;
    char first_error[320];
    char topic[32];
    bool client_ids;
    bool tracking;
    bool per_connection; /* --tracking-per-connection: a consumer per connection, not per slot */
    uint32_t run_tag;    /* random: the consumer names of this run are new ones */
    uint8_t id_base[8];
};

static void bench_stop(bench_t *b);

static void set_failure(bench_t *b, const char *fmt, const char *detail) {
    if (!b->first_error[0]) snprintf(b->first_error, sizeof b->first_error, fmt, detail);
}

static void fail(bench_t *b, const char *fmt, const char *detail) {
    set_failure(b, fmt, detail);
    b->failed = true;
    bench_stop(b);
}

/* ---------------------------------------------------------------- requests and replies */

static void put_decimal(char *out, uint64_t v) {
    char tmp[21];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *out++ = tmp[--n];
    *out = '\0';
}

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void record_latency(bench_t *b, uint64_t ns) {
    if (b->nlat == b->caplat) {
        size_t cap = b->caplat ? b->caplat * 2 : 1 << 16;
        uint32_t *n = realloc(b->lat, cap * sizeof *n);
        if (!n) return;
        b->lat = n;
        b->caplat = cap;
    }
    uint64_t us = ns / 1000;
    b->lat[b->nlat++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static void fill_pipeline(conn_t *c);

/* A reply to one append: counted while measuring, then the connection's pipeline is refilled
 * (the library writes the new requests once every reply it read is handled). */
static void on_reply(evs_async_t *ac, const evs_async_reply_t *reply, void *privdata) {
    slot_t *s = privdata;
    conn_t *c = s->c;
    bench_t *b = c->b;
    s->used = false;
    c->inflight--;
    if (!reply) {
        if (!b->stopping) fail(b, "connection lost: %s", ac->errstr);
        return;
    }
    if (reply->err) {
        set_failure(b, "server error: %s", reply->errstr);
        if (b->measuring) b->errors++;
    }
    if (!reply->err && reply->n) {
        s->acked = reply->positions[reply->n - 1];
        if (s->acked > c->acked) c->acked = s->acked;
    }
    if (b->measuring) {
        b->requests++;
        if (!reply->err) b->events_ok += (uint64_t)b->events;
        record_latency(b, uv_hrtime() - s->sent_ns);
    }
    fill_pipeline(c);
}

/* Queues append requests until the connection has `depth` in flight. */
static void fill_pipeline(conn_t *c) {
    bench_t *b = c->b;
    while (!b->stopping && c->inflight < b->depth) {
        int s = 0;
        while (c->slots[s].used)
            s++;
        for (int i = 0; i < b->events; i++) {
            evs_event_t *ev = &b->evs[i];
            memcpy(b->entity[i], c->prefix, c->prefix_len);
            put_decimal(b->entity[i] + c->prefix_len, c->seq % (uint64_t)b->entities);
            if (b->client_ids) {
                /* Unique without a system call: a random base, the connection, a counter. */
                memcpy(ev->event_id, b->id_base, 8);
                ev->event_id[6] = (uint8_t)(0x40 | (ev->event_id[6] & 0x0f));
                put_be32(ev->event_id + 8, (uint32_t)c->index | 0x80000000u);
                put_be32(ev->event_id + 12, (uint32_t)c->seq);
                ev->has_event_id = 1;
            }
            c->seq++;
        }
        int r;
        char consumer[64];
        if (b->tracking && b->per_connection && c->acked > c->tracked) {
            snprintf(consumer, sizeof consumer, "bench-%08x-%d", (unsigned)b->run_tag, c->index);
            c->tracked = c->acked;
            r = evs_async_append_tracked(c->ac, b->evs, (size_t)b->events, consumer, c->tracked,
                                         on_reply, &c->slots[s]);
        } else if (b->tracking && !b->per_connection && c->slots[s].acked) {
            snprintf(consumer, sizeof consumer, "bench-%08x-%d-%d", (unsigned)b->run_tag, c->index,
                     s);
            r = evs_async_append_tracked(c->ac, b->evs, (size_t)b->events, consumer,
                                         c->slots[s].acked, on_reply, &c->slots[s]);
        } else {
            r = evs_async_append(c->ac, b->evs, (size_t)b->events, on_reply, &c->slots[s]);
        }
        if (r < 0) {
            if (c->ac->err)
                fail(b, "connection lost: %s", c->ac->errstr);
            else
                fail(b, "%s", "a request does not fit in one frame (or out of memory)");
            return;
        }
        c->slots[s].used = true;
        c->slots[s].sent_ns = uv_hrtime();
        c->inflight++;
    }
}

/* ---------------------------------------------------------------- connecting and stopping */

static void on_timer_close(uv_handle_t *h) {
    (void)h;
}

/* Frees every connection (requests still in flight get their NULL reply, ignored now); the
 * libuv adapter closes their handles, so uv_run returns once the timer is closed too. */
static void bench_stop(bench_t *b) {
    if (b->stopping) return;
    b->stopping = true;
    if (b->measuring) {
        b->measuring = false;
        b->t_end = uv_hrtime();
    }
    for (int i = 0; i < b->nconns; i++) {
        evs_async_free(b->conns[i].ac);
        b->conns[i].ac = NULL;
    }
    if (!uv_is_closing((uv_handle_t *)&b->timer))
        uv_close((uv_handle_t *)&b->timer, on_timer_close);
}

static void on_measure_end(uv_timer_t *t) {
    bench_stop(t->data);
}

static void on_warmup_end(uv_timer_t *t) {
    bench_t *b = t->data;
    b->measuring = true;
    b->t_start = uv_hrtime();
    uv_timer_start(&b->timer, on_measure_end, (uint64_t)(b->duration * 1000), 0);
}

static void on_connect(evs_async_t *ac, int status) {
    conn_t *c = ac->data;
    bench_t *b = c->b;
    if (status < 0) {
        if (!b->stopping) fail(b, "connect failed: %s", ac->errstr);
        return;
    }
    if (b->stopping) return;
    if (++b->connected == b->nconns) {
        /* Everyone is connected: start the load everywhere at once. */
        uv_timer_start(&b->timer, on_warmup_end, (uint64_t)(b->warmup * 1000), 0);
        for (int i = 0; i < b->nconns; i++)
            fill_pipeline(&b->conns[i]);
    }
}

/* ---------------------------------------------------------------- report */

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static uint32_t percentile(const uint32_t *v, size_t n, double p) {
    if (n == 0) return 0;
    size_t i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

static void report(bench_t *b) {
    double secs = (double)(b->t_end - b->t_start) / 1e9;
    if (secs <= 0) secs = 1e-9;
    if (b->nlat) qsort(b->lat, b->nlat, sizeof *b->lat, cmp_u32);
    uint32_t p50 = percentile(b->lat, b->nlat, 50), p90 = percentile(b->lat, b->nlat, 90),
             p99 = percentile(b->lat, b->nlat, 99), mx = b->nlat ? b->lat[b->nlat - 1] : 0;
    double eps = (double)b->events_ok / secs, rps = (double)b->requests / secs;
    printf("evstore bench: %s, %d connections x %d in flight, %d event(s) of %d bytes per "
           "request, %.1f s\n",
           b->addr, b->nconns, b->depth, b->events, b->size, secs);
    printf("  events/s    %.0f\n  requests/s  %.0f\n  errors      %" PRIu64 "\n", eps, rps,
           b->errors);
    printf("  latency us  p50 %u  p90 %u  p99 %u  max %u\n", p50, p90, p99, mx);
    printf("{\"tool\":\"evstore-bench\",\"addr\":\"%s\",\"connections\":%d,\"pipeline\":%d,"
           "\"events_per_request\":%d,\"payload_bytes\":%d,\"client_ids\":%s,\"tracking\":%s,"
           "\"tracking_consumers\":\"%s\","
           "\"seconds\":%.3f,"
           "\"requests\":%" PRIu64 ",\"events\":%" PRIu64 ",\"errors\":%" PRIu64
           ",\"events_per_s\":%.0f,"
           "\"requests_per_s\":%.0f,\"p50_us\":%u,\"p90_us\":%u,\"p99_us\":%u,\"max_us\":%u}\n",
           b->addr, b->nconns, b->depth, b->events, b->size, b->client_ids ? "true" : "false",
           b->tracking ? "true" : "false",
           !b->tracking        ? "none"
           : b->per_connection ? "connection"
                               : "slot",
           secs, b->requests, b->events_ok, b->errors, eps, rps, p50, p90, p99, mx);
    fflush(stdout);
}

/* ---------------------------------------------------------------- main */

static const char bench_usage[] =
    "usage: evstore [-s ADDR] [--tls-ca FILE ...] bench [OPTIONS]   (ADDR may be tls://HOST:PORT)\n"
    "  -c, --connections N   connections (default 64)\n"
    "  -P, --pipeline N      requests in flight per connection (default 1)\n"
    "  -e, --events N        events per append request (default 1)\n"
    "  -d, --size BYTES      payload bytes per event (default 100)\n"
    "  -T, --duration S      measured seconds (default 10)\n"
    "  -w, --warmup S        seconds before measuring (default 1)\n"
    "  -E, --entities N      entities per connection the events spread over (default 100)\n"
    "  --client-ids          the client sets every event_id (else the server draws them)\n"
    "  --tracking            each append carries a tracking (a consumer per request slot)\n"
    "  --tracking-per-connection\n"
    "                        appends carry trackings of one consumer per connection (those sent\n"
    "                        before the connection's newest stored position moved go without)\n"
    "Prints events/s, requests/s, latency percentiles, then the same as one JSON line.\n";

static int opt_num(const char *v, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (errno || *end || d < lo || d > hi) return -1;
    *out = d;
    return 0;
}

/* Frees the benchmark and its connections' slots (the connections are freed by bench_stop). */
static void bench_free(bench_t *b) {
    for (int i = 0; b->conns && i < b->nconns; i++)
        free(b->conns[i].slots);
    free(b->conns);
    free(b->evs);
    free(b->entity);
    free(b->payload);
    free(b->lat);
    free(b);
}

int bench_main(const char *addr, const evs_tls_options_t *tls, int argc, char **argv) {
    bench_t *b = calloc(1, sizeof *b);
    if (!b) return 1;
    b->addr = addr;
    b->nconns = 64;
    b->depth = 1;
    b->events = 1;
    b->size = 100;
    b->duration = 10;
    b->warmup = 1;
    b->entities = 100;
    snprintf(b->topic, sizeof b->topic, "bench.Appended");
    static const struct {
        const char *s, *l;
        double lo, hi;
    } opts[] = {{"-c", "--connections", 1, 100000}, {"-P", "--pipeline", 1, 100000},
                {"-e", "--events", 1, 100000},      {"-d", "--size", 0, 1 << 24},
                {"-T", "--duration", 0.1, 86400},   {"-w", "--warmup", 0, 3600},
                {"-E", "--entities", 1, 1e9}};
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(bench_usage, stdout);
            free(b);
            return 0;
        }
        if (strcmp(argv[i], "--client-ids") == 0) {
            b->client_ids = true;
            continue;
        }
        if (strcmp(argv[i], "--tracking") == 0) {
            b->tracking = true;
            continue;
        }
        if (strcmp(argv[i], "--tracking-per-connection") == 0) {
            b->tracking = b->per_connection = true;
            continue;
        }
        size_t k = 0;
        for (; k < sizeof opts / sizeof opts[0]; k++)
            if (strcmp(argv[i], opts[k].s) == 0 || strcmp(argv[i], opts[k].l) == 0) break;
        double v;
        if (k == sizeof opts / sizeof opts[0] || i + 1 >= argc ||
            opt_num(argv[i + 1], opts[k].lo, opts[k].hi, &v) < 0) {
            fprintf(stderr, "evstore bench: bad option or value: %s\n%s", argv[i], bench_usage);
            free(b);
            return 2;
        }
        i++;
        switch (k) {
        case 0:
            b->nconns = (int)v;
            break;
        case 1:
            b->depth = (int)v;
            break;
        case 2:
            b->events = (int)v;
            break;
        case 3:
            b->size = (int)v;
            break;
        case 4:
            b->duration = v;
            break;
        case 5:
            b->warmup = v;
            break;
        case 6:
            b->entities = (int)v;
            break;
        }
    }
    int rc = 1;
    b->payload = malloc((size_t)b->size + 1);
    b->conns = calloc((size_t)b->nconns, sizeof *b->conns);
    b->evs = calloc((size_t)b->events, sizeof *b->evs);
    b->entity = calloc((size_t)b->events, sizeof *b->entity);
    if (!b->payload || !b->conns || !b->evs || !b->entity || uv_loop_init(&b->loop) < 0) {
        fprintf(stderr, "evstore: out_of_memory: cannot set up the benchmark\n");
        bench_free(b);
        return 1;
    }
    for (int i = 0; i < b->size; i++)
        b->payload[i] = (uint8_t)('a' + i % 26);
    for (int i = 0; i < b->events; i++)
        b->evs[i] = (evs_event_t){.entity_id = b->entity[i],
                                  .topic = b->topic,
                                  .payload = b->payload,
                                  .payload_len = (size_t)b->size};
    if ((b->client_ids && getrandom(b->id_base, sizeof b->id_base, 0) != sizeof b->id_base) ||
        (b->tracking && getrandom(&b->run_tag, sizeof b->run_tag, 0) != sizeof b->run_tag)) {
        fprintf(stderr, "evstore: io: getrandom failed\n");
        uv_loop_close(&b->loop);
        bench_free(b);
        return 1;
    }
    uv_timer_init(&b->loop, &b->timer);
    b->timer.data = b;
    evs_options_t conn_opts = {.addr = addr, .tls = tls};
    for (int i = 0; i < b->nconns && !b->stopping; i++) {
        conn_t *c = &b->conns[i];
        c->b = b;
        c->index = i;
        c->prefix_len =
            (size_t)snprintf(c->prefix, sizeof c->prefix, "bench-%d-%d-", (int)getpid(), i);
        c->slots = calloc((size_t)b->depth, sizeof *c->slots);
        for (int s = 0; c->slots && s < b->depth; s++)
            c->slots[s].c = c;
        c->ac = evs_async_connect(&conn_opts);
        if (!c->slots || !c->ac) {
            fail(b, "connect failed: %s", "out of memory");
            break;
        }
        c->ac->data = c;
        evs_async_set_connect_callback(c->ac, on_connect);
        int r = c->ac->err ? c->ac->err : evs_libuv_attach(c->ac, &b->loop);
        if (r < 0) fail(b, "connect failed: %s", c->ac->err ? c->ac->errstr : evs_strcode(r));
    }
    uv_run(&b->loop, UV_RUN_DEFAULT);
    if (b->failed || b->t_start == 0) {
        fprintf(stderr, "evstore: io: %s\n",
                b->first_error[0] ? b->first_error : "the benchmark did not run");
    } else {
        report(b);
        if (b->first_error[0]) fprintf(stderr, "evstore bench: first error: %s\n", b->first_error);
        rc = b->errors ? 1 : 0;
    }
    uv_loop_close(&b->loop);
    bench_free(b);
    return rc;
}
