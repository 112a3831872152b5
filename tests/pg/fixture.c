/* fixture.c: the PostgreSQL test files' shared setup and teardown (see fixture.h). */
#include "fixture.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

#include "../common/clock.h"
#include "../common/rawio.h"

void pg_db_setup(test_db_t *db, const char *prefix, const char **url) {
    *url = getenv("EVSTORE_PG_URL");
    if (!*url || !**url) cr_skip_test("EVSTORE_PG_URL is not set");
    char err[512];
    cr_assert_eq(test_db_create(db, *url, prefix, err, sizeof err), 0, "%s", err);
}

void pg_fixture_setup(uv_loop_t *loop, test_db_t *db, const char *prefix, const char **url) {
    pg_db_setup(db, prefix, url);
    cr_assert_eq(uv_loop_init(loop), 0);
}

void pg_fixture_teardown(uv_loop_t *loop, test_db_t *db, const char *url) {
    for (int i = 0; i < 300 && uv_loop_alive(loop); i++) {
        uv_run(loop, UV_RUN_NOWAIT);
        sleep_ms(5);
    }
    int closed = uv_loop_close(loop);
    test_db_drop(db, url);
    if (closed != 0) {
        fprintf(stderr, "pg test: uv_loop_close failed: the loop still has handles\n");
        uv_print_all_handles(loop, stderr);
        abort();
    }
}

void pg_run_until(uv_loop_t *loop, const int *done, int ms, const char *what) {
    uint64_t end = uv_hrtime() + (uint64_t)ms * 1000000u;
    while (!*done) {
        cr_assert(uv_hrtime() < end, "timed out waiting for %s", what);
        uv_run(loop, UV_RUN_NOWAIT);
        if (!*done) sleep_ms(1);
    }
}

/* Appends one event to tname(entity) with, when consumer is not NULL, a tracking; returns the
 * reply (reply_free it). */
reply_t pg_append_one(int fd, uint64_t id, const char *entity, const char *consumer,
                      uint64_t position) {
    return pg_append_one_at(fd, id, entity, -1, consumer, position);
}

reply_t pg_append_one_at(int fd, uint64_t id, const char *entity, int64_t version,
                         const char *consumer, uint64_t position) {
    rq_t r;
    rq_begin(&r, "append", id, consumer ? 2 : 1);
    pk_str(&r.pk, "events");
    msgpack_pack_array(&r.pk, 1);
    msgpack_pack_map(&r.pk, version < 0 ? 3 : 4);
    if (version >= 0) {
        pk_str(&r.pk, "version");
        msgpack_pack_uint64(&r.pk, (uint64_t)version);
    }
    pk_str(&r.pk, "entity_id");
    pk_str(&r.pk, tname(entity));
    pk_str(&r.pk, "topic");
    pk_str(&r.pk, tname("t"));
    pk_str(&r.pk, "payload");
    pk_bin(&r.pk, "x", 1);
    if (consumer) {
        pk_str(&r.pk, "tracking");
        msgpack_pack_map(&r.pk, 2);
        pk_str(&r.pk, "consumer");
        pk_str(&r.pk, tname(consumer));
        pk_str(&r.pk, "position");
        msgpack_pack_uint64(&r.pk, position);
    }
    cr_assert_eq(raw_send_rq(fd, &r), 0);
    rq_free(&r);
    reply_t rep;
    cr_assert_eq(raw_recv(fd, 30000, &rep), 0, "no reply to the append");
    return rep;
}
