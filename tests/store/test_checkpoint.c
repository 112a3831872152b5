/* test_checkpoint.c: the store conformance suite, consumers' checkpoints and appends with a
 * tracking (docs/protocol.md, "Consumers"). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "sync.h"

TestSuite(checkpoint, .init = store_setup, .fini = store_teardown, .timeout = 60);

/* Appends n events to a fresh entity and returns their positions (n <= 8). */
static void source_positions(const char *suffix, size_t n, uint64_t *positions) {
    const char *e = name(suffix), *t = name("src");
    evs_event_t evs[8];
    for (size_t i = 0; i < n; i++)
        evs[i] = new_event(e, t, "x");
    append_result_t ok = append_ok(evs, n);
    memcpy(positions, ok.positions, n * sizeof *positions);
    append_result_free(&ok);
}

/* A position no test reaches: far above any head. */
#define FAR_AWAY (UINT64_C(1) << 60)

Test(checkpoint, a_consumer_without_checkpoint_is_at_zero) {
    cr_assert_eq(sync_get_checkpoint(name("nobody")), 0);
}

Test(checkpoint, stores_and_moves_forward) {
    uint64_t p[3], out = 0;
    source_positions("s", 3, p);
    const char *c = name("c");
    cr_assert_eq(sync_checkpoint(c, p[0], &out, NULL), 0);
    cr_assert_eq(out, p[0]);
    cr_assert_eq(sync_get_checkpoint(c), p[0]);
    cr_assert_eq(sync_checkpoint(c, p[0], &out, NULL), 0, "the same position again is ok");
    cr_assert_eq(sync_checkpoint(c, p[2], &out, NULL), 0);
    cr_assert_eq(sync_get_checkpoint(c), p[2]);
}

Test(checkpoint, a_lower_position_is_a_conflict_naming_the_stored_one) {
    uint64_t p[2];
    source_positions("s", 2, p);
    const char *c = name("c");
    cr_assert_eq(sync_checkpoint(c, p[1], NULL, NULL), 0);
    codec_error_t err;
    cr_assert_eq(sync_checkpoint(c, p[0], NULL, &err), EVS_ECONFLICT);
    cr_assert(err.has_position);
    cr_assert_eq(err.position, p[1]);
    cr_assert_not(err.has_tracking);
    cr_assert_eq(sync_get_checkpoint(c), p[1]);
}

Test(checkpoint, a_position_above_the_head_is_a_bad_request) {
    uint64_t p[1];
    source_positions("s", 1, p);
    const char *c = name("c");
    codec_error_t err;
    cr_assert_eq(sync_checkpoint(c, FAR_AWAY, NULL, &err), EVS_EBAD_REQUEST);
    cr_assert_eq(sync_get_checkpoint(c), 0);
}

Test(checkpoint, delete_removes_it_and_counts) {
    uint64_t p[2], count = 9;
    source_positions("s", 2, p);
    const char *c = name("c");
    cr_assert_eq(sync_checkpoint(c, p[1], NULL, NULL), 0);
    cr_assert_eq(sync_delete_checkpoint(c, &count), 0);
    cr_assert_eq(count, 1);
    cr_assert_eq(sync_get_checkpoint(c), 0);
    cr_assert_eq(sync_delete_checkpoint(c, &count), 0);
    cr_assert_eq(count, 0);
    cr_assert_eq(sync_checkpoint(c, p[0], NULL, NULL), 0, "after a delete it may start lower");
    cr_assert_eq(sync_get_checkpoint(c), p[0]);
}

Test(checkpoint, consumers_lists_each_with_its_position_and_the_head) {
    uint64_t p[2];
    source_positions("s", 2, p);
    const char *b = name("b"), *a = name("a");
    cr_assert_eq(sync_checkpoint(b, p[1], NULL, NULL), 0);
    cr_assert_eq(sync_checkpoint(a, p[0], NULL, NULL), 0);
    consumers_result_t r;
    cr_assert_eq(sync_consumers(&r), 0);
    cr_assert_eq(r.n, 2);
    cr_assert_str_eq(r.names[0], a, "in name order");
    cr_assert_eq(r.positions[0], p[0]);
    cr_assert_str_eq(r.names[1], b);
    cr_assert_eq(r.positions[1], p[1]);
    cr_assert_geq(r.head, p[1]);
    cr_assert_not(r.active[0]);
    consumers_result_free(&r);
}

Test(checkpoint, append_with_tracking_stores_events_and_checkpoint_together) {
    uint64_t p[1];
    source_positions("s", 1, p);
    const char *c = name("pm"), *e = name("out"), *t = name("t");
    evs_event_t evs[2] = {new_event(e, t, "0"), new_event(e, t, "1")};
    store_tracking_t tr = {.consumer = c, .position = p[0]};
    append_result_t r;
    cr_assert_eq(sync_append_tracked(evs, 2, &tr, &r), 0, "%s", r.err.message);
    cr_assert_eq(r.n, 2);
    cr_assert_gt(r.positions[0], p[0]);
    cr_assert_eq(entity_count(e), 2);
    cr_assert_eq(sync_get_checkpoint(c), p[0]);
    append_result_free(&r);
}

Test(checkpoint, a_tracking_at_or_below_the_checkpoint_is_a_conflict_and_stores_nothing) {
    uint64_t p[2];
    source_positions("s", 2, p);
    const char *c = name("pm"), *e = name("out"), *t = name("t");
    cr_assert_eq(sync_checkpoint(c, p[1], NULL, NULL), 0);
    size_t committed = NCOMMITTED;
    for (int k = 0; k < 2; k++) {
        evs_event_t ev = new_event(e, t, "effect");
        store_tracking_t tr = {.consumer = c, .position = p[k]};
        append_result_t r;
        cr_assert_eq(sync_append_tracked(&ev, 1, &tr, &r), EVS_ECONFLICT, "tracking %d", k);
        cr_assert(r.err.has_tracking);
        cr_assert(r.err.has_position);
        cr_assert_eq(r.err.position, p[1]);
        append_result_free(&r);
    }
    cr_assert_eq(entity_count(e), 0);
    cr_assert_eq(NCOMMITTED, committed, "a refused tracking reached the commit listener");
    cr_assert_eq(sync_get_checkpoint(c), p[1]);
}

Test(checkpoint, the_retry_of_a_tracked_append_gets_its_original_answer) {
    uint64_t p[1];
    source_positions("s", 1, p);
    const char *c = name("pm"), *e = name("out"), *t = name("t");
    evs_event_t evs[2] = {new_event(e, t, "0"), new_event(e, t, "1")};
    store_tracking_t tr = {.consumer = c, .position = p[0]};
    append_result_t first, again;
    cr_assert_eq(sync_append_tracked(evs, 2, &tr, &first), 0);
    cr_assert_eq(sync_append_tracked(evs, 2, &tr, &again), 0, "%s", again.err.message);
    cr_assert_eq(again.n, 2);
    cr_assert_eq(again.positions[0], first.positions[0]);
    cr_assert_eq(again.positions[1], first.positions[1]);
    cr_assert_eq(again.versions[1], first.versions[1]);
    cr_assert_eq(entity_count(e), 2);
    append_result_free(&first);
    append_result_free(&again);
}

Test(checkpoint, stored_events_under_a_newer_tracking_are_no_retry) {
    uint64_t p[2];
    source_positions("s", 2, p);
    const char *c = name("pm"), *e = name("out"), *t = name("t");
    evs_event_t ev = new_event(e, t, "0");
    append_result_t plain = append_ok(&ev, 1);
    store_tracking_t tr = {.consumer = c, .position = p[1]};
    append_result_t r;
    cr_assert_eq(sync_append_tracked(&ev, 1, &tr, &r), EVS_ECONFLICT,
                 "events stored without this tracking were taken for its retry");
    cr_assert_not(r.err.has_tracking);
    cr_assert(r.err.has_event_id);
    cr_assert_eq(sync_get_checkpoint(c), 0);
    append_result_free(&r);
    append_result_free(&plain);
}

Test(checkpoint, an_append_without_events_stores_just_the_checkpoint) {
    uint64_t p[1];
    source_positions("s", 1, p);
    const char *c = name("pm");
    store_tracking_t tr = {.consumer = c, .position = p[0]};
    append_result_t r;
    cr_assert_eq(sync_append_tracked(NULL, 0, &tr, &r), 0, "%s", r.err.message);
    cr_assert_eq(r.n, 0);
    cr_assert_eq(sync_get_checkpoint(c), p[0]);
    append_result_free(&r);
    cr_assert_eq(sync_append_tracked(NULL, 0, &tr, &r), EVS_ECONFLICT);
    cr_assert(r.err.has_tracking);
    append_result_free(&r);
}

Test(checkpoint, a_rejected_append_leaves_the_checkpoint) {
    uint64_t p[1];
    source_positions("s", 1, p);
    const char *c = name("pm"), *e = name("out"), *t = name("t");
    evs_event_t ev = new_event_v(e, t, "0", 5);
    store_tracking_t tr = {.consumer = c, .position = p[0]};
    append_result_t r;
    cr_assert_eq(sync_append_tracked(&ev, 1, &tr, &r), EVS_ECONFLICT);
    cr_assert_not(r.err.has_tracking);
    cr_assert(r.err.has_entity);
    cr_assert_eq(sync_get_checkpoint(c), 0);
    append_result_free(&r);
}

Test(checkpoint, tracking_positions_must_be_stored_ones) {
    const char *c = name("pm"), *e = name("out"), *t = name("t");
    uint64_t bad[2] = {0, FAR_AWAY};
    for (int k = 0; k < 2; k++) {
        evs_event_t ev = new_event(e, t, "0");
        store_tracking_t tr = {.consumer = c, .position = bad[k]};
        append_result_t r;
        cr_assert_eq(sync_append_tracked(&ev, 1, &tr, &r), EVS_EBAD_REQUEST, "position %d", k);
        append_result_free(&r);
    }
    cr_assert_eq(entity_count(e), 0);
}

Test(checkpoint, concurrent_trackings_are_decided_in_arrival_order) {
    uint64_t p[2];
    source_positions("s", 2, p);
    const char *c = name("pm"), *t = name("t");
    const char *ents[4] = {name("o0"), name("o1"), name("o2"), name("o3")};
    /* p0 ok; p0 again: processed before; p1 ok; p1 again: processed before. */
    uint64_t track[4] = {p[0], p[0], p[1], p[1]};
    int expect[4] = {0, EVS_ECONFLICT, 0, EVS_ECONFLICT};
    evs_event_t evs[4];
    store_tracking_t tr[4];
    append_result_t r[4];
    op_t *ops[4];
    for (int k = 0; k < 4; k++) {
        evs[k] = new_event(ents[k], t, "effect");
        tr[k] = (store_tracking_t){.consumer = c, .position = track[k]};
        ops[k] = sync_append_tracked_start(&evs[k], 1, &tr[k], &r[k]);
    }
    for (int k = 0; k < 4; k++) {
        cr_assert_eq(sync_wait_append(ops[k], &r[k]), expect[k], "append %d: %s", k,
                     r[k].err.message);
        cr_assert_eq(entity_count(ents[k]), expect[k] == 0 ? 1 : 0);
        append_result_free(&r[k]);
    }
    cr_assert_eq(sync_get_checkpoint(c), p[1]);
}
