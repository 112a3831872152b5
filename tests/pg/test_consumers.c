/* test_consumers.c: consumers' checkpoints on PostgreSQL, through real daemons: a checkpoint
 * survives a kill -9 of its daemon, and two daemons that race trackings of one consumer at the
 * same position accept exactly one. Without $EVSTORE_PG_URL every test is skipped. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../proto/event.h"
#include "../common/clock.h"
#include "../common/daemon.h"
#include "../common/db.h"
#include "../common/rawio.h"
#include "fixture.h"

static test_db_t db;
static const char *cluster_url;

static void setup(void) {
    pg_db_setup(&db, "evs_constest", &cluster_url);
}

static void teardown(void) {
    test_db_drop(&db, cluster_url);
}

TestSuite(pg_consumers, .init = setup, .fini = teardown, .timeout = 120);

static void start_daemon(test_daemon_t *d) {
    cr_assert_eq(test_daemon_launch(d, db.url, false, NULL), 0, "evstored did not start on %s",
                 db.url);
}

static void kill_daemon(test_daemon_t *d) {
    cr_assert_eq(kill(d->pid, SIGKILL), 0);
    int status;
    cr_assert_eq(waitpid(d->pid, &status, 0), d->pid);
    d->pid = 0;
}

static int connect_to(const test_daemon_t *d) {
    int fd = test_connect_raw(d);
    cr_assert_geq(fd, 0, "cannot connect to the daemon");
    return fd;
}

static uint64_t first_position(const reply_t *rep) {
    cr_assert(reply_ok(rep), "the append failed: %s", reply_code(rep));
    const msgpack_object *p = reply_get(rep, "positions");
    cr_assert(p && p->type == MSGPACK_OBJECT_ARRAY && p->via.array.size == 1);
    return obj_uint(&p->via.array.ptr[0]);
}

/* Sends op {"consumer": tname(consumer)} (and "position" when has_position); returns the reply's
 * "position", asserting success. */
static uint64_t consumer_op(int fd, const char *op, uint64_t id, const char *consumer,
                            bool has_position, uint64_t position) {
    rq_t r;
    rq_begin(&r, op, id, has_position ? 2 : 1);
    pk_str(&r.pk, "consumer");
    pk_str(&r.pk, tname(consumer));
    if (has_position) {
        pk_str(&r.pk, "position");
        msgpack_pack_uint64(&r.pk, position);
    }
    cr_assert_eq(raw_send_rq(fd, &r), 0);
    rq_free(&r);
    reply_t rep;
    cr_assert_eq(raw_recv(fd, 30000, &rep), 0, "no reply to %s", op);
    cr_assert(reply_ok(&rep), "%s failed: %s", op, reply_code(&rep));
    uint64_t v = obj_uint(reply_get(&rep, "position"));
    reply_free(&rep);
    return v;
}

Test(pg_consumers, checkpoints_survive_a_kill_of_their_daemon) {
    test_daemon_t a;
    start_daemon(&a);
    int fd = connect_to(&a);
    reply_t rep = pg_append_one(fd, 1, "src", NULL, 0);
    uint64_t p1 = first_position(&rep);
    reply_free(&rep);
    rep = pg_append_one(fd, 2, "src", NULL, 0);
    uint64_t p2 = first_position(&rep);
    reply_free(&rep);
    cr_assert_eq(consumer_op(fd, "checkpoint", 3, "proj", true, p2), p2);
    rep = pg_append_one(fd, 4, "out", "pm", p1);
    first_position(&rep);
    reply_free(&rep);
    close(fd);
    kill_daemon(&a);

    test_daemon_t b;
    start_daemon(&b);
    fd = connect_to(&b);
    cr_assert_eq(consumer_op(fd, "get-checkpoint", 5, "proj", false, 0), p2);
    cr_assert_eq(consumer_op(fd, "get-checkpoint", 6, "pm", false, 0), p1);
    rep = pg_append_one(fd, 7, "out", "pm", p1);
    cr_assert_str_eq(reply_code(&rep), "conflict", "a tracking processed before was accepted");
    reply_free(&rep);
    close(fd);
    cr_assert_eq(test_daemon_stop(&b), 0);
}

Test(pg_consumers, two_daemons_racing_one_tracking_accept_it_once) {
    test_daemon_t a, b;
    start_daemon(&a);
    start_daemon(&b);
    int fa = connect_to(&a), fb = connect_to(&b);
    enum { N = 20 };
    uint64_t pos[N];
    for (int i = 0; i < N; i++) {
        reply_t rep = pg_append_one(fa, (uint64_t)i + 1, "src", NULL, 0);
        pos[i] = first_position(&rep);
        reply_free(&rep);
    }
    /* Both daemons process every source position for the same consumer, pipelined: each position
     * must be accepted by exactly one of them. */
    for (int side = 0; side < 2; side++) {
        int fd = side ? fb : fa;
        for (int i = 0; i < N; i++) {
            char entity[32];
            snprintf(entity, sizeof entity, "out%d-%d", side, i);
            rq_t r;
            rq_begin(&r, "append", 100 + (uint64_t)i, 2);
            pk_str(&r.pk, "events");
            msgpack_pack_array(&r.pk, 1);
            msgpack_pack_map(&r.pk, 3);
            pk_str(&r.pk, "entity_id");
            pk_str(&r.pk, tname(entity));
            pk_str(&r.pk, "topic");
            pk_str(&r.pk, tname("t"));
            pk_str(&r.pk, "payload");
            pk_bin(&r.pk, "x", 1);
            pk_str(&r.pk, "tracking");
            msgpack_pack_map(&r.pk, 2);
            pk_str(&r.pk, "consumer");
            pk_str(&r.pk, tname("pm"));
            pk_str(&r.pk, "position");
            msgpack_pack_uint64(&r.pk, pos[i]);
            cr_assert_eq(raw_send_rq(fd, &r), 0);
            rq_free(&r);
        }
    }
    int accepted[N] = {0};
    int ok = 0, conflicts = 0;
    for (int side = 0; side < 2; side++)
        for (int k = 0; k < N; k++) {
            reply_t rep;
            cr_assert_eq(raw_recv(side ? fb : fa, 30000, &rep), 0);
            uint64_t id = 0;
            cr_assert(reply_id(&rep, &id) && id >= 100 && id < 100 + N);
            if (reply_ok(&rep)) {
                accepted[id - 100]++;
                ok++;
            } else {
                cr_assert_str_eq(reply_code(&rep), "conflict");
                const msgpack_object *err = reply_get(&rep, "error");
                const msgpack_object *tracking = obj_get(err, "tracking");
                cr_assert(tracking && tracking->type == MSGPACK_OBJECT_BOOLEAN);
                conflicts++;
            }
            reply_free(&rep);
        }
    /* A later position may be accepted before an earlier one (the other daemon got there
     * first), which then conflicts on both: never twice. */
    for (int i = 0; i < N; i++)
        cr_assert_leq(accepted[i], 1, "position %d was processed twice", i);
    cr_assert_eq(ok + conflicts, 2 * N);
    cr_assert_geq(ok, 1);
    cr_assert_eq(consumer_op(fa, "get-checkpoint", 200, "pm", false, 0), pos[N - 1],
                 "the last position is not the checkpoint");
    close(fa);
    close(fb);
    cr_assert_eq(test_daemon_stop(&a), 0);
    cr_assert_eq(test_daemon_stop(&b), 0);
}

Test(pg_consumers, the_sql_partition_hash_is_the_daemons) {
    test_daemon_t a;
    start_daemon(&a); /* migrates the database */
    int fd = connect_to(&a);
    static const char *const ids[] = {"a", "foobar", "account-17",
                                      "\xc3\xa9t\xc3\xa9-\xe2\x82\xac"};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        char sql[256], out[64], err[256];
        snprintf(sql, sizeof sql, "SELECT evs_fnv1a64('%s')", ids[i]);
        cr_assert_eq(test_sql(db.url, sql, out, sizeof out, err, sizeof err), 0, "%s", err);
        cr_assert_eq((uint64_t)strtoll(out, NULL, 10), evs_partition_hash(ids[i]), "%s: %s", ids[i],
                     out);
    }
    /* The daemon stores the same hash with each event it appends. */
    reply_t rep = pg_append_one(fd, 1, "acc", NULL, 0);
    uint64_t p = first_position(&rep);
    reply_free(&rep);
    char sql[256], out[64], err[256];
    snprintf(sql, sizeof sql,
             "SELECT partition_hash = evs_fnv1a64(entity_id) FROM evs_events WHERE position = "
             "%llu",
             (unsigned long long)p);
    cr_assert_eq(test_sql(db.url, sql, out, sizeof out, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(out, "t");
    /* A row inserted by hand without the hash gets it. */
    cr_assert_eq(test_sql(db.url,
                          "WITH r AS (INSERT INTO evs_events (position, event_id, entity_id, "
                          "version, topic, stored_at, payload) VALUES (nextval('evs_position_seq'),"
                          " gen_random_uuid(), 'by-hand', 0, 't', 0, '') RETURNING "
                          "partition_hash = evs_fnv1a64(entity_id) AS same) SELECT same FROM r",
                          out, sizeof out, err, sizeof err),
                 0, "%s", err);
    cr_assert_str_eq(out, "t");
    close(fd);
    cr_assert_eq(test_daemon_stop(&a), 0);
}

/* Sends subscribe {"consumer": tname(consumer)} (with "standby" when asked). */
static void send_subscribe(int fd, uint64_t id, const char *consumer, bool standby) {
    rq_t r;
    rq_begin(&r, "subscribe", id, standby ? 2 : 1);
    pk_str(&r.pk, "consumer");
    pk_str(&r.pk, tname(consumer));
    if (standby) {
        pk_str(&r.pk, "standby");
        msgpack_pack_true(&r.pk);
    }
    cr_assert_eq(raw_send_rq(fd, &r), 0);
    rq_free(&r);
}

/* The next frame on fd that is a reply (pushes are skipped), within timeout_ms. */
static reply_t next_reply(int fd, int timeout_ms) {
    int64_t deadline = now_ms() + timeout_ms;
    for (;;) {
        int64_t left = deadline - now_ms();
        reply_t rep;
        cr_assert_eq(raw_recv(fd, left > 0 ? (int)left : 0, &rep), 0, "no reply in time");
        uint64_t id;
        if (reply_id(&rep, &id)) return rep;
        reply_free(&rep);
    }
}

Test(pg_consumers, a_standby_on_another_daemon_takes_over_after_a_kill) {
    test_daemon_t a, b;
    start_daemon(&a);
    start_daemon(&b);
    int fa = connect_to(&a), fb = connect_to(&b), fb2 = connect_to(&b);
    send_subscribe(fa, 1, "billing", false);
    reply_t rep = next_reply(fa, 10000);
    cr_assert(reply_ok(&rep), "the first subscribe failed: %s", reply_code(&rep));
    reply_free(&rep);
    send_subscribe(fb, 2, "billing", false);
    rep = next_reply(fb, 10000);
    cr_assert_str_eq(reply_code(&rep), "conflict", "two subscriptions hold one consumer");
    reply_free(&rep);
    send_subscribe(fb2, 3, "billing", true);
    cr_assert_eq(raw_ping(fb2, 4, 5000), 0, "the standby was answered before the takeover");
    int64_t killed = now_ms();
    kill_daemon(&a);
    close(fa);
    rep = next_reply(fb2, 10000);
    cr_assert(reply_ok(&rep), "the standby failed: %s", reply_code(&rep));
    int64_t took = now_ms() - killed;
    cr_assert_lt(took, 5000, "the standby took over after %lld ms", (long long)took);
    reply_free(&rep);
    close(fb);
    close(fb2);
    cr_assert_eq(test_daemon_stop(&b), 0);
}

Test(pg_consumers, a_subscription_that_lost_its_lease_is_closed_and_fenced) {
    test_daemon_t a;
    start_daemon(&a);
    int fd = connect_to(&a), other = connect_to(&a);
    reply_t rep = pg_append_one(other, 1, "src", NULL, 0);
    uint64_t p1 = first_position(&rep);
    reply_free(&rep);
    send_subscribe(fd, 2, "proj", false);
    rep = next_reply(fd, 10000);
    cr_assert(reply_ok(&rep), "subscribe failed: %s", reply_code(&rep));
    uint64_t sid = obj_uint(reply_get(&rep, "sub"));
    reply_free(&rep);
    /* Another holder takes the lease (as a daemon would after this one's lease expired). */
    char sql[512], out[64], err[256];
    snprintf(sql, sizeof sql,
             "UPDATE evs_leases SET fence = fence + 1, expires_at = now() + interval '1 hour' "
             "WHERE consumer = '%s' RETURNING fence",
             tname("proj"));
    cr_assert_eq(test_sql(db.url, sql, out, sizeof out, err, sizeof err), 0, "%s", err);
    cr_assert_neq(out[0], '\0', "no lease row");
    int64_t deadline = now_ms() + 5000;
    bool closed = false;
    while (!closed) {
        int64_t left = deadline - now_ms();
        cr_assert_gt(left, 0, "no closing push within 5 s of losing the lease");
        cr_assert_eq(raw_recv(fd, (int)left, &rep), 0, "no closing push");
        const msgpack_object *lost = reply_get(&rep, "lease_lost");
        closed = obj_uint(reply_get(&rep, "sub")) == sid && lost &&
                 lost->type == MSGPACK_OBJECT_BOOLEAN && lost->via.boolean &&
                 reply_get(&rep, "closing");
        reply_free(&rep);
    }
    rq_t r;
    rq_begin(&r, "checkpoint", 3, 2);
    pk_str(&r.pk, "consumer");
    pk_str(&r.pk, tname("proj"));
    pk_str(&r.pk, "position");
    msgpack_pack_uint64(&r.pk, p1);
    cr_assert_eq(raw_send_rq(fd, &r), 0);
    rq_free(&r);
    rep = next_reply(fd, 10000);
    cr_assert_str_eq(reply_code(&rep), "conflict", "a fenced-off checkpoint was accepted");
    reply_free(&rep);
    cr_assert_eq(consumer_op(other, "get-checkpoint", 4, "proj", false, 0), 0);
    close(fd);
    close(other);
    cr_assert_eq(test_daemon_stop(&a), 0);
}
