/* test_append.c: the store conformance suite, append semantics.
 *
 * Versions, positions, optimistic concurrency, atomicity, idempotent retry and duplicate event
 * ids, as docs/protocol.md states them. Runs against any store (EVSTORE_TEST_STORE). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "sync.h"

TestSuite(append, .init = store_setup, .fini = store_teardown, .timeout = 60);

static void assert_conflict(const append_result_t *r) {
    cr_assert_eq(r->code, EVS_ECONFLICT, "expected conflict, got %s (%s)", evs_code_name(r->code),
                 r->err.message);
}

static void assert_not_stored(const uint8_t id[16]) {
    events_result_t r;
    int rc = sync_get_by_id(id, &r);
    cr_assert_eq(rc, EVS_ENOT_FOUND, "an event of a failed append is stored (%s)",
                 evs_code_name(rc));
    events_result_free(&r);
}

/* ---------------------------------------------------------------- versions and positions */

Test(append, assigns_versions_from_zero_and_increasing_positions) {
    const char *a = name("acct");
    evs_event_t evs[3] = {new_event(a, name("t"), "1"), new_event(a, name("t"), "2"),
                          new_event(a, name("t"), "3")};
    append_result_t r = append_ok(evs, 3);
    for (size_t i = 0; i < 3; i++) {
        cr_assert_eq(r.versions[i], i);
        cr_assert_gt(r.positions[i], 0);
        if (i) cr_assert_gt(r.positions[i], r.positions[i - 1]);
    }
    evs_event_t more[2] = {new_event(a, name("t"), "4"), new_event(a, name("t"), "5")};
    append_result_t r2 = append_ok(more, 2);
    cr_assert_eq(r2.versions[0], 3);
    cr_assert_eq(r2.versions[1], 4);
    cr_assert_gt(r2.positions[0], r.positions[2]);
    cr_assert_gt(r2.positions[1], r2.positions[0]);
    append_result_free(&r);
    append_result_free(&r2);
}

Test(append, versions_are_per_entity) {
    const char *a = name("a"), *b = name("b"), *t = name("t");
    evs_event_t evs[4] = {new_event(a, t, "x"), new_event(b, t, "x"), new_event(a, t, "x"),
                          new_event(b, t, "x")};
    append_result_t r = append_ok(evs, 4);
    cr_assert_eq(r.versions[0], 0);
    cr_assert_eq(r.versions[1], 0);
    cr_assert_eq(r.versions[2], 1);
    cr_assert_eq(r.versions[3], 1);
    for (size_t i = 1; i < 4; i++)
        cr_assert_gt(r.positions[i], r.positions[i - 1]);
    append_result_free(&r);
}

Test(append, positions_increase_across_appends_and_entities) {
    uint64_t last = 0;
    for (int i = 0; i < 20; i++) {
        char suffix[16];
        snprintf(suffix, sizeof suffix, "e%d", i % 3);
        evs_event_t ev = new_event(name(suffix), name("t"), "p");
        append_result_t r = append_ok(&ev, 1);
        cr_assert_gt(r.positions[0], last, "append %d", i);
        last = r.positions[0];
        append_result_free(&r);
    }
}

Test(append, explicit_versions_are_accepted_when_they_are_next) {
    const char *a = name("acct"), *t = name("t");
    evs_event_t evs[2] = {new_event_v(a, t, "1", 0), new_event_v(a, t, "2", 1)};
    append_result_t r = append_ok(evs, 2);
    cr_assert_eq(r.versions[0], 0);
    cr_assert_eq(r.versions[1], 1);
    evs_event_t next = new_event_v(a, t, "3", 2);
    append_result_t r2 = append_ok(&next, 1);
    cr_assert_eq(r2.versions[0], 2);
    cr_assert_eq(entity_count(a), 3);
    append_result_free(&r);
    append_result_free(&r2);
}

/* An explicit version counts the events before it in the same call. */
Test(append, explicit_version_counts_earlier_events_of_the_same_call) {
    const char *a = name("acct"), *t = name("t");
    evs_event_t evs[3] = {new_event(a, t, "1"), new_event_v(a, t, "2", 1), new_event(a, t, "3")};
    append_result_t r = append_ok(evs, 3);
    cr_assert_eq(r.versions[0], 0);
    cr_assert_eq(r.versions[1], 1);
    cr_assert_eq(r.versions[2], 2);
    append_result_free(&r);
}

Test(append, version_zero_on_a_new_entity_is_accepted) {
    evs_event_t ev = new_event_v(name("new"), name("t"), "x", 0);
    append_result_t r = append_ok(&ev, 1);
    cr_assert_eq(r.versions[0], 0);
    append_result_free(&r);
}

Test(append, thousand_events_in_one_call) {
    const char *a = name("big"), *t = name("t");
    evs_event_t *evs = calloc(1000, sizeof *evs);
    for (int i = 0; i < 1000; i++)
        evs[i] = new_event(a, t, "payload");
    append_result_t r = append_ok(evs, 1000);
    for (size_t i = 0; i < 1000; i++) {
        cr_assert_eq(r.versions[i], i);
        if (i) cr_assert_gt(r.positions[i], r.positions[i - 1]);
    }
    cr_assert_eq(entity_count(a), 1000);
    append_result_free(&r);
    free(evs);
}

/* ---------------------------------------------------------------- conflicts */

Test(append, wrong_version_is_conflict_with_details_and_stores_nothing) {
    const char *a = name("acct"), *t = name("t");
    evs_event_t first[2] = {new_event(a, t, "1"), new_event(a, t, "2")};
    append_result_t ok = append_ok(first, 2);
    evs_event_t ev = new_event_v(a, t, "x", 5);
    append_result_t r;
    sync_append(&ev, 1, &r);
    assert_conflict(&r);
    cr_assert(r.err.has_entity, "the conflict names the entity");
    cr_assert_str_eq(r.err.entity_id, a);
    cr_assert(r.err.has_version, "the conflict names the version asked");
    cr_assert_eq(r.err.version, 5);
    cr_assert(r.err.has_current, "the conflict names the current version");
    cr_assert_eq(r.err.current_version, 1);
    cr_assert_not(r.err.has_event_id);
    cr_assert_eq(entity_count(a), 2);
    assert_not_stored(ev.event_id);
    append_result_free(&ok);
}

/* A stale writer: it read version 0 and appends version 1, but someone else already did. */
Test(append, stale_version_is_conflict_naming_the_current_version) {
    const char *a = name("acct"), *t = name("t");
    evs_event_t first[3] = {new_event(a, t, "1"), new_event(a, t, "2"), new_event(a, t, "3")};
    append_result_t ok = append_ok(first, 3);
    evs_event_t ev = new_event_v(a, t, "x", 1);
    append_result_t r;
    sync_append(&ev, 1, &r);
    assert_conflict(&r);
    cr_assert_eq(r.err.version, 1);
    cr_assert(r.err.has_current);
    cr_assert_eq(r.err.current_version, 2);
    cr_assert_eq(entity_count(a), 3);
    append_result_free(&ok);
}

Test(append, conflict_on_an_entity_without_events_has_no_current_version) {
    const char *a = name("empty");
    evs_event_t ev = new_event_v(a, name("t"), "x", 1);
    append_result_t r;
    sync_append(&ev, 1, &r);
    assert_conflict(&r);
    cr_assert_str_eq(r.err.entity_id, a);
    cr_assert_eq(r.err.version, 1);
    cr_assert(r.err.has_current);
    cr_assert_eq(r.err.current_version, -1, "no stored version: -1 (nil on the wire)");
    cr_assert_eq(entity_count(a), 0);
}

Test(append, conflict_in_a_later_event_stores_none_of_the_call) {
    const char *a = name("acct"), *t = name("t");
    evs_event_t evs[3] = {new_event(a, t, "1"), new_event(a, t, "2"), new_event_v(a, t, "3", 7)};
    append_result_t r;
    sync_append(evs, 3, &r);
    assert_conflict(&r);
    cr_assert_eq(r.err.version, 7);
    cr_assert_eq(entity_count(a), 0);
    for (int i = 0; i < 3; i++)
        assert_not_stored(evs[i].event_id);
    cr_assert_eq(NCOMMITTED, 0, "the commit listener saw a failed append");
}

Test(append, conflict_on_one_entity_stores_nothing_for_the_others) {
    const char *a = name("a"), *b = name("b"), *c = name("c"), *t = name("t");
    evs_event_t seed = new_event(b, t, "b0");
    append_result_t ok = append_ok(&seed, 1);
    evs_event_t evs[3] = {new_event(a, t, "a0"), new_event_v(b, t, "b?", 0), new_event(c, t, "c0")};
    append_result_t r;
    sync_append(evs, 3, &r);
    assert_conflict(&r);
    cr_assert_str_eq(r.err.entity_id, b);
    cr_assert_eq(r.err.version, 0);
    cr_assert_eq(r.err.current_version, 0);
    cr_assert_eq(entity_count(a), 0);
    cr_assert_eq(entity_count(b), 1);
    cr_assert_eq(entity_count(c), 0);
    append_result_free(&ok);
}

Test(append, same_explicit_version_twice_in_one_call_is_conflict) {
    const char *a = name("acct"), *t = name("t");
    evs_event_t evs[2] = {new_event_v(a, t, "1", 0), new_event_v(a, t, "2", 0)};
    append_result_t r;
    sync_append(evs, 2, &r);
    assert_conflict(&r);
    cr_assert_str_eq(r.err.entity_id, a);
    cr_assert_eq(r.err.version, 0);
    cr_assert_eq(entity_count(a), 0);
}

Test(append, failed_append_leaves_versions_unchanged_for_the_next_one) {
    const char *a = name("acct"), *t = name("t");
    evs_event_t bad[2] = {new_event(a, t, "1"), new_event_v(a, t, "2", 9)};
    append_result_t r;
    sync_append(bad, 2, &r);
    assert_conflict(&r);
    evs_event_t good = new_event_v(a, t, "x", 0);
    append_result_t ok = append_ok(&good, 1);
    cr_assert_eq(ok.versions[0], 0);
    append_result_free(&ok);
}

/* ---------------------------------------------------------------- idempotent retry */

Test(append, retry_with_the_same_event_ids_returns_the_original_results) {
    const char *a = name("a"), *b = name("b"), *t = name("t");
    evs_event_t evs[3] = {new_event(a, t, "1"), new_event(b, t, "2"), new_event(a, t, "3")};
    append_result_t first = append_ok(evs, 3);
    size_t committed = NCOMMITTED;
    append_result_t again = append_ok(evs, 3);
    for (size_t i = 0; i < 3; i++) {
        cr_assert_eq(again.positions[i], first.positions[i], "event %zu", i);
        cr_assert_eq(again.versions[i], first.versions[i], "event %zu", i);
    }
    cr_assert_eq(entity_count(a), 2);
    cr_assert_eq(entity_count(b), 1);
    cr_assert_eq(NCOMMITTED, committed, "a retry must not reach the commit listener again");
    append_result_free(&first);
    append_result_free(&again);
}

Test(append, retry_with_explicit_versions_returns_the_original_results) {
    const char *a = name("a"), *t = name("t");
    evs_event_t evs[2] = {new_event_v(a, t, "1", 0), new_event_v(a, t, "2", 1)};
    append_result_t first = append_ok(evs, 2);
    evs_event_t later = new_event(a, t, "3"); /* the entity moved on since */
    append_result_t mid = append_ok(&later, 1);
    append_result_t again = append_ok(evs, 2);
    cr_assert_eq(again.positions[0], first.positions[0]);
    cr_assert_eq(again.positions[1], first.positions[1]);
    cr_assert_eq(again.versions[1], 1);
    cr_assert_eq(entity_count(a), 3);
    append_result_free(&first);
    append_result_free(&mid);
    append_result_free(&again);
}

Test(append, retry_of_part_of_an_earlier_call_returns_its_results) {
    const char *a = name("a"), *t = name("t");
    evs_event_t evs[3] = {new_event(a, t, "1"), new_event(a, t, "2"), new_event(a, t, "3")};
    append_result_t first = append_ok(evs, 3);
    append_result_t again = append_ok(&evs[1], 1);
    cr_assert_eq(again.positions[0], first.positions[1]);
    cr_assert_eq(again.versions[0], 1);
    cr_assert_eq(entity_count(a), 3);
    append_result_free(&first);
    append_result_free(&again);
}

Test(append, event_id_stored_for_another_entity_is_conflict_naming_it) {
    const char *a = name("a"), *b = name("b"), *t = name("t");
    evs_event_t ev = new_event(a, t, "1");
    append_result_t ok = append_ok(&ev, 1);
    evs_event_t dup = new_event(b, t, "2");
    memcpy(dup.event_id, ev.event_id, 16);
    append_result_t r;
    sync_append(&dup, 1, &r);
    assert_conflict(&r);
    cr_assert(r.err.has_event_id, "the conflict names the event id");
    cr_assert_arr_eq(r.err.event_id, ev.event_id, 16);
    cr_assert_eq(entity_count(b), 0);
    append_result_free(&ok);
}

Test(append, event_id_stored_at_another_version_is_conflict) {
    const char *a = name("a"), *t = name("t");
    evs_event_t ev = new_event(a, t, "1");
    append_result_t ok = append_ok(&ev, 1);
    evs_event_t dup = new_event_v(a, t, "2", 1);
    memcpy(dup.event_id, ev.event_id, 16);
    append_result_t r;
    sync_append(&dup, 1, &r);
    assert_conflict(&r);
    cr_assert(r.err.has_event_id);
    cr_assert_arr_eq(r.err.event_id, ev.event_id, 16);
    cr_assert_eq(entity_count(a), 1);
    append_result_free(&ok);
}

/* Not every event of the call is stored already, so this is no retry; the stored one would land
 * at a new version, which is "stored anywhere else". */
Test(append, stored_event_id_next_to_a_new_one_is_conflict) {
    const char *a = name("a"), *t = name("t");
    evs_event_t ev = new_event(a, t, "1");
    append_result_t ok = append_ok(&ev, 1);
    evs_event_t evs[2] = {ev, new_event(a, t, "2")};
    append_result_t r;
    sync_append(evs, 2, &r);
    assert_conflict(&r);
    cr_assert(r.err.has_event_id);
    cr_assert_arr_eq(r.err.event_id, ev.event_id, 16);
    cr_assert_eq(entity_count(a), 1);
    assert_not_stored(evs[1].event_id);
    append_result_free(&ok);
}

Test(append, same_event_id_twice_in_one_call_is_conflict) {
    const char *a = name("a"), *b = name("b"), *t = name("t");
    evs_event_t evs[2] = {new_event(a, t, "1"), new_event(b, t, "2")};
    memcpy(evs[1].event_id, evs[0].event_id, 16);
    append_result_t r;
    sync_append(evs, 2, &r);
    assert_conflict(&r);
    cr_assert(r.err.has_event_id);
    cr_assert_arr_eq(r.err.event_id, evs[0].event_id, 16);
    cr_assert_eq(entity_count(a), 0);
    cr_assert_eq(entity_count(b), 0);
}

/* A retry repeats a request, whose ids were distinct: the same stored id twice in one call is a
 * duplicate, not a retry, even though each copy alone would be one. */
Test(append, same_stored_event_id_twice_in_one_call_is_conflict) {
    const char *a = name("a"), *t = name("t");
    evs_event_t ev = new_event(a, t, "1");
    append_result_t ok = append_ok(&ev, 1);
    evs_event_t evs[2] = {ev, ev};
    append_result_t r;
    sync_append(evs, 2, &r);
    assert_conflict(&r);
    cr_assert(r.err.has_event_id);
    cr_assert_arr_eq(r.err.event_id, ev.event_id, 16);
    cr_assert_eq(entity_count(a), 1);
    append_result_free(&ok);
}

/* ---------------------------------------------------------------- edges */

Test(append, empty_append_is_ok_with_no_results) {
    append_result_t r;
    cr_assert_eq(sync_append(NULL, 0, &r), 0, "%s", r.err.message);
    cr_assert_eq(r.n, 0);
    cr_assert_eq(COMMIT_CALLS, 0);
    append_result_free(&r);
}

Test(append, names_of_255_bytes_and_multibyte_utf8_are_stored) {
    char entity[256], topic[256];
    size_t plen = strlen(PREFIX);
    memcpy(entity, PREFIX, plen);
    memset(entity + plen, 'e', 255 - plen);
    entity[255] = '\0';
    snprintf(topic, sizeof topic, "%s-caf\xc3\xa9-\xf0\x9f\x98\x80", PREFIX);
    evs_event_t ev = new_event(entity, topic, "x");
    append_result_t ok = append_ok(&ev, 1);
    events_result_t r = entity_events(entity);
    cr_assert_eq(r.n, 1);
    cr_assert_str_eq(r.events[0].entity_id, entity);
    cr_assert_str_eq(r.events[0].topic, topic);
    events_result_free(&r);
    append_result_free(&ok);
}

Test(append, payload_bytes_are_kept_exactly_including_nul_and_empty) {
    const char *a = name("bytes"), *t = name("t");
    static const uint8_t bin[] = {0, 1, 0, 0xff, 0x80, 0xc1, 0};
    evs_event_t evs[2] = {new_event(a, t, ""), new_event(a, t, "")};
    evs[1].payload = (uint8_t *)bin;
    evs[1].payload_len = sizeof bin;
    append_result_t ok = append_ok(evs, 2);
    events_result_t r = entity_events(a);
    cr_assert_eq(r.n, 2);
    cr_assert_eq(r.events[0].payload_len, 0);
    cr_assert_eq(r.events[1].payload_len, sizeof bin);
    cr_assert_arr_eq(r.events[1].payload, bin, sizeof bin);
    events_result_free(&r);
    append_result_free(&ok);
}

/* The store must copy what it keeps: the caller may reuse its buffers as soon as append returns,
 * even if the store finishes later. */
Test(append, arguments_may_be_overwritten_once_append_returns) {
    char *entity = strdup(name("copy")), *topic = strdup(name("t"));
    uint8_t *payload = malloc(64), *meta = malloc(1);
    memset(payload, 'p', 64);
    meta[0] = 0x80;
    evs_event_t *ev = calloc(1, sizeof *ev);
    *ev = new_event(entity, topic, "");
    ev->payload = payload;
    ev->payload_len = 64;
    ev->metadata = meta;
    ev->metadata_len = 1;
    uint8_t id[16];
    memcpy(id, ev->event_id, 16);
    const char *keep_entity = name("copy");

    /* Start the append, then scribble over and free everything before waiting for it. */
    append_result_t r;
    op_t *op = sync_append_start(ev, 1, &r);
    memset(entity, 'X', strlen(entity));
    memset(topic, 'X', strlen(topic));
    memset(payload, 'X', 64);
    meta[0] = 0xc0;
    memset(ev, 0, sizeof *ev);
    free(entity);
    free(topic);
    free(payload);
    free(meta);
    free(ev);
    cr_assert_eq(sync_wait_append(op, &r), 0, "%s", r.err.message);

    events_result_t got;
    cr_assert_eq(sync_get_by_id(id, &got), 0, "%s", got.err.message);
    cr_assert_str_eq(got.events[0].entity_id, keep_entity);
    cr_assert_eq(got.events[0].payload_len, 64);
    for (int i = 0; i < 64; i++)
        cr_assert_eq(got.events[0].payload[i], 'p');
    cr_assert_eq(got.events[0].metadata_len, 1);
    cr_assert_eq(got.events[0].metadata[0], 0x80);
    events_result_free(&got);
    append_result_free(&r);
}
