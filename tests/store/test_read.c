/* test_read.c: the store conformance suite, reads (get_by_entity, get_by_id, read) and the
 * fields of stored events. */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sync.h"

TestSuite(read, .init = store_setup, .fini = store_teardown, .timeout = 60);

/* Appends n events p0, p1... to entity (one call) and returns their positions (free them). */
static uint64_t *seed(const char *entity, const char *topic, size_t n) {
    static const char *payloads[] = {"p0", "p1", "p2", "p3", "p4", "p5", "p6", "p7", "p8", "p9"};
    cr_assert_leq(n, 10);
    evs_event_t evs[10];
    for (size_t i = 0; i < n; i++)
        evs[i] = new_event(entity, topic, payloads[i]);
    append_result_t r = append_ok(evs, n);
    uint64_t *pos = r.positions;
    r.positions = NULL;
    append_result_free(&r);
    return pos;
}

/* Asserts that r holds exactly the versions listed (terminated by -1), in that order, with the
 * payloads seed() gave them. */
static void assert_versions(const events_result_t *r, const char *entity, ...) {
    va_list ap;
    va_start(ap, entity);
    size_t i = 0;
    for (int v = va_arg(ap, int); v >= 0; v = va_arg(ap, int), i++) {
        cr_assert_lt(i, r->n, "only %zu events; expected more", r->n);
        const evs_event_t *ev = &r->events[i];
        cr_assert_eq(ev->version, (uint64_t)v, "event %zu has version %llu, expected %d", i,
                     (unsigned long long)ev->version, v);
        cr_assert_str_eq(ev->entity_id, entity);
        char p[16];
        snprintf(p, sizeof p, "p%d", v);
        cr_assert_eq(ev->payload_len, 2);
        cr_assert_arr_eq(ev->payload, p, 2);
    }
    va_end(ap);
    cr_assert_eq(r->n, i, "%zu events; expected %zu", r->n, i);
}

static events_result_t by_entity(const char *entity, uint64_t from, uint32_t limit, bool back) {
    events_result_t r;
    int rc = sync_get_by_entity(entity, from, limit, back, &r);
    cr_assert_eq(rc, 0, "get_by_entity: %s (%s)", evs_code_name(rc), r.err.message);
    return r;
}

/* ---------------------------------------------------------------- get_by_entity */

Test(read, get_by_entity_forwards_returns_every_version_in_order) {
    const char *a = name("a");
    free(seed(a, name("t"), 5));
    events_result_t r = by_entity(a, 0, STORE_DEFAULT_LIMIT, false);
    assert_versions(&r, a, 0, 1, 2, 3, 4, -1);
    events_result_free(&r);
}

Test(read, get_by_entity_from_version_is_inclusive) {
    const char *a = name("a");
    free(seed(a, name("t"), 5));
    events_result_t r = by_entity(a, 2, STORE_DEFAULT_LIMIT, false);
    assert_versions(&r, a, 2, 3, 4, -1);
    events_result_free(&r);
    r = by_entity(a, 4, STORE_DEFAULT_LIMIT, false);
    assert_versions(&r, a, 4, -1);
    events_result_free(&r);
}

Test(read, get_by_entity_from_past_the_end_is_empty) {
    const char *a = name("a");
    free(seed(a, name("t"), 3));
    events_result_t r = by_entity(a, 3, STORE_DEFAULT_LIMIT, false);
    cr_assert_eq(r.n, 0);
    events_result_free(&r);
    r = by_entity(a, UINT64_MAX, STORE_DEFAULT_LIMIT, false);
    cr_assert_eq(r.n, 0);
    events_result_free(&r);
}

Test(read, get_by_entity_limit) {
    const char *a = name("a");
    free(seed(a, name("t"), 5));
    events_result_t r = by_entity(a, 0, 2, false);
    assert_versions(&r, a, 0, 1, -1);
    events_result_free(&r);
    r = by_entity(a, 1, 2, false);
    assert_versions(&r, a, 1, 2, -1);
    events_result_free(&r);
    r = by_entity(a, 3, 10, false);
    assert_versions(&r, a, 3, 4, -1);
    events_result_free(&r);
}

Test(read, get_by_entity_backwards_from_the_last) {
    const char *a = name("a");
    free(seed(a, name("t"), 5));
    events_result_t r = by_entity(a, UINT64_MAX, STORE_DEFAULT_LIMIT, true);
    assert_versions(&r, a, 4, 3, 2, 1, 0, -1);
    events_result_free(&r);
}

Test(read, get_by_entity_backwards_from_a_version_is_inclusive) {
    const char *a = name("a");
    free(seed(a, name("t"), 5));
    events_result_t r = by_entity(a, 2, STORE_DEFAULT_LIMIT, true);
    assert_versions(&r, a, 2, 1, 0, -1);
    events_result_free(&r);
    r = by_entity(a, 0, STORE_DEFAULT_LIMIT, true);
    assert_versions(&r, a, 0, -1);
    events_result_free(&r);
}

Test(read, get_by_entity_backwards_from_past_the_end_starts_at_the_last) {
    const char *a = name("a");
    free(seed(a, name("t"), 3));
    events_result_t r = by_entity(a, 10, STORE_DEFAULT_LIMIT, true);
    assert_versions(&r, a, 2, 1, 0, -1);
    events_result_free(&r);
}

Test(read, get_by_entity_backwards_with_limit_gives_the_newest) {
    const char *a = name("a");
    free(seed(a, name("t"), 5));
    events_result_t r = by_entity(a, UINT64_MAX, 2, true);
    assert_versions(&r, a, 4, 3, -1);
    events_result_free(&r);
    r = by_entity(a, 3, 2, true);
    assert_versions(&r, a, 3, 2, -1);
    events_result_free(&r);
}

Test(read, get_by_entity_of_an_unknown_entity_is_empty) {
    const char *a = name("nobody");
    events_result_t r = by_entity(a, 0, STORE_DEFAULT_LIMIT, false);
    cr_assert_eq(r.n, 0);
    events_result_free(&r);
    r = by_entity(a, UINT64_MAX, STORE_DEFAULT_LIMIT, true);
    cr_assert_eq(r.n, 0);
    events_result_free(&r);
}

Test(read, get_by_entity_does_not_mix_entities_sharing_a_prefix) {
    const char *a = name("a"), *a1 = name("a1"), *t = name("t");
    free(seed(a1, t, 2));
    free(seed(a, t, 3));
    free(seed(a1, t, 1)); /* a1 now has versions 0..2 as well, payloads p0 p1 p0 */
    events_result_t r = by_entity(a, 0, STORE_DEFAULT_LIMIT, false);
    assert_versions(&r, a, 0, 1, 2, -1);
    events_result_free(&r);
}

Test(read, get_by_entity_handles_the_maximum_limit) {
    const char *a = name("a");
    free(seed(a, name("t"), 3));
    events_result_t r = by_entity(a, 0, STORE_MAX_LIMIT, false);
    assert_versions(&r, a, 0, 1, 2, -1);
    events_result_free(&r);
}

/* ---------------------------------------------------------------- get_by_id */

Test(read, get_by_id_returns_the_whole_event) {
    const char *a = name("a"), *t = name("topic");
    static const uint8_t meta[] = {0x81, 0xa4, 'u', 's', 'e', 'r', 0xa3, 'a', 'n', 'n'};
    evs_event_t evs[2] = {new_event(a, t, "first"), new_event(a, t, "second")};
    evs[1].metadata = (uint8_t *)meta;
    evs[1].metadata_len = sizeof meta;
    int64_t before = wall_us();
    append_result_t ok = append_ok(evs, 2);
    int64_t after = wall_us();
    events_result_t r;
    cr_assert_eq(sync_get_by_id(evs[1].event_id, &r), 0, "%s", r.err.message);
    const evs_event_t *ev = &r.events[0];
    cr_assert_arr_eq(ev->event_id, evs[1].event_id, 16);
    cr_assert_str_eq(ev->entity_id, a);
    cr_assert_str_eq(ev->topic, t);
    cr_assert_eq(ev->version, 1);
    cr_assert_eq(ev->position, ok.positions[1]);
    cr_assert_eq(ev->payload_len, 6);
    cr_assert_arr_eq(ev->payload, "second", 6);
    cr_assert_eq(ev->metadata_len, sizeof meta);
    cr_assert_arr_eq(ev->metadata, meta, sizeof meta);
    /* Set by the store at commit: within the call, allowing 5 s of clock difference. */
    cr_assert_geq(ev->timestamp, before - 5000000);
    cr_assert_leq(ev->timestamp, after + 5000000);
    events_result_free(&r);
    append_result_free(&ok);
}

Test(read, get_by_id_of_an_unknown_id_is_not_found) {
    uint8_t id[16];
    evs_event_t ev = new_event(name("x"), name("t"), ""); /* a fresh random id, never stored */
    memcpy(id, ev.event_id, 16);
    events_result_t r;
    cr_assert_eq(sync_get_by_id(id, &r), EVS_ENOT_FOUND, "%s", evs_code_name(r.code));
    cr_assert_eq(r.n, 0);
    events_result_free(&r);
}

Test(read, metadata_absent_stays_absent_and_present_round_trips) {
    const char *a = name("a"), *t = name("t");
    static const uint8_t empty_map[] = {0x80};
    static const uint8_t map16[] = {0xde, 0x00, 0x01, 0xa1, 'k', 0x93, 0x01, 0xc2, 0xc0};
    evs_event_t evs[3] = {new_event(a, t, "p0"), new_event(a, t, "p1"), new_event(a, t, "p2")};
    evs[1].metadata = (uint8_t *)empty_map;
    evs[1].metadata_len = 1;
    evs[2].metadata = (uint8_t *)map16;
    evs[2].metadata_len = sizeof map16;
    append_result_t ok = append_ok(evs, 3);
    events_result_t r = by_entity(a, 0, STORE_DEFAULT_LIMIT, false);
    cr_assert_eq(r.n, 3);
    cr_assert_null(r.events[0].metadata, "metadata appeared on an event stored without it");
    cr_assert_eq(r.events[0].metadata_len, 0);
    cr_assert_not_null(r.events[1].metadata, "an empty metadata map is not absent metadata");
    cr_assert_eq(r.events[1].metadata_len, 1);
    cr_assert_eq(r.events[1].metadata[0], 0x80);
    cr_assert_eq(r.events[2].metadata_len, sizeof map16);
    cr_assert_arr_eq(r.events[2].metadata, map16, sizeof map16, "metadata bytes kept exactly");
    events_result_free(&r);
    append_result_free(&ok);
}

Test(read, every_event_of_one_append_gets_a_timestamp) {
    const char *a = name("a");
    int64_t before = wall_us();
    free(seed(a, name("t"), 3));
    int64_t after = wall_us();
    events_result_t r = by_entity(a, 0, STORE_DEFAULT_LIMIT, false);
    cr_assert_eq(r.n, 3);
    for (size_t i = 0; i < 3; i++) {
        cr_assert_geq(r.events[i].timestamp, before - 5000000, "event %zu", i);
        cr_assert_leq(r.events[i].timestamp, after + 5000000, "event %zu", i);
    }
    events_result_free(&r);
}

/* ---------------------------------------------------------------- read */

static events_result_t read_q(uint64_t after, uint32_t limit, const char *const *topics,
                              size_t ntopics, const char *prefix) {
    store_read_t q = {.after = after,
                      .limit = limit,
                      .topics = topics,
                      .ntopics = ntopics,
                      .entity_prefix = prefix};
    events_result_t r;
    int rc = sync_read(&q, &r);
    cr_assert_eq(rc, 0, "read: %s (%s)", evs_code_name(rc), r.err.message);
    for (size_t i = 0; i < r.n; i++) {
        cr_assert_gt(r.events[i].position, after, "read returned a position <= after");
        if (i) cr_assert_gt(r.events[i].position, r.events[i - 1].position, "not in order");
    }
    cr_assert_leq(r.n, limit, "read returned more than limit");
    return r;
}

/* The same events were appended in this interleaving by fixture_topics(). */
typedef struct interleaved {
    const char *t1, *t2, *t3, *ex, *ey;
    uint64_t pos[9];
} interleaved_t;

/* Nine events over three topics and two entities (ex: x-1, ey: y-1), one append each so that
 * they are interleaved in the log:
 *   0:ex/t1 1:ex/t2 2:ey/t1 3:ey/t3 4:ex/t1 5:ey/t2 6:ex/t3 7:ey/t1 8:ex/t1 */
static interleaved_t fixture_topics(void) {
    interleaved_t f = {
        .t1 = name("t1"), .t2 = name("t2"), .t3 = name("t3"), .ex = name("x-1"), .ey = name("y-1")};
    const char *ent[9] = {f.ex, f.ex, f.ey, f.ey, f.ex, f.ey, f.ex, f.ey, f.ex};
    const char *top[9] = {f.t1, f.t2, f.t1, f.t3, f.t1, f.t2, f.t3, f.t1, f.t1};
    for (int i = 0; i < 9; i++) {
        evs_event_t ev = new_event(ent[i], top[i], "p");
        append_result_t r = append_ok(&ev, 1);
        f.pos[i] = r.positions[0];
        append_result_free(&r);
    }
    return f;
}

/* Asserts that r holds exactly the fixture events listed by index (terminated by -1). */
static void assert_positions(const events_result_t *r, const interleaved_t *f, ...) {
    va_list ap;
    va_start(ap, f);
    size_t i = 0;
    for (int k = va_arg(ap, int); k >= 0; k = va_arg(ap, int), i++) {
        cr_assert_lt(i, r->n, "only %zu events; expected more", r->n);
        cr_assert_eq(r->events[i].position, f->pos[k], "result %zu is not fixture event %d", i, k);
    }
    va_end(ap);
    cr_assert_eq(r->n, i, "%zu events; expected %zu", r->n, i);
}

Test(read, one_topic_in_position_order) {
    interleaved_t f = fixture_topics();
    const char *topics[] = {f.t1};
    events_result_t r = read_q(0, STORE_DEFAULT_LIMIT, topics, 1, NULL);
    assert_positions(&r, &f, 0, 2, 4, 7, 8, -1);
    for (size_t i = 0; i < r.n; i++)
        cr_assert_str_eq(r.events[i].topic, f.t1);
    events_result_free(&r);
}

Test(read, several_topics_merge_in_position_order) {
    interleaved_t f = fixture_topics();
    const char *topics[] = {f.t3, f.t2};
    events_result_t r = read_q(0, STORE_DEFAULT_LIMIT, topics, 2, NULL);
    assert_positions(&r, &f, 1, 3, 5, 6, -1);
    events_result_free(&r);
}

Test(read, after_is_exclusive) {
    interleaved_t f = fixture_topics();
    const char *topics[] = {f.t1};
    events_result_t r = read_q(f.pos[2], STORE_DEFAULT_LIMIT, topics, 1, NULL);
    assert_positions(&r, &f, 4, 7, 8, -1);
    events_result_free(&r);
    r = read_q(f.pos[2] - 1, STORE_DEFAULT_LIMIT, topics, 1, NULL);
    assert_positions(&r, &f, 2, 4, 7, 8, -1);
    events_result_free(&r);
    r = read_q(f.pos[8], STORE_DEFAULT_LIMIT, topics, 1, NULL);
    cr_assert_eq(r.n, 0);
    events_result_free(&r);
}

/* Paging with "after the last position seen" visits every event once. */
Test(read, limit_pages_through_a_topic) {
    interleaved_t f = fixture_topics();
    const char *topics[] = {f.t1};
    events_result_t r = read_q(0, 2, topics, 1, NULL);
    assert_positions(&r, &f, 0, 2, -1);
    uint64_t last = r.events[1].position;
    events_result_free(&r);
    r = read_q(last, 2, topics, 1, NULL);
    assert_positions(&r, &f, 4, 7, -1);
    last = r.events[1].position;
    events_result_free(&r);
    r = read_q(last, 2, topics, 1, NULL);
    assert_positions(&r, &f, 8, -1);
    events_result_free(&r);
}

Test(read, entity_prefix_filters_by_entity_id) {
    interleaved_t f = fixture_topics();
    events_result_t r = read_q(0, STORE_DEFAULT_LIMIT, NULL, 0, name("x-"));
    assert_positions(&r, &f, 0, 1, 4, 6, 8, -1);
    events_result_free(&r);
    r = read_q(f.pos[3], STORE_DEFAULT_LIMIT, NULL, 0, name("y-"));
    assert_positions(&r, &f, 5, 7, -1);
    events_result_free(&r);
    /* The whole test's prefix: every fixture event. */
    r = read_q(0, STORE_DEFAULT_LIMIT, NULL, 0, PREFIX);
    assert_positions(&r, &f, 0, 1, 2, 3, 4, 5, 6, 7, 8, -1);
    events_result_free(&r);
}

Test(read, entity_prefix_and_topics_combine) {
    interleaved_t f = fixture_topics();
    const char *topics[] = {f.t1, f.t3};
    events_result_t r = read_q(0, STORE_DEFAULT_LIMIT, topics, 2, name("y-"));
    assert_positions(&r, &f, 2, 3, 7, -1);
    events_result_free(&r);
    r = read_q(0, 1, topics, 2, name("y-"));
    assert_positions(&r, &f, 2, -1);
    events_result_free(&r);
}

Test(read, entity_prefix_is_a_prefix_not_a_pattern) {
    const char *t = name("t");
    evs_event_t evs[2] = {new_event(name("a%b"), t, "p"), new_event(name("axb"), t, "p")};
    append_result_t ok = append_ok(evs, 2);
    events_result_t r = read_q(0, STORE_DEFAULT_LIMIT, NULL, 0, name("a%"));
    cr_assert_eq(r.n, 1, "'%%' matched more than itself");
    cr_assert_eq(r.events[0].position, ok.positions[0]);
    events_result_free(&r);
    r = read_q(0, STORE_DEFAULT_LIMIT, NULL, 0, name("a_"));
    cr_assert_eq(r.n, 0, "'_' matched another character");
    events_result_free(&r);
    append_result_free(&ok);
}

Test(read, empty_entity_prefix_filters_nothing) {
    interleaved_t f = fixture_topics();
    const char *topics[] = {f.t2};
    events_result_t r = read_q(0, STORE_DEFAULT_LIMIT, topics, 1, "");
    assert_positions(&r, &f, 1, 5, -1);
    events_result_free(&r);
}

Test(read, unknown_topic_is_empty) {
    const char *topics[] = {name("nothing")};
    events_result_t r = read_q(0, STORE_DEFAULT_LIMIT, topics, 1, NULL);
    cr_assert_eq(r.n, 0);
    events_result_free(&r);
}

/* Without filters, the global log: this test's events appear in order among any others. */
Test(read, global_log_after_a_position_holds_every_later_event_in_order) {
    interleaved_t f = fixture_topics();
    events_result_t r = read_q(f.pos[0] - 1, STORE_MAX_LIMIT, NULL, 0, NULL);
    size_t k = 0;
    for (size_t i = 0; i < r.n && k < 9; i++)
        if (r.events[i].position == f.pos[k]) k++;
    cr_assert_eq(k, 9, "only %zu of the 9 events found in order in the global log", k);
    cr_assert_eq(r.events[0].position, f.pos[0]);
    events_result_free(&r);
    r = read_q(f.pos[0] - 1, 3, NULL, 0, NULL);
    cr_assert_eq(r.n, 3, "limit 3 with at least 9 events after");
    cr_assert_eq(r.events[0].position, f.pos[0]);
    events_result_free(&r);
}

/* ---------------------------------------------------------------- the byte bound of reads */

/* Sets the store's byte bound to what two of seed()'s events of entity and topic take: every
 * read then returns those two and the first event past the bound (which says there is more). */
static void bound_to_two_events(const char *entity, const char *topic) {
    evs_event_t ev = new_event(entity, topic, "p0");
    S->page_bytes = 2 * codec_event_size(&ev);
}

Test(read, get_by_entity_stops_at_the_first_event_past_the_byte_bound) {
    const char *a = name("a"), *t = name("t");
    free(seed(a, t, 6));
    bound_to_two_events(a, t);
    events_result_t r = by_entity(a, 0, STORE_DEFAULT_LIMIT, false);
    assert_versions(&r, a, 0, 1, 2, -1);
    events_result_free(&r);
    r = by_entity(a, UINT64_MAX, STORE_DEFAULT_LIMIT, true);
    assert_versions(&r, a, 5, 4, 3, -1);
    events_result_free(&r);
    r = by_entity(a, 1, 2, false); /* the count still bounds it too */
    assert_versions(&r, a, 1, 2, -1);
    events_result_free(&r);
}

Test(read, read_stops_at_the_first_event_past_the_byte_bound) {
    const char *a = name("a"), *t = name("t");
    uint64_t *pos = seed(a, t, 6);
    bound_to_two_events(a, t);
    const char *topics[] = {t, name("other")};
    events_result_t r = read_q(0, STORE_DEFAULT_LIMIT, topics, 1, NULL);
    assert_versions(&r, a, 0, 1, 2, -1);
    events_result_free(&r);
    r = read_q(0, STORE_DEFAULT_LIMIT, topics, 2, NULL);
    assert_versions(&r, a, 0, 1, 2, -1);
    events_result_free(&r);
    r = read_q(pos[2], STORE_DEFAULT_LIMIT, NULL, 0, a);
    assert_versions(&r, a, 3, 4, 5, -1);
    events_result_free(&r);
    /* The whole log may hold other tests' events, of other sizes: whatever it returns, only its
     * last event is past the bound. */
    r = read_q(pos[0] - 1, STORE_MAX_LIMIT, NULL, 0, NULL);
    cr_assert_geq(r.n, 1);
    size_t before_last = 0;
    for (size_t i = 0; i + 1 < r.n; i++)
        before_last += codec_event_size(&r.events[i]);
    cr_assert_leq(before_last, S->page_bytes, "%zu events before the last take %zu bytes", r.n - 1,
                  before_last);
    events_result_free(&r);
    free(pos);
}

/* The first event alone over the bound still comes, and the next one with it, to say there is
 * more. */
Test(read, a_byte_bound_smaller_than_one_event_returns_that_event_and_the_next) {
    const char *a = name("a"), *t = name("t");
    free(seed(a, t, 4));
    S->page_bytes = 1;
    events_result_t r = by_entity(a, 0, STORE_DEFAULT_LIMIT, false);
    assert_versions(&r, a, 0, 1, -1);
    events_result_free(&r);
    r = by_entity(a, UINT64_MAX, STORE_DEFAULT_LIMIT, true);
    assert_versions(&r, a, 3, 2, -1);
    events_result_free(&r);
    const char *topics[] = {t};
    r = read_q(0, STORE_DEFAULT_LIMIT, topics, 1, NULL);
    assert_versions(&r, a, 0, 1, -1);
    events_result_free(&r);
}
