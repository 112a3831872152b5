/* test_conn.c: connection behaviour that is not about bad input: a client that half-closes
 * still gets its replies, and pages too large for one frame are cut short and say so. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../common/daemon.h"
#include "../common/rawio.h"

static test_daemon_t d;

static void start(void) {
    const char *args[] = {"--max-frame", "65536", NULL};
    cr_assert_eq(test_daemon_start(&d, args), 0, "daemon did not start");
}

static void stop(void) {
    cr_expect_eq(test_daemon_stop(&d), 0, "daemon did not exit 0");
}

/* Appends one event of payload_len bytes to entity; returns its position. */
static uint64_t append_one(int fd, uint64_t id, const char *entity, size_t payload_len) {
    rq_t r;
    rq_init(&r);
    rq_begin(&r, "append", id, 1);
    pk_str(&r.pk, "events");
    msgpack_pack_array(&r.pk, 1);
    msgpack_pack_map(&r.pk, 3);
    pk_str(&r.pk, "entity_id");
    pk_str(&r.pk, entity);
    pk_str(&r.pk, "topic");
    pk_str(&r.pk, tname("conn-topic"));
    pk_str(&r.pk, "payload");
    char *payload = calloc(1, payload_len);
    pk_bin(&r.pk, payload, payload_len);
    free(payload);
    cr_assert_eq(raw_send_rq(fd, &r), 0);
    rq_free(&r);
    reply_t rep;
    cr_assert_eq(raw_recv(fd, 5000, &rep), 0);
    cr_assert(reply_ok(&rep), "append failed: %s", reply_code(&rep));
    uint64_t pos = reply_get(&rep, "positions")->via.array.ptr[0].via.u64;
    reply_free(&rep);
    return pos;
}

Test(conn, a_client_that_shuts_its_sending_side_still_gets_every_reply, .init = start,
     .fini = stop) {
    int fd = test_connect_raw(&d);
    cr_assert_geq(fd, 0);
    for (uint64_t id = 1; id <= 50; id++) {
        rq_t r;
        rq_init(&r);
        rq_begin(&r, "ping", id, 0);
        cr_assert_eq(raw_send_rq(fd, &r), 0);
        rq_free(&r);
    }
    shutdown(fd, SHUT_WR);
    for (uint64_t id = 1; id <= 50; id++) {
        reply_t rep;
        cr_assert_eq(raw_recv(fd, 5000, &rep), 0, "reply %llu missing", (unsigned long long)id);
        uint64_t got;
        cr_assert(reply_id(&rep, &got) && got == id);
        reply_free(&rep);
    }
    cr_expect_eq(raw_wait_closed(fd, 5000), 0, "the daemon did not close after the replies");
    close(fd);
    cr_assert(test_daemon_alive(&d));
}

Test(conn, a_page_larger_than_max_frame_is_cut_short_and_says_truncated, .init = start,
     .fini = stop) {
    int fd = test_connect_raw(&d);
    cr_assert_geq(fd, 0);
    const char *entity = tname("big");
    /* 8 events of 20 KB: about 160 KB, over the daemon's 64 KB max_frame. */
    for (uint64_t i = 0; i < 8; i++)
        append_one(fd, 100 + i, entity, 20000);
    uint64_t from = 0, seen = 0;
    for (int page = 0; page < 16 && seen < 8; page++) {
        rq_t r;
        rq_init(&r);
        rq_begin(&r, "get-by-entity", 1000 + page, 2);
        pk_str(&r.pk, "entity_id");
        pk_str(&r.pk, entity);
        pk_str(&r.pk, "from_version");
        msgpack_pack_uint64(&r.pk, from);
        cr_assert_eq(raw_send_rq(fd, &r), 0);
        rq_free(&r);
        reply_t rep;
        cr_assert_eq(raw_recv(fd, 5000, &rep), 0);
        cr_assert(reply_ok(&rep));
        cr_assert_leq(rep.len, 65536, "a reply of %zu bytes is over max_frame", rep.len);
        const msgpack_object *evs = reply_get(&rep, "events");
        const msgpack_object *trunc = reply_get(&rep, "truncated");
        uint32_t n = evs->via.array.size;
        cr_assert_gt(n, 0);
        for (uint32_t i = 0; i < n; i++)
            cr_assert_eq(obj_get(&evs->via.array.ptr[i], "version")->via.u64, seen + i);
        seen += n;
        from = seen;
        if (seen < 8)
            cr_assert(trunc && trunc->type == MSGPACK_OBJECT_BOOLEAN && trunc->via.boolean,
                      "a short page must say truncated");
        else
            cr_assert_null(trunc);
        reply_free(&rep);
    }
    cr_assert_eq(seen, 8);
    close(fd);
}

Test(conn, a_catch_up_larger_than_max_frame_arrives_whole_over_several_pushes, .init = start,
     .fini = stop) {
    int fd = test_connect_raw(&d);
    cr_assert_geq(fd, 0);
    const char *entity = tname("bigsub");
    uint64_t first = 0;
    for (uint64_t i = 0; i < 8; i++) {
        uint64_t p = append_one(fd, 200 + i, entity, 20000);
        if (i == 0) first = p;
    }
    rq_t r;
    rq_init(&r);
    rq_begin(&r, "subscribe", 300, 2);
    pk_str(&r.pk, "after");
    msgpack_pack_uint64(&r.pk, first - 1);
    pk_str(&r.pk, "entity_prefix");
    pk_str(&r.pk, entity);
    cr_assert_eq(raw_send_rq(fd, &r), 0);
    rq_free(&r);
    uint64_t seen = 0;
    bool caught_up = false;
    while (!caught_up) {
        reply_t rep;
        cr_assert_eq(raw_recv(fd, 5000, &rep), 0);
        cr_assert_leq(rep.len, 65536);
        const msgpack_object *evs = reply_get(&rep, "events");
        if (evs)
            for (uint32_t i = 0; i < evs->via.array.size; i++)
                cr_assert_eq(obj_get(&evs->via.array.ptr[i], "version")->via.u64, seen++);
        if (reply_get(&rep, "caught_up")) caught_up = true;
        reply_free(&rep);
    }
    cr_assert_eq(seen, 8);
    close(fd);
}

Test(conn, a_subscribe_reply_says_where_the_subscription_starts, .init = start, .fini = stop) {
    int fd = test_connect_raw(&d);
    cr_assert_geq(fd, 0);
    uint64_t last = 0;
    for (uint64_t i = 0; i < 3; i++)
        last = append_one(fd, 400 + i, tname("head"), 10);
    for (int with_after = 0; with_after <= 1; with_after++) {
        rq_t r;
        rq_init(&r);
        rq_begin(&r, "subscribe", 500 + with_after, with_after ? 1 : 0);
        if (with_after) {
            pk_str(&r.pk, "after");
            msgpack_pack_uint64(&r.pk, 1);
        }
        cr_assert_eq(raw_send_rq(fd, &r), 0);
        rq_free(&r);
        reply_t rep;
        cr_assert_eq(raw_recv(fd, 5000, &rep), 0);
        cr_assert(reply_ok(&rep));
        const msgpack_object *after = reply_get(&rep, "after");
        cr_assert_not_null(after);
        /* With "after": the position asked for. Live from now: the newest position the daemon
         * has seen committed; a PostgreSQL daemon learns of commits through its live feed, which
         * may still be a read behind the acknowledgement. */
        const char *store = getenv("EVSTORE_TEST_STORE");
        if (with_after)
            cr_assert_eq(after->via.u64, 1);
        else if (!store || strcmp(store, "memory") == 0)
            cr_assert_eq(after->via.u64, last);
        else
            cr_assert_leq(after->via.u64, last);
        reply_free(&rep);
    }
    close(fd);
}
