/* test_never_read.c: clients that send one small request and never read the answer. Whatever
 * they ask for (a read-all of the whole log, a subscription from position 0), the daemon holds
 * about output_limit for each of them, not the size of the answer. Memory is measured as the
 * daemon's RSS growth, with generous margins. */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/rss.h"
#include "fixture.h"

TestSuite(never_read, .fini = fx_teardown, .timeout = 180);

enum {
    CLIENTS = 10,
    EVENT_SIZE = 30 * 1024,
    EVENTS = 640, /* 19 MB: more than max_frame */
    PER_APPEND = 32,
};

/* Under AddressSanitizer freed memory waits in a quarantine (256 MB by default) that would show
 * as RSS: keep it small, so that RSS tells what the daemon really holds. */
static void small_asan_quarantine(void) {
    const char *asan = getenv("ASAN_OPTIONS");
    char opts[1024];
    snprintf(opts, sizeof opts, "%s%squarantine_size_mb=4", asan ? asan : "", asan ? ":" : "");
    setenv("ASAN_OPTIONS", opts, 1);
}

/* Stores EVENTS events of EVENT_SIZE bytes under this test's entity prefix. */
static void fill_log(void) {
    int w = fx_connect();
    for (int k = 0; k < EVENTS / PER_APPEND; k++) {
        rq_t r;
        rq_begin(&r, "append", (uint64_t)k + 1, 1);
        pk_str(&r.pk, "events");
        msgpack_pack_array(&r.pk, PER_APPEND);
        for (int i = 0; i < PER_APPEND; i++) {
            const char *entity = tname("big");
            fx_pack_event(&r.pk, entity, strlen(entity), "big", EVENT_SIZE);
        }
        fx_send_rq(w, &r);
        reply_t rep = fx_expect_ok(w, (uint64_t)k + 1);
        reply_free(&rep);
    }
    close(w);
}

/* Reads the whole log twice at once, on connections that read their replies, so that the memory
 * a store needs for such reads (PostgreSQL's results, freed but kept by the allocator) is counted
 * before the test measures, not as if the clients that never read held it. */
static void send_read_all(int fd, uint64_t id) {
    rq_t r;
    rq_begin(&r, "read-all", id, 1);
    pk_str(&r.pk, "limit");
    msgpack_pack_uint32(&r.pk, 10000);
    fx_send_rq(fd, &r);
}

static void warm_up(void) {
    int fds[2] = {fx_connect(), fx_connect()};
    for (int i = 0; i < 2; i++)
        send_read_all(fds[i], 9);
    for (int i = 0; i < 2; i++) {
        reply_t rep = fx_expect_ok(fds[i], 9);
        reply_free(&rep);
        close(fds[i]);
    }
}

/* Starts the daemon on a log bigger than max_frame; returns its RSS once warmed up, in kB. */
static long start_on_a_big_log(void) {
    small_asan_quarantine();
    fx_start(NULL);
    fill_log();
    warm_up();
    return rss_kb(fx_daemon.pid);
}

/* Waits until every fd has bytes to read (the daemon has started sending its answer), at most
 * 30 s. */
static void wait_readable(const int *fds, int n) {
    int64_t deadline = now_ms() + 30000;
    for (int i = 0; i < n; i++) {
        struct pollfd p = {.fd = fds[i], .events = POLLIN};
        int64_t left = deadline - now_ms();
        cr_assert_eq(poll(&p, 1, left > 0 ? (int)left : 0), 1,
                     "client %d received nothing within 30 s", i);
    }
}

/* Each client sent one small request and reads nothing more: the daemon's RSS may grow by
 * about output_limit (2 MiB) per client, here with a margin of 3x, not by what they asked for
 * (16 MiB each). */
static void assert_bounded(long before_kb, const char *what) {
    long after_kb = rss_kb(fx_daemon.pid);
    long grew_kb = after_kb - before_kb;
    cr_log_info("%s: daemon RSS %ld kB -> %ld kB (+%ld kB for %d clients)", what, before_kb,
                after_kb, grew_kb, CLIENTS);
    cr_assert_lt(grew_kb, CLIENTS * 6 * 1024L, "%s: the daemon holds %ld MB more for %d clients",
                 what, grew_kb / 1024, CLIENTS);
}

Test(never_read, read_all_clients_that_never_read_hold_about_output_limit_each) {
    long before = start_on_a_big_log();
    int fds[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        fds[i] = fx_connect_small_rcvbuf();
        send_read_all(fds[i], 1);
    }
    wait_readable(fds, CLIENTS);
    assert_bounded(before, "read-all");
    /* A client that reads at last gets its page, cut where the room ran out. */
    reply_t rep = fx_expect_ok(fds[0], 1);
    const msgpack_object *evs = reply_get(&rep, "events");
    cr_assert(evs && evs->type == MSGPACK_OBJECT_ARRAY && evs->via.array.size > 0);
    const msgpack_object *trunc = reply_get(&rep, "truncated");
    cr_assert(trunc && trunc->type == MSGPACK_OBJECT_BOOLEAN && trunc->via.boolean,
              "a page cut short says so");
    reply_free(&rep);
    for (int i = 0; i < CLIENTS; i++)
        close(fds[i]);
    fx_finish();
}

Test(never_read, subscribers_from_position_0_that_never_read_hold_about_output_limit_each) {
    long before = start_on_a_big_log();
    int fds[CLIENTS];
    const char *prefix = tname("big");
    for (int i = 0; i < CLIENTS; i++) {
        fds[i] = fx_connect_small_rcvbuf();
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        rq_subscribe(&sb, 1, true, 0, NULL, 0, prefix);
        cr_assert_eq(raw_send_sb(fds[i], &sb), 0);
        msgpack_sbuffer_destroy(&sb);
        reply_t rep = fx_expect_ok(fds[i], 1); /* the reply, then pushes that are not read */
        reply_free(&rep);
    }
    wait_readable(fds, CLIENTS);
    assert_bounded(before, "subscribe after=0");
    for (int i = 0; i < CLIENTS; i++)
        close(fds[i]);
    fx_finish();
}

enum {
    COMMIT_EVENTS = 1900,
    COMMIT_EVENT_SIZE = 8 * 1024, /* one append of 15.6 MB */
};

/* Appends COMMIT_EVENTS events of COMMIT_EVENT_SIZE bytes on topic (as fx_pack_event names it)
 * in one request (id). */
static void append_commit(int fd, uint64_t id, const char *topic) {
    rq_t r;
    rq_begin(&r, "append", id, 1);
    pk_str(&r.pk, "events");
    msgpack_pack_array(&r.pk, COMMIT_EVENTS);
    for (int i = 0; i < COMMIT_EVENTS; i++) {
        const char *entity = tname("commit");
        fx_pack_event(&r.pk, entity, strlen(entity), topic, COMMIT_EVENT_SIZE);
    }
    fx_send_rq(fd, &r);
    reply_t rep = fx_expect_ok(fd, id);
    reply_free(&rep);
}

/* Subscribes fd to topic from now on (no "after"); the pushes that follow are not read. */
static void subscribe_live(int fd, const char *topic) {
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    rq_subscribe(&sb, 1, false, 0, (const char *const[]){topic}, 1, NULL);
    cr_assert_eq(raw_send_sb(fd, &sb), 0);
    msgpack_sbuffer_destroy(&sb);
    reply_t rep = fx_expect_ok(fd, 1);
    reply_free(&rep);
}

/* Live subscribers that never read, and one commit of almost max_frame that they all match: each
 * is pushed only as much as fits under its output_limit (64 KiB here), then reads the rest from
 * the store once it drains; so the daemon holds about the commit once (in the store), not once
 * per subscriber. */
Test(never_read, live_subscribers_that_never_read_hold_about_output_limit_each_whatever_a_commit) {
    small_asan_quarantine();
    fx_start((const char *[]){"--output-limit", "65536", NULL});
    int w = fx_connect();
    /* The same commit first on another topic, with one subscriber that then goes away, so that
     * what the daemon needs to take such a request and to fan it out (the commit packed once for
     * every subscriber) is resident before the test measures. */
    int warm = fx_connect();
    subscribe_live(warm, tname("warm"));
    append_commit(w, 1, "warm");
    close(warm);
    long before = rss_kb(fx_daemon.pid);
    int fds[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        fds[i] = fx_connect_small_rcvbuf();
        subscribe_live(fds[i], tname("live"));
    }
    append_commit(w, 2, "live");
    wait_readable(fds, CLIENTS);
    assert_bounded(before, "live subscribers, one large commit");
    for (int i = 0; i < CLIENTS; i++)
        close(fds[i]);
    close(w);
    fx_finish();
}
