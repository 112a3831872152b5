/* test_domain_value.c: attribute values and their canonical msgpack form. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../client/evstore.h"
#include "mp.h"

/* A map holding every type the encoder supports, nested. */
static evs_value_t *every_type(void) {
    evs_value_t *m = evs_map_new();
    cr_assert_not_null(m);
    evs_value_set_nil(evs_map_put(m, "nil"));
    cr_assert_eq(evs_map_set_bool(m, "true", true), 0);
    cr_assert_eq(evs_map_set_bool(m, "false", false), 0);
    cr_assert_eq(evs_map_set_int(m, "zero", 0), 0);
    cr_assert_eq(evs_map_set_int(m, "small", 7), 0);
    cr_assert_eq(evs_map_set_int(m, "negative", -33), 0);
    cr_assert_eq(evs_map_set_int(m, "int64_min", INT64_MIN), 0);
    cr_assert_eq(evs_map_set_int(m, "int64_max", INT64_MAX), 0);
    cr_assert_eq(evs_map_set_uint(m, "uint64_max", UINT64_MAX), 0);
    cr_assert_eq(evs_map_set_float(m, "float", 3.25), 0);
    cr_assert_eq(evs_map_set_float(m, "float_neg_zero", -0.0), 0);
    cr_assert_eq(evs_map_set_float(m, "float_inf", INFINITY), 0);
    cr_assert_eq(evs_map_set_str(m, "str", "h\xc3\xa9llo"), 0);
    cr_assert_eq(evs_map_set_str(m, "str_empty", ""), 0);
    cr_assert_eq(evs_map_set_bin(m, "bin", "\0\1\2\0", 4), 0);
    cr_assert_eq(evs_map_set_bin(m, "bin_empty", "", 0), 0);
    char longs[300];
    memset(longs, 'x', sizeof longs - 1);
    longs[sizeof longs - 1] = '\0';
    cr_assert_eq(evs_map_set_str(m, "str_long", longs), 0);
    evs_value_t *arr = evs_map_put(m, "array");
    evs_value_set_array(arr);
    evs_value_set_int(evs_array_push(arr), 1);
    cr_assert_eq(evs_value_set_str(evs_array_push(arr), "two"), 0);
    evs_value_t *inner = evs_array_push(arr);
    evs_value_set_map(inner);
    cr_assert_eq(evs_map_set_bool(inner, "deep", true), 0);
    evs_value_set_array(evs_array_push(arr));
    evs_value_set_map(evs_map_put(m, "map_empty"));
    return m;
}

Test(domain_value, every_supported_type_round_trips_exactly) {
    evs_value_t *m = every_type();
    uint8_t *buf;
    size_t len;
    cr_assert_eq(evs_value_encode(m, &buf, &len), 0);
    evs_value_t *back;
    evs_error_t err = {0};
    cr_assert_eq(evs_value_decode(buf, len, &back, &err), 0, "%s", err.str);
    cr_assert(evs_value_equal(m, back));
    int64_t i;
    uint64_t u;
    cr_assert_eq(evs_map_get_int(back, "int64_min", &i), 0);
    cr_assert_eq(i, INT64_MIN);
    cr_assert_eq(evs_map_get_uint(back, "uint64_max", &u), 0);
    cr_assert_eq(u, UINT64_MAX);
    cr_assert_eq(evs_map_get_int(back, "uint64_max", &i), EVS_EINVAL);
    const uint8_t *b;
    size_t blen;
    cr_assert_eq(evs_map_get_bin(back, "bin", &b, &blen), 0);
    cr_assert_eq(blen, 4);
    cr_assert_eq(memcmp(b, "\0\1\2\0", 4), 0);
    double f;
    cr_assert_eq(evs_map_get_float(back, "float_neg_zero", &f), 0);
    cr_assert(signbit(f));
    /* Encoding the decoded tree gives the same bytes. */
    uint8_t *buf2;
    size_t len2;
    cr_assert_eq(evs_value_encode(back, &buf2, &len2), 0);
    cr_assert_eq(len2, len);
    cr_assert_eq(memcmp(buf, buf2, len), 0);
    free(buf);
    free(buf2);
    evs_value_free(back);
    evs_value_free(m);
}

Test(domain_value, keys_are_sorted_so_equal_maps_give_equal_bytes) {
    evs_value_t *a = evs_map_new(), *b = evs_map_new();
    const char *keys[] = {"b", "aa", "a", "", "B", "ab"};
    for (size_t i = 0; i < 6; i++)
        cr_assert_eq(evs_map_set_int(a, keys[i], (int64_t)i), 0);
    for (size_t i = 6; i-- > 0;)
        cr_assert_eq(evs_map_set_int(b, keys[i], (int64_t)i), 0);
    const char *sorted[] = {"", "B", "a", "aa", "ab", "b"};
    for (size_t i = 0; i < 6; i++)
        cr_assert_str_eq(a->via.map.items[i].key, sorted[i]);
    uint8_t *x, *y;
    size_t xl, yl;
    cr_assert_eq(evs_value_encode(a, &x, &xl), 0);
    cr_assert_eq(evs_value_encode(b, &y, &yl), 0);
    cr_assert_eq(xl, yl);
    cr_assert_eq(memcmp(x, y, xl), 0);
    free(x);
    free(y);
    evs_value_free(a);
    evs_value_free(b);
}

Test(domain_value, setting_a_key_twice_keeps_the_last_value) {
    evs_value_t *m = evs_map_new();
    cr_assert_eq(evs_map_set_str(m, "k", "first"), 0);
    cr_assert_eq(evs_map_set_int(m, "k", 2), 0);
    cr_assert_eq(m->via.map.n, 1);
    int64_t i;
    cr_assert_eq(evs_map_get_int(m, "k", &i), 0);
    cr_assert_eq(i, 2);
    const char *s;
    cr_assert_eq(evs_map_get_str(m, "k", &s), EVS_EINVAL);
    cr_assert_eq(evs_map_get_str(m, "absent", &s), EVS_ENOT_FOUND);
    evs_value_free(m);
}

Test(domain_value, non_negative_integers_have_one_representation) {
    evs_value_t *a = evs_map_new(), *b = evs_map_new();
    cr_assert_eq(evs_map_set_int(a, "n", 5), 0);
    cr_assert_eq(evs_map_set_uint(b, "n", 5), 0);
    cr_assert(evs_value_equal(a, b));
    evs_value_free(a);
    evs_value_free(b);
}

Test(domain_value, rename_and_delete_keep_the_order) {
    evs_value_t *m = evs_map_new();
    cr_assert_eq(evs_map_set_int(m, "amt", 10), 0);
    cr_assert_eq(evs_map_set_str(m, "z", "zed"), 0);
    cr_assert_eq(evs_map_rename(m, "amt", "amount"), 0);
    int64_t i;
    cr_assert_eq(evs_map_get_int(m, "amount", &i), 0);
    cr_assert_eq(i, 10);
    cr_assert_null(evs_map_get(m, "amt"));
    cr_assert_eq(evs_map_rename(m, "z", "a"), 0);
    cr_assert_str_eq(m->via.map.items[0].key, "a");
    cr_assert_eq(evs_map_del(m, "a"), 0);
    cr_assert_eq(evs_map_del(m, "a"), EVS_ENOT_FOUND);
    cr_assert_eq(m->via.map.n, 1);
    evs_value_free(m);
}

Test(domain_value, dup_is_deep_and_equal) {
    evs_value_t *m = every_type();
    evs_value_t *d = evs_value_dup(m);
    cr_assert(evs_value_equal(m, d));
    cr_assert_eq(evs_map_set_int(d, "small", 8), 0);
    cr_assert_not(evs_value_equal(m, d));
    evs_value_free(m);
    evs_value_free(d);
}

Test(domain_value, a_float32_is_read_as_a_double) {
    mp_t m;
    mp_init(&m);
    msgpack_pack_map(&m.pk, 1);
    mp_str(&m, "f");
    msgpack_pack_float(&m.pk, 1.5f);
    evs_value_t *v;
    cr_assert_eq(evs_value_decode(m.b.data, m.b.len, &v, NULL), 0);
    double f;
    cr_assert_eq(evs_map_get_float(v, "f", &f), 0);
    cr_assert_eq(f, 1.5);
    evs_value_free(v);
    mp_free(&m);
}

/* msgpack-c hands out an empty map key as a NULL pointer of 0 bytes: the decoder must not pass
 * it to memchr, memcmp or memcpy (undefined behaviour, found by tests/fuzz/fuzz_value). */
Test(domain_value, an_empty_key_is_a_key_like_any_other) {
    mp_t m;
    mp_init(&m);
    msgpack_pack_map(&m.pk, 2);
    mp_str(&m, "");
    msgpack_pack_uint64(&m.pk, 1);
    mp_str(&m, "a");
    msgpack_pack_uint64(&m.pk, 2);
    evs_value_t *v;
    evs_error_t err;
    cr_assert_eq(evs_value_decode(m.b.data, m.b.len, &v, &err), 0, "%s", err.str);
    uint64_t u;
    cr_assert_eq(evs_map_get_uint(v, "", &u), 0);
    cr_assert_eq(u, 1);
    cr_assert_eq(evs_map_get_uint(v, "a", &u), 0);
    cr_assert_eq(u, 2);
    uint8_t *enc;
    size_t len;
    cr_assert_eq(evs_value_encode(v, &enc, &len), 0);
    cr_assert_eq(len, m.b.len, "the empty key sorts first, as it was written");
    cr_assert_arr_eq(enc, m.b.data, len);
    free(enc);
    evs_value_free(v);
    mp_free(&m);
}

static void expect_refused(mp_t *m, const char *why) {
    evs_value_t *v = (evs_value_t *)1;
    evs_error_t err = {0};
    cr_assert_eq(evs_value_decode(m->b.data, m->b.len, &v, &err), EVS_EINVAL, "%s", why);
    cr_assert_null(v);
    cr_assert_eq(err.code, EVS_EINVAL);
    cr_assert_neq(err.str[0], '\0');
    mp_free(m);
}

Test(domain_value, decoding_refuses_what_is_not_an_attribute_map) {
    mp_t m;
    mp_init(&m);
    msgpack_pack_array(&m.pk, 0);
    expect_refused(&m, "an array at the top");
    mp_init(&m);
    msgpack_pack_map(&m.pk, 1);
    msgpack_pack_int(&m.pk, 1);
    msgpack_pack_int(&m.pk, 2);
    expect_refused(&m, "an integer key");
    mp_init(&m);
    msgpack_pack_map(&m.pk, 2);
    mp_str(&m, "k");
    msgpack_pack_int(&m.pk, 1);
    mp_str(&m, "k");
    msgpack_pack_int(&m.pk, 2);
    expect_refused(&m, "a repeated key");
    mp_init(&m);
    msgpack_pack_map(&m.pk, 1);
    mp_str(&m, "e");
    msgpack_pack_ext(&m.pk, 1, 1);
    msgpack_pack_ext_body(&m.pk, "x", 1);
    expect_refused(&m, "an ext value");
    mp_init(&m);
    mp_bytes(&m, 0x81, 0xa1, 'k', 0xdc, 0xff, 0xff, -1); /* array of 65535 in 5 bytes */
    expect_refused(&m, "a count larger than the bytes");
    mp_init(&m);
    msgpack_pack_map(&m.pk, 1);
    mp_str(&m, "k");
    msgpack_pack_int(&m.pk, 1);
    mp_bytes(&m, 0xc0, -1);
    expect_refused(&m, "trailing bytes");
}
