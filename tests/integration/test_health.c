/* test_health.c: the health op on a store that works (memory, or the PostgreSQL of
 * $EVSTORE_TEST_STORE): "ok" with every key, served before auth like ping, and the library's
 * evs_health. tests/pg/test_health.c covers PostgreSQL stores that cannot serve. */
#include <criterion/criterion.h>
#include <string.h>
#include <unistd.h>

#include <evstore.h>

#include "../common/clock.h"
#include "auth_fixture.h"
#include "fixture.h"

TestSuite(health, .fini = fx_teardown, .timeout = 60);

/* The health op's reply, once its status is "ok": a PostgreSQL store may still be verifying
 * its writer's statements when it first serves a read ("starting"). */
static reply_t health_of(int fd, uint64_t id) {
    int64_t end = now_ms() + 20000;
    for (;; id += 1000) {
        rq_t r;
        rq_begin(&r, "health", id, 0);
        fx_send_rq(fd, &r);
        reply_t rep = fx_expect_ok(fd, id);
        if (obj_is_str(reply_get(&rep, "status"), "ok") || now_ms() > end) return rep;
        reply_free(&rep);
        sleep_ms(20);
    }
}

Test(health, a_working_store_is_ok_with_every_key) {
    fx_start(NULL);
    int fd = fx_connect();
    reply_t rep = health_of(fd, 1);
    cr_assert(obj_is_str(reply_get(&rep, "status"), "ok"));
    cr_assert(obj_is_str(reply_get(&rep, "reason"), ""));
    cr_assert(obj_is_str(reply_get(&rep, "kind"), "ok"));
    cr_assert(obj_is_str(reply_get(&rep, "store_state"), "ok"));
    const msgpack_object *store = reply_get(&rep, "store");
    cr_assert(store && store->type == MSGPACK_OBJECT_STR);
    reply_free(&rep);
    close(fd);
    fx_finish();
}

Test(health, is_served_before_auth_like_ping) {
    auth_daemon_start(&fx_daemon, false);
    int fd = fx_connect();
    reply_t rep = health_of(fd, 1);
    cr_assert(obj_is_str(reply_get(&rep, "status"), "ok"));
    reply_free(&rep);
    close(fd);
    fx_finish();
}

Test(health, evs_health_reads_it) {
    fx_start(NULL);
    evs_context_t *c = evs_connect(fx_daemon.addr);
    cr_assert(c && !evs_err(c), "connect: %s", c ? evs_errstr(c) : "NULL");
    evs_health_t h;
    int64_t end = now_ms() + 20000;
    do {
        cr_assert_eq(evs_health(c, &h), 0, "%s", evs_errstr(c));
    } while (h.status != EVS_HEALTH_OK && now_ms() < end && (sleep_ms(20), 1));
    cr_assert_eq(h.status, EVS_HEALTH_OK);
    cr_assert_str_eq(h.reason, "");
    cr_assert_str_eq(h.kind, "ok");
    cr_assert_str_eq(h.store_state, "ok");
    evs_free(c);
    fx_finish();
}
