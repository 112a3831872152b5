/* test_badinput.c: bad input and hard usage over raw sockets, without libevstore.
 *
 * Each test starts its own evstored, throws something at it, checks the answer the protocol
 * promises (docs/protocol.md), and ends by checking that the daemon still serves a fresh
 * connection and exits 0 on SIGTERM (a sanitizer report or a leak makes that exit non-zero). */
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../common/daemon.h"
#include "../common/rawio.h"

static test_daemon_t d;

static void start(const char *const *extra) {
    cr_assert_eq(test_daemon_start(&d, extra), 0, "evstored did not start");
}

/* Ends a test: the daemon must still serve, then exit 0 on SIGTERM. */
static void still_serves_and_exits_cleanly(void) {
    cr_assert(test_daemon_alive(&d), "the daemon no longer answers a ping");
    cr_assert_eq(test_daemon_stop(&d), 0, "evstored did not exit 0 on SIGTERM");
}

/* If a test failed half-way, its daemon is still running. */
static void teardown(void) {
    if (d.pid > 0) test_daemon_stop(&d);
}

TestSuite(badinput, .fini = teardown, .timeout = 60);
TestSuite(race, .fini = teardown, .timeout = 60);

static int connect_or_fail(void) {
    int fd = test_connect_raw(&d);
    cr_assert_geq(fd, 0, "cannot connect to the daemon: %s", strerror(errno));
    return fd;
}

/* Receives one reply and asserts it is an error with code, and with the id when id > 0 (and
 * without one when id == 0). */
static void expect_error(int fd, const char *code, uint64_t id) {
    reply_t r;
    int rc = raw_recv(fd, 5000, &r);
    cr_assert_eq(rc, 0, "no reply (%d)", rc);
    cr_assert_str_eq(reply_code(&r), code);
    const msgpack_object *msg = obj_get(reply_get(&r, "error"), "message");
    cr_assert(msg && msg->type == MSGPACK_OBJECT_STR && msg->via.str.size > 0,
              "an error reply carries a message");
    uint64_t got = 0;
    if (id) {
        cr_assert(reply_id(&r, &got), "the id was not echoed");
        cr_assert_eq(got, id);
    } else {
        cr_assert_not(reply_id(&r, &got), "an id appeared that the request could not have given");
    }
    reply_free(&r);
}

/* Receives one reply and asserts it is ok with the id; returns it (free it). */
static reply_t expect_ok(int fd, uint64_t id) {
    reply_t r;
    int rc = raw_recv(fd, 5000, &r);
    cr_assert_eq(rc, 0, "no reply (%d)", rc);
    uint64_t got = 0;
    cr_assert(reply_id(&r, &got) && got == id, "reply without the id %llu", (unsigned long long)id);
    cr_assert(reply_ok(&r), "expected ok, got error %s", reply_code(&r));
    return r;
}

/* The connection still works: a ping on it is answered. */
static void conn_still_serves(int fd) {
    cr_assert_eq(raw_ping(fd, 777, 5000), 0, "the connection stopped serving after the error");
}

static void send_bytes(int fd, const void *p, size_t n) {
    cr_assert_eq(raw_send(fd, p, n), 0, "send: %s", strerror(errno));
}

static void send_frame(int fd, const void *p, size_t n) {
    cr_assert_eq(raw_send_frame(fd, p, n), 0, "send: %s", strerror(errno));
}

static void send_rq(int fd, rq_t *r) {
    cr_assert_eq(raw_send_rq(fd, r), 0, "send: %s", strerror(errno));
    rq_free(r);
}

/* Packs one append event {"entity_id", "topic": tname(topic), "payload"} with payload_len bytes of
 * 'x'. Valid names go through tname (rawio.h) so that tests sharing a store do not meet. */
static void pack_event(msgpack_packer *pk, const char *entity, size_t entity_len, const char *topic,
                       size_t payload_len) {
    msgpack_pack_map(pk, 3);
    pk_str(pk, "entity_id");
    pk_strn(pk, entity, entity_len);
    pk_str(pk, "topic");
    pk_str(pk, tname(topic));
    pk_str(pk, "payload");
    msgpack_pack_bin(pk, payload_len);
    if (payload_len) {
        char *p = malloc(payload_len);
        memset(p, 'x', payload_len);
        msgpack_pack_bin_body(pk, p, payload_len);
        free(p);
    }
}

/* Sends an append of one event to entity (given as bytes), with request id. */
static void send_append(int fd, uint64_t id, const char *entity, size_t entity_len,
                        size_t payload_len) {
    rq_t r;
    rq_begin(&r, "append", id, 1);
    pk_str(&r.pk, "events");
    msgpack_pack_array(&r.pk, 1);
    pack_event(&r.pk, entity, entity_len, "topic", payload_len);
    send_rq(fd, &r);
}

/* ---------------------------------------------------------------- frame size */

Test(badinput, frame_over_max_frame_gets_too_large_then_the_connection_closes) {
    start((const char *[]){"--max-frame", "1024", NULL});
    int other = connect_or_fail();
    conn_still_serves(other);
    int fd = connect_or_fail();
    uint8_t h[4] = {0, 0, 0x04, 0x01}; /* 1025 bytes */
    send_bytes(fd, h, 4);
    char junk[200];
    memset(junk, 0x80, sizeof junk);
    send_bytes(fd, junk, sizeof junk);
    expect_error(fd, "too_large", 0);
    cr_assert_eq(raw_wait_closed(fd, 5000), 0, "the connection stayed open after too_large");
    close(fd);
    conn_still_serves(other); /* other connections carry on */
    close(other);
    still_serves_and_exits_cleanly();
}

/* A frame of exactly max_frame bytes is within the limit. */
Test(badinput, frame_of_exactly_max_frame_is_served) {
    start((const char *[]){"--max-frame", "1024", NULL});
    size_t pad = 1000;
    rq_t r;
    for (;;) {
        rq_begin(&r, "ping", 5, 1);
        pk_str(&r.pk, "pad");
        char *p = malloc(pad);
        memset(p, 'p', pad);
        pk_strn(&r.pk, p, pad);
        free(p);
        if (r.sb.size == 1024) break;
        cr_assert_lt(r.sb.size, 1024 + 10);
        pad += 1024 - r.sb.size;
        rq_free(&r);
    }
    int fd = connect_or_fail();
    send_rq(fd, &r);
    reply_t rep = expect_ok(fd, 5);
    reply_free(&rep);
    close(fd);
    still_serves_and_exits_cleanly();
}

Test(badinput, four_gigabyte_length_is_too_large_at_the_default_max_frame) {
    start(NULL);
    int fd = connect_or_fail();
    const uint8_t h[4] = {0xff, 0xff, 0xff, 0xff};
    send_bytes(fd, h, 4);
    expect_error(fd, "too_large", 0);
    cr_assert_eq(raw_wait_closed(fd, 5000), 0, "the connection stayed open after too_large");
    close(fd);
    still_serves_and_exits_cleanly();
}

Test(badinput, empty_frame_is_bad_request_and_the_connection_carries_on) {
    start(NULL);
    int fd = connect_or_fail();
    const uint8_t h[4] = {0, 0, 0, 0};
    send_bytes(fd, h, 4);
    expect_error(fd, "bad_request", 0);
    conn_still_serves(fd);
    close(fd);
    still_serves_and_exits_cleanly();
}

/* ---------------------------------------------------------------- truncation, disconnects */

Test(badinput, truncated_frame_then_close) {
    start(NULL);
    int fd = connect_or_fail();
    const uint8_t part[] = {0, 0, 0, 100, 0x82, 0xa2, 'o', 'p', 0xa4, 'p', 'i', 'n', 'g'};
    send_bytes(fd, part, sizeof part);
    close(fd);
    still_serves_and_exits_cleanly();
}

/* The client says it is done sending while a frame is unfinished: that frame can never finish,
 * so the daemon closes its side. */
Test(badinput, truncated_frame_then_half_close_is_closed_by_the_daemon) {
    start(NULL);
    int fd = connect_or_fail();
    const uint8_t part[] = {0, 0, 0, 100, 0x82};
    send_bytes(fd, part, sizeof part);
    shutdown(fd, SHUT_WR);
    cr_assert_eq(raw_wait_closed(fd, 5000), 0, "the daemon kept a half-closed connection");
    close(fd);
    still_serves_and_exits_cleanly();
}

/* Many clients vanish at every point of a frame: in its header, in its body, with a reset, with
 * requests in flight whose replies then have nowhere to go. */
Test(badinput, disconnect_in_the_middle_of_a_frame) {
    start(NULL);
    rq_t r;
    rq_begin(&r, "append", 1, 1);
    pk_str(&r.pk, "events");
    msgpack_pack_array(&r.pk, 1);
    const char *mid = tname("mid-frame");
    pack_event(&r.pk, mid, strlen(mid), "t", 4000);
    uint8_t *frame = malloc(4 + r.sb.size);
    size_t flen = 4 + r.sb.size;
    frame[0] = (uint8_t)(r.sb.size >> 24);
    frame[1] = (uint8_t)(r.sb.size >> 16);
    frame[2] = (uint8_t)(r.sb.size >> 8);
    frame[3] = (uint8_t)r.sb.size;
    memcpy(frame + 4, r.sb.data, r.sb.size);
    rq_free(&r);

    const size_t cuts[] = {1, 2, 3, 4, 5, 10, 100, 2000, flen - 1};
    for (int reset = 0; reset < 2; reset++) {
        for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
            int fd = connect_or_fail();
            send_bytes(fd, frame, cuts[i]);
            if (reset) {
                struct linger lg = {.l_onoff = 1, .l_linger = 0};
                setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
            }
            close(fd);
        }
    }
    /* Whole requests sent, then gone before the replies. */
    for (int i = 0; i < 20; i++) {
        int fd = connect_or_fail();
        for (int k = 0; k < 5; k++)
            send_bytes(fd, frame, flen);
        send_bytes(fd, frame, flen / 2);
        close(fd);
    }
    free(frame);
    still_serves_and_exits_cleanly();
}

/* ---------------------------------------------------------------- malformed msgpack */

Test(badinput, invalid_msgpack_is_bad_request_and_the_connection_carries_on) {
    start(NULL);
    int fd = connect_or_fail();
    static const struct {
        uint8_t b[8];
        size_t n;
    } bodies[] = {
        {{0xc1}, 1},                        /* never-used byte */
        {{0x81, 0xa1, 'a'}, 3},             /* map missing its value */
        {{0x92, 0x01, 0x02}, 3},            /* top level is an array */
        {{0xa4, 'p', 'i', 'n', 'g'}, 5},    /* top level is a string */
        {{0x80, 0x00}, 2},                  /* trailing byte */
        {{0x81, 0xa1, 'k', 0xd9}, 4},       /* ends inside a length */
        {{0x81, 0xa1, 'k', 0xcf, 0, 0}, 6}, /* truncated uint64 */
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        send_frame(fd, bodies[i].b, bodies[i].n);
        expect_error(fd, "bad_request", 0);
    }
    conn_still_serves(fd);
    close(fd);
    still_serves_and_exits_cleanly();
}

/* Headers that would make msgpack-c allocate for billions of elements, in a few bytes. */
Test(badinput, declared_counts_larger_than_the_frame_are_bad_request) {
    start(NULL);
    int fd = connect_or_fail();
    static const struct {
        uint8_t b[12];
        size_t n;
    } bodies[] = {
        {{0xdf, 0xff, 0xff, 0xff, 0xff}, 5},                           /* map32 of 4G pairs */
        {{0x81, 0xa1, 'k', 0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0}, 9},    /* array32 of 4G */
        {{0x81, 0xa1, 'k', 0xde, 0xff, 0xff, 0xc0}, 7},                /* map16 of 65535 */
        {{0x81, 0xa1, 'k', 0xdb, 0xff, 0xff, 0xff, 0xff, 'a'}, 9},     /* str32 of 4 GB */
        {{0x81, 0xa1, 'k', 0xc6, 0x7f, 0xff, 0xff, 0xff, 'a'}, 9},     /* bin32 of 2 GB */
        {{0x81, 0xa1, 'k', 0xc9, 0xff, 0xff, 0xff, 0xff, 1, 'a'}, 10}, /* ext32 of 4 GB */
        {{0x81, 0xa1, 'k', 0x9f, 0xc0}, 5},                            /* fixarray of 15 */
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        send_frame(fd, bodies[i].b, bodies[i].n);
        expect_error(fd, "bad_request", 0);
    }
    conn_still_serves(fd);
    close(fd);
    still_serves_and_exits_cleanly();
}

/* {"op": "ping", "id": id, "x": [[...[1]...]]} with depth containers in all, the map included. */
static void send_nested_ping(int fd, uint64_t id, int depth) {
    rq_t r;
    rq_begin(&r, "ping", id, 1);
    pk_str(&r.pk, "x");
    for (int i = 1; i < depth; i++)
        msgpack_pack_array(&r.pk, 1);
    msgpack_pack_uint64(&r.pk, 1);
    send_rq(fd, &r);
}

Test(badinput, nesting_deeper_than_32_is_bad_request) {
    start(NULL);
    int fd = connect_or_fail();
    send_nested_ping(fd, 1, 33);
    expect_error(fd, "bad_request", 0);
    /* 100 000 levels: a recursive parser would overflow its stack here. */
    size_t n = 100000;
    uint8_t *deep = malloc(n + 3);
    deep[0] = 0x81;
    deep[1] = 0xa1;
    deep[2] = 'x';
    memset(deep + 3, 0x91, n - 1);
    deep[n + 2] = 0x01;
    send_frame(fd, deep, n + 3);
    free(deep);
    expect_error(fd, "bad_request", 0);
    conn_still_serves(fd);
    close(fd);
    still_serves_and_exits_cleanly();
}

Test(badinput, nesting_of_exactly_32_is_served) {
    start(NULL);
    int fd = connect_or_fail();
    send_nested_ping(fd, 3, 32);
    reply_t r = expect_ok(fd, 3);
    reply_free(&r);
    close(fd);
    still_serves_and_exits_cleanly();
}

/* ---------------------------------------------------------------- wrong requests */

Test(badinput, version_as_a_string_is_bad_request_with_the_id_echoed) {
    start(NULL);
    int fd = connect_or_fail();
    rq_t r;
    rq_begin(&r, "append", 41, 1);
    pk_str(&r.pk, "events");
    msgpack_pack_array(&r.pk, 1);
    msgpack_pack_map(&r.pk, 4);
    pk_str(&r.pk, "entity_id");
    pk_str(&r.pk, tname("e"));
    pk_str(&r.pk, "topic");
    pk_str(&r.pk, "t");
    pk_str(&r.pk, "payload");
    pk_bin(&r.pk, "x", 1);
    pk_str(&r.pk, "version");
    pk_str(&r.pk, "0");
    send_rq(fd, &r);
    expect_error(fd, "bad_request", 41);
    /* Top-level arguments too, whether the id comes before or after them. */
    rq_begin(&r, "get-by-entity", 42, 2);
    pk_str(&r.pk, "entity_id");
    pk_str(&r.pk, tname("e"));
    pk_str(&r.pk, "from_version");
    pk_str(&r.pk, "1");
    send_rq(fd, &r);
    expect_error(fd, "bad_request", 42);
    rq_init(&r);
    msgpack_pack_map(&r.pk, 3);
    pk_str(&r.pk, "limit");
    msgpack_pack_int64(&r.pk, -5);
    pk_str(&r.pk, "op");
    pk_str(&r.pk, "read-all");
    pk_str(&r.pk, "id");
    msgpack_pack_uint64(&r.pk, 43);
    send_rq(fd, &r);
    expect_error(fd, "bad_request", 43);
    /* Nothing was stored by the refused append. */
    rq_begin(&r, "get-by-entity", 44, 1);
    pk_str(&r.pk, "entity_id");
    pk_str(&r.pk, tname("e"));
    send_rq(fd, &r);
    reply_t rep = expect_ok(fd, 44);
    const msgpack_object *evs = reply_get(&rep, "events");
    cr_assert(evs && evs->type == MSGPACK_OBJECT_ARRAY && evs->via.array.size == 0);
    reply_free(&rep);
    close(fd);
    still_serves_and_exits_cleanly();
}

Test(badinput, unknown_op_is_bad_request_with_the_id_echoed) {
    start(NULL);
    int fd = connect_or_fail();
    rq_t r;
    rq_begin(&r, "drop-database", 51, 0);
    send_rq(fd, &r);
    expect_error(fd, "bad_request", 51);
    rq_begin(&r, "PING", 52, 0); /* ops are case-sensitive */
    send_rq(fd, &r);
    expect_error(fd, "bad_request", 52);
    conn_still_serves(fd);
    close(fd);
    still_serves_and_exits_cleanly();
}

Test(badinput, missing_op_is_bad_request_with_the_id_echoed) {
    start(NULL);
    int fd = connect_or_fail();
    rq_t r;
    rq_init(&r);
    msgpack_pack_map(&r.pk, 1);
    pk_str(&r.pk, "id");
    msgpack_pack_uint64(&r.pk, 61);
    send_rq(fd, &r);
    expect_error(fd, "bad_request", 61);
    rq_init(&r);
    msgpack_pack_map(&r.pk, 2);
    pk_str(&r.pk, "op");
    msgpack_pack_uint64(&r.pk, 1);
    pk_str(&r.pk, "id");
    msgpack_pack_uint64(&r.pk, 62);
    send_rq(fd, &r);
    expect_error(fd, "bad_request", 62);
    conn_still_serves(fd);
    close(fd);
    still_serves_and_exits_cleanly();
}

Test(badinput, request_without_a_usable_id_is_bad_request_without_id) {
    start(NULL);
    int fd = connect_or_fail();
    rq_t r;
    rq_init(&r);
    msgpack_pack_map(&r.pk, 1);
    pk_str(&r.pk, "op");
    pk_str(&r.pk, "ping");
    send_rq(fd, &r);
    expect_error(fd, "bad_request", 0);
    rq_init(&r);
    msgpack_pack_map(&r.pk, 2);
    pk_str(&r.pk, "op");
    pk_str(&r.pk, "ping");
    pk_str(&r.pk, "id");
    msgpack_pack_int64(&r.pk, -1);
    send_rq(fd, &r);
    expect_error(fd, "bad_request", 0);
    conn_still_serves(fd);
    close(fd);
    still_serves_and_exits_cleanly();
}

Test(badinput, empty_and_256_byte_entity_ids_are_bad_request_with_the_id_echoed) {
    start(NULL);
    int fd = connect_or_fail();
    char id256[256];
    memset(id256, 'e', sizeof id256);
    memcpy(id256, tprefix(), strlen(tprefix())); /* unique, so the 255-byte one starts empty */
    send_append(fd, 71, "", 0, 10);
    expect_error(fd, "bad_request", 71);
    send_append(fd, 72, id256, 256, 10);
    expect_error(fd, "bad_request", 72);
    rq_t r;
    rq_begin(&r, "get-by-entity", 73, 1);
    pk_str(&r.pk, "entity_id");
    pk_strn(&r.pk, id256, 256);
    send_rq(fd, &r);
    expect_error(fd, "bad_request", 73);
    rq_begin(&r, "get-by-entity", 74, 1);
    pk_str(&r.pk, "entity_id");
    pk_str(&r.pk, "");
    send_rq(fd, &r);
    expect_error(fd, "bad_request", 74);
    /* invalid UTF-8 and an embedded NUL */
    send_append(fd, 75, "\xff\xfe", 2, 10);
    expect_error(fd, "bad_request", 75);
    send_append(fd, 76, "a\0b", 3, 10);
    expect_error(fd, "bad_request", 76);
    /* 255 bytes is the longest allowed */
    send_append(fd, 77, id256, 255, 10);
    reply_t rep = expect_ok(fd, 77);
    reply_free(&rep);
    rq_begin(&r, "get-by-entity", 78, 1);
    pk_str(&r.pk, "entity_id");
    pk_strn(&r.pk, id256, 255);
    send_rq(fd, &r);
    rep = expect_ok(fd, 78);
    const msgpack_object *evs = reply_get(&rep, "events");
    cr_assert(evs && evs->type == MSGPACK_OBJECT_ARRAY && evs->via.array.size == 1);
    reply_free(&rep);
    close(fd);
    still_serves_and_exits_cleanly();
}

Test(badinput, limit_over_10000_is_bad_request_with_the_id_echoed) {
    start(NULL);
    int fd = connect_or_fail();
    rq_t r;
    rq_begin(&r, "read-all", 81, 1);
    pk_str(&r.pk, "limit");
    msgpack_pack_uint64(&r.pk, 10001);
    send_rq(fd, &r);
    expect_error(fd, "bad_request", 81);
    rq_begin(&r, "get-by-entity", 82, 2);
    pk_str(&r.pk, "entity_id");
    pk_str(&r.pk, tname("e"));
    pk_str(&r.pk, "limit");
    msgpack_pack_uint64(&r.pk, UINT64_MAX);
    send_rq(fd, &r);
    expect_error(fd, "bad_request", 82);
    rq_begin(&r, "read-all", 83, 1);
    pk_str(&r.pk, "limit");
    msgpack_pack_uint64(&r.pk, 10000);
    send_rq(fd, &r);
    reply_t rep = expect_ok(fd, 83);
    reply_free(&rep);
    close(fd);
    still_serves_and_exits_cleanly();
}

/* ---------------------------------------------------------------- many connections */

Test(badinput, thousand_simultaneous_connections_each_get_served, .timeout = 120) {
    enum { N = 1000 };
    struct rlimit rl;
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    cr_assert_geq(rl.rlim_cur, N + 64, "the hard limit of open files (%llu) is too low",
                  (unsigned long long)rl.rlim_cur);
    start(NULL);
    int *fds = malloc(N * sizeof *fds);
    for (int i = 0; i < N; i++) {
        fds[i] = test_connect_raw(&d);
        cr_assert_geq(fds[i], 0, "connection %d: %s", i, strerror(errno));
    }
    /* Every connection is open at once; each sends a ping, then all replies are read. */
    for (int i = 0; i < N; i++) {
        rq_t r;
        rq_begin(&r, "ping", (uint64_t)i + 1, 0);
        send_rq(fds[i], &r);
    }
    for (int i = 0; i < N; i++) {
        reply_t r = expect_ok(fds[i], (uint64_t)i + 1);
        reply_free(&r);
    }
    /* And a second round, on connections that have been open all along. */
    for (int i = 0; i < N; i += 7)
        conn_still_serves(fds[i]);
    for (int i = 0; i < N; i++)
        close(fds[i]);
    free(fds);
    still_serves_and_exits_cleanly();
}

/* ---------------------------------------------------------------- pipelining */

Test(badinput, pipelined_requests_all_get_a_reply_carrying_their_id) {
    start(NULL);
    enum { N = 400 };
    int fd = connect_or_fail();
    /* All N requests in one buffer, written before any reply is read. */
    msgpack_sbuffer all;
    msgpack_sbuffer_init(&all);
    for (int i = 1; i <= N; i++) {
        rq_t r;
        switch (i % 5) {
        case 0:
            rq_begin(&r, "ping", (uint64_t)i, 0);
            break;
        case 1:
            rq_begin(&r, "append", (uint64_t)i, 1);
            pk_str(&r.pk, "events");
            msgpack_pack_array(&r.pk, 1);
            pack_event(&r.pk, tname("pipe"), strlen(tname("pipe")), "t", 100);
            break;
        case 2:
            rq_begin(&r, "get-by-entity", (uint64_t)i, 1);
            pk_str(&r.pk, "entity_id");
            pk_str(&r.pk, tname("pipe"));
            break;
        case 3:
            rq_begin(&r, "no-such-op", (uint64_t)i, 0);
            break;
        default:
            rq_begin(&r, "read-all", (uint64_t)i, 1);
            pk_str(&r.pk, "after");
            pk_str(&r.pk, "not a number");
            break;
        }
        uint8_t h[4] = {(uint8_t)(r.sb.size >> 24), (uint8_t)(r.sb.size >> 16),
                        (uint8_t)(r.sb.size >> 8), (uint8_t)r.sb.size};
        msgpack_sbuffer_write(&all, (const char *)h, 4);
        msgpack_sbuffer_write(&all, r.sb.data, r.sb.size);
        rq_free(&r);
    }
    send_bytes(fd, all.data, all.size);
    msgpack_sbuffer_destroy(&all);

    bool seen[N + 1] = {false};
    bool versions[N] = {false};
    for (int k = 0; k < N; k++) {
        reply_t r;
        int rc = raw_recv(fd, 10000, &r);
        cr_assert_eq(rc, 0, "reply %d of %d missing (%d)", k + 1, N, rc);
        uint64_t id = 0;
        cr_assert(reply_id(&r, &id), "a reply without id");
        cr_assert(id >= 1 && id <= N, "unknown id %llu", (unsigned long long)id);
        cr_assert_not(seen[id], "two replies for id %llu", (unsigned long long)id);
        seen[id] = true;
        switch (id % 5) {
        case 3:
        case 4:
            cr_assert_str_eq(reply_code(&r), "bad_request", "id %llu", (unsigned long long)id);
            break;
        default:
            cr_assert(reply_ok(&r), "id %llu: %s", (unsigned long long)id, reply_code(&r));
        }
        if (id % 5 == 1) {
            const msgpack_object *v = reply_get(&r, "versions");
            cr_assert(v && v->type == MSGPACK_OBJECT_ARRAY && v->via.array.size == 1);
            uint64_t ver = v->via.array.ptr[0].via.u64;
            cr_assert_lt(ver, N / 5);
            cr_assert_not(versions[ver], "version %llu given twice", (unsigned long long)ver);
            versions[ver] = true;
        }
        reply_free(&r);
    }
    conn_still_serves(fd);
    close(fd);
    still_serves_and_exits_cleanly();
}

/* ---------------------------------------------------------------- a subscriber that never reads */

/* A connection with a small receive buffer, so that the daemon meets backpressure early. */
static int connect_small_rcvbuf(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    int sz = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)d.port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0, "%s", strerror(errno));
    return fd;
}

/* 300 appends of 8 KB go through while a subscriber reads nothing: they are not slowed down,
 * the daemon keeps serving, and when the subscriber finally reads it gets every event exactly
 * once, in order (the daemon catches it up from the store once its queue is full). */
static void slow_subscriber(const char *const *extra) {
    enum { N = 300, SIZE = 8192 };
    start(extra);
    int sub = connect_small_rcvbuf();
    rq_t r;
    rq_begin(&r, "subscribe", 1, 1);
    pk_str(&r.pk, "topics");
    msgpack_pack_array(&r.pk, 1);
    pk_str(&r.pk, tname("slow"));
    send_rq(sub, &r);
    reply_t rep = expect_ok(sub, 1);
    const msgpack_object *sid = reply_get(&rep, "sub");
    cr_assert(sid && sid->type == MSGPACK_OBJECT_POSITIVE_INTEGER, "subscribe gave no sub id");
    uint64_t sub_id = sid->via.u64;
    reply_free(&rep);

    int w = connect_or_fail();
    uint64_t *positions = calloc(N, sizeof *positions);
    int64_t t0 = now_ms(), slowest = 0;
    for (int i = 0; i < N; i++) {
        int64_t t = now_ms();
        rq_begin(&r, "append", (uint64_t)i + 100, 1);
        pk_str(&r.pk, "events");
        msgpack_pack_array(&r.pk, 1);
        char entity[64];
        snprintf(entity, sizeof entity, "%s-%d", tname("slow"), i % 10);
        pack_event(&r.pk, entity, strlen(entity), "slow", SIZE);
        send_rq(w, &r);
        rep = expect_ok(w, (uint64_t)i + 100);
        const msgpack_object *p = reply_get(&rep, "positions");
        cr_assert(p && p->type == MSGPACK_OBJECT_ARRAY && p->via.array.size == 1);
        positions[i] = p->via.array.ptr[0].via.u64;
        reply_free(&rep);
        if (now_ms() - t > slowest) slowest = now_ms() - t;
    }
    int64_t total = now_ms() - t0;
    cr_assert_lt(slowest, 2000, "one append took %lld ms", (long long)slowest);
    cr_assert_lt(total, 20000, "300 appends took %lld ms", (long long)total);
    cr_assert(test_daemon_alive(&d), "the daemon stopped serving new connections");
    conn_still_serves(w);

    /* Now the subscriber reads everything. */
    size_t got = 0;
    while (got < N) {
        reply_t push;
        int rc = raw_recv(sub, 10000, &push);
        cr_assert_eq(rc, 0, "push stream ended after %zu of %d events (%d)", got, N, rc);
        uint64_t ignored;
        cr_assert_not(reply_id(&push, &ignored), "a push carries no id");
        const msgpack_object *s = reply_get(&push, "sub");
        cr_assert(s && s->type == MSGPACK_OBJECT_POSITIVE_INTEGER && s->via.u64 == sub_id,
                  "a push for another subscription");
        const msgpack_object *evs = reply_get(&push, "events");
        if (evs) {
            cr_assert_eq(evs->type, MSGPACK_OBJECT_ARRAY);
            for (uint32_t k = 0; k < evs->via.array.size; k++) {
                const msgpack_object *ev = &evs->via.array.ptr[k];
                const msgpack_object *pos = obj_get(ev, "position");
                cr_assert(pos && pos->type == MSGPACK_OBJECT_POSITIVE_INTEGER);
                cr_assert_lt(got, N, "more than %d events pushed", N);
                cr_assert_eq(pos->via.u64, positions[got],
                             "event %zu: position %llu, expected %llu (lost, repeated or "
                             "reordered)",
                             got, (unsigned long long)pos->via.u64,
                             (unsigned long long)positions[got]);
                const msgpack_object *pl = obj_get(ev, "payload");
                cr_assert(pl && pl->type == MSGPACK_OBJECT_BIN && pl->via.bin.size == SIZE);
                got++;
            }
        }
        reply_free(&push);
    }
    /* Exactly once: nothing more comes. */
    reply_t more;
    int rc = raw_recv(sub, 500, &more);
    if (rc == 0) {
        const msgpack_object *evs = reply_get(&more, "events");
        cr_assert(!evs || evs->via.array.size == 0, "events pushed twice");
    } else {
        cr_assert_eq(rc, RAW_TIMEOUT);
    }
    reply_free(&more);
    free(positions);
    close(sub);
    close(w);
    still_serves_and_exits_cleanly();
}

Test(badinput, subscriber_that_never_reads_does_not_block_appends, .timeout = 120) {
    slow_subscriber(NULL);
}

/* The same with the smallest output limit, so that the subscriber surely falls behind after
 * the first event and every later one comes from the store. */
Test(badinput, subscriber_far_behind_the_output_limit_is_caught_up_from_the_store, .timeout = 120) {
    slow_subscriber((const char *[]){"--output-limit", "4096", NULL});
}

/* ---------------------------------------------------------------- a client that never reads */

/* The daemon's resident memory in KB (VmRSS), or -1. */
static long daemon_rss_kb(void) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)d.pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    if (!f) return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1) break;
    fclose(f);
    return kb;
}

/* A client pipelines requests with big replies and reads none: the daemon stops reading from it
 * once its replies pile up, other connections are served meanwhile, and when the client reads at
 * last every request it managed to send gets its reply. */
Test(badinput, client_that_never_reads_its_replies_does_not_block_others, .timeout = 120) {
    start(NULL);
    int w = connect_or_fail();
    const char *big = tname("big");
    send_append(w, 1, big, strlen(big), 16 * 1024);
    reply_t rep = expect_ok(w, 1);
    reply_free(&rep);

    int slow = connect_small_rcvbuf();
    rq_t r;
    rq_begin(&r, "get-by-entity", 0, 1);
    pk_str(&r.pk, "entity_id");
    pk_str(&r.pk, big);
    /* The same request with ids 1..N, sent until the socket refuses more for a while. */
    enum { MAX = 8000 };
    size_t sent = 0;
    int64_t deadline = now_ms() + 3000;
    while (sent < MAX && now_ms() < deadline) {
        rq_t one;
        rq_begin(&one, "get-by-entity", sent + 1, 1);
        pk_str(&one.pk, "entity_id");
        pk_str(&one.pk, big);
        uint8_t frame[256];
        cr_assert_lt(one.sb.size + 4, sizeof frame);
        frame[0] = frame[1] = 0;
        frame[2] = (uint8_t)(one.sb.size >> 8);
        frame[3] = (uint8_t)one.sb.size;
        memcpy(frame + 4, one.sb.data, one.sb.size);
        size_t len = one.sb.size + 4;
        rq_free(&one);
        struct pollfd pfd = {.fd = slow, .events = POLLOUT};
        if (poll(&pfd, 1, 200) != 1) break; /* the daemon stopped reading: enough */
        send_bytes(slow, frame, len);
        sent++;
    }
    rq_free(&r);
    cr_assert_gt(sent, 100, "only %zu requests could be sent", sent);
    /* Its unread replies (up to 8000 x 16 KB = 128 MB) must not all be held in the daemon's memory.
     */
    long rss_kb = daemon_rss_kb();
    cr_assert_lt(rss_kb, 100 * 1024, "the daemon holds %ld MB for a client that does not read",
                 rss_kb / 1024);

    /* Others are served promptly meanwhile. */
    int64_t t = now_ms();
    cr_assert(test_daemon_alive(&d), "a new connection is not served");
    conn_still_serves(w);
    cr_assert_lt(now_ms() - t, 2000, "other connections waited %lld ms", (long long)(now_ms() - t));

    /* Now read everything: one reply per request sent, each with its id, each ok. */
    bool *seen = calloc(sent + 1, 1);
    for (size_t k = 0; k < sent; k++) {
        reply_t a;
        int rc = raw_recv(slow, 10000, &a);
        cr_assert_eq(rc, 0, "reply %zu of %zu missing (%d)", k + 1, sent, rc);
        uint64_t id = 0;
        cr_assert(reply_id(&a, &id) && id >= 1 && id <= sent && !seen[id], "bad or repeated id");
        seen[id] = true;
        cr_assert(reply_ok(&a), "id %llu: %s", (unsigned long long)id, reply_code(&a));
        reply_free(&a);
    }
    free(seen);
    close(slow);
    close(w);
    still_serves_and_exits_cleanly();
}

/* ---------------------------------------------------------------- shutdown */

Test(badinput, sigterm_with_idle_and_half_sent_connections_exits_promptly) {
    start(NULL);
    int fds[50];
    for (int i = 0; i < 50; i++)
        fds[i] = connect_or_fail();
    const uint8_t part[] = {0, 0, 0, 50, 0x82};
    send_bytes(fds[0], part, sizeof part);
    conn_still_serves(fds[1]);
    int64_t t = now_ms();
    cr_assert_eq(test_daemon_stop(&d), 0, "evstored did not exit 0 on SIGTERM");
    cr_assert_lt(now_ms() - t, 5000, "shutdown took %lld ms with idle clients",
                 (long long)(now_ms() - t));
    for (int i = 0; i < 50; i++) {
        cr_assert_eq(raw_wait_closed(fds[i], 2000), 0, "connection %d left open", i);
        close(fds[i]);
    }
}

/* A subscriber that reads nothing holds megabytes of queued pushes at SIGTERM: the daemon gives
 * up on it after shutdown_timeout instead of waiting forever. */
Test(badinput, sigterm_with_a_stuck_subscriber_exits_within_the_shutdown_timeout, .timeout = 120) {
    start((const char *[]){"--shutdown-timeout", "1", NULL});
    int sub = connect_small_rcvbuf();
    rq_t r;
    rq_begin(&r, "subscribe", 1, 0);
    send_rq(sub, &r);
    reply_t rep = expect_ok(sub, 1);
    reply_free(&rep);
    int w = connect_or_fail();
    const char *e = tname("stuck");
    for (int i = 0; i < 200; i++) {
        send_append(w, 10 + (uint64_t)i, e, strlen(e), 8192);
        rep = expect_ok(w, 10 + (uint64_t)i);
        reply_free(&rep);
    }
    int64_t t = now_ms();
    cr_assert_eq(test_daemon_stop(&d), 0, "evstored did not exit 0 on SIGTERM");
    cr_assert_lt(now_ms() - t, 6000, "shutdown took %lld ms with shutdown_timeout 1 s",
                 (long long)(now_ms() - t));
    close(sub);
    close(w);
}

/* ---------------------------------------------------------------- optimistic concurrency */

/* Several writers race "read the latest version n, append n+1" on the same entities: in the end
 * every version is stored exactly once, each by the writer that was told ok, and every loser was
 * told conflict. */
enum { RACERS = 6, ATTEMPTS = 40, ENTITIES = 2 };

typedef struct racer {
    int index;
    int ok, conflicts;
    uint64_t won[ATTEMPTS][2]; /* entity index, version */
    char error[256];
} racer_t;

static const char *race_entity(int k) {
    return tname(k ? "race-1" : "race-0");
}

/* The latest version of entity, or -1; -2 on a broken connection. */
static int64_t latest_version(int fd, uint64_t id, const char *entity) {
    rq_t r;
    rq_begin(&r, "get-by-entity", id, 3);
    pk_str(&r.pk, "entity_id");
    pk_str(&r.pk, entity);
    pk_str(&r.pk, "backwards");
    msgpack_pack_true(&r.pk);
    pk_str(&r.pk, "limit");
    msgpack_pack_uint64(&r.pk, 1);
    int rc = raw_send_rq(fd, &r);
    rq_free(&r);
    reply_t rep;
    if (rc || raw_recv(fd, 10000, &rep) != 0) return -2;
    int64_t v = -2;
    const msgpack_object *evs = reply_get(&rep, "events");
    if (reply_ok(&rep) && evs && evs->type == MSGPACK_OBJECT_ARRAY) {
        v = -1;
        if (evs->via.array.size == 1)
            v = (int64_t)obj_get(&evs->via.array.ptr[0], "version")->via.u64;
    }
    reply_free(&rep);
    return v;
}

static void *race(void *arg) {
    racer_t *me = arg;
    int fd = test_connect_raw(&d);
    if (fd < 0) {
        snprintf(me->error, sizeof me->error, "connect failed");
        return NULL;
    }
    uint64_t id = 1;
    for (int k = 0; k < ATTEMPTS; k++) {
        int e = (k + me->index) % ENTITIES;
        int64_t v = latest_version(fd, id++, race_entity(e));
        if (v < -1) {
            snprintf(me->error, sizeof me->error, "get-by-entity failed");
            break;
        }
        char payload[32];
        snprintf(payload, sizeof payload, "%d/%d", me->index, k);
        rq_t r;
        rq_begin(&r, "append", id, 1);
        pk_str(&r.pk, "events");
        msgpack_pack_array(&r.pk, 1);
        msgpack_pack_map(&r.pk, 4);
        pk_str(&r.pk, "entity_id");
        pk_str(&r.pk, race_entity(e));
        pk_str(&r.pk, "topic");
        pk_str(&r.pk, tname("t"));
        pk_str(&r.pk, "payload");
        pk_bin(&r.pk, payload, strlen(payload));
        pk_str(&r.pk, "version");
        msgpack_pack_uint64(&r.pk, (uint64_t)(v + 1));
        int rc = raw_send_rq(fd, &r);
        rq_free(&r);
        reply_t rep;
        if (rc || raw_recv(fd, 10000, &rep) != 0) {
            snprintf(me->error, sizeof me->error, "append got no reply");
            break;
        }
        uint64_t got = 0;
        if (!reply_id(&rep, &got) || got != id) {
            snprintf(me->error, sizeof me->error, "reply with the wrong id");
        } else if (reply_ok(&rep)) {
            me->won[me->ok][0] = (uint64_t)e;
            me->won[me->ok][1] = reply_get(&rep, "versions")->via.array.ptr[0].via.u64;
            me->ok++;
        } else if (strcmp(reply_code(&rep), "conflict") == 0) {
            const msgpack_object *cur = obj_get(reply_get(&rep, "error"), "current_version");
            if (!cur || cur->type != MSGPACK_OBJECT_POSITIVE_INTEGER || (int64_t)cur->via.u64 <= v)
                snprintf(me->error, sizeof me->error,
                         "conflict whose current_version is not past the version read");
            me->conflicts++;
        } else {
            snprintf(me->error, sizeof me->error, "append failed: %s", reply_code(&rep));
        }
        reply_free(&rep);
        id++;
        if (me->error[0]) break;
    }
    close(fd);
    return NULL;
}

Test(race, optimistic_writers_store_every_version_exactly_once, .timeout = 120) {
    start(NULL);
    racer_t racers[RACERS];
    pthread_t threads[RACERS];
    memset(racers, 0, sizeof racers);
    for (int i = 0; i < RACERS; i++) {
        racers[i].index = i;
        cr_assert_eq(pthread_create(&threads[i], NULL, race, &racers[i]), 0);
    }
    for (int i = 0; i < RACERS; i++)
        pthread_join(threads[i], NULL);
    int ok[ENTITIES] = {0}, conflicts = 0;
    for (int i = 0; i < RACERS; i++) {
        cr_assert_eq(racers[i].error[0], '\0', "racer %d: %s", i, racers[i].error);
        cr_assert_eq(racers[i].ok + racers[i].conflicts, ATTEMPTS);
        for (int k = 0; k < racers[i].ok; k++)
            ok[racers[i].won[k][0]]++;
        conflicts += racers[i].conflicts;
    }
    cr_assert_gt(conflicts, 0, "no race happened: make the test harder");
    int fd = connect_or_fail();
    for (int e = 0; e < ENTITIES; e++) {
        rq_t r;
        rq_begin(&r, "get-by-entity", 100 + (uint64_t)e, 2);
        pk_str(&r.pk, "entity_id");
        pk_str(&r.pk, race_entity(e));
        pk_str(&r.pk, "limit");
        msgpack_pack_uint64(&r.pk, 10000);
        send_rq(fd, &r);
        reply_t rep = expect_ok(fd, 100 + (uint64_t)e);
        const msgpack_object *evs = reply_get(&rep, "events");
        cr_assert_eq(evs->via.array.size, (uint32_t)ok[e],
                     "entity %d holds %u events but %d appends were told ok", e,
                     evs->via.array.size, ok[e]);
        for (uint32_t v = 0; v < evs->via.array.size; v++) {
            const msgpack_object *ev = &evs->via.array.ptr[v];
            cr_assert_eq(obj_get(ev, "version")->via.u64, v, "versions not 0..n-1");
            /* The event at version v is the one whose writer was told it got v. */
            const msgpack_object *pl = obj_get(ev, "payload");
            int who = -1, attempt = -1;
            char text[32] = "";
            memcpy(text, pl->via.bin.ptr, pl->via.bin.size < 31 ? pl->via.bin.size : 31);
            cr_assert_eq(sscanf(text, "%d/%d", &who, &attempt), 2);
            bool told = false;
            for (int k = 0; k < racers[who].ok; k++)
                if (racers[who].won[k][0] == (uint64_t)e && racers[who].won[k][1] == v) told = true;
            cr_assert(told, "version %u of entity %d was stored for a writer not told so", v, e);
        }
        reply_free(&rep);
    }
    close(fd);
    still_serves_and_exits_cleanly();
}
