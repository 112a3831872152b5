/* test_domain_entity.c: entities, triggering and applying events, the player and snapshots. */
#include <stdlib.h>

#include "test_domain_fixture.h"

static evs_registry_t *reg;

static void setup(void) {
    reg = fixture_registry();
}
static void teardown(void) {
    evs_registry_free(reg);
}

TestSuite(domain_entity, .init = setup, .fini = teardown);

static item_t *new_item(const char *id) {
    item_t *it = (item_t *)evs_entity_new(reg, &ITEM, id);
    cr_assert_not_null(it);
    return it;
}

Test(domain_entity, triggering_applies_the_event_and_keeps_it_pending) {
    item_t *it = new_item("i1");
    evs_error_t err = {0};
    cr_assert_eq(it->base.version, 0);
    cr_assert_eq(evs_entity_trigger(&it->base, &CREATED, attrs_name("pen"), &err), 0, "%s",
                 err.str);
    cr_assert_eq(evs_entity_trigger(&it->base, &ADDED, attrs_n(3), &err), 0, "%s", err.str);
    cr_assert_str_eq(it->name, "pen");
    cr_assert_eq(it->count, 3);
    cr_assert_eq(it->base.version, 2);
    cr_assert_eq(it->base.npending, 2);
    cr_assert_eq(it->base.pending[0]->version, 0);
    cr_assert_eq(it->base.pending[1]->version, 1);
    cr_assert_str_eq(it->base.pending[1]->entity_id, "i1");
    cr_assert_neq(memcmp(it->base.pending[0]->event_id, it->base.pending[1]->event_id, 16), 0);
    evs_entity_clear_pending(&it->base);
    cr_assert_eq(it->base.npending, 0);
    evs_entity_free(&it->base);
}

Test(domain_entity, an_event_of_another_entity_or_version_is_refused) {
    item_t *it = new_item("i1");
    evs_domain_event_t *ev;
    evs_error_t err = {0};
    cr_assert_eq(evs_domain_event_new(&CREATED, "i2", 0, attrs_name("x"), &ev, &err), 0);
    cr_assert_eq(evs_entity_apply(&it->base, ev, &err), EVS_EINVAL);
    cr_assert(strstr(err.str, "entity i2 cannot be applied to i1"), "%s", err.str);
    evs_domain_event_free(ev);
    cr_assert_eq(evs_domain_event_new(&CREATED, "i1", 1, attrs_name("x"), &ev, &err), 0);
    cr_assert_eq(evs_entity_apply(&it->base, ev, &err), EVS_EINVAL);
    cr_assert(strstr(err.str, "version 0"), "%s", err.str);
    cr_assert_eq(it->base.version, 0);
    cr_assert_str_eq(it->name, "");
    evs_domain_event_free(ev);
    evs_entity_free(&it->base);
}

Test(domain_entity, a_discarded_entity_refuses_further_changes) {
    item_t *it = new_item("i1");
    evs_error_t err = {0};
    cr_assert_eq(evs_entity_trigger(&it->base, &CREATED, attrs_name("pen"), &err), 0);
    cr_assert_eq(evs_entity_trigger(&it->base, &REMOVED, NULL, &err), 0);
    cr_assert(it->base.discarded);
    cr_assert_eq(evs_entity_trigger(&it->base, &ADDED, attrs_n(1), &err), EVS_EINVAL);
    cr_assert(strstr(err.str, "discarded"), "%s", err.str);
    cr_assert_eq(it->base.version, 2);
    cr_assert_eq(it->base.npending, 2);
    evs_snapshot_t *snap;
    cr_assert_eq(evs_entity_snapshot(&it->base, &snap, &err), EVS_EINVAL);
    evs_entity_free(&it->base);
}

Test(domain_entity, an_unregistered_event_type_cannot_be_triggered) {
    static const evs_event_type_t other = {.topic = "test.Other"};
    item_t *it = new_item("i1");
    evs_error_t err = {0};
    cr_assert_eq(evs_entity_trigger(&it->base, &other, attrs_n(1), &err), EVS_EINVAL);
    cr_assert(strstr(err.str, "not registered"), "%s", err.str);
    evs_entity_free(&it->base);
}

Test(domain_entity, replay_of_several_entities_from_interleaved_events) {
    /* A log as read-all returns it: three entities, interleaved. */
    evs_event_t log[9];
    log[0] = stored_of(&CREATED, "a", 0, attrs_name("apple"));
    log[1] = stored_of(&CREATED, "b", 0, attrs_name("banana"));
    log[2] = stored_of(&ADDED, "a", 1, attrs_n(1));
    log[3] = stored_of(&CREATED, "c", 0, attrs_name("cherry"));
    log[4] = stored_of(&ADDED, "b", 1, attrs_n(10));
    log[5] = stored_of(&ADDED, "a", 2, attrs_n(2));
    log[6] = stored_of(&REMOVED, "c", 1, NULL);
    log[7] = stored_of(&ADDED, "b", 2, attrs_n(20));
    log[8] = stored_of(&ADDED, "a", 3, attrs_n(4));
    for (size_t i = 0; i < 9; i++)
        log[i].position = i + 1;

    item_t *a = new_item("a"), *b = new_item("b"), *c = new_item("c");
    evs_error_t err = {0};
    cr_assert_eq(evs_player_play(&a->base, log, 9, EVS_LATEST, &err), 0, "%s", err.str);
    cr_assert_eq(evs_player_play(&b->base, log, 9, EVS_LATEST, &err), 0, "%s", err.str);
    cr_assert_eq(evs_player_play(&c->base, log, 9, EVS_LATEST, &err), 0, "%s", err.str);
    cr_assert_str_eq(a->name, "apple");
    cr_assert_eq(a->count, 7);
    cr_assert_eq(a->base.version, 4);
    cr_assert_str_eq(b->name, "banana");
    cr_assert_eq(b->count, 30);
    cr_assert_eq(b->base.version, 3);
    cr_assert(c->base.discarded);
    cr_assert_eq(c->base.npending, 0, "replayed events are not pending");

    /* Stopping before a version gives the entity as it was then. */
    item_t *a2 = new_item("a");
    cr_assert_eq(evs_player_play(&a2->base, log, 9, 2, &err), 0);
    cr_assert_eq(a2->base.version, 2);
    cr_assert_eq(a2->count, 1);

    for (size_t i = 0; i < 9; i++)
        evs_event_clear(&log[i]);
    evs_entity_free(&a->base);
    evs_entity_free(&a2->base);
    evs_entity_free(&b->base);
    evs_entity_free(&c->base);
}

Test(domain_entity, a_gap_in_the_versions_is_an_error) {
    evs_event_t log[2];
    log[0] = stored_of(&CREATED, "a", 0, attrs_name("apple"));
    log[1] = stored_of(&ADDED, "a", 2, attrs_n(1));
    item_t *a = new_item("a");
    evs_error_t err = {0};
    cr_assert_eq(evs_player_play(&a->base, log, 2, EVS_LATEST, &err), EVS_EINVAL);
    cr_assert(strstr(err.str, "expected the event at version 1"), "%s", err.str);
    evs_event_clear(&log[0]);
    evs_event_clear(&log[1]);
    evs_entity_free(&a->base);
}

Test(domain_entity, a_snapshot_plus_the_later_events_equals_a_full_replay) {
    evs_event_t log[6];
    log[0] = stored_of(&CREATED, "a", 0, attrs_name("apple"));
    for (uint64_t v = 1; v < 6; v++)
        log[v] = stored_of(&ADDED, "a", v, attrs_n((int64_t)v));
    item_t *full = new_item("a");
    evs_error_t err = {0};
    cr_assert_eq(evs_player_play(&full->base, log, 6, EVS_LATEST, &err), 0);

    item_t *at3 = new_item("a");
    cr_assert_eq(evs_player_play(&at3->base, log, 6, 3, &err), 0);
    evs_snapshot_t *snap;
    cr_assert_eq(evs_entity_snapshot(&at3->base, &snap, &err), 0, "%s", err.str);
    cr_assert_eq(snap->version, 3);
    cr_assert_str_eq(snap->topic, "test.Item@1");

    item_t *restored = new_item("a");
    cr_assert_eq(evs_player_restore(&restored->base, snap, &err), 0, "%s", err.str);
    cr_assert_eq(restored->base.version, 3);
    /* The whole log is given: the events the snapshot covers are skipped. */
    cr_assert_eq(evs_player_play(&restored->base, log, 6, EVS_LATEST, &err), 0, "%s", err.str);
    cr_assert_eq(restored->base.version, full->base.version);
    cr_assert_eq(restored->count, full->count);
    cr_assert_str_eq(restored->name, full->name);

    /* A snapshot of another entity type or id is refused. */
    item_t *other = new_item("b");
    cr_assert_eq(evs_player_restore(&other->base, snap, &err), EVS_EINVAL);

    evs_snapshot_free(snap);
    for (size_t i = 0; i < 6; i++)
        evs_event_clear(&log[i]);
    evs_entity_free(&full->base);
    evs_entity_free(&at3->base);
    evs_entity_free(&restored->base);
    evs_entity_free(&other->base);
}
