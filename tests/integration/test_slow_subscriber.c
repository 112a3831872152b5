/* test_slow_subscriber.c: a subscriber that stops reading while 100,000 events are appended.
 *
 * Appends must not wait for it, the daemon's memory for it must stay bounded (the output queued
 * for subscriber connections, from the stats op, never passes --output-limit plus one push), and
 * when it reads again it must receive every event exactly once and in order: the daemon stopped
 * feeding it live and caught it up from the store. The daemon's RSS is sampled and logged; on
 * PostgreSQL (where the events are not in the daemon's memory) its growth is also asserted. */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/daemon.h"
#include "../common/rawio.h"

#define TOTAL 100000
#define PER_REQUEST 100
#define OUTPUT_LIMIT (1024 * 1024)
#define STOPPED_MS 10000

static long rss_kb(pid_t pid) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    if (!f) return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1) break;
    fclose(f);
    return kb;
}

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
        usleep(200000);
    }
    cr_log_info("slow subscriber: daemon RSS %ld kB before, %ld kB max (+%ld kB) for %d events; "
                "subscriber queue max %llu bytes (limit %d)",
                rss_before, rss_max, rss_max - rss_before, TOTAL,
                (unsigned long long)queue_max, OUTPUT_LIMIT);
    /* Bounded: the limit plus one push (a commit of 100 events, or a catch-up page). */
    cr_assert_leq(queue_max, OUTPUT_LIMIT + 1024 * 1024,
                  "%llu bytes queued for the subscriber", (unsigned long long)queue_max);
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
