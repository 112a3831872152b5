/* test_max_event.c: every event an append stores can be read back. An event over max_event is
 * refused with too_large while its frame, within max_frame, leaves the connection open; every
 * event that is stored comes back in a reply of at most max_frame bytes. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"

TestSuite(max_event, .fini = fx_teardown, .timeout = 60);

/* Sends get-by-entity for entity and returns the ok reply (reply_free it). */
static reply_t get_entity(int fd, uint64_t id, const char *entity) {
    rq_t r;
    rq_begin(&r, "get-by-entity", id, 1);
    pk_str(&r.pk, "entity_id");
    pk_str(&r.pk, entity);
    fx_send_rq(fd, &r);
    return fx_expect_ok(fd, id);
}

static size_t nevents(const reply_t *rep) {
    const msgpack_object *evs = reply_get(rep, "events");
    cr_assert(evs && evs->type == MSGPACK_OBJECT_ARRAY, "no events in the reply");
    return evs->via.array.size;
}

Test(max_event, an_event_over_max_event_is_too_large_and_the_connection_stays_open) {
    fx_start((const char *[]){"--max-frame", "1024", NULL});
    int fd = fx_connect();
    const char *entity = tname("big");
    /* A frame under 1024 bytes whose event, as a reply carries it, would need more than the
     * 1024 - 64 bytes max_event allows. */
    fx_send_append(fd, 7, entity, strlen(entity), 900);
    fx_expect_error(fd, "too_large", 7);
    fx_conn_still_serves(fd);
    reply_t rep = get_entity(fd, 8, entity);
    cr_assert_eq(nevents(&rep), 0, "part of a refused append was stored");
    reply_free(&rep);
    close(fd);
    fx_finish();
}

/* Whatever the size of an event an append accepts, a reply carries it within max_frame. */
Test(max_event, every_stored_event_is_read_back_within_max_frame) {
    fx_start((const char *[]){"--max-frame", "1024", NULL});
    int fd = fx_connect();
    size_t stored = 0;
    for (size_t payload = 600; payload <= 900; payload += 4) {
        char name[32];
        snprintf(name, sizeof name, "e%zu", payload);
        const char *entity = tname(name);
        fx_send_append(fd, payload, entity, strlen(entity), payload);
        reply_t rep;
        cr_assert_eq(raw_recv(fd, 5000, &rep), 0, "no reply to the append of %zu bytes", payload);
        bool ok = reply_ok(&rep);
        if (!ok)
            cr_assert_str_eq(reply_code(&rep), "too_large", "payload %zu: %s", payload,
                             reply_code(&rep));
        reply_free(&rep);
        if (!ok) continue;
        stored++;
        rep = get_entity(fd, 100000 + payload, entity);
        cr_assert_eq(nevents(&rep), 1, "payload %zu", payload);
        cr_assert_leq(rep.len, 1024, "a reply of %zu bytes for a stored event of %zu", rep.len,
                      payload);
        reply_free(&rep);
    }
    cr_assert_gt(stored, 0, "no event was stored at all");
    close(fd);
    fx_finish();
}
