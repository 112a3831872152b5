/* test_badinput.c: bad input over raw sockets, without libevstore: frames too large, empty or
 * cut short, malformed msgpack, and requests the protocol rejects.
 *
 * Each test starts its own evstored, throws something at it, checks the answer the protocol
 * promises (docs/protocol.md), and ends by checking that the daemon still serves a fresh
 * connection and exits 0 on SIGTERM (a sanitizer report or a leak makes that exit non-zero). */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fixture.h"

TestSuite(badinput, .fini = fx_teardown, .timeout = 60);

/* ---------------------------------------------------------------- frame size */

Test(badinput, frame_over_max_frame_gets_too_large_then_the_connection_closes) {
    fx_start((const char *[]){"--max-frame", "1024", NULL});
    int other = fx_connect();
    fx_conn_still_serves(other);
    int fd = fx_connect();
    uint8_t h[4] = {0, 0, 0x04, 0x01}; /* 1025 bytes */
    fx_send_bytes(fd, h, 4);
    char junk[200];
    memset(junk, 0x80, sizeof junk);
    fx_send_bytes(fd, junk, sizeof junk);
    fx_expect_error(fd, "too_large", 0);
    cr_assert_eq(raw_wait_closed(fd, 5000), 0, "the connection stayed open after too_large");
    close(fd);
    fx_conn_still_serves(other); /* other connections carry on */
    close(other);
    fx_finish();
}

/* A frame of exactly max_frame bytes is within the limit. */
Test(badinput, frame_of_exactly_max_frame_is_served) {
    fx_start((const char *[]){"--max-frame", "1024", NULL});
    size_t pad = 950;
    rq_t r;
    for (;;) {
        rq_begin(&r, "put-snapshot", 5, 4);
        pk_str(&r.pk, "entity_id");
        pk_str(&r.pk, "e");
        pk_str(&r.pk, "version");
        msgpack_pack_uint64(&r.pk, 0);
        pk_str(&r.pk, "topic");
        pk_str(&r.pk, "t");
        pk_str(&r.pk, "payload");
        char *p = malloc(pad);
        memset(p, 'p', pad);
        pk_bin(&r.pk, p, pad);
        free(p);
        if (r.sb.size == 1024) break;
        cr_assert_lt(r.sb.size, 1024 + 10);
        pad += 1024 - r.sb.size;
        rq_free(&r);
    }
    int fd = fx_connect();
    fx_send_rq(fd, &r);
    reply_t rep = fx_expect_ok(fd, 5);
    reply_free(&rep);
    close(fd);
    fx_finish();
}

Test(badinput, four_gigabyte_length_is_too_large_at_the_default_max_frame) {
    fx_start(NULL);
    int fd = fx_connect();
    const uint8_t h[4] = {0xff, 0xff, 0xff, 0xff};
    fx_send_bytes(fd, h, 4);
    fx_expect_error(fd, "too_large", 0);
    cr_assert_eq(raw_wait_closed(fd, 5000), 0, "the connection stayed open after too_large");
    close(fd);
    fx_finish();
}

Test(badinput, empty_frame_is_bad_request_and_the_connection_carries_on) {
    fx_start(NULL);
    int fd = fx_connect();
    const uint8_t h[4] = {0, 0, 0, 0};
    fx_send_bytes(fd, h, 4);
    fx_expect_error(fd, "bad_request", 0);
    fx_conn_still_serves(fd);
    close(fd);
    fx_finish();
}

/* ---------------------------------------------------------------- truncation, disconnects */

Test(badinput, truncated_frame_then_close) {
    fx_start(NULL);
    int fd = fx_connect();
    const uint8_t part[] = {0, 0, 0, 100, 0x82, 0xa2, 'o', 'p', 0xa4, 'p', 'i', 'n', 'g'};
    fx_send_bytes(fd, part, sizeof part);
    close(fd);
    fx_finish();
}

/* The client says it is done sending while a frame is unfinished: that frame can never finish,
 * so the daemon closes its side. */
Test(badinput, truncated_frame_then_half_close_is_closed_by_the_daemon) {
    fx_start(NULL);
    int fd = fx_connect();
    const uint8_t part[] = {0, 0, 0, 100, 0x82};
    fx_send_bytes(fd, part, sizeof part);
    shutdown(fd, SHUT_WR);
    cr_assert_eq(raw_wait_closed(fd, 5000), 0, "the daemon kept a half-closed connection");
    close(fd);
    fx_finish();
}

/* Many clients vanish at every point of a frame: in its header, in its body, with a reset, with
 * requests in flight whose replies then have nowhere to go. */
Test(badinput, disconnect_in_the_middle_of_a_frame) {
    fx_start(NULL);
    rq_t r;
    rq_begin(&r, "append", 1, 1);
    pk_str(&r.pk, "events");
    msgpack_pack_array(&r.pk, 1);
    const char *mid = tname("mid-frame");
    fx_pack_event(&r.pk, mid, strlen(mid), "t", 4000);
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
            int fd = fx_connect();
            fx_send_bytes(fd, frame, cuts[i]);
            if (reset) {
                struct linger lg = {.l_onoff = 1, .l_linger = 0};
                setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
            }
            close(fd);
        }
    }
    /* Whole requests sent, then gone before the replies. */
    for (int i = 0; i < 20; i++) {
        int fd = fx_connect();
        for (int k = 0; k < 5; k++)
            fx_send_bytes(fd, frame, flen);
        fx_send_bytes(fd, frame, flen / 2);
        close(fd);
    }
    free(frame);
    fx_finish();
}

/* ---------------------------------------------------------------- malformed msgpack */

Test(badinput, invalid_msgpack_is_bad_request_and_the_connection_carries_on) {
    fx_start(NULL);
    int fd = fx_connect();
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
        fx_send_frame(fd, bodies[i].b, bodies[i].n);
        fx_expect_error(fd, "bad_request", 0);
    }
    fx_conn_still_serves(fd);
    close(fd);
    fx_finish();
}

/* Headers that would make msgpack-c allocate for billions of elements, in a few bytes. */
Test(badinput, declared_counts_larger_than_the_frame_are_bad_request) {
    fx_start(NULL);
    int fd = fx_connect();
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
        fx_send_frame(fd, bodies[i].b, bodies[i].n);
        fx_expect_error(fd, "bad_request", 0);
    }
    fx_conn_still_serves(fd);
    close(fd);
    fx_finish();
}

/* An append whose one event's metadata nests to depth containers in all, the request map
 * included: {"op": "append", "id": id, "events": [{..., "metadata": {"k": [[...[1]...]]}}]}. */
static void send_nested_append(int fd, uint64_t id, int depth) {
    rq_t r;
    rq_begin(&r, "append", id, 1);
    pk_str(&r.pk, "events");
    msgpack_pack_array(&r.pk, 1);
    msgpack_pack_map(&r.pk, 4);
    pk_str(&r.pk, "entity_id");
    pk_str(&r.pk, tname("nested"));
    pk_str(&r.pk, "topic");
    pk_str(&r.pk, "t");
    pk_str(&r.pk, "payload");
    pk_bin(&r.pk, "x", 1);
    pk_str(&r.pk, "metadata");
    msgpack_pack_map(&r.pk, 1);
    pk_str(&r.pk, "k");
    for (int i = 4; i < depth; i++)
        msgpack_pack_array(&r.pk, 1);
    msgpack_pack_uint64(&r.pk, 1);
    fx_send_rq(fd, &r);
}

Test(badinput, nesting_deeper_than_32_is_bad_request) {
    fx_start(NULL);
    int fd = fx_connect();
    send_nested_append(fd, 1, 33);
    fx_expect_error(fd, "bad_request", 0);
    /* 100 000 levels: a recursive parser would overflow its stack here. */
    size_t n = 100000;
    uint8_t *deep = malloc(n + 3);
    deep[0] = 0x81;
    deep[1] = 0xa1;
    deep[2] = 'x';
    memset(deep + 3, 0x91, n - 1);
    deep[n + 2] = 0x01;
    fx_send_frame(fd, deep, n + 3);
    free(deep);
    fx_expect_error(fd, "bad_request", 0);
    fx_conn_still_serves(fd);
    close(fd);
    fx_finish();
}

Test(badinput, nesting_of_exactly_32_is_served) {
    fx_start(NULL);
    int fd = fx_connect();
    send_nested_append(fd, 3, 32);
    reply_t r = fx_expect_ok(fd, 3);
    reply_free(&r);
    close(fd);
    fx_finish();
}

/* ---------------------------------------------------------------- wrong requests */

Test(badinput, version_as_a_string_is_bad_request_with_the_id_echoed) {
    fx_start(NULL);
    int fd = fx_connect();
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
    fx_send_rq(fd, &r);
    fx_expect_error(fd, "bad_request", 41);
    /* Top-level arguments too, whether the id comes before or after them. */
    rq_begin(&r, "get-by-entity", 42, 2);
    pk_str(&r.pk, "entity_id");
    pk_str(&r.pk, tname("e"));
    pk_str(&r.pk, "from_version");
    pk_str(&r.pk, "1");
    fx_send_rq(fd, &r);
    fx_expect_error(fd, "bad_request", 42);
    rq_init(&r);
    msgpack_pack_map(&r.pk, 3);
    pk_str(&r.pk, "limit");
    msgpack_pack_int64(&r.pk, -5);
    pk_str(&r.pk, "op");
    pk_str(&r.pk, "read-all");
    pk_str(&r.pk, "id");
    msgpack_pack_uint64(&r.pk, 43);
    fx_send_rq(fd, &r);
    fx_expect_error(fd, "bad_request", 43);
    /* Nothing was stored by the refused append. */
    rq_begin(&r, "get-by-entity", 44, 1);
    pk_str(&r.pk, "entity_id");
    pk_str(&r.pk, tname("e"));
    fx_send_rq(fd, &r);
    reply_t rep = fx_expect_ok(fd, 44);
    const msgpack_object *evs = reply_get(&rep, "events");
    cr_assert(evs && evs->type == MSGPACK_OBJECT_ARRAY && evs->via.array.size == 0);
    reply_free(&rep);
    close(fd);
    fx_finish();
}

Test(badinput, unknown_op_is_bad_request_with_the_id_echoed) {
    fx_start(NULL);
    int fd = fx_connect();
    rq_t r;
    rq_begin(&r, "drop-database", 51, 0);
    fx_send_rq(fd, &r);
    fx_expect_error(fd, "bad_request", 51);
    rq_begin(&r, "PING", 52, 0); /* ops are case-sensitive */
    fx_send_rq(fd, &r);
    fx_expect_error(fd, "bad_request", 52);
    fx_conn_still_serves(fd);
    close(fd);
    fx_finish();
}

Test(badinput, missing_op_is_bad_request_with_the_id_echoed) {
    fx_start(NULL);
    int fd = fx_connect();
    rq_t r;
    rq_init(&r);
    msgpack_pack_map(&r.pk, 1);
    pk_str(&r.pk, "id");
    msgpack_pack_uint64(&r.pk, 61);
    fx_send_rq(fd, &r);
    fx_expect_error(fd, "bad_request", 61);
    rq_init(&r);
    msgpack_pack_map(&r.pk, 2);
    pk_str(&r.pk, "op");
    msgpack_pack_uint64(&r.pk, 1);
    pk_str(&r.pk, "id");
    msgpack_pack_uint64(&r.pk, 62);
    fx_send_rq(fd, &r);
    fx_expect_error(fd, "bad_request", 62);
    fx_conn_still_serves(fd);
    close(fd);
    fx_finish();
}

Test(badinput, request_without_a_usable_id_is_bad_request_without_id) {
    fx_start(NULL);
    int fd = fx_connect();
    rq_t r;
    rq_init(&r);
    msgpack_pack_map(&r.pk, 1);
    pk_str(&r.pk, "op");
    pk_str(&r.pk, "ping");
    fx_send_rq(fd, &r);
    fx_expect_error(fd, "bad_request", 0);
    rq_init(&r);
    msgpack_pack_map(&r.pk, 2);
    pk_str(&r.pk, "op");
    pk_str(&r.pk, "ping");
    pk_str(&r.pk, "id");
    msgpack_pack_int64(&r.pk, -1);
    fx_send_rq(fd, &r);
    fx_expect_error(fd, "bad_request", 0);
    fx_conn_still_serves(fd);
    close(fd);
    fx_finish();
}

Test(badinput, empty_and_256_byte_entity_ids_are_bad_request_with_the_id_echoed) {
    fx_start(NULL);
    int fd = fx_connect();
    char id256[256];
    memset(id256, 'e', sizeof id256);
    memcpy(id256, tprefix(), strlen(tprefix())); /* unique, so the 255-byte one starts empty */
    fx_send_append(fd, 71, "", 0, 10);
    fx_expect_error(fd, "bad_request", 71);
    fx_send_append(fd, 72, id256, 256, 10);
    fx_expect_error(fd, "bad_request", 72);
    rq_t r;
    rq_begin(&r, "get-by-entity", 73, 1);
    pk_str(&r.pk, "entity_id");
    pk_strn(&r.pk, id256, 256);
    fx_send_rq(fd, &r);
    fx_expect_error(fd, "bad_request", 73);
    rq_begin(&r, "get-by-entity", 74, 1);
    pk_str(&r.pk, "entity_id");
    pk_str(&r.pk, "");
    fx_send_rq(fd, &r);
    fx_expect_error(fd, "bad_request", 74);
    /* invalid UTF-8 and an embedded NUL */
    fx_send_append(fd, 75, "\xff\xfe", 2, 10);
    fx_expect_error(fd, "bad_request", 75);
    fx_send_append(fd, 76, "a\0b", 3, 10);
    fx_expect_error(fd, "bad_request", 76);
    /* 255 bytes is the longest allowed */
    fx_send_append(fd, 77, id256, 255, 10);
    reply_t rep = fx_expect_ok(fd, 77);
    reply_free(&rep);
    rq_begin(&r, "get-by-entity", 78, 1);
    pk_str(&r.pk, "entity_id");
    pk_strn(&r.pk, id256, 255);
    fx_send_rq(fd, &r);
    rep = fx_expect_ok(fd, 78);
    const msgpack_object *evs = reply_get(&rep, "events");
    cr_assert(evs && evs->type == MSGPACK_OBJECT_ARRAY && evs->via.array.size == 1);
    reply_free(&rep);
    close(fd);
    fx_finish();
}

Test(badinput, limit_over_10000_is_bad_request_with_the_id_echoed) {
    fx_start(NULL);
    int fd = fx_connect();
    rq_t r;
    rq_begin(&r, "read-all", 81, 1);
    pk_str(&r.pk, "limit");
    msgpack_pack_uint64(&r.pk, 10001);
    fx_send_rq(fd, &r);
    fx_expect_error(fd, "bad_request", 81);
    rq_begin(&r, "get-by-entity", 82, 2);
    pk_str(&r.pk, "entity_id");
    pk_str(&r.pk, tname("e"));
    pk_str(&r.pk, "limit");
    msgpack_pack_uint64(&r.pk, UINT64_MAX);
    fx_send_rq(fd, &r);
    fx_expect_error(fd, "bad_request", 82);
    rq_begin(&r, "read-all", 83, 1);
    pk_str(&r.pk, "limit");
    msgpack_pack_uint64(&r.pk, 10000);
    fx_send_rq(fd, &r);
    reply_t rep = fx_expect_ok(fd, 83);
    reply_free(&rep);
    close(fd);
    fx_finish();
}
