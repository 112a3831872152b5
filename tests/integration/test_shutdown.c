/* test_shutdown.c: SIGTERM with idle, half-sent and stuck connections: the daemon closes them and
 * exits 0 in time. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"

TestSuite(shutdown, .fini = fx_teardown, .timeout = 60);

Test(shutdown, sigterm_with_idle_and_half_sent_connections_exits_promptly) {
    fx_start(NULL);
    int fds[50];
    for (int i = 0; i < 50; i++)
        fds[i] = fx_connect();
    const uint8_t part[] = {0, 0, 0, 50, 0x82};
    fx_send_bytes(fds[0], part, sizeof part);
    fx_conn_still_serves(fds[1]);
    int64_t t = now_ms();
    cr_assert_eq(test_daemon_stop(&fx_daemon), 0, "evstored did not exit 0 on SIGTERM");
    cr_assert_lt(now_ms() - t, 5000, "shutdown took %lld ms with idle clients",
                 (long long)(now_ms() - t));
    for (int i = 0; i < 50; i++) {
        cr_assert_eq(raw_wait_closed(fds[i], 2000), 0, "connection %d left open", i);
        close(fds[i]);
    }
}

/* A subscriber that reads nothing holds megabytes of queued pushes at SIGTERM: the daemon gives
 * up on it after shutdown_timeout instead of waiting forever. */
Test(shutdown, sigterm_with_a_stuck_subscriber_exits_within_the_shutdown_timeout, .timeout = 120) {
    fx_start((const char *[]){"--shutdown-timeout", "1", NULL});
    int sub = fx_connect_small_rcvbuf();
    rq_t r;
    rq_begin(&r, "subscribe", 1, 0);
    fx_send_rq(sub, &r);
    reply_t rep = fx_expect_ok(sub, 1);
    reply_free(&rep);
    int w = fx_connect();
    const char *e = tname("stuck");
    for (int i = 0; i < 200; i++) {
        fx_send_append(w, 10 + (uint64_t)i, e, strlen(e), 8192);
        rep = fx_expect_ok(w, 10 + (uint64_t)i);
        reply_free(&rep);
    }
    int64_t t = now_ms();
    cr_assert_eq(test_daemon_stop(&fx_daemon), 0, "evstored did not exit 0 on SIGTERM");
    cr_assert_lt(now_ms() - t, 6000, "shutdown took %lld ms with shutdown_timeout 1 s",
                 (long long)(now_ms() - t));
    close(sub);
    close(w);
}
