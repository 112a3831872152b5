/* test_slow_subscriber.c: subscribers that stop reading while events are appended.
 *
 * A subscriber that reads nothing while 300 appends of 8 KB go through, with and without a small
 * --output-limit; and one that stops reading while 100,000 events are appended. Appends must not
 * wait for it, the daemon's memory for it must stay bounded (the output queued for subscriber
 * connections, from the stats op, never passes --output-limit plus one push), and when it reads
 * again it must receive every event exactly once and in order: the daemon stopped feeding it live
 * and caught it up from the store. The daemon's RSS is sampled and logged; on PostgreSQL (where the
 * events are not in the daemon's memory) its growth is also asserted. */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/daemon.h"
#include "../common/rawio.h"
#include "../common/rss.h"
#include "fixture.h"

#define TOTAL 100000
#define PER_REQUEST 100
#define OUTPUT_LIMIT (1024 * 1024)
#define STOPPED_MS 10000

TestSuite(slow_subscriber, .fini = fx_teardown, .timeout = 60);

static uint64_t subscriber_queue_bytes(int fd, uint64_t id) {
    rq_t r;
    rq_init(&r);
    rq_begin(&r, "stats", id, 0);
    cr_assert_eq(raw_send_rq(fd, &r), 0);
    rq_free(&r);
    reply_t rep;
    cr_assert_eq(raw_recv(fd, 10000, &rep), 0);
    cr_assert(reply_ok(&rep));
    const msgpack_object *q = obj_get(reply_get(&rep, "stats"), "subscriber_queue_bytes");
    cr_assert_not_null(q);
    uint64_t v = q->via.u64;
    reply_free(&rep);
    return v;
}

Test(slow_subscriber, gets_all_100000_events_once_in_order_with_bounded_daemon_memory,
     .timeout = 240) {
    test_daemon_t d;
    char limit[32];
    snprintf(limit, sizeof limit, "%d", OUTPUT_LIMIT);
    const char *args[] = {"--output-limit", limit, NULL};
    /* Under AddressSanitizer, freed memory waits in a quarantine (256 MB by default) that would
     * show as RSS growth: keep it small so that RSS tells what the daemon really holds. */
    const char *asan = getenv("ASAN_OPTIONS");
    char opts[1024];
    snprintf(opts, sizeof opts, "%s%squarantine_size_mb=4", asan ? asan : "", asan ? ":" : "");
    setenv("ASAN_OPTIONS", opts, 1);
    cr_assert_eq(test_daemon_start(&d, args), 0);
    const char *prefix = tname("slow-");
    int sub = test_connect_raw(&d), w = test_connect_raw(&d);
    cr_assert(sub >= 0 && w >= 0);

    /* Subscribe live (only this test's entities), then stop reading. */
    rq_t r;
    rq_init(&r);
    rq_begin(&r, "subscribe", 1, 1);
    pk_str(&r.pk, "entity_prefix");
    pk_str(&r.pk, prefix);
    cr_assert_eq(raw_send_rq(sub, &r), 0);
    rq_free(&r);
    reply_t rep;
    cr_assert_eq(raw_recv(sub, 5000, &rep), 0);
    cr_assert(reply_ok(&rep));
    reply_free(&rep);
    int64_t stopped_at = now_ms();
    long rss_before = rss_kb(d.pid), rss_max = rss_before;
    uint64_t queue_max = 0;

    static uint64_t acked[TOTAL];
    char entity[300], payload[100];
    memset(payload, 'p', sizeof payload);
    for (int req = 0; req < TOTAL / PER_REQUEST; req++) {
        rq_init(&r);
        rq_begin(&r, "append", 100 + (uint64_t)req, 1);
        pk_str(&r.pk, "events");
        msgpack_pack_array(&r.pk, PER_REQUEST);
        for (int i = 0; i < PER_REQUEST; i++) {
            snprintf(entity, sizeof entity, "%s%d", prefix, (req * PER_REQUEST + i) % 1000);
            msgpack_pack_map(&r.pk, 3);
            pk_str(&r.pk, "entity_id");
            pk_str(&r.pk, entity);
            pk_str(&r.pk, "topic");
            pk_str(&r.pk, "slow.Event");
            pk_str(&r.pk, "payload");
            pk_bin(&r.pk, payload, sizeof payload);
        }
        cr_assert_eq(raw_send_rq(w, &r), 0);
        rq_free(&r);
        cr_assert_eq(raw_recv(w, 30000, &rep), 0, "append %d got no reply", req);
        cr_assert(reply_ok(&rep), "append %d: %s", req, reply_code(&rep));
        const msgpack_object *pos = reply_get(&rep, "positions");
        for (int i = 0; i < PER_REQUEST; i++)
            acked[req * PER_REQUEST + i] = pos->via.array.ptr[i].via.u64;
        reply_free(&rep);
        if (req % 50 == 0) {
            uint64_t q = subscriber_queue_bytes(w, 1000000 + (uint64_t)req);
            if (q > queue_max) queue_max = q;
            long rss = rss_kb(d.pid);
            if (rss > rss_max) rss_max = rss;
        }
    }
    while (now_ms() - stopped_at < STOPPED_MS) {
        uint64_t q = subscriber_queue_bytes(w, 2000000);
        if (q > queue_max) queue_max = q;
        long rss = rss_kb(d.pid);
        if (rss > rss_max) rss_max = rss;
        sleep_ms(200);
    }
    cr_log_info("slow subscriber: daemon RSS %ld kB before, %ld kB max (+%ld kB) for %d events; "
                "subscriber queue max %llu bytes (limit %d)",
                rss_before, rss_max, rss_max - rss_before, TOTAL, (unsigned long long)queue_max,
                OUTPUT_LIMIT);
    /* Bounded: the limit plus one push (a commit of 100 events, or a catch-up page). */
    cr_assert_leq(queue_max, OUTPUT_LIMIT + 1024 * 1024, "%llu bytes queued for the subscriber",
                  (unsigned long long)queue_max);
    const char *store = getenv("EVSTORE_TEST_STORE");
    if (store && strcmp(store, "memory") != 0)
        cr_assert_lt(rss_max - rss_before, 64 * 1024,
                     "daemon RSS grew by %ld kB with the events in PostgreSQL",
                     rss_max - rss_before);

    /* Read again: every acknowledged position once, in order. */
    size_t got = 0;
    int64_t deadline = now_ms() + 120000;
    while (got < TOTAL && now_ms() < deadline) {
        cr_assert_eq(raw_recv(sub, 30000, &rep), 0, "stream ended after %zu events", got);
        const msgpack_object *evs = reply_get(&rep, "events");
        if (evs)
            for (uint32_t i = 0; i < evs->via.array.size; i++) {
                uint64_t p = obj_get(&evs->via.array.ptr[i], "position")->via.u64;
                cr_assert_lt(got, (size_t)TOTAL, "more events than appended");
                cr_assert_eq(p, acked[got], "event %zu: position %llu, expected %llu", got,
                             (unsigned long long)p, (unsigned long long)acked[got]);
                got++;
            }
        reply_free(&rep);
    }
    cr_assert_eq(got, (size_t)TOTAL);
    close(sub);
    close(w);
    cr_assert_eq(test_daemon_stop(&d), 0);
}

/* ---------------------------------------------------------------- a subscriber that never reads,
 * with other writers */

/* 300 appends of 8 KB go through while a subscriber reads nothing: they are not slowed down,
 * the daemon keeps serving, and when the subscriber finally reads it gets every event exactly
 * once, in order (the daemon catches it up from the store once its queue is full). */
static void slow_subscriber(const char *const *extra) {
    enum { N = 300, SIZE = 8192 };
    fx_start(extra);
    int sub = fx_connect_small_rcvbuf();
    rq_t r;
    rq_begin(&r, "subscribe", 1, 1);
    pk_str(&r.pk, "topics");
    msgpack_pack_array(&r.pk, 1);
    pk_str(&r.pk, tname("slow"));
    fx_send_rq(sub, &r);
    reply_t rep = fx_expect_ok(sub, 1);
    const msgpack_object *sid = reply_get(&rep, "sub");
    cr_assert(sid && sid->type == MSGPACK_OBJECT_POSITIVE_INTEGER, "subscribe gave no sub id");
    uint64_t sub_id = sid->via.u64;
    reply_free(&rep);

    int w = fx_connect();
    uint64_t *positions = calloc(N, sizeof *positions);
    int64_t t0 = now_ms(), slowest = 0;
    for (int i = 0; i < N; i++) {
        int64_t t = now_ms();
        rq_begin(&r, "append", (uint64_t)i + 100, 1);
        pk_str(&r.pk, "events");
        msgpack_pack_array(&r.pk, 1);
        char entity[64];
        snprintf(entity, sizeof entity, "%s-%d", tname("slow"), i % 10);
        fx_pack_event(&r.pk, entity, strlen(entity), "slow", SIZE);
        fx_send_rq(w, &r);
        rep = fx_expect_ok(w, (uint64_t)i + 100);
        const msgpack_object *p = reply_get(&rep, "positions");
        cr_assert(p && p->type == MSGPACK_OBJECT_ARRAY && p->via.array.size == 1);
        positions[i] = p->via.array.ptr[0].via.u64;
        reply_free(&rep);
        if (now_ms() - t > slowest) slowest = now_ms() - t;
    }
    int64_t total = now_ms() - t0;
    cr_assert_lt(slowest, 2000, "one append took %lld ms", (long long)slowest);
    cr_assert_lt(total, 20000, "300 appends took %lld ms", (long long)total);
    cr_assert(test_daemon_alive(&fx_daemon), "the daemon stopped serving new connections");
    fx_conn_still_serves(w);

    /* Now the subscriber reads everything. */
    size_t got = 0;
    while (got < N) {
        reply_t push;
        int rc = raw_recv(sub, 10000, &push);
        cr_assert_eq(rc, 0, "push stream ended after %zu of %d events (%d)", got, N, rc);
        uint64_t ignored;
        cr_assert_not(reply_id(&push, &ignored), "a push carries no id");
        const msgpack_object *s = reply_get(&push, "sub");
        cr_assert(s && s->type == MSGPACK_OBJECT_POSITIVE_INTEGER && s->via.u64 == sub_id,
                  "a push for another subscription");
        const msgpack_object *evs = reply_get(&push, "events");
        if (evs) {
            cr_assert_eq(evs->type, MSGPACK_OBJECT_ARRAY);
            for (uint32_t k = 0; k < evs->via.array.size; k++) {
                const msgpack_object *ev = &evs->via.array.ptr[k];
                const msgpack_object *pos = obj_get(ev, "position");
                cr_assert(pos && pos->type == MSGPACK_OBJECT_POSITIVE_INTEGER);
                cr_assert_lt(got, N, "more than %d events pushed", N);
                cr_assert_eq(pos->via.u64, positions[got],
                             "event %zu: position %llu, expected %llu (lost, repeated or "
                             "reordered)",
                             got, (unsigned long long)pos->via.u64,
                             (unsigned long long)positions[got]);
                const msgpack_object *pl = obj_get(ev, "payload");
                cr_assert(pl && pl->type == MSGPACK_OBJECT_BIN && pl->via.bin.size == SIZE);
                got++;
            }
        }
        reply_free(&push);
    }
    /* Exactly once: nothing more comes. */
    reply_t more;
    int rc = raw_recv(sub, 500, &more);
    if (rc == 0) {
        const msgpack_object *evs = reply_get(&more, "events");
        cr_assert(!evs || evs->via.array.size == 0, "events pushed twice");
    } else {
        cr_assert_eq(rc, RAW_TIMEOUT);
    }
    reply_free(&more);
    free(positions);
    close(sub);
    close(w);
    fx_finish();
}

Test(slow_subscriber, subscriber_that_never_reads_does_not_block_appends, .timeout = 120) {
    slow_subscriber(NULL);
}

/* The same with the smallest output limit, so that the subscriber surely falls behind after
 * the first event and every later one comes from the store. */
Test(slow_subscriber, subscriber_far_behind_the_output_limit_is_caught_up_from_the_store,
     .timeout = 120) {
    slow_subscriber((const char *[]){"--output-limit", "4096", NULL});
}
