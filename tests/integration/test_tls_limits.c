/* test_tls_limits.c: a TLS client that never reads is held back as a plain one is (the daemon
 * counts the ciphertext waiting for it), and the checks of the TLS options at start. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <evstore.h>

#include "../common/rawio.h"
#include "../common/rss.h"
#include "../common/tls_certs.h"
#include "fixture.h"

static test_certs_t certs;
static test_daemon_t d;
static char log_path[128];

static void setup(void) {
    cr_assert_eq(test_certs_make(&certs), 0, "cannot make the test certificates");
    snprintf(log_path, sizeof log_path, "%s/evstored.log", certs.dir);
}

static void teardown(void) {
    if (d.pid > 0) test_daemon_stop(&d);
    test_certs_remove(&certs);
}

TestSuite(tls_limits, .init = setup, .fini = teardown, .timeout = 120);

/* Writes all of p with SSL_write on a non-blocking socket, waiting up to wait_ms for room each
 * time it is full. 0, or -1 when the socket stayed full (the daemon stopped reading). */
static int ssl_send(SSL *ssl, const void *p, size_t n, int wait_ms) {
    for (;;) {
        int r = SSL_write(ssl, p, (int)n);
        if (r > 0) return 0;
        if (SSL_get_error(ssl, r) != SSL_ERROR_WANT_WRITE) return -1;
        struct pollfd pfd = {.fd = SSL_get_fd(ssl), .events = POLLOUT};
        if (poll(&pfd, 1, wait_ms) != 1) return -1;
    }
}

/* Reads one reply frame from ssl (blocking) and returns whether it is ok; *id gets its id. */
static bool ssl_recv_ok(SSL *ssl, uint64_t *id) {
    uint8_t hdr[4];
    for (size_t got = 0; got < 4;) {
        int r = SSL_read(ssl, hdr + got, (int)(4 - got));
        cr_assert_gt(r, 0, "the reply stream ended");
        got += (size_t)r;
    }
    size_t len = (size_t)hdr[0] << 24 | (size_t)hdr[1] << 16 | (size_t)hdr[2] << 8 | hdr[3];
    char *body = malloc(len);
    cr_assert_not_null(body);
    for (size_t got = 0; got < len;) {
        int r = SSL_read(ssl, body + got, (int)(len - got));
        cr_assert_gt(r, 0, "the reply stream ended inside a frame");
        got += (size_t)r;
    }
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    cr_assert_eq(msgpack_unpack_next(&u, body, len, NULL), MSGPACK_UNPACK_SUCCESS);
    bool ok = obj_get(&u.data, "ok") && obj_get(&u.data, "ok")->type == MSGPACK_OBJECT_BOOLEAN &&
              obj_get(&u.data, "ok")->via.boolean;
    *id = obj_uint(obj_get(&u.data, "id"));
    msgpack_unpacked_destroy(&u);
    free(body);
    return ok;
}

/* As backpressure's client_that_never_reads_its_replies_does_not_block_others, over TLS: the
 * daemon stops reading from the client once the ciphertext of its replies piles up, holds about
 * output_limit for it, serves others meanwhile, and every request sent gets its reply. */
Test(tls_limits, a_tls_client_that_never_reads_is_held_back_like_a_plain_one) {
    int tls_port;
    cr_assert_eq(test_tls_daemon_start(&d, &tls_port, log_path, certs.server_cert, certs.server_key,
                                       NULL, NULL),
                 0);
    char tls_addr[64];
    snprintf(tls_addr, sizeof tls_addr, "tls://127.0.0.1:%d", tls_port);
    evs_tls_options_t trust = {.ca_file = certs.ca};
    evs_options_t o = {.addr = tls_addr, .timeout_ms = 10000, .tls = &trust};
    evs_context_t *w = evs_connect_with_options(&o);
    cr_assert(w && w->err == 0, "connect: %s", w ? w->errstr : "out of memory");
    const char *big = tname("big");
    static uint8_t payload[16 * 1024];
    memset(payload, 'x', sizeof payload);
    evs_event_t ev = {.entity_id = (char *)big,
                      .topic = (char *)tname("big-t"),
                      .payload = payload,
                      .payload_len = sizeof payload};
    cr_assert_eq(evs_append(w, &ev, 1, NULL, NULL), 0, "append: %s", w->errstr);

    SSL *slow = test_tls_connect(tls_port, certs.ca, NULL, NULL, 4096);
    cr_assert_not_null(slow, "TLS handshake failed");
    int fd = SSL_get_fd(slow);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
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
        if (ssl_send(slow, frame, len, 200) != 0) break; /* the daemon stopped reading */
        sent++;
    }
    cr_assert_gt(sent, 100, "only %zu requests could be sent", sent);
    long kb = rss_kb(d.pid);
    cr_assert_lt(kb, 100 * 1024, "the daemon holds %ld MB for a TLS client that does not read",
                 kb / 1024);

    int64_t t = now_ms();
    cr_assert(test_daemon_alive(&d), "a new connection is not served");
    cr_assert_eq(evs_ping(w, NULL, 0), 0, "the other TLS connection: %s", w->errstr);
    cr_assert_lt(now_ms() - t, 2000, "other connections waited %lld ms", (long long)(now_ms() - t));

    /* Now read everything: one ok reply per request sent. */
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    bool *seen = calloc(sent + 1, 1);
    for (size_t k = 0; k < sent; k++) {
        uint64_t id = 0;
        bool ok = ssl_recv_ok(slow, &id);
        cr_assert(id >= 1 && id <= sent && !seen[id], "bad or repeated id %llu",
                  (unsigned long long)id);
        seen[id] = true;
        cr_assert(ok, "reply %llu is not ok", (unsigned long long)id);
    }
    free(seen);
    test_tls_close(slow);
    evs_free(w);
    cr_assert(test_daemon_alive(&d));
    cr_assert_eq(test_daemon_stop(&d), 0, "evstored did not exit 0 on SIGTERM");
}

/* Runs evstored --check-config with args; returns its exit status, its output in out. */
static int check_config(const char *args, char *out, size_t len) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s --check-config --store memory %s 2>&1", test_evstored_bin(),
             args);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t n = fread(out, 1, len - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(tls_limits, check_config_validates_the_tls_options) {
    char args[900], out[2048];
    /* TLS alone, the plain listener switched off, the default port. */
    snprintf(args, sizeof args, "--listen '' --tls-listen 127.0.0.1 --tls-cert %s --tls-key %s",
             certs.server_cert, certs.server_key);
    cr_assert_eq(check_config(args, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "configuration OK"), "%s", out);

    snprintf(args, sizeof args, "--tls-listen 127.0.0.1:7434 --tls-cert %s/nope.pem --tls-key %s",
             certs.dir, certs.server_key);
    cr_assert_eq(check_config(args, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "tls_cert: cannot read"), "%s", out);

    snprintf(args, sizeof args, "--tls-listen 127.0.0.1:7434 --tls-cert %s --tls-key %s",
             certs.server_cert, certs.client_key);
    cr_assert_eq(check_config(args, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "tls_key:") && strstr(out, "mismatch"), "%s", out);

    snprintf(args, sizeof args, "--tls-listen 127.0.0.1:7434 --tls-cert %s", certs.server_cert);
    cr_assert_eq(check_config(args, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "tls_key are required"), "%s", out);

    snprintf(args, sizeof args, "--tls-cert %s --tls-key %s", certs.server_cert, certs.server_key);
    cr_assert_eq(check_config(args, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "tls_listen is not"), "%s", out);

    cr_assert_eq(check_config("--listen ''", out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "no listener"), "%s", out);
}

/* A client that opens the TLS port and never completes the handshake is closed after
 * frame_timeout, as one that never completes a frame is. */
Test(tls_limits, a_handshake_that_never_completes_is_closed_after_frame_timeout) {
    int tls_port;
    cr_assert_eq(test_tls_daemon_start(&d, &tls_port, log_path, certs.server_cert, certs.server_key,
                                       NULL, (const char *[]){"--frame-timeout", "1", NULL}),
                 0);
    int fd = raw_connect_tcp(tls_port);
    cr_assert_geq(fd, 0);
    int64_t t = now_ms();
    cr_assert_eq(raw_wait_closed(fd, 10000), 0, "a silent client on the TLS port stayed open");
    cr_assert_geq(now_ms() - t, 900, "closed before frame_timeout");
    close(fd);
    cr_assert_eq(test_count_lines(log_path, "the TLS handshake begun"), 1,
                 "the reason is logged once");
    cr_assert(test_daemon_alive(&d));
    cr_assert_eq(test_daemon_stop(&d), 0, "evstored did not exit 0 on SIGTERM");
}
