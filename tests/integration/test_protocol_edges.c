/* test_protocol_edges.c: requests at the edges of docs/protocol.md: arguments an op does not
 * take, keys given twice, an op with a NUL or bytes that are not UTF-8, snapshot versions past
 * 2^63-1, what ping says the server can do, and a frame that is cheap to send but would be dear
 * to decode. Every refusal leaves the connection serving. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/rss.h"
#include "fixture.h"

TestSuite(edges, .fini = fx_teardown, .timeout = 60);

/* Receives one error reply to request id with code, and returns its message (free it). */
static char *expect_error_message(int fd, const char *code, uint64_t id) {
    reply_t r;
    cr_assert_eq(raw_recv(fd, 10000, &r), 0, "no reply");
    uint64_t got = 0;
    cr_assert(reply_id(&r, &got) && got == id, "expected the reply to request %llu",
              (unsigned long long)id);
    cr_assert_str_eq(reply_code(&r), code);
    const msgpack_object *msg = obj_get(reply_get(&r, "error"), "message");
    cr_assert(msg && msg->type == MSGPACK_OBJECT_STR);
    char *text = strndup(msg->via.str.ptr, msg->via.str.size);
    reply_free(&r);
    return text;
}

/* True when the n bytes at s are valid UTF-8 (no overlong forms, surrogates or code points
 * past U+10FFFF), decoded here independently of the daemon's own code. */
static bool valid_utf8(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t len = c < 0x80             ? 1
                     : (c & 0xe0) == 0xc0 ? 2
                     : (c & 0xf0) == 0xe0 ? 3
                     : (c & 0xf8) == 0xf0 ? 4
                                          : 0;
        if (len == 0 || i + len > n) return false;
        unsigned long cp = len == 1 ? c : len == 2 ? c & 0x1f : len == 3 ? c & 0x0f : c & 0x07;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return false;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        static const unsigned long least[] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < least[len] || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) return false;
        i += len;
    }
    return true;
}

/* ---------------------------------------------------------------- arguments */

Test(edges, an_argument_the_op_does_not_take_is_bad_request_naming_it) {
    fx_start(NULL);
    int fd = fx_connect();
    /* "topic" (get-by-topic's) where subscribe takes "topics": a misspelt filter */
    rq_t r;
    rq_begin(&r, "subscribe", 4, 2);
    pk_str(&r.pk, "after");
    msgpack_pack_uint64(&r.pk, 0);
    pk_str(&r.pk, "topic");
    pk_str(&r.pk, "t");
    fx_send_rq(fd, &r);
    char *msg = expect_error_message(fd, "bad_request", 4);
    cr_assert(strstr(msg, "\"topic\""), "the message names the argument: %s", msg);
    free(msg);
    /* a key the protocol does not have at all */
    rq_begin(&r, "read-all", 5, 1);
    pk_str(&r.pk, "tracking");
    pk_str(&r.pk, "x");
    fx_send_rq(fd, &r);
    msg = expect_error_message(fd, "bad_request", 5);
    cr_assert(strstr(msg, "\"tracking\""), "the message names the argument: %s", msg);
    free(msg);
    fx_conn_still_serves(fd);
    close(fd);
    fx_finish();
}

Test(edges, a_key_given_twice_is_bad_request) {
    fx_start(NULL);
    int fd = fx_connect();
    /* {"op": "ping", "id": 6, "op": "stats"} */
    rq_t r;
    rq_begin(&r, "ping", 6, 1);
    pk_str(&r.pk, "op");
    pk_str(&r.pk, "stats");
    fx_send_rq(fd, &r);
    free(expect_error_message(fd, "bad_request", 6));
    fx_conn_still_serves(fd);
    close(fd);
    fx_finish();
}

/* Sends an append of one event map {"entity_id", "topic", "payload"} followed by the extra keys
 * and string values in extra (NULL-terminated pairs). */
static void send_event_with(int fd, uint64_t id, const char *entity, const char *const *extra) {
    size_t nextra = 0;
    while (extra[2 * nextra])
        nextra++;
    rq_t r;
    rq_begin(&r, "append", id, 1);
    pk_str(&r.pk, "events");
    msgpack_pack_array(&r.pk, 1);
    msgpack_pack_map(&r.pk, 3 + nextra);
    pk_str(&r.pk, "entity_id");
    pk_str(&r.pk, tname(entity));
    pk_str(&r.pk, "topic");
    pk_str(&r.pk, tname("topic"));
    pk_str(&r.pk, "payload");
    msgpack_pack_bin(&r.pk, 1);
    msgpack_pack_bin_body(&r.pk, "p", 1);
    for (size_t i = 0; i < nextra; i++) {
        pk_str(&r.pk, extra[2 * i]);
        pk_str(&r.pk, extra[2 * i + 1]);
    }
    fx_send_rq(fd, &r);
}

Test(edges, other_keys_of_an_event_map_are_ignored_but_not_twice_the_same) {
    fx_start(NULL);
    int fd = fx_connect();
    /* an event as a read returns it, plus a key of a newer protocol: stored */
    send_event_with(fd, 7, "copied",
                    (const char *const[]){"position", "x", "timestamp", "y", "x-newer", "z", NULL});
    reply_t ok = fx_expect_ok(fd, 7);
    reply_free(&ok);
    /* the entity's topic given twice in one event map: refused, nothing stored */
    send_event_with(fd, 8, "twice", (const char *const[]){"topic", "other", NULL});
    free(expect_error_message(fd, "bad_request", 8));
    rq_t r;
    rq_begin(&r, "get-by-entity", 9, 1);
    pk_str(&r.pk, "entity_id");
    pk_str(&r.pk, tname("twice"));
    fx_send_rq(fd, &r);
    reply_t got = fx_expect_ok(fd, 9);
    const msgpack_object *events = reply_get(&got, "events");
    cr_assert(events && events->type == MSGPACK_OBJECT_ARRAY);
    cr_assert_eq(events->via.array.size, 0, "the refused append stored nothing");
    reply_free(&got);
    fx_conn_still_serves(fd);
    close(fd);
    fx_finish();
}

/* Sends {"op": the n bytes at op, "id": id} and returns the bad_request's message (free it). */
static char *refused_op(int fd, const char *op, size_t n, uint64_t id) {
    rq_t r;
    rq_init(&r);
    msgpack_pack_map(&r.pk, 2);
    pk_str(&r.pk, "op");
    pk_strn(&r.pk, op, n);
    pk_str(&r.pk, "id");
    msgpack_pack_uint64(&r.pk, id);
    fx_send_rq(fd, &r);
    return expect_error_message(fd, "bad_request", id);
}

Test(edges, an_op_with_a_nul_is_bad_request) {
    fx_start(NULL);
    int fd = fx_connect();
    free(refused_op(fd, "ping\0x", 6, 8));
    fx_conn_still_serves(fd);
    close(fd);
    fx_finish();
}

Test(edges, an_op_that_is_not_utf8_gets_a_message_that_is) {
    fx_start(NULL);
    int fd = fx_connect();
    char *msg = refused_op(fd, "p\xff\xfei\xc3ng\xed\xa0\x80", 10, 9);
    cr_assert(valid_utf8((const unsigned char *)msg, strlen(msg)), "not UTF-8: %s", msg);
    free(msg);
    fx_conn_still_serves(fd);
    close(fd);
    fx_finish();
}

/* ---------------------------------------------------------------- snapshots */

static void put_snapshot(int fd, uint64_t id, const char *entity, uint64_t version) {
    rq_t r;
    rq_begin(&r, "put-snapshot", id, 4);
    pk_str(&r.pk, "entity_id");
    pk_str(&r.pk, entity);
    pk_str(&r.pk, "version");
    msgpack_pack_uint64(&r.pk, version);
    pk_str(&r.pk, "topic");
    pk_str(&r.pk, "t");
    pk_str(&r.pk, "payload");
    pk_bin(&r.pk, "s", 1);
    fx_send_rq(fd, &r);
}

Test(edges, a_snapshot_version_past_2_63_is_bad_request_on_every_store) {
    fx_start(NULL);
    int fd = fx_connect();
    const char *e = tname("snap");
    put_snapshot(fd, 1, e, (uint64_t)INT64_MAX + 1);
    free(expect_error_message(fd, "bad_request", 1));
    put_snapshot(fd, 2, e, UINT64_MAX);
    free(expect_error_message(fd, "bad_request", 2));
    put_snapshot(fd, 3, e, (uint64_t)INT64_MAX);
    reply_t ok = fx_expect_ok(fd, 3);
    reply_free(&ok);
    /* the largest version is kept exactly */
    rq_t r;
    rq_begin(&r, "get-snapshot", 4, 1);
    pk_str(&r.pk, "entity_id");
    pk_str(&r.pk, e);
    fx_send_rq(fd, &r);
    reply_t got = fx_expect_ok(fd, 4);
    const msgpack_object *v = obj_get(reply_get(&got, "snapshot"), "version");
    cr_assert(v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER);
    cr_assert_eq(v->via.u64, (uint64_t)INT64_MAX);
    reply_free(&got);
    close(fd);
    fx_finish();
}

/* ---------------------------------------------------------------- ping */

Test(edges, ping_lists_the_features_of_the_server) {
    fx_start(NULL);
    int fd = fx_connect();
    rq_t r;
    rq_begin(&r, "ping", 1, 0);
    fx_send_rq(fd, &r);
    reply_t rep = fx_expect_ok(fd, 1);
    const msgpack_object *f = reply_get(&rep, "features");
    cr_assert(f && f->type == MSGPACK_OBJECT_ARRAY, "ping's reply has a features array");
    bool strict = false, snapshots = false, delete_snapshots = false;
    for (uint32_t i = 0; i < f->via.array.size; i++) {
        cr_assert_eq(f->via.array.ptr[i].type, MSGPACK_OBJECT_STR);
        strict |= obj_is_str(&f->via.array.ptr[i], "strict-arguments");
        snapshots |= obj_is_str(&f->via.array.ptr[i], "snapshots");
        delete_snapshots |= obj_is_str(&f->via.array.ptr[i], "delete-snapshots");
    }
    cr_assert(strict && snapshots, "both stores have strict arguments and snapshots");
    cr_assert(delete_snapshots, "both stores delete snapshots");
    reply_free(&rep);
    close(fd);
    fx_finish();
}

/* ---------------------------------------------------------------- decoding cost */

/* Sends a frame of len bytes: a msgpack head byte with a 4-byte count, then filler bytes; and
 * expects a bad_request without an id. */
static void send_refused(int fd, size_t len, uint8_t head, uint32_t count, uint8_t filler) {
    uint8_t *buf = malloc(len);
    cr_assert(buf);
    buf[0] = head;
    buf[1] = (uint8_t)(count >> 24), buf[2] = (uint8_t)(count >> 16);
    buf[3] = (uint8_t)(count >> 8), buf[4] = (uint8_t)count;
    memset(buf + 5, filler, len - 5);
    fx_send_frame(fd, buf, len);
    free(buf);
    fx_expect_error(fd, "bad_request", 0);
}

/* A 16 MiB frame holding one map of 8.4 million nil:nil pairs: msgpack-c would spend ~400 MB on
 * it. It is refused before that: the daemon's peak memory grows no more than for a 16 MiB frame
 * refused at its first byte (sent first, twice, so that what buffering any large frame costs,
 * sanitizer quarantine included, is already in the peak), and the connection serves on. */
Test(edges, a_frame_of_millions_of_tiny_objects_is_refused_before_decoding) {
    fx_start(NULL);
    int fd = fx_connect();
    size_t max = 16u << 20, pairs = (max - 5) / 2;
    /* bin32 of the rest: not a map, refused at the first byte */
    for (int i = 0; i < 2; i++)
        send_refused(fd, max, 0xc6, (uint32_t)(max - 5), 'b');
    long before = rss_peak_kb(fx_daemon.pid);
    cr_assert_gt(before, 0);
    send_refused(fd, 5 + 2 * pairs, 0xdf, (uint32_t)pairs, 0xc0);
    fx_conn_still_serves(fd);
    long grew = rss_peak_kb(fx_daemon.pid) - before;
    /* decoding it would have taken ~400 MB */
    cr_assert_lt(grew, 100 * 1024, "the daemon's peak memory grew by %ld kB", grew);
    close(fd);
    fx_finish();
}
