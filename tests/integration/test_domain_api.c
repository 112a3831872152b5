/* test_domain_api.c: the short style of the domain layer against a real evstored:
 * evs_repository_save_all (several entities in one atomic append) and the domain subscription
 * (daemon events decoded and upcast through the registry, for the same handler an in-process
 * pub-sub feeds). One fresh daemon per test, on $EVSTORE_TEST_STORE. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <evstore.h>

#include "../common/daemon.h"
#include "../unit/test_domain_fixture.h"

static test_daemon_t daemon_;
static evs_context_t *c, *c2;
static evs_registry_t *reg;
static char prefix[32]; /* "api-RANDOM-": every entity id of a test starts with it */

/* A field-table event of schema 2 whose schema 1 called its attribute "pts". */
typedef struct scored {
    int64_t points;
} scored_t;
static void on_scored(evs_entity_t *e, const void *attrs) {
    EVS_ENTITY_CAST(item_t, e)->count += ((const scored_t *)attrs)->points;
}
static const evs_field_t SCORED_ATTRS[] = {EVS_F(scored_t, points), {0}};
static const evs_event_type_t SCORED = {.topic = "api.Scored",
                                        .schema_version = 2,
                                        EVS_EVENT_FIELDS(scored_t, SCORED_ATTRS, on_scored)};
/* The fixture's item with SCORED among its events (the fixture's ITEM does not list it). */
static const evs_entity_type_t PLAYER = {.topic = "api.Player",
                                         .size = sizeof(item_t),
                                         .snapshot = item_snapshot,
                                         .restore = item_restore,
                                         EVS_EVENTS(&CREATED, &ADDED, &REMOVED, &SCORED)};
static int scored_v1_to_v2(evs_value_t *attrs, evs_error_t *err) {
    (void)err;
    return evs_map_rename(attrs, "pts", "points");
}

static evs_context_t *connect_ctx(void) {
    evs_options_t o = {.addr = daemon_.addr, .timeout_ms = 10000};
    evs_context_t *ctx = evs_connect_with_options(&o);
    cr_assert_not_null(ctx);
    cr_assert_eq(ctx->err, 0, "connect: %s", ctx->errstr);
    return ctx;
}

static void setup(void) {
    cr_assert_eq(test_daemon_start(&daemon_, NULL), 0, "evstored did not start");
    c = connect_ctx();
    c2 = connect_ctx();
    reg = fixture_registry();
    cr_assert_eq(evs_registry_add_event(reg, &SCORED), 0);
    cr_assert_eq(evs_registry_add_entity(reg, &PLAYER), 0);
    cr_assert_eq(evs_registry_add_upcaster(reg, "api.Scored", 1, scored_v1_to_v2), 0);
    char r[37];
    evs_random_id(r);
    snprintf(prefix, sizeof prefix, "api-%.8s-", r);
}

static void teardown(void) {
    evs_registry_free(reg);
    evs_free(c);
    evs_free(c2);
    c = c2 = NULL;
    if (daemon_.pid > 0) cr_expect_eq(test_daemon_stop(&daemon_), 0, "evstored did not exit 0");
}

TestSuite(domain_api, .init = setup, .fini = teardown, .timeout = 60);

static const char *ID(const char *name) {
    static char ids[4][64];
    static int next;
    char *out = ids[next++ % 4];
    snprintf(out, 64, "%s%s", prefix, name);
    return out;
}

static evs_repository_t *repo_on(evs_context_t *ctx, uint64_t every, evs_pubsub_t *bus) {
    evs_repository_options_t o = {
        .registry = reg, .type = &PLAYER, .snapshot_every = every, .publish_to = bus};
    evs_repository_t *r = evs_repository_new(ctx, &o);
    cr_assert_not_null(r);
    return r;
}

/* A handler that sums the counts the events carry, per entity: the same for both feeds. */
typedef struct sums {
    int64_t total;
    int events;
    uint64_t last_position;
} sums_t;
static int sum_handler(const evs_domain_event_t *ev, void *arg, evs_error_t *err) {
    sums_t *s = arg;
    (void)err;
    s->total += evs_attr_int(ev->attrs, "n", 0) + evs_attr_int(ev->attrs, "points", 0);
    s->events++;
    cr_assert_gt(ev->position, s->last_position, "positions increase");
    s->last_position = ev->position;
    return 0;
}

/* ---------------------------------------------------------------- save_all */

Test(domain_api, save_all_stores_several_entities_in_one_append) {
    evs_pubsub_t *bus = evs_pubsub_new();
    sums_t seen = {0};
    evs_pubsub_subscribe(bus, NULL, sum_handler, &seen);
    evs_repository_t *r = repo_on(c, 2, bus);
    item_t *a = item_created(reg, &PLAYER, ID("a"), "pen"),
           *b = item_created(reg, &PLAYER, ID("b"), "ink");
    item_add(a, 3);
    item_add(b, 4);
    cr_assert_eq(EVS_SAVE_ALL(r, &a->base, &b->base), 0, "%s", c->errstr);
    cr_assert_eq(a->base.npending, 0);
    cr_assert_eq(b->base.npending, 0);
    cr_assert_eq(seen.events, 4, "published in one go");
    cr_assert_eq(seen.total, 7);
    /* One append, a's events first (the store may be shared: read by entity). */
    evs_events_t *la, *lb;
    cr_assert_eq(evs_get_by_entity(c, ID("a"), 0, 0, false, &la), 0, "%s", c->errstr);
    cr_assert_eq(evs_get_by_entity(c, ID("b"), 0, 0, false, &lb), 0, "%s", c->errstr);
    cr_assert_eq(la->n, 2);
    cr_assert_eq(lb->n, 2);
    cr_assert_lt(la->events[1].position, lb->events[0].position);
    /* Each event records the entity type that triggered it. */
    evs_value_t *meta;
    const char *originator = NULL;
    cr_assert_eq(evs_value_decode(lb->events[1].metadata, lb->events[1].metadata_len, &meta, NULL),
                 0);
    cr_assert_eq(evs_map_get_str(meta, "originator_topic", &originator), 0);
    cr_assert_str_eq(originator, "api.Player");
    evs_value_free(meta);
    evs_events_free(la);
    evs_events_free(lb);
    /* Both passed version 2: both have a snapshot. */
    evs_snapshot_t *snap;
    cr_assert_eq(evs_get_snapshot(c, ID("a"), EVS_LATEST, &snap), 0, "%s", c->errstr);
    evs_snapshot_free(snap);
    cr_assert_eq(evs_get_snapshot(c, ID("b"), EVS_LATEST, &snap), 0, "%s", c->errstr);
    evs_snapshot_free(snap);
    item_t *back = evs_repository_find(r, ID("b"));
    cr_assert_not_null(back, "%s", c->errstr);
    cr_assert_eq(back->count, 4);
    evs_entity_free(&back->base);
    /* Nothing pending is a no-op. */
    cr_assert_eq(EVS_SAVE_ALL(r, &a->base, &b->base), 0, "%s", c->errstr);
    evs_entity_free(&a->base);
    evs_entity_free(&b->base);
    evs_repository_free(r);
    evs_pubsub_free(bus);
}

Test(domain_api, save_all_stores_none_when_one_entity_conflicts) {
    evs_repository_t *r = repo_on(c, 0, NULL), *other = repo_on(c2, 0, NULL);
    item_t *b = item_created(reg, &PLAYER, ID("b"), "ink");
    cr_assert_eq(evs_repository_save(r, &b->base), 0, "%s", c->errstr);
    /* Another writer moves b on; our copy of b is stale. */
    item_t *b2 = evs_repository_find(other, ID("b"));
    cr_assert_not_null(b2, "%s", c2->errstr);
    item_add(b2, 1);
    cr_assert_eq(evs_repository_save(other, &b2->base), 0, "%s", c2->errstr);
    evs_entity_free(&b2->base);

    item_t *a = item_created(reg, &PLAYER, ID("a"), "pen");
    item_add(a, 5);
    item_add(b, 6);
    cr_assert_eq(EVS_SAVE_ALL(r, &a->base, &b->base), EVS_ECONFLICT, "%s", c->errstr);
    cr_assert(strstr(c->errstr, ID("b")), "the conflict names the stale entity: %s", c->errstr);
    cr_assert(strstr(c->errstr, "is at version 2, but this save expected it at version 1"),
              "the conflict is in domain versions: %s", c->errstr);
    cr_assert(c->detail.has_current_version && c->detail.current_version == 2);
    cr_assert(c->detail.has_version && c->detail.version == 1);
    cr_assert_eq(stored_count(c, ID("a")), 0, "a's events were not stored either");
    cr_assert_eq(stored_count(c, ID("b")), 2);
    cr_assert_eq(a->base.npending, 2, "every entity keeps its pending events");
    cr_assert_eq(b->base.npending, 1);
    cr_assert_eq(evs_ping(c, NULL, 0), 0, "the context is still usable");

    /* With b reloaded, the same unit saves. */
    evs_entity_free(&b->base);
    b = evs_repository_find(r, ID("b"));
    cr_assert_not_null(b, "%s", c->errstr);
    item_add(b, 6);
    cr_assert_eq(EVS_SAVE_ALL(r, &a->base, &b->base), 0, "%s", c->errstr);
    cr_assert_eq(stored_count(c, ID("a")), 2);
    cr_assert_eq(stored_count(c, ID("b")), 3);
    evs_entity_free(&a->base);
    evs_entity_free(&b->base);
    evs_repository_free(r);
    evs_repository_free(other);
}

Test(domain_api, save_all_refuses_a_bad_list_and_stores_nothing) {
    evs_repository_t *r = repo_on(c, 0, NULL);
    item_t *a = item_created(reg, &PLAYER, ID("a"), "pen");
    cr_assert_eq(EVS_SAVE_ALL(r, &a->base, &a->base), EVS_EINVAL);
    cr_assert(strstr(c->errstr, "twice"), "%s", c->errstr);
    cr_assert_eq(evs_repository_save_all(r, (evs_entity_t *[]){&a->base, NULL}, 2), EVS_EINVAL);
    cr_assert_eq(evs_repository_save_all(r, NULL, 1), EVS_EINVAL);
    /* An entity of a type the repository's registry does not know. */
    const evs_entity_type_t STRANGER = {
        .topic = "api.Stranger", .size = sizeof(item_t), EVS_EVENTS(&CREATED)};
    evs_registry_t *other = evs_registry_new();
    cr_assert_eq(evs_registry_add_event(other, &CREATED), 0);
    cr_assert_eq(evs_registry_add_entity(other, &STRANGER), 0);
    evs_entity_t *s = evs_entity_new(other, &STRANGER, ID("s"));
    cr_assert_eq(EVS_SAVE_ALL(r, &a->base, s), EVS_EWRONG_TYPE);
    cr_assert(strstr(c->errstr, "cannot save it"), "%s", c->errstr);
    cr_assert_eq(stored_count(c, ID("a")), 0);
    cr_assert_eq(evs_repository_save_all(r, NULL, 0), 0, "an empty list is a no-op");
    evs_entity_free(s);
    evs_registry_free(other);
    evs_entity_free(&a->base);
    evs_repository_free(r);
}

Test(domain_api, save_all_refuses_an_entity_of_another_entity_type) {
    evs_repository_t *r = repo_on(c, 0, NULL);
    item_t *a = item_created(reg, &PLAYER, ID("a"), "pen");
    /* The fixture's ITEM is registered in the same registry, but r is a repository of PLAYER. */
    evs_entity_t *other = evs_entity_new(reg, &ITEM, ID("i"));
    cr_assert_not_null(other);
    evs_error_t err = {0};
    cr_assert_eq(evs_entity_trigger(other, &CREATED, attrs_name("cup"), &err), 0, "%s", err.str);
    cr_assert_eq(EVS_SAVE_ALL(r, &a->base, other), EVS_EWRONG_TYPE);
    cr_assert(strstr(c->errstr, "is of type test.Item: a repository of api.Player cannot save it"),
              "%s", c->errstr);
    cr_assert_eq(stored_count(c, ID("a")), 0, "nothing of the list is stored");
    cr_assert_eq(stored_count(c, ID("i")), 0);
    cr_assert_eq(a->base.npending, 1);
    cr_assert_eq(other->npending, 1);
    cr_assert_eq(evs_ping(c, NULL, 0), 0, "the context is still usable");
    cr_assert_eq(EVS_SAVE_ALL(r, &a->base), 0, "%s", c->errstr);
    cr_assert_eq(stored_count(c, ID("a")), 1);
    evs_entity_free(other);
    evs_entity_free(&a->base);
    evs_repository_free(r);
}

/* sum_handler, failing while fail_left > 0. */
typedef struct flaky {
    sums_t sums;
    int fail_left;
    int64_t timestamps[8];
} flaky_t;
static int flaky_handler(const evs_domain_event_t *ev, void *arg, evs_error_t *err) {
    flaky_t *f = arg;
    if (f->fail_left > 0) {
        f->fail_left--;
        return evs_error_set(err, EVS_EUNAVAILABLE, "the read model is down");
    }
    cr_assert_lt(f->sums.events, 8);
    f->timestamps[f->sums.events] = ev->timestamp;
    return sum_handler(ev, &f->sums, err);
}

Test(domain_api, save_all_whose_subscriber_fails_is_stored_not_published_then_published_again) {
    evs_pubsub_t *bus = evs_pubsub_new();
    flaky_t seen = {.fail_left = 1};
    cr_assert_neq(evs_pubsub_subscribe(bus, NULL, flaky_handler, &seen), 0);
    evs_repository_t *r = repo_on(c, 0, bus);
    item_t *a = item_created(reg, &PLAYER, ID("a"), "pen"),
           *b = item_created(reg, &PLAYER, ID("b"), "ink");
    item_add(a, 3);
    item_add(b, 4);
    int rc = EVS_SAVE_ALL(r, &a->base, &b->base);
    cr_assert_eq(rc, EVS_ESTORED_NOT_PUBLISHED, "%s: %s", evs_code_name(rc), c->errstr);
    cr_assert(strstr(c->errstr, "the read model is down"), "%s", c->errstr);
    cr_assert_eq(a->base.npending, 0, "the events are stored: nothing to save again");
    cr_assert_eq(b->base.npending, 0);
    cr_assert_eq(stored_count(c, ID("a")), 2);
    cr_assert_eq(stored_count(c, ID("b")), 2);
    const evs_domain_event_t *const *kept;
    cr_assert_eq(evs_repository_unpublished(r, &kept), 4, "the unit's events are kept in order");
    cr_assert_str_eq(kept[0]->entity_id, ID("a"));
    cr_assert_str_eq(kept[2]->entity_id, ID("b"));
    cr_assert_eq(seen.sums.events, 0);

    /* The next save_all publishes the kept events first, then its own. */
    item_add(a, 5);
    cr_assert_eq(EVS_SAVE_ALL(r, &a->base, &b->base), 0, "%s", c->errstr);
    cr_assert_eq(evs_repository_unpublished(r, NULL), 0);
    cr_assert_eq(seen.sums.events, 5);
    cr_assert_eq(seen.sums.total, 12);
    for (int i = 0; i < 5; i++)
        cr_assert_gt(seen.timestamps[i], 0, "event %d was published without its timestamp", i);

    /* Or evs_repository_publish_pending does, without a save. */
    seen.fail_left = 1;
    item_add(b, 1);
    cr_assert_eq(EVS_SAVE_ALL(r, &a->base, &b->base), EVS_ESTORED_NOT_PUBLISHED);
    cr_assert_eq(evs_repository_unpublished(r, NULL), 1);
    cr_assert_eq(evs_repository_publish_pending(r), 0, "%s", c->errstr);
    cr_assert_eq(seen.sums.events, 6);
    cr_assert_eq(seen.sums.total, 13);

    evs_entity_free(&a->base);
    evs_entity_free(&b->base);
    evs_repository_free(r);
    evs_pubsub_free(bus);
}

/* ---------------------------------------------------------------- the domain subscription */

static evs_domain_subscription_t *subscribe(bool skip_unknown) {
    evs_domain_subscription_options_t o = {.stream = {.addr = daemon_.addr,
                                                      .timeout_ms = 10000,
                                                      .has_after = true,
                                                      .entity_prefix = prefix},
                                           .registry = reg,
                                           .skip_unknown = skip_unknown};
    evs_domain_subscription_t *s = evs_domain_subscribe(&o);
    cr_assert_not_null(s);
    return s;
}

/* Dispatches until s->events reaches want (a deadline of 10 s). */
static void dispatch_until(evs_domain_subscription_t *sub, sums_t *s, int want) {
    evs_error_t err = {0};
    for (int i = 0; i < 100 && s->events < want; i++)
        cr_assert_geq(evs_domain_subscription_dispatch(sub, 100, NULL, sum_handler, s, &err), 0,
                      "%s", err.str);
    cr_assert_eq(s->events, want);
}

Test(domain_api, a_domain_subscription_feeds_the_same_handler_with_upcast_events) {
    evs_pubsub_t *bus = evs_pubsub_new();
    sums_t local = {0}, live = {0};
    evs_pubsub_subscribe(bus, NULL, sum_handler, &local);
    evs_repository_t *r = repo_on(c, 0, bus);
    evs_domain_subscription_t *sub = subscribe(false);

    item_t *a = item_created(reg, &PLAYER, ID("a"), "pen");
    item_add(a, 2);
    evs_error_t err = {0};
    cr_assert_eq(evs_command(&a->base, &SCORED, &(scored_t){10}, &err), 0, "%s", err.str);
    cr_assert_eq(evs_repository_save(r, &a->base), 0, "%s", c->errstr);
    /* An older client writes Scored in its first shape {"pts"}, schema 1, on another
     * connection: the in-process pub-sub never hears of it, the daemon subscription does. */
    uint8_t v1[] = {0x81, 0xa3, 'p', 't', 's', 0x05}; /* {"pts": 5} */
    evs_event_t old = {.entity_id = (char *)ID("a"),
                       .topic = "api.Scored",
                       .payload = v1,
                       .payload_len = sizeof v1,
                       .version = 3,
                       .has_version = 1};
    cr_assert_eq(evs_append(c2, &old, 1, NULL, NULL), 0, "%s", c2->errstr);

    dispatch_until(sub, &live, 4);
    cr_assert_eq(local.events, 3);
    cr_assert_eq(local.total, 12);
    cr_assert_eq(live.total, 17, "the {\"pts\"} event was upcast to {\"points\"}");

    /* Events come out one by one too, typed, with position and timestamp. */
    evs_domain_event_t *ev;
    cr_assert_eq(evs_domain_subscription_next(sub, 0, &ev, &err), 0, "%s", err.str);
    cr_assert_null(ev, "nothing more");
    evs_entity_free(&a->base); /* a's copy is at version 3: reload it */
    a = evs_repository_find(r, ID("a"));
    cr_assert_not_null(a, "%s", c->errstr);
    cr_assert_eq(a->count, 17);
    item_add(a, 1);
    cr_assert_eq(evs_repository_save(r, &a->base), 0, "%s", c->errstr);
    for (int i = 0; i < 100 && !ev; i++)
        cr_assert_eq(evs_domain_subscription_next(sub, 100, &ev, &err), 0, "%s", err.str);
    cr_assert_not_null(ev);
    cr_assert_eq(ev->type, &ADDED);
    cr_assert_eq(ev->version, 4);
    cr_assert_eq(ev->entity_type, &PLAYER, "the event knows the entity type that triggered it");
    cr_assert_gt(ev->position, live.last_position);
    cr_assert_gt(ev->timestamp, 0);
    cr_assert_str_eq(ev->entity_id, ID("a"));
    cr_assert_geq(evs_stream_position(evs_domain_subscription_stream(sub)), ev->position);
    evs_domain_event_free(ev);

    evs_entity_free(&a->base);
    evs_domain_subscription_close(sub);
    evs_repository_free(r);
    evs_pubsub_free(bus);
}

Test(domain_api, a_domain_subscription_reports_or_skips_what_it_cannot_decode) {
    evs_domain_subscription_t *strict = subscribe(false), *lenient = subscribe(true);
    /* An unknown topic, a Scored without its attribute, then a good Added. */
    uint8_t empty[] = {0x80}, n1[] = {0x81, 0xa1, 'n', 0x01};
    uint8_t schema2[] = {0x81, 0xa6, 's', 'c', 'h', 'e', 'm', 'a', 0x02}; /* {"schema": 2} */
    const char *id = ID("x");
    evs_event_t evs[3] = {
        {.entity_id = (char *)id, .topic = "api.Unheard", .payload = empty, .payload_len = 1},
        {.entity_id = (char *)id,
         .topic = "api.Scored",
         .payload = empty,
         .payload_len = 1,
         .metadata = schema2,
         .metadata_len = sizeof schema2},
        {.entity_id = (char *)id, .topic = "test.Added", .payload = n1, .payload_len = 4}};
    cr_assert_eq(evs_append(c, evs, 3, NULL, NULL), 0, "%s", c->errstr);

    evs_error_t err = {0};
    evs_domain_event_t *ev = NULL;
    int r = 0;
    for (int i = 0; i < 100 && r == 0 && !ev; i++)
        r = evs_domain_subscription_next(strict, 100, &ev, &err);
    cr_assert_eq(r, EVS_EINVAL);
    cr_assert(strstr(err.str, "unknown topic \"api.Unheard\""), "%s", err.str);
    r = evs_domain_subscription_next(strict, 5000, &ev, &err);
    cr_assert_eq(r, EVS_EINVAL);
    cr_assert(strstr(err.str, "api.Scored of") && strstr(err.str, "points is missing"), "%s",
              err.str);
    cr_assert_eq(evs_domain_subscription_next(strict, 5000, &ev, &err), 0, "%s", err.str);
    cr_assert_not_null(ev, "it goes on with the next event");
    cr_assert_eq(ev->type, &ADDED);
    evs_domain_event_free(ev);

    /* skip_unknown skips the unknown topic, but a malformed known one is still an error. */
    ev = NULL;
    r = 0;
    for (int i = 0; i < 100 && r == 0 && !ev; i++)
        r = evs_domain_subscription_next(lenient, 100, &ev, &err);
    cr_assert_eq(r, EVS_EINVAL);
    cr_assert(strstr(err.str, "points is missing"), "%s", err.str);
    /* A dispatch hands the next good event to the handler. */
    sums_t s = {0};
    r = evs_domain_subscription_dispatch(lenient, 5000, NULL, sum_handler, &s, &err);
    cr_assert_eq(r, 1, "%s", err.str);
    cr_assert_eq(s.total, 1);
    evs_domain_subscription_close(strict);
    evs_domain_subscription_close(lenient);
}

Test(domain_api, a_domain_subscription_refuses_an_event_its_originator_does_not_list) {
    evs_domain_subscription_t *sub = subscribe(false);
    /* A Scored stored as triggered by test.Item, which does not list it (a player of items
     * refuses it too), then a Scored of api.Player. */
    evs_value_t *m = evs_map_new();
    cr_assert_eq(evs_map_set_str(m, "originator_topic", "test.Item"), 0);
    uint8_t *item_meta, *player_meta;
    size_t item_len, player_len;
    cr_assert_eq(evs_value_encode(m, &item_meta, &item_len), 0);
    cr_assert_eq(evs_map_set_str(m, "originator_topic", "api.Player"), 0);
    cr_assert_eq(evs_value_encode(m, &player_meta, &player_len), 0);
    evs_value_free(m);
    uint8_t v1[] = {0x81, 0xa3, 'p', 't', 's', 0x05}; /* {"pts": 5}, schema 1 */
    const char *id = ID("w");
    evs_event_t evs[2] = {{.entity_id = (char *)id,
                           .topic = "api.Scored",
                           .payload = v1,
                           .payload_len = sizeof v1,
                           .metadata = item_meta,
                           .metadata_len = item_len},
                          {.entity_id = (char *)id,
                           .topic = "api.Scored",
                           .payload = v1,
                           .payload_len = sizeof v1,
                           .metadata = player_meta,
                           .metadata_len = player_len}};
    cr_assert_eq(evs_append(c, evs, 2, NULL, NULL), 0, "%s", c->errstr);
    free(item_meta);
    free(player_meta);

    evs_error_t err = {0};
    evs_domain_event_t *ev = NULL;
    int r = 0;
    for (int i = 0; i < 100 && r == 0 && !ev; i++)
        r = evs_domain_subscription_next(sub, 100, &ev, &err);
    cr_assert_eq(r, EVS_EWRONG_TYPE, "%s: %s", evs_code_name(r), err.str);
    cr_assert(strstr(err.str, "stored by entity type test.Item, which does not list it"), "%s",
              err.str);
    cr_assert_eq(evs_domain_subscription_next(sub, 5000, &ev, &err), 0, "%s", err.str);
    cr_assert_not_null(ev, "it goes on with the next event");
    cr_assert_eq(ev->type, &SCORED);
    cr_assert_eq(ev->entity_type, &PLAYER);
    cr_assert_eq(evs_attr_int(ev->attrs, "points", 0), 5);
    evs_domain_event_free(ev);
    evs_domain_subscription_close(sub);
}
