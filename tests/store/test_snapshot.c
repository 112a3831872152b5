/* test_snapshot.c: the store conformance suite, snapshots (optional in the interface: a store
 * without them skips these tests). */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sync.h"

TestSuite(snapshot, .init = store_setup, .fini = store_teardown, .timeout = 60);

static void need_snapshots(void) {
    if (!S->ops->put_snapshot || !S->ops->get_snapshot)
        cr_skip("store %s has no snapshots", S->ops->name);
}

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
    cr_assert_eq(entity_count(a), 0, "a snapshot shows up as an event");
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

Test(snapshot, delete_snapshots_removes_one_entitys_snapshots_and_keeps_its_events) {
    need_snapshots();
    if (!S->ops->delete_snapshots) cr_skip("store %s cannot delete snapshots", S->ops->name);
    const char *a = name("a"), *b = name("b"), *t = name("state");
    evs_event_t ev[2] = {new_event(a, t, "e0"), new_event(a, t, "e1")};
    append_result_t ar = append_ok(ev, 2);
    append_result_free(&ar);
    put_ok(a, 1, t, "one");
    put_ok(a, 2, t, "two");
    put_ok(b, 1, t, "b-one");

    uint64_t count = 99;
    codec_error_t err;
    int rc = sync_delete_snapshots(a, &count, &err);
    cr_assert_eq(rc, 0, "delete_snapshots: %s (%s)", evs_code_name(rc), err.message);
    cr_assert_eq(count, 2, "both snapshots of a counted, got %llu", (unsigned long long)count);
    assert_no_snapshot(a, UINT64_MAX);
    assert_snapshot(b, UINT64_MAX, 1, "b-one");
    cr_assert_eq(entity_count(a), 2, "the events of a stay");

    cr_assert_eq(sync_delete_snapshots(a, &count, &err), 0);
    cr_assert_eq(count, 0, "nothing left to delete");
    cr_assert_eq(sync_delete_snapshots(name("never"), &count, &err), 0);
    cr_assert_eq(count, 0);
    put_ok(a, 2, t, "again");
    assert_snapshot(a, UINT64_MAX, 2, "again");
}
