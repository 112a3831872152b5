/* test_async.c: libevstore's asynchronous API (<evstore/async.h>) on its libuv adapter, against
 * a real evstored (one fresh daemon per test, tests/common/daemon.h). Every test runs its
 * own loop to the end and closes it, so a handle the library leaves open fails the test. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <evstore.h>
#include <evstore/async.h>
#include <evstore/libuv.h>

#include "../common/daemon.h"

static test_daemon_t daemon_;
static uv_loop_t loop;

static void setup(void) {
    cr_assert_eq(test_daemon_start(&daemon_, NULL), 0, "evstored did not start");
    cr_assert_eq(uv_loop_init(&loop), 0);
}

static void teardown(void) {
    cr_expect_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
    cr_expect_eq(uv_loop_close(&loop), 0, "a libuv handle was left open");
    if (daemon_.pid > 0) cr_expect_eq(test_daemon_stop(&daemon_), 0, "evstored did not exit 0");
}

TestSuite(async, .init = setup, .fini = teardown, .timeout = 30);

/* ---------------------------------------------------------------- helpers */

/* What the callbacks of one test saw. */
typedef struct seen {
    int calls[256]; /* calls of request i's callback */
    int order[256]; /* the requests in the order their callbacks came */
    int n;
    int errs[256]; /* reply->err, or 1 for a NULL reply */
    int ac_err;    /* ac->err at the last NULL reply */
    uint64_t positions[256], versions[256];
    int connect_calls, connect_status;
    int free_at; /* free the context in the callback of this request (-1: never) */
} seen_t;

static seen_t seen;

typedef struct req {
    int index;
} req_t;
static req_t reqs[256];

static void on_reply(evs_async_t *ac, const evs_async_reply_t *reply, void *privdata) {
    int i = ((req_t *)privdata)->index;
    seen.calls[i]++;
    seen.order[seen.n++] = i;
    if (!reply) {
        seen.errs[i] = 1;
        seen.ac_err = ac->err;
    } else {
        seen.errs[i] = reply->err;
        if (!reply->err && reply->n == 1) {
            seen.positions[i] = reply->positions[0];
            seen.versions[i] = reply->versions[0];
        }
    }
    if (seen.free_at == i) evs_async_free(ac);
}

static void on_connect(evs_async_t *ac, int status) {
    (void)ac;
    seen.connect_calls++;
    seen.connect_status = status;
}

static evs_async_t *connect_to(const char *addr) {
    memset(&seen, 0, sizeof seen);
    seen.free_at = -1;
    for (int i = 0; i < 256; i++)
        reqs[i].index = i;
    evs_options_t o = {.addr = addr};
    evs_async_t *ac = evs_async_connect(&o);
    cr_assert_not_null(ac);
    cr_assert_eq(ac->err, 0, "connect: %s", ac->errstr);
    evs_async_set_connect_callback(ac, on_connect);
    cr_assert_eq(evs_libuv_attach(ac, &loop), 0);
    return ac;
}

static evs_event_t mk(const char *entity, const char *payload) {
    evs_event_t ev;
    memset(&ev, 0, sizeof ev);
    ev.entity_id = (char *)entity;
    ev.topic = "async.Tested";
    ev.payload = (uint8_t *)payload;
    ev.payload_len = strlen(payload);
    return ev;
}

static void append1(evs_async_t *ac, int i, const char *entity) {
    evs_event_t ev = mk(entity, "x");
    cr_assert_eq(evs_async_append(ac, &ev, 1, on_reply, &reqs[i]), 0, "append: %s", ac->errstr);
}

/* Runs the loop until request i's callback came. */
static void run_until_answered(int i) {
    while (!seen.calls[i])
        cr_assert_neq(uv_run(&loop, UV_RUN_ONCE), 0, "the loop ran dry before reply %d", i);
}

/* ---------------------------------------------------------------- tests */

/* The positions and versions of a two-event append, copied inside the callback. */
static size_t got_n;
static uint64_t got_positions[2], got_versions[2];
static void on_two(evs_async_t *ac, const evs_async_reply_t *reply, void *privdata) {
    (void)ac;
    (void)privdata;
    cr_assert_not_null(reply);
    cr_assert_eq(reply->err, 0, "%s", reply->errstr);
    got_n = reply->n;
    memcpy(got_positions, reply->positions, sizeof got_positions);
    memcpy(got_versions, reply->versions, sizeof got_versions);
    seen.calls[0]++;
}

Test(async, an_append_gets_the_positions_and_versions_of_its_events) {
    evs_async_t *ac = connect_to(daemon_.addr);
    evs_event_t first = mk("acct-1", "a");
    cr_assert_eq(evs_async_append(ac, &first, 1, NULL, NULL), 0, "a callback may be NULL");
    evs_event_t evs[2] = {mk("acct-1", "b"), mk("acct-1", "c")};
    cr_assert_eq(evs_async_append(ac, evs, 2, on_two, NULL), 0);
    run_until_answered(0);
    cr_assert_eq(seen.connect_calls, 1);
    cr_assert_eq(seen.connect_status, 0);
    cr_assert_eq(got_n, 2);
    cr_assert_eq(got_versions[0], 1);
    cr_assert_eq(got_versions[1], 2);
    cr_assert_gt(got_positions[1], got_positions[0]);
    /* The blocking client finds the events where the reply said. */
    evs_context_t *c = evs_connect(daemon_.addr);
    evs_events_t *l = NULL;
    cr_assert_eq(evs_get_by_entity(c, "acct-1", 0, 0, false, &l), 0, "%s", c->errstr);
    cr_assert_eq(l->n, 3);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(l->events[i + 1].position, got_positions[i]);
        cr_assert_eq(l->events[i + 1].version, got_versions[i]);
    }
    evs_events_free(l);
    evs_free(c);
    evs_async_free(ac);
}

Test(async, pipelined_requests_are_answered_in_order_each_callback_once) {
    evs_async_t *ac = connect_to(daemon_.addr);
    /* Queued before the connection is up: they go out together once it is. */
    for (int i = 0; i < 200; i++)
        append1(ac, i, "pipe-1");
    run_until_answered(199);
    cr_assert_eq(seen.n, 200);
    for (int i = 0; i < 200; i++) {
        cr_assert_eq(seen.calls[i], 1, "callback %d called %d times", i, seen.calls[i]);
        cr_assert_eq(seen.order[i], i);
        cr_assert_eq(seen.errs[i], 0);
        cr_assert_eq(seen.versions[i], (uint64_t)i);
        if (i) cr_assert_gt(seen.positions[i], seen.positions[i - 1]);
    }
    evs_async_free(ac);
    cr_assert_eq(seen.n, 200, "no callback after its reply");
}

Test(async, a_server_error_reaches_the_callback_and_the_context_lives_on) {
    evs_async_t *ac = connect_to(daemon_.addr);
    evs_event_t ev = mk("conflict-1", "x");
    ev.has_version = 1;
    ev.version = 5; /* the entity has no events: its next version is 0 */
    cr_assert_eq(evs_async_append(ac, &ev, 1, on_reply, &reqs[0]), 0);
    append1(ac, 1, "conflict-1");
    run_until_answered(1);
    cr_assert_eq(seen.errs[0], EVS_ECONFLICT);
    cr_assert_eq(seen.errs[1], 0, "the request after the error is answered");
    cr_assert_eq(seen.versions[1], 0);
    cr_assert_eq(ac->err, 0, "a server error does not kill the context");
    evs_async_free(ac);
}

/* The details of a conflict, seen inside the callback (they live only there). */
static bool detail_ok;
static void on_conflict(evs_async_t *ac, const evs_async_reply_t *reply, void *privdata) {
    (void)privdata;
    detail_ok = reply && reply->err == EVS_ECONFLICT && reply->errstr[0] &&
                reply->detail->has_entity_id &&
                strcmp(reply->detail->entity_id, "conflict-2") == 0 && reply->detail->has_version &&
                reply->detail->version == 7 && !reply->positions;
    evs_async_free(ac);
}

Test(async, a_conflict_carries_its_details) {
    evs_async_t *ac = connect_to(daemon_.addr);
    evs_event_t ev = mk("conflict-2", "x");
    ev.has_version = 1;
    ev.version = 7;
    cr_assert_eq(evs_async_append(ac, &ev, 1, on_conflict, NULL), 0);
    cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
    cr_assert(detail_ok, "the callback did not see the conflict's details");
}

Test(async, callbacks_get_null_with_an_error_when_the_daemon_goes_away) {
    evs_async_t *ac = connect_to(daemon_.addr);
    append1(ac, 0, "gone-1");
    run_until_answered(0);
    cr_assert_eq(test_daemon_stop(&daemon_), 0);
    daemon_.pid = 0;
    for (int i = 1; i <= 3; i++)
        append1(ac, i, "gone-1");
    /* The context dies, its adapter closes its handle, and the loop runs dry. */
    cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
    for (int i = 1; i <= 3; i++) {
        cr_assert_eq(seen.calls[i], 1, "callback %d called %d times", i, seen.calls[i]);
        cr_assert_eq(seen.errs[i], 1, "callback %d did not get NULL", i);
    }
    cr_assert_eq(seen.ac_err, EVS_EIO);
    cr_assert_eq(ac->err, EVS_EIO);
    cr_assert_neq(ac->errstr[0], '\0');
    evs_event_t ev = mk("gone-1", "x");
    cr_assert_eq(evs_async_append(ac, &ev, 1, on_reply, &reqs[4]), EVS_EIO, "a dead context");
    evs_async_free(ac);
    cr_assert_eq(seen.calls[4], 0, "a refused request's callback is never called");
}

Test(async, a_failed_connect_reaches_the_connect_callback_and_the_queued_requests) {
    /* A bound socket that does not listen: connecting to it is refused. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", ntohs(sa.sin_port));
    evs_async_t *ac = connect_to(addr);
    append1(ac, 0, "refused-1");
    cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
    close(fd);
    cr_assert_eq(seen.connect_calls, 1);
    cr_assert_eq(seen.connect_status, EVS_EIO);
    cr_assert_eq(seen.calls[0], 1);
    cr_assert_eq(seen.errs[0], 1);
    evs_async_free(ac);
}

Test(async, free_with_requests_in_flight_calls_each_callback_once) {
    evs_async_t *ac = connect_to(daemon_.addr);
    append1(ac, 0, "free-1");
    run_until_answered(0);
    for (int i = 1; i <= 10; i++)
        append1(ac, i, "free-1");
    evs_async_free(ac);
    for (int i = 1; i <= 10; i++) {
        cr_assert_eq(seen.calls[i], 1, "callback %d called %d times", i, seen.calls[i]);
        cr_assert_eq(seen.errs[i], 1);
    }
    cr_assert_eq(seen.ac_err, EVS_EIO);
}

Test(async, free_inside_a_callback_ends_the_others_once) {
    evs_async_t *ac = connect_to(daemon_.addr);
    seen.free_at = 0;
    for (int i = 0; i < 20; i++)
        append1(ac, i, "free-2");
    cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
    cr_assert_eq(seen.calls[0], 1);
    cr_assert_eq(seen.errs[0], 0);
    for (int i = 1; i < 20; i++) {
        cr_assert_eq(seen.calls[i], 1, "callback %d called %d times", i, seen.calls[i]);
        cr_assert_eq(seen.errs[i], 1, "callback %d after the free did not get NULL", i);
    }
}

/* A large append: its request takes several writes and its reply several reads. */
static size_t big_n;
static bool big_ok;
static void on_big(evs_async_t *ac, const evs_async_reply_t *reply, void *privdata) {
    (void)privdata;
    big_ok = reply && reply->err == 0 && reply->n == big_n;
    for (size_t i = 0; big_ok && i < big_n; i++)
        big_ok =
            reply->versions[i] == i && (i == 0 || reply->positions[i] > reply->positions[i - 1]);
    evs_async_free(ac);
}

Test(async, a_large_append_crosses_several_writes_and_reads) {
    evs_async_t *ac = connect_to(daemon_.addr);
    static char payload[1001];
    memset(payload, 'p', 1000);
    big_n = 5000;
    evs_event_t *evs = calloc(big_n, sizeof *evs);
    for (size_t i = 0; i < big_n; i++)
        evs[i] = mk("big-1", payload);
    cr_assert_eq(evs_async_append(ac, evs, big_n, on_big, NULL), 0, "%s", ac->errstr);
    free(evs);
    cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
    cr_assert(big_ok, "the reply did not hold every position and version in order");
}

/* A repeated tracking, seen inside the callback. */
static bool tracking_refused;
static void on_tracked_again(evs_async_t *ac, const evs_async_reply_t *reply, void *privdata) {
    (void)privdata;
    tracking_refused =
        reply && reply->err == EVS_ECONFLICT && reply->detail->tracking && !reply->positions;
    evs_async_free(ac);
}

Test(async, a_tracked_append_is_stored_once_and_its_repeat_is_refused) {
    evs_async_t *ac = connect_to(daemon_.addr);
    append1(ac, 0, "tracked-source");
    run_until_answered(0);
    cr_assert_eq(seen.errs[0], 0);
    uint64_t processed = seen.positions[0];
    evs_event_t ev = mk("tracked-effect", "y");
    cr_assert_eq(evs_async_append_tracked(ac, &ev, 1, "", processed, on_reply, &reqs[1]),
                 EVS_EINVAL, "an empty consumer name was queued");
    cr_assert_eq(evs_async_append_tracked(ac, &ev, 1, NULL, processed, on_reply, &reqs[1]),
                 EVS_EINVAL);
    cr_assert_eq(
        evs_async_append_tracked(ac, &ev, 1, "async-tracker", processed, on_reply, &reqs[1]), 0,
        "append: %s", ac->errstr);
    run_until_answered(1);
    cr_assert_eq(seen.errs[1], 0, "the tracked append failed");
    cr_assert_gt(seen.positions[1], processed);
    cr_assert_eq(
        evs_async_append_tracked(ac, &ev, 1, "async-tracker", processed, on_tracked_again, NULL),
        0);
    cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
    cr_assert(tracking_refused, "the repeated tracking was not a conflict with tracking set");
}
