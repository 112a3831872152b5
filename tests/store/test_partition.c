/* test_partition.c: the store conformance suite, partitioned reads of the global log
 * (docs/protocol.md, "Partitions"). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sync.h"

TestSuite(partition, .init = store_setup, .fini = store_teardown, .timeout = 300);

Test(partition, the_hash_is_fnv1a_64_of_the_entity_id) {
    /* Test vectors of FNV-1a 64 (the empty string is the offset basis). */
    cr_assert_eq(evs_partition_hash(""), UINT64_C(0xcbf29ce484222325));
    cr_assert_eq(evs_partition_hash("a"), UINT64_C(0xaf63dc4c8601ec8c));
    cr_assert_eq(evs_partition_hash("foobar"), UINT64_C(0x85944171f73967e8));
}

enum { NEVENTS = 10000, NENTITIES = 1000, BATCH = 1000 };

/* Reads partition index of count, page by page with the test's prefix, into seen[position -
 * first] (counting), checking that every event is in the partition and that no page is empty
 * before the end. Returns the number of events read. */
static size_t read_partition(uint32_t index, uint32_t count, uint64_t first, uint8_t *seen) {
    uint64_t after = first - 1;
    size_t total = 0;
    for (;;) {
        store_read_t q = {.after = after,
                          .limit = 700,
                          .entity_prefix = PREFIX,
                          .partition_count = count,
                          .partition_index = index};
        events_result_t r;
        cr_assert_eq(sync_read(&q, &r), 0, "%s", r.err.message);
        if (r.n == 0) {
            events_result_free(&r);
            return total;
        }
        for (size_t k = 0; k < r.n; k++) {
            const evs_event_t *ev = &r.events[k];
            cr_assert_eq(evs_partition_hash(ev->entity_id) % count, index,
                         "%s is not in partition %u of %u", ev->entity_id, index, count);
            cr_assert_gt(ev->position, after, "out of order");
            after = ev->position;
            seen[ev->position - first]++;
            total++;
        }
        events_result_free(&r);
    }
}

Test(partition, partitions_of_1_2_and_7_are_disjoint_and_complete) {
    const char *entities[NENTITIES], *t = name("t");
    for (int e = 0; e < NENTITIES; e++) {
        char suffix[16];
        snprintf(suffix, sizeof suffix, "e%d", e);
        entities[e] = name(suffix);
    }
    static evs_event_t evs[BATCH];
    static uint64_t positions[NEVENTS];
    for (int b = 0; b < NEVENTS / BATCH; b++) {
        for (int k = 0; k < BATCH; k++)
            evs[k] = new_event(entities[(b * BATCH + k) * 7 % NENTITIES], t, "x");
        append_result_t ok = append_ok(evs, BATCH);
        memcpy(positions + b * BATCH, ok.positions, BATCH * sizeof *positions);
        append_result_free(&ok);
    }
    uint64_t first = positions[0], last = positions[NEVENTS - 1];
    size_t span = (size_t)(last - first + 1);
    uint8_t *seen = malloc(span);
    cr_assert_not_null(seen);
    const uint32_t counts[3] = {1, 2, 7};
    for (int c = 0; c < 3; c++) {
        memset(seen, 0, span);
        size_t total = 0;
        for (uint32_t i = 0; i < counts[c]; i++)
            total += read_partition(i, counts[c], first, seen);
        cr_assert_eq(total, NEVENTS, "%u partitions hold %zu events", counts[c], total);
        for (int k = 0; k < NEVENTS; k++)
            cr_assert_eq(seen[positions[k] - first], 1, "position %llu seen %d times in %u",
                         (unsigned long long)positions[k], seen[positions[k] - first], counts[c]);
    }
    free(seen);
}

Test(partition, a_partitioned_read_combines_with_topics) {
    const char *a = name("a"), *b = name("b"), *t1 = name("t1"), *t2 = name("t2");
    evs_event_t evs[4] = {new_event(a, t1, "0"), new_event(b, t1, "1"), new_event(a, t2, "2"),
                          new_event(b, t2, "3")};
    append_result_t ok = append_ok(evs, 4);
    uint32_t pa = (uint32_t)(evs_partition_hash(a) % 64);
    const char *topics[] = {t1};
    store_read_t q = {.after = ok.positions[0] - 1,
                      .limit = 100,
                      .topics = topics,
                      .ntopics = 1,
                      .entity_prefix = PREFIX,
                      .partition_count = 64,
                      .partition_index = pa};
    events_result_t r;
    cr_assert_eq(sync_read(&q, &r), 0);
    size_t want = evs_partition_hash(b) % 64 == pa ? 2 : 1;
    cr_assert_eq(r.n, want);
    cr_assert_eq(r.events[0].position, ok.positions[0]);
    events_result_free(&r);
    append_result_free(&ok);
}
