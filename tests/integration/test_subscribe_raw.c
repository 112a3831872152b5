/* test_subscribe_raw.c: the wire format and subscriptions as docs/protocol.md states them,
 * checked over raw sockets (no client library): the documented ping bytes, the Unix listener,
 * catch-up then caught_up then live, exactly once and in order while appends race the catch-up,
 * filters, unsubscribe, and the closing push at shutdown. One daemon per test. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "fixture.h"

TestSuite(wire, .fini = fx_teardown, .timeout = 60);
TestSuite(subscribe, .fini = fx_teardown, .timeout = 60);

/* Appends n events (payload_size bytes each) to tname(entity)/tname(topic) in one request on fd,
 * a connection without subscriptions; stores their positions in pos (when non-NULL). Every name
 * a test uses goes through tname, so that tests sharing a store do not see each other. */
static void append_n(int fd, uint64_t id, const char *entity, const char *topic, size_t n,
                     size_t payload_size, uint64_t *pos) {
    rq_t r;
    rq_begin(&r, "append", id, 1);
    pk_str(&r.pk, "events");
    msgpack_pack_array(&r.pk, (uint32_t)n);
    char *payload = calloc(1, payload_size + 1);
    memset(payload, 'p', payload_size);
    for (size_t i = 0; i < n; i++) {
        msgpack_pack_map(&r.pk, 3);
        pk_str(&r.pk, "entity_id");
        pk_str(&r.pk, tname(entity));
        pk_str(&r.pk, "topic");
        pk_str(&r.pk, tname(topic));
        pk_str(&r.pk, "payload");
        pk_bin(&r.pk, payload, payload_size);
    }
    free(payload);
    cr_assert_eq(raw_send_rq(fd, &r), 0);
    rq_free(&r);
    reply_t rep = fx_expect_ok(fd, id);
    const msgpack_object *p = reply_get(&rep, "positions");
    cr_assert(p && p->type == MSGPACK_OBJECT_ARRAY && p->via.array.size == n);
    for (size_t i = 0; pos && i < n; i++)
        pos[i] = p->via.array.ptr[i].via.u64;
    reply_free(&rep);
}

typedef struct stream stream_t;
static void take_push(reply_t *p, stream_t *streams, size_t nstreams);

/* Subscribes on fd with the given optional arguments (topic and prefix go through tname; without
 * a prefix the test's own prefix filters out other tests' events); returns the SID. Pushes of the
 * subscriptions in streams[0..nstreams) that arrive before the reply are taken into them. */
static uint64_t subscribe_more(int fd, uint64_t id, const uint64_t *after, const char *topic,
                               const char *prefix, stream_t *streams, size_t nstreams) {
    rq_t r;
    rq_begin(&r, "subscribe", id, (after != NULL) + (topic != NULL) + 1);
    if (after) {
        pk_str(&r.pk, "after");
        msgpack_pack_uint64(&r.pk, *after);
    }
    if (topic) {
        pk_str(&r.pk, "topics");
        msgpack_pack_array(&r.pk, 1);
        pk_str(&r.pk, tname(topic));
    }
    pk_str(&r.pk, "entity_prefix");
    pk_str(&r.pk, prefix ? tname(prefix) : tprefix());
    cr_assert_eq(raw_send_rq(fd, &r), 0);
    rq_free(&r);
    reply_t rep;
    for (;;) {
        cr_assert_eq(raw_recv(fd, 10000, &rep), 0, "no reply to subscribe");
        uint64_t got;
        if (reply_id(&rep, &got)) break;
        take_push(&rep, streams, nstreams);
        reply_free(&rep);
    }
    uint64_t got = 0;
    cr_assert(reply_id(&rep, &got) && got == id && reply_ok(&rep), "subscribe failed: %s",
              reply_code(&rep));
    const msgpack_object *sid = reply_get(&rep, "sub");
    cr_assert(sid && sid->type == MSGPACK_OBJECT_POSITIVE_INTEGER, "no sub in the reply");
    uint64_t v = sid->via.u64;
    reply_free(&rep);
    return v;
}

static uint64_t subscribe(int fd, uint64_t id, const uint64_t *after, const char *topic,
                          const char *prefix) {
    return subscribe_more(fd, id, after, topic, prefix, NULL, 0);
}

/* What the pushes of one subscription brought. */
struct stream {
    uint64_t sid;
    uint64_t *pos;
    size_t n, cap;
    int caught_up;              /* caught_up pushes seen */
    size_t events_at_caught_up; /* events received before the first caught_up */
};

/* Handles one push frame: asserts it is a push (no id) and adds it to the stream of its sid
 * among streams[0..nstreams). */
static void take_push(reply_t *p, stream_t *streams, size_t nstreams) {
    uint64_t ignored;
    cr_assert_not(reply_id(p, &ignored), "a frame with an id where only pushes were expected");
    const msgpack_object *s = reply_get(p, "sub");
    cr_assert(s && s->type == MSGPACK_OBJECT_POSITIVE_INTEGER, "a push without sub");
    stream_t *st = NULL;
    for (size_t i = 0; i < nstreams; i++)
        if (streams[i].sid == s->via.u64) st = &streams[i];
    cr_assert_not_null(st, "a push for unknown subscription %llu", (unsigned long long)s->via.u64);
    const msgpack_object *c = reply_get(p, "caught_up");
    if (c) {
        cr_assert(c->type == MSGPACK_OBJECT_BOOLEAN && c->via.boolean);
        if (st->caught_up++ == 0) st->events_at_caught_up = st->n;
    }
    const msgpack_object *evs = reply_get(p, "events");
    if (!evs) return;
    cr_assert_eq(evs->type, MSGPACK_OBJECT_ARRAY);
    cr_assert_gt(evs->via.array.size, 0, "a push of no events");
    for (uint32_t k = 0; k < evs->via.array.size; k++) {
        const msgpack_object *pos = obj_get(&evs->via.array.ptr[k], "position");
        cr_assert(pos && pos->type == MSGPACK_OBJECT_POSITIVE_INTEGER);
        if (st->n)
            cr_assert_gt(pos->via.u64, st->pos[st->n - 1],
                         "position %llu after %llu: repeated or out of order",
                         (unsigned long long)pos->via.u64, (unsigned long long)st->pos[st->n - 1]);
        if (st->n == st->cap) {
            st->cap = st->cap ? 2 * st->cap : 64;
            st->pos = realloc(st->pos, st->cap * sizeof *st->pos);
        }
        st->pos[st->n++] = pos->via.u64;
    }
}

/* Reads pushes on fd until every stream has want[i] events (and its caught_up when
 * want_caught_up), failing after 10 s without progress. */
static void read_until(int fd, stream_t *streams, size_t nstreams, const size_t *want,
                       bool want_caught_up) {
    for (;;) {
        bool done = true;
        for (size_t i = 0; i < nstreams; i++)
            if (streams[i].n < want[i] || (want_caught_up && !streams[i].caught_up)) done = false;
        if (done) return;
        reply_t p;
        int rc = raw_recv(fd, 10000, &p);
        cr_assert_eq(rc, 0, "pushes stopped (%d) with %zu events of the first stream", rc,
                     streams[0].n);
        take_push(&p, streams, nstreams);
        reply_free(&p);
    }
}

/* Reads for ms: every push that comes is taken into the streams. */
static void drain_for(int fd, stream_t *streams, size_t nstreams, int ms) {
    int64_t until = now_ms() + ms;
    for (int64_t left; (left = until - now_ms()) > 0;) {
        reply_t p;
        int rc = raw_recv(fd, (int)left, &p);
        if (rc == RAW_TIMEOUT) return;
        cr_assert_eq(rc, 0, "connection broke (%d)", rc);
        take_push(&p, streams, nstreams);
        reply_free(&p);
    }
}

static void assert_positions(const stream_t *st, const uint64_t *want, size_t n) {
    cr_assert_eq(st->n, n, "subscription %llu got %zu events, expected %zu",
                 (unsigned long long)st->sid, st->n, n);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(st->pos[i], want[i], "event %zu: position %llu, expected %llu", i,
                     (unsigned long long)st->pos[i], (unsigned long long)want[i]);
}

/* ---------------------------------------------------------------- wire format */

/* The exact bytes of docs/protocol.md's example. */
Test(wire, documented_ping_frame_gets_the_documented_reply) {
    fx_start(NULL);
    int fd = fx_connect();
    static const uint8_t ping[] = {0x00, 0x00, 0x00, 0x0d, 0x82, 0xa2, 0x6f, 0x70, 0xa4,
                                   0x70, 0x69, 0x6e, 0x67, 0xa2, 0x69, 0x64, 0x01};
    cr_assert_eq(raw_send(fd, ping, sizeof ping), 0);
    reply_t r = fx_expect_ok(fd, 1);
    cr_assert_eq(r.u.data.via.map.size, 6, "{id, ok, version, store_id, head, features}");
    const msgpack_object *v = reply_get(&r, "version");
    cr_assert(v && v->type == MSGPACK_OBJECT_STR && v->via.str.size >= 5, "version x.y.z");
    v = reply_get(&r, "store_id");
    cr_assert(v && v->type == MSGPACK_OBJECT_STR && v->via.str.size == 36, "a UUID string");
    v = reply_get(&r, "head");
    cr_assert(v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER, "head");
    reply_free(&r);
    close(fd);
    fx_finish();
}

/* msgpack has several encodings of a non-negative number; all are a uint. */
Test(wire, ids_in_any_integer_encoding_are_echoed) {
    fx_start(NULL);
    int fd = fx_connect();
    static const struct {
        uint8_t b[16];
        size_t n;
        uint64_t id;
    } reqs[] = {
        {{0x82, 0xa2, 'o', 'p', 0xa4, 'p', 'i', 'n', 'g', 0xa2, 'i', 'd', 0xd0, 0x05}, 14, 5},
        {{0x82, 0xa2, 'o', 'p', 0xa4, 'p', 'i', 'n', 'g', 0xa2, 'i', 'd', 0xcd, 0x01, 0x00},
         15,
         256},
        {{0x82, 0xa2, 'i', 'd', 0xcc, 0x07, 0xa2, 'o', 'p', 0xa4, 'p', 'i', 'n', 'g'}, 14, 7},
    };
    for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++) {
        cr_assert_eq(raw_send_frame(fd, reqs[i].b, reqs[i].n), 0);
        reply_t r = fx_expect_ok(fd, reqs[i].id);
        reply_free(&r);
    }
    close(fd);
    fx_finish();
}

Test(wire, unix_socket_serves_the_same_protocol) {
    char path[108];
    snprintf(path, sizeof path, "/tmp/evs-test-%d-%lld.sock", (int)getpid(), (long long)now_ms());
    fx_start((const char *[]){"--unix", path, NULL});
    cr_assert_str_eq(fx_daemon.unix_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0, "%s", strerror(errno));
    cr_assert_eq(raw_ping(fd, 9, 5000), 0);
    close(fd);
    fx_finish();
    unlink(path);
}

/* ---------------------------------------------------------------- subscriptions */

Test(subscribe, catch_up_then_caught_up_once_then_live) {
    fx_start(NULL);
    int w = fx_connect(), s = fx_connect();
    uint64_t pos[7];
    append_n(w, 1, "acct-1", "t", 5, 10, pos);
    uint64_t after = 0;
    stream_t st = {.sid = subscribe(s, 2, &after, NULL, NULL)};
    read_until(s, &st, 1, (size_t[]){5}, true);
    cr_assert_eq(st.caught_up, 1);
    cr_assert_eq(st.events_at_caught_up, 5, "caught_up came before the stored events");
    append_n(w, 3, "acct-1", "t", 2, 10, pos + 5);
    read_until(s, &st, 1, (size_t[]){7}, false);
    drain_for(s, &st, 1, 300);
    assert_positions(&st, pos, 7);
    cr_assert_eq(st.caught_up, 1, "caught_up sent more than once");
    free(st.pos);
    close(w);
    close(s);
    fx_finish();
}

Test(subscribe, after_a_position_skips_what_came_before) {
    fx_start(NULL);
    int w = fx_connect(), s = fx_connect();
    uint64_t pos[6];
    append_n(w, 1, "acct-1", "t", 6, 10, pos);
    stream_t st = {.sid = subscribe(s, 2, &pos[2], NULL, NULL)};
    read_until(s, &st, 1, (size_t[]){3}, true);
    drain_for(s, &st, 1, 200);
    assert_positions(&st, pos + 3, 3);
    /* after the last position: nothing to catch up, caught_up at once */
    stream_t both[2] = {st, {0}};
    both[1].sid = subscribe_more(s, 3, &pos[5], NULL, NULL, both, 1);
    read_until(s, both, 2, (size_t[]){3, 0}, true);
    cr_assert_eq(both[1].n, 0);
    free(both[0].pos);
    free(both[1].pos);
    close(w);
    close(s);
    fx_finish();
}

Test(subscribe, catch_up_spanning_many_pages) {
    fx_start(NULL);
    int w = fx_connect(), s = fx_connect();
    enum { N = 1300 };
    uint64_t *pos = calloc(N, sizeof *pos);
    for (int k = 0; k < N / 100; k++)
        append_n(w, 10 + (uint64_t)k, "acct", "t", 100, 50, pos + k * 100);
    uint64_t after = 0;
    stream_t st = {.sid = subscribe(s, 1, &after, NULL, NULL)};
    read_until(s, &st, 1, (size_t[]){N}, true);
    drain_for(s, &st, 1, 200);
    assert_positions(&st, pos, N);
    cr_assert_eq(st.events_at_caught_up, N);
    free(pos);
    free(st.pos);
    close(w);
    close(s);
    fx_finish();
}

/* Appends keep coming while the subscription catches up: every event arrives once, in order,
 * with no gap where catch-up turns into live. */
Test(subscribe, appends_racing_the_catch_up_arrive_exactly_once_in_order) {
    fx_start(NULL);
    int w = fx_connect(), s = fx_connect();
    enum { PRE = 1000, RACE = 400 };
    uint64_t *pos = calloc(PRE + RACE, sizeof *pos);
    for (int k = 0; k < PRE / 100; k++)
        append_n(w, 10 + (uint64_t)k, "pre", "t", 100, 200, pos + k * 100);

    /* Subscribe, and without waiting for anything write RACE single-event appends. */
    rq_t r;
    rq_begin(&r, "subscribe", 1, 2);
    pk_str(&r.pk, "after");
    msgpack_pack_uint64(&r.pk, 0);
    pk_str(&r.pk, "entity_prefix");
    pk_str(&r.pk, tprefix());
    cr_assert_eq(raw_send_rq(s, &r), 0);
    rq_free(&r);
    msgpack_sbuffer all;
    msgpack_sbuffer_init(&all);
    for (int i = 0; i < RACE; i++) {
        rq_begin(&r, "append", 1000 + (uint64_t)i, 1);
        pk_str(&r.pk, "events");
        msgpack_pack_array(&r.pk, 1);
        msgpack_pack_map(&r.pk, 3);
        pk_str(&r.pk, "entity_id");
        pk_str(&r.pk, tname("race"));
        pk_str(&r.pk, "topic");
        pk_str(&r.pk, tname("t"));
        pk_str(&r.pk, "payload");
        pk_bin(&r.pk, "0123456789", 10);
        uint8_t h[4] = {0, 0, (uint8_t)(r.sb.size >> 8), (uint8_t)r.sb.size};
        msgpack_sbuffer_write(&all, (const char *)h, 4);
        msgpack_sbuffer_write(&all, r.sb.data, r.sb.size);
        rq_free(&r);
    }
    cr_assert_eq(raw_send(w, all.data, all.size), 0);
    msgpack_sbuffer_destroy(&all);

    /* The subscribe reply, then whatever pushes come, on s. */
    reply_t rep = fx_expect_ok(s, 1);
    stream_t st = {.sid = reply_get(&rep, "sub")->via.u64};
    reply_free(&rep);
    /* The append replies on w, in whatever order, give the positions. */
    for (int i = 0; i < RACE; i++) {
        reply_t a;
        cr_assert_eq(raw_recv(w, 10000, &a), 0);
        uint64_t id = 0;
        cr_assert(reply_id(&a, &id) && id >= 1000 && id < 1000 + RACE && reply_ok(&a));
        pos[PRE + (id - 1000)] = reply_get(&a, "positions")->via.array.ptr[0].via.u64;
        reply_free(&a);
    }
    /* Positions of the racing appends in position order (replies may come in any order). */
    for (int i = PRE + 1; i < PRE + RACE; i++)
        for (int k = i; k > PRE && pos[k] < pos[k - 1]; k--) {
            uint64_t t = pos[k];
            pos[k] = pos[k - 1];
            pos[k - 1] = t;
        }
    read_until(s, &st, 1, (size_t[]){PRE + RACE}, true);
    drain_for(s, &st, 1, 300);
    assert_positions(&st, pos, PRE + RACE);
    cr_assert_eq(st.caught_up, 1);
    free(pos);
    free(st.pos);
    close(w);
    close(s);
    fx_finish();
}

Test(subscribe, without_after_only_later_events_and_no_caught_up) {
    fx_start(NULL);
    int w = fx_connect(), s = fx_connect();
    append_n(w, 1, "acct", "t", 3, 10, NULL);
    stream_t st = {.sid = subscribe(s, 2, NULL, NULL, NULL)};
    uint64_t pos[2];
    append_n(w, 3, "acct", "t", 2, 10, pos);
    read_until(s, &st, 1, (size_t[]){2}, false);
    drain_for(s, &st, 1, 300);
    assert_positions(&st, pos, 2);
    cr_assert_eq(st.caught_up, 0, "caught_up without after");
    free(st.pos);
    close(w);
    close(s);
    fx_finish();
}

/* Three subscriptions on one connection, each filtering differently, fed by one stream of
 * appends; catch-up and live must both filter. */
Test(subscribe, topics_and_entity_prefix_filter_in_the_server) {
    fx_start(NULL);
    int w = fx_connect(), s = fx_connect();
    /* 0:a-1/t1 1:b-1/t1 2:a-2/t2 3:b-2/t2 4:a-1/t1 ; then live 5:b-1/t1 6:a-3/t2 7:c/t3 */
    const char *ent[8] = {"a-1", "b-1", "a-2", "b-2", "a-1", "b-1", "a-3", "c"};
    const char *top[8] = {"t1", "t1", "t2", "t2", "t1", "t1", "t2", "t3"};
    uint64_t pos[8];
    for (int i = 0; i < 5; i++)
        append_n(w, 10 + (uint64_t)i, ent[i], top[i], 1, 5, &pos[i]);
    uint64_t after = 0;
    stream_t st[3] = {{0}};
    st[0].sid = subscribe(s, 1, &after, "t1", NULL);
    st[1].sid = subscribe_more(s, 2, &after, NULL, "a-", st, 1);
    st[2].sid = subscribe_more(s, 3, &after, "t2", "a-", st, 2);
    read_until(s, st, 3, (size_t[]){3, 3, 1}, true);
    for (int i = 5; i < 8; i++)
        append_n(w, 10 + (uint64_t)i, ent[i], top[i], 1, 5, &pos[i]);
    read_until(s, st, 3, (size_t[]){4, 4, 2}, false);
    drain_for(s, st, 3, 300);
    assert_positions(&st[0], (uint64_t[]){pos[0], pos[1], pos[4], pos[5]}, 4);
    assert_positions(&st[1], (uint64_t[]){pos[0], pos[2], pos[4], pos[6]}, 4);
    assert_positions(&st[2], (uint64_t[]){pos[2], pos[6]}, 2);
    for (int i = 0; i < 3; i++)
        free(st[i].pos);
    close(w);
    close(s);
    fx_finish();
}

Test(subscribe, no_push_follows_the_unsubscribe_reply) {
    fx_start(NULL);
    int w = fx_connect(), s = fx_connect();
    stream_t st[2] = {{0}};
    st[0].sid = subscribe(s, 1, NULL, NULL, NULL);
    st[1].sid = subscribe_more(s, 2, NULL, NULL, NULL, st, 1);
    append_n(w, 10, "acct", "t", 1, 5, NULL);
    read_until(s, st, 2, (size_t[]){1, 1}, false);
    rq_t r;
    rq_begin(&r, "unsubscribe", 3, 1);
    pk_str(&r.pk, "sub");
    msgpack_pack_uint64(&r.pk, st[0].sid);
    cr_assert_eq(raw_send_rq(s, &r), 0);
    rq_free(&r);
    append_n(w, 11, "acct", "t", 1, 5, NULL);
    /* Until the reply, pushes of either subscription may come. */
    for (;;) {
        reply_t p;
        cr_assert_eq(raw_recv(s, 10000, &p), 0, "no unsubscribe reply");
        uint64_t id;
        if (reply_id(&p, &id)) {
            cr_assert_eq(id, 3);
            cr_assert(reply_ok(&p), "unsubscribe failed: %s", reply_code(&p));
            reply_free(&p);
            break;
        }
        take_push(&p, st, 2);
        reply_free(&p);
    }
    size_t before = st[0].n;
    append_n(w, 12, "acct", "t", 2, 5, NULL);
    read_until(s, st, 2, (size_t[]){0, 4}, false);
    drain_for(s, st, 2, 300);
    cr_assert_eq(st[0].n, before, "a push for a subscription after its unsubscribe reply");
    cr_assert_eq(st[1].n, 4);
    /* A second unsubscribe of the same SID: there is no such subscription any more. */
    rq_begin(&r, "unsubscribe", 4, 1);
    pk_str(&r.pk, "sub");
    msgpack_pack_uint64(&r.pk, st[0].sid);
    cr_assert_eq(raw_send_rq(s, &r), 0);
    rq_free(&r);
    reply_t rep;
    cr_assert_eq(raw_recv(s, 5000, &rep), 0);
    cr_assert_str_eq(reply_code(&rep), "not_found");
    reply_free(&rep);
    for (int i = 0; i < 2; i++)
        free(st[i].pos);
    close(w);
    close(s);
    fx_finish();
}

Test(subscribe, another_connections_subscription_cannot_be_unsubscribed) {
    fx_start(NULL);
    int a = fx_connect(), b = fx_connect();
    uint64_t sid = subscribe(a, 1, NULL, NULL, NULL);
    rq_t r;
    rq_begin(&r, "unsubscribe", 2, 1);
    pk_str(&r.pk, "sub");
    msgpack_pack_uint64(&r.pk, sid);
    cr_assert_eq(raw_send_rq(b, &r), 0);
    rq_free(&r);
    reply_t rep;
    cr_assert_eq(raw_recv(b, 5000, &rep), 0);
    cr_assert_str_eq(reply_code(&rep), "not_found");
    reply_free(&rep);
    /* a's subscription still delivers */
    stream_t st = {.sid = sid};
    append_n(b, 3, "acct", "t", 1, 5, NULL);
    read_until(a, &st, 1, (size_t[]){1}, false);
    free(st.pos);
    close(a);
    close(b);
    fx_finish();
}

Test(subscribe, deleted_events_are_not_caught_up) {
    fx_start(NULL);
    int w = fx_connect(), s = fx_connect();
    uint64_t pa[2], pb[2];
    append_n(w, 1, "gone", "t", 2, 5, pa);
    append_n(w, 2, "kept", "t", 2, 5, pb);
    rq_t r;
    rq_begin(&r, "delete-entity", 3, 1);
    pk_str(&r.pk, "entity_id");
    pk_str(&r.pk, tname("gone"));
    cr_assert_eq(raw_send_rq(w, &r), 0);
    rq_free(&r);
    reply_t rep = fx_expect_ok(w, 3);
    const msgpack_object *n = reply_get(&rep, "deleted");
    cr_assert(n && n->type == MSGPACK_OBJECT_POSITIVE_INTEGER && n->via.u64 == 2);
    reply_free(&rep);
    uint64_t after = 0;
    stream_t st = {.sid = subscribe(s, 4, &after, NULL, NULL)};
    read_until(s, &st, 1, (size_t[]){2}, true);
    drain_for(s, &st, 1, 200);
    assert_positions(&st, pb, 2);
    /* The entity starts again at version 0, with a position past every earlier one. */
    uint64_t again;
    append_n(w, 5, "gone", "t", 1, 5, &again);
    cr_assert_gt(again, pb[1]);
    free(st.pos);
    close(w);
    close(s);
    fx_finish();
}

/* At SIGTERM every subscription gets {"sub": SID, "closing": true} before the connection ends. */
Test(subscribe, shutdown_sends_a_closing_push) {
    fx_start(NULL);
    int s = fx_connect();
    uint64_t sid = subscribe(s, 1, NULL, NULL, NULL);
    cr_assert_eq(test_daemon_stop(&fx_daemon), 0, "evstored did not exit 0 on SIGTERM");
    reply_t p;
    cr_assert_eq(raw_recv(s, 5000, &p), 0, "no closing push");
    const msgpack_object *sub = reply_get(&p, "sub"), *closing = reply_get(&p, "closing");
    cr_assert(sub && sub->via.u64 == sid);
    cr_assert(closing && closing->type == MSGPACK_OBJECT_BOOLEAN && closing->via.boolean);
    reply_free(&p);
    cr_assert_eq(raw_wait_closed(s, 5000), 0);
    close(s);
}
