/* test_stats_consumers.c: the stats op's "consumers": the consumers with their positions and lag,
 * and the store's head, as the daemon last read them (docs/service.md, stats keys). */
#include <criterion/criterion.h>
#include <string.h>

#include "../common/clock.h"
#include "fixture.h"

TestSuite(stats_consumers, .fini = fx_teardown, .timeout = 60);

/* Appends one event to tname(entity); returns its position. */
static uint64_t append_one(int fd, uint64_t id, const char *entity) {
    fx_send_append(fd, id, tname(entity), strlen(tname(entity)), 4);
    reply_t rep = fx_expect_ok(fd, id);
    const msgpack_object *p = reply_get(&rep, "positions");
    cr_assert(p && p->type == MSGPACK_OBJECT_ARRAY && p->via.array.size == 1);
    uint64_t pos = obj_uint(&p->via.array.ptr[0]);
    reply_free(&rep);
    return pos;
}

/* What one stats reply says of a consumer. */
typedef struct seen {
    bool listed;
    uint64_t position, lag, head;
} seen_t;

/* Asks for stats and reads its "consumers" entry for consumer. */
static seen_t stats_consumer(int fd, uint64_t id, const char *consumer) {
    rq_t r;
    rq_begin(&r, "stats", id, 0);
    fx_send_rq(fd, &r);
    reply_t rep = fx_expect_ok(fd, id);
    const msgpack_object *cs = obj_get(reply_get(&rep, "stats"), "consumers");
    cr_assert(cs && cs->type == MSGPACK_OBJECT_MAP, "stats has no consumers map");
    const msgpack_object *age = obj_get(cs, "age_ms"), *list = obj_get(cs, "list");
    cr_assert(age &&
              (age->type == MSGPACK_OBJECT_NIL || age->type == MSGPACK_OBJECT_POSITIVE_INTEGER));
    cr_assert(list && list->type == MSGPACK_OBJECT_ARRAY);
    seen_t s = {.head = obj_uint(obj_get(cs, "head"))};
    for (uint32_t i = 0; i < list->via.array.size; i++) {
        const msgpack_object *c = &list->via.array.ptr[i];
        if (!obj_is_str(obj_get(c, "consumer"), consumer)) continue;
        cr_assert_eq(age->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
        s.listed = true;
        s.position = obj_uint(obj_get(c, "position"));
        s.lag = obj_uint(obj_get(c, "lag"));
        cr_assert(obj_get(c, "active") && obj_get(c, "active")->type == MSGPACK_OBJECT_BOOLEAN);
    }
    reply_free(&rep);
    return s;
}

/* Polls stats until it shows consumer at position (5 s at most). */
static seen_t wait_for_position(int fd, uint64_t *id, const char *consumer, uint64_t position) {
    int64_t deadline = now_ms() + 5000;
    seen_t s;
    do {
        s = stats_consumer(fd, (*id)++, consumer);
        if (s.listed && s.position == position) return s;
        sleep_ms(20);
    } while (now_ms() < deadline);
    cr_assert_fail("stats did not show %s at %llu within 5 s (listed %d, at %llu)", consumer,
                   (unsigned long long)position, s.listed, (unsigned long long)s.position);
    return s;
}

static void checkpoint(int fd, uint64_t id, const char *consumer, uint64_t position) {
    rq_t r;
    rq_begin(&r, "checkpoint", id, 2);
    pk_str(&r.pk, "consumer");
    pk_str(&r.pk, consumer);
    pk_str(&r.pk, "position");
    msgpack_pack_uint64(&r.pk, position);
    fx_send_rq(fd, &r);
    reply_t rep = fx_expect_ok(fd, id);
    reply_free(&rep);
}

Test(stats_consumers, a_checkpoint_shows_in_stats_with_its_lag_and_the_head) {
    fx_start(NULL);
    int fd = fx_connect();
    uint64_t id = 1;
    uint64_t p1 = append_one(fd, id++, "a");
    append_one(fd, id++, "a");
    uint64_t p3 = append_one(fd, id++, "b");
    char consumer[256];
    snprintf(consumer, sizeof consumer, "%s", tname("proj"));
    checkpoint(fd, id++, consumer, p1);
    seen_t s = wait_for_position(fd, &id, consumer, p1);
    cr_assert_geq(s.head, p3, "head %llu is before the last append %llu",
                  (unsigned long long)s.head, (unsigned long long)p3);
    cr_assert_eq(s.lag, s.head - p1);

    /* It moves on: the next copy shows the new checkpoint, lag 0 at the head. */
    checkpoint(fd, id++, consumer, p3);
    s = wait_for_position(fd, &id, consumer, p3);
    cr_assert_eq(s.lag, s.head - p3);
}

Test(stats_consumers, stats_answers_at_once_and_says_how_old_its_copy_is) {
    fx_start(NULL);
    int fd = fx_connect();
    uint64_t id = 1;
    uint64_t p1 = append_one(fd, id++, "a");
    char consumer[256];
    snprintf(consumer, sizeof consumer, "%s", tname("c"));
    checkpoint(fd, id++, consumer, p1);
    wait_for_position(fd, &id, consumer, p1);
    /* Right after a read, the copy is fresh: its age is below the refresh interval. */
    rq_t r;
    rq_begin(&r, "stats", id, 0);
    fx_send_rq(fd, &r);
    reply_t rep = fx_expect_ok(fd, id);
    const msgpack_object *age = obj_get(obj_get(reply_get(&rep, "stats"), "consumers"), "age_ms");
    cr_assert(age && age->type == MSGPACK_OBJECT_POSITIVE_INTEGER);
    cr_assert_lt(age->via.u64, 5000);
    reply_free(&rep);
}
