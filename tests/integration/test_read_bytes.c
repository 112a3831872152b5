/* test_read_bytes.c: a read costs the daemon about what its reply carries. A read-all with
 * limit 10000 over events far larger in total than max_frame fetches one page's worth from the
 * store (on PostgreSQL, the query itself stops there), and says "truncated". */
#include <criterion/criterion.h>
#include <evstore.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/daemon.h"
#include "../common/rawio.h"
#include "../common/rss.h"

#define EVENTS 96
#define PAYLOAD (512u * 1024) /* 48 MB in all, against pages of 4 MB */

static test_daemon_t d;

static void setup(void) {
    const char *const extra[] = {"--max-frame", "4M", NULL};
    cr_assert_eq(test_daemon_start(&d, extra), 0, "evstored did not start");
}

static void teardown(void) {
    if (d.pid > 0) cr_expect_eq(test_daemon_stop(&d), 0, "evstored did not exit 0");
}

TestSuite(read_bytes, .init = setup, .fini = teardown, .timeout = 120);

/* Appends EVENTS events of PAYLOAD bytes to entity, four per request; returns the first
 * position. */
static uint64_t seed(const char *entity) {
    evs_options_t o = {.addr = d.addr, .timeout_ms = 30000};
    evs_context_t *c = evs_connect_with_options(&o);
    cr_assert_eq(c->err, 0, "%s", c->errstr);
    uint8_t *payload = malloc(PAYLOAD);
    memset(payload, 'r', PAYLOAD);
    uint64_t first = 0;
    for (int i = 0; i < EVENTS; i += 4) {
        evs_event_t evs[4];
        for (int k = 0; k < 4; k++)
            evs[k] = (evs_event_t){.entity_id = (char *)entity,
                                   .topic = (char *)tname("bulk"),
                                   .payload = payload,
                                   .payload_len = PAYLOAD};
        uint64_t pos[4];
        cr_assert_eq(evs_append(c, evs, 4, pos, NULL), 0, "append: %s", c->errstr);
        if (i == 0) first = pos[0];
    }
    free(payload);
    evs_free(c);
    return first;
}

Test(read_bytes, read_all_with_limit_10000_fetches_about_one_page_not_every_event) {
    uint64_t first = seed(tname("bulk"));
    int fd = test_connect_raw(&d);
    cr_assert_geq(fd, 0);
    cr_assert_eq(raw_ping(fd, 1, 5000), 0);
    cr_assert_eq(rss_peak_reset(d.pid), 0, "cannot reset the daemon's peak RSS");
    long before = rss_kb(d.pid);
    rq_t r;
    rq_init(&r);
    rq_begin(&r, "read-all", 2, 2);
    pk_str(&r.pk, "after");
    msgpack_pack_uint64(&r.pk, first - 1);
    pk_str(&r.pk, "limit");
    msgpack_pack_uint64(&r.pk, 10000);
    cr_assert_eq(raw_send_rq(fd, &r), 0);
    rq_free(&r);
    reply_t rep;
    cr_assert_eq(raw_recv(fd, 30000, &rep), 0, "no reply to read-all");
    cr_assert(reply_ok(&rep), "read-all: %s", reply_code(&rep));
    const msgpack_object *evs = reply_get(&rep, "events");
    cr_assert(evs && evs->type == MSGPACK_OBJECT_ARRAY);
    cr_assert_gt(evs->via.array.size, 0);
    cr_assert_lt(evs->via.array.size, 8, "%u events of 512 KB in a 4 MB reply",
                 evs->via.array.size);
    const msgpack_object *tr = reply_get(&rep, "truncated");
    cr_assert(tr && tr->type == MSGPACK_OBJECT_BOOLEAN && tr->via.boolean, "no truncated: true");
    reply_free(&rep);
    long peak = rss_peak_kb(d.pid);
    /* The reply is 4 MB and the page fetched about as much; every event would be 48 MB. */
    cr_assert_lt(peak - before, 24 * 1024,
                 "one read-all raised the daemon's RSS by %ld MB for a 4 MB reply (48 MB stored)",
                 (peak - before) / 1024);
    close(fd);
}
