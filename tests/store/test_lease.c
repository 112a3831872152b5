/* test_lease.c: the store conformance suite, consumers' leases and their fencing numbers. */
#include <criterion/criterion.h>
#include <string.h>

#include "../common/clock.h"
#include "sync.h"

TestSuite(lease, .init = store_setup, .fini = store_teardown, .timeout = 60);

Test(lease, one_holder_at_a_time_and_the_fence_grows) {
    const char *c = name("c");
    uint64_t f1 = 0, f2 = 0, f3 = 0;
    cr_assert(sync_lease(c, 0, 60000, &f1));
    cr_assert_gt(f1, 0);
    cr_assert_not(sync_lease(c, 0, 60000, &f2), "a held lease was taken");
    cr_assert(sync_lease(c, f1, 60000, &f2), "the holder cannot renew");
    cr_assert_eq(f2, f1, "a renewal changed the fence");
    cr_assert_eq(sync_lease_release(c, f1), 1);
    cr_assert(sync_lease(c, 0, 60000, &f3), "a released lease cannot be taken");
    cr_assert_gt(f3, f1);
    cr_assert_not(sync_lease(c, f1, 60000, NULL), "the old holder renewed a taken lease");
    cr_assert_eq(sync_lease_release(c, f1), 0, "the old holder released the new one's lease");
}

Test(lease, an_expired_lease_is_taken_over) {
    const char *c = name("c");
    uint64_t f1 = 0, f2 = 0;
    cr_assert(sync_lease(c, 0, 50, &f1));
    int64_t deadline = now_ms() + 5000;
    bool taken = false;
    while (!taken && now_ms() < deadline)
        taken = sync_lease(c, 0, 60000, &f2);
    cr_assert(taken, "an expired lease was not taken over within 5 s");
    cr_assert_gt(f2, f1);
}

Test(lease, checkpoints_under_a_lost_lease_are_refused) {
    const char *c = name("c"), *e = name("out"), *t = name("t");
    evs_event_t src[2] = {new_event(name("s"), t, "0"), new_event(name("s"), t, "1")};
    append_result_t ok = append_ok(src, 2);
    uint64_t f1 = 0, f2 = 0;
    cr_assert(sync_lease(c, 0, 60000, &f1));
    cr_assert_eq(sync_checkpoint_fenced(c, ok.positions[0], f1, NULL, NULL), 0);
    cr_assert_eq(sync_lease_release(c, f1), 1);
    cr_assert(sync_lease(c, 0, 60000, &f2));
    codec_error_t err;
    cr_assert_eq(sync_checkpoint_fenced(c, ok.positions[1], f1, NULL, &err), EVS_ECONFLICT);
    evs_event_t ev = new_event(e, t, "effect");
    store_tracking_t tr = {.consumer = c, .position = ok.positions[1], .fence = f1};
    append_result_t r;
    cr_assert_eq(sync_append_tracked(&ev, 1, &tr, &r), EVS_ECONFLICT);
    append_result_free(&r);
    cr_assert_eq(entity_count(e), 0);
    cr_assert_eq(sync_get_checkpoint(c), ok.positions[0]);
    cr_assert_eq(sync_checkpoint_fenced(c, ok.positions[1], f2, NULL, NULL), 0,
                 "the new holder is refused");
    consumers_result_t list;
    cr_assert_eq(sync_consumers(&list), 0);
    cr_assert_eq(list.n, 1);
    cr_assert(list.active[0], "a held lease is not shown active");
    consumers_result_free(&list);
    append_result_free(&ok);
}
