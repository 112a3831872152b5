/* test_domain_registry.c: topics, stored <-> domain events, and upcasting. */
#include <stdlib.h>

#include "test_domain_fixture.h"

Test(domain_registry, topic_round_trip) {
    evs_registry_t *reg = fixture_registry();
    cr_assert_str_eq(evs_registry_topic_of(reg, &ADDED), "test.Added");
    cr_assert_eq(evs_registry_event_type(reg, evs_registry_topic_of(reg, &ADDED)), &ADDED);
    cr_assert_eq(evs_registry_event_type(reg, "test.Created"), &CREATED);
    cr_assert_eq(evs_registry_entity_type(reg, "test.Item"), &ITEM);
    evs_registry_free(reg);
}

Test(domain_registry, unknown_topic_is_a_clear_error) {
    evs_registry_t *reg = fixture_registry();
    cr_assert_null(evs_registry_event_type(reg, "test.Nope"));
    cr_assert_null(evs_registry_event_type(reg, "test.Item")); /* an entity, not an event */
    static const evs_event_type_t stranger = {.topic = "test.Stranger"};
    cr_assert_null(evs_registry_topic_of(reg, &stranger));
    evs_event_t s = stored_of(&stranger, "e1", 0, NULL);
    evs_domain_event_t *ev = (evs_domain_event_t *)1;
    evs_error_t err = {0};
    cr_assert_eq(evs_domain_event_from_stored(reg, &s, &ev, &err), EVS_EINVAL);
    cr_assert_null(ev);
    cr_assert(strstr(err.str, "unknown topic \"test.Stranger\""), "%s", err.str);
    evs_event_clear(&s);
    evs_registry_free(reg);
}

Test(domain_registry, bad_and_repeated_topics_are_refused) {
    evs_registry_t *reg = fixture_registry();
    cr_assert_eq(evs_registry_add_event(reg, &ADDED), EVS_EINVAL);
    static const evs_event_type_t same = {.topic = "test.Added"};
    cr_assert_eq(evs_registry_add_event(reg, &same), EVS_EINVAL);
    static const evs_event_type_t at = {.topic = "test@2"};
    cr_assert_eq(evs_registry_add_event(reg, &at), EVS_EINVAL);
    static const evs_event_type_t empty = {.topic = ""};
    cr_assert_eq(evs_registry_add_event(reg, &empty), EVS_EINVAL);
    static const evs_entity_type_t clash = {.topic = "test.Added", .size = sizeof(item_t)};
    cr_assert_eq(evs_registry_add_entity(reg, &clash), EVS_EINVAL);
    evs_registry_free(reg);
}

Test(domain_registry, stored_event_round_trip_keeps_every_attribute) {
    evs_registry_t *reg = fixture_registry();
    evs_value_t *attrs = evs_map_new();
    cr_assert_eq(evs_map_set_int(attrs, "n", -5), 0);
    cr_assert_eq(evs_map_set_uint(attrs, "big", UINT64_MAX), 0);
    cr_assert_eq(evs_map_set_float(attrs, "f", 0.1), 0);
    cr_assert_eq(evs_map_set_bin(attrs, "b", "\0\xff", 2), 0);
    cr_assert_eq(evs_map_set_bool(attrs, "t", true), 0);
    evs_value_set_nil(evs_map_put(attrs, "nothing"));
    evs_value_t *arr = evs_map_put(attrs, "list");
    evs_value_set_array(arr);
    cr_assert_eq(evs_value_set_str(evs_array_push(arr), "x"), 0);
    evs_value_t *copy = evs_value_dup(attrs);
    evs_domain_event_t *ev, *back;
    evs_error_t err = {0};
    cr_assert_eq(evs_domain_event_new(&ADDED, "acc-1", 3, attrs, &ev, &err), 0);
    evs_event_t s;
    cr_assert_eq(evs_domain_event_to_stored(ev, &s, &err), 0);
    cr_assert_str_eq(s.topic, "test.Added");
    cr_assert_str_eq(s.entity_id, "acc-1");
    cr_assert_eq(s.version, 3);
    cr_assert(s.has_version && s.has_event_id);
    cr_assert_not_null(s.metadata);
    cr_assert_eq(evs_domain_event_from_stored(reg, &s, &back, &err), 0, "%s", err.str);
    cr_assert_eq(back->type, &ADDED);
    cr_assert_str_eq(back->entity_id, "acc-1");
    cr_assert_eq(back->version, 3);
    cr_assert_eq(memcmp(back->event_id, ev->event_id, 16), 0);
    cr_assert(evs_value_equal(back->attrs, copy));
    evs_event_clear(&s);
    evs_domain_event_free(ev);
    evs_domain_event_free(back);
    evs_value_free(copy);
    evs_registry_free(reg);
}

/* ---------------------------------------------------------------- upcasting */

/* v1 {"amt"} -> v2 {"amount"} -> v3 {"amount", "currency": "EUR"} */
static int rename_amt(evs_value_t *attrs, evs_error_t *err) {
    (void)err;
    return evs_map_rename(attrs, "amt", "amount");
}

static int add_currency(evs_value_t *attrs, evs_error_t *err) {
    (void)err;
    return evs_map_set_str(attrs, "currency", "EUR");
}

static const evs_event_type_t PAID_V1 = {.topic = "test.Paid", .schema_version = 1};
static const evs_event_type_t PAID_V3 = {.topic = "test.Paid", .schema_version = 3};

static evs_registry_t *upcasting_registry(const char *topic) {
    evs_registry_t *reg = fixture_registry();
    cr_assert_eq(evs_registry_add_event(reg, &PAID_V3), 0);
    cr_assert_eq(evs_registry_add_upcaster(reg, topic, 1, rename_amt), 0);
    cr_assert_eq(evs_registry_add_upcaster(reg, topic, 2, add_currency), 0);
    cr_assert_eq(evs_registry_add_upcaster(reg, topic, 2, add_currency), EVS_EINVAL);
    return reg;
}

Test(domain_registry, upcaster_chain_v1_v2_v3_on_an_event) {
    evs_registry_t *reg = upcasting_registry("test.Paid");
    evs_value_t *old = evs_map_new();
    cr_assert_eq(evs_map_set_int(old, "amt", 42), 0);
    evs_event_t s = stored_of(&PAID_V1, "acc-1", 0, old); /* written by version-1 code */
    uint8_t *before = malloc(s.payload_len);
    memcpy(before, s.payload, s.payload_len);
    size_t before_len = s.payload_len;

    evs_domain_event_t *ev;
    evs_error_t err = {0};
    cr_assert_eq(evs_domain_event_from_stored(reg, &s, &ev, &err), 0, "%s", err.str);
    evs_value_t *want = evs_map_new();
    cr_assert_eq(evs_map_set_int(want, "amount", 42), 0);
    cr_assert_eq(evs_map_set_str(want, "currency", "EUR"), 0);
    cr_assert(evs_value_equal(ev->attrs, want));
    cr_assert_eq(ev->type, &PAID_V3);
    /* The stored bytes are untouched by the read. */
    cr_assert_eq(s.payload_len, before_len);
    cr_assert_eq(memcmp(s.payload, before, before_len), 0);

    /* An event without metadata is schema 1 too. */
    s.metadata = NULL;
    s.metadata_len = 0;
    evs_domain_event_t *ev2;
    cr_assert_eq(evs_domain_event_from_stored(reg, &s, &ev2, &err), 0, "%s", err.str);
    cr_assert(evs_value_equal(ev2->attrs, want));

    free(before);
    evs_value_free(want);
    evs_domain_event_free(ev);
    evs_domain_event_free(ev2);
    evs_event_clear(&s);
    evs_registry_free(reg);
}

Test(domain_registry, current_events_are_not_upcast) {
    evs_registry_t *reg = upcasting_registry("test.Paid");
    evs_value_t *attrs = evs_map_new();
    cr_assert_eq(evs_map_set_int(attrs, "amount", 1), 0);
    evs_value_t *want = evs_value_dup(attrs);
    evs_event_t s = stored_of(&PAID_V3, "acc-1", 0, attrs);
    evs_domain_event_t *ev;
    cr_assert_eq(evs_domain_event_from_stored(reg, &s, &ev, NULL), 0);
    cr_assert(evs_value_equal(ev->attrs, want));
    evs_domain_event_free(ev);
    evs_value_free(want);
    evs_event_clear(&s);
    evs_registry_free(reg);
}

Test(domain_registry, a_missing_upcaster_or_a_newer_schema_is_an_error) {
    evs_registry_t *reg = fixture_registry();
    cr_assert_eq(evs_registry_add_event(reg, &PAID_V3), 0);
    cr_assert_eq(evs_registry_add_upcaster(reg, "test.Paid", 1, rename_amt), 0);
    evs_value_t *old = evs_map_new();
    cr_assert_eq(evs_map_set_int(old, "amt", 42), 0);
    evs_event_t s = stored_of(&PAID_V1, "acc-1", 0, old);
    evs_domain_event_t *ev;
    evs_error_t err = {0};
    cr_assert_eq(evs_domain_event_from_stored(reg, &s, &ev, &err), EVS_EINVAL);
    cr_assert(strstr(err.str, "no upcaster for test.Paid from schema version 2"), "%s", err.str);
    evs_event_clear(&s);
    static const evs_event_type_t paid_v9 = {.topic = "test.Paid", .schema_version = 9};
    s = stored_of(&paid_v9, "acc-1", 0, NULL);
    cr_assert_eq(evs_domain_event_from_stored(reg, &s, &ev, &err), EVS_EINVAL);
    cr_assert(strstr(err.str, "newer"), "%s", err.str);
    evs_event_clear(&s);
    evs_registry_free(reg);
}

/* The entity test.Item at schema 3: its state was {"count", "nm"} at 1 and gained "label" at 3.
 */
static int rename_nm(evs_value_t *state, evs_error_t *err) {
    (void)err;
    return evs_map_rename(state, "nm", "name");
}

static int add_label(evs_value_t *state, evs_error_t *err) {
    (void)err;
    return evs_map_set_str(state, "label", "none");
}

static int item3_restore(evs_entity_t *e, const evs_value_t *state, evs_error_t *err) {
    const char *label;
    if (evs_map_get_str(state, "label", &label) < 0 || strcmp(label, "none") != 0) {
        snprintf(err->str, sizeof err->str, "no label");
        return err->code = EVS_EINVAL;
    }
    return item_restore(e, state, err);
}

Test(domain_registry, upcaster_chain_v1_v2_v3_on_a_snapshot) {
    static const evs_entity_type_t item3 = {.topic = "test.Item3",
                                            .schema_version = 3,
                                            .size = sizeof(item_t),
                                            .snapshot = item_snapshot,
                                            .restore = item3_restore,
                                            .events = ITEM_EVENTS};
    evs_registry_t *reg = evs_registry_new();
    cr_assert_eq(evs_registry_add_entity(reg, &item3), 0);
    cr_assert_eq(evs_registry_add_upcaster(reg, "test.Item3", 1, rename_nm), 0);
    cr_assert_eq(evs_registry_add_upcaster(reg, "test.Item3", 2, add_label), 0);
    evs_value_t *old = evs_map_new();
    cr_assert_eq(evs_map_set_int(old, "count", 12), 0);
    cr_assert_eq(evs_map_set_str(old, "nm", "pen"), 0);
    evs_snapshot_t snap = {.entity_id = "i1", .version = 4, .topic = "test.Item3@1"};
    cr_assert_eq(evs_value_encode(old, &snap.payload, &snap.payload_len), 0);
    uint8_t *before = malloc(snap.payload_len);
    memcpy(before, snap.payload, snap.payload_len);

    item_t *it = (item_t *)evs_entity_new(reg, &item3, "i1");
    evs_error_t err = {0};
    cr_assert_eq(evs_player_restore(&it->base, &snap, &err), 0, "%s", err.str);
    cr_assert_eq(it->count, 12);
    cr_assert_str_eq(it->name, "pen");
    cr_assert_eq(it->base.version, 4);
    cr_assert_eq(memcmp(snap.payload, before, snap.payload_len), 0);

    /* A snapshot taken now is written at schema 3. */
    evs_snapshot_t *now;
    cr_assert_eq(evs_entity_snapshot(&it->base, &now, &err), 0, "%s", err.str);
    cr_assert_str_eq(now->topic, "test.Item3@3");
    cr_assert_eq(now->version, 4);

    evs_snapshot_free(now);
    evs_entity_free(&it->base);
    free(before);
    free(snap.payload);
    evs_value_free(old);
    evs_registry_free(reg);
}
