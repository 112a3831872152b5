/* test_domain_fields.c: field tables (struct <-> attribute map), including arrays, nested
 * structs, integer widths and strings, the errors of bad types and sizes, and snapshot/restore
 * of an entity whose state is its fields. */
#include <stdlib.h>

#include "mp.h"
#include "test_domain_fixture.h"

static void fini(void) {
    leak_check();
}
TestSuite(domain_fields, .fini = fini);

typedef struct pair {
    char name[8];
    int16_t n;
} pair_t;

typedef struct rec {
    bool on;
    int8_t small;
    int32_t mid;
    int64_t big;
    uint16_t u16;
    uint64_t u64;
    float f;
    double d;
    char label[6];
    const char *ref;
    int32_t nums[4];
    size_t nnums;
    char tags[3][5];
    uint8_t ntags;
    pair_t pairs[2];
    size_t npairs;
    pair_t one;
} rec_t;

static const evs_field_t PAIR[] = {EVS_F(pair_t, name), EVS_F(pair_t, n), {0}};
static const evs_field_t REC[] = {EVS_F(rec_t, on),
                                  EVS_F(rec_t, small),
                                  EVS_F(rec_t, mid),
                                  EVS_F(rec_t, big),
                                  EVS_F(rec_t, u16),
                                  EVS_F(rec_t, u64),
                                  EVS_F(rec_t, f),
                                  EVS_F(rec_t, d),
                                  EVS_F(rec_t, label),
                                  EVS_F(rec_t, ref),
                                  EVS_F_ARRAY(rec_t, nums, nnums),
                                  EVS_F_ARRAY(rec_t, tags, ntags),
                                  EVS_F_ARRAY_STRUCT(rec_t, pairs, npairs, PAIR),
                                  EVS_F_STRUCT(rec_t, one, PAIR),
                                  {0}};

static rec_t sample(void) {
    rec_t r = {.on = true,
               .small = -5,
               .mid = -100000,
               .big = INT64_MIN,
               .u16 = 65535,
               .u64 = UINT64_MAX,
               .f = 1.5f,
               .d = -2.25,
               .label = "hello",
               .ref = "borrowed",
               .nums = {1, -2, 3},
               .nnums = 3,
               .tags = {"ab", "cdef"},
               .ntags = 2,
               .pairs = {{"x", 1}, {"y", -2}},
               .npairs = 2,
               .one = {"solo", 7}};
    return r;
}

Test(domain_fields, kinds_are_inferred_from_the_member_types) {
    cr_assert_eq(REC[0].kind, EVS_FIELD_BOOL);
    cr_assert_eq(REC[1].kind, EVS_FIELD_INT);
    cr_assert_eq(REC[1].size, 1);
    cr_assert_eq(REC[4].kind, EVS_FIELD_UINT);
    cr_assert_eq(REC[6].kind, EVS_FIELD_FLOAT);
    cr_assert_eq(REC[6].size, sizeof(float));
    cr_assert_eq(REC[8].kind, EVS_FIELD_STR);
    cr_assert_eq(REC[8].size, 6);
    cr_assert_eq(REC[9].kind, EVS_FIELD_STRREF);
    cr_assert_eq(REC[10].kind, EVS_FIELD_INT);
    cr_assert_eq(REC[10].cap, 4);
    cr_assert_eq(REC[11].kind, EVS_FIELD_STR);
    cr_assert_eq(REC[11].size, 5);
    cr_assert_eq(REC[11].cap, 3);
    cr_assert_eq(REC[11].count_size, 1);
    cr_assert_eq(REC[12].kind, EVS_FIELD_STRUCT);
    cr_assert_eq(REC[12].cap, 2);
}

Test(domain_fields, a_struct_encodes_and_decodes_to_the_same_values) {
    rec_t in = sample(), out;
    memset(&out, 0x55, sizeof out);
    evs_error_t err = {0};
    evs_value_t *m = evs_map_new();
    cr_assert_eq(evs_fields_encode(REC, &in, m, &err), 0, "%s", err.str);
    int64_t i;
    cr_assert_eq(evs_map_get_int(m, "big", &i), 0);
    cr_assert_eq(i, INT64_MIN);
    cr_assert_eq(evs_map_get(m, "u64")->type, EVS_VAL_UINT);
    cr_assert_eq(evs_map_get(m, "nums")->via.array.n, 3);
    cr_assert_eq(evs_map_get(m, "pairs")->via.array.items[1].type, EVS_VAL_MAP);

    /* Through bytes and back, as a stored event would go. */
    uint8_t *buf;
    size_t len;
    cr_assert_eq(evs_value_encode(m, &buf, &len), 0);
    evs_value_t *back;
    cr_assert_eq(evs_value_decode(buf, len, &back, &err), 0, "%s", err.str);
    free(buf);
    cr_assert_eq(evs_fields_decode(REC, back, &out, &err), 0, "%s", err.str);
    cr_assert(out.on);
    cr_assert_eq(out.small, -5);
    cr_assert_eq(out.mid, -100000);
    cr_assert_eq(out.big, INT64_MIN);
    cr_assert_eq(out.u16, 65535);
    cr_assert_eq(out.u64, UINT64_MAX);
    cr_assert_float_eq(out.f, 1.5f, 0.0001);
    cr_assert_float_eq(out.d, -2.25, 0.0001);
    cr_assert_str_eq(out.label, "hello");
    cr_assert_str_eq(out.ref, "borrowed");
    cr_assert_eq(out.nnums, 3);
    cr_assert_eq(out.nums[1], -2);
    cr_assert_eq(out.ntags, 2);
    cr_assert_str_eq(out.tags[1], "cdef");
    cr_assert_eq(out.npairs, 2);
    cr_assert_str_eq(out.pairs[1].name, "y");
    cr_assert_eq(out.pairs[1].n, -2);
    cr_assert_str_eq(out.one.name, "solo");
    evs_value_free(back);
    evs_value_free(m);
}

Test(domain_fields, one_value_tables_and_null_strings) {
    static const evs_field_t ONE[] = {EVS_F_VALUE(int64_t, "amount"), {0}};
    static const evs_field_t REF[] = {EVS_F_VALUE(const char *, "card"), {0}};
    cr_assert_eq(REF[0].kind, EVS_FIELD_STRREF);
    int64_t v = 42, w = 0;
    evs_error_t err = {0};
    evs_value_t *m = evs_map_new();
    cr_assert_eq(evs_fields_encode(ONE, &v, m, &err), 0, "%s", err.str);
    cr_assert_eq(evs_attr_int(m, "amount", 0), 42);
    cr_assert_eq(evs_fields_decode(ONE, m, &w, &err), 0, "%s", err.str);
    cr_assert_eq(w, 42);
    const char *s = NULL, *t = "x";
    cr_assert_eq(evs_fields_encode(REF, &s, m, &err), 0, "%s", err.str);
    cr_assert_eq(evs_map_get(m, "card")->type, EVS_VAL_NIL);
    cr_assert_eq(evs_fields_decode(REF, m, &t, &err), 0, "%s", err.str);
    cr_assert_null(t);
    evs_value_free(m);
}

/* Decodes m with REC and expects EVS_EINVAL with want in the message. */
static void expect_refused(evs_value_t *m, const char *want) {
    rec_t out;
    evs_error_t err = {0};
    cr_assert_eq(evs_fields_decode(REC, m, &out, &err), EVS_EINVAL, "decoded: want \"%s\"", want);
    cr_assert(strstr(err.str, want), "\"%s\" does not say \"%s\"", err.str, want);
    evs_value_free(m);
}

static evs_value_t *encoded_sample(void) {
    rec_t in = sample();
    evs_value_t *m = evs_map_new();
    cr_assert_eq(evs_fields_encode(REC, &in, m, NULL), 0);
    return m;
}

Test(domain_fields, bad_types_and_sizes_are_refused_with_the_key) {
    evs_value_t *m = encoded_sample();
    evs_map_del(m, "mid");
    expect_refused(m, "attribute mid is missing");

    m = encoded_sample();
    evs_map_set_str(m, "big", "12");
    expect_refused(m, "attribute big is a string, not an integer");

    m = encoded_sample();
    evs_map_set_int(m, "small", 128);
    expect_refused(m, "attribute small does not fit a 1-byte integer");

    m = encoded_sample();
    evs_map_set_int(m, "u16", -1);
    expect_refused(m, "attribute u16 is negative");

    m = encoded_sample();
    evs_map_set_int(m, "u16", 65536);
    expect_refused(m, "attribute u16 does not fit");

    m = encoded_sample();
    evs_map_set_str(m, "label", "sixsix");
    expect_refused(m, "attribute label is a string of 6 bytes; the field holds at most 5");

    m = encoded_sample();
    evs_map_set_bool(m, "ref", true);
    expect_refused(m, "attribute ref is a bool, not a string");

    m = encoded_sample();
    evs_map_set_int(m, "nums", 3);
    expect_refused(m, "attribute nums is an integer, not an array");

    m = encoded_sample();
    evs_value_t *a = evs_map_put(m, "nums");
    evs_value_set_array(a);
    for (int i = 0; i < 5; i++)
        evs_value_set_int(evs_array_push(a), i);
    expect_refused(m, "attribute nums has 5 elements; the field holds at most 4");

    m = encoded_sample();
    a = evs_map_put(m, "tags");
    evs_value_set_array(a);
    evs_value_set_str(evs_array_push(a), "ok");
    evs_value_set_float(evs_array_push(a), 1.0);
    expect_refused(m, "attribute tags[1] is a float, not a string");

    m = encoded_sample();
    a = evs_map_put(m, "pairs");
    evs_value_set_array(a);
    evs_value_set_map(evs_array_push(a));
    expect_refused(m, "in pairs[0], attribute name is missing");

    m = encoded_sample();
    evs_map_set_int(m, "on", 1);
    expect_refused(m, "attribute on is an integer, not a bool");
}

Test(domain_fields, encoding_refuses_an_unterminated_string_a_count_above_cap_and_bad_tables) {
    rec_t in = sample();
    evs_error_t err = {0};
    evs_value_t *m = evs_map_new();
    memcpy(in.label, "sixsix", 6);
    cr_assert_eq(evs_fields_encode(REC, &in, m, &err), EVS_EINVAL);
    cr_assert(strstr(err.str, "label"), "%s", err.str);
    in = sample();
    in.nnums = 5;
    cr_assert_eq(evs_fields_encode(REC, &in, m, &err), EVS_EINVAL);
    cr_assert(strstr(err.str, "nums counts 5 elements of 4"), "%s", err.str);
    /* A member whose type has no kind (a pointer to int), and a width no integer has. */
    typedef struct odd {
        int *p;
        char c3[3];
    } odd_t;
    static const evs_field_t ODD[] = {EVS_F(odd_t, p), {0}};
    static const evs_field_t WIDE[] = {EVS_F_AS(odd_t, c3, EVS_FIELD_INT), {0}};
    odd_t o = {0};
    cr_assert_eq(evs_fields_encode(ODD, &o, m, &err), EVS_EINVAL);
    cr_assert(strstr(err.str, "field table: the field p"), "%s", err.str);
    cr_assert_eq(evs_fields_decode(WIDE, m, &o, &err), EVS_EINVAL);
    cr_assert(strstr(err.str, "field table: the field c3"), "%s", err.str);
    cr_assert_eq(evs_fields_encode(REC, &in, NULL, &err), EVS_EINVAL);
    /* A count member too narrow for the array's capacity. */
    typedef struct many {
        int16_t a[300];
        uint8_t n;
    } many_t;
    static const evs_field_t MANY[] = {EVS_F_ARRAY(many_t, a, n), {0}};
    many_t *many = calloc(1, sizeof *many);
    cr_assert_eq(evs_fields_encode(MANY, many, m, &err), EVS_EINVAL);
    cr_assert(strstr(err.str, "field table: the field a"), "%s", err.str);
    free(many);
    evs_value_free(m);
}

/* ---------------------------------------------------------------- snapshots for free */

typedef struct shelf {
    evs_entity_t base;
    char title[16];
    int64_t books[8];
    size_t nbooks;
} shelf_t;

static const evs_field_t SHELF_STATE[] = {
    EVS_F(shelf_t, title), EVS_F_ARRAY(shelf_t, books, nbooks), {0}};
static const evs_entity_type_t SHELF = {
    .topic = "test.Shelf", EVS_ENTITY_FIELDS(shelf_t, SHELF_STATE), EVS_EVENTS(&CREATED)};

typedef struct bad_shelf {
    evs_entity_t base;
    const char *title;
} bad_shelf_t;
static const evs_field_t BAD_STATE[] = {EVS_F(bad_shelf_t, title), {0}};
static const evs_entity_type_t BAD_SHELF = {
    .topic = "test.BadShelf", EVS_ENTITY_FIELDS(bad_shelf_t, BAD_STATE), EVS_EVENTS(&CREATED)};

Test(domain_fields, an_entity_of_plain_fields_snapshots_and_restores_without_code) {
    evs_registry_t *reg = evs_registry_new();
    cr_assert_eq(evs_registry_add_entity(reg, &SHELF), 0);
    cr_assert_eq(evs_registry_add_entity(reg, &BAD_SHELF), 0);
    shelf_t *s = (shelf_t *)evs_entity_new(reg, &SHELF, "s1");
    snprintf(s->title, sizeof s->title, "poetry");
    s->books[0] = 11;
    s->books[1] = 12;
    s->nbooks = 2;
    s->base.version = 4;
    evs_snapshot_t *snap;
    evs_error_t err = {0};
    cr_assert_eq(evs_entity_snapshot(&s->base, &snap, &err), 0, "%s", err.str);
    shelf_t *r = (shelf_t *)evs_entity_new(reg, &SHELF, "s1");
    cr_assert_eq(evs_player_restore(&r->base, snap, &err), 0, "%s", err.str);
    cr_assert_str_eq(r->title, "poetry");
    cr_assert_eq(r->nbooks, 2);
    cr_assert_eq(r->books[1], 12);
    cr_assert_eq(r->base.version, 4);

    /* A state that does not decode says so, naming the entity type and the key. */
    evs_value_t *st = evs_map_new();
    evs_map_set_str(st, "title", "x");
    cr_assert_eq(evs_fields_restore(&r->base, st, &err), EVS_EINVAL);
    cr_assert(strstr(err.str, "test.Shelf") && strstr(err.str, "books is missing"), "%s", err.str);
    evs_value_free(st);

    /* A borrowed string cannot be an entity's state. */
    bad_shelf_t *b = (bad_shelf_t *)evs_entity_new(reg, &BAD_SHELF, "b1");
    b->title = "t";
    evs_snapshot_t *none;
    cr_assert_eq(evs_entity_snapshot(&b->base, &none, &err), EVS_EINVAL);
    cr_assert_null(none);
    cr_assert(strstr(err.str, "borrowed string"), "%s", err.str);
    evs_entity_free(&b->base);
    evs_snapshot_free(snap);
    evs_entity_free(&r->base);
    evs_entity_free(&s->base);
    evs_registry_free(reg);
}
