/* test_backpressure.c: a client that pipelines requests and never reads its replies: the daemon
 * stops reading from it, keeps its own memory bounded and serves other clients meanwhile. */
#include <criterion/criterion.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/rss.h"
#include "fixture.h"

TestSuite(backpressure, .fini = fx_teardown, .timeout = 60);

/* A client pipelines requests with big replies and reads none: the daemon stops reading from it
 * once its replies pile up, other connections are served meanwhile, and when the client reads at
 * last every request it managed to send gets its reply. */
Test(backpressure, client_that_never_reads_its_replies_does_not_block_others, .timeout = 120) {
    fx_start(NULL);
    int w = fx_connect();
    const char *big = tname("big");
    fx_send_append(w, 1, big, strlen(big), 16 * 1024);
    reply_t rep = fx_expect_ok(w, 1);
    reply_free(&rep);

    int slow = fx_connect_small_rcvbuf();
    rq_t r;
    rq_begin(&r, "get-by-entity", 0, 1);
    pk_str(&r.pk, "entity_id");
    pk_str(&r.pk, big);
    /* The same request with ids 1..N, sent until the socket refuses more for a while. */
    enum { MAX = 8000 };
    size_t sent = 0;
    int64_t deadline = now_ms() + 3000;
    while (sent < MAX && now_ms() < deadline) {
        rq_t one;
        rq_begin(&one, "get-by-entity", sent + 1, 1);
        pk_str(&one.pk, "entity_id");
        pk_str(&one.pk, big);
        uint8_t frame[256];
        size_t len = rq_frame(&one, frame, sizeof frame);
        cr_assert_gt(len, 0);
        rq_free(&one);
        struct pollfd pfd = {.fd = slow, .events = POLLOUT};
        if (poll(&pfd, 1, 200) != 1) break; /* the daemon stopped reading: enough */
        fx_send_bytes(slow, frame, len);
        sent++;
    }
    rq_free(&r);
    cr_assert_gt(sent, 100, "only %zu requests could be sent", sent);
    /* Its unread replies (up to 8000 x 16 KB = 128 MB) must not all be held in the daemon's memory.
     */
    long kb = rss_kb(fx_daemon.pid);
    cr_assert_lt(kb, 100 * 1024, "the daemon holds %ld MB for a client that does not read",
                 kb / 1024);

    /* Others are served promptly meanwhile. */
    int64_t t = now_ms();
    cr_assert(test_daemon_alive(&fx_daemon), "a new connection is not served");
    fx_conn_still_serves(w);
    cr_assert_lt(now_ms() - t, 2000, "other connections waited %lld ms", (long long)(now_ms() - t));

    /* Now read everything: one reply per request sent, each with its id, each ok. */
    bool *seen = calloc(sent + 1, 1);
    for (size_t k = 0; k < sent; k++) {
        reply_t a;
        int rc = raw_recv(slow, 10000, &a);
        cr_assert_eq(rc, 0, "reply %zu of %zu missing (%d)", k + 1, sent, rc);
        uint64_t id = 0;
        cr_assert(reply_id(&a, &id) && id >= 1 && id <= sent && !seen[id], "bad or repeated id");
        seen[id] = true;
        cr_assert(reply_ok(&a), "id %llu: %s", (unsigned long long)id, reply_code(&a));
        reply_free(&a);
    }
    free(seen);
    close(slow);
    close(w);
    fx_finish();
}
