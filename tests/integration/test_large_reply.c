/* test_large_reply.c: a client reads back every event the daemon stored. With default options
 * libevstore takes any reply the protocol allows, so a daemon running with a max_frame above the
 * client's request default still serves its largest events to get, read and streams; a stream
 * given a smaller limit stops with a clear error instead of reconnecting forever. */
#include <criterion/criterion.h>
#include <evstore.h>
#include <stdlib.h>
#include <string.h>

#include "../common/daemon.h"
#include "../common/rawio.h"

#define BIG (17u * 1024 * 1024) /* over EVS_DEFAULT_MAX_FRAME */

static test_daemon_t d;

static void setup(void) {
    const char *const extra[] = {"--max-frame", "20M", NULL};
    cr_assert_eq(test_daemon_start(&d, extra), 0, "evstored did not start");
}

static void teardown(void) {
    if (d.pid > 0) cr_expect_eq(test_daemon_stop(&d), 0, "evstored did not exit 0");
}

TestSuite(large_reply, .init = setup, .fini = teardown, .timeout = 60);

/* Appends one event of payload_len bytes to entity, through a client allowed frames of the
 * daemon's size; returns its position. */
static uint64_t append_big(const char *entity, size_t payload_len) {
    evs_options_t o = {.addr = d.addr, .timeout_ms = 20000, .max_frame = 20u * 1024 * 1024};
    evs_context_t *w = evs_connect_with_options(&o);
    cr_assert_eq(w->err, 0, "%s", w->errstr);
    uint8_t *payload = malloc(payload_len);
    memset(payload, 'z', payload_len);
    evs_event_t ev = {.entity_id = (char *)entity,
                      .topic = (char *)tname("big"),
                      .payload = payload,
                      .payload_len = payload_len};
    uint64_t pos = 0;
    cr_assert_eq(evs_append(w, &ev, 1, &pos, NULL), 0, "append: %s", w->errstr);
    free(payload);
    evs_free(w);
    return pos;
}

Test(large_reply, a_client_with_default_options_reads_an_event_over_its_request_limit) {
    const char *entity = tname("big-get");
    append_big(entity, BIG);
    evs_options_t o = {.addr = d.addr, .timeout_ms = 20000};
    evs_context_t *c = evs_connect_with_options(&o);
    cr_assert_eq(c->err, 0, "%s", c->errstr);
    evs_events_t *l = NULL;
    cr_assert_eq(evs_get_by_entity(c, entity, 0, 0, false, &l), 0, "%s", c->errstr);
    cr_assert_eq(l->n, 1);
    cr_assert_eq(l->events[0].payload_len, BIG);
    evs_events_free(l);
    evs_free(c);
}

Test(large_reply, a_stream_with_default_options_passes_an_event_over_its_request_limit) {
    const char *entity = tname("big-stream");
    uint64_t pos = append_big(entity, BIG);
    evs_stream_options_t so = {.addr = d.addr,
                               .timeout_ms = 20000,
                               .has_after = true,
                               .after = pos - 1,
                               .entity_prefix = entity,
                               .retry_min_ms = 20};
    evs_stream_t *s = evs_stream_open(&so);
    cr_assert_not_null(s);
    evs_event_t *ev = NULL;
    cr_assert_eq(evs_stream_next(s, 20000, &ev), 0);
    cr_assert_not_null(ev, "no event; the stream says: %s", evs_stream_errstr(s));
    cr_assert_eq(ev->position, pos);
    cr_assert_eq(ev->payload_len, BIG);
    cr_assert_eq(evs_stream_reconnects(s), 0, "%s", evs_stream_errstr(s));
    evs_event_free(ev);
    evs_stream_close(s);
}

Test(large_reply, a_stream_that_meets_a_frame_over_its_limit_stops_with_a_clear_error) {
    const char *entity = tname("over-limit");
    uint64_t pos = append_big(entity, 2000);
    evs_stream_options_t so = {.addr = d.addr,
                               .timeout_ms = 5000,
                               .has_after = true,
                               .after = pos - 1,
                               .entity_prefix = entity,
                               .retry_min_ms = 20,
                               .max_frame = 1000};
    evs_stream_t *s = evs_stream_open(&so);
    cr_assert_not_null(s);
    evs_event_t *ev = NULL;
    int rc = evs_stream_next(s, 20000, &ev);
    cr_assert_eq(rc, EVS_EPROTOCOL, "evs_stream_next: %d (%s)", rc, evs_stream_errstr(s));
    cr_assert_null(ev);
    cr_assert(strstr(evs_stream_errstr(s), "max_frame 1000"), "errstr: %s", evs_stream_errstr(s));
    cr_assert_eq(evs_stream_next(s, 0, &ev), EVS_EPROTOCOL, "the stream went on after stopping");
    cr_assert_eq(evs_stream_reconnects(s), 0, "it reconnected");
    evs_stream_close(s);
}
