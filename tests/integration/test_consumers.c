/* test_consumers.c: consumers on the wire as docs/protocol.md states them: checkpoint,
 * get-checkpoint, consumers, delete-checkpoint and append with a tracking, their reply shapes,
 * their error details and their bad requests. One daemon per test. */
#include <criterion/criterion.h>
#include <string.h>

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

static uint64_t expect_position(int fd, uint64_t id) {
    reply_t rep = fx_expect_ok(fd, id);
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
