/* test_auth_client.c: tokens through libevstore against a daemon with an auth_file: the token of
 * evs_options_t (or $EVSTORE_TOKEN) is sent on connect, a wrong one fails the connect with
 * EVS_EUNAUTHORIZED, permissions come back as EVS_EFORBIDDEN, a stream sends its token on every
 * reconnect, and the asynchronous context sends it before its first append. */
#include <criterion/criterion.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <uv.h>

#include <evstore.h>
#include <evstore/async.h>
#include <evstore/libuv.h>

#include "../common/rawio.h"
#include "auth_fixture.h"

static test_daemon_t daemon_;

static void teardown(void) {
    if (daemon_.pid > 0) test_daemon_stop(&daemon_);
}

TestSuite(auth_client, .fini = teardown, .timeout = 60);

static evs_event_t event_for(const char *entity) {
    evs_event_t ev;
    memset(&ev, 0, sizeof ev);
    ev.entity_id = (char *)entity;
    ev.topic = "auth.Tested";
    ev.payload = (uint8_t *)"{}";
    ev.payload_len = 2;
    return ev;
}

static evs_context_t *connect_with(const char *token) {
    evs_options_t o = {.addr = daemon_.addr, .timeout_ms = 10000, .token = token};
    evs_context_t *c = evs_connect_with_options(&o);
    cr_assert_not_null(c);
    return c;
}

Test(auth_client, a_token_in_the_options_is_sent_on_connect) {
    auth_daemon_start(&daemon_, false);
    evs_event_t ev = event_for(tname("orders-1"));

    evs_context_t *c = connect_with("");
    cr_assert_eq(c->err, 0, "%s", c->errstr);
    cr_assert_eq(evs_ping(c, NULL, 0), 0, "ping needs no token");
    cr_assert_eq(evs_append(c, &ev, 1, NULL, NULL), EVS_EUNAUTHORIZED);
    cr_assert_str_eq(evs_strcode(c->err), "unauthorized");
    char principal[64];
    cr_assert_eq(evs_auth(c, AUTH_ORDERS, principal, sizeof principal), 0, "%s", c->errstr);
    cr_assert_str_eq(principal, "orders");
    cr_assert_eq(evs_append(c, &ev, 1, NULL, NULL), 0, "%s", c->errstr);
    evs_free(c);

    c = connect_with(AUTH_ORDERS);
    cr_assert_eq(c->err, 0, "%s", c->errstr);
    cr_assert_eq(evs_append(c, &ev, 1, NULL, NULL), 0, "%s", c->errstr);
    evs_event_t other = event_for(tname("carts-1"));
    cr_assert_eq(evs_append(c, &other, 1, NULL, NULL), EVS_EFORBIDDEN);
    cr_assert_eq(evs_delete_entity(c, tname("orders-1"), NULL), EVS_EFORBIDDEN);
    uint8_t *map = NULL;
    size_t len = 0;
    cr_assert_eq(evs_admin_call(c, "config", &map, &len), EVS_EFORBIDDEN);
    evs_events_t *list = NULL;
    cr_assert_eq(evs_get_by_entity(c, tname("orders-1"), 0, 0, false, &list), 0, "%s", c->errstr);
    cr_assert_eq(list->n, 2);
    evs_events_free(list);
    evs_free(c);

    c = connect_with("a wrong token");
    cr_assert_eq(c->err, EVS_EUNAUTHORIZED, "a refused token fails the connect: %s", c->errstr);
    cr_assert_eq(evs_ping(c, NULL, 0), EVS_EUNAUTHORIZED, "and the context is dead");
    evs_free(c);
    cr_assert_eq(test_daemon_stop(&daemon_), 0);
}

Test(auth_client, the_token_comes_from_EVSTORE_TOKEN_when_the_options_have_none) {
    auth_daemon_start(&daemon_, false);
    setenv("EVSTORE_TOKEN", AUTH_ADMIN, 1);
    evs_context_t *c = connect_with(NULL);
    cr_assert_eq(c->err, 0, "%s", c->errstr);
    uint8_t *map = NULL;
    size_t len = 0;
    cr_assert_eq(evs_admin_call(c, "stats", &map, &len), 0, "%s", c->errstr);
    free(map);
    evs_free(c);
    c = connect_with(""); /* "" sends none, whatever the environment says */
    cr_assert_eq(c->err, 0);
    cr_assert_eq(evs_admin_call(c, "stats", &map, &len), EVS_EUNAUTHORIZED);
    evs_free(c);
    unsetenv("EVSTORE_TOKEN");
    cr_assert_eq(test_daemon_stop(&daemon_), 0);
}

Test(auth_client, a_stream_authenticates_on_every_connect) {
    auth_daemon_start(&daemon_, false);
    const char *entity = tname("orders-s");
    evs_stream_options_t so = {.addr = daemon_.addr,
                               .timeout_ms = 10000,
                               .has_after = true,
                               .after = 0,
                               .entity_prefix = entity,
                               .retry_min_ms = 10,
                               .retry_max_ms = 50,
                               .token = AUTH_READER};
    evs_stream_t *s = evs_stream_open(&so);
    cr_assert_not_null(s);
    evs_context_t *w = connect_with(AUTH_ORDERS);
    evs_event_t ev = event_for(entity);
    cr_assert_eq(evs_append(w, &ev, 1, NULL, NULL), 0, "%s", w->errstr);
    evs_event_t *got = NULL;
    int64_t deadline = now_ms() + 10000;
    while (!got && now_ms() < deadline)
        cr_assert_geq(evs_stream_next(s, 200, &got), 0, "%s", evs_stream_errstr(s));
    cr_assert_not_null(got, "the stream sees the event");
    evs_event_free(got);
    evs_stream_close(s);

    /* A stream whose token is refused stops with EVS_EUNAUTHORIZED instead of retrying. */
    so.token = "wrong";
    s = evs_stream_open(&so);
    cr_assert_not_null(s);
    int r = 0;
    deadline = now_ms() + 10000;
    while (r == 0 && now_ms() < deadline)
        r = evs_stream_next(s, 200, &got);
    cr_assert_eq(r, EVS_EUNAUTHORIZED, "%s", evs_stream_errstr(s));
    evs_stream_close(s);
    evs_free(w);
    cr_assert_eq(test_daemon_stop(&daemon_), 0);
}

static int async_err = 1;
static void on_append(evs_async_t *ac, const evs_async_reply_t *reply, void *privdata) {
    (void)ac, (void)privdata;
    async_err = reply ? reply->err : ac->err;
}

/* Runs one async append to entity with token; returns its reply's code (or the context's). */
static int async_append(uv_loop_t *loop, const char *token, const char *entity) {
    evs_options_t o = {.addr = daemon_.addr, .token = token};
    evs_async_t *ac = evs_async_connect(&o);
    cr_assert_not_null(ac);
    cr_assert_eq(ac->err, 0, "%s", ac->errstr);
    cr_assert_eq(evs_libuv_attach(ac, loop), 0);
    evs_event_t ev = event_for(entity);
    async_err = 1;
    cr_assert_eq(evs_async_append(ac, &ev, 1, on_append, NULL), 0);
    while (async_err == 1)
        if (uv_run(loop, UV_RUN_ONCE) == 0)
            cr_assert_neq(async_err, 1, "the loop ran dry (token \"%s\")", token);
    evs_async_free(ac);
    return async_err;
}

Test(auth_client, the_async_context_authenticates_before_its_first_append) {
    auth_daemon_start(&daemon_, false);
    uv_loop_t loop;
    cr_assert_eq(uv_loop_init(&loop), 0);
    cr_assert_eq(async_append(&loop, AUTH_ORDERS, tname("orders-a")), 0);
    cr_assert_eq(async_append(&loop, "", tname("orders-a")), EVS_EUNAUTHORIZED);
    cr_assert_eq(async_append(&loop, "wrong", tname("orders-a")), EVS_EUNAUTHORIZED);
    cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
    cr_assert_eq(uv_loop_close(&loop), 0, "a libuv handle was left open");
    cr_assert_eq(test_daemon_stop(&daemon_), 0);
}

/* The evstore CLI next to the daemon binary. */
static void cli_path(char *out, size_t len) {
    char copy[512];
    snprintf(copy, sizeof copy, "%s", test_evstored_bin());
    snprintf(out, len, "%s/evstore", dirname(copy));
}

Test(auth_client, evstore_token_new_prints_a_token_and_the_line_that_grants_it) {
    char cli[512], cmd[2048], token[128] = "", line[256] = "", again[128] = "";
    cli_path(cli, sizeof cli);
    snprintf(cmd, sizeof cmd, "'%s' token new tester read,write:t- && '%s' token new", cli, cli);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    cr_assert_not_null(fgets(token, sizeof token, p));
    cr_assert_not_null(fgets(line, sizeof line, p));
    cr_assert_not_null(fgets(again, sizeof again, p));
    pclose(p);
    token[strcspn(token, "\n")] = '\0';
    cr_assert_eq(strlen(token), 64, "256 bits in hex: %s", token);
    cr_assert_eq(strspn(token, "0123456789abcdef"), 64);
    cr_assert_str_eq(line, auth_line("tester", "read,write:t-", token));
    again[strcspn(again, "\n")] = '\0';
    cr_assert_str_neq(again, token, "each token is new");

    /* The printed line, as an auth_file, lets the CLI in with --token. */
    auth_file_write(line);
    const char *extra[] = {"--auth-file", auth_file_path(), NULL};
    test_daemon_token = token;
    cr_assert_eq(test_daemon_launch(&daemon_, test_store(), false, extra), 0);
    snprintf(cmd, sizeof cmd, "'%s' -s %s --token %s all --limit 1 >/dev/null 2>&1", cli,
             daemon_.addr, token);
    cr_assert_eq(system(cmd), 0, "evstore --token is let in");
    snprintf(cmd, sizeof cmd, "'%s' -s %s all --limit 1 2>&1", cli, daemon_.addr);
    p = popen(cmd, "r");
    char out[512] = "";
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    int status = pclose(p);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1, "without a token: %s", out);
    cr_assert_not_null(strstr(out, "unauthorized"), "%s", out);
    cr_assert_eq(test_daemon_stop(&daemon_), 0);
}
