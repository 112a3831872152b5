/* test_tls.c: TLS between libevstore and evstored: the operations, subscriptions and streams
 * over TLS, what each side refuses (an untrusted server, a wrong host name, a client without the
 * certificate tls_ca asks for, a plain client on the TLS port), a new certificate on SIGHUP and
 * a 16 MiB event. Certificates are made at test time (tests/common/tls_certs.h). */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include <evstore.h>
#include <evstore/async.h>
#include <evstore/libuv.h>

#include "../common/rawio.h"
#include "../common/tls_certs.h"

static test_certs_t certs;
static test_daemon_t d;
static int tls_port;
static char tls_addr[64]; /* "tls://127.0.0.1:PORT" */
static char log_path[128];
static evs_tls_options_t trust_ca; /* trusts the CA that signed server.pem */

static void setup(void) {
    cr_assert_eq(test_certs_make(&certs), 0, "cannot make the test certificates");
    snprintf(log_path, sizeof log_path, "%s/evstored.log", certs.dir);
    trust_ca = (evs_tls_options_t){.ca_file = certs.ca};
}

static void teardown(void) {
    if (d.pid > 0) test_daemon_stop(&d);
    test_certs_remove(&certs);
}

TestSuite(tls, .init = setup, .fini = teardown, .timeout = 60);

/* Starts the daemon with a TLS listener on cert and key (tls_ca = ca when non-NULL). */
static void start(const char *cert, const char *key, const char *ca) {
    cr_assert_eq(test_tls_daemon_start(&d, &tls_port, log_path, cert, key, ca, NULL), 0,
                 "evstored did not start with TLS (its log: %s)", log_path);
    snprintf(tls_addr, sizeof tls_addr, "tls://127.0.0.1:%d", tls_port);
}

/* Ends a test: the daemon serves a fresh plain connection and exits 0 on SIGTERM. */
static void finish(void) {
    cr_assert(test_daemon_alive(&d), "the daemon no longer answers a ping");
    cr_assert_eq(test_daemon_stop(&d), 0, "evstored did not exit 0 on SIGTERM");
}

static evs_context_t *connect_tls(const evs_tls_options_t *tls) {
    evs_options_t o = {.addr = tls_addr, .timeout_ms = 10000, .tls = tls};
    evs_context_t *c = evs_connect_with_options(&o);
    cr_assert_not_null(c);
    return c;
}

/* A TLS connection with the test CA that must work: it answers a ping. */
static evs_context_t *connect_ok(const evs_tls_options_t *tls) {
    evs_context_t *c = connect_tls(tls);
    cr_assert_eq(c->err, 0, "connect: %s", c->errstr);
    cr_assert_eq(evs_ping(c, NULL, 0), 0, "ping over TLS: %s", c->errstr);
    return c;
}

/* True when a TLS connection with tls cannot be used: the connect or its first ping fails (with
 * TLS 1.3 a server refuses a client's certificate after the client's side of the handshake is
 * done, so the refusal may come with the first reply). errstr gets the reason. */
static bool refused(const evs_tls_options_t *tls, char *errstr, size_t len) {
    evs_context_t *c = connect_tls(tls);
    bool no = c->err != 0 || evs_ping(c, NULL, 0) != 0;
    snprintf(errstr, len, "%s", c->errstr);
    if (no)
        cr_assert_eq(c->err, EVS_EIO, "a refusal is an I/O error, not %d (%s)", c->err, c->errstr);
    evs_free(c);
    return no;
}

static evs_event_t mk(const char *entity, const char *topic, const void *payload, size_t len) {
    evs_event_t ev;
    memset(&ev, 0, sizeof ev);
    ev.entity_id = (char *)entity;
    ev.topic = (char *)topic;
    ev.payload = (uint8_t *)payload;
    ev.payload_len = len;
    return ev;
}

/* ---------------------------------------------------------------- through the library */

Test(tls, append_read_subscribe_and_stream_over_tls) {
    start(certs.server_cert, certs.server_key, NULL);
    evs_context_t *w = connect_ok(&trust_ca), *s = connect_ok(&trust_ca);
    uint64_t sub;
    cr_assert_eq(evs_subscribe(s, NULL, &sub), 0, "subscribe: %s", s->errstr);

    const char *entity = tname("tls-e"), *topic = tname("tls-t");
    evs_event_t evs[3] = {mk(entity, topic, "{\"n\":1}", 7), mk(entity, topic, "{\"n\":2}", 7),
                          mk(entity, topic, "{\"n\":3}", 7)};
    uint64_t pos[3];
    cr_assert_eq(evs_append(w, evs, 3, pos, NULL), 0, "append: %s", w->errstr);

    evs_events_t *list = NULL;
    cr_assert_eq(evs_get_by_entity(w, entity, 0, 0, false, &list), 0, "read: %s", w->errstr);
    cr_assert_eq(list->n, 3);
    for (size_t i = 0; i < 3; i++) {
        cr_assert_eq(list->events[i].position, pos[i]);
        cr_assert_eq(memcmp(list->events[i].payload, evs[i].payload, 7), 0);
    }
    evs_events_free(list);

    size_t got = 0;
    int64_t deadline = now_ms() + 10000;
    while (got < 3 && now_ms() < deadline) {
        evs_push_t *p = NULL;
        cr_assert_eq(evs_sub_next(s, sub, 1000, &p), 0, "sub_next: %s", s->errstr);
        if (!p) continue;
        for (size_t i = 0; i < p->n; i++, got++)
            cr_assert_eq(p->events[i].position, pos[got]);
        evs_push_free(p);
    }
    cr_assert_eq(got, 3, "the subscriber got %zu of 3 events over TLS", got);

    /* A stream connects (and would reconnect) over TLS as well. */
    evs_stream_options_t so = {.addr = tls_addr,
                               .timeout_ms = 10000,
                               .has_after = true,
                               .after = pos[0] - 1,
                               .tls = &trust_ca};
    evs_stream_t *st = evs_stream_open(&so);
    cr_assert_not_null(st);
    for (size_t i = 0; i < 3; i++) {
        evs_event_t *ev = NULL;
        deadline = now_ms() + 10000;
        while (!ev && now_ms() < deadline)
            cr_assert_eq(evs_stream_next(st, 1000, &ev), 0, "stream: %s", evs_stream_errstr(st));
        cr_assert_not_null(ev, "the stream got %zu of 3 events", i);
        cr_assert_eq(ev->position, pos[i]);
        evs_event_free(ev);
    }
    evs_stream_close(st);
    evs_free(w);
    evs_free(s);
    finish();
}

static void on_async_reply(evs_async_t *ac, const evs_async_reply_t *reply, void *privdata) {
    int *status = privdata;
    *status = reply ? reply->err : ac->err ? ac->err : -1;
    evs_async_free(ac);
}

Test(tls, the_async_client_appends_over_tls) {
    start(certs.server_cert, certs.server_key, NULL);
    uv_loop_t loop;
    uv_loop_init(&loop);
    evs_options_t o = {.addr = tls_addr, .tls = &trust_ca};
    evs_async_t *ac = evs_async_connect(&o);
    cr_assert_not_null(ac);
    cr_assert_eq(ac->err, 0, "%s", ac->errstr);
    cr_assert_eq(evs_libuv_attach(ac, &loop), 0);
    const char *entity = tname("async-e"), *topic = tname("async-t");
    evs_event_t ev = mk(entity, topic, "{}", 2);
    int status = 1;
    cr_assert_eq(evs_async_append(ac, &ev, 1, on_async_reply, &status), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    cr_assert_eq(status, 0, "the append over TLS failed: %d", status);

    evs_context_t *c = connect_ok(&trust_ca);
    evs_events_t *list = NULL;
    cr_assert_eq(evs_get_by_entity(c, entity, 0, 0, false, &list), 0);
    cr_assert_eq(list->n, 1);
    evs_events_free(list);
    evs_free(c);
    finish();
}

Test(tls, a_16_mib_event_round_trips) {
    start(certs.server_cert, certs.server_key, NULL);
    evs_context_t *c = connect_ok(&trust_ca);
    size_t len = 16u * 1024 * 1024 - 4096;
    uint8_t *payload = malloc(len);
    cr_assert_not_null(payload);
    for (size_t i = 0; i < len; i++)
        payload[i] = (uint8_t)(i * 7 + i / 4096);
    const char *entity = tname("big");
    evs_event_t ev = mk(entity, tname("big-t"), payload, len);
    cr_assert_eq(evs_append(c, &ev, 1, NULL, NULL), 0, "append: %s", c->errstr);
    evs_events_t *list = NULL;
    cr_assert_eq(evs_get_by_entity(c, entity, 0, 0, false, &list), 0, "read: %s", c->errstr);
    cr_assert_eq(list->n, 1);
    cr_assert_eq(list->events[0].payload_len, len);
    cr_assert_eq(memcmp(list->events[0].payload, payload, len), 0, "the payload came back changed");
    evs_events_free(list);
    free(payload);
    cr_assert_eq(evs_ping(c, NULL, 0), 0, "the connection serves on: %s", c->errstr);
    evs_free(c);
    finish();
}

/* ---------------------------------------------------------------- refusals */

Test(tls, a_server_whose_ca_is_not_trusted_is_refused) {
    start(certs.server_cert, certs.server_key, NULL);
    evs_tls_options_t other = {.ca_file = certs.other_ca};
    char why[256];
    cr_assert(refused(&other, why, sizeof why), "a server signed by an untrusted CA was accepted");
    cr_assert(strstr(why, "not trusted"), "the reason says why: %s", why);
    evs_context_t *c = connect_ok(&trust_ca); /* the daemon serves on */
    evs_free(c);
    finish();
}

Test(tls, a_host_name_mismatch_is_refused) {
    start(certs.server_cert, certs.server_key, NULL);
    evs_tls_options_t wrong = {.ca_file = certs.ca, .server_name = "db.example"};
    char why[256];
    cr_assert(refused(&wrong, why, sizeof why), "a certificate for another name was accepted");
    cr_assert(strstr(why, "mismatch"), "the reason says why: %s", why);
    /* The name the certificate does carry is accepted. */
    evs_tls_options_t right = {.ca_file = certs.ca, .server_name = "localhost"};
    evs_context_t *c = connect_ok(&right);
    evs_free(c);
    finish();
}

Test(tls, tls_ca_refuses_a_client_without_a_certificate) {
    start(certs.server_cert, certs.server_key, certs.ca);
    char why[256];
    cr_assert(refused(&trust_ca, why, sizeof why), "a client without a certificate was served");
    /* One signed by another CA is refused too. */
    evs_tls_options_t other = {.ca_file = certs.ca,
                               .cert_file = certs.other_server_cert,
                               .key_file = certs.other_server_key};
    cr_assert(refused(&other, why, sizeof why), "a client certificate of another CA was accepted");
    finish();
}

Test(tls, tls_ca_accepts_a_client_certificate_and_logs_its_cn) {
    start(certs.server_cert, certs.server_key, certs.ca);
    evs_tls_options_t mine = {
        .ca_file = certs.ca, .cert_file = certs.client_cert, .key_file = certs.client_key};
    evs_context_t *c = connect_ok(&mine);
    const char *line = "TLS client certificate verified: CN \"client.example\"";
    int64_t deadline = now_ms() + 10000;
    while (test_count_lines(log_path, line) == 0 && now_ms() < deadline)
        sleep_ms(20);
    cr_assert_eq(test_count_lines(log_path, line), 1, "the daemon did not log the CN once");
    evs_free(c);
    finish();
}

/* With an auth_file, a TLS client whose verified certificate's CN is listed is that principal
 * from its first request, with no token: here "cnreader", who may read but not append. */
Test(tls, a_verified_client_certificate_is_the_principal_of_its_cn) {
    /* The readiness check authenticates with a token of its own principal. */
    static const char ready_token[] = "tls-test-readiness-token";
    unsigned char digest[32];
    unsigned int dlen = 0;
    cr_assert(EVP_Digest(ready_token, sizeof ready_token - 1, digest, &dlen, EVP_sha256(), NULL));
    char hex[65];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    char auth_path[160];
    snprintf(auth_path, sizeof auth_path, "%s/auth", certs.dir);
    FILE *f = fopen(auth_path, "w");
    cr_assert_not_null(f);
    fprintf(f,
            "ready     read,admin  token-sha256:%s\ncnreader  read        cert-cn:client.example\n",
            hex);
    fclose(f);
    test_daemon_token = ready_token;
    const char *extra[] = {"--auth-file", auth_path, NULL};
    int rc = test_tls_daemon_start(&d, &tls_port, log_path, certs.server_cert, certs.server_key,
                                   certs.ca, extra);
    test_daemon_token = NULL;
    cr_assert_eq(rc, 0, "evstored did not start with TLS and an auth_file (its log: %s)", log_path);
    snprintf(tls_addr, sizeof tls_addr, "tls://127.0.0.1:%d", tls_port);

    evs_tls_options_t mine = {
        .ca_file = certs.ca, .cert_file = certs.client_cert, .key_file = certs.client_key};
    evs_options_t o = {.addr = tls_addr, .timeout_ms = 10000, .tls = &mine, .token = ""};
    evs_context_t *c = evs_connect_with_options(&o);
    cr_assert_not_null(c);
    cr_assert_eq(c->err, 0, "connect: %s", c->errstr);
    evs_events_t *list = NULL;
    cr_assert_eq(evs_read_all(c, 0, 10, &list), 0, "cnreader may read: %s", c->errstr);
    evs_events_free(list);
    const char *entity = tname("cn-e"), *topic = tname("cn-t");
    evs_event_t ev = mk(entity, topic, "{}", 2);
    cr_assert_eq(evs_append(c, &ev, 1, NULL, NULL), EVS_EFORBIDDEN, "cnreader may not append: %s",
                 c->errstr);
    cr_assert(strstr(c->errstr, "write"), "the refusal names the permission: %s", c->errstr);
    evs_free(c);
    finish();
}

Test(tls, a_plain_client_on_the_tls_port_is_refused_and_the_daemon_serves_on) {
    start(certs.server_cert, certs.server_key, NULL);
    int fd = raw_connect_tcp(tls_port);
    cr_assert_geq(fd, 0);
    rq_t r;
    rq_begin(&r, "ping", 1, 0);
    cr_assert_eq(raw_send_rq(fd, &r), 0);
    rq_free(&r);
    cr_assert_eq(raw_wait_closed(fd, 10000), 0, "the daemon did not close a plain client");
    close(fd);
    const char *line = "TLS handshake failed";
    int64_t deadline = now_ms() + 10000;
    while (test_count_lines(log_path, line) == 0 && now_ms() < deadline)
        sleep_ms(20);
    cr_assert_eq(test_count_lines(log_path, line), 1, "the refusal is logged once");
    evs_context_t *c = connect_ok(&trust_ca);
    evs_free(c);
    finish();
}

/* ---------------------------------------------------------------- reload */

Test(tls, sighup_loads_a_new_certificate_for_new_connections_only) {
    char cert[160], key[160];
    snprintf(cert, sizeof cert, "%s/live.pem", certs.dir);
    snprintf(key, sizeof key, "%s/live.key", certs.dir);
    cr_assert_eq(test_certs_copy(certs.server_cert, cert), 0);
    cr_assert_eq(test_certs_copy(certs.server_key, key), 0);
    start(cert, key, NULL);
    evs_context_t *old = connect_ok(&trust_ca);

    /* The files now hold a certificate of the other CA. */
    cr_assert_eq(test_certs_copy(certs.other_server_cert, cert), 0);
    cr_assert_eq(test_certs_copy(certs.other_server_key, key), 0);
    cr_assert_eq(kill(d.pid, SIGHUP), 0);
    evs_tls_options_t other = {.ca_file = certs.other_ca};
    evs_context_t *fresh = NULL;
    int64_t deadline = now_ms() + 10000;
    while (now_ms() < deadline) {
        fresh = connect_tls(&other);
        if (fresh->err == 0 && evs_ping(fresh, NULL, 0) == 0) break;
        evs_free(fresh);
        fresh = NULL;
        sleep_ms(50);
    }
    cr_assert_not_null(fresh, "no new connection got the new certificate after SIGHUP");
    char why[256];
    cr_assert(refused(&trust_ca, why, sizeof why), "a new connection still got the old one");
    /* The connection made before the reload keeps its session and serves on. */
    cr_assert_eq(evs_ping(old, NULL, 0), 0, "the old connection broke: %s", old->errstr);
    evs_free(old);
    evs_free(fresh);
    finish();
}
