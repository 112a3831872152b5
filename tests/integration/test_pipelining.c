/* test_pipelining.c: requests sent one after another without waiting for replies: each gets its
 * reply, carrying its id. */
#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"

TestSuite(pipelining, .fini = fx_teardown, .timeout = 60);

Test(pipelining, pipelined_requests_all_get_a_reply_carrying_their_id) {
    fx_start(NULL);
    enum { N = 400 };
    int fd = fx_connect();
    /* All N requests in one buffer, written before any reply is read. */
    msgpack_sbuffer all;
    msgpack_sbuffer_init(&all);
    for (int i = 1; i <= N; i++) {
        rq_t r;
        switch (i % 5) {
        case 0:
            rq_begin(&r, "ping", (uint64_t)i, 0);
            break;
        case 1:
            rq_begin(&r, "append", (uint64_t)i, 1);
            pk_str(&r.pk, "events");
            msgpack_pack_array(&r.pk, 1);
            fx_pack_event(&r.pk, tname("pipe"), strlen(tname("pipe")), "t", 100);
            break;
        case 2:
            rq_begin(&r, "get-by-entity", (uint64_t)i, 1);
            pk_str(&r.pk, "entity_id");
            pk_str(&r.pk, tname("pipe"));
            break;
        case 3:
            rq_begin(&r, "no-such-op", (uint64_t)i, 0);
            break;
        default:
            rq_begin(&r, "read-all", (uint64_t)i, 1);
            pk_str(&r.pk, "after");
            pk_str(&r.pk, "not a number");
            break;
        }
        uint8_t h[4] = {(uint8_t)(r.sb.size >> 24), (uint8_t)(r.sb.size >> 16),
                        (uint8_t)(r.sb.size >> 8), (uint8_t)r.sb.size};
        msgpack_sbuffer_write(&all, (const char *)h, 4);
        msgpack_sbuffer_write(&all, r.sb.data, r.sb.size);
        rq_free(&r);
    }
    fx_send_bytes(fd, all.data, all.size);
    msgpack_sbuffer_destroy(&all);

    bool seen[N + 1] = {false};
    bool versions[N] = {false};
    for (int k = 0; k < N; k++) {
        reply_t r;
        int rc = raw_recv(fd, 10000, &r);
        cr_assert_eq(rc, 0, "reply %d of %d missing (%d)", k + 1, N, rc);
        uint64_t id = 0;
        cr_assert(reply_id(&r, &id), "a reply without id");
        cr_assert(id >= 1 && id <= N, "unknown id %llu", (unsigned long long)id);
        cr_assert_not(seen[id], "two replies for id %llu", (unsigned long long)id);
        seen[id] = true;
        switch (id % 5) {
        case 3:
        case 4:
            cr_assert_str_eq(reply_code(&r), "bad_request", "id %llu", (unsigned long long)id);
            break;
        default:
            cr_assert(reply_ok(&r), "id %llu: %s", (unsigned long long)id, reply_code(&r));
        }
        if (id % 5 == 1) {
            const msgpack_object *v = reply_get(&r, "versions");
            cr_assert(v && v->type == MSGPACK_OBJECT_ARRAY && v->via.array.size == 1);
            uint64_t ver = v->via.array.ptr[0].via.u64;
            cr_assert_lt(ver, N / 5);
            cr_assert_not(versions[ver], "version %llu given twice", (unsigned long long)ver);
            versions[ver] = true;
        }
        reply_free(&r);
    }
    fx_conn_still_serves(fd);
    close(fd);
    fx_finish();
}
