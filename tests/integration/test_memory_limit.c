/* test_memory_limit.c: --memory-limit through the daemon. With the memory store, appends past it
 * get limit_exceeded naming the option, and reads and the connection go on; with PostgreSQL the
 * events are not in the daemon's memory and the option does not apply. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"

TestSuite(memory_limit, .fini = fx_teardown, .timeout = 120);

Test(memory_limit, appends_past_memory_limit_get_limit_exceeded_and_reads_go_on) {
    enum { PAYLOAD = 1024, MAX_APPENDS = 4096 }; /* 4 MB: four times the limit */
    const char *store = getenv("EVSTORE_TEST_STORE");
    bool memory = !store || !*store || strcmp(store, "memory") == 0;
    fx_start((const char *[]){"--memory-limit", "1M", NULL});
    int fd = fx_connect();
    const char *entity = tname("full");
    int stored = 0;
    reply_t rep;
    for (; stored < MAX_APPENDS; stored++) {
        fx_send_append(fd, (uint64_t)stored + 1, entity, strlen(entity), PAYLOAD);
        cr_assert_eq(raw_recv(fd, 10000, &rep), 0, "append %d got no reply", stored);
        bool ok = reply_ok(&rep);
        if (!ok) {
            cr_assert(memory, "a PostgreSQL store refused an append: %s", reply_code(&rep));
            cr_assert_str_eq(reply_code(&rep), "limit_exceeded");
            const msgpack_object *msg = obj_get(reply_get(&rep, "error"), "message");
            cr_assert(msg && msg->type == MSGPACK_OBJECT_STR &&
                          memmem(msg->via.str.ptr, msg->via.str.size, "memory_limit", 12),
                      "the message names the option");
        }
        reply_free(&rep);
        if (!ok) break;
    }
    if (memory)
        cr_assert(stored > 0 && stored < 1024, "%d appends of %d bytes under a limit of 1 MiB",
                  stored, PAYLOAD);
    else
        cr_assert_eq(stored, MAX_APPENDS);

    /* Reads go on, on the same connection: every stored event, page by page. */
    uint32_t read = 0;
    for (uint64_t id = 100000; read < (uint32_t)stored; id++) {
        rq_t r;
        rq_begin(&r, "get-by-entity", id, 2);
        pk_str(&r.pk, "entity_id");
        pk_str(&r.pk, entity);
        pk_str(&r.pk, "from_version");
        msgpack_pack_uint32(&r.pk, read);
        fx_send_rq(fd, &r);
        rep = fx_expect_ok(fd, id);
        const msgpack_object *evs = reply_get(&rep, "events");
        cr_assert(evs && evs->type == MSGPACK_OBJECT_ARRAY && evs->via.array.size > 0,
                  "%u of %d events read back", read, stored);
        read += evs->via.array.size;
        reply_free(&rep);
    }
    cr_assert_eq(read, (uint32_t)stored);
    close(fd);
    fx_finish();
}
