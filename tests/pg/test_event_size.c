/* test_event_size.c: the largest event size stored (migrations/006_event_size.sql) and the reads
 * that skip their byte window when no page can reach the bound.
 *
 * Same conventions as test_pg.c: a database of its own per test on $EVSTORE_PG_URL, skipped
 * without it. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <uv.h>

#include "../common/db.h"
#include "fixture.h"

#include "../../proto/codec.h"
#include "../../server/pg/migrations.h"
#include "../../server/pg/schema.h"
#include "../../server/pg/store.h"
#include "../../server/store.h"

static uv_loop_t loop;
static test_db_t db;
static const char *cluster_url;

static void setup(void) {
    pg_fixture_setup(&loop, &db, "evs_sizetest", &cluster_url);
}

static void teardown(void) {
    pg_fixture_teardown(&loop, &db, cluster_url);
}

TestSuite(event_size, .init = setup, .fini = teardown, .timeout = 120);

static char *sql1(const char *sql) {
    static char out[256];
    char err[512];
    cr_assert_eq(test_sql(db.url, sql, out, sizeof out, err, sizeof err), 0, "%s: %s", sql, err);
    return out;
}

static store_t *open_store(void) {
    codec_error_t err;
    memset(&err, 0, sizeof err);
    store_t *s = pg_store_open(db.url, &loop, &err);
    cr_assert_not_null(s, "pg_store_open: %s", err.message);
    s->request_timeout_ms = 10000;
    return s;
}

static void free_store(store_t *s) {
    s->ops->free(s);
    for (int i = 0; i < 100; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
}

/* ---------------------------------------------------------------- appends and reads */

typedef struct op_ctx {
    int done, code;
    char why[256];
    size_t n;
    uint64_t versions[64];
    size_t sizes[64];
} op_ctx_t;

static void on_append(void *arg, const codec_error_t *err, const uint64_t *positions,
                      const uint64_t *versions, size_t n) {
    (void)positions;
    (void)versions;
    op_ctx_t *o = arg;
    o->done = 1;
    o->code = err ? err->code : 0;
    if (err) snprintf(o->why, sizeof o->why, "%s", err->message);
    o->n = n;
}

/* Appends one event of entity with a payload of len bytes. */
static void append_sized(store_t *s, const char *entity, size_t len) {
    uint8_t *payload = calloc(1, len + 1);
    cr_assert_not_null(payload);
    memset(payload, 'x', len);
    evs_event_t ev;
    memset(&ev, 0, sizeof ev);
    cr_assert_eq(getrandom(ev.event_id, 16, 0), 16);
    ev.has_event_id = 1;
    ev.entity_id = (char *)entity;
    ev.topic = "size.Test";
    ev.payload = payload;
    ev.payload_len = len;
    op_ctx_t o = {0};
    s->ops->append(s, &ev, 1, on_append, &o);
    pg_run_until(&loop, &o.done, 15000, "an append");
    free(payload);
    cr_assert_eq(o.code, 0, "append: %s", o.why);
}

static void on_read(void *arg, const codec_error_t *err, const evs_event_t *events, size_t n) {
    op_ctx_t *o = arg;
    o->done = 1;
    o->code = err ? err->code : 0;
    if (err) snprintf(o->why, sizeof o->why, "%s", err->message);
    o->n = n;
    for (size_t i = 0; i < n && i < 64; i++) {
        o->versions[i] = events[i].version;
        o->sizes[i] = codec_event_size(&events[i]);
    }
}

static op_ctx_t read_entity(store_t *s, const char *entity, uint32_t limit, bool backwards) {
    op_ctx_t o = {0};
    s->ops->get_by_entity(s, entity, backwards ? UINT64_MAX : 0, limit, backwards, on_read, &o);
    pg_run_until(&loop, &o.done, 15000, "a read");
    cr_assert_eq(o.code, 0, "read: %s", o.why);
    return o;
}

static op_ctx_t read_all(store_t *s, uint32_t limit) {
    op_ctx_t o = {0};
    store_read_t q;
    memset(&q, 0, sizeof q);
    q.limit = limit;
    s->ops->read(s, &q, on_read, &o);
    pg_run_until(&loop, &o.done, 15000, "a read");
    cr_assert_eq(o.code, 0, "read: %s", o.why);
    return o;
}

/* Checks the page o against the byte bound: every event after the first two follows events that
 * take at most bound bytes, and no event was left out before the limit unless the bound cut. */
static void check_page(const op_ctx_t *o, size_t bound, size_t limit, size_t stored) {
    size_t before = 0;
    for (size_t i = 0; i < o->n; i++) {
        if (i >= 2)
            cr_assert_leq(before, bound, "event %zu follows %zu bytes, over the bound %zu", i,
                          before, bound);
        before += o->sizes[i];
    }
    size_t want = limit < stored ? limit : stored;
    if (o->n < want)
        cr_assert_gt(before, bound, "%zu of %zu events, yet they take only %zu bytes", o->n, want,
                     before);
}

/* The starting value of evs_event_size: other writers' events up to it fire no trigger. */
#define SIZE_FLOOR ((long long)SCHEMA_EVENT_SIZE_FLOOR)

static long long max_data_bytes(void) {
    return atoll(sql1("SELECT max_data_bytes FROM evs_event_size"));
}

/* ---------------------------------------------------------------- tests */

/* The writer raises the largest size in the append's own transaction, never lowers it, and reads
 * bounded in bytes cut where they did before whichever plan runs. */
Test(event_size, appends_raise_it_and_bounded_reads_still_cut) {
    store_t *s = open_store();
    append_sized(s, "acct-1", 100);
    size_t small = strlen("acct-1") + strlen("size.Test") + 100;
    cr_assert_eq(max_data_bytes(), SIZE_FLOOR, "it starts at the floor");
    for (int i = 0; i < 9; i++)
        append_sized(s, "acct-1", 100);
    cr_assert_eq(max_data_bytes(), SIZE_FLOOR, "small appends leave it");
    size_t one = CODEC_EVENT_OVERHEAD + small;

    /* No page of 10 can reach the bound: every event comes back. */
    s->page_bytes = 10 * (CODEC_EVENT_OVERHEAD + SIZE_FLOOR);
    op_ctx_t o = read_entity(s, "acct-1", 10, false);
    cr_assert_eq(o.n, 10);
    check_page(&o, s->page_bytes, 10, 10);

    /* The bound cuts after 4 events (4 fit, the 5th says there is more). */
    s->page_bytes = 4 * one;
    o = read_entity(s, "acct-1", 10, false);
    cr_assert_eq(o.n, 5);
    check_page(&o, s->page_bytes, 10, 10);
    o = read_entity(s, "acct-1", 10, true);
    cr_assert_eq(o.n, 5);
    cr_assert_eq(o.versions[0], 9);
    o = read_all(s, 10);
    cr_assert_eq(o.n, 5);

    /* One large event raises it: the same reads now go through the window, and cut where the
     * bytes say. */
    append_sized(s, "acct-1", 5000);
    size_t large = strlen("acct-1") + strlen("size.Test") + 5000;
    cr_assert_eq(max_data_bytes(), (long long)large);
    s->page_bytes = 11 * one;
    o = read_entity(s, "acct-1", 20, false);
    check_page(&o, s->page_bytes, 20, 11);
    cr_assert_eq(o.n, 11);
    s->page_bytes = 12 * one;
    o = read_all(s, 20);
    check_page(&o, s->page_bytes, 20, 11);
    cr_assert_eq(o.n, 11);
    s->page_bytes = 5 * one;
    o = read_entity(s, "acct-1", 20, true);
    cr_assert_eq(o.n, 2, "the first two whatever their size");
    o = read_all(s, 20);
    check_page(&o, s->page_bytes, 20, 11);
    cr_assert_eq(o.n, 6);

    /* Another daemon that never saw the large event appends a medium one: the size stays. */
    store_t *other = open_store();
    append_sized(other, "acct-2", 1000);
    cr_assert_eq(max_data_bytes(), (long long)large);
    free_store(other);
    free_store(s);
}

/* The migration path from the schema before 006 on a database that holds events: the largest
 * size is computed from what is stored, and the reads of a daemon started on it keep the byte
 * bound. */
Test(event_size, migration_on_a_database_with_events) {
    sql1("CREATE TABLE evs_migrations (version integer PRIMARY KEY, name text NOT NULL, "
         "applied_at timestamptz NOT NULL DEFAULT now())");
    size_t applied = 0;
    for (size_t i = 0; i < migrations_embedded_count; i++) {
        const migration_t *m = &migrations_embedded[i];
        if (m->version >= 6) continue;
        sql1(m->sql);
        char row[256];
        snprintf(row, sizeof row, "INSERT INTO evs_migrations (version, name) VALUES (%d, '%s')",
                 m->version, m->name);
        sql1(row);
        applied++;
    }
    cr_assert_eq(applied, 5, "the schema before 006 is 001 to 005");
    cr_assert_str_eq(sql1("SELECT to_regclass('evs_event_size') IS NULL"), "t");
    /* 40 events of entity acct-old with 100-byte payloads, and one of 3000 bytes at version 20,
     * written as a daemon before 006 wrote them. */
    sql1("INSERT INTO evs_events (position, event_id, entity_id, version, topic, stored_at, "
         "payload, metadata) SELECT nextval('evs_position_seq'), gen_random_uuid(), 'acct-old', v, "
         "'size.Test', 0, convert_to(repeat('x', CASE WHEN v = 20 THEN 3000 ELSE 100 END), "
         "'UTF8'), NULL FROM generate_series(0, 39) AS v");
    size_t large = strlen("acct-old") + strlen("size.Test") + 3000;
    size_t one = CODEC_EVENT_OVERHEAD + strlen("acct-old") + strlen("size.Test") + 100;

    store_t *s = open_store();
    append_sized(s, "acct-new", 10); /* waits for the migrations */
    cr_assert_eq(max_data_bytes(), (long long)large);
    char all[16];
    snprintf(all, sizeof all, "%zu", migrations_embedded_count);
    cr_assert_str_eq(sql1("SELECT count(*) FROM evs_migrations"), all, "every migration applied");

    /* Versions 10..29 hold the large one at 20: 10 small ones fit, the large one says more. */
    s->page_bytes = 10 * one;
    op_ctx_t o = {0};
    s->ops->get_by_entity(s, "acct-old", 10, 30, false, on_read, &o);
    pg_run_until(&loop, &o.done, 15000, "a read");
    cr_assert_eq(o.code, 0, "read: %s", o.why);
    cr_assert_eq(o.n, 11);
    cr_assert_eq(o.versions[10], 20);
    check_page(&o, s->page_bytes, 30, 30);
    /* Without a bound every event comes back. */
    s->page_bytes = 0;
    o = read_entity(s, "acct-old", 64, false);
    cr_assert_eq(o.n, 40);
    o = read_all(s, 64);
    cr_assert_eq(o.n, 41);
    free_store(s);
}

/* Writers other than evstored (here SQL; an evstored older than 006 alike) keep the bound through
 * the trigger: an event over the floor raises it in the writer's own transaction, a smaller one
 * fires nothing, and a rolled-back one leaves it. evstored's own appends skip the trigger. */
Test(event_size, other_writers_raise_it_through_the_trigger) {
    store_t *s = open_store();
    append_sized(s, "acct-1", 10); /* the schema is there */
    const char *insert = "INSERT INTO evs_events (position, event_id, entity_id, version, topic, "
                         "stored_at, payload) SELECT nextval('evs_position_seq'), "
                         "gen_random_uuid(), 'other', coalesce((SELECT max(version) + 1 FROM "
                         "evs_events WHERE entity_id = 'other'), 0), 't', 0, "
                         "convert_to(repeat('y', %d), 'UTF8')";
    char sql[512];
    snprintf(sql, sizeof sql, insert, 900);
    sql1(sql);
    cr_assert_eq(max_data_bytes(), SIZE_FLOOR);
    char tx[1024];
    snprintf(sql, sizeof sql, insert, 7000);
    snprintf(tx, sizeof tx, "BEGIN; %s; ROLLBACK", sql);
    sql1(tx);
    cr_assert_eq(max_data_bytes(), SIZE_FLOOR, "a rolled-back insert leaves it");
    sql1(sql);
    cr_assert_eq(max_data_bytes(), (long long)(strlen("other") + 1 + 7000));
    snprintf(sql, sizeof sql, insert, 3000);
    sql1(sql);
    cr_assert_eq(max_data_bytes(), (long long)(strlen("other") + 1 + 7000), "never lowered");

    /* The daemon's reads see it: 3 events of the floor's size would fit in 4,000 bytes, but the
     * first two take 8,232, so the third is cut. */
    s->page_bytes = 4000;
    cr_assert_leq(3 * (CODEC_EVENT_OVERHEAD + SIZE_FLOOR), 4000);
    op_ctx_t o = read_entity(s, "other", 3, false);
    cr_assert_eq(o.n, 2, "the first two whatever their size, and no more");
    check_page(&o, s->page_bytes, 3, 3);

    /* The daemon's own large append raises it by itself (the trigger skips its session). */
    append_sized(s, "acct-1", 9000);
    cr_assert_eq(max_data_bytes(), (long long)(strlen("acct-1") + strlen("size.Test") + 9000));
    free_store(s);
}
