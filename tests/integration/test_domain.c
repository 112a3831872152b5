/* test_domain.c: the domain layer against a real evstored: the snapshot calls, the repository,
 * the persistence subscriber, upcasting what is stored, and the bank example. One fresh daemon
 * per test (tests/integration/harness.h), on $EVSTORE_TEST_STORE. */
#include <criterion/criterion.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <evstore.h>

#include "../common/daemon.h"
#include "../unit/test_domain_fixture.h"

static test_daemon_t daemon_;
static evs_context_t *c, *c2;
static evs_registry_t *reg;

/* Entity ids are prefixed per test, so that tests sharing one PostgreSQL database (and running
 * in parallel) never meet: ID("x") is "dom-RANDOM-x", the same string for the whole test. */
static char id_prefix[16];
static struct {
    char name[16];
    char id[48];
} ids[16];

static char *ID(const char *name) {
    size_t i = 0;
    for (; i < 16 && ids[i].name[0]; i++)
        if (strcmp(ids[i].name, name) == 0) return ids[i].id;
    cr_assert_lt(i, 16, "too many ids in one test");
    snprintf(ids[i].name, sizeof ids[i].name, "%s", name);
    snprintf(ids[i].id, sizeof ids[i].id, "dom-%s-%s", id_prefix, name);
    return ids[i].id;
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
    char r[37];
    evs_random_id(r);
    snprintf(id_prefix, sizeof id_prefix, "%.8s", r);
    memset(ids, 0, sizeof ids);
}

static void teardown(void) {
    evs_registry_free(reg);
    evs_free(c);
    evs_free(c2);
    c = c2 = NULL;
    if (daemon_.pid > 0) cr_expect_eq(test_daemon_stop(&daemon_), 0, "evstored did not exit 0");
}

TestSuite(domain, .init = setup, .fini = teardown, .timeout = 60);

/* ---------------------------------------------------------------- helpers */

static evs_repository_t *repo_on(evs_context_t *ctx, uint64_t snapshot_every) {
    evs_repository_options_t o = {.registry = reg, .type = &ITEM, .snapshot_every = snapshot_every};
    evs_repository_t *r = evs_repository_new(ctx, &o);
    cr_assert_not_null(r);
    return r;
}

/* ---------------------------------------------------------------- the snapshot calls */

Test(domain, put_and_get_snapshot_round_trip) {
    evs_snapshot_t s = {.entity_id = ID("e1"),
                        .version = 5,
                        .topic = "t@1",
                        .payload = (uint8_t *)"\x80",
                        .payload_len = 1};
    cr_assert_eq(evs_put_snapshot(c, &s), 0, "%s", c->errstr);
    s.version = 10;
    s.payload = (uint8_t *)"\x81\xa1k\x01";
    s.payload_len = 4;
    cr_assert_eq(evs_put_snapshot(c, &s), 0, "%s", c->errstr);

    evs_snapshot_t *got;
    cr_assert_eq(evs_get_snapshot(c, ID("e1"), EVS_LATEST, &got), 0, "%s", c->errstr);
    cr_assert_eq(got->version, 10);
    cr_assert_str_eq(got->entity_id, ID("e1"));
    cr_assert_str_eq(got->topic, "t@1");
    cr_assert_eq(got->payload_len, 4);
    cr_assert_eq(memcmp(got->payload, "\x81\xa1k\x01", 4), 0);
    cr_assert_gt(got->timestamp, 0);
    evs_snapshot_free(got);

    cr_assert_eq(evs_get_snapshot(c, ID("e1"), 9, &got), 0, "%s", c->errstr);
    cr_assert_eq(got->version, 5);
    evs_snapshot_free(got);
    cr_assert_eq(evs_get_snapshot(c, ID("e1"), 4, &got), EVS_ENOT_FOUND);
    cr_assert_null(got);
    cr_assert_eq(evs_get_snapshot(c, ID("nobody"), EVS_LATEST, &got), EVS_ENOT_FOUND);
    cr_assert_eq(c->fd >= 0, true, "a not_found leaves the context alive");
    cr_assert_eq(evs_put_snapshot(c, &(evs_snapshot_t){.entity_id = "", .topic = "t"}), EVS_EINVAL);
}

Test(domain, delete_entity_also_removes_its_snapshots) {
    evs_repository_t *r = repo_on(c, 2);
    item_t *it = item_created(reg, &ITEM, ID("d1"), "pen");
    item_add(it, 1);
    cr_assert_eq(evs_repository_save(r, &it->base), 0, "%s", c->errstr);
    evs_snapshot_t *got;
    cr_assert_eq(evs_get_snapshot(c, ID("d1"), EVS_LATEST, &got), 0, "%s", c->errstr);
    evs_snapshot_free(got);
    cr_assert_eq(evs_delete_entity(c, ID("d1"), NULL), 0, "%s", c->errstr);
    cr_assert_eq(evs_get_snapshot(c, ID("d1"), EVS_LATEST, &got), EVS_ENOT_FOUND);
    evs_entity_free(&it->base);
    evs_repository_free(r);
}

/* ---------------------------------------------------------------- the repository */

Test(domain, saved_entity_is_rebuilt_by_get) {
    evs_repository_t *r = repo_on(c, 0);
    item_t *it = item_created(reg, &ITEM, ID("i1"), "pen");
    item_add(it, 2);
    item_add(it, 3);
    cr_assert_eq(evs_repository_save(r, &it->base), 0, "%s", c->errstr);
    cr_assert_eq(it->base.npending, 0);
    cr_assert_eq(stored_count(c, ID("i1")), 3);
    evs_entity_t *e;
    cr_assert_eq(evs_repository_get(r, ID("i1"), &e), 0, "%s", c->errstr);
    item_t *got = (item_t *)e;
    cr_assert_str_eq(got->name, "pen");
    cr_assert_eq(got->count, 5);
    cr_assert_eq(e->version, 3);
    cr_assert_eq(e->npending, 0);
    bool has;
    cr_assert_eq(evs_repository_contains(r, ID("i1"), &has), 0);
    cr_assert(has);
    evs_entity_free(e);
    evs_entity_free(&it->base);
    evs_repository_free(r);
}

Test(domain, unknown_entity_is_not_found) {
    evs_repository_t *r = repo_on(c, 0);
    evs_entity_t *e = (evs_entity_t *)1;
    cr_assert_eq(evs_repository_get(r, ID("ghost"), &e), EVS_ENOT_FOUND);
    cr_assert_null(e);
    cr_assert(strstr(c->errstr, ID("ghost")), "%s", c->errstr);
    cr_assert_eq(evs_repository_get_at(r, ID("ghost"), 1, &e), EVS_ENOT_FOUND);
    bool has = true;
    cr_assert_eq(evs_repository_contains(r, ID("ghost"), &has), 0);
    cr_assert_not(has);
    cr_assert_eq(evs_ping(c, NULL, 0), 0, "the context is still usable");
    evs_repository_free(r);
}

Test(domain, discarded_entity_is_not_found) {
    evs_repository_t *r = repo_on(c, 0);
    item_t *it = item_created(reg, &ITEM, ID("gone"), "pen");
    item_add(it, 1);
    evs_error_t err = {0};
    cr_assert_eq(evs_entity_trigger(&it->base, &REMOVED, NULL, &err), 0);
    cr_assert_eq(evs_repository_save(r, &it->base), 0, "%s", c->errstr);
    evs_entity_t *e;
    cr_assert_eq(evs_repository_get(r, ID("gone"), &e), EVS_ENOT_FOUND);
    cr_assert(strstr(c->errstr, "discarded"), "%s", c->errstr);
    bool has = true;
    cr_assert_eq(evs_repository_contains(r, ID("gone"), &has), 0);
    cr_assert_not(has);
    /* As it was before it was discarded, it can still be read. */
    cr_assert_eq(evs_repository_get_at(r, ID("gone"), 2, &e), 0, "%s", c->errstr);
    cr_assert_eq(((item_t *)e)->count, 1);
    cr_assert_not(e->discarded);
    evs_entity_free(e);
    evs_entity_free(&it->base);
    evs_repository_free(r);
}

Test(domain, two_repositories_saving_one_entity_one_conflict_store_unchanged_by_the_loser) {
    evs_repository_t *r1 = repo_on(c, 0), *r2 = repo_on(c2, 0);
    item_t *it = item_created(reg, &ITEM, ID("shared"), "pen");
    cr_assert_eq(evs_repository_save(r1, &it->base), 0, "%s", c->errstr);
    evs_entity_free(&it->base);

    evs_entity_t *a, *b;
    cr_assert_eq(evs_repository_get(r1, ID("shared"), &a), 0, "%s", c->errstr);
    cr_assert_eq(evs_repository_get(r2, ID("shared"), &b), 0, "%s", c2->errstr);
    item_add((item_t *)a, 10);
    item_add((item_t *)a, 11);
    item_add((item_t *)b, 99);
    cr_assert_eq(evs_repository_save(r1, a), 0, "%s", c->errstr);
    cr_assert_eq(evs_repository_save(r2, b), EVS_ECONFLICT);
    /* Versions as the domain layer counts them: b was loaded at version 1 (one event) and the
     * entity is now at version 3 (three events), not the wire's index of its last event. */
    cr_assert(c2->detail.has_current_version);
    cr_assert_eq(c2->detail.current_version, 3);
    cr_assert(c2->detail.has_version);
    cr_assert_eq(c2->detail.version, 1);
    cr_assert(strstr(c2->errstr, "is at version 3, but this save expected it at version 1"), "%s",
              c2->errstr);
    cr_assert_eq(b->npending, 1, "the loser keeps its pending event");

    evs_events_t *l;
    cr_assert_eq(evs_get_by_entity(c, ID("shared"), 0, 0, false, &l), 0);
    cr_assert_eq(l->n, 3);
    evs_events_free(l);
    evs_entity_t *now;
    cr_assert_eq(evs_repository_get(r2, ID("shared"), &now), 0, "%s", c2->errstr);
    cr_assert_eq(((item_t *)now)->count, 21);
    evs_entity_free(now);
    evs_entity_free(a);
    evs_entity_free(b);
    evs_repository_free(r1);
    evs_repository_free(r2);
}

static int count_published(const evs_domain_event_t *ev, void *arg, evs_error_t *err) {
    (void)ev;
    (void)err;
    ++*(int *)arg;
    return 0;
}

Test(domain, saved_events_are_published_after_the_save) {
    int seen = 0;
    evs_pubsub_t *ps = evs_pubsub_new();
    cr_assert_neq(evs_pubsub_subscribe(ps, NULL, count_published, &seen), 0);
    evs_repository_options_t o = {.registry = reg, .type = &ITEM, .publish_to = ps};
    evs_repository_t *r = evs_repository_new(c, &o);
    item_t *it = item_created(reg, &ITEM, ID("p1"), "pen");
    item_add(it, 1);
    cr_assert_eq(evs_repository_save(r, &it->base), 0, "%s", c->errstr);
    cr_assert_eq(seen, 2);
    /* A conflicting save publishes nothing. */
    evs_entity_t *stale;
    cr_assert_eq(evs_repository_get(r, ID("p1"), &stale), 0);
    item_add(it, 2);
    cr_assert_eq(evs_repository_save(r, &it->base), 0);
    item_add((item_t *)stale, 3);
    cr_assert_eq(evs_repository_save(r, stale), EVS_ECONFLICT);
    cr_assert_eq(seen, 3);
    evs_entity_free(stale);
    evs_entity_free(&it->base);
    evs_repository_free(r);
    evs_pubsub_free(ps);
}

Test(domain, replay_of_several_entities_from_the_interleaved_global_log) {
    evs_repository_t *r = repo_on(c, 0);
    item_t *a = item_created(reg, &ITEM, ID("ra"), "apple"),
           *b = item_created(reg, &ITEM, ID("rb"), "banana");
    cr_assert_eq(evs_repository_save(r, &a->base), 0, "%s", c->errstr);
    cr_assert_eq(evs_repository_save(r, &b->base), 0, "%s", c->errstr);
    for (int64_t i = 1; i <= 3; i++) { /* a, b, a, b, a, b: interleaved in the log */
        item_add(a, i);
        cr_assert_eq(evs_repository_save(r, &a->base), 0, "%s", c->errstr);
        item_add(b, 10 * i);
        cr_assert_eq(evs_repository_save(r, &b->base), 0, "%s", c->errstr);
    }
    /* Read the global log from the first event of ra, a page at a time (other tests' events
     * may be there too when the store is shared: the player skips them). */
    evs_events_t *first;
    cr_assert_eq(evs_get_by_entity(c, ID("ra"), 0, 1, false, &first), 0, "%s", c->errstr);
    uint64_t after = first->events[0].position - 1;
    evs_events_free(first);
    item_t *ra = (item_t *)evs_entity_new(reg, &ITEM, ID("ra"));
    item_t *rb = (item_t *)evs_entity_new(reg, &ITEM, ID("rb"));
    evs_error_t err = {0};
    for (;;) {
        evs_events_t *log;
        cr_assert_eq(evs_read_all(c, after, 5, &log), 0, "%s", c->errstr);
        if (log->n == 0) {
            evs_events_free(log);
            break;
        }
        cr_assert_eq(evs_player_play(&ra->base, log->events, log->n, EVS_LATEST, &err), 0, "%s",
                     err.str);
        cr_assert_eq(evs_player_play(&rb->base, log->events, log->n, EVS_LATEST, &err), 0, "%s",
                     err.str);
        after = log->events[log->n - 1].position;
        evs_events_free(log);
    }
    cr_assert_eq(ra->count, 6);
    cr_assert_eq(ra->base.version, 4);
    cr_assert_str_eq(ra->name, "apple");
    cr_assert_eq(rb->count, 60);
    cr_assert_eq(rb->base.version, 4);
    cr_assert_str_eq(rb->name, "banana");
    evs_entity_free(&ra->base);
    evs_entity_free(&rb->base);
    evs_entity_free(&a->base);
    evs_entity_free(&b->base);
    evs_repository_free(r);
}

/* ---------------------------------------------------------------- snapshots */

Test(domain, snapshot_every_5_of_13_events_and_every_historical_version) {
    evs_repository_t *r = repo_on(c, 5);
    item_t *it = item_created(reg, &ITEM, ID("s13"), "pen");
    cr_assert_eq(evs_repository_save(r, &it->base), 0, "%s", c->errstr);
    for (int64_t i = 1; i < 13; i++) { /* events 1..12, saved one by one */
        item_add(it, i);
        cr_assert_eq(evs_repository_save(r, &it->base), 0, "%s", c->errstr);
    }
    cr_assert_eq(it->base.version, 13);
    evs_snapshot_t *s;
    cr_assert_eq(evs_get_snapshot(c, ID("s13"), EVS_LATEST, &s), 0, "%s", c->errstr);
    cr_assert_eq(s->version, 10);
    cr_assert_str_eq(s->topic, "test.Item@1");
    evs_snapshot_free(s);
    cr_assert_eq(evs_get_snapshot(c, ID("s13"), 9, &s), 0, "%s", c->errstr);
    cr_assert_eq(s->version, 5);
    evs_snapshot_free(s);
    cr_assert_eq(evs_get_snapshot(c, ID("s13"), 4, &s), EVS_ENOT_FOUND, "no snapshot below 5");

    for (uint64_t v = 1; v <= 13; v++) {
        evs_entity_t *e;
        cr_assert_eq(evs_repository_get_at(r, ID("s13"), v, &e), 0, "v%lu: %s", (unsigned long)v,
                     c->errstr);
        cr_assert_eq(e->version, v);
        int64_t want = (int64_t)((v - 1) * v / 2); /* 1 + 2 + ... + (v - 1) */
        cr_assert_eq(((item_t *)e)->count, want, "at version %lu", (unsigned long)v);
        cr_assert_str_eq(((item_t *)e)->name, "pen");
        evs_entity_free(e);
    }
    evs_entity_t *e;
    cr_assert_eq(evs_repository_get_at(r, ID("s13"), 14, &e), EVS_ENOT_FOUND);
    cr_assert(strstr(c->errstr, "never reached version 14"), "%s", c->errstr);
    cr_assert_eq(evs_repository_get_at(r, ID("s13"), 0, &e), EVS_ENOT_FOUND);
    cr_assert_eq(evs_repository_get(r, ID("s13"), &e), 0, "%s", c->errstr);
    cr_assert_eq(((item_t *)e)->count, 78);
    evs_entity_free(e);
    evs_entity_free(&it->base);
    evs_repository_free(r);
}

Test(domain, a_save_that_passes_a_multiple_snapshots_the_new_version) {
    evs_repository_t *r = repo_on(c, 5);
    item_t *it = item_created(reg, &ITEM, ID("batch"), "pen");
    for (int i = 0; i < 6; i++)
        item_add(it, 1); /* 7 events in one save: passes 5 */
    cr_assert_eq(evs_repository_save(r, &it->base), 0, "%s", c->errstr);
    evs_snapshot_t *s;
    cr_assert_eq(evs_get_snapshot(c, ID("batch"), EVS_LATEST, &s), 0, "%s", c->errstr);
    cr_assert_eq(s->version, 7);
    evs_snapshot_free(s);
    evs_entity_free(&it->base);
    evs_repository_free(r);
}

Test(domain, loading_starts_from_the_newest_snapshot) {
    evs_repository_t *r = repo_on(c, 0);
    item_t *it = item_created(reg, &ITEM, ID("snap"), "pen");
    item_add(it, 1);
    item_add(it, 1);
    cr_assert_eq(evs_repository_save(r, &it->base), 0, "%s", c->errstr);
    /* A snapshot at version 2 that disagrees with the events shows where loading starts. */
    evs_value_t *state = evs_map_new();
    cr_assert_eq(evs_map_set_int(state, "count", 500), 0);
    cr_assert_eq(evs_map_set_str(state, "name", "from-snapshot"), 0);
    evs_snapshot_t s = {.entity_id = ID("snap"), .version = 2, .topic = "test.Item@1"};
    cr_assert_eq(evs_value_encode(state, &s.payload, &s.payload_len), 0);
    cr_assert_eq(evs_put_snapshot(c, &s), 0, "%s", c->errstr);
    evs_entity_t *e;
    cr_assert_eq(evs_repository_get(r, ID("snap"), &e), 0, "%s", c->errstr);
    cr_assert_str_eq(((item_t *)e)->name, "from-snapshot");
    cr_assert_eq(((item_t *)e)->count, 501, "the snapshot plus the event at version 2");
    cr_assert_eq(e->version, 3);
    evs_entity_free(e);
    cr_assert_eq(evs_repository_get_at(r, ID("snap"), 1, &e), 0, "%s", c->errstr);
    cr_assert_str_eq(((item_t *)e)->name, "pen", "below the snapshot: events only");
    evs_entity_free(e);
    free(s.payload);
    evs_value_free(state);
    evs_entity_free(&it->base);
    evs_repository_free(r);
}

/* ---------------------------------------------------------------- the persistence subscriber */

static evs_domain_event_t *item_event(const evs_event_type_t *t, const char *id, uint64_t v,
                                      evs_value_t *attrs) {
    evs_domain_event_t *ev;
    cr_assert_eq(evs_domain_event_new(t, id, v, attrs, &ev, NULL), 0);
    return ev;
}

Test(domain, persistence_subscriber_before_and_after_close) {
    evs_pubsub_t *ps = evs_pubsub_new();
    evs_persistence_t *p = evs_persistence_new(ps, c);
    cr_assert_not_null(p);
    evs_domain_event_t *e0 = item_event(&CREATED, ID("ps1"), 0, attrs_name("pen"));
    evs_domain_event_t *e1 = item_event(&ADDED, ID("ps1"), 1, attrs_n(4));
    evs_domain_event_t *e2 = item_event(&ADDED, ID("ps1"), 2, attrs_n(5));
    const evs_domain_event_t *first[] = {e0, e1};
    evs_error_t err = {0};
    cr_assert_eq(evs_pubsub_publish(ps, first, 2, &err), 0, "%s", err.str);
    cr_assert_eq(stored_count(c, ID("ps1")), 2);

    /* Publishing the same event again is an idempotent retry (same event id and version)... */
    cr_assert_eq(evs_pubsub_publish(ps, &first[1], 1, &err), 0, "%s", err.str);
    cr_assert_eq(stored_count(c, ID("ps1")), 2);
    /* ...but another event at a version already taken is a conflict, told to the publisher. */
    evs_domain_event_t *stale = item_event(&ADDED, ID("ps1"), 1, attrs_n(6));
    const evs_domain_event_t *stale_list[] = {stale};
    cr_assert_eq(evs_pubsub_publish(ps, stale_list, 1, &err), EVS_ECONFLICT);
    cr_assert(strstr(err.str, "persisting test.Added"), "%s", err.str);
    evs_domain_event_free(stale);

    evs_persistence_close(p);
    const evs_domain_event_t *later[] = {e2};
    cr_assert_eq(evs_pubsub_publish(ps, later, 1, &err), 0, "%s", err.str);
    cr_assert_eq(stored_count(c, ID("ps1")), 2, "nothing is appended after close");

    /* What it stored reads back as the same domain events. */
    evs_repository_t *r = repo_on(c, 0);
    evs_entity_t *e;
    cr_assert_eq(evs_repository_get(r, ID("ps1"), &e), 0, "%s", c->errstr);
    cr_assert_eq(((item_t *)e)->count, 4);
    evs_events_t *l;
    cr_assert_eq(evs_get_by_entity(c, ID("ps1"), 0, 0, false, &l), 0);
    cr_assert_eq(memcmp(l->events[1].event_id, e1->event_id, 16), 0);
    evs_events_free(l);
    evs_entity_free(e);
    evs_repository_free(r);
    evs_domain_event_free(e0);
    evs_domain_event_free(e1);
    evs_domain_event_free(e2);
    evs_pubsub_free(ps);
}

/* ---------------------------------------------------------------- upcasting what is stored */

/* test.Added was {"amt"} at schema 1, {"n"} at 2, {"n", "unit"} at 3; test.Item's state was
 * {"count", "nm"} at 1, {"count", "name"} at 2, and gained "unit" at 3. */
static int amt_to_n(evs_value_t *a, evs_error_t *err) {
    (void)err;
    return evs_map_rename(a, "amt", "n");
}
static int add_unit(evs_value_t *a, evs_error_t *err) {
    (void)err;
    return evs_map_set_str(a, "unit", "piece");
}
static int nm_to_name(evs_value_t *a, evs_error_t *err) {
    (void)err;
    return evs_map_rename(a, "nm", "name");
}

static const evs_event_type_t ADDED_V3 = {
    .topic = "test.Added", .schema_version = 3, .apply = added_apply};
static const evs_event_type_t *const ITEM_V3_EVENTS[] = {&CREATED, &ADDED_V3, &REMOVED, NULL};
static const evs_entity_type_t ITEM_V3 = {.topic = "test.Item",
                                          .schema_version = 3,
                                          .size = sizeof(item_t),
                                          .snapshot = item_snapshot,
                                          .restore = item_restore,
                                          .events = ITEM_V3_EVENTS};

static evs_registry_t *v3_registry(void) {
    evs_registry_t *r3 = evs_registry_new();
    cr_assert_eq(evs_registry_add_event(r3, &CREATED), 0);
    cr_assert_eq(evs_registry_add_event(r3, &ADDED_V3), 0);
    cr_assert_eq(evs_registry_add_entity(r3, &ITEM_V3), 0);
    cr_assert_eq(evs_registry_add_upcaster(r3, "test.Added", 1, amt_to_n), 0);
    cr_assert_eq(evs_registry_add_upcaster(r3, "test.Added", 2, add_unit), 0);
    cr_assert_eq(evs_registry_add_upcaster(r3, "test.Item", 1, nm_to_name), 0);
    cr_assert_eq(evs_registry_add_upcaster(r3, "test.Item", 2, add_unit), 0);
    return r3;
}

Test(domain, upcaster_chain_v1_v2_v3_on_a_stored_event_and_a_stored_snapshot) {
    /* An old program stored events and a snapshot in the schema-1 shapes. */
    uint8_t created[] = {0x81, 0xa4, 'n', 'a', 'm', 'e', 0xa3, 'p', 'e', 'n'};
    uint8_t added[] = {0x81, 0xa3, 'a', 'm', 't', 0x07};
    evs_event_t old[] = {
        {.entity_id = ID("up"),
         .topic = "test.Created",
         .payload = created,
         .payload_len = sizeof created},
        {.entity_id = ID("up"),
         .topic = "test.Added",
         .payload = added,
         .payload_len = sizeof added},
        {.entity_id = ID("up"),
         .topic = "test.Added",
         .payload = added,
         .payload_len = sizeof added},
    };
    cr_assert_eq(evs_append(c, old, 3, NULL, NULL), 0, "%s", c->errstr);
    uint8_t state[] = {0x82, 0xa5, 'c', 'o',  'u', 'n', 't', 0x07,
                       0xa2, 'n',  'm', 0xa3, 'o', 'l', 'd'};
    evs_snapshot_t snap = {.entity_id = ID("up"),
                           .version = 2,
                           .topic = "test.Item@1",
                           .payload = state,
                           .payload_len = sizeof state};
    cr_assert_eq(evs_put_snapshot(c, &snap), 0, "%s", c->errstr);

    evs_registry_t *r3 = v3_registry();
    evs_repository_options_t o = {.registry = r3, .type = &ITEM_V3};
    evs_repository_t *r = evs_repository_new(c, &o);

    /* The event: read through the repository's player and on its own. */
    evs_entity_t *e;
    cr_assert_eq(evs_repository_get_at(r, ID("up"), 2, &e), 0, "%s", c->errstr); /* below snap */
    cr_assert_eq(((item_t *)e)->count, 7);
    evs_entity_free(e);
    evs_events_t *l;
    cr_assert_eq(evs_get_by_entity(c, ID("up"), 1, 1, false, &l), 0);
    evs_domain_event_t *ev;
    evs_error_t err = {0};
    cr_assert_eq(evs_domain_event_from_stored(r3, &l->events[0], &ev, &err), 0, "%s", err.str);
    evs_value_t *want = evs_map_new();
    cr_assert_eq(evs_map_set_int(want, "n", 7), 0);
    cr_assert_eq(evs_map_set_str(want, "unit", "piece"), 0);
    cr_assert(evs_value_equal(ev->attrs, want));
    evs_domain_event_free(ev);
    evs_value_free(want);
    evs_events_free(l);

    /* The snapshot: the newest load starts from it, upcast from schema 1 to 3. */
    cr_assert_eq(evs_repository_get(r, ID("up"), &e), 0, "%s", c->errstr);
    cr_assert_str_eq(((item_t *)e)->name, "old");
    cr_assert_eq(((item_t *)e)->count, 14);
    cr_assert_eq(e->version, 3);
    evs_entity_free(e);

    /* Stored bytes are never changed by a read. */
    cr_assert_eq(evs_get_by_entity(c, ID("up"), 0, 0, false, &l), 0);
    cr_assert_eq(l->events[1].payload_len, sizeof added);
    cr_assert_eq(memcmp(l->events[1].payload, added, sizeof added), 0);
    cr_assert_null(l->events[1].metadata);
    evs_events_free(l);
    evs_snapshot_t *s;
    cr_assert_eq(evs_get_snapshot(c, ID("up"), EVS_LATEST, &s), 0);
    cr_assert_str_eq(s->topic, "test.Item@1");
    cr_assert_eq(memcmp(s->payload, state, sizeof state), 0);
    evs_snapshot_free(s);

    evs_repository_free(r);
    evs_registry_free(r3);
}

Test(domain, an_unknown_topic_in_the_store_is_a_clear_error) {
    evs_event_t ev = {.entity_id = ID("odd"),
                      .topic = "test.Unheard",
                      .payload = (uint8_t *)"",
                      .payload_len = 1};
    cr_assert_eq(evs_append(c, &ev, 1, NULL, NULL), 0, "%s", c->errstr);
    evs_repository_t *r = repo_on(c, 0);
    evs_entity_t *e;
    cr_assert_eq(evs_repository_get(r, ID("odd"), &e), EVS_EINVAL);
    cr_assert(strstr(c->errstr, "unknown topic \"test.Unheard\""), "%s", c->errstr);
    cr_assert_eq(evs_ping(c, NULL, 0), 0, "the context is still usable");
    evs_repository_free(r);
}

/* ---------------------------------------------------------------- the bank example */

/* $EVSTORE_BANK_EXAMPLE, else evstore-bank-example next to $EVSTORED_BIN (build/san/bin). */
static void bank_example_path(char *out, size_t cap) {
    const char *p = getenv("EVSTORE_BANK_EXAMPLE");
    if (p && *p) {
        snprintf(out, cap, "%s", p);
        return;
    }
    const char *d = getenv("EVSTORED_BIN");
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", d && *d ? d : "build/san/bin/evstored");
    snprintf(out, cap, "%s/evstore-bank-example", dirname(tmp));
}

Test(domain, the_bank_example_plays_its_session_and_exits_0) {
    char path[4200], cmd[4400];
    bank_example_path(path, sizeof path);
    cr_assert_eq(access(path, X_OK), 0, "no bank example at %s", path);
    snprintf(cmd, sizeof cmd, "'%s' --server %s > /dev/null", path, daemon_.addr);
    int st = system(cmd);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s exited with %d", path, st);
    /* And it reads EVSTORE_ADDR when there is no --server. */
    setenv("EVSTORE_ADDR", daemon_.addr, 1);
    snprintf(cmd, sizeof cmd, "'%s' > /dev/null", path);
    st = system(cmd);
    unsetenv("EVSTORE_ADDR");
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "with EVSTORE_ADDR: %d", st);
}
