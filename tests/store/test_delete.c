/* test_delete.c: the store conformance suite, delete_entity and snapshots (both optional in
 * the interface: a store without them skips these tests). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "sync.h"

TestSuite(delete, .init = store_setup, .fini = store_teardown, .timeout = 60);
TestSuite(snapshot, .init = store_setup, .fini = store_teardown, .timeout = 60);

static void need_delete(void) {
    if (!S->ops->delete_entity) cr_skip("store %s has no delete_entity", S->ops->name);
}

static void need_snapshots(void) {
    if (!S->ops->put_snapshot || !S->ops->get_snapshot)
        cr_skip("store %s has no snapshots", S->ops->name);
}

static uint64_t delete_ok(const char *entity) {
    uint64_t count = 12345;
    codec_error_t err;
    int rc = sync_delete_entity(entity, &count, &err);
    cr_assert_eq(rc, 0, "delete_entity: %s (%s)", evs_code_name(rc), err.message);
    return count;
}

static size_t count_of(const char *entity) {
    events_result_t r = entity_events(entity);
    size_t n = r.n;
    events_result_free(&r);
    return n;
}

/* ---------------------------------------------------------------- delete_entity */

Test(delete, removes_every_event_of_the_entity_and_counts_them) {
    need_delete();
    const char *a = name("a"), *t = name("t");
    evs_event_t evs[3] = {new_event(a, t, "0"), new_event(a, t, "1"), new_event(a, t, "2")};
    append_result_t ok = append_ok(evs, 3);
    cr_assert_eq(delete_ok(a), 3);
    cr_assert_eq(count_of(a), 0);
    events_result_t r;
    cr_assert_eq(sync_get_by_entity(a, UINT64_MAX, STORE_DEFAULT_LIMIT, true, &r), 0);
    cr_assert_eq(r.n, 0, "backwards read still sees deleted events");
    events_result_free(&r);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(sync_get_by_id(evs[i].event_id, &r), EVS_ENOT_FOUND,
                     "deleted event %d still found by id", i);
        events_result_free(&r);
    }
    append_result_free(&ok);
}

Test(delete, deleted_events_leave_reads_of_the_log) {
    need_delete();
    const char *a = name("a"), *b = name("b"), *t = name("t");
    evs_event_t evs[4] = {new_event(a, t, "a0"), new_event(b, t, "b0"), new_event(a, t, "a1"),
                          new_event(b, t, "b1")};
    append_result_t ok = append_ok(evs, 4);
    cr_assert_eq(delete_ok(a), 2);
    const char *topics[] = {t};
    store_read_t q = {.after = 0, .limit = STORE_DEFAULT_LIMIT, .topics = topics, .ntopics = 1};
    events_result_t r;
    cr_assert_eq(sync_read(&q, &r), 0);
    cr_assert_eq(r.n, 2, "the topic still shows %zu events", r.n);
    cr_assert_eq(r.events[0].position, ok.positions[1]);
    cr_assert_eq(r.events[1].position, ok.positions[3]);
    events_result_free(&r);
    store_read_t qp = {.after = 0, .limit = STORE_DEFAULT_LIMIT, .entity_prefix = PREFIX};
    cr_assert_eq(sync_read(&qp, &r), 0);
    cr_assert_eq(r.n, 2);
    events_result_free(&r);
    append_result_free(&ok);
}

Test(delete, other_entities_are_untouched) {
    need_delete();
    const char *a = name("a"), *a1 = name("a1"), *b = name("b"), *t = name("t");
    evs_event_t evs[4] = {new_event(a, t, "0"), new_event(a1, t, "0"), new_event(b, t, "0"),
                          new_event(a, t, "1")};
    append_result_t ok = append_ok(evs, 4);
    cr_assert_eq(delete_ok(a), 2);
    events_result_t r = entity_events(a1);
    cr_assert_eq(r.n, 1);
    cr_assert_eq(r.events[0].position, ok.positions[1]);
    events_result_free(&r);
    r = entity_events(b);
    cr_assert_eq(r.n, 1);
    cr_assert_eq(r.events[0].position, ok.positions[2]);
    events_result_free(&r);
    cr_assert_eq(sync_get_by_id(evs[2].event_id, &r), 0);
    events_result_free(&r);
    append_result_free(&ok);
}

Test(delete, entity_starts_again_at_version_zero_with_new_positions) {
    need_delete();
    const char *a = name("a"), *t = name("t");
    evs_event_t evs[2] = {new_event(a, t, "old0"), new_event(a, t, "old1")};
    append_result_t old = append_ok(evs, 2);
    cr_assert_eq(delete_ok(a), 2);
    evs_event_t again[2] = {new_event_v(a, t, "new0", 0), new_event(a, t, "new1")};
    append_result_t ok = append_ok(again, 2);
    cr_assert_eq(ok.versions[0], 0);
    cr_assert_eq(ok.versions[1], 1);
    cr_assert_gt(ok.positions[0], old.positions[1], "a deleted event's position was reused");
    events_result_t r = entity_events(a);
    cr_assert_eq(r.n, 2);
    cr_assert_eq(r.events[0].payload_len, 4);
    cr_assert_arr_eq(r.events[0].payload, "new0", 4);
    events_result_free(&r);
    append_result_free(&old);
    append_result_free(&ok);
}

Test(delete, version_conflicts_count_from_the_restart) {
    need_delete();
    const char *a = name("a"), *t = name("t");
    evs_event_t evs[3] = {new_event(a, t, "0"), new_event(a, t, "1"), new_event(a, t, "2")};
    append_result_t old = append_ok(evs, 3);
    delete_ok(a);
    evs_event_t stale = new_event_v(a, t, "x", 3);
    append_result_t r;
    cr_assert_eq(sync_append(&stale, 1, &r), EVS_ECONFLICT);
    cr_assert(r.err.has_current);
    cr_assert_eq(r.err.current_version, -1, "a deleted entity has no current version");
    append_result_free(&old);
}

Test(delete, unknown_entity_deletes_nothing) {
    need_delete();
    cr_assert_eq(delete_ok(name("nobody")), 0);
}

Test(delete, second_delete_counts_zero) {
    need_delete();
    const char *a = name("a");
    evs_event_t ev = new_event(a, name("t"), "x");
    append_result_t ok = append_ok(&ev, 1);
    cr_assert_eq(delete_ok(a), 1);
    cr_assert_eq(delete_ok(a), 0);
    append_result_free(&ok);
}

Test(delete, deleting_does_not_reach_the_commit_listener) {
    need_delete();
    const char *a = name("a");
    evs_event_t ev = new_event(a, name("t"), "x");
    append_result_t ok = append_ok(&ev, 1);
    size_t calls = COMMIT_CALLS;
    delete_ok(a);
    cr_assert_eq(COMMIT_CALLS, calls);
    append_result_free(&ok);
}

/* ---------------------------------------------------------------- snapshots */

static void put_ok(const char *entity, uint64_t version, const char *topic, const char *payload) {
    store_snapshot_t snap = {.entity_id = entity,
                             .version = version,
                             .topic = topic,
                             .payload = (const uint8_t *)payload,
                             .payload_len = strlen(payload)};
    codec_error_t err;
    int rc = sync_put_snapshot(&snap, &err);
    cr_assert_eq(rc, 0, "put_snapshot: %s (%s)", evs_code_name(rc), err.message);
}

static void assert_snapshot(const char *entity, uint64_t max, uint64_t version,
                            const char *payload) {
    snapshot_result_t r;
    int rc = sync_get_snapshot(entity, max, &r);
    cr_assert_eq(rc, 0, "get_snapshot(%llu): %s (%s)", (unsigned long long)max, evs_code_name(rc),
                 r.err.message);
    cr_assert_eq(r.version, version, "get_snapshot(%llu) gave version %llu",
                 (unsigned long long)max, (unsigned long long)r.version);
    cr_assert_eq(r.payload_len, strlen(payload));
    cr_assert_arr_eq(r.payload, payload, r.payload_len);
    snapshot_result_free(&r);
}

static void assert_no_snapshot(const char *entity, uint64_t max) {
    snapshot_result_t r;
    int rc = sync_get_snapshot(entity, max, &r);
    cr_assert_eq(rc, EVS_ENOT_FOUND, "get_snapshot(%llu): %s", (unsigned long long)max,
                 evs_code_name(rc));
    snapshot_result_free(&r);
}

Test(snapshot, newest_at_or_below_the_version_asked) {
    need_snapshots();
    const char *a = name("a"), *t = name("state");
    put_ok(a, 7, t, "seven");
    put_ok(a, 3, t, "three");
    assert_snapshot(a, UINT64_MAX, 7, "seven");
    assert_snapshot(a, 10, 7, "seven");
    assert_snapshot(a, 7, 7, "seven");
    assert_snapshot(a, 6, 3, "three");
    assert_snapshot(a, 3, 3, "three");
    assert_no_snapshot(a, 2);
}

Test(snapshot, fields_round_trip_with_a_timestamp) {
    need_snapshots();
    const char *a = name("a"), *t = name("state.v2");
    int64_t before = wall_us();
    put_ok(a, 0, t, "");
    int64_t after = wall_us();
    snapshot_result_t r;
    cr_assert_eq(sync_get_snapshot(a, 0, &r), 0);
    cr_assert_eq(r.version, 0);
    cr_assert_str_eq(r.topic, t);
    cr_assert_eq(r.payload_len, 0);
    cr_assert_geq(r.timestamp, before - 5000000);
    cr_assert_leq(r.timestamp, after + 5000000);
    snapshot_result_free(&r);
}

Test(snapshot, same_version_replaces) {
    need_snapshots();
    const char *a = name("a"), *t = name("state");
    put_ok(a, 4, t, "first");
    put_ok(a, 4, t, "second");
    assert_snapshot(a, 4, 4, "second");
}

Test(snapshot, unknown_entity_is_not_found) {
    need_snapshots();
    assert_no_snapshot(name("nobody"), UINT64_MAX);
}

Test(snapshot, are_per_entity) {
    need_snapshots();
    const char *a = name("a"), *b = name("b"), *t = name("state");
    put_ok(a, 1, t, "a1");
    put_ok(b, 5, t, "b5");
    assert_snapshot(a, UINT64_MAX, 1, "a1");
    assert_snapshot(b, UINT64_MAX, 5, "b5");
}

Test(snapshot, are_not_events) {
    need_snapshots();
    const char *a = name("a");
    put_ok(a, 0, name("state"), "s");
    cr_assert_eq(COMMIT_CALLS, 0, "a snapshot reached the commit listener");
    cr_assert_eq(count_of(a), 0, "a snapshot shows up as an event");
}

Test(snapshot, delete_entity_drops_them) {
    need_snapshots();
    need_delete();
    const char *a = name("a"), *b = name("b"), *t = name("state");
    evs_event_t ev = new_event(a, name("t"), "x");
    append_result_t ok = append_ok(&ev, 1);
    put_ok(a, 0, t, "a0");
    put_ok(b, 0, t, "b0");
    delete_ok(a);
    assert_no_snapshot(a, UINT64_MAX);
    assert_snapshot(b, UINT64_MAX, 0, "b0");
    append_result_free(&ok);
}
