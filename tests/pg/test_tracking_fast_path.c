/* test_tracking_fast_path.c: a daemon that decides appends with trackings from what it knows
 * (the fast path) still refuses a tracking another daemon's checkpoint made stale, although that
 * checkpoint took no position; and answers a tracked append its version refuses as the slow path
 * would. Without $EVSTORE_PG_URL every test is skipped. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "../common/daemon.h"
#include "../common/db.h"
#include "../common/rawio.h"
#include "fixture.h"

static test_db_t db;
static const char *cluster_url;

static void setup(void) {
    pg_db_setup(&db, "evs_trackfast", &cluster_url);
}

static void teardown(void) {
    test_db_drop(&db, cluster_url);
}

TestSuite(pg_tracking_fast_path, .init = setup, .fini = teardown, .timeout = 120);

static int start_and_connect(test_daemon_t *d) {
    cr_assert_eq(test_daemon_launch(d, db.url, false, NULL), 0, "evstored did not start");
    int fd = test_connect_raw(d);
    cr_assert_geq(fd, 0, "cannot connect to the daemon");
    return fd;
}

/* Moves tname(consumer) to position with a checkpoint request over fd. */
static void checkpoint_at(int fd, uint64_t id, const char *consumer, uint64_t position) {
    rq_t r;
    rq_begin(&r, "checkpoint", id, 2);
    pk_str(&r.pk, "consumer");
    pk_str(&r.pk, tname(consumer));
    pk_str(&r.pk, "position");
    msgpack_pack_uint64(&r.pk, position);
    cr_assert_eq(raw_send_rq(fd, &r), 0);
    rq_free(&r);
    reply_t rep;
    cr_assert_eq(raw_recv(fd, 30000, &rep), 0);
    cr_assert(reply_ok(&rep), "checkpoint failed: %s", reply_code(&rep));
    reply_free(&rep);
}

/* The stored checkpoint of tname(consumer), read over fd. */
static uint64_t checkpoint_of(int fd, uint64_t id, const char *consumer) {
    rq_t r;
    rq_begin(&r, "get-checkpoint", id, 1);
    pk_str(&r.pk, "consumer");
    pk_str(&r.pk, tname(consumer));
    cr_assert_eq(raw_send_rq(fd, &r), 0);
    rq_free(&r);
    reply_t rep;
    cr_assert_eq(raw_recv(fd, 30000, &rep), 0);
    cr_assert(reply_ok(&rep), "get-checkpoint failed: %s", reply_code(&rep));
    uint64_t position = obj_uint(reply_get(&rep, "position"));
    reply_free(&rep);
    return position;
}

/* True when rep is a conflict whose details say tracking. */
static bool is_tracking_conflict(reply_t *rep) {
    if (reply_ok(rep) || strcmp(reply_code(rep), "conflict") != 0) return false;
    const msgpack_object *tracking = obj_get(reply_get(rep, "error"), "tracking");
    return tracking && tracking->type == MSGPACK_OBJECT_BOOLEAN && tracking->via.boolean;
}

static uint64_t stored_at(int fd, uint64_t id, const char *entity, const char *consumer,
                          uint64_t position) {
    reply_t rep = pg_append_one(fd, id, entity, consumer, position);
    cr_assert(reply_ok(&rep), "append %llu failed: %s", (unsigned long long)id, reply_code(&rep));
    const msgpack_object *p = reply_get(&rep, "positions");
    cr_assert(p && p->type == MSGPACK_OBJECT_ARRAY && p->via.array.size == 1);
    uint64_t v = obj_uint(&p->via.array.ptr[0]);
    reply_free(&rep);
    return v;
}

Test(pg_tracking_fast_path, a_checkpoint_from_another_daemon_refuses_an_older_tracking) {
    test_daemon_t a, b;
    int fa = start_and_connect(&a), fb = start_and_connect(&b);
    uint64_t src[4];
    for (int i = 0; i < 4; i++)
        src[i] = stored_at(fa, (uint64_t)i + 1, "src", NULL, 0);
    /* a knows every version now: its next groups go the fast way. */
    stored_at(fa, 10, "out-0", "pm", src[0]);

    /* b moves the consumer past src[1]; a checkpoint alone takes no position. */
    checkpoint_at(fb, 20, "pm", src[2]);

    /* a's tracking of src[1] was processed before (the checkpoint is at src[2]): refused, and
     * nothing of it is stored. */
    reply_t rep = pg_append_one(fa, 11, "out-1", "pm", src[1]);
    cr_assert(is_tracking_conflict(&rep), "a stale tracking was not refused as processed");
    cr_assert_eq(obj_uint(obj_get(reply_get(&rep, "error"), "position")), src[2]);
    reply_free(&rep);
    /* out-1 got no event: its first append is version 0. */
    rep = pg_append_one(fa, 12, "out-1", NULL, 0);
    cr_assert(reply_ok(&rep));
    const msgpack_object *v = reply_get(&rep, "versions");
    cr_assert(v && v->type == MSGPACK_OBJECT_ARRAY && v->via.array.size == 1);
    cr_assert_eq(obj_uint(&v->via.array.ptr[0]), 0, "the refused append stored its event");
    reply_free(&rep);

    /* The next position is accepted. */
    stored_at(fa, 13, "out-3", "pm", src[3]);
    test_daemon_stop(&a);
    test_daemon_stop(&b);
}

Test(pg_tracking_fast_path,
     a_tracked_append_its_version_refuses_is_answered_as_the_slow_path_would) {
    test_daemon_t a, b;
    int fa = start_and_connect(&a), fb = start_and_connect(&b);
    uint64_t src[4];
    for (int i = 0; i < 4; i++)
        src[i] = stored_at(fa, (uint64_t)i + 1, "src", NULL, 0);
    stored_at(fa, 10, "out", "pm", src[0]);

    /* A version conflict on the fast path: the consumer stays where it was. */
    reply_t rep = pg_append_one_at(fa, 11, "out", 5, "pm", src[1]);
    cr_assert(!reply_ok(&rep) && strcmp(reply_code(&rep), "conflict") == 0);
    cr_assert_not(is_tracking_conflict(&rep), "a version conflict was reported as a tracking one");
    reply_free(&rep);
    cr_assert_eq(checkpoint_of(fa, 12, "pm"), src[0], "a refused append moved its consumer");

    /* b moves the consumer past src[1]. a's next append tracking src[1] both asks for a taken
     * version and was processed before: the tracking is decided first, as the slow path does. */
    checkpoint_at(fb, 20, "pm", src[2]);
    rep = pg_append_one_at(fa, 13, "out", 0, "pm", src[1]);
    cr_assert(is_tracking_conflict(&rep), "got %s, not the tracking conflict", reply_code(&rep));
    reply_free(&rep);

    /* A group of a consumer that has no checkpoint yet and one that has: both move. */
    stored_at(fa, 14, "out-new", "pm-new", src[3]);
    stored_at(fa, 15, "out", "pm", src[3]);
    cr_assert_eq(checkpoint_of(fa, 16, "pm-new"), src[3]);
    cr_assert_eq(checkpoint_of(fa, 17, "pm"), src[3]);
    test_daemon_stop(&a);
    test_daemon_stop(&b);
}
