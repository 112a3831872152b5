/* test_subs.c: subscriptions on the PostgreSQL store, through real daemons.
 *
 * Each test gets a database of its own in the cluster that $EVSTORE_PG_URL names, starts one or
 * two evstored on it (tests/common/daemon.h), runs
 * writer threads that append through the daemons with pipelined raw requests, and reads
 * subscriptions on the main thread. Every check is against what the writers were acknowledged:
 * each subscription must receive exactly the acknowledged positions that match its filters,
 * each once, in increasing order, and (with "after") one caught_up marker. Without
 * $EVSTORE_PG_URL every test is skipped. */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "../common/clock.h"
#include "../common/daemon.h"
#include "../common/db.h"
#include "../common/rawio.h"
#include "../common/rss.h"
#include "fixture.h"

/* ---------------------------------------------------------------- fixture */

static test_db_t db;
static const char *cluster_url;

static void setup(void) {
    pg_db_setup(&db, "evs_subtest", &cluster_url);
}

static void teardown(void) {
    test_db_drop(&db, cluster_url);
}

TestSuite(pg_subs, .init = setup, .fini = teardown, .timeout = 120);

static void start_daemon(test_daemon_t *d) {
    cr_assert_eq(test_daemon_launch(d, db.url, true, NULL), 0, "evstored did not start on %s",
                 db.url);
}

static void stop_daemon(test_daemon_t *d) {
    cr_assert_eq(test_daemon_stop(d), 0, "evstored did not exit cleanly");
}

/* ---------------------------------------------------------------- writers */

/* What each event was: its topic ("t0".."t2") and entity kind ("acc-" or "ord-"). */
static const char *const TOPICS[3] = {"t0", "t1", "t2"};
static const char *const KINDS[2] = {"acc-", "ord-"};

typedef struct rec {
    uint64_t position;
    uint8_t topic, kind;
} rec_t;

#define WINDOW 16
#define MAX_PER 4

typedef struct writer {
    const char *sock;
    int index;
    int appends; /* requests to send */
    int per;     /* events per request, 1..MAX_PER */
    int pace_us; /* pause between windows (0: none) */
    pthread_t thread;
    rec_t *acked;
    atomic_size_t nacked;
    atomic_bool done;
    int errors;
    char why[256];
} writer_t;

static void event_of(const writer_t *w, int j, uint8_t *topic, uint8_t *kind) {
    *topic = (uint8_t)((w->index * 7 + j) % 3);
    *kind = (uint8_t)((j / 2 + w->index) % 2);
}

static void *writer_main(void *arg) {
    writer_t *w = arg;
    raw_conn_t c;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    w->acked = calloc((size_t)w->appends * (size_t)w->per, sizeof *w->acked);
    if (!w->acked || raw_conn_open(&c, w->sock) != 0) {
        snprintf(w->why, sizeof w->why, "cannot connect");
        w->errors++;
        atomic_store(&w->done, true);
        msgpack_sbuffer_destroy(&sb);
        return NULL;
    }
    static const char payload[] = "a payload of some forty bytes, roughly.";
    char entities[WINDOW][MAX_PER][48];
    for (int base = 0; base < w->appends && !w->errors; base += WINDOW) {
        int nreq = w->appends - base < WINDOW ? w->appends - base : WINDOW;
        for (int k = 0; k < nreq; k++) {
            rq_event_t evs[MAX_PER];
            for (int e = 0; e < w->per; e++) {
                int j = (base + k) * w->per + e;
                uint8_t topic, kind;
                event_of(w, j, &topic, &kind);
                snprintf(entities[k][e], sizeof entities[k][e], "%sw%d-%d", KINDS[kind], w->index,
                         j % 5);
                evs[e] = (rq_event_t){entities[k][e], TOPICS[topic], payload, sizeof payload - 1};
            }
            rq_append(&sb, (uint64_t)(base + k + 1), evs, (size_t)w->per);
            if (raw_send_sb(c.fd, &sb) != 0) {
                snprintf(w->why, sizeof w->why, "send failed");
                w->errors++;
                break;
            }
        }
        for (int k = 0; k < nreq && !w->errors; k++) {
            reply_t u;
            if (raw_conn_recv(&c, 20000, &u) != 0) {
                snprintf(w->why, sizeof w->why, "no reply");
                w->errors++;
                break;
            }
            const msgpack_object *id = obj_get(&u.u.data, "id");
            const msgpack_object *ok = obj_get(&u.u.data, "ok");
            const msgpack_object *pos = obj_get(&u.u.data, "positions");
            if (!id || !ok || ok->type != MSGPACK_OBJECT_BOOLEAN || !ok->via.boolean || !pos ||
                pos->type != MSGPACK_OBJECT_ARRAY || pos->via.array.size != (uint32_t)w->per) {
                snprintf(w->why, sizeof w->why, "an append failed");
                w->errors++;
                reply_free(&u);
                break;
            }
            int req = (int)obj_uint(id) - 1;
            size_t at = atomic_load(&w->nacked);
            for (int e = 0; e < w->per; e++) {
                rec_t *r = &w->acked[at + (size_t)e];
                r->position = obj_uint(&pos->via.array.ptr[e]);
                event_of(w, req * w->per + e, &r->topic, &r->kind);
            }
            atomic_store(&w->nacked, at + (size_t)w->per);
            reply_free(&u);
        }
        if (w->pace_us) usleep((useconds_t)w->pace_us);
    }
    raw_conn_close(&c);
    msgpack_sbuffer_destroy(&sb);
    atomic_store(&w->done, true);
    return NULL;
}

static void start_writer(writer_t *w, const char *sock, int index, int appends, int per,
                         int pace_us) {
    memset(w, 0, sizeof *w);
    w->sock = sock;
    w->index = index;
    w->appends = appends;
    w->per = per;
    w->pace_us = pace_us;
    atomic_init(&w->nacked, 0);
    atomic_init(&w->done, false);
    cr_assert_eq(pthread_create(&w->thread, NULL, writer_main, w), 0);
}

static void join_writer(writer_t *w) {
    pthread_join(w->thread, NULL);
    cr_assert_eq(w->errors, 0, "writer %d: %s", w->index, w->why);
    cr_assert_eq(atomic_load(&w->nacked), (size_t)w->appends * (size_t)w->per);
}

static bool all_done(writer_t *ws, int n) {
    for (int i = 0; i < n; i++)
        if (!atomic_load(&ws[i].done)) return false;
    return true;
}

static void wait_acked(writer_t *w, size_t n) {
    int64_t end = now_ms() + 20000;
    while (atomic_load(&w->nacked) < n && !atomic_load(&w->done)) {
        cr_assert(now_ms() < end, "writer %d is stuck", w->index);
        sleep_ms(1);
    }
}

/* ---------------------------------------------------------------- subscribers */

typedef struct spec {
    const char *const *topics;
    size_t ntopics;
    const char *prefix;
    bool has_after;
    uint64_t after;
} spec_t;

typedef struct got {
    spec_t spec;
    uint64_t sid;
    uint64_t *pos;
    size_t n, cap;
    int caught_up;
    size_t caught_up_after; /* events received before the marker */
    int errors;
    char why[256];
} got_t;

static bool spec_matches(const spec_t *s, uint8_t topic, uint8_t kind) {
    if (s->prefix && strncmp(KINDS[kind], s->prefix, strlen(s->prefix)) != 0) return false;
    if (!s->ntopics) return true;
    for (size_t i = 0; i < s->ntopics; i++)
        if (strcmp(s->topics[i], TOPICS[topic]) == 0) return true;
    return false;
}

static bool str_is(const msgpack_object *o, const char *s) {
    return o && o->type == MSGPACK_OBJECT_STR && o->via.str.size == strlen(s) &&
           memcmp(o->via.str.ptr, s, o->via.str.size) == 0;
}

/* Records one push of g's subscription. */
static void take_push(got_t *g, const msgpack_object *push) {
    const msgpack_object *cu = obj_get(push, "caught_up");
    if (cu) {
        g->caught_up++;
        g->caught_up_after = g->n;
        return;
    }
    const msgpack_object *evs = obj_get(push, "events");
    if (!evs || evs->type != MSGPACK_OBJECT_ARRAY) return;
    for (uint32_t i = 0; i < evs->via.array.size; i++) {
        const msgpack_object *ev = &evs->via.array.ptr[i];
        uint64_t p = obj_uint(obj_get(ev, "position"));
        if (g->n && p <= g->pos[g->n - 1] && !g->errors++)
            snprintf(g->why, sizeof g->why, "position %llu after %llu", (unsigned long long)p,
                     (unsigned long long)g->pos[g->n - 1]);
        /* The filters: the topic and entity kind of what came must match. */
        const msgpack_object *t = obj_get(ev, "topic"), *e = obj_get(ev, "entity_id");
        int topic = -1, kind = -1;
        for (int k = 0; k < 3; k++)
            if (str_is(t, TOPICS[k])) topic = k;
        for (int k = 0; k < 2; k++)
            if (e && e->type == MSGPACK_OBJECT_STR && e->via.str.size >= 4 &&
                memcmp(e->via.str.ptr, KINDS[k], 4) == 0)
                kind = k;
        if ((topic < 0 || kind < 0 || !spec_matches(&g->spec, (uint8_t)topic, (uint8_t)kind)) &&
            !g->errors++)
            snprintf(g->why, sizeof g->why, "position %llu does not match the filters",
                     (unsigned long long)p);
        if (g->n == g->cap) {
            g->cap = g->cap ? g->cap * 2 : 1024;
            g->pos = realloc(g->pos, g->cap * sizeof *g->pos);
            cr_assert_not_null(g->pos);
        }
        g->pos[g->n++] = p;
    }
}

/* Subscribes g[from..n) on c and waits for each reply; pushes of g[0..n) that arrive meanwhile
 * are recorded. */
static void subscribe_from(raw_conn_t *c, got_t *g, int from, int n) {
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    for (int i = from; i < n; i++) {
        rq_subscribe(&sb, (uint64_t)(1000 + i), g[i].spec.has_after, g[i].spec.after,
                     g[i].spec.topics, g[i].spec.ntopics, g[i].spec.prefix);
        cr_assert_eq(raw_send_sb(c->fd, &sb), 0);
    }
    msgpack_sbuffer_destroy(&sb);
    int replied = from;
    int64_t end = now_ms() + 10000;
    while (replied < n) {
        cr_assert(now_ms() < end, "no subscribe reply");
        reply_t u;
        int rc = raw_conn_recv(c, 1000, &u);
        cr_assert(rc == 0 || rc == RAW_TIMEOUT, "the subscriber's connection ended");
        if (rc == RAW_TIMEOUT) continue;
        const msgpack_object *id = obj_get(&u.u.data, "id");
        const msgpack_object *sub = obj_get(&u.u.data, "sub");
        if (id) {
            const msgpack_object *ok = obj_get(&u.u.data, "ok");
            cr_assert(ok && ok->type == MSGPACK_OBJECT_BOOLEAN && ok->via.boolean,
                      "subscribe failed");
            g[obj_uint(id) - 1000].sid = obj_uint(sub);
            replied++;
        } else if (sub) {
            for (int i = 0; i < n; i++)
                if (g[i].sid && g[i].sid == obj_uint(sub)) take_push(&g[i], &u.u.data);
        }
        reply_free(&u);
    }
}

static void subscribe_all(raw_conn_t *c, got_t *g, int n) {
    subscribe_from(c, g, 0, n);
}

/* Reads pushes for up to ms (less when nothing arrives for that long). */
static void read_pushes(raw_conn_t *c, got_t *g, int n, int ms) {
    int64_t end = now_ms() + ms;
    while (now_ms() < end) {
        reply_t u;
        int rc = raw_conn_recv(c, (int)(end - now_ms()), &u);
        cr_assert(rc == 0 || rc == RAW_TIMEOUT, "the subscriber's connection ended");
        if (rc == RAW_TIMEOUT) break;
        const msgpack_object *sub = obj_get(&u.u.data, "sub");
        for (int i = 0; sub && i < n; i++)
            if (g[i].sid == obj_uint(sub)) take_push(&g[i], &u.u.data);
        reply_free(&u);
    }
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The acknowledged positions that match spec, sorted. */
static uint64_t *expected(writer_t *ws, int nw, const spec_t *spec, size_t *n) {
    size_t total = 0;
    for (int i = 0; i < nw; i++)
        total += atomic_load(&ws[i].nacked);
    uint64_t *e = malloc((total + 1) * sizeof *e);
    cr_assert_not_null(e);
    *n = 0;
    for (int i = 0; i < nw; i++)
        for (size_t k = 0; k < atomic_load(&ws[i].nacked); k++)
            if (spec_matches(spec, ws[i].acked[k].topic, ws[i].acked[k].kind))
                e[(*n)++] = ws[i].acked[k].position;
    qsort(e, *n, sizeof *e, cmp_u64);
    return e;
}

/* Waits (up to 30 s) until every subscription has all it should, then a little longer for
 * anything extra, and checks: exactly the expected positions, in order, and the marker. */
static void check_all(raw_conn_t *c, got_t *g, int n, writer_t *ws, int nw) {
    size_t *want_n = calloc((size_t)n, sizeof *want_n);
    uint64_t **want = calloc((size_t)n, sizeof *want);
    for (int i = 0; i < n; i++)
        want[i] = expected(ws, nw, &g[i].spec, &want_n[i]);
    int64_t end = now_ms() + 30000;
    for (;;) {
        bool complete = true;
        for (int i = 0; i < n; i++)
            if (g[i].n < want_n[i] || (g[i].spec.has_after && g[i].caught_up == 0))
                complete = false;
        if (complete || now_ms() > end) break;
        read_pushes(c, g, n, 100);
    }
    read_pushes(c, g, n, 300); /* anything extra would come now */
    for (int i = 0; i < n; i++) {
        cr_assert_eq(g[i].errors, 0, "subscription %d: %s", i, g[i].why);
        size_t k = 0;
        while (k < g[i].n && k < want_n[i] && g[i].pos[k] == want[i][k])
            k++;
        cr_assert(k == want_n[i] && k == g[i].n,
                  "subscription %d: received %zu events, %zu acknowledged; they differ at "
                  "index %zu (got %llu, want %llu)",
                  i, g[i].n, want_n[i], k, k < g[i].n ? (unsigned long long)g[i].pos[k] : 0ull,
                  k < want_n[i] ? (unsigned long long)want[i][k] : 0ull);
        if (g[i].spec.has_after)
            cr_assert_eq(g[i].caught_up, 1, "subscription %d: %d caught_up markers", i,
                         g[i].caught_up);
        else
            cr_assert_eq(g[i].caught_up, 0);
        free(want[i]);
        free(g[i].pos);
    }
    free(want);
    free(want_n);
}

/* Terminates the feed connections of every daemon on this test's database; returns how many. */
static int kill_feeds(void) {
    char sql[300], out[32];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
             "WHERE application_name = 'evstored-feed' AND datname = '%s') t",
             db.name);
    char err[512];
    cr_assert_eq(test_sql(cluster_url, sql, out, sizeof out, err, sizeof err), 0, "%s", err);
    return atoi(out);
}

/* ---------------------------------------------------------------- tests */

/* Two daemons on one database; a subscriber on B from position 0 while writers
 * append through A and B. */
Test(pg_subs, subscriber_on_b_gets_appends_through_a_and_b_once_in_order) {
    test_daemon_t a, b;
    start_daemon(&a);
    start_daemon(&b);
    writer_t ws[4];
    for (int i = 0; i < 4; i++)
        start_writer(&ws[i], i % 2 ? b.unix_path : a.unix_path, i, 300, 2, 0);
    wait_acked(&ws[0], 40);
    raw_conn_t c;
    cr_assert_eq(raw_conn_open(&c, b.unix_path), 0);
    got_t g[1] = {{.spec = {.has_after = true, .after = 0}}};
    subscribe_all(&c, g, 1);
    while (!all_done(ws, 4))
        read_pushes(&c, g, 1, 50);
    for (int i = 0; i < 4; i++)
        join_writer(&ws[i]);
    check_all(&c, g, 1, ws, 4);
    raw_conn_close(&c);
    for (int i = 0; i < 4; i++)
        free(ws[i].acked);
    stop_daemon(&a);
    stop_daemon(&b);
}

/* A live subscriber on B (no "after") sees what A appends: B's feed learns of A's commits. */
Test(pg_subs, live_subscriber_on_b_gets_what_a_appends) {
    test_daemon_t a, b;
    start_daemon(&a);
    start_daemon(&b);
    raw_conn_t c;
    cr_assert_eq(raw_conn_open(&c, b.unix_path), 0);
    got_t g[1] = {{.spec = {.has_after = false}}};
    subscribe_all(&c, g, 1);
    writer_t ws[1];
    start_writer(&ws[0], a.unix_path, 0, 200, 1, 500);
    while (!all_done(ws, 1))
        read_pushes(&c, g, 1, 50);
    join_writer(&ws[0]);
    check_all(&c, g, 1, ws, 1);
    raw_conn_close(&c);
    free(ws[0].acked);
    stop_daemon(&a);
    stop_daemon(&b);
}

/* The LISTEN connection killed with pg_terminate_backend while writes go on: no
 * event missed (the feed reconnects, listens again and reads from its head). */
Test(pg_subs, feed_connection_terminated_during_writes_misses_nothing) {
    test_daemon_t a, b;
    start_daemon(&a);
    start_daemon(&b);
    raw_conn_t c;
    cr_assert_eq(raw_conn_open(&c, b.unix_path), 0);
    got_t g[2] = {{.spec = {.has_after = true, .after = 0}}, {.spec = {.has_after = false}}};
    subscribe_all(&c, g, 2);
    writer_t ws[2];
    start_writer(&ws[0], a.unix_path, 0, 400, 1, 4000);
    start_writer(&ws[1], b.unix_path, 1, 400, 1, 4000);
    int kills = 0, rounds = 0;
    int64_t next = now_ms() + 150;
    while (!all_done(ws, 2)) {
        read_pushes(&c, g, 2, 20);
        if (now_ms() >= next) {
            kills += kill_feeds();
            rounds++;
            next = now_ms() + 250;
        }
    }
    for (int i = 0; i < 2; i++)
        join_writer(&ws[i]);
    cr_assert_geq(kills, 2, "no feed connection was terminated (%d rounds)", rounds);
    check_all(&c, g, 2, ws, 2);
    raw_conn_close(&c);
    for (int i = 0; i < 2; i++)
        free(ws[i].acked);
    stop_daemon(&a);
    stop_daemon(&b);
}

/* The catch-up/live switch under concurrent writers on one daemon: a log of several
 * catch-up pages already stored, then a subscription from 0 while four writers append. */
Test(pg_subs, catch_up_then_live_under_concurrent_writers_on_one_daemon) {
    test_daemon_t a;
    start_daemon(&a);
    writer_t ws[5];
    start_writer(&ws[4], a.unix_path, 9, 600, 4, 0); /* 2,400 events: five catch-up pages */
    join_writer(&ws[4]);
    for (int i = 0; i < 4; i++)
        start_writer(&ws[i], a.unix_path, i, 250, 2, 0);
    wait_acked(&ws[0], 20);
    raw_conn_t c;
    cr_assert_eq(raw_conn_open(&c, a.unix_path), 0);
    got_t g[2] = {{.spec = {.has_after = true, .after = 0}},
                  {.spec = {.has_after = true, .after = 0}}};
    subscribe_from(&c, g, 0, 1);
    read_pushes(&c, g, 1, 30);
    subscribe_from(&c, g, 1, 2); /* a second one, a little later */
    while (!all_done(ws, 4))
        read_pushes(&c, g, 2, 50);
    for (int i = 0; i < 4; i++)
        join_writer(&ws[i]);
    check_all(&c, g, 2, ws, 5);
    raw_conn_close(&c);
    for (int i = 0; i < 5; i++)
        free(ws[i].acked);
    stop_daemon(&a);
}

/* Filters on PostgreSQL: topics, entity prefix, both; each from 0 (catch-up through
 * the store's filtered reads) and live (the daemon's filter on the feed's batches), with the
 * writes going through another daemon as well. */
Test(pg_subs, filters_topics_prefix_and_both) {
    test_daemon_t a, b;
    start_daemon(&a);
    start_daemon(&b);
    static const char *const one[] = {"t1"};
    static const char *const two[] = {"t0", "t2"};
    writer_t ws[2];
    start_writer(&ws[0], a.unix_path, 0, 150, 3, 0);
    start_writer(&ws[1], b.unix_path, 1, 150, 3, 0);
    wait_acked(&ws[0], 60);
    raw_conn_t c;
    cr_assert_eq(raw_conn_open(&c, b.unix_path), 0);
    got_t g[6] = {
        {.spec = {.topics = one, .ntopics = 1, .has_after = true}},
        {.spec = {.topics = two, .ntopics = 2, .has_after = true}},
        {.spec = {.prefix = "acc-", .has_after = true}},
        {.spec = {.topics = two, .ntopics = 2, .prefix = "ord-", .has_after = true}},
        {.spec = {.topics = one, .ntopics = 1, .prefix = "acc-", .has_after = true}},
        {.spec = {.prefix = "ac", .has_after = true}},
    };
    subscribe_all(&c, g, 6);
    while (!all_done(ws, 2))
        read_pushes(&c, g, 6, 50);
    for (int i = 0; i < 2; i++)
        join_writer(&ws[i]);
    check_all(&c, g, 6, ws, 2);
    raw_conn_close(&c);
    for (int i = 0; i < 2; i++)
        free(ws[i].acked);
    stop_daemon(&a);
    stop_daemon(&b);
}

/* A catching-up subscriber on PostgreSQL reaches the live stream (and says caught_up) while
 * commits keep coming: live events that arrive during a catch-up read are buffered and follow
 * the short page, instead of sending the subscription back to read again each time. */
Test(pg_subs, catch_up_reaches_live_while_writes_go_on) {
    test_daemon_t a;
    start_daemon(&a);
    writer_t ws[3];
    start_writer(&ws[2], a.unix_path, 9, 500, 4, 0); /* 2,000 stored events to catch up */
    join_writer(&ws[2]);
    for (int i = 0; i < 2; i++)
        start_writer(&ws[i], a.unix_path, i, 1500, 1, 2000);
    wait_acked(&ws[0], 50);
    raw_conn_t c;
    cr_assert_eq(raw_conn_open(&c, a.unix_path), 0);
    got_t g[1] = {{.spec = {.has_after = true, .after = 0}}};
    subscribe_from(&c, g, 0, 1);
    int64_t end = now_ms() + 10000;
    while (!g[0].caught_up && now_ms() < end && !all_done(ws, 2))
        read_pushes(&c, g, 1, 50);
    bool live_before_writers_ended = g[0].caught_up && !all_done(ws, 2);
    while (!all_done(ws, 2))
        read_pushes(&c, g, 1, 50);
    for (int i = 0; i < 2; i++)
        join_writer(&ws[i]);
    check_all(&c, g, 1, ws, 3);
    cr_assert(live_before_writers_ended,
              "caught_up came only after the writers stopped (%d marker(s))", g[0].caught_up);
    raw_conn_close(&c);
    for (int i = 0; i < 3; i++)
        free(ws[i].acked);
    stop_daemon(&a);
}

/* A subscription without "after" made before the live feed has started (the first moments after
 * start-up; here held back by a lock on evs_events) is not refused: it waits for the feed, then
 * is answered ok and gets what is appended next. */
Test(pg_subs, subscribe_before_the_live_feed_starts_waits_for_it) {
    test_daemon_t d;
    start_daemon(&d); /* creates the schema */
    stop_daemon(&d);
    PGconn *locker = PQconnectdb(db.url);
    cr_assert_eq(PQstatus(locker), CONNECTION_OK, "%s", PQerrorMessage(locker));
    PGresult *r = PQexec(locker, "BEGIN; LOCK TABLE evs_events IN ACCESS EXCLUSIVE MODE");
    cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s", PQerrorMessage(locker));
    PQclear(r);
    /* The feed's start reads max(position): it waits for the lock; pings are answered. */
    cr_assert_eq(test_daemon_launch_pinged(&d, db.url, NULL), 0, "evstored did not start");
    int fd = test_connect_raw(&d);
    cr_assert_geq(fd, 0);
    rq_t rq;
    rq_begin(&rq, "subscribe", 7, 0);
    cr_assert_eq(raw_send_rq(fd, &rq), 0);
    rq_free(&rq);
    /* Until the lock goes, the subscribe has no answer. */
    reply_t rep;
    cr_assert_eq(raw_recv(fd, 300, &rep), RAW_TIMEOUT, "answered before the live feed started: %s",
                 reply_code(&rep));
    r = PQexec(locker, "COMMIT");
    cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s", PQerrorMessage(locker));
    PQclear(r);
    PQfinish(locker);
    cr_assert_eq(raw_recv(fd, 20000, &rep), 0, "no reply to the subscribe");
    uint64_t id = 0;
    cr_assert(reply_ok(&rep), "subscribe refused: %s", reply_code(&rep));
    cr_assert(reply_id(&rep, &id) && id == 7);
    uint64_t sid = obj_uint(reply_get(&rep, "sub"));
    reply_free(&rep);
    /* What is appended next is pushed. */
    int w = test_connect_raw(&d);
    cr_assert_geq(w, 0);
    rq_begin(&rq, "append", 8, 1);
    pk_str(&rq.pk, "events");
    msgpack_pack_array(&rq.pk, 1);
    msgpack_pack_map(&rq.pk, 3);
    pk_str(&rq.pk, "entity_id");
    pk_str(&rq.pk, "early-1");
    pk_str(&rq.pk, "topic");
    pk_str(&rq.pk, "t0");
    pk_str(&rq.pk, "payload");
    pk_bin(&rq.pk, "x", 1);
    cr_assert_eq(raw_send_rq(w, &rq), 0);
    rq_free(&rq);
    cr_assert_eq(raw_recv(w, 20000, &rep), 0);
    cr_assert(reply_ok(&rep), "append: %s", reply_code(&rep));
    reply_free(&rep);
    cr_assert_eq(raw_recv(fd, 20000, &rep), 0, "no push after the append");
    cr_assert_eq(obj_uint(reply_get(&rep, "sub")), sid);
    const msgpack_object *evs = reply_get(&rep, "events");
    cr_assert(evs && evs->type == MSGPACK_OBJECT_ARRAY && evs->via.array.size == 1);
    reply_free(&rep);
    close(w);
    close(fd);
    stop_daemon(&d);
}

/* The newest position the daemon has seen committed ("head" of its ping reply). */
static uint64_t daemon_head(int fd) {
    rq_t rq;
    rq_begin(&rq, "ping", 1, 0);
    cr_assert_eq(raw_send_rq(fd, &rq), 0);
    rq_free(&rq);
    reply_t rep;
    cr_assert_eq(raw_recv(fd, 20000, &rep), 0, "no reply to ping");
    uint64_t head = obj_uint(reply_get(&rep, "head"));
    reply_free(&rep);
    return head;
}

enum { BURST_EVENTS = 160, BURST_EVENT_BYTES = 1 << 20 };

/* Another writer commits a burst of large events in one transaction (160 MB as read, though
 * PostgreSQL compresses the repeated payloads when it stores them): the daemon's live feed
 * fetches them a page of bytes at a time (max_frame, 16 MiB), so its peak RSS grows by about a
 * page or two, not by the burst. */
Test(pg_subs, a_burst_of_large_events_from_another_writer_is_fed_a_page_of_bytes_at_a_time) {
    /* Under AddressSanitizer freed memory waits in a quarantine (256 MB by default) that would
     * show as RSS: keep it small, so that RSS tells what the daemon really holds. */
    const char *asan = getenv("ASAN_OPTIONS");
    char opts[1024];
    snprintf(opts, sizeof opts, "%s%squarantine_size_mb=4", asan ? asan : "", asan ? ":" : "");
    setenv("ASAN_OPTIONS", opts, 1);
    test_daemon_t d;
    start_daemon(&d);
    int fd = test_connect_raw(&d);
    cr_assert_geq(fd, 0);
    uint64_t start = daemon_head(fd);
    cr_assert_eq(rss_peak_reset(d.pid), 0);
    long before = rss_peak_kb(d.pid);
    char sql[1024], out[64], err[512];
    snprintf(sql, sizeof sql,
             "WITH burst AS (INSERT INTO evs_events (position, event_id, entity_id, version, "
             "topic, stored_at, payload) SELECT nextval('evs_position_seq'), gen_random_uuid(), "
             "'burst-' || g, 1, 'burst', 0, convert_to(repeat('x', %d), 'UTF8') FROM "
             "generate_series(1, %d) AS g RETURNING position) SELECT max(position) FROM burst",
             BURST_EVENT_BYTES, BURST_EVENTS);
    cr_assert_eq(test_sql(db.url, sql, out, sizeof out, err, sizeof err), 0, "%s", err);
    uint64_t last = strtoull(out, NULL, 10);
    cr_assert_gt(last, start);
    cr_assert_eq(test_sql(db.url, "NOTIFY evstore_events", NULL, 0, err, sizeof err), 0, "%s", err);
    /* The feed has read the whole burst when the daemon's head reaches its last position. */
    int64_t deadline = now_ms() + 60000;
    while (daemon_head(fd) < last)
        cr_assert_lt(now_ms(), deadline, "the feed did not read the burst within 60 s");
    long grew = rss_peak_kb(d.pid) - before;
    cr_log_info("feed burst: daemon peak RSS +%ld kB", grew);
    cr_assert_lt(grew, 80 * 1024L, "reading a burst of %d MB took %ld MB", BURST_EVENTS,
                 grew / 1024);
    close(fd);
    stop_daemon(&d);
}

/* The daemon's stats counter key, read with a raw stats request on fd. */
static uint64_t daemon_stat(int fd, const char *key) {
    rq_t rq;
    rq_begin(&rq, "stats", 2, 0);
    cr_assert_eq(raw_send_rq(fd, &rq), 0);
    rq_free(&rq);
    reply_t rep;
    cr_assert_eq(raw_recv(fd, 20000, &rep), 0, "no reply to stats");
    const msgpack_object *v = obj_get(reply_get(&rep, "stats"), key);
    cr_assert(v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER, "stats has no %s", key);
    uint64_t n = v->via.u64;
    reply_free(&rep);
    return n;
}

enum { OVERFLOW_ROUNDS = 10, OVERFLOW_WRITERS = 4 };

/* A subscription catching up keeps the live events that match it during each read, up to the
 * bytes of one push (here a 4 KiB output_limit, about 25 events). Writers append faster than
 * that while it catches up: its pending events overflow the bound (rounds of writes go on until
 * the daemon's subscription_pending_overflows counter says they did), are dropped, and are read
 * from the store with the next page instead. It still gets every acknowledged event once, in
 * order, and one caught_up marker. */
Test(pg_subs, live_events_past_the_pending_bound_are_read_from_the_store_instead) {
    test_daemon_t a;
    cr_assert_eq(
        test_daemon_launch(&a, db.url, true, (const char *const[]){"--output-limit", "4096", NULL}),
        0, "evstored did not start on %s", db.url);
    int stats_fd = test_connect_raw(&a);
    cr_assert_geq(stats_fd, 0);
    writer_t *ws = calloc(1 + OVERFLOW_ROUNDS * OVERFLOW_WRITERS, sizeof *ws);
    cr_assert_not_null(ws);
    start_writer(&ws[0], a.unix_path, 99, 500, 4, 0); /* 2,000 stored events to catch up */
    join_writer(&ws[0]);
    raw_conn_t c;
    cr_assert_eq(raw_conn_open(&c, a.unix_path), 0);
    got_t g[1] = {{.spec = {.has_after = true, .after = 0}}};
    subscribe_from(&c, g, 0, 1);
    int nw = 1;
    uint64_t overflows = 0;
    for (int r = 0; r < OVERFLOW_ROUNDS && overflows == 0; r++) {
        writer_t *round = &ws[nw];
        for (int i = 0; i < OVERFLOW_WRITERS; i++)
            start_writer(&round[i], a.unix_path, nw + i, 200, 4, 0);
        nw += OVERFLOW_WRITERS;
        while (!all_done(round, OVERFLOW_WRITERS))
            read_pushes(&c, g, 1, 20);
        for (int i = 0; i < OVERFLOW_WRITERS; i++)
            join_writer(&round[i]);
        overflows = daemon_stat(stats_fd, "subscription_pending_overflows");
    }
    cr_assert_gt(overflows, 0, "%d rounds of writes never overflowed the pending events",
                 OVERFLOW_ROUNDS);
    cr_log_info("pending events overflowed %llu times in %d rounds of writes",
                (unsigned long long)overflows, (nw - 1) / OVERFLOW_WRITERS);
    check_all(&c, g, 1, ws, nw);
    raw_conn_close(&c);
    close(stats_fd);
    for (int i = 0; i < nw; i++)
        free(ws[i].acked);
    free(ws);
    stop_daemon(&a);
}
