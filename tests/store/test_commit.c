/* test_commit.c: the store conformance suite, the commit listener. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "sync.h"

TestSuite(commit, .init = store_setup, .fini = store_teardown, .timeout = 60);

Test(commit, listener_sees_committed_events_in_position_order) {
    const char *a = name("a"), *b = name("b"), *t = name("t");
    evs_event_t evs[3] = {new_event(a, t, "a0"), new_event(b, t, "b0"), new_event(a, t, "a1")};
    int64_t before = wall_us();
    append_result_t r1 = append_ok(evs, 3);
    evs_event_t more[2] = {new_event(b, t, "b1"), new_event(a, t, "a2")};
    append_result_t r2 = append_ok(more, 2);
    int64_t after = wall_us();

    cr_assert_eq(NCOMMITTED, 5);
    const uint64_t want_pos[5] = {r1.positions[0], r1.positions[1], r1.positions[2],
                                  r2.positions[0], r2.positions[1]};
    const evs_event_t *want[5] = {&evs[0], &evs[1], &evs[2], &more[0], &more[1]};
    const uint64_t want_ver[5] = {0, 0, 1, 1, 2};
    for (size_t i = 0; i < 5; i++) {
        const evs_event_t *ev = &COMMITTED[i];
        cr_assert_eq(ev->position, want_pos[i], "event %zu", i);
        cr_assert_eq(ev->version, want_ver[i], "event %zu", i);
        cr_assert_arr_eq(ev->event_id, want[i]->event_id, 16, "event %zu", i);
        cr_assert_str_eq(ev->entity_id, want[i]->entity_id);
        cr_assert_str_eq(ev->topic, t);
        cr_assert_eq(ev->payload_len, 2);
        cr_assert_arr_eq(ev->payload, want[i]->payload, 2);
        cr_assert_geq(ev->timestamp, before - 5000000, "event %zu has no timestamp", i);
        cr_assert_leq(ev->timestamp, after + 5000000, "event %zu", i);
    }
    append_result_free(&r1);
    append_result_free(&r2);
}

/* The listener runs before the append's callback, so that a subscriber hears of an event no
 * later than its writer. */
Test(commit, listener_runs_before_the_append_callback) {
    const char *a = name("a"), *t = name("t");
    evs_event_t evs[2] = {new_event(a, t, "x"), new_event(a, t, "y")};
    append_result_t r1 = append_ok(evs, 2);
    cr_assert_eq(r1.committed_seen, 2, "the append callback ran before the commit listener");
    evs_event_t ev = new_event(a, t, "z");
    append_result_t r2 = append_ok(&ev, 1);
    cr_assert_eq(r2.committed_seen, 3, "the append callback ran before the commit listener");
    append_result_free(&r1);
    append_result_free(&r2);
}

Test(commit, failed_append_does_not_reach_the_listener) {
    const char *a = name("a"), *t = name("t");
    evs_event_t ok = new_event(a, t, "x");
    append_result_t r1 = append_ok(&ok, 1);
    evs_event_t bad[2] = {new_event(a, t, "y"), new_event_v(a, t, "z", 0)};
    append_result_t r2;
    cr_assert_eq(sync_append(bad, 2, &r2), EVS_ECONFLICT);
    evs_event_t dup = new_event(name("b"), t, "d");
    memcpy(dup.event_id, ok.event_id, 16);
    cr_assert_eq(sync_append(&dup, 1, &r2), EVS_ECONFLICT);
    cr_assert_eq(NCOMMITTED, 1, "the listener saw events of failed appends");
    cr_assert_eq(COMMIT_CALLS, 1);
    append_result_free(&r1);
}

Test(commit, listener_gets_every_event_of_an_append) {
    const char *a = name("a"), *t = name("t");
    evs_event_t evs[4] = {new_event(a, t, "0"), new_event(a, t, "1"), new_event(a, t, "2"),
                          new_event(a, t, "3")};
    append_result_t r = append_ok(evs, 4);
    cr_assert_eq(NCOMMITTED, 4);
    cr_assert_geq(COMMIT_CALLS, 1);
    for (size_t i = 0; i < 4; i++)
        cr_assert_eq(COMMITTED[i].position, r.positions[i]);
    append_result_free(&r);
}

/* Once an append has succeeded the listener hears of every commit above live_head (where a
 * subscription without "after" starts), and the append's events are above it. */
Test(commit, an_append_that_succeeded_is_above_the_live_head) {
    const char *a = name("a"), *t = name("t");
    evs_event_t ev = new_event(a, t, "x");
    append_result_t r = append_ok(&ev, 1);
    cr_assert(S->live_ready, "an append succeeded but the store is not live");
    cr_assert_gt(r.positions[0], S->live_head, "position %llu is at or below live_head %llu",
                 (unsigned long long)r.positions[0], (unsigned long long)S->live_head);
    append_result_free(&r);
}
