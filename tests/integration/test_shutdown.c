/* test_shutdown.c: SIGTERM with idle, half-sent and stuck connections: the daemon closes them and
 * exits 0 in time. */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
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

/* Sends count requests with ids from first, in one write: get-by-entity of entity when it is
 * not NULL, else ping. */
static void send_pipelined(int fd, uint64_t first, int count, const char *entity) {
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    for (int i = 0; i < count; i++) {
        rq_t r;
        rq_begin(&r, entity ? "get-by-entity" : "ping", first + (uint64_t)i, entity ? 1 : 0);
        if (entity) {
            pk_str(&r.pk, "entity_id");
            pk_str(&r.pk, entity);
        }
        uint8_t len[4] = {(uint8_t)(r.sb.size >> 24), (uint8_t)(r.sb.size >> 16),
                          (uint8_t)(r.sb.size >> 8), (uint8_t)r.sb.size};
        msgpack_sbuffer_write(&sb, (const char *)len, 4);
        msgpack_sbuffer_write(&sb, r.sb.data, r.sb.size);
        rq_free(&r);
    }
    cr_assert_eq(send(fd, sb.data, sb.size, MSG_NOSIGNAL), (ssize_t)sb.size, "%s", strerror(errno));
    msgpack_sbuffer_destroy(&sb);
}

/* Pipelined reads whose replies the client has not read yet, then SIGTERM, then more requests
 * while the daemon drains (it reads them no more): every reply the daemon sends arrives, in
 * order and without a gap, and the connection ends with EOF (FIN), never with a reset that would
 * throw away replies the client has not read yet. */
Test(shutdown, sigterm_replies_to_what_was_read_then_ends_with_eof_not_reset) {
    fx_start(NULL);
    int fd = fx_connect();
    const char *e = tname("drain");
    fx_send_append(fd, 1, e, strlen(e), 60000);
    reply_t rep = fx_expect_ok(fd, 1);
    reply_free(&rep);
    send_pipelined(fd, 2, 100, e); /* about 6 MB of replies, more than the socket buffers */
    cr_assert_eq(kill(fx_daemon.pid, SIGTERM), 0);
    /* The listener closes when the drain starts: from then on the daemon reads nothing more. */
    int64_t until = now_ms() + 10000;
    for (;;) {
        int probe = test_connect_raw(&fx_daemon);
        if (probe < 0) break;
        close(probe);
        cr_assert_lt(now_ms(), until, "the listener is still open after SIGTERM");
        sleep_ms(2);
    }
    send_pipelined(fd, 1000, 50, NULL); /* not read by the daemon any more */
    size_t cap = 64 << 20, len = 0;
    uint8_t *buf = malloc(cap);
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        cr_assert_eq(poll(&pfd, 1, 10000), 1, "neither data nor EOF within 10 s");
        ssize_t n = recv(fd, buf + len, cap - len, 0);
        if (n == 0) break;
        cr_assert_gt(n, 0, "the connection ended with %s, not EOF, after %zu bytes",
                     strerror(errno), len);
        len += (size_t)n;
        cr_assert_lt(len, cap);
    }
    /* Every frame is an ok reply; their ids are 2, 3, 4... without a gap: the requests read
     * before the signal, in any order (a PostgreSQL store answers reads from two connections). */
    static bool seen[200];
    memset(seen, 0, sizeof seen);
    size_t nreplies = 0;
    for (size_t at = 0; at < len;) {
        cr_assert_leq(at + 4, len, "a partial frame at the end");
        size_t flen = (size_t)buf[at] << 24 | (size_t)buf[at + 1] << 16 | (size_t)buf[at + 2] << 8 |
                      buf[at + 3];
        cr_assert_leq(at + 4 + flen, len, "a partial frame at the end");
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        cr_assert_eq(msgpack_unpack_next(&u, (const char *)buf + at + 4, flen, NULL),
                     MSGPACK_UNPACK_SUCCESS);
        const msgpack_object *id = obj_get(&u.data, "id");
        const msgpack_object *ok = obj_get(&u.data, "ok");
        bool good = id && obj_uint(id) >= 2 && obj_uint(id) < 102 && !seen[obj_uint(id)] && ok &&
                    ok->type == MSGPACK_OBJECT_BOOLEAN && ok->via.boolean;
        uint64_t got = obj_uint(id);
        msgpack_unpacked_destroy(&u);
        cr_assert(good, "reply %llu: not one ok reply to a request of the test",
                  (unsigned long long)got);
        seen[got] = true;
        nreplies++;
        at += 4 + flen;
    }
    cr_assert_gt(nreplies, 0, "no reply at all");
    for (size_t i = 2; i < 2 + nreplies; i++)
        cr_assert(seen[i], "%zu replies, but none to request %zu", nreplies, i);
    free(buf);
    close(fd);
    int status;
    cr_assert_eq(waitpid(fx_daemon.pid, &status, 0), fx_daemon.pid);
    fx_daemon.pid = 0;
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "evstored did not exit 0");
}
