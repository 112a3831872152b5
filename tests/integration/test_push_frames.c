/* test_push_frames.c: a live push is never over max_frame. An append frame of many small events
 * just under max_frame grows when pushed (each event gains its position, version, id and
 * timestamp): the daemon cuts the push into several frames, in order, each event once. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"

TestSuite(push_frames, .fini = fx_teardown, .timeout = 60);

#define MAX_FRAME 2048
#define MAX_EVENTS 512

/* Packs into sb an append (id) of the most events of entity/topic, each with a 1-byte payload,
 * whose frame stays under MAX_FRAME; returns how many. */
static size_t append_just_under(msgpack_sbuffer *sb, uint64_t id, const char *entity,
                                const char *topic) {
    static rq_event_t evs[MAX_EVENTS];
    size_t n = 0;
    for (; n < MAX_EVENTS; n++) {
        evs[n] =
            (rq_event_t){.entity_id = entity, .topic = topic, .payload = "x", .payload_len = 1};
        rq_append(sb, id, evs, n + 1);
        if (sb->size > MAX_FRAME) break;
    }
    cr_assert(n > 1 && n < MAX_EVENTS, "%zu events", n);
    rq_append(sb, id, evs, n);
    return n;
}

Test(push_frames, a_live_push_is_cut_at_max_frame_each_event_once_in_order) {
    fx_start((const char *[]){"--max-frame", "2048", NULL});
    const char *topic = tname("t");
    int sfd = fx_connect();
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    rq_subscribe(&sb, 1, false, 0, (const char *const[]){topic}, 1, NULL);
    fx_send_frame(sfd, sb.data, sb.size);
    reply_t rep = fx_expect_ok(sfd, 1);
    uint64_t sid = obj_uint(reply_get(&rep, "sub"));
    reply_free(&rep);

    int wfd = fx_connect();
    size_t n = append_just_under(&sb, 2, tname("e"), topic);
    cr_assert_leq(sb.size, MAX_FRAME);
    fx_send_frame(wfd, sb.data, sb.size);
    rep = fx_expect_ok(wfd, 2);
    reply_free(&rep);

    /* Every event once, in position order, in frames of at most MAX_FRAME bytes; more than one
     * frame, since the events as pushed take more than the request did. */
    size_t got = 0, frames = 0;
    uint64_t last = 0;
    while (got < n) {
        cr_assert_eq(raw_recv(sfd, 10000, &rep), 0, "no push after %zu of %zu events", got, n);
        cr_assert_leq(rep.len, MAX_FRAME, "a push of %zu bytes", rep.len);
        cr_assert_eq(obj_uint(reply_get(&rep, "sub")), sid);
        const msgpack_object *evs = reply_get(&rep, "events");
        cr_assert(evs && evs->type == MSGPACK_OBJECT_ARRAY && evs->via.array.size > 0);
        for (uint32_t i = 0; i < evs->via.array.size; i++) {
            uint64_t pos = obj_uint(obj_get(&evs->via.array.ptr[i], "position"));
            cr_assert_gt(pos, last, "event at %llu after %llu", (unsigned long long)pos,
                         (unsigned long long)last);
            last = pos;
            got++;
        }
        frames++;
        reply_free(&rep);
    }
    cr_assert_eq(got, n, "%zu events pushed for %zu appended", got, n);
    cr_assert_gt(frames, 1, "the push was not cut");
    /* Nothing more comes. */
    cr_assert_eq(raw_recv(sfd, 0, &rep), RAW_TIMEOUT);
    msgpack_sbuffer_destroy(&sb);
    close(wfd);
    close(sfd);
    fx_finish();
}
