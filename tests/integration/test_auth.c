/* test_auth.c: principals and permissions over the raw protocol: a daemon with an auth_file
 * serves only ping and auth before a connection is a principal, three wrong tokens close the
 * connection, each op needs its permission, a prefix-limited write refuses a whole append that
 * touches another entity, a listed Unix uid needs no token, and SIGHUP applies a changed
 * auth_file (a bad one keeps the old). */
#include <criterion/criterion.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "auth_fixture.h"
#include "fixture.h"

TestSuite(auth, .fini = fx_teardown, .timeout = 60);

/* Sends auth with token as request id; returns the reply (reply_free it). */
static reply_t send_auth(int fd, uint64_t id, const char *token) {
    rq_t r;
    rq_begin(&r, "auth", id, 1);
    pk_str(&r.pk, "token");
    pk_str(&r.pk, token);
    fx_send_rq(fd, &r);
    reply_t rep;
    cr_assert_eq(raw_recv(fd, 5000, &rep), 0, "no reply to auth");
    return rep;
}

/* Authenticates fd as the principal name, or fails the test. */
static void auth_as(int fd, const char *token, const char *name) {
    reply_t rep = send_auth(fd, 900, token);
    cr_assert(reply_ok(&rep), "auth refused: %s", reply_code(&rep));
    cr_assert(obj_is_str(reply_get(&rep, "principal"), name));
    reply_free(&rep);
}

/* Sends a request of op with the arguments it needs, as id. */
static void send_op(int fd, const char *op, uint64_t id) {
    rq_t r;
    if (strcmp(op, "append") == 0) {
        rq_begin(&r, op, id, 1);
        pk_str(&r.pk, "events");
        msgpack_pack_array(&r.pk, 1);
        fx_pack_event(&r.pk, tname("orders-1"), strlen(tname("orders-1")), "t", 3);
    } else if (strcmp(op, "get-by-entity") == 0 || strcmp(op, "delete-entity") == 0 ||
               strcmp(op, "get-snapshot") == 0) {
        rq_begin(&r, op, id, 1);
        pk_str(&r.pk, "entity_id");
        pk_str(&r.pk, tname("orders-1"));
    } else if (strcmp(op, "get-by-topic") == 0) {
        rq_begin(&r, op, id, 1);
        pk_str(&r.pk, "topic");
        pk_str(&r.pk, tname("t"));
    } else if (strcmp(op, "get-by-id") == 0) {
        rq_begin(&r, op, id, 1);
        pk_str(&r.pk, "event_id");
        uint8_t uuid[16] = {1};
        pk_bin(&r.pk, uuid, 16);
    } else if (strcmp(op, "unsubscribe") == 0) {
        rq_begin(&r, op, id, 1);
        pk_str(&r.pk, "sub");
        msgpack_pack_uint64(&r.pk, 1);
    } else if (strcmp(op, "put-snapshot") == 0) {
        rq_begin(&r, op, id, 4);
        pk_str(&r.pk, "entity_id");
        pk_str(&r.pk, tname("orders-1"));
        pk_str(&r.pk, "version");
        msgpack_pack_uint64(&r.pk, 0);
        pk_str(&r.pk, "topic");
        pk_str(&r.pk, "snap");
        pk_str(&r.pk, "payload");
        pk_bin(&r.pk, "x", 1);
    } else {
        rq_begin(&r, op, id, 0);
    }
    fx_send_rq(fd, &r);
}

/* Appends events to the entities (tname'd) in one request as id; returns the reply. */
static reply_t append_to(int fd, uint64_t id, const char *const *entities, size_t n) {
    rq_t r;
    rq_begin(&r, "append", id, 1);
    pk_str(&r.pk, "events");
    msgpack_pack_array(&r.pk, (uint32_t)n);
    for (size_t i = 0; i < n; i++)
        fx_pack_event(&r.pk, tname(entities[i]), strlen(tname(entities[i])), "t", 3);
    fx_send_rq(fd, &r);
    reply_t rep;
    cr_assert_eq(raw_recv(fd, 5000, &rep), 0, "no reply to append");
    return rep;
}

/* The number of events the entity (tname'd) holds, read as admin on a new connection. */
static size_t events_of(const char *entity) {
    int fd = fx_connect();
    auth_as(fd, AUTH_ADMIN, "admin");
    rq_t r;
    rq_begin(&r, "get-by-entity", 7, 1);
    pk_str(&r.pk, "entity_id");
    pk_str(&r.pk, tname(entity));
    fx_send_rq(fd, &r);
    reply_t rep = fx_expect_ok(fd, 7);
    const msgpack_object *evs = reply_get(&rep, "events");
    cr_assert(evs && evs->type == MSGPACK_OBJECT_ARRAY);
    size_t n = evs->via.array.size;
    reply_free(&rep);
    close(fd);
    return n;
}

static const char *const guarded_ops[] = {
    "append",      "get-by-entity", "get-by-topic", "get-by-id",    "read-all", "subscribe",
    "unsubscribe", "delete-entity", "put-snapshot", "get-snapshot", "stats",    "config",
};
#define NGUARDED (sizeof guarded_ops / sizeof guarded_ops[0])

Test(auth, without_a_token_everything_but_ping_and_auth_is_unauthorized) {
    auth_daemon_start(&fx_daemon, false);
    int fd = fx_connect();
    for (size_t i = 0; i < NGUARDED; i++) {
        send_op(fd, guarded_ops[i], 10 + i);
        fx_expect_error(fd, "unauthorized", 10 + i);
    }
    cr_assert_eq(raw_ping(fd, 50, 5000), 0, "ping is served before auth");
    reply_t rep = send_auth(fd, 51, AUTH_READER);
    cr_assert(reply_ok(&rep));
    cr_assert(obj_is_str(reply_get(&rep, "principal"), "reader"));
    const msgpack_object *perms = reply_get(&rep, "permissions");
    cr_assert(perms && perms->type == MSGPACK_OBJECT_ARRAY && perms->via.array.size == 1);
    cr_assert(obj_is_str(&perms->via.array.ptr[0], "read"));
    reply_free(&rep);
    send_op(fd, "read-all", 52);
    reply_free((reply_t[]){fx_expect_ok(fd, 52)});
    cr_assert_eq(events_of("orders-1"), 0, "the unauthorized append stored nothing");
    close(fd);
    fx_finish();
}

Test(auth, three_wrong_tokens_close_the_connection) {
    auth_daemon_start(&fx_daemon, false);
    int fd = fx_connect();
    for (uint64_t i = 1; i <= 3; i++) {
        reply_t rep = send_auth(fd, i, "not-a-token-of-the-file");
        cr_assert_str_eq(reply_code(&rep), "unauthorized");
        reply_free(&rep);
    }
    cr_assert_eq(raw_wait_closed(fd, 5000), 0, "the third failure closes the connection");
    close(fd);
    /* Two failures and a right token: the connection serves on. */
    fd = fx_connect();
    for (uint64_t i = 1; i <= 2; i++) {
        reply_t rep = send_auth(fd, i, "wrong");
        cr_assert_str_eq(reply_code(&rep), "unauthorized");
        reply_free(&rep);
    }
    auth_as(fd, AUTH_READER, "reader");
    fx_conn_still_serves(fd);
    close(fd);
    fx_finish();
}

Test(auth, read_cannot_append_delete_or_administer) {
    auth_daemon_start(&fx_daemon, false);
    int fd = fx_connect();
    auth_as(fd, AUTH_READER, "reader");
    const char *denied[] = {"append", "delete-entity", "put-snapshot", "stats", "config"};
    for (size_t i = 0; i < 5; i++) {
        send_op(fd, denied[i], 20 + i);
        fx_expect_error(fd, "forbidden", 20 + i);
    }
    send_op(fd, "get-by-entity", 30);
    reply_free((reply_t[]){fx_expect_ok(fd, 30)});
    cr_assert_eq(events_of("orders-1"), 0);
    close(fd);
    fx_finish();
}

Test(auth, a_write_prefix_refuses_other_entities_and_whole_batches_touching_them) {
    auth_daemon_start(&fx_daemon, false);
    int fd = fx_connect();
    auth_as(fd, AUTH_ORDERS, "orders");
    reply_t rep = append_to(fd, 1, (const char *[]){"orders-1"}, 1);
    cr_assert(reply_ok(&rep), "orders may write orders-1: %s", reply_code(&rep));
    reply_free(&rep);
    rep = append_to(fd, 2, (const char *[]){"carts-1"}, 1);
    cr_assert_str_eq(reply_code(&rep), "forbidden");
    reply_free(&rep);
    rep = append_to(fd, 3, (const char *[]){"orders-2", "carts-1", "orders-3"}, 3);
    cr_assert_str_eq(reply_code(&rep), "forbidden");
    reply_free(&rep);
    send_op(fd, "delete-entity", 4);
    fx_expect_error(fd, "forbidden", 4);
    close(fd);
    cr_assert_eq(events_of("orders-1"), 1);
    cr_assert_eq(events_of("orders-2"), 0, "nothing of the refused batch is stored");
    cr_assert_eq(events_of("orders-3"), 0);
    cr_assert_eq(events_of("carts-1"), 0);
    fx_finish();
}

Test(auth, admin_sees_config_and_stats) {
    auth_daemon_start(&fx_daemon, false);
    int fd = fx_connect();
    auth_as(fd, AUTH_ADMIN, "admin");
    send_op(fd, "config", 5);
    reply_t rep = fx_expect_ok(fd, 5);
    const msgpack_object *af = obj_get(obj_get(reply_get(&rep, "config"), "auth_file"), "value");
    cr_assert(obj_is_str(af, auth_file_path()));
    reply_free(&rep);
    send_op(fd, "stats", 6);
    reply_free((reply_t[]){fx_expect_ok(fd, 6)});
    close(fd);
    fx_finish();
}

Test(auth, a_unix_peer_whose_uid_is_listed_needs_no_token) {
    auth_daemon_start(&fx_daemon, true);
    int fd = raw_connect_unix(fx_daemon.unix_path);
    cr_assert_geq(fd, 0);
    reply_t rep = append_to(fd, 1, (const char *[]){"local-1"}, 1);
    cr_assert(reply_ok(&rep), "a listed uid may append: %s", reply_code(&rep));
    reply_free(&rep);
    send_op(fd, "delete-entity", 2);
    fx_expect_error(fd, "forbidden", 2); /* local has read,write only */
    close(fd);
    /* The same over TCP needs a token. */
    fd = fx_connect();
    send_op(fd, "read-all", 3);
    fx_expect_error(fd, "unauthorized", 3);
    close(fd);
    cr_assert_eq(events_of("local-1"), 1);
    fx_finish();
}

/* Tries auth with token on new connections until it is ok, for up to 10 s. */
static bool auth_works_soon(const char *token) {
    int64_t deadline = now_ms() + 10000;
    do {
        int fd = fx_connect();
        reply_t rep = send_auth(fd, 1, token);
        bool ok = reply_ok(&rep);
        reply_free(&rep);
        close(fd);
        if (ok) return true;
        sleep_ms(20);
    } while (now_ms() < deadline);
    return false;
}

/* The daemon's reloads_failed counter, read as admin. */
static uint64_t reloads_failed(void) {
    int fd = fx_connect();
    auth_as(fd, AUTH_ADMIN, "admin");
    send_op(fd, "stats", 2);
    reply_t rep = fx_expect_ok(fd, 2);
    uint64_t n = obj_uint(obj_get(reply_get(&rep, "stats"), "reloads_failed"));
    reply_free(&rep);
    close(fd);
    return n;
}

Test(auth, sighup_applies_a_changed_auth_file_and_keeps_the_old_one_when_bad) {
    auth_daemon_start(&fx_daemon, false);
    /* Open connections: orders will be gone from the new file, reader will stay. */
    int orders = fx_connect(), reader = fx_connect();
    auth_as(orders, AUTH_ORDERS, "orders");
    auth_as(reader, AUTH_READER, "reader");
    int fd = fx_connect();
    reply_t rep = send_auth(fd, 1, "rotated-token-0123456789");
    cr_assert_str_eq(reply_code(&rep), "unauthorized");
    reply_free(&rep);
    close(fd);

    /* A broken file: the running principals stay. */
    auth_file_write("admin admin token-sha256:not-hex\n");
    cr_assert_eq(kill(fx_daemon.pid, SIGHUP), 0);
    int64_t deadline = now_ms() + 10000;
    while (reloads_failed() < 1 && now_ms() < deadline)
        sleep_ms(20);
    cr_assert_eq(reloads_failed(), 1, "the bad auth_file failed the reload");
    cr_assert(auth_works_soon(AUTH_READER), "the old file is still in force");

    /* The reader's token rotated: the new one works, the old one no longer does. */
    char text[1024];
    snprintf(text, sizeof text, "%s", auth_line("reader", "read", "rotated-token-0123456789"));
    snprintf(text + strlen(text), sizeof text - strlen(text), "%s",
             auth_line("admin", "admin", AUTH_ADMIN));
    auth_file_write(text);
    cr_assert_eq(kill(fx_daemon.pid, SIGHUP), 0);
    cr_assert(auth_works_soon("rotated-token-0123456789"), "the new token is accepted");
    fd = fx_connect();
    rep = send_auth(fd, 1, AUTH_READER);
    cr_assert_str_eq(reply_code(&rep), "unauthorized", "the old token is refused");
    reply_free(&rep);
    close(fd);
    /* The connections opened before keep the principal of their name, if it is still there. */
    send_op(reader, "read-all", 60);
    reply_free((reply_t[]){fx_expect_ok(reader, 60)});
    send_op(orders, "read-all", 61);
    fx_expect_error(orders, "unauthorized", 61);
    close(reader);
    close(orders);
    fx_finish();
}
