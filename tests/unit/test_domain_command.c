/* test_domain_command.c: commands in the field-table style (encode, trigger and apply in one
 * call), evs_entity_start, the checked cast, the public error setter and the value getters
 * (including arrays). */
#include <inttypes.h>
#include <stdlib.h>

#include "mp.h"
#include "test_domain_fixture.h"

typedef struct tally {
    evs_entity_t base;
    char owner[16];
    int64_t total;
    int32_t last[4];
    size_t nlast;
    int closed_calls;
} tally_t;

typedef struct opened {
    const char *owner;
} opened_t;
typedef struct added {
    int64_t n;
    int32_t parts[4];
    size_t nparts;
} added_t;

static void on_opened(evs_entity_t *e, const void *attrs) {
    tally_t *t = EVS_ENTITY_CAST(tally_t, e);
    snprintf(t->owner, sizeof t->owner, "%s", ((const opened_t *)attrs)->owner);
}
static void on_added(evs_entity_t *e, const void *attrs) {
    const added_t *a = attrs;
    tally_t *t = EVS_ENTITY_CAST(tally_t, e);
    t->total += a->n;
    memcpy(t->last, a->parts, sizeof t->last);
    t->nlast = a->nparts;
}
static void on_closed(evs_entity_t *e, const void *attrs) {
    cr_assert_null(attrs);
    EVS_ENTITY_CAST(tally_t, e)->closed_calls++;
}

static const evs_field_t OPENED_ATTRS[] = {EVS_F(opened_t, owner), {0}};
static const evs_field_t ADDED_ATTRS[] = {
    EVS_F(added_t, n), EVS_F_ARRAY(added_t, parts, nparts), {0}};
static const evs_event_type_t T_OPENED = {.topic = "tally.Opened",
                                          EVS_EVENT_FIELDS(opened_t, OPENED_ATTRS, on_opened)};
static const evs_event_type_t T_ADDED = {.topic = "tally.Added",
                                         EVS_EVENT_FIELDS(added_t, ADDED_ATTRS, on_added)};
static const evs_event_type_t T_CLOSED = {
    .topic = "tally.Closed", .discards = true, EVS_EVENT_ON(on_closed)};
/* An event without attributes and with a check: the check runs on every trigger, on an empty
 * map when the command passes NULL. */
static int pause_checks;
static bool refuse_pause;
static int check_paused(const evs_value_t *attrs, evs_error_t *err) {
    pause_checks++;
    cr_assert_eq(attrs->type, EVS_VAL_MAP);
    cr_assert_eq(attrs->via.map.n, 0);
    return refuse_pause ? evs_error_set(err, EVS_EINVAL, "no pause now") : 0;
}
static void on_paused(evs_entity_t *e, const void *attrs) {
    cr_assert_null(attrs);
    (void)e;
}
static const evs_event_type_t T_PAUSED = {
    .topic = "tally.Paused", .check = check_paused, EVS_EVENT_ON(on_paused)};
static const evs_entity_type_t TALLY = {.topic = "tally.Tally",
                                        .size = sizeof(tally_t),
                                        EVS_EVENTS(&T_OPENED, &T_ADDED, &T_CLOSED, &T_PAUSED)};

static evs_registry_t *reg;

static void setup(void) {
    reg = evs_registry_new();
    cr_assert_eq(evs_registry_add_event(reg, &T_OPENED), 0);
    cr_assert_eq(evs_registry_add_event(reg, &T_ADDED), 0);
    cr_assert_eq(evs_registry_add_event(reg, &T_CLOSED), 0);
    cr_assert_eq(evs_registry_add_event(reg, &T_PAUSED), 0);
    cr_assert_eq(evs_registry_add_entity(reg, &TALLY), 0);
    cr_assert_eq(evs_registry_add_event(reg, &ADDED), 0); /* the fixture's, for the cast test */
    cr_assert_eq(evs_registry_add_entity(reg, &ITEM), 0);
}
static void teardown(void) {
    evs_registry_free(reg);
    leak_check();
}
TestSuite(domain_command, .init = setup, .fini = teardown);

Test(domain_command, a_command_encodes_triggers_and_applies_in_one_call) {
    evs_error_t err = {0};
    tally_t *t = evs_entity_start(reg, &TALLY, "t1", &T_OPENED, &(opened_t){"ada"}, &err);
    cr_assert_not_null(t, "%s", err.str);
    cr_assert_str_eq(t->owner, "ada");
    cr_assert_eq(t->base.version, 1);
    added_t a = {.n = 5, .parts = {2, 3}, .nparts = 2};
    cr_assert_eq(evs_command(&t->base, &T_ADDED, &a, &err), 0, "%s", err.str);
    cr_assert_eq(t->total, 5);
    cr_assert_eq(t->nlast, 2);
    cr_assert_eq(t->last[1], 3);
    cr_assert_eq(t->base.npending, 2);
    /* The pending event carries the encoded attributes. */
    const evs_value_t *attrs = t->base.pending[1]->attrs;
    cr_assert_eq(evs_attr_int(attrs, "n", 0), 5);
    int64_t parts[4];
    size_t n;
    cr_assert_eq(evs_map_get_int_array(attrs, "parts", parts, 4, &n), 0);
    cr_assert_eq(n, 2);
    cr_assert_eq(parts[0], 2);
    /* An event without attributes: on gets NULL, and it discards. */
    cr_assert_eq(evs_command(&t->base, &T_CLOSED, NULL, &err), 0, "%s", err.str);
    cr_assert_eq(t->closed_calls, 1);
    cr_assert(t->base.discarded);
    cr_assert_eq(evs_command(&t->base, &T_ADDED, &a, &err), EVS_EINVAL);
    cr_assert_eq(t->base.npending, 3);
    evs_entity_free(&t->base);
}

Test(domain_command, a_refused_command_leaves_the_entity_unchanged) {
    evs_error_t err = {0};
    tally_t *t = evs_entity_start(reg, &TALLY, "t1", &T_OPENED, &(opened_t){"ada"}, &err);
    cr_assert_not_null(t, "%s", err.str);
    /* No attributes for a type with fields, attributes for one without, a count above cap. */
    cr_assert_eq(evs_command(&t->base, &T_ADDED, NULL, &err), EVS_EINVAL);
    cr_assert(strstr(err.str, "tally.Added needs its attributes"), "%s", err.str);
    cr_assert_eq(evs_command(&t->base, &T_CLOSED, &(added_t){0}, &err), EVS_EINVAL);
    cr_assert(strstr(err.str, "no field table"), "%s", err.str);
    cr_assert_eq(evs_command(&t->base, &T_ADDED, &(added_t){.nparts = 9}, &err), EVS_EINVAL);
    cr_assert(strstr(err.str, "tally.Added: the field parts counts 9"), "%s", err.str);
    /* A type of no registry. */
    static const evs_event_type_t STRAY = {.topic = "tally.Stray"};
    cr_assert_eq(evs_command(&t->base, &STRAY, NULL, &err), EVS_EINVAL);
    cr_assert_eq(t->base.version, 1);
    cr_assert_eq(t->base.npending, 1);
    cr_assert_eq(t->total, 0);
    evs_entity_free(&t->base);
    /* evs_entity_start: NULL with the reason, and nothing leaked. */
    cr_assert_null(evs_entity_start(reg, &TALLY, "", &T_OPENED, &(opened_t){"x"}, &err));
    cr_assert(strstr(err.str, "cannot make entity"), "%s", err.str);
    cr_assert_null(evs_entity_start(reg, &TALLY, "t2", &T_OPENED, NULL, &err));
    cr_assert(strstr(err.str, "needs its attributes"), "%s", err.str);
}

Test(domain_command, a_command_without_attributes_runs_the_check_on_every_trigger) {
    evs_error_t err = {0};
    tally_t *t = evs_entity_start(reg, &TALLY, "t1", &T_OPENED, &(opened_t){"ada"}, &err);
    cr_assert_not_null(t, "%s", err.str);
    pause_checks = 0;
    refuse_pause = false;
    cr_assert_eq(evs_command(&t->base, &T_PAUSED, NULL, &err), 0, "%s", err.str);
    cr_assert_eq(evs_command(&t->base, &T_PAUSED, NULL, &err), 0, "%s", err.str);
    cr_assert_eq(pause_checks, 2, "the check ran on each trigger");
    cr_assert_eq(t->base.version, 3);
    refuse_pause = true;
    cr_assert_eq(evs_command(&t->base, &T_PAUSED, NULL, &err), EVS_EINVAL);
    cr_assert_str_eq(err.str, "no pause now");
    cr_assert_eq(pause_checks, 3);
    cr_assert_eq(t->base.version, 3, "a refused check triggers nothing");
    cr_assert_eq(t->base.npending, 3);
    refuse_pause = false;
    /* An event of another entity type (the fixture's ADDED, registered here) is refused. */
    cr_assert_eq(evs_command(&t->base, &ADDED, NULL, &err), EVS_EWRONG_TYPE);
    cr_assert(strstr(err.str, "not an event of entity type tally.Tally"), "%s", err.str);
    cr_assert_eq(t->base.npending, 3);
    evs_entity_free(&t->base);
}

Test(domain_command, a_stored_event_missing_an_attribute_is_refused_by_the_player) {
    /* {"owner": ...} is required by tally.Opened: a stored event without it (written by a
     * client that did not use the field table) does not load, and the error names the key. */
    evs_value_t *m = evs_map_new();
    evs_map_set_str(m, "other", "x");
    evs_event_t s = stored_of(&T_OPENED, "t1", 0, m);
    evs_entity_t *e = evs_entity_new(reg, &TALLY, "t1");
    evs_error_t err = {0};
    cr_assert_eq(evs_player_play(e, &s, 1, EVS_LATEST, &err), EVS_EINVAL);
    cr_assert(strstr(err.str, "tally.Opened of t1: attribute owner is missing"), "%s", err.str);
    cr_assert_eq(e->version, 0);
    evs_event_clear(&s);
    evs_entity_free(e);
}

Test(domain_command, the_cast_refuses_an_entity_of_another_type) {
    evs_entity_t *item = evs_entity_new(reg, &ITEM, "i1");
    evs_entity_t *tally = evs_entity_new(reg, &TALLY, "t1");
    cr_assert_null(EVS_ENTITY_CAST(tally_t, item));
    cr_assert_eq(EVS_ENTITY_CAST(tally_t, tally), (void *)tally);
    cr_assert_eq(EVS_ENTITY_CAST(item_t, item), (void *)item);
    cr_assert_null(EVS_ENTITY_CAST(item_t, NULL));
    evs_entity_free(item);
    evs_entity_free(tally);
}

static int refusing_check(const evs_value_t *attrs, evs_error_t *err) {
    return evs_error_set(err, EVS_EINVAL, "n must be below %d, not %" PRId64, 10,
                         evs_attr_int(attrs, "n", -1));
}

Test(domain_command, the_error_setter_fills_the_error_and_returns_the_code) {
    evs_error_t err = {0};
    cr_assert_eq(evs_error_set(&err, EVS_ECONFLICT, "at %d", 7), EVS_ECONFLICT);
    cr_assert_eq(err.code, EVS_ECONFLICT);
    cr_assert_str_eq(err.str, "at 7");
    cr_assert_eq(evs_error_set(NULL, EVS_EINVAL, "nowhere"), EVS_EINVAL);
    /* From a check: the trigger passes it on unchanged. */
    evs_value_t *m = evs_map_new();
    evs_map_set_int(m, "n", 12);
    cr_assert_eq(refusing_check(m, &err), EVS_EINVAL);
    cr_assert_str_eq(err.str, "n must be below 10, not 12");
    evs_value_free(m);
}

Test(domain_command, getters_return_values_or_the_default) {
    evs_value_t *m = evs_map_new();
    evs_map_set_int(m, "i", -3);
    evs_map_set_bool(m, "b", true);
    evs_map_set_float(m, "f", 0.5);
    evs_map_set_str(m, "s", "str");
    evs_value_t *a = evs_map_put(m, "ints");
    evs_value_set_array(a);
    evs_value_set_int(evs_array_push(a), 4);
    evs_value_set_int(evs_array_push(a), -5);
    a = evs_map_put(m, "strs");
    evs_value_set_array(a);
    evs_value_set_str(evs_array_push(a), "x");
    evs_value_set_str(evs_array_push(a), "y");
    evs_value_set_str(evs_array_push(a), "z");
    a = evs_map_put(m, "mixed");
    evs_value_set_array(a);
    evs_value_set_int(evs_array_push(a), 1);
    evs_value_set_str(evs_array_push(a), "1");

    cr_assert_eq(evs_attr_int(m, "i", 0), -3);
    cr_assert_eq(evs_attr_int(m, "s", 99), 99);
    cr_assert_eq(evs_attr_int(m, "absent", 7), 7);
    cr_assert(evs_attr_bool(m, "b", false));
    cr_assert_float_eq(evs_attr_float(m, "f", 0), 0.5, 1e-9);
    cr_assert_float_eq(evs_attr_float(m, "i", 0), -3.0, 1e-9);
    cr_assert_str_eq(evs_attr_str(m, "s", ""), "str");
    cr_assert_str_eq(evs_attr_str(m, "i", "dflt"), "dflt");

    const evs_value_t *items;
    size_t n;
    cr_assert_eq(evs_map_get_array(m, "ints", &items, &n), 0);
    cr_assert_eq(n, 2);
    cr_assert_eq(items[1].via.i, -5);
    cr_assert_eq(evs_map_get_array(m, "i", &items, &n), EVS_EINVAL);
    cr_assert_eq(evs_map_get_array(m, "absent", &items, &n), EVS_ENOT_FOUND);
    int64_t ints[2];
    cr_assert_eq(evs_map_get_int_array(m, "ints", ints, 2, &n), 0);
    cr_assert_eq(ints[0], 4);
    cr_assert_eq(evs_map_get_int_array(m, "ints", ints, 1, &n), EVS_EINVAL);
    cr_assert_eq(n, 2, "the length is set even when it does not fit");
    cr_assert_eq(evs_map_get_int_array(m, "mixed", ints, 2, &n), EVS_EINVAL);
    const char *strs[3];
    cr_assert_eq(evs_map_get_str_array(m, "strs", strs, 3, &n), 0);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(strs[2], "z");
    cr_assert_eq(evs_map_get_str_array(m, "ints", strs, 3, &n), EVS_EINVAL);
    cr_assert_eq(evs_map_get_str_array(m, "absent", strs, 3, &n), EVS_ENOT_FOUND);
    evs_value_free(m);
}
