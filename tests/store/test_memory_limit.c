/* test_memory_limit.c: the store conformance suite, memory_limit. It applies to a store that
 * keeps its events in the daemon's memory (the memory store); others skip these tests. Past the
 * limit appends and snapshots are refused with EVS_ELIMIT_EXCEEDED and change nothing; reads go
 * on; a delete gives its bytes back. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "sync.h"

TestSuite(memory_limit, .init = store_setup, .fini = store_teardown, .timeout = 60);

#define LIMIT (1024 * 1024)
#define PAYLOAD 1024

static void need_memory_store(void) {
    if (strcmp(S->ops->name, "memory") != 0)
        cr_skip("memory_limit applies to the memory store, not to %s", S->ops->name);
}

/* Appends events of PAYLOAD bytes to entity, one per call, until one is refused; returns how many
 * were stored, and the refusal in *err. */
static size_t fill(const char *entity, const char *topic, codec_error_t *err) {
    static char payload[PAYLOAD + 1];
    memset(payload, 'p', PAYLOAD);
    for (size_t stored = 0; stored < 4 * LIMIT / PAYLOAD; stored++) {
        evs_event_t ev = new_event(entity, topic, payload);
        append_result_t r;
        int rc = sync_append(&ev, 1, &r);
        if (rc != 0) {
            cr_assert_eq(rc, EVS_ELIMIT_EXCEEDED, "append %zu: %s (%s)", stored, evs_code_name(rc),
                         r.err.message);
            *err = r.err;
            append_result_free(&r);
            return stored;
        }
        append_result_free(&r);
    }
    cr_assert_fail("%d events of %d bytes were stored under a limit of %d bytes",
                   4 * LIMIT / PAYLOAD, PAYLOAD, LIMIT);
    return 0;
}

Test(memory_limit, appends_past_the_limit_are_refused_and_reads_go_on) {
    need_memory_store();
    S->memory_limit = LIMIT;
    const char *a = name("a"), *t = name("t");
    codec_error_t err;
    size_t stored = fill(a, t, &err);
    /* The store counts what it holds: more than the payloads, far less than twice them. */
    cr_assert_lt(stored, LIMIT / PAYLOAD, "%zu events of %d bytes fit under %d bytes", stored,
                 PAYLOAD, LIMIT);
    cr_assert_gt(stored, LIMIT / PAYLOAD / 2, "only %zu events of %d bytes fit under %d bytes",
                 stored, PAYLOAD, LIMIT);
    cr_assert(strstr(err.message, "memory_limit"), "the message names the option: %s", err.message);
    /* Nothing of the refused append was stored, and reads are served. */
    cr_assert_eq(entity_count(a), stored);
    store_read_t q = {.after = 0, .limit = STORE_MAX_LIMIT, .entity_prefix = PREFIX};
    events_result_t r;
    cr_assert_eq(sync_read(&q, &r), 0);
    cr_assert_eq(r.n, stored);
    events_result_free(&r);
    /* So is a snapshot as large as the refused event. */
    static uint8_t state[2 * PAYLOAD];
    store_snapshot_t snap = {
        .entity_id = a, .version = 1, .topic = t, .payload = state, .payload_len = sizeof state};
    cr_assert_eq(sync_put_snapshot(&snap, &err), EVS_ELIMIT_EXCEEDED);
}

Test(memory_limit, a_delete_gives_its_bytes_back) {
    need_memory_store();
    need_delete();
    S->memory_limit = LIMIT;
    const char *a = name("a"), *b = name("b"), *t = name("t");
    codec_error_t err;
    size_t first = fill(a, t, &err);
    cr_assert_eq(delete_ok(a), first);
    /* The log keeps a tombstone per deleted event, so a little less fits the second time. */
    size_t second = fill(b, t, &err);
    cr_assert_gt(second, first * 3 / 4, "%zu events fit after the delete, %zu before", second,
                 first);
}

Test(memory_limit, no_limit_when_zero) {
    need_memory_store();
    S->memory_limit = 0;
    static char payload[64 * 1024 + 1];
    memset(payload, 'p', sizeof payload - 1);
    const char *a = name("a"), *t = name("t");
    for (int i = 0; i < 32; i++) { /* 2 MB */
        evs_event_t ev = new_event(a, t, payload);
        append_result_t r = append_ok(&ev, 1);
        append_result_free(&r);
    }
}
