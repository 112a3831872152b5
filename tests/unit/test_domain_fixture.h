/* test_domain_fixture.h: a small domain for the domain layer's unit tests.
 *
 * An item has a name and a count: test.Created {"name"}, test.Added {"n"} and test.Removed
 * (which discards it). Its snapshot state is {"count", "name"}. */
#ifndef EVS_TEST_DOMAIN_FIXTURE_H
#define EVS_TEST_DOMAIN_FIXTURE_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "../../client/evstore.h"

typedef struct item {
    evs_entity_t base;
    char name[32];
    int64_t count;
} item_t;

static int created_apply(evs_entity_t *e, const evs_domain_event_t *ev, evs_error_t *err) {
    item_t *it = (item_t *)e;
    const char *name;
    if (evs_map_get_str(ev->attrs, "name", &name) < 0) {
        snprintf(err->str, sizeof err->str, "created without a name");
        return err->code = EVS_EINVAL;
    }
    snprintf(it->name, sizeof it->name, "%s", name);
    return 0;
}

static int added_apply(evs_entity_t *e, const evs_domain_event_t *ev, evs_error_t *err) {
    int64_t n;
    if (evs_map_get_int(ev->attrs, "n", &n) < 0) {
        snprintf(err->str, sizeof err->str, "added without n");
        return err->code = EVS_EINVAL;
    }
    ((item_t *)e)->count += n;
    return 0;
}

static int item_snapshot(const evs_entity_t *e, evs_value_t *state, evs_error_t *err) {
    const item_t *it = (const item_t *)e;
    (void)err;
    if (evs_map_set_int(state, "count", it->count) < 0) return EVS_ENOMEM;
    return evs_map_set_str(state, "name", it->name);
}

static int item_restore(evs_entity_t *e, const evs_value_t *state, evs_error_t *err) {
    item_t *it = (item_t *)e;
    const char *name;
    if (evs_map_get_int(state, "count", &it->count) < 0 ||
        evs_map_get_str(state, "name", &name) < 0) {
        snprintf(err->str, sizeof err->str, "a bad item state");
        return err->code = EVS_EINVAL;
    }
    snprintf(it->name, sizeof it->name, "%s", name);
    return 0;
}

static const evs_event_type_t CREATED = {.topic = "test.Created", .apply = created_apply};
static const evs_event_type_t ADDED = {.topic = "test.Added", .apply = added_apply};
static const evs_event_type_t REMOVED = {.topic = "test.Removed", .discards = true};
static const evs_event_type_t *const ITEM_EVENTS[] = {&CREATED, &ADDED, &REMOVED, NULL};
static const evs_entity_type_t ITEM = {.topic = "test.Item",
                                       .size = sizeof(item_t),
                                       .snapshot = item_snapshot,
                                       .restore = item_restore,
                                       .events = ITEM_EVENTS};

static inline evs_registry_t *fixture_registry(void) {
    evs_registry_t *reg = evs_registry_new();
    cr_assert_not_null(reg);
    cr_assert_eq(evs_registry_add_event(reg, &CREATED), 0);
    cr_assert_eq(evs_registry_add_event(reg, &ADDED), 0);
    cr_assert_eq(evs_registry_add_event(reg, &REMOVED), 0);
    cr_assert_eq(evs_registry_add_entity(reg, &ITEM), 0);
    return reg;
}

/* Attributes {"n": n}, or {"name": name}. */
static inline evs_value_t *attrs_n(int64_t n) {
    evs_value_t *m = evs_map_new();
    cr_assert_eq(evs_map_set_int(m, "n", n), 0);
    return m;
}

static inline evs_value_t *attrs_name(const char *name) {
    evs_value_t *m = evs_map_new();
    cr_assert_eq(evs_map_set_str(m, "name", name), 0);
    return m;
}

/* A stored event as the daemon would return it, made from a domain event. The caller clears
 * it with evs_event_clear. */
static inline evs_event_t stored_of(const evs_event_type_t *type, const char *id, uint64_t version,
                                    evs_value_t *attrs) {
    evs_domain_event_t *ev;
    evs_error_t err = {0};
    cr_assert_eq(evs_domain_event_new(type, id, version, attrs, &ev, &err), 0, "%s", err.str);
    evs_event_t s;
    cr_assert_eq(evs_domain_event_to_stored(ev, &s, &err), 0, "%s", err.str);
    evs_domain_event_free(ev);
    return s;
}

/* A new entity of type (ITEM, or a type whose events are ITEM_EVENTS on an item_t) with its
 * Created {"name": name} triggered. */
static inline item_t *item_created(evs_registry_t *reg, const evs_entity_type_t *type,
                                   const char *id, const char *name) {
    item_t *it = (item_t *)evs_entity_new(reg, type, id);
    cr_assert_not_null(it);
    evs_error_t err = {0};
    cr_assert_eq(evs_entity_trigger(&it->base, &CREATED, attrs_name(name), &err), 0, "%s", err.str);
    return it;
}

/* Triggers Added {"n": n} on it. */
static inline void item_add(item_t *it, int64_t n) {
    evs_error_t err = {0};
    cr_assert_eq(evs_entity_trigger(&it->base, &ADDED, attrs_n(n), &err), 0, "%s", err.str);
}

/* The number of events the daemon c is connected to holds for entity id. */
static inline size_t stored_count(evs_context_t *c, const char *id) {
    evs_events_t *l;
    cr_assert_eq(evs_get_by_entity(c, id, 0, 0, false, &l), 0, "%s", c->errstr);
    size_t n = l->n;
    evs_events_free(l);
    return n;
}

#endif
