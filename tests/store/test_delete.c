/* test_delete.c: the store conformance suite, delete_entity (optional in the interface: a store
 * without it skips these tests). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "sync.h"

TestSuite(delete, .init = store_setup, .fini = store_teardown, .timeout = 60);

Test(delete, removes_every_event_of_the_entity_and_counts_them) {
    need_delete();
    const char *a = name("a"), *t = name("t");
    evs_event_t evs[3] = {new_event(a, t, "0"), new_event(a, t, "1"), new_event(a, t, "2")};
    append_result_t ok = append_ok(evs, 3);
    cr_assert_eq(delete_ok(a), 3);
    cr_assert_eq(entity_count(a), 0);
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
