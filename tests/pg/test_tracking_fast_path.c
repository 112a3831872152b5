/* test_tracking_fast_path.c: a daemon that decides appends with trackings from what it knows
 * (the fast path) still refuses a tracking another daemon's checkpoint made stale, although that
 * checkpoint took no position. Without $EVSTORE_PG_URL every test is skipped. */
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
    rq_t r;
    rq_begin(&r, "checkpoint", 20, 2);
    pk_str(&r.pk, "consumer");
    pk_str(&r.pk, tname("pm"));
    pk_str(&r.pk, "position");
    msgpack_pack_uint64(&r.pk, src[2]);
    cr_assert_eq(raw_send_rq(fb, &r), 0);
    rq_free(&r);
    reply_t rep;
    cr_assert_eq(raw_recv(fb, 30000, &rep), 0);
    cr_assert(reply_ok(&rep), "checkpoint failed: %s", reply_code(&rep));
    reply_free(&rep);

    /* a's tracking of src[1] was processed before (the checkpoint is at src[2]): refused, and
     * nothing of it is stored. */
    rep = pg_append_one(fa, 11, "out-1", "pm", src[1]);
    cr_assert(!reply_ok(&rep), "a stale tracking was accepted");
    cr_assert_str_eq(reply_code(&rep), "conflict");
    const msgpack_object *err = reply_get(&rep, "error");
    const msgpack_object *tracking = obj_get(err, "tracking");
    cr_assert(tracking && tracking->type == MSGPACK_OBJECT_BOOLEAN && tracking->via.boolean,
              "the conflict does not say tracking");
    cr_assert_eq(obj_uint(obj_get(err, "position")), src[2]);
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
