/* bench.c: evstore bench, an append load generator.
 *
 * One libuv loop drives every connection, so one process can keep 64 or more connections busy.
 * Each connection keeps `pipeline` append requests in flight (sent without waiting, matched to
 * replies by id since replies may come in any order), each carrying `events` events of `size`
 * payload bytes, without explicit versions, spread over `entities` entities per connection.
 * After a warm-up, it counts acknowledged events and the latency of each request (send to
 * reply) for `duration` seconds, then prints throughput, latency percentiles and one JSON line. */
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "../../proto/codec.h"
#include "../../proto/frame.h"
#include "bench.h"

#define READ_CHUNK (64 * 1024)

typedef struct bench bench_t;

typedef struct slot {
    uint64_t id;
    uint64_t sent_ns;
    bool used;
} slot_t;

typedef struct conn {
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } h;
    uv_connect_t creq;
    bench_t *b;
    int index;
    bool open;
    uint8_t *rbuf;
    size_t rstart, rend, rcap;
    uint64_t next_id;
    slot_t *slots;
    int inflight;
    uint64_t seq;
    char prefix[40]; /* "bench-PID-CONN-": the entity ids of this connection, before a number */
    size_t prefix_len;
    codec_buf_t wbuf;
    msgpack_unpacked reply;
} conn_t;

/* A uv_write that owns its bytes. */
typedef struct wreq {
    uv_write_t req;
    size_t len;
    char data[];
} wreq_t;

struct bench {
    uv_loop_t loop;
    uv_timer_t timer;
    conn_t *conns;
    int nconns, depth, events, size, entities;
    double duration, warmup;
    const char *addr;
    bool is_unix;
    struct sockaddr_storage sa;
    uint8_t *payload;
    int connected, closing;
    bool measuring, stopping, failed;
    uint64_t t_start, t_end;
    uint64_t requests, events_ok, errors;
    uint32_t *lat;
    size_t nlat, caplat;
    char first_error[256];
    char topic[32];
    bool client_ids;
    uint8_t id_base[8];
};

static void bench_stop(bench_t *b);

static void set_failure(bench_t *b, const char *fmt, const char *detail) {
    if (!b->first_error[0]) snprintf(b->first_error, sizeof b->first_error, fmt, detail);
}

/* ---------------------------------------------------------------- writing */

static void on_write(uv_write_t *req, int status) {
    wreq_t *w = (wreq_t *)req;
    conn_t *c = req->data;
    free(w);
    if (status < 0 && !c->b->stopping) {
        set_failure(c->b, "write failed: %s", uv_strerror(status));
        c->b->failed = true;
        bench_stop(c->b);
    }
}

/* Writes the requests packed in c->wbuf: straight away when the socket takes them, else
 * through a uv_write that owns a copy of what is left. */
static void flush_requests(conn_t *c) {
    if (c->wbuf.len == 0) return;
    uv_buf_t buf = uv_buf_init((char *)c->wbuf.data, (unsigned)c->wbuf.len);
    int n = uv_try_write(&c->h.stream, &buf, 1);
    size_t done = n > 0 ? (size_t)n : 0;
    if (n < 0 && n != UV_EAGAIN) {
        set_failure(c->b, "write failed: %s", uv_strerror(n));
        c->b->failed = true;
        bench_stop(c->b);
        return;
    }
    if (done < c->wbuf.len) {
        size_t left = c->wbuf.len - done;
        wreq_t *w = malloc(sizeof *w + left);
        if (!w) {
            set_failure(c->b, "%s", "out of memory");
            c->b->failed = true;
            bench_stop(c->b);
            return;
        }
        memcpy(w->data, c->wbuf.data + done, left);
        w->len = left;
        w->req.data = c;
        uv_buf_t rest = uv_buf_init(w->data, (unsigned)left);
        int r = uv_write(&w->req, &c->h.stream, &rest, 1, on_write);
        if (r < 0) {
            free(w);
            set_failure(c->b, "write failed: %s", uv_strerror(r));
            c->b->failed = true;
            bench_stop(c->b);
        }
    }
    c->wbuf.len = 0;
}

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

/* Packs append requests until the connection has `depth` in flight, then writes them. */
static void fill_pipeline(conn_t *c) {
    bench_t *b = c->b;
    while (!b->stopping && c->inflight < b->depth) {
        int s = 0;
        while (c->slots[s].used)
            s++;
        uint64_t id = c->next_id++;
        msgpack_packer pk;
        codec_packer_init(&pk, &c->wbuf);
        size_t start = codec_frame_begin(&c->wbuf);
        msgpack_pack_map(&pk, 3);
        codec_pack_key(&pk, "op");
        codec_pack_cstr(&pk, "append");
        codec_pack_key(&pk, "id");
        msgpack_pack_uint64(&pk, id);
        codec_pack_key(&pk, "events");
        msgpack_pack_array(&pk, (uint32_t)b->events);
        for (int i = 0; i < b->events; i++) {
            char entity[64];
            memcpy(entity, c->prefix, c->prefix_len);
            put_decimal(entity + c->prefix_len, c->seq % (uint64_t)b->entities);
            evs_event_t ev = {.entity_id = entity,
                              .topic = b->topic,
                              .payload = b->payload,
                              .payload_len = (size_t)b->size};
            if (b->client_ids) {
                /* Unique without a system call: a random base, the connection, a counter. */
                memcpy(ev.event_id, b->id_base, 8);
                ev.event_id[6] = (uint8_t)(0x40 | (ev.event_id[6] & 0x0f));
                put_be32(ev.event_id + 8, (uint32_t)c->index | 0x80000000u);
                put_be32(ev.event_id + 12, (uint32_t)c->seq);
                ev.has_event_id = 1;
            }
            c->seq++;
            codec_pack_event_for_append(&pk, &ev);
        }
        if (codec_frame_end(&c->wbuf, start, FRAME_DEFAULT_MAX) < 0) {
            set_failure(b, "%s", "a request does not fit in one frame (or out of memory)");
            b->failed = true;
            bench_stop(b);
            return;
        }
        c->slots[s] = (slot_t){.id = id, .sent_ns = uv_hrtime(), .used = true};
        c->inflight++;
    }
    flush_requests(c);
}

/* ---------------------------------------------------------------- reading */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    conn_t *c = h->data;
    (void)suggested;
    if (c->rstart > 0 && c->rstart == c->rend) c->rstart = c->rend = 0;
    if (c->rcap - c->rend < READ_CHUNK) {
        if (c->rstart > 0) {
            memmove(c->rbuf, c->rbuf + c->rstart, c->rend - c->rstart);
            c->rend -= c->rstart;
            c->rstart = 0;
        }
        if (c->rcap - c->rend < READ_CHUNK) {
            size_t cap = c->rcap ? c->rcap * 2 : 2 * READ_CHUNK;
            uint8_t *n = realloc(c->rbuf, cap);
            if (!n) {
                *buf = uv_buf_init(NULL, 0);
                return;
            }
            c->rbuf = n;
            c->rcap = cap;
        }
    }
    *buf = uv_buf_init((char *)c->rbuf + c->rend, (unsigned)(c->rcap - c->rend));
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

/* Handles one reply frame body. Returns 0, or -1 when the server broke the protocol. */
static int handle_reply(conn_t *c, const uint8_t *body, size_t len) {
    bench_t *b = c->b;
    const char *why;
    if (codec_prescan(body, len, CODEC_MAX_DEPTH, &why) < 0) {
        set_failure(b, "bad frame from the server: %s", why);
        return -1;
    }
    size_t off = 0;
    if (msgpack_unpack_next(&c->reply, (const char *)body, len, &off) != MSGPACK_UNPACK_SUCCESS) {
        set_failure(b, "%s", "a frame that does not unpack");
        return -1;
    }
    const msgpack_object *o = &c->reply.data;
    const msgpack_object *id = codec_map_get(o, "id"), *ok = codec_map_get(o, "ok");
    if (!ok || ok->type != MSGPACK_OBJECT_BOOLEAN) {
        set_failure(b, "%s", "a reply without \"ok\"");
        return -1;
    }
    if (!ok->via.boolean) {
        const msgpack_object *e = codec_map_get(o, "error");
        const msgpack_object *m = codec_map_get(e, "message");
        char msg[200] = "error";
        if (m && m->type == MSGPACK_OBJECT_STR)
            snprintf(msg, sizeof msg, "%.*s", (int)m->via.str.size, m->via.str.ptr);
        set_failure(b, "server error: %s", msg);
        if (b->measuring) b->errors++;
        if (!id) return -1; /* an error the server could not tie to a request: it closes */
    }
    if (!id || id->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
        set_failure(b, "%s", "a reply without an id");
        return -1;
    }
    int s = 0;
    while (s < b->depth && !(c->slots[s].used && c->slots[s].id == id->via.u64))
        s++;
    if (s == b->depth) {
        set_failure(b, "%s", "a reply to a request that was not sent");
        return -1;
    }
    c->slots[s].used = false;
    c->inflight--;
    if (b->measuring) {
        b->requests++;
        if (ok->via.boolean) b->events_ok += (uint64_t)b->events;
        record_latency(b, uv_hrtime() - c->slots[s].sent_ns);
    }
    return 0;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
    conn_t *c = stream->data;
    bench_t *b = c->b;
    (void)buf;
    if (nread < 0) {
        if (!b->stopping) {
            set_failure(b, "connection lost: %s", uv_strerror((int)nread));
            b->failed = true;
            bench_stop(b);
        }
        return;
    }
    c->rend += (size_t)nread;
    for (;;) {
        const uint8_t *body;
        size_t body_len = 0, consumed;
        int fs = frame_parse(c->rbuf + c->rstart, c->rend - c->rstart, FRAME_DEFAULT_MAX, &body,
                             &body_len, &consumed);
        if (fs == FRAME_INCOMPLETE) break;
        if (fs != FRAME_OK || handle_reply(c, body, body_len) < 0) {
            if (fs != FRAME_OK) set_failure(b, "%s", "a bad frame length from the server");
            b->failed = true;
            bench_stop(b);
            return;
        }
        c->rstart += consumed;
    }
    fill_pipeline(c);
}

/* ---------------------------------------------------------------- connecting and stopping */

static void on_close(uv_handle_t *h) {
    (void)h;
}

static void bench_stop(bench_t *b) {
    if (b->stopping) return;
    b->stopping = true;
    if (b->measuring) {
        b->measuring = false;
        b->t_end = uv_hrtime();
    }
    for (int i = 0; i < b->nconns; i++)
        if (b->conns[i].open) {
            b->conns[i].open = false;
            uv_close(&b->conns[i].h.handle, on_close);
        }
    if (!uv_is_closing((uv_handle_t *)&b->timer)) uv_close((uv_handle_t *)&b->timer, on_close);
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

static void on_connect(uv_connect_t *req, int status) {
    conn_t *c = req->data;
    bench_t *b = c->b;
    if (status < 0) {
        if (!b->stopping) {
            set_failure(b, "connect failed: %s", uv_strerror(status));
            b->failed = true;
            bench_stop(b);
        }
        return;
    }
    if (b->stopping) return;
    if (!b->is_unix) uv_tcp_nodelay(&c->h.tcp, 1);
    uv_read_start(&c->h.stream, on_alloc, on_read);
    if (++b->connected == b->nconns) {
        /* Everyone is connected: start the load everywhere at once. */
        uv_timer_start(&b->timer, on_warmup_end, (uint64_t)(b->warmup * 1000), 0);
        for (int i = 0; i < b->nconns; i++)
            fill_pipeline(&b->conns[i]);
    }
}

static int resolve(bench_t *b) {
    if (strchr(b->addr, '/')) {
        b->is_unix = true;
        return 0;
    }
    char host[256];
    const char *colon = strrchr(b->addr, ':');
    if (!colon || (size_t)(colon - b->addr) >= sizeof host) return -1;
    const char *h = b->addr;
    size_t hlen = (size_t)(colon - b->addr);
    if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
    if (getaddrinfo(host, colon + 1, &hints, &res) != 0) return -1;
    memcpy(&b->sa, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
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
    qsort(b->lat, b->nlat, sizeof *b->lat, cmp_u32);
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
           "\"events_per_request\":%d,\"payload_bytes\":%d,\"client_ids\":%s,\"seconds\":%.3f,"
           "\"requests\":%" PRIu64 ",\"events\":%" PRIu64 ",\"errors\":%" PRIu64
           ",\"events_per_s\":%.0f,"
           "\"requests_per_s\":%.0f,\"p50_us\":%u,\"p90_us\":%u,\"p99_us\":%u,\"max_us\":%u}\n",
           b->addr, b->nconns, b->depth, b->events, b->size, b->client_ids ? "true" : "false", secs,
           b->requests, b->events_ok, b->errors, eps, rps, p50, p90, p99, mx);
    fflush(stdout);
}

/* ---------------------------------------------------------------- main */

static const char bench_usage[] =
    "usage: evstore [-s ADDR] bench [OPTIONS]\n"
    "  -c, --connections N   connections (default 64)\n"
    "  -P, --pipeline N      requests in flight per connection (default 1)\n"
    "  -e, --events N        events per append request (default 1)\n"
    "  -d, --size BYTES      payload bytes per event (default 100)\n"
    "  -T, --duration S      measured seconds (default 10)\n"
    "  -w, --warmup S        seconds before measuring (default 1)\n"
    "  -E, --entities N      entities per connection the events spread over (default 100)\n"
    "  --client-ids          the client sets every event_id (else the server draws them)\n"
    "Prints events/s, requests/s, latency percentiles, then the same as one JSON line.\n";

static int opt_num(const char *v, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (errno || *end || d < lo || d > hi) return -1;
    *out = d;
    return 0;
}

int bench_main(const char *addr, int argc, char **argv) {
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
    if (resolve(b) < 0) {
        fprintf(stderr, "evstore: invalid_argument: cannot resolve %s\n", addr);
        free(b);
        return 1;
    }
    b->payload = malloc((size_t)b->size + 1);
    b->conns = calloc((size_t)b->nconns, sizeof *b->conns);
    if (!b->payload || !b->conns || uv_loop_init(&b->loop) < 0) {
        fprintf(stderr, "evstore: out_of_memory: cannot set up the benchmark\n");
        free(b->payload);
        free(b->conns);
        free(b);
        return 1;
    }
    for (int i = 0; i < b->size; i++)
        b->payload[i] = (uint8_t)('a' + i % 26);
    if (b->client_ids && getrandom(b->id_base, sizeof b->id_base, 0) != sizeof b->id_base) {
        fprintf(stderr, "evstore: io: getrandom failed\n");
        free(b->payload);
        free(b->conns);
        free(b);
        return 1;
    }
    uv_timer_init(&b->loop, &b->timer);
    b->timer.data = b;
    for (int i = 0; i < b->nconns && !b->stopping; i++) {
        conn_t *c = &b->conns[i];
        c->b = b;
        c->index = i;
        c->next_id = 1;
        c->prefix_len =
            (size_t)snprintf(c->prefix, sizeof c->prefix, "bench-%d-%d-", (int)getpid(), i);
        c->slots = calloc((size_t)b->depth, sizeof *c->slots);
        codec_buf_init(&c->wbuf);
        msgpack_unpacked_init(&c->reply);
        c->creq.data = c;
        int r;
        if (b->is_unix) {
            uv_pipe_init(&b->loop, &c->h.pipe, 0);
            c->h.handle.data = c;
            c->open = true;
            uv_pipe_connect(&c->creq, &c->h.pipe, addr, on_connect);
            r = 0;
        } else {
            uv_tcp_init(&b->loop, &c->h.tcp);
            c->h.handle.data = c;
            c->open = true;
            r = uv_tcp_connect(&c->creq, &c->h.tcp, (struct sockaddr *)&b->sa, on_connect);
        }
        if (r < 0 || !c->slots) {
            set_failure(b, "connect failed: %s", r < 0 ? uv_strerror(r) : "out of memory");
            b->failed = true;
            bench_stop(b);
        }
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
    for (int i = 0; i < b->nconns; i++) {
        free(b->conns[i].slots);
        free(b->conns[i].rbuf);
        codec_buf_free(&b->conns[i].wbuf);
        msgpack_unpacked_destroy(&b->conns[i].reply);
    }
    uv_loop_close(&b->loop);
    free(b->conns);
    free(b->payload);
    free(b->lat);
    free(b);
    return rc;
}
