/* test_domain_safety.c: the domain layer's failures against a real evstored: an entity loaded
 * through a repository of another type, a save whose subscriber fails, a snapshot that cannot
 * be used, a publication stored whole or not at all, a repository rebound to a new connection,
 * and the subscribe options the domain layer relies on. One fresh daemon per test, on
 * $EVSTORE_TEST_STORE. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <evstore.h>

#include "../common/daemon.h"
#include "../unit/test_domain_fixture.h"

static test_daemon_t daemon_;
static evs_context_t *c;
static evs_registry_t *reg;
static char id_prefix[16];
static char ids[8][48];

/* An entity id unique to this test run: "safe-RANDOM-name" (tests may share one database). */
static const char *ID(int slot, const char *name) {
    snprintf(ids[slot], sizeof ids[slot], "safe-%s-%s", id_prefix, name);
    return ids[slot];
}

/* A second entity type, smaller than an item, with its own event: an item's apply run on it
 * would write past its end (AddressSanitizer reports it). */
typedef struct tag {
    evs_entity_t base;
    int64_t pings;
} tag_t;
static int pinged_apply(evs_entity_t *e, const evs_domain_event_t *ev, evs_error_t *err) {
    (void)ev;
    (void)err;
    ((tag_t *)e)->pings++;
    return 0;
}
static const evs_event_type_t PINGED = {.topic = "test.Pinged", .apply = pinged_apply};
static const evs_event_type_t *const TAG_EVENTS[] = {&PINGED, NULL};
static const evs_entity_type_t TAG = {
    .topic = "test.Tag", .size = sizeof(tag_t), .events = TAG_EVENTS};
/* A type that lists the item's events: only their originator_topic tells them apart. */
static const evs_entity_type_t TWIN = {
    .topic = "test.Twin", .size = sizeof(tag_t), .events = ITEM_EVENTS};

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
    reg = fixture_registry();
    cr_assert_eq(evs_registry_add_event(reg, &PINGED), 0);
    cr_assert_eq(evs_registry_add_entity(reg, &TAG), 0, "%s", evs_registry_errstr(reg));
    cr_assert_eq(evs_registry_add_entity(reg, &TWIN), 0, "%s", evs_registry_errstr(reg));
    char r[37];
    evs_random_id(r);
    snprintf(id_prefix, sizeof id_prefix, "%.8s", r);
}

static void teardown(void) {
    evs_registry_free(reg);
    evs_free(c);
    c = NULL;
    if (daemon_.pid > 0) cr_expect_eq(test_daemon_stop(&daemon_), 0, "evstored did not exit 0");
}

TestSuite(domain_safety, .init = setup, .fini = teardown, .timeout = 60);

static evs_repository_t *repo(const evs_entity_type_t *type, uint64_t snapshot_every,
                              evs_pubsub_t *ps) {
    evs_repository_options_t o = {
        .registry = reg, .type = type, .snapshot_every = snapshot_every, .publish_to = ps};
    evs_repository_t *r = evs_repository_new(c, &o);
    cr_assert_not_null(r);
    return r;
}

/* Saves an item id with a name and one Added of n; returns nothing (the entity is freed). */
static void save_item(evs_repository_t *r, const char *id, int64_t n) {
    item_t *it = (item_t *)evs_entity_new(reg, &ITEM, id);
    cr_assert_not_null(it);
    evs_error_t err = {0};
    cr_assert_eq(evs_entity_trigger(&it->base, &CREATED, attrs_name("pen"), &err), 0, "%s",
                 err.str);
    cr_assert_eq(evs_entity_trigger(&it->base, &ADDED, attrs_n(n), &err), 0, "%s", err.str);
    int rc = evs_repository_save(r, &it->base);
    cr_assert_eq(rc, 0, "save: %s %s", evs_code_name(rc), c->errstr);
    evs_entity_free(&it->base);
}

/* ---------------------------------------------------------------- entity types */

Test(domain_safety, loading_an_id_through_a_repository_of_another_type_fails_cleanly) {
    evs_repository_t *items = repo(&ITEM, 0, NULL);
    save_item(items, ID(0, "i1"), 3);
    evs_repository_t *tags = repo(&TAG, 0, NULL), *twins = repo(&TWIN, 0, NULL);
    evs_entity_t *e = (evs_entity_t *)1;
    cr_assert_eq(evs_repository_get(tags, ID(0, "i1"), &e), EVS_EWRONG_TYPE, "%s", c->errstr);
    cr_assert_null(e);
    cr_assert(strstr(c->errstr, "not an event of entity type test.Tag"), "%s", c->errstr);
    cr_assert_eq(evs_repository_get(twins, ID(0, "i1"), &e), EVS_EWRONG_TYPE, "%s", c->errstr);
    cr_assert(strstr(c->errstr, "stored by entity type test.Item, not test.Twin"), "%s", c->errstr);
    cr_assert_eq(evs_ping(c, NULL, 0), 0, "the context is still usable");
    cr_assert_eq(evs_repository_get(items, ID(0, "i1"), &e), 0, "%s", c->errstr);
    cr_assert_eq(((item_t *)e)->count, 3);
    evs_entity_free(e);
    evs_repository_free(items);
    evs_repository_free(tags);
    evs_repository_free(twins);
}

Test(domain_safety, a_snapshot_of_another_type_is_refused_not_restored) {
    evs_repository_t *items = repo(&ITEM, 1, NULL);
    save_item(items, ID(0, "i1"), 3); /* with a snapshot "test.Item@1" at version 2 */
    static const evs_entity_type_t snapping_twin = {.topic = "test.SnappingTwin",
                                                    .size = sizeof(item_t),
                                                    .restore = item_restore,
                                                    .events = ITEM_EVENTS};
    cr_assert_eq(evs_registry_add_entity(reg, &snapping_twin), 0);
    evs_repository_t *r = repo(&snapping_twin, 0, NULL);
    evs_entity_t *e;
    cr_assert_eq(evs_repository_get(r, ID(0, "i1"), &e), EVS_EWRONG_TYPE);
    cr_assert(strstr(c->errstr, "not one of entity type test.SnappingTwin"), "%s", c->errstr);
    evs_repository_free(items);
    evs_repository_free(r);
}

/* ---------------------------------------------------------------- stored, not published */

typedef struct seen {
    int fail_left; /* fail this many calls, then accept */
    size_t n;
    uint64_t versions[8], positions[8];
    int64_t timestamps[8];
} seen_t;

static int record(const evs_domain_event_t *ev, void *arg, evs_error_t *err) {
    seen_t *s = arg;
    if (s->fail_left > 0) {
        s->fail_left--;
        snprintf(err->str, sizeof err->str, "the read model is down");
        return err->code = EVS_EUNAVAILABLE;
    }
    cr_assert_lt(s->n, 8);
    s->versions[s->n] = ev->version;
    s->positions[s->n] = ev->position;
    s->timestamps[s->n] = ev->timestamp;
    s->n++;
    return 0;
}

Test(domain_safety, a_save_whose_subscriber_fails_is_stored_not_published_then_published_again) {
    evs_pubsub_t *ps = evs_pubsub_new();
    seen_t seen = {.fail_left = 1};
    cr_assert_neq(evs_pubsub_subscribe(ps, NULL, record, &seen), 0);
    evs_repository_t *r = repo(&ITEM, 0, ps);
    item_t *it = (item_t *)evs_entity_new(reg, &ITEM, ID(0, "p1"));
    evs_error_t err = {0};
    cr_assert_eq(evs_entity_trigger(&it->base, &CREATED, attrs_name("pen"), &err), 0);
    cr_assert_eq(evs_entity_trigger(&it->base, &ADDED, attrs_n(1), &err), 0);
    int rc = evs_repository_save(r, &it->base);
    cr_assert_eq(rc, EVS_ESTORED_NOT_PUBLISHED, "%s: %s", evs_code_name(rc), c->errstr);
    cr_assert(strstr(c->errstr, "the read model is down"), "%s", c->errstr);
    cr_assert_eq(it->base.npending, 0, "the events are saved: nothing to save again");
    cr_assert_eq(stored_count(c, ID(0, "p1")), 2);
    const evs_domain_event_t *const *kept;
    cr_assert_eq(evs_repository_unpublished(r, &kept), 2);
    cr_assert_eq(kept[0]->version, 0);
    cr_assert_eq(seen.n, 0);

    /* The next save publishes the kept events first, then its own. */
    cr_assert_eq(evs_entity_trigger(&it->base, &ADDED, attrs_n(2), &err), 0);
    cr_assert_eq(evs_repository_save(r, &it->base), 0, "%s", c->errstr);
    cr_assert_eq(evs_repository_unpublished(r, &kept), 0);
    cr_assert_eq(seen.n, 3);
    for (size_t i = 0; i < 3; i++) {
        cr_assert_eq(seen.versions[i], i);
        cr_assert_gt(seen.positions[i], 0);
        cr_assert_gt(seen.timestamps[i], 0, "event %zu was published without its timestamp", i);
    }
    cr_assert_lt(seen.positions[0], seen.positions[2]);

    /* Or evs_repository_publish_pending does, without a save. */
    seen.fail_left = 1;
    cr_assert_eq(evs_entity_trigger(&it->base, &ADDED, attrs_n(3), &err), 0);
    cr_assert_eq(evs_repository_save(r, &it->base), EVS_ESTORED_NOT_PUBLISHED);
    cr_assert_eq(evs_repository_unpublished(r, NULL), 1);
    cr_assert_eq(evs_repository_publish_pending(r), 0, "%s", c->errstr);
    cr_assert_eq(seen.n, 4);
    cr_assert_eq(seen.versions[3], 3);
    cr_assert_eq(evs_repository_publish_pending(r), 0, "nothing left is a no-op");
    cr_assert_eq(seen.n, 4);

    evs_entity_free(&it->base);
    evs_repository_free(r);
    evs_pubsub_free(ps);
}

/* ---------------------------------------------------------------- the persistence subscriber */

Test(domain_safety, the_persistence_subscriber_stores_a_publication_whole_or_not_at_all) {
    evs_pubsub_t *ps = evs_pubsub_new();
    evs_persistence_t *p = evs_persistence_new(ps, c);
    cr_assert_not_null(p);
    evs_domain_event_t *taken, *a0, *b0;
    cr_assert_eq(evs_domain_event_new(&CREATED, ID(1, "b"), 0, attrs_name("first"), &taken, NULL),
                 0);
    cr_assert_eq(evs_pubsub_publish(ps, (const evs_domain_event_t *const[]){taken}, 1, NULL), 0);
    /* a0 could be stored alone; b0 is another event at a version b already has. */
    cr_assert_eq(evs_domain_event_new(&CREATED, ID(0, "a"), 0, attrs_name("a"), &a0, NULL), 0);
    cr_assert_eq(evs_domain_event_new(&CREATED, ID(1, "b"), 0, attrs_name("b"), &b0, NULL), 0);
    evs_error_t err = {0};
    cr_assert_eq(evs_pubsub_publish(ps, (const evs_domain_event_t *const[]){a0, b0}, 2, &err),
                 EVS_ECONFLICT);
    cr_assert(strstr(err.str, "none stored"), "%s", err.str);
    cr_assert_eq(stored_count(c, ID(0, "a")), 0, "nothing of a refused publication is stored");
    cr_assert_eq(stored_count(c, ID(1, "b")), 1);

    /* A publication that fits is stored in one append, once. */
    evs_domain_event_t *a1;
    cr_assert_eq(evs_domain_event_new(&ADDED, ID(0, "a"), 1, attrs_n(1), &a1, NULL), 0);
    cr_assert_eq(evs_pubsub_publish(ps, (const evs_domain_event_t *const[]){a0, a1}, 2, &err), 0,
                 "%s", err.str);
    cr_assert_eq(stored_count(c, ID(0, "a")), 2);
    evs_persistence_close(p);
    evs_domain_event_free(taken);
    evs_domain_event_free(a0);
    evs_domain_event_free(a1);
    evs_domain_event_free(b0);
    evs_pubsub_free(ps);
}

/* ---------------------------------------------------------------- snapshots that cannot be used */

typedef struct warnings {
    int n;
    char last[512];
} warnings_t;

static void on_warning(const char *msg, void *arg) {
    warnings_t *w = arg;
    w->n++;
    snprintf(w->last, sizeof w->last, "%s", msg);
}

static void put_raw_snapshot(const char *id, uint64_t version, const char *topic,
                             evs_value_t *state) {
    evs_snapshot_t s = {.entity_id = (char *)id, .version = version, .topic = (char *)topic};
    cr_assert_eq(evs_value_encode(state, &s.payload, &s.payload_len), 0);
    evs_value_free(state);
    cr_assert_eq(evs_put_snapshot(c, &s), 0, "%s", c->errstr);
    free(s.payload);
}

Test(domain_safety, an_unusable_snapshot_falls_back_to_the_events_and_is_reported) {
    evs_repository_t *w = repo(&ITEM, 0, NULL);
    save_item(w, ID(0, "s1"), 7);
    warnings_t warned = {0};
    evs_repository_options_t o = {
        .registry = reg, .type = &ITEM, .on_warning = on_warning, .warning_arg = &warned};
    evs_repository_t *r = evs_repository_new(c, &o);

    /* A state of a schema this program has no upcaster for. */
    put_raw_snapshot(ID(0, "s1"), 1, "test.Item@7", evs_map_new());
    evs_entity_t *e;
    cr_assert_eq(evs_repository_get(r, ID(0, "s1"), &e), 0, "%s", c->errstr);
    cr_assert_eq(((item_t *)e)->count, 7);
    cr_assert_str_eq(((item_t *)e)->name, "pen");
    cr_assert_eq(e->version, 2);
    evs_entity_free(e);
    cr_assert_eq(warned.n, 1);
    cr_assert(strstr(warned.last, "snapshot at version 1 cannot be used"), "%s", warned.last);
    cr_assert(strstr(warned.last, "rebuilt from its events"), "%s", warned.last);

    /* A state that restore refuses (no "count"), at a later version. */
    evs_value_t *bad = evs_map_new();
    cr_assert_eq(evs_map_set_str(bad, "name", "broken"), 0);
    put_raw_snapshot(ID(0, "s1"), 2, "test.Item@1", bad);
    cr_assert_eq(evs_repository_get(r, ID(0, "s1"), &e), 0, "%s", c->errstr);
    cr_assert_eq(((item_t *)e)->count, 7);
    cr_assert_str_eq(((item_t *)e)->name, "pen", "nothing of the failed restore is kept");
    evs_entity_free(e);
    cr_assert_eq(warned.n, 2);
    cr_assert(strstr(warned.last, "a bad item state"), "%s", warned.last);

    /* Removing the snapshots keeps the events. */
    uint64_t deleted = 0;
    cr_assert_eq(evs_repository_delete_snapshots(r, ID(0, "s1"), &deleted), 0, "%s", c->errstr);
    cr_assert_eq(deleted, 2);
    evs_snapshot_t *snap;
    cr_assert_eq(evs_get_snapshot(c, ID(0, "s1"), EVS_LATEST, &snap), EVS_ENOT_FOUND);
    cr_assert_eq(stored_count(c, ID(0, "s1")), 2);
    cr_assert_eq(evs_delete_snapshots(c, ID(0, "s1"), &deleted), 0, "%s", c->errstr);
    cr_assert_eq(deleted, 0);
    cr_assert_eq(evs_repository_get(r, ID(0, "s1"), &e), 0, "%s", c->errstr);
    evs_entity_free(e);
    cr_assert_eq(warned.n, 2, "no snapshot, nothing to report");
    cr_assert_eq(evs_delete_snapshots(c, "", &deleted), EVS_EINVAL);
    evs_repository_free(w);
    evs_repository_free(r);
}

/* An item whose state cannot be snapshotted: its snapshot always fails. */
static int fragile_snapshot(const evs_entity_t *e, evs_value_t *state, evs_error_t *err) {
    (void)e;
    (void)state;
    snprintf(err->str, sizeof err->str, "this state cannot be kept");
    return err->code = EVS_EINVAL;
}
static const evs_entity_type_t FRAGILE = {.topic = "test.Fragile",
                                          .size = sizeof(item_t),
                                          .snapshot = fragile_snapshot,
                                          .restore = item_restore,
                                          .events = ITEM_EVENTS};

/* The events are stored before the snapshot is taken: a snapshot that fails then is a warning,
 * and the save succeeds (a caller told it failed would run its command again). */
Test(domain_safety, a_snapshot_that_fails_after_the_events_are_stored_does_not_fail_the_save) {
    cr_assert_eq(evs_registry_add_entity(reg, &FRAGILE), 0, "%s", evs_registry_errstr(reg));
    warnings_t warned = {0};
    evs_repository_options_t o = {.registry = reg,
                                  .type = &FRAGILE,
                                  .snapshot_every = 1,
                                  .on_warning = on_warning,
                                  .warning_arg = &warned};
    evs_repository_t *r = evs_repository_new(c, &o);
    cr_assert_not_null(r);
    item_t *it = (item_t *)evs_entity_new(reg, &FRAGILE, ID(0, "fragile"));
    cr_assert_not_null(it);
    evs_error_t err = {0};
    cr_assert_eq(evs_entity_trigger(&it->base, &CREATED, attrs_name("cup"), &err), 0, "%s",
                 err.str);
    cr_assert_eq(evs_entity_trigger(&it->base, &ADDED, attrs_n(2), &err), 0, "%s", err.str);
    int rc = evs_repository_save(r, &it->base);
    cr_assert_eq(rc, 0, "save: %s %s", evs_code_name(rc), c->errstr);
    cr_assert_eq(it->base.version, 2);
    evs_entity_free(&it->base);
    cr_assert_eq(stored_count(c, ID(0, "fragile")), 2);
    cr_assert_eq(warned.n, 1);
    cr_assert(strstr(warned.last, "saved, but no snapshot: this state cannot be kept"), "%s",
              warned.last);
    evs_snapshot_t *snap;
    cr_assert_eq(evs_get_snapshot(c, ID(0, "fragile"), EVS_LATEST, &snap), EVS_ENOT_FOUND);
    evs_entity_t *e;
    cr_assert_eq(evs_repository_get(r, ID(0, "fragile"), &e), 0, "%s", c->errstr);
    cr_assert_eq(((item_t *)e)->count, 2);
    evs_entity_free(e);
    evs_repository_free(r);
}

/* ---------------------------------------------------------------- connections */

Test(domain_safety, a_repository_is_rebound_to_a_new_connection_after_its_own_died) {
    evs_context_t *old = connect_ctx();
    evs_repository_options_t o = {.registry = reg, .type = &ITEM};
    evs_repository_t *r = evs_repository_new(old, &o);
    evs_repository_t *writer = repo(&ITEM, 0, NULL);
    save_item(writer, ID(0, "r1"), 4);
    evs_repository_free(writer);
    cr_assert_eq(shutdown(old->fd, SHUT_RDWR), 0);
    evs_entity_t *e;
    int rc = evs_repository_get(r, ID(0, "r1"), &e);
    cr_assert(rc == EVS_EIO || rc == EVS_EPROTOCOL, "%s", evs_code_name(rc));
    cr_assert_eq(evs_repository_get(r, ID(0, "r1"), &e), rc, "a dead context stays dead");
    cr_assert_eq(evs_repository_set_conn(r, c), 0);
    cr_assert_eq(evs_repository_get(r, ID(0, "r1"), &e), 0, "%s", c->errstr);
    cr_assert_eq(((item_t *)e)->count, 4);
    evs_entity_free(e);
    cr_assert_eq(evs_repository_set_conn(r, NULL), EVS_EINVAL);
    evs_repository_free(r);
    evs_free(old);
}

/* ---------------------------------------------------------------- subscribe */

Test(domain_safety, subscribe_filters_by_entity_prefix_and_tells_where_it_starts) {
    evs_repository_t *r = repo(&ITEM, 0, NULL);
    save_item(r, ID(0, "before"), 1);
    uint64_t head = 0;
    cr_assert_eq(evs_store_info(c, (char[EVS_STORE_ID_LEN]){0}, &head), 0, "%s", c->errstr);
    cr_assert_gt(head, 0);

    uint64_t live, caught;
    cr_assert_eq(evs_subscribe(c, NULL, &live), 0, "%s", c->errstr);
    uint64_t after = 0;
    cr_assert_eq(evs_sub_started_after(c, live, &after), 0);
    cr_assert_eq(after, head, "a live subscription starts after the head");

    char prefix[48];
    snprintf(prefix, sizeof prefix, "safe-%s-keep", id_prefix);
    evs_sub_options_t o = {.has_after = true, .after = 0, .entity_prefix = prefix};
    cr_assert_eq(evs_subscribe(c, &o, &caught), 0, "%s", c->errstr);
    cr_assert_eq(evs_sub_started_after(c, caught, &after), 0);
    cr_assert_eq(after, 0);
    cr_assert_eq(evs_sub_started_after(c, 999999, &after), EVS_ENOT_FOUND);

    save_item(r, ID(1, "keep-1"), 1);
    save_item(r, ID(2, "drop-1"), 1);
    save_item(r, ID(3, "keep-2"), 1);
    size_t got = 0;
    while (got < 4) {
        evs_push_t *p;
        cr_assert_eq(evs_sub_next(c, caught, 5000, &p), 0, "%s", c->errstr);
        cr_assert_not_null(p, "only %zu events came", got);
        for (size_t i = 0; i < p->n; i++, got++)
            cr_assert(strncmp(p->events[i].entity_id, prefix, strlen(prefix)) == 0, "%s",
                      p->events[i].entity_id);
        evs_push_free(p);
    }
    evs_sub_options_t bad = {.entity_prefix = "\xff"};
    cr_assert_eq(evs_subscribe(c, &bad, &caught), EVS_EINVAL);
    evs_repository_free(r);
}
