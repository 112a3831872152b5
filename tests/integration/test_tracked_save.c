/* test_tracked_save.c: evs_repository_save_tracked, a process manager's save that carries the
 * position of the event it reacted to (the events and the consumer's checkpoint in one
 * append): stored once, "already processed" after, a retry whose reply was lost is ok, and a
 * save with nothing pending stores just the checkpoint. One daemon per test, on
 * $EVSTORE_TEST_STORE. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <evstore.h>

#include "../common/daemon.h"
#include "../unit/test_domain_fixture.h"

static test_daemon_t daemon_;
static evs_context_t *c;
static evs_registry_t *reg;
static evs_repository_t *repo;
static char prefix[32];

static void setup(void) {
    cr_assert_eq(test_daemon_start(&daemon_, NULL), 0, "evstored did not start");
    evs_options_t o = {.addr = daemon_.addr, .timeout_ms = 10000};
    c = evs_connect_with_options(&o);
    cr_assert_not_null(c);
    cr_assert_eq(c->err, 0, "connect: %s", c->errstr);
    reg = fixture_registry();
    evs_repository_options_t ro = {.registry = reg, .type = &ITEM};
    cr_assert_not_null(repo = evs_repository_new(c, &ro));
    char r[37];
    evs_random_id(r);
    snprintf(prefix, sizeof prefix, "trk-%.8s-", r);
}

static void teardown(void) {
    evs_repository_free(repo);
    evs_registry_free(reg);
    evs_free(c);
    c = NULL;
    if (daemon_.pid > 0) cr_expect_eq(test_daemon_stop(&daemon_), 0, "evstored did not exit 0");
}

TestSuite(tracked_save, .init = setup, .fini = teardown, .timeout = 60);

static const char *ID(const char *name) {
    static char ids[16][64];
    static int next;
    char *out = ids[next++ % 16];
    snprintf(out, 64, "%s%s", prefix, name);
    return out;
}

static item_t *create_item(const char *id) {
    item_t *it = (item_t *)evs_entity_new(reg, &ITEM, id);
    cr_assert_not_null(it);
    evs_error_t err = {0};
    cr_assert_eq(evs_entity_trigger(&it->base, &CREATED, attrs_name("x"), &err), 0, "%s", err.str);
    return it;
}

static size_t count_events(const char *id) {
    evs_events_t *l;
    cr_assert_eq(evs_get_by_entity(c, id, 0, 0, false, &l), 0, "%s", c->errstr);
    size_t n = l->n;
    evs_events_free(l);
    return n;
}

/* A stored event for the consumer to have "processed": its position. */
static uint64_t trigger_event(const char *id) {
    evs_event_t ev = {.entity_id = (char *)id,
                      .topic = (char *)"trk.Trigger",
                      .payload = (uint8_t *)"\x80",
                      .payload_len = 1};
    uint64_t p;
    cr_assert_eq(evs_append(c, &ev, 1, &p, NULL), 0, "%s", c->errstr);
    return p;
}

static uint64_t checkpoint_of(const char *consumer) {
    uint64_t p = 99;
    cr_assert_eq(evs_get_checkpoint(c, consumer, &p), 0, "%s", c->errstr);
    return p;
}

Test(tracked_save, stores_events_and_checkpoint_once_then_already_processed) {
    const char *pm = ID("pm"), *a = ID("a"), *b = ID("b");
    uint64_t p1 = trigger_event(ID("source"));
    item_t *x = create_item(a), *y = create_item(b);
    evs_entity_t *both[] = {&x->base, &y->base};
    cr_assert_eq(evs_repository_save_tracked(repo, both, 2, pm, p1), 0, "%s", c->errstr);
    cr_assert_eq(x->base.npending, 0);
    cr_assert_eq(checkpoint_of(pm), p1);
    cr_assert_eq(count_events(a), 1);
    cr_assert_eq(count_events(b), 1);

    /* The same event again (a restart re-read it): a fresh reaction, refused whole. */
    item_t *z = create_item(ID("c"));
    evs_entity_t *one[] = {&z->base};
    int rc = evs_repository_save_tracked(repo, one, 1, pm, p1);
    cr_assert_eq(rc, EVS_EALREADY_PROCESSED, "%s: %s", evs_code_name(rc), c->errstr);
    cr_assert_eq(c->err, EVS_EALREADY_PROCESSED);
    cr_assert_str_eq(evs_code_name(rc), "already_processed");
    cr_assert_eq(z->base.npending, 1, "the pending events are kept");
    cr_assert_eq(count_events(ID("c")), 0, "nothing stored");
    cr_assert_eq(checkpoint_of(pm), p1);
    /* The context stays usable, and the next event is processed. */
    uint64_t p2 = trigger_event(ID("source"));
    cr_assert_eq(evs_repository_save_tracked(repo, one, 1, pm, p2), 0, "%s", c->errstr);
    cr_assert_eq(count_events(ID("c")), 1);
    cr_assert_eq(checkpoint_of(pm), p2);
    evs_entity_free(&x->base);
    evs_entity_free(&y->base);
    evs_entity_free(&z->base);
}

Test(tracked_save, an_older_position_is_already_processed) {
    const char *pm = ID("pm");
    uint64_t p1 = trigger_event(ID("s")), p2 = trigger_event(ID("s"));
    item_t *x = create_item(ID("a"));
    evs_entity_t *one[] = {&x->base};
    cr_assert_eq(evs_repository_save_tracked(repo, one, 1, pm, p2), 0, "%s", c->errstr);
    item_t *y = create_item(ID("b"));
    one[0] = &y->base;
    cr_assert_eq(evs_repository_save_tracked(repo, one, 1, pm, p1), EVS_EALREADY_PROCESSED);
    cr_assert_eq(count_events(ID("b")), 0);
    evs_entity_free(&x->base);
    evs_entity_free(&y->base);
}

Test(tracked_save, nothing_pending_stores_just_the_checkpoint) {
    const char *pm = ID("pm");
    uint64_t p1 = trigger_event(ID("s")), p2 = trigger_event(ID("s"));
    cr_assert_eq(evs_repository_save_tracked(repo, NULL, 0, pm, p1), 0, "%s", c->errstr);
    cr_assert_eq(checkpoint_of(pm), p1);
    cr_assert_eq(evs_repository_save_tracked(repo, NULL, 0, pm, p1), EVS_EALREADY_PROCESSED);
    /* An entity with nothing pending is the same: just the checkpoint. */
    item_t *x = create_item(ID("a"));
    cr_assert_eq(evs_repository_save(repo, &x->base), 0, "%s", c->errstr);
    evs_entity_t *one[] = {&x->base};
    cr_assert_eq(evs_repository_save_tracked(repo, one, 1, pm, p2), 0, "%s", c->errstr);
    cr_assert_eq(checkpoint_of(pm), p2);
    cr_assert_eq(count_events(ID("a")), 1);
    evs_entity_free(&x->base);
}

Test(tracked_save, a_retry_whose_reply_was_lost_is_ok) {
    const char *pm = ID("pm"), *a = ID("a");
    uint64_t p1 = trigger_event(ID("s"));
    /* The first try, as the raw append it sends, whose reply the caller never saw. */
    item_t *x = create_item(a);
    evs_event_t stored = {0};
    evs_error_t err = {0};
    cr_assert_eq(evs_domain_event_to_stored(x->base.pending[0], &stored, &err), 0, "%s", err.str);
    cr_assert_eq(evs_append_tracked(c, &stored, 1, pm, p1, NULL, NULL), 0, "%s", c->errstr);
    evs_event_clear(&stored);
    /* The retry: the same pending event (same id), the same tracking. */
    evs_entity_t *one[] = {&x->base};
    cr_assert_eq(evs_repository_save_tracked(repo, one, 1, pm, p1), 0, "%s", c->errstr);
    cr_assert_eq(x->base.npending, 0);
    cr_assert_eq(count_events(a), 1, "stored once");
    evs_entity_free(&x->base);
}

Test(tracked_save, a_version_conflict_is_a_conflict_not_already_processed) {
    const char *pm = ID("pm"), *a = ID("a");
    uint64_t p1 = trigger_event(ID("s"));
    item_t *x = create_item(a), *y = create_item(a);
    cr_assert_eq(evs_repository_save(repo, &x->base), 0, "%s", c->errstr);
    evs_entity_t *one[] = {&y->base};
    int rc = evs_repository_save_tracked(repo, one, 1, pm, p1);
    cr_assert_eq(rc, EVS_ECONFLICT, "%s: %s", evs_code_name(rc), c->errstr);
    cr_assert_eq(checkpoint_of(pm), 0, "the checkpoint did not move");
    evs_entity_free(&x->base);
    evs_entity_free(&y->base);
}

Test(tracked_save, bad_arguments_send_nothing) {
    uint64_t p1 = trigger_event(ID("s"));
    cr_assert_eq(evs_repository_save_tracked(repo, NULL, 0, NULL, p1), EVS_EINVAL);
    cr_assert_eq(evs_repository_save_tracked(repo, NULL, 0, "", p1), EVS_EINVAL);
    cr_assert_eq(evs_repository_save_tracked(repo, NULL, 0, ID("pm"), 0), EVS_EINVAL);
    cr_assert_eq(evs_repository_save_tracked(NULL, NULL, 0, ID("pm"), p1), EVS_EINVAL);
    cr_assert_eq(checkpoint_of(ID("pm")), 0);
}
