/* test_domain_pubsub.c: in-process publish-subscribe of domain events. */
#include <stdlib.h>

#include "test_domain_fixture.h"

/* What the handlers saw, in order: "name:entity" per call. */
static char calls[1024];

static void setup(void) {
    calls[0] = '\0';
}

TestSuite(domain_pubsub, .init = setup);

static int record(const evs_domain_event_t *ev, void *arg, evs_error_t *err) {
    (void)err;
    size_t len = strlen(calls);
    snprintf(calls + len, sizeof calls - len, "%s:%s ", (const char *)arg, ev->entity_id);
    return 0;
}

static int record_other(const evs_domain_event_t *ev, void *arg, evs_error_t *err) {
    return record(ev, arg, err);
}

static int failing(const evs_domain_event_t *ev, void *arg, evs_error_t *err) {
    (void)ev;
    (void)arg;
    snprintf(err->str, sizeof err->str, "refused");
    return err->code = EVS_ECONFLICT;
}

static bool is_added(const evs_domain_event_t *ev, void *arg) {
    (void)arg;
    return ev->type == &ADDED;
}

static bool is_created(const evs_domain_event_t *ev, void *arg) {
    (void)arg;
    return ev->type == &CREATED;
}

static bool of_entity_a(const evs_domain_event_t *ev, void *arg) {
    (void)arg;
    return strcmp(ev->entity_id, "a") == 0;
}

static evs_domain_event_t *event(const evs_event_type_t *t, const char *id) {
    evs_domain_event_t *ev;
    cr_assert_eq(evs_domain_event_new(t, id, 0, NULL, &ev, NULL), 0);
    return ev;
}

static int publish1(evs_pubsub_t *ps, evs_domain_event_t *ev, evs_error_t *err) {
    const evs_domain_event_t *list[] = {ev};
    return evs_pubsub_publish(ps, list, 1, err);
}

Test(domain_pubsub, a_matching_predicate_calls_the_handler) {
    evs_pubsub_t *ps = evs_pubsub_new();
    cr_assert_neq(evs_pubsub_subscribe(ps, is_added, record, "h"), 0);
    evs_domain_event_t *ev = event(&ADDED, "a");
    cr_assert_eq(publish1(ps, ev, NULL), 0);
    cr_assert_str_eq(calls, "h:a ");
    evs_domain_event_free(ev);
    evs_pubsub_free(ps);
}

Test(domain_pubsub, a_predicate_that_does_not_match_calls_nothing) {
    evs_pubsub_t *ps = evs_pubsub_new();
    cr_assert_neq(evs_pubsub_subscribe(ps, is_created, record, "h"), 0);
    evs_domain_event_t *ev = event(&ADDED, "a");
    cr_assert_eq(publish1(ps, ev, NULL), 0);
    cr_assert_str_eq(calls, "");
    evs_domain_event_free(ev);
    evs_pubsub_free(ps);
}

Test(domain_pubsub, a_handler_whose_predicates_match_twice_is_called_once) {
    evs_pubsub_t *ps = evs_pubsub_new();
    cr_assert_neq(evs_pubsub_subscribe(ps, is_added, record, "h"), 0);
    cr_assert_neq(evs_pubsub_subscribe(ps, of_entity_a, record, "h"), 0);
    cr_assert_neq(evs_pubsub_subscribe(ps, NULL, record, "h"), 0);
    evs_domain_event_t *ev = event(&ADDED, "a");
    cr_assert_eq(publish1(ps, ev, NULL), 0);
    cr_assert_str_eq(calls, "h:a ");
    evs_domain_event_free(ev);
    evs_pubsub_free(ps);
}

Test(domain_pubsub, handlers_run_in_subscription_order) {
    evs_pubsub_t *ps = evs_pubsub_new();
    cr_assert_neq(evs_pubsub_subscribe(ps, NULL, record, "first"), 0);
    cr_assert_neq(evs_pubsub_subscribe(ps, NULL, record_other, "second"), 0);
    cr_assert_neq(evs_pubsub_subscribe(ps, NULL, record, "third"), 0); /* same fn, other arg */
    evs_domain_event_t *a = event(&ADDED, "a"), *b = event(&CREATED, "b");
    const evs_domain_event_t *list[] = {a, b};
    cr_assert_eq(evs_pubsub_publish(ps, list, 2, NULL), 0);
    cr_assert_str_eq(calls, "first:a second:a third:a first:b second:b third:b ");
    evs_domain_event_free(a);
    evs_domain_event_free(b);
    evs_pubsub_free(ps);
}

Test(domain_pubsub, no_call_after_unsubscribe) {
    evs_pubsub_t *ps = evs_pubsub_new();
    uint64_t s1 = evs_pubsub_subscribe(ps, NULL, record, "h");
    uint64_t s2 = evs_pubsub_subscribe(ps, is_added, record_other, "k");
    evs_domain_event_t *ev = event(&ADDED, "a");
    cr_assert_eq(publish1(ps, ev, NULL), 0);
    cr_assert_eq(evs_pubsub_unsubscribe(ps, s1), 0);
    cr_assert_eq(evs_pubsub_unsubscribe(ps, s1), EVS_ENOT_FOUND);
    cr_assert_eq(publish1(ps, ev, NULL), 0);
    cr_assert_eq(evs_pubsub_unsubscribe(ps, s2), 0);
    cr_assert_eq(publish1(ps, ev, NULL), 0);
    cr_assert_str_eq(calls, "h:a k:a k:a ");
    evs_domain_event_free(ev);
    evs_pubsub_free(ps);
}

static evs_pubsub_t *self_ps;
static uint64_t self_sub;

static int unsubscribes_itself(const evs_domain_event_t *ev, void *arg, evs_error_t *err) {
    cr_assert_eq(evs_pubsub_unsubscribe(self_ps, self_sub), 0);
    return record(ev, arg, err);
}

Test(domain_pubsub, a_handler_may_unsubscribe_itself_while_publishing) {
    self_ps = evs_pubsub_new();
    self_sub = evs_pubsub_subscribe(self_ps, NULL, unsubscribes_itself, "once");
    cr_assert_neq(evs_pubsub_subscribe(self_ps, NULL, record, "always"), 0);
    evs_domain_event_t *a = event(&ADDED, "a"), *b = event(&ADDED, "b");
    const evs_domain_event_t *list[] = {a, b};
    cr_assert_eq(evs_pubsub_publish(self_ps, list, 2, NULL), 0);
    cr_assert_str_eq(calls, "once:a always:a always:b ");
    evs_domain_event_free(a);
    evs_domain_event_free(b);
    evs_pubsub_free(self_ps);
}

Test(domain_pubsub, a_failing_handler_stops_the_publication) {
    evs_pubsub_t *ps = evs_pubsub_new();
    cr_assert_neq(evs_pubsub_subscribe(ps, NULL, record, "before"), 0);
    cr_assert_neq(evs_pubsub_subscribe(ps, of_entity_a, failing, NULL), 0);
    cr_assert_neq(evs_pubsub_subscribe(ps, NULL, record_other, "after"), 0);
    evs_domain_event_t *b = event(&ADDED, "b"), *a = event(&ADDED, "a");
    const evs_domain_event_t *list[] = {b, a, b};
    evs_error_t err = {0};
    cr_assert_eq(evs_pubsub_publish(ps, list, 3, &err), EVS_ECONFLICT);
    cr_assert_str_eq(err.str, "refused");
    cr_assert_str_eq(calls, "before:b after:b before:a ");
    evs_domain_event_free(a);
    evs_domain_event_free(b);
    evs_pubsub_free(ps);
}
