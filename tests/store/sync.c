/* sync.c: blocking helpers over the asynchronous store interface (see sync.h). */
#include "sync.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <uv.h>

#include "../common/clock.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

store_t *S;
const char *PREFIX;
evs_event_t *COMMITTED;
size_t NCOMMITTED;
size_t COMMIT_CALLS;

static uv_loop_t loop;
static uv_timer_t timer;
static bool timed_out;
static char prefix_buf[32];

/* Everything a test allocated through these helpers, freed at teardown. */
static char **names;
static size_t nnames;

/* Every operation's context stays alive until teardown, so that a store calling a callback a
 * second time, even late, is caught instead of writing into freed memory. */
typedef struct op {
    int calls;
    const char *what;
    void *result;
    struct op *next;
} op_t;
static op_t *ops;

int64_t wall_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void random_bytes(void *p, size_t n) {
    cr_assert_eq(getrandom(p, n, 0), (ssize_t)n);
}

/* ---------------------------------------------------------------- fixture */

static void on_commit(void *arg, const evs_event_t *events, size_t n) {
    (void)arg;
    size_t plen = strlen(PREFIX);
    bool mine = false;
    for (size_t i = 0; i < n; i++) {
        if (strncmp(events[i].entity_id, PREFIX, plen) != 0) continue;
        COMMITTED = realloc(COMMITTED, (NCOMMITTED + 1) * sizeof *COMMITTED);
        cr_assert_not_null(COMMITTED);
        cr_assert_eq(evs_event_dup(&COMMITTED[NCOMMITTED], &events[i]), 0);
        NCOMMITTED++;
        mine = true;
    }
    if (mine) COMMIT_CALLS++;
}

void store_setup(void) {
    uint8_t r[6];
    random_bytes(r, sizeof r);
    snprintf(prefix_buf, sizeof prefix_buf, "t%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2], r[3],
             r[4], r[5]);
    PREFIX = prefix_buf;
    cr_assert_eq(uv_loop_init(&loop), 0);
    cr_assert_eq(uv_timer_init(&loop, &timer), 0);
    const char *url = getenv("EVSTORE_TEST_STORE");
    if (!url || !*url) url = "memory";
    codec_error_t err;
    memset(&err, 0, sizeof err);
    S = store_open(url, &loop, &err);
    cr_assert_not_null(S, "store_open(%s): %s", url, err.message);
    store_set_commit_listener(S, on_commit, NULL);
}

static void count_handle(uv_handle_t *h, void *arg) {
    if (!uv_is_closing(h)) {
        (*(int *)arg)++;
        fprintf(stderr, "store test: handle of type %s left open by the store\n",
                uv_handle_type_name(h->type));
    }
}

void store_teardown(void) {
    if (S) S->ops->free(S);
    S = NULL;
    uv_close((uv_handle_t *)&timer, NULL);
    /* A store may need a few loop turns to close its handles after free. */
    for (int i = 0; i < 200 && uv_loop_alive(&loop); i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        if (uv_loop_alive(&loop)) sleep_ms(10);
    }
    int open = 0, bad_calls = 0;
    uv_walk(&loop, count_handle, &open);
    for (op_t *o = ops, *next; o; o = next) {
        next = o->next;
        if (o->calls != 1) {
            fprintf(stderr, "store test: the callback of %s ran %d times\n", o->what, o->calls);
            bad_calls++;
        }
        free(o);
    }
    ops = NULL;
    for (size_t i = 0; i < nnames; i++)
        free(names[i]);
    free(names);
    names = NULL;
    nnames = 0;
    for (size_t i = 0; i < NCOMMITTED; i++)
        evs_event_clear(&COMMITTED[i]);
    free(COMMITTED);
    COMMITTED = NULL;
    NCOMMITTED = COMMIT_CALLS = 0;
    /* A failed assertion in a .fini does not fail a Criterion test; a crash there is reported
     * ("crashed during its setup or teardown") and scripts/run-tests.sh counts it as a failure. */
    if (bad_calls) abort();
    if (open) {
        fprintf(stderr, "store test: the store left %d libuv handles open after free\n", open);
        abort();
    }
    if (uv_loop_close(&loop) != 0) {
        fprintf(stderr, "store test: uv_loop_close failed: the loop still has handles\n");
        abort();
    }
#if defined(__SANITIZE_ADDRESS__)
    /* Everything the test and the store allocated is freed by now: any leak is the store's or
     * the test's. */
    if (__lsan_do_recoverable_leak_check()) {
        fprintf(stderr, "store test: memory leaked (see the report above)\n");
        abort();
    }
#endif
}

const char *name(const char *suffix) {
    char *s;
    cr_assert_gt(asprintf(&s, "%s-%s", PREFIX, suffix), 0);
    names = realloc(names, (nnames + 1) * sizeof *names);
    cr_assert_not_null(names);
    names[nnames++] = s;
    return s;
}

evs_event_t new_event(const char *entity_id, const char *topic, const char *payload) {
    evs_event_t ev;
    memset(&ev, 0, sizeof ev);
    random_bytes(ev.event_id, 16);
    ev.has_event_id = 1;
    ev.entity_id = (char *)entity_id;
    ev.topic = (char *)topic;
    ev.payload = (uint8_t *)payload;
    ev.payload_len = strlen(payload);
    return ev;
}

evs_event_t new_event_v(const char *entity_id, const char *topic, const char *payload,
                        uint64_t version) {
    evs_event_t ev = new_event(entity_id, topic, payload);
    ev.has_version = 1;
    ev.version = version;
    return ev;
}

/* ---------------------------------------------------------------- waiting */

static op_t *op_new(const char *what, void *result) {
    op_t *o = calloc(1, sizeof *o);
    cr_assert_not_null(o);
    o->what = what;
    o->result = result;
    o->next = ops;
    ops = o;
    return o;
}

static void on_timeout(uv_timer_t *t) {
    (void)t;
    timed_out = true;
}

/* Runs the loop until o's callback has run, or fails the test after SYNC_TIMEOUT_MS. */
static void wait_for(op_t *o) {
    if (o->calls) return;
    timed_out = false;
    uv_timer_start(&timer, on_timeout, SYNC_TIMEOUT_MS, 0);
    while (!o->calls && !timed_out)
        uv_run(&loop, UV_RUN_ONCE);
    uv_timer_stop(&timer);
    cr_assert(o->calls, "%s: no callback within %d ms", o->what, SYNC_TIMEOUT_MS);
}

static void copy_err(codec_error_t *dst, const codec_error_t *err) {
    *dst = *err;
    cr_assert_neq(err->code, 0, "an error with code 0");
    cr_assert_neq(err->message[0], '\0', "an error without a message");
}

/* ---------------------------------------------------------------- operations */

static void on_append(void *arg, const codec_error_t *err, const uint64_t *positions,
                      const uint64_t *versions, size_t n) {
    op_t *o = arg;
    o->calls++;
    if (o->calls > 1) return;
    append_result_t *r = o->result;
    r->committed_seen = NCOMMITTED;
    if (err) {
        copy_err(&r->err, err);
        r->code = err->code;
        cr_assert_eq(n, 0, "an append error with results");
        return;
    }
    r->n = n;
    r->positions = calloc(n ? n : 1, sizeof *r->positions);
    r->versions = calloc(n ? n : 1, sizeof *r->versions);
    cr_assert(r->positions && r->versions);
    if (n) {
        memcpy(r->positions, positions, n * sizeof *positions);
        memcpy(r->versions, versions, n * sizeof *versions);
    }
}

op_t *sync_append_start(evs_event_t *events, size_t n, append_result_t *r) {
    memset(r, 0, sizeof *r);
    op_t *o = op_new("append", r);
    S->ops->append(S, events, n, on_append, o);
    return o;
}

int sync_wait_append(op_t *o, append_result_t *r) {
    wait_for(o);
    return r->code;
}

int sync_append(evs_event_t *events, size_t n, append_result_t *r) {
    return sync_wait_append(sync_append_start(events, n, r), r);
}

static void on_events(void *arg, const codec_error_t *err, const evs_event_t *events, size_t n) {
    op_t *o = arg;
    o->calls++;
    if (o->calls > 1) return;
    events_result_t *r = o->result;
    if (err) {
        copy_err(&r->err, err);
        r->code = err->code;
        return;
    }
    r->n = n;
    r->events = calloc(n ? n : 1, sizeof *r->events);
    cr_assert_not_null(r->events);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(evs_event_dup(&r->events[i], &events[i]), 0);
}

int sync_get_by_entity(const char *entity_id, uint64_t from_version, uint32_t limit, bool backwards,
                       events_result_t *r) {
    memset(r, 0, sizeof *r);
    op_t *o = op_new("get_by_entity", r);
    S->ops->get_by_entity(S, entity_id, from_version, limit, backwards, on_events, o);
    wait_for(o);
    return r->code;
}

int sync_get_by_id(const uint8_t event_id[16], events_result_t *r) {
    memset(r, 0, sizeof *r);
    op_t *o = op_new("get_by_id", r);
    S->ops->get_by_id(S, event_id, on_events, o);
    wait_for(o);
    if (r->code == 0) cr_assert_eq(r->n, 1, "get_by_id found %zu events", r->n);
    return r->code;
}

int sync_read(const store_read_t *q, events_result_t *r) {
    memset(r, 0, sizeof *r);
    op_t *o = op_new("read", r);
    S->ops->read(S, q, on_events, o);
    wait_for(o);
    return r->code;
}

/* The result of a call answered with one number (store_count_cb, store_position_cb). */
typedef struct count_result {
    int code;
    codec_error_t err;
    uint64_t count;
} count_result_t;

static void on_count(void *arg, const codec_error_t *err, uint64_t count) {
    op_t *o = arg;
    o->calls++;
    if (o->calls > 1) return;
    count_result_t *r = o->result;
    if (err) {
        copy_err(&r->err, err);
        r->code = err->code;
        return;
    }
    r->count = count;
}

int sync_delete_entity(const char *entity_id, uint64_t *count, codec_error_t *err) {
    count_result_t *r = calloc(1, sizeof *r);
    cr_assert_not_null(r);
    op_t *o = op_new("delete_entity", r);
    S->ops->delete_entity(S, entity_id, on_count, o);
    wait_for(o);
    int code = r->code;
    if (count) *count = r->count;
    if (err) *err = r->err;
    o->result = NULL;
    free(r);
    return code;
}

int sync_delete_snapshots(const char *entity_id, uint64_t *count, codec_error_t *err) {
    count_result_t *r = calloc(1, sizeof *r);
    cr_assert_not_null(r);
    op_t *o = op_new("delete_snapshots", r);
    S->ops->delete_snapshots(S, entity_id, on_count, o);
    wait_for(o);
    int code = r->code;
    if (count) *count = r->count;
    if (err) *err = r->err;
    o->result = NULL;
    free(r);
    return code;
}

int sync_put_snapshot(const store_snapshot_t *snap, codec_error_t *err) {
    count_result_t *r = calloc(1, sizeof *r);
    cr_assert_not_null(r);
    op_t *o = op_new("put_snapshot", r);
    S->ops->put_snapshot(S, snap, on_count, o);
    wait_for(o);
    int code = r->code;
    if (code == 0) cr_assert_eq(r->count, 1, "put_snapshot counts 1");
    if (err) *err = r->err;
    o->result = NULL;
    free(r);
    return code;
}

static void on_snapshot(void *arg, const codec_error_t *err, const store_snapshot_t *snap) {
    op_t *o = arg;
    o->calls++;
    if (o->calls > 1) return;
    snapshot_result_t *r = o->result;
    if (err) {
        copy_err(&r->err, err);
        r->code = err->code;
        return;
    }
    cr_assert_not_null(snap);
    r->version = snap->version;
    r->topic = strdup(snap->topic);
    r->payload = malloc(snap->payload_len ? snap->payload_len : 1);
    cr_assert(r->topic && r->payload);
    if (snap->payload_len) memcpy(r->payload, snap->payload, snap->payload_len);
    r->payload_len = snap->payload_len;
    r->timestamp = snap->timestamp;
}

int sync_get_snapshot(const char *entity_id, uint64_t max_version, snapshot_result_t *r) {
    memset(r, 0, sizeof *r);
    op_t *o = op_new("get_snapshot", r);
    S->ops->get_snapshot(S, entity_id, max_version, on_snapshot, o);
    wait_for(o);
    return r->code;
}

void snapshot_result_free(snapshot_result_t *r) {
    free(r->topic);
    free(r->payload);
    memset(r, 0, sizeof *r);
}

void append_result_free(append_result_t *r) {
    free(r->positions);
    free(r->versions);
    memset(r, 0, sizeof *r);
}

void events_result_free(events_result_t *r) {
    for (size_t i = 0; i < r->n; i++)
        evs_event_clear(&r->events[i]);
    free(r->events);
    memset(r, 0, sizeof *r);
}

append_result_t append_ok(evs_event_t *events, size_t n) {
    append_result_t r;
    int rc = sync_append(events, n, &r);
    cr_assert_eq(rc, 0, "append failed: %s (%s)", evs_code_name(rc), r.err.message);
    cr_assert_eq(r.n, n, "append returned %zu results for %zu events", r.n, n);
    return r;
}

events_result_t entity_events(const char *entity_id) {
    events_result_t r;
    int rc = sync_get_by_entity(entity_id, 0, STORE_MAX_LIMIT, false, &r);
    cr_assert_eq(rc, 0, "get_by_entity failed: %s (%s)", evs_code_name(rc), r.err.message);
    return r;
}

size_t entity_count(const char *entity_id) {
    events_result_t r = entity_events(entity_id);
    size_t n = r.n;
    events_result_free(&r);
    return n;
}

void need_delete(void) {
    if (!S->ops->delete_entity) cr_skip("store %s has no delete_entity", S->ops->name);
}

uint64_t delete_ok(const char *entity_id) {
    uint64_t count = 12345;
    codec_error_t err;
    int rc = sync_delete_entity(entity_id, &count, &err);
    cr_assert_eq(rc, 0, "delete_entity: %s (%s)", evs_code_name(rc), err.message);
    return count;
}

/* ---------------------------------------------------------------- consumers */

op_t *sync_append_tracked_start(evs_event_t *events, size_t n, const store_tracking_t *t,
                                append_result_t *r) {
    memset(r, 0, sizeof *r);
    op_t *o = op_new("append_tracked", r);
    S->ops->append_tracked(S, events, n, t, on_append, o);
    return o;
}

int sync_append_tracked(evs_event_t *events, size_t n, const store_tracking_t *t,
                        append_result_t *r) {
    return sync_wait_append(sync_append_tracked_start(events, n, t, r), r);
}

int sync_checkpoint_fenced(const char *consumer, uint64_t position, uint64_t fence, uint64_t *out,
                           codec_error_t *err) {
    count_result_t *r = calloc(1, sizeof *r);
    cr_assert_not_null(r);
    op_t *o = op_new("checkpoint", r);
    store_tracking_t t = {.consumer = consumer, .position = position, .fence = fence};
    S->ops->checkpoint(S, &t, on_count, o);
    wait_for(o);
    int code = r->code;
    if (out) *out = r->count;
    if (err) *err = r->err;
    o->result = NULL;
    free(r);
    return code;
}

uint64_t sync_get_checkpoint(const char *consumer) {
    count_result_t *r = calloc(1, sizeof *r);
    cr_assert_not_null(r);
    op_t *o = op_new("get_checkpoint", r);
    S->ops->get_checkpoint(S, consumer, on_count, o);
    wait_for(o);
    cr_assert_eq(r->code, 0, "get_checkpoint: %s", r->err.message);
    uint64_t position = r->count;
    o->result = NULL;
    free(r);
    return position;
}

int sync_delete_checkpoint(const char *consumer, uint64_t *count) {
    count_result_t *r = calloc(1, sizeof *r);
    cr_assert_not_null(r);
    op_t *o = op_new("delete_checkpoint", r);
    S->ops->delete_checkpoint(S, consumer, on_count, o);
    wait_for(o);
    int code = r->code;
    if (count) *count = r->count;
    o->result = NULL;
    free(r);
    return code;
}

static void on_consumers(void *arg, const codec_error_t *err, const store_consumer_t *list,
                         size_t n, uint64_t head) {
    op_t *o = arg;
    o->calls++;
    if (o->calls > 1) return;
    consumers_result_t *r = o->result;
    if (err) {
        r->code = err->code;
        return;
    }
    r->head = head;
    r->names = calloc(n + 1, sizeof *r->names);
    r->positions = calloc(n + 1, sizeof *r->positions);
    r->active = calloc(n + 1, sizeof *r->active);
    cr_assert(r->names && r->positions && r->active);
    for (size_t i = 0; i < n; i++) {
        if (strncmp(list[i].consumer, PREFIX, strlen(PREFIX)) != 0) continue;
        r->names[r->n] = strdup(list[i].consumer);
        r->positions[r->n] = list[i].position;
        r->active[r->n] = list[i].active;
        r->n++;
    }
}

int sync_consumers(consumers_result_t *r) {
    memset(r, 0, sizeof *r);
    op_t *o = op_new("consumers", r);
    S->ops->consumers(S, on_consumers, o);
    wait_for(o);
    return r->code;
}

void consumers_result_free(consumers_result_t *r) {
    for (size_t i = 0; i < r->n; i++)
        free(r->names[i]);
    free(r->names);
    free(r->positions);
    free(r->active);
    memset(r, 0, sizeof *r);
}

int sync_checkpoint(const char *consumer, uint64_t position, uint64_t *out, codec_error_t *err) {
    return sync_checkpoint_fenced(consumer, position, 0, out, err);
}

typedef struct lease_result {
    int code;
    bool held;
    uint64_t fence;
} lease_result_t;

static void on_lease(void *arg, const codec_error_t *err, bool held, uint64_t fence) {
    op_t *o = arg;
    o->calls++;
    if (o->calls > 1) return;
    lease_result_t *r = o->result;
    r->code = err ? err->code : 0;
    r->held = held;
    r->fence = fence;
}

bool sync_lease(const char *consumer, uint64_t fence, uint32_t ttl_ms, uint64_t *out) {
    lease_result_t *r = calloc(1, sizeof *r);
    cr_assert_not_null(r);
    op_t *o = op_new("lease", r);
    S->ops->lease(S, consumer, fence, ttl_ms, on_lease, o);
    wait_for(o);
    cr_assert_eq(r->code, 0, "lease failed");
    bool held = r->held;
    if (out) *out = r->fence;
    o->result = NULL;
    free(r);
    return held;
}

uint64_t sync_lease_release(const char *consumer, uint64_t fence) {
    count_result_t *r = calloc(1, sizeof *r);
    cr_assert_not_null(r);
    op_t *o = op_new("lease_release", r);
    S->ops->lease_release(S, consumer, fence, on_count, o);
    wait_for(o);
    cr_assert_eq(r->code, 0, "lease_release failed");
    uint64_t count = r->count;
    o->result = NULL;
    free(r);
    return count;
}
