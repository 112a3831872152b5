/* test_client.c: every operation of the protocol driven through libevstore against a real
 * evstored (one fresh daemon per test, tests/integration/harness.h). */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <evstore.h>

#include "../common/daemon.h"

static test_daemon_t daemon_;
static evs_context_t *c;

static void start_daemon(const char *const *extra) {
    cr_assert_eq(test_daemon_start(&daemon_, extra), 0, "evstored did not start");
    evs_options_t o = {.addr = daemon_.addr, .timeout_ms = 10000};
    c = evs_connect_with_options(&o);
    cr_assert_not_null(c);
    cr_assert_eq(c->err, 0, "connect: %s", c->errstr);
}

static void setup(void) {
    start_daemon(NULL);
}

static void teardown(void) {
    evs_free(c);
    c = NULL;
    if (daemon_.pid > 0) cr_expect_eq(test_daemon_stop(&daemon_), 0, "evstored did not exit 0");
}

TestSuite(client, .init = setup, .fini = teardown, .timeout = 30);

/* ---------------------------------------------------------------- helpers */

static evs_event_t mk(const char *entity, const char *topic, const char *payload) {
    evs_event_t ev;
    memset(&ev, 0, sizeof ev);
    ev.entity_id = (char *)entity;
    ev.topic = (char *)topic;
    ev.payload = (uint8_t *)payload;
    ev.payload_len = strlen(payload);
    return ev;
}

static evs_event_t mk_v(const char *entity, const char *topic, const char *payload, uint64_t v) {
    evs_event_t ev = mk(entity, topic, payload);
    ev.has_version = 1;
    ev.version = v;
    return ev;
}

static void set_id(evs_event_t *ev, uint8_t fill) {
    memset(ev->event_id, fill, 16);
    ev->event_id[6] = 0x40; /* a version-4 UUID is not required, but looks like one */
    ev->has_event_id = 1;
}

/* Appends one event; returns its position. */
static uint64_t append1(evs_context_t *ctx, const char *entity, const char *topic,
                        const char *payload) {
    evs_event_t ev = mk(entity, topic, payload);
    uint64_t pos = 0;
    cr_assert_eq(evs_append(ctx, &ev, 1, &pos, NULL), 0, "append: %s", ctx->errstr);
    return pos;
}

static size_t count_entity(const char *entity) {
    evs_events_t *l;
    cr_assert_eq(evs_get_by_entity(c, entity, 0, 0, false, &l), 0, "%s", c->errstr);
    size_t n = l->n;
    evs_events_free(l);
    return n;
}

/* ---------------------------------------------------------------- ping and connecting */

Test(client, ping_returns_the_server_version) {
    char v[32] = "";
    cr_assert_eq(evs_ping(c, v, sizeof v), 0, "%s", c->errstr);
    cr_assert_str_eq(v, EVS_VERSION);
    cr_assert_eq(c->err, 0);
}

Test(client, connect_refused_gives_a_dead_context_with_an_io_error) {
    evs_context_t *x = evs_connect("127.0.0.1:1");
    cr_assert_not_null(x);
    cr_assert_eq(x->err, EVS_EIO);
    cr_assert_neq(x->errstr[0], '\0');
    cr_assert_eq(evs_ping(x, NULL, 0), EVS_EIO, "a dead context stays dead");
    evs_free(x);
}

Test(client, bad_address_is_an_invalid_argument) {
    evs_context_t *x = evs_connect("no-port-here");
    cr_assert_eq(x->err, EVS_EINVAL);
    evs_free(x);
}

/* The basic path on a Unix listener (its own suite: the suite init of "client" would start a
 * second daemon). */
static char unix_path[108];
static void setup_unix(void) {
    snprintf(unix_path, sizeof unix_path, "/tmp/evstore-test-%d.sock", (int)getpid());
    const char *extra[] = {"--unix", unix_path, NULL};
    start_daemon(extra);
}

Test(client_unix, unix_socket_connection_serves_every_call, .init = setup_unix, .fini = teardown,
     .timeout = 30) {
    evs_context_t *u = evs_connect(unix_path);
    cr_assert_eq(u->err, 0, "connect %s: %s", unix_path, u->errstr);
    cr_assert_eq(evs_ping(u, NULL, 0), 0, "%s", u->errstr);
    uint64_t pos = append1(u, "unix-1", "t.Unix", "hello");
    evs_event_t *ev;
    evs_events_t *l;
    cr_assert_eq(evs_read_all(u, 0, 0, &l), 0, "%s", u->errstr);
    cr_assert_eq(l->n, 1);
    cr_assert_eq(l->events[0].position, pos);
    cr_assert_eq(evs_get_by_id(u, l->events[0].event_id, &ev), 0, "%s", u->errstr);
    cr_assert_str_eq(ev->entity_id, "unix-1");
    evs_event_free(ev);
    evs_events_free(l);
    evs_free(u);
    unlink(unix_path);
}

/* ---------------------------------------------------------------- append */

Test(client, append_single_event_gets_version_zero_and_a_position) {
    evs_event_t ev = mk("acct-1", "bank.Opened", "{}");
    uint64_t pos = 0, ver = 99;
    cr_assert_eq(evs_append(c, &ev, 1, &pos, &ver), 0, "%s", c->errstr);
    cr_assert_gt(pos, 0);
    cr_assert_eq(ver, 0);
    uint64_t pos2 = append1(c, "acct-1", "bank.Deposited", "x");
    cr_assert_gt(pos2, pos);
}

Test(client, append_spanning_entities_is_atomic) {
    evs_event_t ok[2] = {mk("a", "t.A", "1"), mk("b", "t.B", "2")};
    uint64_t pos[2], ver[2];
    cr_assert_eq(evs_append(c, ok, 2, pos, ver), 0, "%s", c->errstr);
    cr_assert_lt(pos[0], pos[1]);
    cr_assert_eq(ver[0], 0);
    cr_assert_eq(ver[1], 0);
    /* The second event is stale: the first, on a fresh entity, must not be stored either. */
    evs_event_t bad[2] = {mk("c", "t.C", "3"), mk_v("a", "t.A", "4", 0)};
    cr_assert_eq(evs_append(c, bad, 2, NULL, NULL), EVS_ECONFLICT);
    cr_assert_eq(count_entity("c"), 0, "half an append became visible");
    cr_assert_eq(count_entity("a"), 1);
}

Test(client, append_with_explicit_versions_counts_earlier_events_of_the_request) {
    evs_event_t evs[3] = {mk_v("e", "t", "0", 0), mk_v("e", "t", "1", 1), mk_v("e", "t", "2", 2)};
    uint64_t ver[3];
    cr_assert_eq(evs_append(c, evs, 3, NULL, ver), 0, "%s", c->errstr);
    cr_assert_eq(ver[2], 2);
    evs_event_t next = mk_v("e", "t", "3", 3);
    cr_assert_eq(evs_append(c, &next, 1, NULL, ver), 0, "%s", c->errstr);
    cr_assert_eq(ver[0], 3);
}

Test(client, append_with_stale_version_is_conflict_with_details) {
    append1(c, "acct-9", "t", "a");
    append1(c, "acct-9", "t", "b");
    evs_event_t ev = mk_v("acct-9", "t", "c", 1);
    cr_assert_eq(evs_append(c, &ev, 1, NULL, NULL), EVS_ECONFLICT);
    cr_assert_eq(c->err, EVS_ECONFLICT);
    cr_assert_neq(c->errstr[0], '\0');
    cr_assert(c->detail.has_entity_id);
    cr_assert_str_eq(c->detail.entity_id, "acct-9");
    cr_assert(c->detail.has_version);
    cr_assert_eq(c->detail.version, 1);
    cr_assert(c->detail.has_current_version);
    cr_assert_eq(c->detail.current_version, 1);
    /* A server error leaves the context usable, and a success clears the error. */
    cr_assert_eq(evs_ping(c, NULL, 0), 0);
    cr_assert_eq(c->err, 0);
    cr_assert(!c->detail.has_entity_id);
}

Test(client, append_with_version_on_a_new_entity_reports_no_current_version) {
    evs_event_t ev = mk_v("fresh", "t", "x", 5);
    cr_assert_eq(evs_append(c, &ev, 1, NULL, NULL), EVS_ECONFLICT);
    cr_assert(c->detail.has_current_version);
    cr_assert_eq(c->detail.current_version, -1);
}

Test(client, append_retry_with_same_event_ids_returns_the_original_positions) {
    evs_event_t evs[2] = {mk("r1", "t", "a"), mk("r2", "t", "b")};
    set_id(&evs[0], 0x11);
    set_id(&evs[1], 0x22);
    uint64_t pos[2], ver[2], pos2[2], ver2[2];
    cr_assert_eq(evs_append(c, evs, 2, pos, ver), 0, "%s", c->errstr);
    append1(c, "other", "t", "in between");
    cr_assert_eq(evs_append(c, evs, 2, pos2, ver2), 0, "%s", c->errstr);
    cr_assert_eq(pos2[0], pos[0]);
    cr_assert_eq(pos2[1], pos[1]);
    cr_assert_eq(ver2[0], ver[0]);
    cr_assert_eq(ver2[1], ver[1]);
    cr_assert_eq(count_entity("r1"), 1, "the retry was stored twice");
}

Test(client, append_duplicate_event_id_elsewhere_is_conflict) {
    evs_event_t ev = mk("d1", "t", "a");
    set_id(&ev, 0x33);
    cr_assert_eq(evs_append(c, &ev, 1, NULL, NULL), 0, "%s", c->errstr);
    evs_event_t dup = mk("d2", "t", "a");
    set_id(&dup, 0x33);
    cr_assert_eq(evs_append(c, &dup, 1, NULL, NULL), EVS_ECONFLICT);
    if (c->detail.has_event_id) cr_assert_eq(memcmp(c->detail.event_id, ev.event_id, 16), 0);
    cr_assert_eq(count_entity("d2"), 0);
}

Test(client, append_of_no_events_is_ok) {
    cr_assert_eq(evs_append(c, NULL, 0, NULL, NULL), 0, "%s", c->errstr);
    evs_events_t *l;
    cr_assert_eq(evs_read_all(c, 0, 0, &l), 0);
    cr_assert_eq(l->n, 0);
    evs_events_free(l);
}

Test(client, append_with_invalid_entity_is_refused_before_sending) {
    evs_event_t ev = mk("", "t", "a");
    cr_assert_eq(evs_append(c, &ev, 1, NULL, NULL), EVS_EINVAL);
    cr_assert_eq(evs_ping(c, NULL, 0), 0, "EINVAL must not kill the context");
}

Test(client, payload_and_metadata_round_trip_byte_for_byte) {
    uint8_t payload[300];
    for (size_t i = 0; i < sizeof payload; i++)
        payload[i] = (uint8_t)i;
    static const uint8_t meta[] = {0x81, 0xa2, 'i', 'p', 0xa9, '1', '2',
                                   '7',  '.',  '0', '.', '0',  '.', '1'}; /* {"ip": "127.0.0.1"} */
    evs_event_t ev = mk("m", "t.Meta", "");
    ev.payload = payload;
    ev.payload_len = sizeof payload;
    ev.metadata = (uint8_t *)meta;
    ev.metadata_len = sizeof meta;
    set_id(&ev, 0x44);
    uint64_t pos;
    cr_assert_eq(evs_append(c, &ev, 1, &pos, NULL), 0, "%s", c->errstr);
    evs_event_t *got;
    cr_assert_eq(evs_get_by_id(c, ev.event_id, &got), 0, "%s", c->errstr);
    cr_assert_eq(got->payload_len, sizeof payload);
    cr_assert_eq(memcmp(got->payload, payload, sizeof payload), 0);
    cr_assert_eq(got->metadata_len, sizeof meta);
    cr_assert_eq(memcmp(got->metadata, meta, sizeof meta), 0);
    cr_assert_str_eq(got->topic, "t.Meta");
    cr_assert_eq(got->position, pos);
    cr_assert_gt(got->timestamp, 1600000000000000LL, "timestamp is in microseconds");
    evs_event_free(got);
}

/* ---------------------------------------------------------------- reads */

Test(client, get_by_entity_honours_from_version_and_limit) {
    for (int i = 0; i < 10; i++)
        append1(c, "g", "t", "x");
    append1(c, "other", "t", "y");
    evs_events_t *l;
    cr_assert_eq(evs_get_by_entity(c, "g", 3, 4, false, &l), 0, "%s", c->errstr);
    cr_assert_eq(l->n, 4);
    for (size_t i = 0; i < 4; i++) {
        cr_assert_eq(l->events[i].version, 3 + i);
        cr_assert_str_eq(l->events[i].entity_id, "g");
    }
    evs_events_free(l);
    cr_assert_eq(evs_get_by_entity(c, "g", 0, 0, false, &l), 0);
    cr_assert_eq(l->n, 10);
    evs_events_free(l);
}

Test(client, get_by_entity_backwards_gives_newest_first) {
    for (int i = 0; i < 5; i++)
        append1(c, "bw", "t", "x");
    evs_events_t *l;
    cr_assert_eq(evs_get_by_entity(c, "bw", EVS_LATEST, 2, true, &l), 0, "%s", c->errstr);
    cr_assert_eq(l->n, 2);
    cr_assert_eq(l->events[0].version, 4);
    cr_assert_eq(l->events[1].version, 3);
    evs_events_free(l);
    cr_assert_eq(evs_get_by_entity(c, "bw", 2, 0, true, &l), 0, "%s", c->errstr);
    cr_assert_eq(l->n, 3);
    cr_assert_eq(l->events[0].version, 2);
    cr_assert_eq(l->events[2].version, 0);
    evs_events_free(l);
}

Test(client, get_by_entity_of_unknown_entity_is_empty) {
    evs_events_t *l;
    cr_assert_eq(evs_get_by_entity(c, "nobody", 0, 0, false, &l), 0, "%s", c->errstr);
    cr_assert_eq(l->n, 0);
    evs_events_free(l);
}

Test(client, get_by_topic_honours_after_and_limit) {
    uint64_t p[6];
    for (int i = 0; i < 6; i++)
        p[i] = append1(c, i % 2 ? "x" : "y", i < 4 ? "hot" : "cold", "z");
    evs_events_t *l;
    cr_assert_eq(evs_get_by_topic(c, "hot", p[0], 2, &l), 0, "%s", c->errstr);
    cr_assert_eq(l->n, 2);
    cr_assert_eq(l->events[0].position, p[1]);
    cr_assert_eq(l->events[1].position, p[2]);
    evs_events_free(l);
    cr_assert_eq(evs_get_by_topic(c, "hot", 0, 0, &l), 0);
    cr_assert_eq(l->n, 4);
    evs_events_free(l);
    cr_assert_eq(evs_get_by_topic(c, "none", 0, 0, &l), 0);
    cr_assert_eq(l->n, 0);
    evs_events_free(l);
}

Test(client, get_by_id_finds_the_event) {
    evs_event_t ev = mk("byid", "t.Id", "payload!");
    set_id(&ev, 0x55);
    uint64_t pos;
    cr_assert_eq(evs_append(c, &ev, 1, &pos, NULL), 0, "%s", c->errstr);
    evs_event_t *got;
    cr_assert_eq(evs_get_by_id(c, ev.event_id, &got), 0, "%s", c->errstr);
    cr_assert_eq(memcmp(got->event_id, ev.event_id, 16), 0);
    cr_assert_str_eq(got->entity_id, "byid");
    cr_assert_eq(got->version, 0);
    cr_assert_eq(got->position, pos);
    cr_assert_eq(got->payload_len, 8);
    cr_assert_eq(memcmp(got->payload, "payload!", 8), 0);
    evs_event_free(got);
}

Test(client, get_by_id_of_unknown_id_is_not_found_and_the_context_lives) {
    uint8_t id[16] = {1, 2, 3};
    evs_event_t *got = (evs_event_t *)1;
    cr_assert_eq(evs_get_by_id(c, id, &got), EVS_ENOT_FOUND);
    cr_assert_null(got);
    cr_assert_eq(c->err, EVS_ENOT_FOUND);
    cr_assert_eq(evs_ping(c, NULL, 0), 0, "%s", c->errstr);
}

Test(client, read_all_pages_through_the_global_log_in_position_order) {
    for (int i = 0; i < 25; i++)
        append1(c, i % 3 ? "p" : "q", "t", "x");
    uint64_t after = 0, last = 0;
    size_t total = 0, pages = 0;
    for (;;) {
        evs_events_t *l;
        cr_assert_eq(evs_read_all(c, after, 10, &l), 0, "%s", c->errstr);
        size_t n = l->n;
        for (size_t i = 0; i < n; i++) {
            cr_assert_gt(l->events[i].position, last);
            last = l->events[i].position;
        }
        if (n) after = l->events[n - 1].position;
        evs_events_free(l);
        total += n;
        if (n == 0) break;
        pages++;
        cr_assert_leq(n, 10);
    }
    cr_assert_eq(total, 25);
    cr_assert_eq(pages, 3);
}

Test(client, delete_entity_removes_its_events_and_lets_it_start_again) {
    append1(c, "gone", "t", "a");
    append1(c, "gone", "t", "b");
    append1(c, "kept", "t", "c");
    uint64_t n = 0;
    cr_assert_eq(evs_delete_entity(c, "gone", &n), 0, "%s", c->errstr);
    cr_assert_eq(n, 2);
    cr_assert_eq(count_entity("gone"), 0);
    cr_assert_eq(count_entity("kept"), 1);
    evs_event_t ev = mk_v("gone", "t", "again", 0);
    cr_assert_eq(evs_append(c, &ev, 1, NULL, NULL), 0, "%s", c->errstr);
}

Test(client, reply_longer_than_max_frame_kills_the_context) {
    char big[2000];
    memset(big, 'b', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    append1(c, "big", "t", big);
    evs_options_t o = {.addr = daemon_.addr, .timeout_ms = 5000, .max_frame = 1000};
    evs_context_t *small = evs_connect_with_options(&o);
    cr_assert_eq(small->err, 0, "%s", small->errstr);
    evs_events_t *l;
    cr_assert_eq(evs_read_all(small, 0, 0, &l), EVS_EPROTOCOL);
    cr_assert_null(l);
    cr_assert_eq(evs_ping(small, NULL, 0), EVS_EPROTOCOL, "a context in error is dead");
    evs_free(small);
}

/* ---------------------------------------------------------------- subscriptions */

/* Collects pushes of sub until want events came (or 5 s passed); counts caught-up markers. */
static size_t collect(evs_context_t *ctx, uint64_t sub, size_t want, uint64_t *positions,
                      int *caught_up_at, int *caught_up_count) {
    size_t n = 0;
    for (int spins = 0; n < want && spins < 50; spins++) {
        evs_push_t *p;
        cr_assert_eq(evs_sub_next(ctx, sub, 100, &p), 0, "%s", ctx->errstr);
        if (!p) continue;
        cr_assert_eq(p->sub, sub);
        if (p->caught_up) {
            if (caught_up_at) *caught_up_at = (int)n;
            if (caught_up_count) (*caught_up_count)++;
        }
        for (size_t i = 0; i < p->n; i++) {
            cr_assert_lt(n, want, "more events than appended (a duplicate?)");
            positions[n++] = p->events[i].position;
        }
        evs_push_free(p);
    }
    return n;
}

Test(client, subscribe_with_after_catches_up_marks_it_once_then_goes_live) {
    uint64_t stored[8];
    for (int i = 0; i < 5; i++)
        stored[i] = append1(c, "s", "t", "old");
    evs_context_t *sc = evs_connect(daemon_.addr);
    cr_assert_eq(sc->err, 0);
    evs_sub_options_t o = {.has_after = true, .after = stored[0]};
    uint64_t sub;
    cr_assert_eq(evs_subscribe(sc, &o, &sub), 0, "%s", sc->errstr);
    cr_assert_gt(sub, 0);
    for (int i = 5; i < 8; i++)
        stored[i] = append1(c, "s", "t", "new");
    uint64_t got[7];
    int marker_at = -1, markers = 0;
    size_t n = collect(sc, sub, 7, got, &marker_at, &markers);
    cr_assert_eq(n, 7, "got %zu of 7 events", n);
    for (size_t i = 0; i < 7; i++)
        cr_assert_eq(got[i], stored[i + 1], "event %zu: position %llu, want %llu", i,
                     (unsigned long long)got[i], (unsigned long long)stored[i + 1]);
    /* The marker may come after the live events were already sent with the catch-up; wait a
     * little for it if it has not come yet. */
    for (int i = 0; i < 10 && markers == 0; i++) {
        evs_push_t *p;
        cr_assert_eq(evs_sub_next(sc, sub, 100, &p), 0);
        if (p && p->caught_up) markers++;
        cr_assert(!p || p->n == 0, "a duplicate event after the last one");
        evs_push_free(p);
    }
    cr_assert_eq(markers, 1, "caught_up must come exactly once");
    cr_assert(marker_at == -1 || marker_at >= 4, "caught_up before the stored events");
    evs_push_t *p;
    cr_assert_eq(evs_sub_next(sc, sub, 200, &p), 0);
    cr_assert_null(p, "nothing more was appended");
    evs_free(sc);
}

Test(client, subscribe_without_after_sees_only_new_events) {
    append1(c, "live", "t", "before");
    evs_context_t *sc = evs_connect(daemon_.addr);
    uint64_t sub;
    cr_assert_eq(evs_subscribe(sc, NULL, &sub), 0, "%s", sc->errstr);
    uint64_t pos = append1(c, "live", "t", "after");
    uint64_t got[1];
    int markers = 0;
    cr_assert_eq(collect(sc, sub, 1, got, NULL, &markers), 1);
    cr_assert_eq(got[0], pos);
    cr_assert_eq(markers, 0, "no caught_up without after");
    evs_free(sc);
}

Test(client, subscribe_with_topics_filters_server_side) {
    evs_context_t *sc = evs_connect(daemon_.addr);
    const char *topics[] = {"want.A", "want.B"};
    evs_sub_options_t o = {.has_after = true, .after = 0, .topics = topics, .ntopics = 2};
    uint64_t sub;
    cr_assert_eq(evs_subscribe(sc, &o, &sub), 0, "%s", sc->errstr);
    uint64_t a = append1(c, "f", "want.A", "1");
    append1(c, "f", "skip.C", "2");
    uint64_t b = append1(c, "f", "want.B", "3");
    append1(c, "f", "skip.D", "4");
    uint64_t got[2];
    cr_assert_eq(collect(sc, sub, 2, got, NULL, NULL), 2);
    cr_assert_eq(got[0], a);
    cr_assert_eq(got[1], b);
    evs_push_t *p;
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(evs_sub_next(sc, sub, 100, &p), 0);
        cr_assert(!p || p->n == 0, "an event of a topic not subscribed to");
        evs_push_free(p);
    }
    evs_free(sc);
}

Test(client, pushes_arriving_during_a_call_are_queued_not_lost) {
    uint64_t sub;
    cr_assert_eq(evs_subscribe(c, NULL, &sub), 0, "%s", c->errstr);
    /* Same context: the pushes for these appends arrive while it waits for the replies. */
    uint64_t pos[20];
    for (int i = 0; i < 20; i++)
        pos[i] = append1(c, "self", "t", "x");
    cr_assert_eq(evs_ping(c, NULL, 0), 0);
    uint64_t got[20];
    cr_assert_eq(collect(c, sub, 20, got, NULL, NULL), 20);
    for (int i = 0; i < 20; i++)
        cr_assert_eq(got[i], pos[i]);
}

Test(client, sub_next_times_out_with_no_push_and_the_context_lives) {
    uint64_t sub;
    cr_assert_eq(evs_subscribe(c, NULL, &sub), 0, "%s", c->errstr);
    evs_push_t *p = (evs_push_t *)1;
    cr_assert_eq(evs_sub_next(c, sub, 50, &p), 0);
    cr_assert_null(p);
    cr_assert_eq(evs_ping(c, NULL, 0), 0, "%s", c->errstr);
}

Test(client, unsubscribe_ends_the_pushes) {
    evs_context_t *sc = evs_connect(daemon_.addr);
    uint64_t sub;
    cr_assert_eq(evs_subscribe(sc, NULL, &sub), 0, "%s", sc->errstr);
    append1(c, "u", "t", "1");
    uint64_t got[1];
    cr_assert_eq(collect(sc, sub, 1, got, NULL, NULL), 1);
    cr_assert_eq(evs_unsubscribe(sc, sub), 0, "%s", sc->errstr);
    append1(c, "u", "t", "2");
    evs_push_t *p;
    cr_assert_eq(evs_sub_next(sc, 0, 200, &p), 0, "%s", sc->errstr);
    cr_assert_null(p, "a push after unsubscribe");
    cr_assert_eq(evs_sub_next(sc, sub, 0, &p), EVS_EINVAL, "the subscription is gone");
    cr_assert_eq(evs_ping(sc, NULL, 0), 0);
    evs_free(sc);
}

Test(client, two_subscriptions_on_one_context_are_kept_apart) {
    const char *ta[] = {"one"}, *tb[] = {"two"};
    evs_sub_options_t oa = {.topics = ta, .ntopics = 1}, ob = {.topics = tb, .ntopics = 1};
    uint64_t sa, sb;
    cr_assert_eq(evs_subscribe(c, &oa, &sa), 0, "%s", c->errstr);
    cr_assert_eq(evs_subscribe(c, &ob, &sb), 0, "%s", c->errstr);
    cr_assert_neq(sa, sb);
    uint64_t p1 = append1(c, "k", "one", "1");
    uint64_t p2 = append1(c, "k", "two", "2");
    uint64_t got[1];
    cr_assert_eq(collect(c, sb, 1, got, NULL, NULL), 1);
    cr_assert_eq(got[0], p2);
    cr_assert_eq(collect(c, sa, 1, got, NULL, NULL), 1);
    cr_assert_eq(got[0], p1);
}

/* ---------------------------------------------------------------- concurrency */

#define RACERS 4
#define RACE_ENTITIES 3
#define RACE_ROUNDS 60

typedef struct racer {
    const char *addr;
    int index;
    int wins, conflicts, other_errors;
    char last_error[320];
} racer_t;

/* Reads the latest version n of an entity and appends n+1; the loser of a race is told
 * conflict. */
static void *race(void *arg) {
    racer_t *r = arg;
    evs_context_t *x = evs_connect(r->addr);
    if (x->err) {
        r->other_errors++;
        snprintf(r->last_error, sizeof r->last_error, "connect: %s", x->errstr);
        evs_free(x);
        return NULL;
    }
    for (int i = 0; i < RACE_ROUNDS; i++) {
        char entity[16];
        snprintf(entity, sizeof entity, "race-%d", (i + r->index) % RACE_ENTITIES);
        evs_events_t *l;
        if (evs_get_by_entity(x, entity, EVS_LATEST, 1, true, &l) < 0) {
            r->other_errors++;
            snprintf(r->last_error, sizeof r->last_error, "read: %s", x->errstr);
            break;
        }
        uint64_t next = l->n ? l->events[0].version + 1 : 0;
        evs_events_free(l);
        evs_event_t ev = mk_v(entity, "race", "x", next);
        int rc = evs_append(x, &ev, 1, NULL, NULL);
        if (rc == 0) {
            r->wins++;
        } else if (rc == EVS_ECONFLICT && x->detail.has_current_version &&
                   x->detail.current_version >= (int64_t)next) {
            r->conflicts++;
        } else {
            r->other_errors++;
            snprintf(r->last_error, sizeof r->last_error, "append: %s: %s", evs_strcode(rc),
                     x->errstr);
            if (rc != EVS_ECONFLICT) break;
        }
    }
    evs_free(x);
    return NULL;
}

Test(client, racing_read_then_append_stores_every_version_exactly_once) {
    pthread_t th[RACERS];
    racer_t rs[RACERS];
    for (int i = 0; i < RACERS; i++) {
        rs[i] = (racer_t){.addr = daemon_.addr, .index = i};
        cr_assert_eq(pthread_create(&th[i], NULL, race, &rs[i]), 0);
    }
    int wins = 0, conflicts = 0;
    for (int i = 0; i < RACERS; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(rs[i].other_errors, 0, "racer %d: %s", i, rs[i].last_error);
        wins += rs[i].wins;
        conflicts += rs[i].conflicts;
    }
    cr_assert_eq(wins + conflicts, RACERS * RACE_ROUNDS);
    int stored = 0;
    for (int e = 0; e < RACE_ENTITIES; e++) {
        char entity[16];
        snprintf(entity, sizeof entity, "race-%d", e);
        evs_events_t *l;
        cr_assert_eq(evs_get_by_entity(c, entity, 0, 0, false, &l), 0, "%s", c->errstr);
        for (size_t i = 0; i < l->n; i++)
            cr_assert_eq(l->events[i].version, i, "%s: version %zu missing or twice", entity, i);
        stored += (int)l->n;
        evs_events_free(l);
    }
    cr_assert_eq(stored, wins, "every win stored once, no loser stored");
    cr_log_info("race: %d wins, %d conflicts", wins, conflicts);
}
