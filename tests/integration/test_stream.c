/* test_stream.c: evs_stream_t, the subscription that survives lost connections.
 *
 * The stream talks to the daemon through a small TCP proxy run by the test, so that the test can
 * cut the connection (a network failure) or point it at another daemon (a restart on the same
 * PostgreSQL database) while events are being appended. The application-side sequence must have
 * every acknowledged position exactly once, in increasing order. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <evstore.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../common/daemon.h"
#include "../common/rawio.h"
#include "proxy.h"

/* ---------------------------------------------------------------- the scenario */

#define EVENTS 300

/* Appends one event to entity through c; returns its position. */
static uint64_t append(evs_context_t *c, const char *entity) {
    evs_event_t ev = {.entity_id = (char *)entity,
                      .topic = (char *)tname("stream-topic"),
                      .payload = (uint8_t *)"\x80",
                      .payload_len = 1};
    uint64_t pos = 0;
    cr_assert_eq(evs_append(c, &ev, 1, &pos, NULL), 0, "append: %s", c->errstr);
    return pos;
}

/* Reads everything the stream has for up to wait_ms into got[]. */
static void drain(evs_stream_t *s, uint64_t *got, size_t *ngot, int wait_ms) {
    evs_event_t *ev;
    while (evs_stream_next(s, wait_ms, &ev) == 0 && ev) {
        cr_assert_lt(*ngot, (size_t)EVENTS * 2, "more events than appended");
        got[(*ngot)++] = ev->position;
        evs_event_free(ev);
    }
}

/* Appends EVENTS events while a stream reads them, calling disrupt() at a third and at two
 * thirds; then checks the stream saw exactly the acknowledged positions, in order. */
static void run(test_daemon_t *d, proxy_t *p, void (*disrupt)(test_daemon_t *, proxy_t *, int)) {
    const char *prefix = tname("acct-");
    char proxy_addr[64];
    snprintf(proxy_addr, sizeof proxy_addr, "127.0.0.1:%d", p->port);
    evs_stream_options_t so = {.addr = proxy_addr,
                               .has_after = true,
                               .after = 0,
                               .entity_prefix = prefix,
                               .timeout_ms = 5000,
                               .retry_min_ms = 20,
                               .retry_max_ms = 200};
    evs_stream_t *s = evs_stream_open(&so);
    cr_assert_not_null(s);
    evs_context_t *w = evs_connect(d->addr);
    cr_assert_eq(w->err, 0, "%s", w->errstr);
    static uint64_t acked[EVENTS], got[EVENTS * 2];
    size_t ngot = 0;
    char entity[300];
    for (int i = 0; i < EVENTS; i++) {
        snprintf(entity, sizeof entity, "%s%d", prefix, i % 7);
        acked[i] = append(w, entity);
        if (i % 10 == 0) drain(s, got, &ngot, 0);
        if (i == EVENTS / 3 || i == 2 * EVENTS / 3) {
            unsigned before = evs_stream_reconnects(s);
            disrupt(d, p, i);
            /* Let the stream notice and come back before going on, so that each disruption
             * hits a live connection. */
            int64_t limit = now_ms() + 10000;
            while (evs_stream_reconnects(s) == before && now_ms() < limit)
                drain(s, got, &ngot, 50);
            cr_assert_gt(evs_stream_reconnects(s), before, "the stream did not reconnect: %s",
                         evs_stream_errstr(s));
            /* The writer connects directly; it follows the daemon if it moved. */
            evs_free(w);
            w = evs_connect(d->addr);
            cr_assert_eq(w->err, 0, "%s", w->errstr);
        }
    }
    int64_t until = now_ms() + 15000;
    while (ngot < EVENTS && now_ms() < until)
        drain(s, got, &ngot, 200);
    cr_assert_eq(ngot, (size_t)EVENTS, "the stream delivered %zu of %d events", ngot, EVENTS);
    for (size_t i = 0; i < ngot; i++)
        cr_assert_eq(got[i], acked[i], "event %zu: position %llu, expected %llu", i,
                     (unsigned long long)got[i], (unsigned long long)acked[i]);
    cr_assert_geq(evs_stream_reconnects(s), 2, "the stream never had to reconnect");
    cr_assert(evs_stream_caught_up(s));
    evs_stream_close(s);
    evs_free(w);
}

static void cut(test_daemon_t *d, proxy_t *p, int i) {
    (void)d;
    (void)i;
    proxy_cut(p);
}

static void restart(test_daemon_t *d, proxy_t *p, int i) {
    (void)i;
    test_daemon_t next;
    cr_assert_eq(test_daemon_start(&next, NULL), 0);
    cr_assert_eq(test_daemon_stop(d), 0);
    *d = next;
    atomic_store(&p->target_port, d->port);
    proxy_cut(p);
}

Test(stream, resumes_after_network_cuts_without_gap_or_duplicate) {
    test_daemon_t d;
    proxy_t p;
    cr_assert_eq(test_daemon_start(&d, NULL), 0);
    proxy_start(&p, d.port);
    run(&d, &p, cut);
    proxy_stop(&p);
    cr_assert_eq(test_daemon_stop(&d), 0);
}

Test(stream, resumes_across_a_daemon_restart_without_gap_or_duplicate) {
    const char *store = getenv("EVSTORE_TEST_STORE");
    if (!store || strcmp(store, "memory") == 0)
        cr_skip_test("the memory store forgets everything at a restart");
    test_daemon_t d;
    proxy_t p;
    cr_assert_eq(test_daemon_start(&d, NULL), 0);
    proxy_start(&p, d.port);
    run(&d, &p, restart);
    proxy_stop(&p);
    cr_assert_eq(test_daemon_stop(&d), 0);
}

Test(stream, an_invalid_prefix_is_refused_at_open) {
    char big[300];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    evs_stream_options_t so = {.entity_prefix = big};
    cr_assert_null(evs_stream_open(&so));
}

/* Appends n events to a fresh entity of prefix through the daemon at addr; their positions go to
 * out. */
static void append_n(const char *addr, const char *prefix, int n, uint64_t *out) {
    evs_context_t *w = evs_connect(addr);
    cr_assert_eq(w->err, 0, "%s", w->errstr);
    char entity[300];
    for (int i = 0; i < n; i++) {
        snprintf(entity, sizeof entity, "%s%d", prefix, i);
        out[i] = append(w, entity);
    }
    evs_free(w);
}

/* Reads n events from the stream (failing after 15 s); their positions go to out. */
static void read_n(evs_stream_t *s, int n, uint64_t *out) {
    int64_t until = now_ms() + 15000;
    for (int i = 0; i < n;) {
        cr_assert_lt(now_ms(), until, "the stream delivered %d of %d events: %s", i, n,
                     evs_stream_errstr(s));
        evs_event_t *ev;
        cr_assert_eq(evs_stream_next(s, 200, &ev), 0);
        if (!ev) continue;
        out[i++] = ev->position;
        evs_event_free(ev);
    }
}

/* A memory daemon restarted is a new, empty store whose positions start again at 1: the stream
 * sees its store_id change and reads the new store from its beginning instead of resuming after
 * a position of the old one (which would skip the new store's first events). */
Test(stream, a_restarted_memory_daemon_is_read_from_its_beginning) {
    test_daemon_t d;
    proxy_t p;
    cr_assert_eq(test_daemon_launch(&d, "memory", false, NULL), 0);
    proxy_start(&p, d.port);
    char proxy_addr[64];
    snprintf(proxy_addr, sizeof proxy_addr, "127.0.0.1:%d", p.port);
    const char *prefix = tname("new-store-");
    evs_stream_options_t so = {.addr = proxy_addr,
                               .has_after = true,
                               .after = 0,
                               .entity_prefix = prefix,
                               .timeout_ms = 5000,
                               .retry_min_ms = 20,
                               .retry_max_ms = 200};
    evs_stream_t *s = evs_stream_open(&so);
    cr_assert_not_null(s);
    uint64_t acked[5], got[5];
    append_n(d.addr, prefix, 5, acked);
    read_n(s, 5, got);
    cr_assert_arr_eq(got, acked, sizeof got);
    char first_id[EVS_STORE_ID_LEN];
    snprintf(first_id, sizeof first_id, "%s", evs_stream_store_id(s));
    cr_assert_eq(strlen(first_id), 36, "the stream learnt no store_id");

    test_daemon_t next;
    cr_assert_eq(test_daemon_launch(&next, "memory", false, NULL), 0);
    cr_assert_eq(test_daemon_stop(&d), 0);
    d = next;
    atomic_store(&p.target_port, d.port);
    proxy_cut(&p);
    append_n(d.addr, prefix, 3, acked); /* positions 1, 2, 3 again */
    cr_assert_eq(acked[2], 3, "a new memory store starts at position 1");
    read_n(s, 3, got);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(got[i], acked[i], "event %d: position %llu, expected %llu", i,
                     (unsigned long long)got[i], (unsigned long long)acked[i]);
    cr_assert_eq(evs_stream_store_changes(s), 1);
    cr_assert_str_neq(evs_stream_store_id(s), first_id);
    evs_stream_close(s);
    proxy_stop(&p);
    cr_assert_eq(test_daemon_stop(&d), 0);
}
