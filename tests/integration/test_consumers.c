/* test_consumers.c: consumers on the wire as docs/protocol.md states them: checkpoint,
 * get-checkpoint, consumers, delete-checkpoint and append with a tracking, their reply shapes,
 * their error details and their bad requests. One daemon per test. */
#include <criterion/criterion.h>
#include <string.h>
#include <unistd.h>

#include "../../proto/event.h"
#include "fixture.h"

TestSuite(consumers, .fini = fx_teardown, .timeout = 60);

/* Appends one event to tname(entity); returns its position. */
static uint64_t append_one(int fd, uint64_t id, const char *entity) {
    fx_send_append(fd, id, tname(entity), strlen(tname(entity)), 4);
    reply_t rep = fx_expect_ok(fd, id);
    const msgpack_object *p = reply_get(&rep, "positions");
    cr_assert(p && p->type == MSGPACK_OBJECT_ARRAY && p->via.array.size == 1);
    uint64_t pos = obj_uint(&p->via.array.ptr[0]);
    reply_free(&rep);
    return pos;
}

/* Sends op with "consumer" (through tname) and, when has_position, "position". */
static void send_consumer_op(int fd, const char *op, uint64_t id, const char *consumer,
                             bool has_position, uint64_t position) {
    rq_t r;
    rq_begin(&r, op, id, has_position ? 2 : 1);
    pk_str(&r.pk, "consumer");
    pk_str(&r.pk, tname(consumer));
    if (has_position) {
        pk_str(&r.pk, "position");
        msgpack_pack_uint64(&r.pk, position);
    }
    fx_send_rq(fd, &r);
}

/* The ok reply to request id on fd, skipping the pushes before it (reply_free it). */
static reply_t expect_ok_skipping_pushes(int fd, uint64_t id) {
    for (;;) {
        reply_t rep;
        cr_assert_eq(raw_recv(fd, 10000, &rep), 0, "no reply to request %llu",
                     (unsigned long long)id);
        uint64_t got;
        if (!reply_id(&rep, &got)) {
            reply_free(&rep);
            continue;
        }
        cr_assert_eq(got, id);
        cr_assert(reply_ok(&rep), "request %llu failed: %s", (unsigned long long)id,
                  reply_code(&rep));
        return rep;
    }
}

static uint64_t expect_position(int fd, uint64_t id) {
    reply_t rep = expect_ok_skipping_pushes(fd, id);
    const msgpack_object *p = reply_get(&rep, "position");
    cr_assert(p && p->type == MSGPACK_OBJECT_POSITIVE_INTEGER, "no position in the reply");
    uint64_t v = p->via.u64;
    reply_free(&rep);
    return v;
}

/* Sends an append of one event to tname(entity) with a tracking. */
static void send_tracked(int fd, uint64_t id, const char *entity, const char *consumer,
                         uint64_t position) {
    rq_t r;
    rq_begin(&r, "append", id, 2);
    pk_str(&r.pk, "events");
    msgpack_pack_array(&r.pk, 1);
    fx_pack_event(&r.pk, tname(entity), strlen(tname(entity)), "t", 3);
    pk_str(&r.pk, "tracking");
    msgpack_pack_map(&r.pk, 2);
    pk_str(&r.pk, "consumer");
    pk_str(&r.pk, tname(consumer));
    pk_str(&r.pk, "position");
    msgpack_pack_uint64(&r.pk, position);
    fx_send_rq(fd, &r);
}

Test(consumers, checkpoint_get_list_delete) {
    fx_start(NULL);
    int fd = fx_connect();
    uint64_t p1 = append_one(fd, 1, "a"), p2 = append_one(fd, 2, "a");
    send_consumer_op(fd, "get-checkpoint", 3, "c", false, 0);
    cr_assert_eq(expect_position(fd, 3), 0);
    send_consumer_op(fd, "checkpoint", 4, "c", true, p1);
    cr_assert_eq(expect_position(fd, 4), p1);
    send_consumer_op(fd, "get-checkpoint", 5, "c", false, 0);
    cr_assert_eq(expect_position(fd, 5), p1);

    rq_t r;
    rq_begin(&r, "consumers", 6, 0);
    fx_send_rq(fd, &r);
    reply_t rep = fx_expect_ok(fd, 6);
    const msgpack_object *list = reply_get(&rep, "consumers"), *mine = NULL;
    cr_assert(list && list->type == MSGPACK_OBJECT_ARRAY);
    for (uint32_t i = 0; i < list->via.array.size; i++)
        if (obj_is_str(obj_get(&list->via.array.ptr[i], "consumer"), tname("c")))
            mine = &list->via.array.ptr[i];
    cr_assert_not_null(mine, "the consumer is not listed");
    uint64_t head = obj_uint(obj_get(mine, "head"));
    cr_assert_geq(head, p2);
    cr_assert_eq(obj_uint(obj_get(mine, "position")), p1);
    cr_assert_eq(obj_uint(obj_get(mine, "lag")), head - p1);
    const msgpack_object *active = obj_get(mine, "active");
    cr_assert(active && active->type == MSGPACK_OBJECT_BOOLEAN);
    cr_assert_geq(obj_uint(reply_get(&rep, "head")), head);
    reply_free(&rep);

    send_consumer_op(fd, "delete-checkpoint", 7, "c", false, 0);
    rep = fx_expect_ok(fd, 7);
    cr_assert_eq(obj_uint(reply_get(&rep, "deleted")), 1);
    reply_free(&rep);
    send_consumer_op(fd, "get-checkpoint", 8, "c", false, 0);
    cr_assert_eq(expect_position(fd, 8), 0);
    fx_finish();
}

Test(consumers, conflicts_carry_the_stored_position) {
    fx_start(NULL);
    int fd = fx_connect();
    uint64_t p1 = append_one(fd, 1, "a"), p2 = append_one(fd, 2, "a");
    send_consumer_op(fd, "checkpoint", 3, "c", true, p2);
    expect_position(fd, 3);
    send_consumer_op(fd, "checkpoint", 4, "c", true, p1);
    reply_t rep;
    cr_assert_eq(raw_recv(fd, 5000, &rep), 0);
    cr_assert_str_eq(reply_code(&rep), "conflict");
    const msgpack_object *err = reply_get(&rep, "error");
    cr_assert_eq(obj_uint(obj_get(err, "position")), p2);
    cr_assert_null(obj_get(err, "tracking"));
    reply_free(&rep);

    send_tracked(fd, 5, "out", "c", p1);
    cr_assert_eq(raw_recv(fd, 5000, &rep), 0);
    cr_assert_str_eq(reply_code(&rep), "conflict");
    err = reply_get(&rep, "error");
    const msgpack_object *tracking = obj_get(err, "tracking");
    cr_assert(tracking && tracking->type == MSGPACK_OBJECT_BOOLEAN && tracking->via.boolean);
    cr_assert_eq(obj_uint(obj_get(err, "position")), p2);
    reply_free(&rep);
    fx_finish();
}

Test(consumers, append_with_tracking_moves_the_checkpoint) {
    fx_start(NULL);
    int fd = fx_connect();
    uint64_t p1 = append_one(fd, 1, "a");
    send_tracked(fd, 2, "out", "pm", p1);
    reply_t rep = fx_expect_ok(fd, 2);
    reply_free(&rep);
    send_consumer_op(fd, "get-checkpoint", 3, "pm", false, 0);
    cr_assert_eq(expect_position(fd, 3), p1);
    send_consumer_op(fd, "checkpoint", 4, "pm", true, UINT64_C(1) << 62);
    fx_expect_error(fd, "bad_request", 4);
    fx_finish();
}

Test(consumers, bad_arguments_are_bad_requests) {
    fx_start(NULL);
    int fd = fx_connect();
    rq_t r;
    rq_begin(&r, "checkpoint", 1, 1); /* no position */
    pk_str(&r.pk, "consumer");
    pk_str(&r.pk, tname("c"));
    fx_send_rq(fd, &r);
    fx_expect_error(fd, "bad_request", 1);
    rq_begin(&r, "get-checkpoint", 2, 1); /* an empty name */
    pk_str(&r.pk, "consumer");
    pk_str(&r.pk, "");
    fx_send_rq(fd, &r);
    fx_expect_error(fd, "bad_request", 2);
    rq_begin(&r, "append", 3, 2); /* tracking is not a map */
    pk_str(&r.pk, "events");
    msgpack_pack_array(&r.pk, 0);
    pk_str(&r.pk, "tracking");
    msgpack_pack_uint64(&r.pk, 1);
    fx_send_rq(fd, &r);
    fx_expect_error(fd, "bad_request", 3);
    rq_begin(&r, "append", 4, 2); /* tracking without a position */
    pk_str(&r.pk, "events");
    msgpack_pack_array(&r.pk, 0);
    pk_str(&r.pk, "tracking");
    msgpack_pack_map(&r.pk, 1);
    pk_str(&r.pk, "consumer");
    pk_str(&r.pk, tname("c"));
    fx_send_rq(fd, &r);
    fx_expect_error(fd, "bad_request", 4);
    rq_begin(&r, "get-by-topic", 5, 2); /* consumer is not an argument of get-by-topic */
    pk_str(&r.pk, "topic");
    pk_str(&r.pk, tname("t"));
    pk_str(&r.pk, "consumer");
    pk_str(&r.pk, tname("c"));
    fx_send_rq(fd, &r);
    fx_expect_error(fd, "bad_request", 5);
    fx_conn_still_serves(fd);
    fx_finish();
}

/* Sends subscribe {"consumer": tname(consumer), "entity_prefix": tprefix()} and, when after is
 * not NULL, "after"; returns the reply's "after" (where it starts) and sets *sid. */
static uint64_t subscribe_consumer(int fd, uint64_t id, const char *consumer, const uint64_t *after,
                                   uint64_t *sid) {
    rq_t r;
    rq_begin(&r, "subscribe", id, after ? 3 : 2);
    pk_str(&r.pk, "consumer");
    pk_str(&r.pk, tname(consumer));
    pk_str(&r.pk, "entity_prefix");
    pk_str(&r.pk, tprefix());
    if (after) {
        pk_str(&r.pk, "after");
        msgpack_pack_uint64(&r.pk, *after);
    }
    fx_send_rq(fd, &r);
    reply_t rep = fx_expect_ok(fd, id);
    *sid = obj_uint(reply_get(&rep, "sub"));
    uint64_t start = obj_uint(reply_get(&rep, "after"));
    reply_free(&rep);
    return start;
}

/* The first event position of the next push of sub on fd. */
static uint64_t next_pushed(int fd, uint64_t sid) {
    reply_t rep;
    for (;;) {
        cr_assert_eq(raw_recv(fd, 10000, &rep), 0, "no push");
        const msgpack_object *events = reply_get(&rep, "events");
        if (obj_uint(reply_get(&rep, "sub")) == sid && events &&
            events->type == MSGPACK_OBJECT_ARRAY && events->via.array.size > 0)
            break;
        reply_free(&rep);
    }
    uint64_t pos = obj_uint(obj_get(&reply_get(&rep, "events")->via.array.ptr[0], "position"));
    reply_free(&rep);
    return pos;
}

Test(consumers, subscribe_with_a_consumer_starts_after_its_checkpoint) {
    fx_start(NULL);
    int fd = fx_connect();
    uint64_t p[3];
    for (int i = 0; i < 3; i++)
        p[i] = append_one(fd, (uint64_t)i + 1, "a");
    send_consumer_op(fd, "checkpoint", 10, "c", true, p[1]);
    expect_position(fd, 10);
    uint64_t sid;
    cr_assert_eq(subscribe_consumer(fd, 11, "c", NULL, &sid), p[1]);
    uint64_t first_sid = sid;
    cr_assert_eq(next_pushed(fd, sid), p[2], "it did not resume after the checkpoint");
    int fd2 = fx_connect();
    cr_assert_eq(subscribe_consumer(fd2, 12, "other", NULL, &sid), 0,
                 "a consumer without a checkpoint starts at the beginning");
    cr_assert_eq(next_pushed(fd2, sid), p[0]);
    rq_t r; /* the consumer is held by the first subscription: end it */
    rq_begin(&r, "unsubscribe", 14, 1);
    pk_str(&r.pk, "sub");
    msgpack_pack_uint64(&r.pk, first_sid);
    fx_send_rq(fd, &r);
    reply_t rep = expect_ok_skipping_pushes(fd, 14);
    reply_free(&rep);
    int fd3 = fx_connect();
    cr_assert_eq(subscribe_consumer(fd3, 13, "c", &p[0], &sid), p[0], "an explicit after wins");
    cr_assert_eq(next_pushed(fd3, sid), p[1]);
    fx_finish();
}

Test(consumers, read_all_filters_by_several_topics) {
    fx_start(NULL);
    int fd = fx_connect();
    const char *topics[3] = {tname("x"), tname("y"), tname("z")};
    uint64_t pos[3];
    for (int i = 0; i < 3; i++) {
        rq_t r;
        rq_begin(&r, "append", (uint64_t)i + 1, 1);
        pk_str(&r.pk, "events");
        msgpack_pack_array(&r.pk, 1);
        msgpack_pack_map(&r.pk, 3);
        pk_str(&r.pk, "entity_id");
        pk_str(&r.pk, tname("e"));
        pk_str(&r.pk, "topic");
        pk_str(&r.pk, topics[i]);
        pk_str(&r.pk, "payload");
        pk_bin(&r.pk, "p", 1);
        fx_send_rq(fd, &r);
        reply_t rep = fx_expect_ok(fd, (uint64_t)i + 1);
        pos[i] = obj_uint(&reply_get(&rep, "positions")->via.array.ptr[0]);
        reply_free(&rep);
    }
    rq_t r;
    rq_begin(&r, "read-all", 9, 2);
    pk_str(&r.pk, "after");
    msgpack_pack_uint64(&r.pk, pos[0] - 1);
    pk_str(&r.pk, "topics");
    msgpack_pack_array(&r.pk, 2);
    pk_str(&r.pk, topics[0]);
    pk_str(&r.pk, topics[2]);
    fx_send_rq(fd, &r);
    reply_t rep = fx_expect_ok(fd, 9);
    const msgpack_object *evs = reply_get(&rep, "events");
    cr_assert(evs && evs->type == MSGPACK_OBJECT_ARRAY);
    cr_assert_eq(evs->via.array.size, 2);
    cr_assert_eq(obj_uint(obj_get(&evs->via.array.ptr[0], "position")), pos[0]);
    cr_assert_eq(obj_uint(obj_get(&evs->via.array.ptr[1], "position")), pos[2]);
    reply_free(&rep);
    fx_finish();
}

Test(consumers, a_partitioned_subscription_gets_only_its_partition) {
    fx_start(NULL);
    int fd = fx_connect(), sfd = fx_connect();
    rq_t r;
    rq_begin(&r, "subscribe", 1, 3);
    pk_str(&r.pk, "entity_prefix");
    pk_str(&r.pk, tprefix());
    pk_str(&r.pk, "after");
    msgpack_pack_uint64(&r.pk, 0);
    pk_str(&r.pk, "partition");
    msgpack_pack_map(&r.pk, 2);
    pk_str(&r.pk, "index");
    msgpack_pack_uint64(&r.pk, 1);
    pk_str(&r.pk, "count");
    msgpack_pack_uint64(&r.pk, 3);
    fx_send_rq(sfd, &r);
    reply_t rep = fx_expect_ok(sfd, 1);
    uint64_t sid = obj_uint(reply_get(&rep, "sub"));
    reply_free(&rep);
    /* Twelve entities, one event each. */
    uint64_t want[13];
    size_t nwant = 0;
    char entity[32];
    for (int i = 0; i < 12; i++) {
        snprintf(entity, sizeof entity, "e%d", i);
        uint64_t p = append_one(fd, 10 + (uint64_t)i, entity);
        if (evs_partition_hash(tname(entity)) % 3 == 1) want[nwant++] = p;
    }
    cr_assert_gt(nwant, 0);
    for (size_t k = 0; k < nwant; k++)
        cr_assert_eq(next_pushed(sfd, sid), want[k], "push %zu", k);
    rq_begin(&r, "read-all", 30, 2); /* the same partition by read-all */
    pk_str(&r.pk, "after");
    msgpack_pack_uint64(&r.pk, want[0] - 1);
    pk_str(&r.pk, "partition");
    msgpack_pack_map(&r.pk, 2);
    pk_str(&r.pk, "index");
    msgpack_pack_uint64(&r.pk, 1);
    pk_str(&r.pk, "count");
    msgpack_pack_uint64(&r.pk, 3);
    fx_send_rq(fd, &r);
    rep = fx_expect_ok(fd, 30);
    const msgpack_object *evs = reply_get(&rep, "events");
    size_t mine = 0;
    for (uint32_t k = 0; k < evs->via.array.size; k++) {
        const msgpack_object *ev = &evs->via.array.ptr[k];
        const msgpack_object *id = obj_get(ev, "entity_id");
        char buf[256];
        snprintf(buf, sizeof buf, "%.*s", (int)id->via.str.size, id->via.str.ptr);
        cr_assert_eq(evs_partition_hash(buf) % 3, 1);
        if (strncmp(buf, tprefix(), strlen(tprefix())) == 0) mine++;
    }
    cr_assert_eq(mine, nwant);
    reply_free(&rep);
    rq_begin(&r, "read-all", 31, 1); /* index >= count */
    pk_str(&r.pk, "partition");
    msgpack_pack_map(&r.pk, 2);
    pk_str(&r.pk, "index");
    msgpack_pack_uint64(&r.pk, 3);
    pk_str(&r.pk, "count");
    msgpack_pack_uint64(&r.pk, 3);
    fx_send_rq(fd, &r);
    fx_expect_error(fd, "bad_request", 31);
    fx_finish();
}

/* Sends subscribe {"consumer": tname(consumer), "entity_prefix": tprefix()} (with "standby"
 * when asked) without waiting for its reply. */
static void send_subscribe_consumer(int fd, uint64_t id, const char *consumer, bool standby) {
    rq_t r;
    rq_begin(&r, "subscribe", id, standby ? 3 : 2);
    pk_str(&r.pk, "consumer");
    pk_str(&r.pk, tname(consumer));
    pk_str(&r.pk, "entity_prefix");
    pk_str(&r.pk, tprefix());
    if (standby) {
        pk_str(&r.pk, "standby");
        msgpack_pack_true(&r.pk);
    }
    fx_send_rq(fd, &r);
}

Test(consumers, one_subscription_per_consumer_and_a_standby_takes_over) {
    fx_start(NULL);
    int a = fx_connect(), b = fx_connect(), c = fx_connect();
    send_subscribe_consumer(a, 1, "c", false);
    reply_t rep = fx_expect_ok(a, 1);
    reply_free(&rep);
    send_subscribe_consumer(b, 2, "c", false);
    fx_expect_error(b, "conflict", 2);
    send_subscribe_consumer(c, 3, "c", true);
    /* The standby's connection serves other requests while it waits. */
    cr_assert_eq(raw_ping(c, 4, 5000), 0, "the standby's connection does not serve a ping");

    close(a);
    rep = fx_expect_ok(c, 3);
    cr_assert_eq(obj_uint(reply_get(&rep, "after")), 0);
    reply_free(&rep);
    uint64_t p = append_one(b, 6, "x");
    send_consumer_op(c, "checkpoint", 7, "c", true, p);
    cr_assert_eq(expect_position(c, 7), p);
    rq_t r;
    rq_begin(&r, "consumers", 8, 0);
    fx_send_rq(b, &r);
    rep = fx_expect_ok(b, 8);
    const msgpack_object *list = reply_get(&rep, "consumers");
    bool found = false;
    for (uint32_t i = 0; i < list->via.array.size; i++)
        if (obj_is_str(obj_get(&list->via.array.ptr[i], "consumer"), tname("c"))) {
            const msgpack_object *active = obj_get(&list->via.array.ptr[i], "active");
            cr_assert(active->type == MSGPACK_OBJECT_BOOLEAN && active->via.boolean);
            found = true;
        }
    cr_assert(found);
    reply_free(&rep);
    fx_finish();
}

Test(consumers, standby_needs_a_consumer) {
    fx_start(NULL);
    int fd = fx_connect();
    rq_t r;
    rq_begin(&r, "subscribe", 1, 1);
    pk_str(&r.pk, "standby");
    msgpack_pack_true(&r.pk);
    fx_send_rq(fd, &r);
    fx_expect_error(fd, "bad_request", 1);
    fx_finish();
}
