/* test_slow_senders.c: connections that hold the daemon's resources without using them: a frame
 * begun and never finished (frame_timeout), a connection that sends nothing (idle_timeout), and
 * unfinished frames that together would pass frame_memory_limit. Timeouts are set to 1 s and the
 * tests wait for the close itself, with a generous bound, never for a fixed time. */
#include <criterion/criterion.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"

TestSuite(slow_senders, .fini = fx_teardown, .timeout = 60);

#define CLOSE_WITHIN_MS 15000

/* Sends the header of a frame of len bytes and its first sent bytes (of padding, which make no
 * valid request alone). */
static void send_frame_start(int fd, uint32_t len, size_t sent) {
    uint8_t head[4] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
                       (uint8_t)len};
    fx_send_bytes(fd, head, sizeof head);
    if (sent) {
        uint8_t *body = calloc(1, sent);
        fx_send_bytes(fd, body, sent);
        free(body);
    }
}

Test(slow_senders, a_frame_not_completed_within_frame_timeout_closes_the_connection) {
    fx_start((const char *[]){"--frame-timeout", "1", NULL});
    int idle = fx_connect(); /* sends nothing: no frame begun, no timeout (idle_timeout is 0) */
    int slow = fx_connect();
    send_frame_start(slow, 1000, 10);
    cr_assert_eq(raw_wait_closed(slow, CLOSE_WITHIN_MS), 0,
                 "a frame begun and never finished kept its connection open");
    fx_conn_still_serves(idle);
    close(slow);
    close(idle);
    fx_finish();
}

Test(slow_senders, a_frame_sent_in_pieces_within_frame_timeout_is_served) {
    fx_start((const char *[]){"--frame-timeout", "1", NULL});
    int fd = fx_connect();
    rq_t r;
    rq_begin(&r, "ping", 5, 0);
    uint8_t head[4] = {0, 0, 0, (uint8_t)r.sb.size};
    fx_send_bytes(fd, head, 2);
    fx_send_bytes(fd, head + 2, 2);
    fx_send_bytes(fd, r.sb.data, r.sb.size);
    rq_free(&r);
    reply_t rep = fx_expect_ok(fd, 5);
    reply_free(&rep);
    close(fd);
    fx_finish();
}

Test(slow_senders, an_idle_connection_closes_after_idle_timeout_but_a_subscriber_does_not) {
    fx_start((const char *[]){"--idle-timeout", "1", NULL});
    int sub = fx_connect();
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    const char *topic = tname("idle");
    rq_subscribe(&sb, 1, false, 0, &topic, 1, NULL);
    cr_assert_eq(raw_send_sb(sub, &sb), 0);
    msgpack_sbuffer_destroy(&sb);
    reply_t rep = fx_expect_ok(sub, 1);
    reply_free(&rep);

    /* Two idle connections in turn, each closed after at least idle_timeout: by then the
     * subscriber has sent nothing for longer than that, twice over. */
    for (int i = 0; i < 2; i++) {
        int idle = fx_connect();
        cr_assert_eq(raw_wait_closed(idle, CLOSE_WITHIN_MS), 0,
                     "a connection that sent nothing stayed open past idle_timeout");
        close(idle);
    }
    fx_conn_still_serves(sub);
    close(sub);
    fx_finish();
}

Test(slow_senders, an_unfinished_frame_past_frame_memory_limit_is_refused_and_others_go_on) {
    /* One unfinished frame of 250 KB fits in 400 KB of input memory, two do not. */
    enum { FRAME = 290 * 1024, SENT = 250 * 1024 };
    fx_start((const char *[]){"--max-frame", "300k", "--frame-memory-limit", "400k", NULL});
    int a = fx_connect(), b = fx_connect();
    send_frame_start(a, FRAME, SENT);
    send_frame_start(b, FRAME, SENT);

    /* Exactly one of them is refused: an unavailable error without id, then the close. */
    int fds[2] = {a, b}, refused = -1;
    int64_t deadline = now_ms() + CLOSE_WITHIN_MS;
    while (refused < 0 && now_ms() < deadline) {
        struct pollfd p[2] = {{.fd = a, .events = POLLIN}, {.fd = b, .events = POLLIN}};
        cr_assert_geq(poll(p, 2, 100), 0);
        for (int i = 0; i < 2 && refused < 0; i++)
            if (p[i].revents) refused = i;
    }
    cr_assert_geq(refused, 0, "neither unfinished frame was refused");
    fx_expect_error(fds[refused], "unavailable", 0);
    cr_assert_eq(raw_wait_closed(fds[refused], CLOSE_WITHIN_MS), 0, "the refused one stays open");

    /* The other finishes its frame and is answered (its zero padding is no request: the
     * bad_request it gets shows that the frame was read whole). */
    int other = fds[1 - refused];
    uint8_t *rest = calloc(1, FRAME - SENT);
    fx_send_bytes(other, rest, FRAME - SENT);
    free(rest);
    reply_t rep;
    cr_assert_eq(raw_recv(other, 10000, &rep), 0, "the frame that fits got no answer");
    reply_free(&rep);
    fx_conn_still_serves(other);
    close(a);
    close(b);
    fx_finish();
}
