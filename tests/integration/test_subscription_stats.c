/* test_subscription_stats.c: what the stats op says of a subscriber that stops reading.
 *
 * A subscriber with a small receive buffer stops reading while events are appended. The daemon
 * must account for it: the bytes it holds for it (subscriber_queue_bytes, the subscription's
 * queued_bytes) and how far behind it is (its position, the last event queued for it, and its
 * lag, head minus that position). When the subscriber reads again it receives every event, in
 * order, up to the head, and the stats go back to nothing queued and no lag. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"

#define PER_REQUEST 50
#define PAYLOAD 1000
#define MAX_EVENTS 40000
#define OUTPUT_LIMIT "65536"

TestSuite(subscription_stats, .fini = fx_teardown, .timeout = 120);

/* The numbers the test reads from a stats reply: the totals and the entry of subscription sid. */
typedef struct sub_stats {
    uint64_t queue_bytes, lag_max, head;
    bool listed;
    uint64_t position, sub_head, lag, queued_bytes;
    bool live;
} sub_stats_t;

static sub_stats_t read_stats(int fd, uint64_t sid) {
    static uint64_t id = 1000000;
    rq_t r;
    rq_begin(&r, "stats", ++id, 0);
    fx_send_rq(fd, &r);
    reply_t rep = fx_expect_ok(fd, id);
    const msgpack_object *st = reply_get(&rep, "stats");
    cr_assert_not_null(st);
    sub_stats_t s = {
        .queue_bytes = obj_uint(obj_get(st, "subscriber_queue_bytes")),
        .lag_max = obj_uint(obj_get(st, "subscription_lag_max")),
        .head = obj_uint(obj_get(st, "head")),
    };
    const msgpack_object *list = obj_get(st, "subscriptions");
    cr_assert(list && list->type == MSGPACK_OBJECT_ARRAY, "no subscriptions list");
    for (uint32_t i = 0; i < list->via.array.size; i++) {
        const msgpack_object *e = &list->via.array.ptr[i];
        if (obj_uint(obj_get(e, "sub")) != sid) continue;
        s.listed = true;
        s.position = obj_uint(obj_get(e, "position"));
        s.sub_head = obj_uint(obj_get(e, "head"));
        s.lag = obj_uint(obj_get(e, "lag"));
        s.queued_bytes = obj_uint(obj_get(e, "queued_bytes"));
        const msgpack_object *live = obj_get(e, "live");
        s.live = live && live->type == MSGPACK_OBJECT_BOOLEAN && live->via.boolean;
    }
    reply_free(&rep);
    return s;
}

/* Appends PER_REQUEST events of PAYLOAD bytes to the test's topic; returns the last position. */
static uint64_t append_batch(int fd, uint64_t id) {
    rq_t r;
    rq_begin(&r, "append", id, 1);
    pk_str(&r.pk, "events");
    msgpack_pack_array(&r.pk, PER_REQUEST);
    for (int i = 0; i < PER_REQUEST; i++)
        fx_pack_event(&r.pk, "acct", 4, "stopped", PAYLOAD);
    fx_send_rq(fd, &r);
    reply_t rep = fx_expect_ok(fd, id);
    const msgpack_object *pos = reply_get(&rep, "positions");
    cr_assert(pos && pos->type == MSGPACK_OBJECT_ARRAY && pos->via.array.size == PER_REQUEST);
    uint64_t last = pos->via.array.ptr[PER_REQUEST - 1].via.u64;
    reply_free(&rep);
    return last;
}

Test(subscription_stats, a_stopped_subscriber_shows_queued_bytes_and_lag_until_it_reads) {
    const char *extra[] = {"--output-limit", OUTPUT_LIMIT, NULL};
    fx_start(extra);
    int sub = fx_connect_small_rcvbuf(), w = fx_connect();

    rq_t r;
    rq_begin(&r, "subscribe", 1, 1);
    pk_str(&r.pk, "topics");
    msgpack_pack_array(&r.pk, 1);
    pk_str(&r.pk, tname("stopped"));
    fx_send_rq(sub, &r);
    reply_t rep = fx_expect_ok(sub, 1);
    uint64_t sid = obj_uint(reply_get(&rep, "sub"));
    reply_free(&rep);
    sub_stats_t s = read_stats(w, sid);
    cr_assert(s.listed && s.live && s.lag == 0 && s.queue_bytes == 0,
              "a fresh subscription: listed %d, live %d, lag %llu, queue %llu", s.listed, s.live,
              (unsigned long long)s.lag, (unsigned long long)s.queue_bytes);

    /* The subscriber reads nothing: append until the daemon holds bytes for it and it has
     * fallen behind (its socket buffers are full, its queue over output_limit, and the rest
     * waits in the store). */
    uint64_t head = 0, appended = 0, id = 100;
    do {
        head = append_batch(w, ++id);
        appended += PER_REQUEST;
        s = read_stats(w, sid);
    } while (!(s.queue_bytes > 0 && s.lag > 0) && appended < MAX_EVENTS);
    cr_assert(
        s.queue_bytes > 0 && s.lag > 0, "after %llu events: subscriber_queue_bytes %llu, lag %llu",
        (unsigned long long)appended, (unsigned long long)s.queue_bytes, (unsigned long long)s.lag);
    cr_assert(s.listed && !s.live, "the stopped subscription is still live");
    cr_assert_eq(s.head, head);
    cr_assert_eq(s.sub_head, head);
    cr_assert_eq(s.position + s.lag, head, "position %llu + lag %llu != head %llu",
                 (unsigned long long)s.position, (unsigned long long)s.lag,
                 (unsigned long long)head);
    cr_assert_eq(s.lag_max, s.lag);
    cr_assert(s.queued_bytes > 0 && s.queued_bytes <= s.queue_bytes, "queued_bytes %llu of %llu",
              (unsigned long long)s.queued_bytes, (unsigned long long)s.queue_bytes);
    uint64_t stopped_position = s.position;

    /* It reads again: every event up to the head, in order; then nothing is queued and it has
     * no lag. */
    uint64_t got = 0, last = 0;
    bool passed_stopped = false;
    while (last < head) {
        cr_assert_eq(raw_recv(sub, 30000, &rep), 0, "stream ended after %llu events",
                     (unsigned long long)got);
        const msgpack_object *evs = reply_get(&rep, "events");
        for (uint32_t i = 0; evs && i < evs->via.array.size; i++) {
            uint64_t p = obj_uint(obj_get(&evs->via.array.ptr[i], "position"));
            cr_assert_gt(p, last, "position %llu after %llu", (unsigned long long)p,
                         (unsigned long long)last);
            if (p == stopped_position) passed_stopped = true;
            last = p;
            got++;
        }
        reply_free(&rep);
    }
    cr_assert_eq(got, appended);
    cr_assert(passed_stopped, "the position stats showed (%llu) was never received",
              (unsigned long long)stopped_position);
    int64_t deadline = now_ms() + 10000;
    do {
        s = read_stats(w, sid);
    } while (!(s.queue_bytes == 0 && s.lag == 0 && s.live) && now_ms() < deadline &&
             (sleep_ms(20), 1));
    cr_assert(s.queue_bytes == 0 && s.lag == 0 && s.live && s.position == head,
              "after reading: queue %llu, lag %llu, live %d, position %llu of %llu",
              (unsigned long long)s.queue_bytes, (unsigned long long)s.lag, s.live,
              (unsigned long long)s.position, (unsigned long long)head);
    close(sub);
    close(w);
    fx_finish();
}
