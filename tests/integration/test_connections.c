/* test_connections.c: many clients at once: a thousand simultaneous connections are each
 * served. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "fixture.h"

TestSuite(connections, .fini = fx_teardown, .timeout = 60);

Test(connections, thousand_simultaneous_connections_each_get_served, .timeout = 120) {
    enum { N = 1000 };
    struct rlimit rl;
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    cr_assert_geq(rl.rlim_cur, N + 64, "the hard limit of open files (%llu) is too low",
                  (unsigned long long)rl.rlim_cur);
    fx_start(NULL);
    int *fds = malloc(N * sizeof *fds);
    for (int i = 0; i < N; i++) {
        fds[i] = test_connect_raw(&fx_daemon);
        cr_assert_geq(fds[i], 0, "connection %d: %s", i, strerror(errno));
    }
    /* Every connection is open at once; each sends a ping, then all replies are read. */
    for (int i = 0; i < N; i++) {
        rq_t r;
        rq_begin(&r, "ping", (uint64_t)i + 1, 0);
        fx_send_rq(fds[i], &r);
    }
    for (int i = 0; i < N; i++) {
        reply_t r = fx_expect_ok(fds[i], (uint64_t)i + 1);
        reply_free(&r);
    }
    /* And a second round, on connections that have been open all along. */
    for (int i = 0; i < N; i += 7)
        fx_conn_still_serves(fds[i]);
    for (int i = 0; i < N; i++)
        close(fds[i]);
    free(fds);
    fx_finish();
}
