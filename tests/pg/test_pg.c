/* test_pg.c: PostgreSQL-specific tests of the PostgreSQL store.
 *
 * Driven through the store interface on a libuv loop, each test on a database of its own created
 * in the cluster that $EVSTORE_PG_URL names (scripts/pg-cluster.sh run sets it). The tests that
 * stop and restart the server need $EVSTORE_PG_DIR too. They stop the shared server, so run this
 * binary alone and with one job (scripts/run-tests.sh passes -j1). Without $EVSTORE_PG_URL every
 * test is skipped. As in the store suite, a test that leaves a libuv handle open fails: its
 * teardown aborts, and scripts/run-tests.sh counts the crash as a failure. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "../common/clock.h"
#include "../common/db.h"
#include "fixture.h"

#include "../../server/pg/migrations.h"
#include "../../server/pg/store.h"
#include "../../server/store.h"

/* ---------------------------------------------------------------- fixture */

static uv_loop_t loop;
static test_db_t db; /* this test's database */
static const char *cluster_url, *cluster_dir;

/* Runs one SQL command on url; returns the first value or "". */
static char *sql1(const char *url, const char *sql) {
    static char out[256];
    char err[512];
    cr_assert_eq(test_sql(url, sql, out, sizeof out, err, sizeof err), 0, "%s", err);
    return out;
}

static void setup(void) {
    cluster_dir = getenv("EVSTORE_PG_DIR");
    pg_fixture_setup(&loop, &db, "evs_pgtest", &cluster_url);
}

static void teardown(void) {
    pg_fixture_teardown(&loop, &db, cluster_url);
}

TestSuite(pg, .init = setup, .fini = teardown, .timeout = 120);

static store_t *open_store(void) {
    codec_error_t err;
    memset(&err, 0, sizeof err);
    store_t *s = pg_store_open(db.url, &loop, &err);
    cr_assert_not_null(s, "pg_store_open: %s", err.message);
    s->request_timeout_ms = 10000;
    return s;
}

/* Runs the loop until *done (or fails the test after ms). */
static void run_until(const int *done, int ms, const char *what) {
    pg_run_until(&loop, done, ms, what);
}

/* ---------------------------------------------------------------- async appends */

typedef struct append_ctx {
    int done;
    int code;
    codec_error_t err;
    uint64_t positions[16], versions[16];
    size_t n;
    uint8_t ids[16][16];
} append_ctx_t;

static void on_append(void *arg, const codec_error_t *err, const uint64_t *positions,
                      const uint64_t *versions, size_t n) {
    append_ctx_t *a = arg;
    cr_assert_eq(a->done, 0, "an append callback ran twice");
    a->done = 1;
    a->code = err ? err->code : 0;
    if (err) a->err = *err;
    a->n = n;
    for (size_t i = 0; i < n && i < 16; i++) {
        a->positions[i] = positions[i];
        a->versions[i] = versions[i];
    }
}

static const char PAYLOAD[] = "{\"amount\": 100, \"note\": \"a payload of about a hundred bytes\"}";

static evs_event_t event(const char *entity, const char *topic) {
    evs_event_t ev;
    memset(&ev, 0, sizeof ev);
    cr_assert_eq(getrandom(ev.event_id, 16, 0), 16);
    ev.has_event_id = 1;
    ev.entity_id = (char *)entity;
    ev.topic = (char *)topic;
    ev.payload = (uint8_t *)PAYLOAD;
    ev.payload_len = sizeof PAYLOAD - 1;
    return ev;
}

static void start_append(store_t *s, evs_event_t *evs, size_t n, append_ctx_t *a) {
    memset(a, 0, sizeof *a);
    for (size_t i = 0; i < n && i < 16; i++)
        memcpy(a->ids[i], evs[i].event_id, 16);
    s->ops->append(s, evs, n, on_append, a);
}

static append_ctx_t append1(store_t *s, const char *entity, const char *topic) {
    append_ctx_t a;
    evs_event_t ev = event(entity, topic);
    start_append(s, &ev, 1, &a);
    run_until(&a.done, 15000, "an append");
    return a;
}

/* Appends until one succeeds (the store is reconnecting); fails after ms. */
static append_ctx_t append_until_ok(store_t *s, const char *entity, int ms) {
    uint64_t end = uv_hrtime() + (uint64_t)ms * 1000000u;
    for (;;) {
        append_ctx_t a = append1(s, entity, "pg.Test");
        if (a.code == 0) return a;
        cr_assert_eq(a.code, EVS_EUNAVAILABLE, "append failed with %s (%s), not unavailable",
                     evs_code_name(a.code), a.err.message);
        cr_assert(uv_hrtime() < end, "appends still fail after %d ms: %s", ms, a.err.message);
        uint64_t t = uv_hrtime() + 100000000u;
        while (uv_hrtime() < t) {
            uv_run(&loop, UV_RUN_NOWAIT);
            sleep_ms(5);
        }
    }
}

static void free_store(store_t *s) {
    s->ops->free(s);
    for (int i = 0; i < 100; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
}

/* ---------------------------------------------------------------- reads */

typedef struct read_ctx {
    int done, code;
    uint64_t *positions;
    size_t n;
    uint64_t last;
} read_ctx_t;

static void on_read(void *arg, const codec_error_t *err, const evs_event_t *events, size_t n) {
    read_ctx_t *r = arg;
    r->done = 1;
    r->code = err ? err->code : 0;
    if (err) return;
    r->positions = realloc(r->positions, (r->n + n + 1) * sizeof *r->positions);
    for (size_t i = 0; i < n; i++) {
        r->positions[r->n++] = events[i].position;
        r->last = events[i].position;
    }
}

/* The commit listener: which listener call (one per transaction) carried each position. */
static uint64_t seen_pos[64];
static int seen_call[64];
static int nseen, ncalls;

static void on_commit(void *arg, const evs_event_t *events, size_t n) {
    (void)arg;
    ncalls++;
    for (size_t i = 0; i < n && nseen < 64; i++) {
        seen_pos[nseen] = events[i].position;
        seen_call[nseen++] = ncalls;
    }
}

static int commit_call_of(uint64_t position) {
    for (int i = 0; i < nseen; i++)
        if (seen_pos[i] == position) return seen_call[i];
    cr_assert_fail("position %llu never reached the commit listener", (unsigned long long)position);
    return -1;
}

/* ---------------------------------------------------------------- tests */

Test(pg, conflict_inside_a_group_leaves_the_others_committed) {
    store_t *s = open_store();
    store_set_commit_listener(s, on_commit, NULL);
    append_ctx_t warm = append1(s, "acct-a", "pg.Test");
    cr_assert_eq(warm.code, 0, "%s", warm.err.message);

    /* The first append starts a transaction at once; the next four arrive while it is in
     * flight and so go together into the next one. */
    evs_event_t x = event("acct-x", "pg.Test"), b = event("acct-b", "pg.Test");
    evs_event_t c = event("acct-a", "pg.Test"), d = event("acct-d", "pg.Test");
    evs_event_t e = event("acct-a", "pg.Test");
    c.has_version = 1;
    c.version = 0;                       /* acct-a is at version 0 already */
    memcpy(e.event_id, warm.ids[0], 16); /* a retry of the first append */
    append_ctx_t ax, ab, ac, ad, ae;
    start_append(s, &x, 1, &ax);
    start_append(s, &b, 1, &ab);
    start_append(s, &c, 1, &ac);
    start_append(s, &d, 1, &ad);
    start_append(s, &e, 1, &ae);
    run_until(&ax.done, 15000, "x");
    run_until(&ab.done, 15000, "b");
    run_until(&ac.done, 15000, "c");
    run_until(&ad.done, 15000, "d");
    run_until(&ae.done, 15000, "e");
    cr_assert_eq(ax.code, 0, "%s", ax.err.message);
    cr_assert_eq(ab.code, 0, "%s", ab.err.message);
    cr_assert_eq(ad.code, 0, "%s", ad.err.message);
    cr_assert_eq(ac.code, EVS_ECONFLICT, "the stale append got %s", evs_code_name(ac.code));
    cr_assert(ac.err.has_entity && strcmp(ac.err.entity_id, "acct-a") == 0);
    cr_assert(ac.err.has_current && ac.err.current_version == 0);
    cr_assert_eq(ae.code, 0, "the retry got %s", evs_code_name(ae.code));
    cr_assert_eq(ae.positions[0], warm.positions[0], "the retry did not get the first position");
    cr_assert_lt(ab.positions[0], ad.positions[0]);
    cr_assert_eq(commit_call_of(ab.positions[0]), commit_call_of(ad.positions[0]),
                 "b and d were not committed in one group");
    cr_assert_neq(commit_call_of(ax.positions[0]), commit_call_of(ab.positions[0]));
    /* b and d are stored; acct-a still has one event. */
    read_ctx_t r = {0};
    store_read_t q = {.after = 0, .limit = 100};
    s->ops->read(s, &q, on_read, &r);
    run_until(&r.done, 15000, "read-all");
    cr_assert_eq(r.code, 0);
    cr_assert_eq(r.n, 4, "expected 4 stored events, found %zu", r.n);
    free(r.positions);
    free_store(s);
}

Test(pg, terminated_backends_are_replaced) {
    store_t *s = open_store();
    cr_assert_eq(append1(s, "acct-1", "pg.Test").code, 0);
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
             "WHERE datname = '%s' AND application_name = 'evstored'",
             db.name);
    const char *n = sql1(cluster_url, sql);
    cr_assert_eq(atoi(n), 3, "expected the store's 3 connections, terminated %s", n);
    /* The first append after the kill may fail (unavailable), never hang; within seconds they
     * work again. */
    append_ctx_t a = append1(s, "acct-1", "pg.Test");
    cr_assert(a.code == 0 || a.code == EVS_EUNAVAILABLE, "got %s", evs_code_name(a.code));
    append_until_ok(s, "acct-1", 10000);
    read_ctx_t r = {0};
    s->ops->get_by_entity(s, "acct-1", 0, 100, false, on_read, &r);
    run_until(&r.done, 15000, "get-by-entity");
    cr_assert_eq(r.code, 0);
    cr_assert_geq(r.n, 2);
    free(r.positions);
    free_store(s);
}

static void cluster(const char *what) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "scripts/pg-cluster.sh %s %s >/dev/null", what, cluster_dir);
    cr_assert_eq(system(cmd), 0, "%s failed", cmd);
}

Test(pg, server_restart_is_recovered) {
    if (!cluster_dir || !*cluster_dir) cr_skip_test("EVSTORE_PG_DIR is not set");
    store_t *s = open_store();
    cr_assert_eq(append1(s, "acct-1", "pg.Test").code, 0);
    cluster("restart");
    append_ctx_t a = append1(s, "acct-1", "pg.Test");
    cr_assert(a.code == 0 || a.code == EVS_EUNAVAILABLE, "got %s", evs_code_name(a.code));
    append_until_ok(s, "acct-1", 10000);
    free_store(s);
}

Test(pg, unreachable_at_start_answers_unavailable_then_recovers) {
    if (!cluster_dir || !*cluster_dir) cr_skip_test("EVSTORE_PG_DIR is not set");
    cluster("stop-server");
    store_t *s = open_store();
    append_ctx_t a = append1(s, "acct-1", "pg.Test");
    cr_assert_eq(a.code, EVS_EUNAVAILABLE, "got %s while the server is down",
                 evs_code_name(a.code));
    cr_assert_not(s->live_ready, "no live feed while the server is down");
    read_ctx_t r = {0};
    s->ops->get_by_entity(s, "acct-1", 0, 10, false, on_read, &r);
    run_until(&r.done, 15000, "get-by-entity");
    cr_assert_eq(r.code, EVS_EUNAVAILABLE);
    cluster("start-server");
    append_until_ok(s, "acct-1", 10000);
    /* Appends wait for the feed's start (gc_set_held), so it runs by now. */
    cr_assert(s->live_ready, "an append succeeded but the live feed is not running");
    free_store(s);
}

Test(pg, migrations_applied_twice_are_a_no_op) {
    /* Two stores starting at once on an empty database, then a third one later. */
    store_t *s1 = open_store(), *s2 = open_store();
    append_ctx_t a1, a2;
    evs_event_t e1 = event("acct-1", "pg.Test"), e2 = event("acct-2", "pg.Test");
    start_append(s1, &e1, 1, &a1);
    start_append(s2, &e2, 1, &a2);
    run_until(&a1.done, 15000, "append 1");
    run_until(&a2.done, 15000, "append 2");
    cr_assert_eq(a1.code, 0, "%s", a1.err.message);
    cr_assert_eq(a2.code, 0, "%s", a2.err.message);
    free_store(s1);
    free_store(s2);
    store_t *s3 = open_store();
    cr_assert_eq(append1(s3, "acct-3", "pg.Test").code, 0);
    free_store(s3);
    char count[32];
    snprintf(count, sizeof count, "%s", sql1(db.url, "SELECT count(*) FROM evs_migrations"));
    cr_assert_eq((size_t)atoi(count), migrations_embedded_count);
    cr_assert_str_eq(sql1(db.url, "SELECT count(DISTINCT version) FROM evs_migrations"), count);
    cr_assert_str_eq(sql1(db.url, "SELECT count(*) FROM evs_events"), "3");
}

/* Each store decides appends from the versions it remembers while nothing else changed the
 * events (migrations/003_append_guard.sql): what another store appends or deletes, and an entity
 * it never saw that has events, must still give the right versions and conflicts. */
typedef struct count_ctx {
    int done, code;
    uint64_t n;
} count_ctx_t;

static void on_count(void *arg, const codec_error_t *err, uint64_t n) {
    count_ctx_t *c = arg;
    c->done = 1;
    c->code = err ? err->code : 0;
    c->n = n;
}

static uint64_t delete_entity(store_t *s, const char *entity) {
    count_ctx_t c = {0};
    s->ops->delete_entity(s, entity, on_count, &c);
    run_until(&c.done, 15000, "delete-entity");
    cr_assert_eq(c.code, 0, "delete-entity failed");
    return c.n;
}

static uint64_t version_of_append(store_t *s, const char *entity) {
    append_ctx_t a = append1(s, entity, "pg.Test");
    cr_assert_eq(a.code, 0, "append to %s: %s", entity, a.err.message);
    return a.versions[0];
}

Test(pg, remembered_versions_follow_other_daemons_appends_and_deletes) {
    store_t *s1 = open_store(), *s2 = open_store();
    cr_assert_eq(version_of_append(s1, "acct-c"), 0);
    cr_assert_eq(version_of_append(s1, "acct-c"), 1);
    cr_assert_eq(version_of_append(s2, "acct-c"), 2, "s2 did not see s1's appends");
    cr_assert_eq(version_of_append(s1, "acct-c"), 3, "s1 did not see s2's append");
    cr_assert_eq(version_of_append(s1, "acct-c"), 4);
    /* An explicit stale version is a conflict with the entity's current version. */
    append_ctx_t a;
    evs_event_t ev = event("acct-c", "pg.Test");
    ev.has_version = 1;
    ev.version = 2;
    start_append(s1, &ev, 1, &a);
    run_until(&a.done, 15000, "a stale append");
    cr_assert_eq(a.code, EVS_ECONFLICT, "a stale version got %s", evs_code_name(a.code));
    cr_assert(a.err.has_current && a.err.current_version == 4);
    /* A delete by the other store, then by the same one. */
    cr_assert_eq(delete_entity(s2, "acct-c"), 5);
    cr_assert_eq(version_of_append(s1, "acct-c"), 0, "s1 did not see s2's delete");
    cr_assert_eq(version_of_append(s1, "acct-c"), 1);
    cr_assert_eq(delete_entity(s1, "acct-c"), 2);
    cr_assert_eq(version_of_append(s1, "acct-c"), 0);
    cr_assert_eq(version_of_append(s2, "acct-c"), 1);
    /* An entity s1 never saw, with events: s1 must not take it for new. */
    cr_assert_eq(version_of_append(s2, "acct-n"), 0);
    cr_assert_eq(version_of_append(s1, "acct-other"), 0); /* s1 catches up with the sequence */
    cr_assert_eq(version_of_append(s1, "acct-n"), 1, "s1 took an existing entity for new");
    /* A retry (same event id) of an append s2 committed, sent to s1: the original result. */
    append_ctx_t first = append1(s2, "acct-r", "pg.Test");
    cr_assert_eq(first.code, 0);
    cr_assert_eq(version_of_append(s1, "acct-other"), 1);
    ev = event("acct-r", "pg.Test");
    memcpy(ev.event_id, first.ids[0], 16);
    start_append(s1, &ev, 1, &a);
    run_until(&a.done, 15000, "a retry");
    cr_assert_eq(a.code, 0, "the retry got %s", evs_code_name(a.code));
    cr_assert_eq(a.positions[0], first.positions[0]);
    cr_assert_str_eq(sql1(db.url, "SELECT count(*) FROM evs_events WHERE entity_id = 'acct-r'"),
                     "1");
    free_store(s1);
    free_store(s2);
}

/* Writers keep appends in flight on two stores (two daemons' worth of connections, each with
 * its own writer and advisory lock) while a reader tails get-by-topic with after = last seen. */
typedef struct writer {
    store_t *s;
    append_ctx_t ctx;
    evs_event_t ev;
    char entity[32];
    int running;
    uint64_t *acked;
    size_t *nacked;
} writer_t;

static void writer_next(writer_t *w);

static void on_writer_append(void *arg, const codec_error_t *err, const uint64_t *positions,
                             const uint64_t *versions, size_t n) {
    writer_t *w = arg;
    (void)versions;
    cr_assert_null(err, "append failed: %s", err ? err->message : "");
    cr_assert_eq(n, 1);
    w->acked[(*w->nacked)++] = positions[0];
    if (w->running)
        writer_next(w);
    else
        w->ctx.done = 1;
}

static void writer_next(writer_t *w) {
    w->ev = event(w->entity, "pg.Tail");
    w->s->ops->append(w->s, &w->ev, 1, on_writer_append, w);
}

Test(pg, two_daemons_and_a_tailing_reader_see_every_position_once_in_order) {
    store_t *a = open_store(), *b = open_store(), *reader = open_store();
    enum { NW = 16, MAXACK = 400000 };
    static writer_t ws[NW];
    uint64_t *acked = calloc(MAXACK, sizeof *acked);
    size_t nacked = 0;
    for (int i = 0; i < NW; i++) {
        ws[i] = (writer_t){.s = i % 2 ? b : a, .running = 1, .acked = acked, .nacked = &nacked};
        snprintf(ws[i].entity, sizeof ws[i].entity, "tail-%d", i);
        writer_next(&ws[i]);
    }
    const char *topics[] = {"pg.Tail"};
    read_ctx_t r = {0};
    uint64_t end = uv_hrtime() + 3000000000u;
    bool stopping = false;
    for (;;) {
        size_t before = r.n;
        /* Only a read sent after the last acknowledgement proves that nothing is left. */
        bool all_acked = stopping;
        for (int i = 0; i < NW && all_acked; i++)
            all_acked = ws[i].ctx.done == 1;
        r.done = 0;
        store_read_t q = {.after = r.last, .limit = 1000, .topics = topics, .ntopics = 1};
        reader->ops->read(reader, &q, on_read, &r);
        run_until(&r.done, 15000, "a tail read");
        cr_assert_eq(r.code, 0);
        if (!stopping && uv_hrtime() > end) {
            stopping = true;
            for (int i = 0; i < NW; i++)
                ws[i].running = 0;
        }
        if (all_acked && r.n == before) break;
    }
    cr_assert_gt(nacked, 100, "only %zu appends in 3 s", nacked);
    for (size_t i = 1; i < r.n; i++)
        cr_assert_lt(r.positions[i - 1], r.positions[i], "positions out of order at %zu", i);
    /* Every acknowledged position was seen exactly once (the reader's list is strictly
     * increasing, so a binary search finds each). */
    for (size_t i = 0; i < nacked; i++) {
        size_t lo = 0, hi = r.n;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (r.positions[mid] < acked[i])
                lo = mid + 1;
            else
                hi = mid;
        }
        cr_assert(lo < r.n && r.positions[lo] == acked[i],
                  "position %llu was never read (the reader read %zu events up to %llu)",
                  (unsigned long long)acked[i], r.n, (unsigned long long)r.last);
    }
    cr_assert_eq(r.n, nacked, "the reader saw %zu events, %zu were acknowledged", r.n, nacked);
    free(r.positions);
    free(acked);
    free_store(a);
    free_store(b);
    free_store(reader);
}

/* The child: appends with 32 in flight and reports each acknowledged event id on fd, until it
 * is killed. */
typedef struct killer_writer {
    store_t *s;
    evs_event_t ev;
    char entity[32];
    int fd;
} killer_writer_t;

static void kw_next(killer_writer_t *w);

static void kw_done(void *arg, const codec_error_t *err, const uint64_t *positions,
                    const uint64_t *versions, size_t n) {
    killer_writer_t *w = arg;
    (void)positions, (void)versions, (void)n;
    if (!err && write(w->fd, w->ev.event_id, 16) != 16) _exit(3);
    kw_next(w);
}

static void kw_next(killer_writer_t *w) {
    w->ev = event(w->entity, "pg.Kill");
    w->s->ops->append(w->s, &w->ev, 1, kw_done, w);
}

Test(pg, kill_9_during_write_load_loses_no_acknowledged_append) {
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        uv_loop_t l;
        uv_loop_init(&l);
        codec_error_t err;
        store_t *s = pg_store_open(db.url, &l, &err);
        if (!s) _exit(2);
        static killer_writer_t ws[32];
        for (int i = 0; i < 32; i++) {
            ws[i].s = s;
            ws[i].fd = fds[1];
            snprintf(ws[i].entity, sizeof ws[i].entity, "kill-%d", i);
            kw_next(&ws[i]);
        }
        uv_run(&l, UV_RUN_DEFAULT);
        _exit(0);
    }
    close(fds[1]);
    size_t cap = 1 << 20, len = 0;
    uint8_t *ids = malloc(cap);
    uint64_t kill_at = uv_hrtime() + 2000000000u;
    bool killed = false;
    for (;;) {
        if (!killed && uv_hrtime() > kill_at) {
            kill(pid, SIGKILL);
            killed = true;
        }
        if (len + 4096 > cap) ids = realloc(ids, cap *= 2);
        ssize_t got = read(fds[0], ids + len, 4096);
        if (got <= 0) break; /* EOF: the child is dead and the pipe drained */
        len += (size_t)got;
    }
    close(fds[0]);
    int status;
    waitpid(pid, &status, 0);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "the writer exited by itself");
    size_t nids = len / 16;
    cr_assert_gt(nids, 50, "only %zu appends acknowledged before the kill", nids);
    /* Every acknowledged id is stored: all the lookups in flight at once. */
    store_t *s = open_store();
    read_ctx_t *rs = calloc(nids, sizeof *rs);
    for (size_t i = 0; i < nids; i++)
        s->ops->get_by_id(s, ids + i * 16, on_read, &rs[i]);
    size_t missing = 0;
    for (size_t i = 0; i < nids; i++) {
        run_until(&rs[i].done, 30000, "get-by-id");
        if (rs[i].code != 0 || rs[i].n != 1) missing++;
        free(rs[i].positions);
    }
    free(rs);
    cr_assert_eq(missing, 0, "%zu of %zu acknowledged appends are missing", missing, nids);
    free(ids);
    free_store(s);
}
