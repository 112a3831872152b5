/* test_uuid_v7.c: time-ordered event ids (version 7, RFC 9562): their bits, their order and
 * their uniqueness. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../client/evstore.h"
#include "../../proto/event.h"
#include "mp.h"

TestSuite(uuid_v7, .fini = leak_check);

static uint64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t ts_of(const uint8_t id[16]) {
    uint64_t ms = 0;
    for (int i = 0; i < 6; i++)
        ms = ms << 8 | id[i];
    return ms;
}

static int cmp_id(const void *a, const void *b) {
    return memcmp(a, b, 16);
}

Test(uuid_v7, version_variant_and_timestamp) {
    enum { N = 1000 };
    uint8_t *ids = malloc(16 * N);
    cr_assert(ids);
    uint64_t before = wall_ms();
    cr_assert_eq(evs_uuid_generate_v7(ids, N), 0);
    uint64_t after = wall_ms();
    for (int i = 0; i < N; i++) {
        const uint8_t *id = ids + 16 * i;
        cr_assert_eq(id[6] >> 4, 7, "version 7 (id %d)", i);
        cr_assert_eq(id[8] >> 6, 2, "RFC 9562 variant 10 (id %d)", i);
        /* A counter spent within a millisecond may borrow the next ones, never many. */
        cr_assert(ts_of(id) >= before && ts_of(id) <= after + 1,
                  "timestamp %llu outside [%llu, %llu]", (unsigned long long)ts_of(id),
                  (unsigned long long)before, (unsigned long long)after);
    }
    free(ids);
}

Test(uuid_v7, stamp_keeps_the_random_tail) {
    uint8_t id[16];
    for (int i = 0; i < 16; i++)
        id[i] = (uint8_t)(0x11 * i);
    evs_uuid_v7_stamp(id);
    cr_assert_eq(id[6] >> 4, 7);
    cr_assert_eq(id[8] >> 6, 2);
    cr_assert_eq(id[12], 0xcc);
    cr_assert_eq(id[13], 0xdd);
    cr_assert_eq(id[14], 0xee);
    cr_assert_eq(id[15], 0xff);
}

/* Ids made one call at a time in a tight loop (many per millisecond) increase strictly, as
 * bytes and as text, and so are all different. */
Test(uuid_v7, strictly_increasing_across_calls) {
    enum { N = 200000 };
    uint8_t prev[16], id[16];
    char prev_text[37], text[37];
    cr_assert_eq(evs_uuid_generate_v7(prev, 1), 0);
    evs_uuid_format(prev, prev_text);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(evs_uuid_generate_v7(id, 1), 0);
        cr_assert_gt(memcmp(id, prev, 16), 0, "id %d is not after the one before", i);
        evs_uuid_format(id, text);
        cr_assert_gt(strcmp(text, prev_text), 0, "text %s not after %s", text, prev_text);
        memcpy(prev, id, 16);
        memcpy(prev_text, text, 37);
    }
}

/* A later millisecond gives a later timestamp: ids follow the clock, not only a counter. */
Test(uuid_v7, follows_the_clock) {
    uint8_t first[16], id[16];
    cr_assert_eq(evs_uuid_generate_v7(first, 1), 0);
    uint64_t deadline = wall_ms() + 2000;
    do {
        cr_assert_eq(evs_uuid_generate_v7(id, 1), 0);
        cr_assert_gt(memcmp(id, first, 16), 0);
    } while (ts_of(id) <= ts_of(first) && wall_ms() < deadline);
    cr_assert_gt(ts_of(id), ts_of(first), "the timestamp never moved on");
    cr_assert_lt(ts_of(id) - ts_of(first), 1000);
}

enum { PER_THREAD = 50000, THREADS = 4 };

static void *make_ids(void *arg) {
    uint8_t *out = arg;
    for (int i = 0; i < PER_THREAD; i++)
        if (evs_uuid_generate_v7(out + 16 * i, 1) != 0) return (void *)1;
    for (int i = 1; i < PER_THREAD; i++)
        if (memcmp(out + 16 * i, out + 16 * (i - 1), 16) <= 0) return (void *)2;
    return NULL;
}

/* Threads making ids at once: each thread's ids increase, and no id appears twice. */
Test(uuid_v7, unique_across_threads) {
    uint8_t *ids = malloc(16 * (size_t)PER_THREAD * THREADS);
    cr_assert(ids);
    pthread_t t[THREADS];
    for (int k = 0; k < THREADS; k++)
        cr_assert_eq(pthread_create(&t[k], NULL, make_ids, ids + 16 * (size_t)PER_THREAD * k), 0);
    for (int k = 0; k < THREADS; k++) {
        void *rc;
        pthread_join(t[k], &rc);
        cr_assert_null(rc, "thread %d: %s", k, rc == (void *)1 ? "no randomness" : "out of order");
    }
    qsort(ids, (size_t)PER_THREAD * THREADS, 16, cmp_id);
    for (size_t i = 1; i < (size_t)PER_THREAD * THREADS; i++)
        cr_assert_neq(memcmp(ids + 16 * i, ids + 16 * (i - 1), 16), 0, "a repeated id");
    free(ids);
}

/* libevstore's text ids: version 7, and each after the one before as text. */
Test(uuid_v7, ordered_text_ids) {
    char prev[37], id[37];
    evs_ordered_id(prev);
    for (int i = 0; i < 10000; i++) {
        evs_ordered_id(id);
        cr_assert_eq(strlen(id), 36);
        cr_assert_eq(id[14], '7', "version 7: %s", id);
        cr_assert(strchr("89ab", id[19]) != NULL, "RFC 9562 variant: %s", id);
        cr_assert_gt(strcmp(id, prev), 0, "%s not after %s", id, prev);
        memcpy(prev, id, sizeof id);
    }
}
