/* fixture.c: the raw-protocol integration tests' fixture (see fixture.h). */
#include "fixture.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

test_daemon_t fx_daemon;

void fx_start(const char *const *extra) {
    cr_assert_eq(test_daemon_start(&fx_daemon, extra), 0, "evstored did not start");
}

void fx_finish(void) {
    cr_assert(test_daemon_alive(&fx_daemon), "the daemon no longer answers a ping");
    cr_assert_eq(test_daemon_stop(&fx_daemon), 0, "evstored did not exit 0 on SIGTERM");
}

void fx_teardown(void) {
    if (fx_daemon.pid > 0) test_daemon_stop(&fx_daemon);
}

int fx_connect(void) {
    int fd = test_connect_raw(&fx_daemon);
    cr_assert_geq(fd, 0, "cannot connect to the daemon: %s", strerror(errno));
    return fd;
}

int fx_connect_small_rcvbuf(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    int sz = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)fx_daemon.port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0, "%s", strerror(errno));
    return fd;
}

void fx_expect_error(int fd, const char *code, uint64_t id) {
    reply_t r;
    int rc = raw_recv(fd, 5000, &r);
    cr_assert_eq(rc, 0, "no reply (%d)", rc);
    cr_assert_str_eq(reply_code(&r), code);
    const msgpack_object *msg = obj_get(reply_get(&r, "error"), "message");
    cr_assert(msg && msg->type == MSGPACK_OBJECT_STR && msg->via.str.size > 0,
              "an error reply carries a message");
    uint64_t got = 0;
    if (id) {
        cr_assert(reply_id(&r, &got), "the id was not echoed");
        cr_assert_eq(got, id);
    } else {
        cr_assert_not(reply_id(&r, &got), "an id appeared that the request could not have given");
    }
    reply_free(&r);
}

reply_t fx_expect_ok(int fd, uint64_t id) {
    reply_t r;
    int rc = raw_recv(fd, 10000, &r);
    cr_assert_eq(rc, 0, "no reply to request %llu (%d)", (unsigned long long)id, rc);
    uint64_t got = 0;
    cr_assert(reply_id(&r, &got) && got == id, "expected the reply to request %llu",
              (unsigned long long)id);
    cr_assert(reply_ok(&r), "request %llu failed: %s", (unsigned long long)id, reply_code(&r));
    return r;
}

void fx_conn_still_serves(int fd) {
    cr_assert_eq(raw_ping(fd, 777, 5000), 0, "the connection stopped serving after the error");
}

void fx_send_bytes(int fd, const void *p, size_t n) {
    cr_assert_eq(raw_send(fd, p, n), 0, "send: %s", strerror(errno));
}

void fx_send_frame(int fd, const void *p, size_t n) {
    cr_assert_eq(raw_send_frame(fd, p, n), 0, "send: %s", strerror(errno));
}

void fx_send_rq(int fd, rq_t *r) {
    cr_assert_eq(raw_send_rq(fd, r), 0, "send: %s", strerror(errno));
    rq_free(r);
}

void fx_pack_event(msgpack_packer *pk, const char *entity, size_t entity_len, const char *topic,
                   size_t payload_len) {
    msgpack_pack_map(pk, 3);
    pk_str(pk, "entity_id");
    pk_strn(pk, entity, entity_len);
    pk_str(pk, "topic");
    pk_str(pk, tname(topic));
    pk_str(pk, "payload");
    msgpack_pack_bin(pk, payload_len);
    if (payload_len) {
        char *p = malloc(payload_len);
        memset(p, 'x', payload_len);
        msgpack_pack_bin_body(pk, p, payload_len);
        free(p);
    }
}

void fx_send_append(int fd, uint64_t id, const char *entity, size_t entity_len,
                    size_t payload_len) {
    rq_t r;
    rq_begin(&r, "append", id, 1);
    pk_str(&r.pk, "events");
    msgpack_pack_array(&r.pk, 1);
    fx_pack_event(&r.pk, entity, entity_len, "topic", payload_len);
    fx_send_rq(fd, &r);
}
