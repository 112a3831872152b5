/* test_stall.c: the PostgreSQL store while the database is stalled (a lock on evs_events held by
 * another session): the queue of writes waiting for it is bounded, a write past its deadline
 * that was still queued is never stored, and a retry with the same event ids stores each event
 * once whatever happened to the first attempt.
 *
 * Driven through the store interface on a libuv loop, each test on a database of its own in the
 * cluster that $EVSTORE_PG_URL names; without it every test is skipped. */
#include <criterion/criterion.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <uv.h>

#include "../common/clock.h"
#include "../common/db.h"
#include "fixture.h"

#include "../../server/pg/store.h"
#include "../../server/store.h"

static uv_loop_t loop;
static test_db_t db;
static const char *cluster_url;

static void setup(void) {
    pg_fixture_setup(&loop, &db, "evs_stall", &cluster_url);
}

static void teardown(void) {
    pg_fixture_teardown(&loop, &db, cluster_url);
}

TestSuite(pg_stall, .init = setup, .fini = teardown, .timeout = 120);

/* ---------------------------------------------------------------- helpers */

static void run_until(const int *done, int ms, const char *what) {
    pg_run_until(&loop, done, ms, what);
}

typedef struct append_ctx {
    int done, code;
    codec_error_t err;
    uint8_t id[16];
} append_ctx_t;

static void on_append(void *arg, const codec_error_t *err, const uint64_t *positions,
                      const uint64_t *versions, size_t n) {
    append_ctx_t *a = arg;
    (void)positions, (void)versions, (void)n;
    cr_assert_eq(a->done, 0, "an append callback ran twice");
    a->done = 1;
    a->code = err ? err->code : 0;
    if (err) a->err = *err;
}

static const char PAYLOAD[] = "{\"note\": \"an event of a stalled database\"}";

/* Starts an append of one event with event id a->id (drawn when fresh is true). */
static void start_append(store_t *s, append_ctx_t *a, const char *entity, bool fresh) {
    uint8_t id[16];
    memcpy(id, a->id, 16);
    memset(a, 0, sizeof *a);
    if (fresh) cr_assert_eq(getrandom(id, 16, 0), 16);
    memcpy(a->id, id, 16);
    evs_event_t ev;
    memset(&ev, 0, sizeof ev);
    memcpy(ev.event_id, id, 16);
    ev.has_event_id = 1;
    ev.entity_id = (char *)entity;
    ev.topic = "pg.Stall";
    ev.payload = (uint8_t *)PAYLOAD;
    ev.payload_len = sizeof PAYLOAD - 1;
    s->ops->append(s, &ev, 1, on_append, a);
}

static store_t *open_ready_store(void) {
    codec_error_t err;
    memset(&err, 0, sizeof err);
    store_t *s = pg_store_open(db.url, &loop, &err);
    cr_assert_not_null(s, "pg_store_open: %s", err.message);
    s->request_timeout_ms = 20000;
    append_ctx_t a;
    start_append(s, &a, "warm-up", true);
    run_until(&a.done, 20000, "the first append");
    cr_assert_eq(a.code, 0, "first append: %s", a.err.message);
    return s;
}

static void free_store(store_t *s) {
    s->ops->free(s);
    for (int i = 0; i < 100; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
}

/* A session of its own that holds an ACCESS EXCLUSIVE lock on evs_events until released: every
 * append (and every read of the table) waits for it. */
static PGconn *stall(void) {
    PGconn *c = PQconnectdb(db.url);
    cr_assert_eq(PQstatus(c), CONNECTION_OK, "%s", PQerrorMessage(c));
    PGresult *r = PQexec(c, "BEGIN; LOCK TABLE evs_events IN ACCESS EXCLUSIVE MODE");
    cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s", PQerrorMessage(c));
    PQclear(r);
    return c;
}

static void release(PGconn *c) {
    PGresult *r = PQexec(c, "COMMIT");
    cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s", PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
}

/* How many stored events have the event id id. */
static int stored(const uint8_t id[16]) {
    char uuid[37], sql[128], out[32], err[512];
    evs_uuid_format(id, uuid);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM evs_events WHERE event_id = '%s'", uuid);
    cr_assert_eq(test_sql(db.url, sql, out, sizeof out, err, sizeof err), 0, "%s", err);
    return atoi(out);
}

/* ---------------------------------------------------------------- tests */

Test(pg_stall, a_full_write_queue_answers_unavailable_at_once_without_queuing) {
    store_t *s = open_ready_store();
    s->write_queue_requests = 3;
    PGconn *locker = stall();
    enum { N = 10 };
    append_ctx_t a[N];
    for (int i = 0; i < N; i++)
        start_append(s, &a[i], "queued", true);
    /* The first is sent (and waits for the lock), three wait in the queue, the rest are refused
     * before append returns. */
    int refused = 0;
    for (int i = 0; i < N; i++)
        if (a[i].done) {
            cr_assert_eq(a[i].code, EVS_EUNAVAILABLE, "append %d: %s", i, a[i].err.message);
            cr_assert(strstr(a[i].err.message, "write_queue_requests"), "message: %s",
                      a[i].err.message);
            refused++;
        }
    cr_assert_eq(refused, N - 4, "%d of %d appends refused at once, expected %d", refused, N,
                 N - 4);
    release(locker);
    for (int i = 0; i < N; i++) {
        run_until(&a[i].done, 20000, "the queued appends");
        cr_assert_eq(stored(a[i].id), a[i].code == 0 ? 1 : 0, "append %d", i);
    }
    free_store(s);
}

Test(pg_stall, a_retry_after_a_deadline_stores_each_event_once) {
    store_t *s = open_ready_store();
    s->request_timeout_ms = 1000;
    PGconn *locker = stall();
    append_ctx_t sent, queued;
    start_append(s, &sent, "retried", true);   /* sent: waits for the lock */
    start_append(s, &queued, "retried", true); /* queued behind it */
    run_until(&queued.done, 20000, "the deadline of the queued append");
    run_until(&sent.done, 20000, "the deadline of the sent append");
    cr_assert_eq(sent.code, EVS_EUNAVAILABLE, "%s", sent.err.message);
    cr_assert_eq(queued.code, EVS_EUNAVAILABLE, "%s", queued.err.message);
    release(locker);
    s->request_timeout_ms = 20000;
    /* An append queued after both is answered after the first one's transaction ended. */
    append_ctx_t after;
    start_append(s, &after, "after", true);
    run_until(&after.done, 20000, "an append after the stall");
    cr_assert_eq(after.code, 0, "%s", after.err.message);
    /* The queued one was dropped when its deadline passed: it is never written. */
    cr_assert_eq(stored(queued.id), 0);
    /* Retrying both with the same event ids is safe, whether the first attempt was stored or
     * not. */
    start_append(s, &sent, "retried", false);
    run_until(&sent.done, 20000, "the retry of the sent append");
    cr_assert_eq(sent.code, 0, "%s", sent.err.message);
    start_append(s, &queued, "retried", false);
    run_until(&queued.done, 20000, "the retry of the queued append");
    cr_assert_eq(queued.code, 0, "%s", queued.err.message);
    cr_assert_eq(stored(sent.id), 1);
    cr_assert_eq(stored(queued.id), 1);
    free_store(s);
}

/* ---------------------------------------------------------------- the store's identity */

TestSuite(pg_identity, .init = setup, .fini = teardown, .timeout = 120);

static char *sql1(const char *sql) {
    static char out[128];
    char err[512];
    cr_assert_eq(test_sql(db.url, sql, out, sizeof out, err, sizeof err), 0, "%s", err);
    return out;
}

/* The identity lives in the database: a second store on it has the same one. A database made
 * before migrations/005_store_id.sql, holding events, gets one when the migration is applied, and
 * keeps its events. */
Test(pg_identity, the_store_id_lives_in_the_database_and_is_added_to_one_holding_events) {
    store_t *s = open_ready_store();
    char first[37];
    snprintf(first, sizeof first, "%s", s->store_id);
    cr_assert_eq(strlen(first), 36, "no store_id: \"%s\"", first);
    cr_assert_str_eq(sql1("SELECT store_id::text FROM evs_store"), first);
    free_store(s);

    s = open_ready_store();
    cr_assert_str_eq(s->store_id, first, "a second store on the database has another identity");
    free_store(s);

    /* The database as it was before the migration, with its events. */
    sql1("DROP TABLE evs_store");
    sql1("DELETE FROM evs_migrations WHERE version = 5");
    s = open_ready_store(); /* applies 005 and appends one more event */
    cr_assert_eq(strlen(s->store_id), 36);
    cr_assert_str_neq(s->store_id, first);
    cr_assert_str_eq(sql1("SELECT store_id::text FROM evs_store"), s->store_id);
    cr_assert_str_eq(sql1("SELECT count(*) FROM evs_events"), "3");
    free_store(s);
}
