/* test_client_msgpack.c: evs_msgpack_check, the library's guard for callers that unpack untrusted
 * msgpack (an event's payload) with msgpack-c themselves. Needs no daemon. */
#include <criterion/criterion.h>
#include <msgpack.h>
#include <string.h>

#include <evstore.h>

TestSuite(client_msgpack, .timeout = 30);

/* Packs {"a": [1, "x"], "b": nil} with msgpack-c, so the valid input comes from the reference. */
static void pack_sample(msgpack_sbuffer *sb) {
    msgpack_sbuffer_init(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str_with_body(&pk, "a", 1);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_int(&pk, 1);
    msgpack_pack_str_with_body(&pk, "x", 1);
    msgpack_pack_str_with_body(&pk, "b", 1);
    msgpack_pack_nil(&pk);
}

Test(client_msgpack, a_map_packed_by_msgpack_c_passes) {
    msgpack_sbuffer sb;
    pack_sample(&sb);
    const char *why = "unset";
    cr_assert_eq(evs_msgpack_check((const uint8_t *)sb.data, sb.size, &why), 0);
    cr_assert_null(why);
    msgpack_sbuffer_destroy(&sb);
}

Test(client_msgpack, every_truncation_of_a_valid_map_is_refused) {
    msgpack_sbuffer sb;
    pack_sample(&sb);
    for (size_t n = 0; n < sb.size; n++)
        cr_assert_eq(evs_msgpack_check((const uint8_t *)sb.data, n, NULL), EVS_EINVAL, "len %zu",
                     n);
    msgpack_sbuffer_destroy(&sb);
}

/* A 5-byte body that declares four billion elements: msgpack-c would allocate for them. */
Test(client_msgpack, a_count_larger_than_the_bytes_is_refused_with_a_reason) {
    const uint8_t huge[] = {0xdf, 0xff, 0xff, 0xff, 0xff};
    const char *why = NULL;
    cr_assert_eq(evs_msgpack_check(huge, sizeof huge, &why), EVS_EINVAL);
    cr_assert_not_null(why);
}

Test(client_msgpack, a_value_that_is_not_a_map_is_refused) {
    const uint8_t array[] = {0x91, 0x01};
    const char *why = NULL;
    cr_assert_eq(evs_msgpack_check(array, sizeof array, &why), EVS_EINVAL);
    cr_assert_not_null(why);
}

Test(client_msgpack, bytes_after_the_map_are_refused) {
    const uint8_t two[] = {0x80, 0xc0};
    cr_assert_eq(evs_msgpack_check(two, sizeof two, NULL), EVS_EINVAL);
}

/* {nil: {nil: ... nil}} nested depth times: the pre-scan bounds depth whatever the keys. */
static size_t nested_maps(uint8_t *out, size_t depth) {
    size_t n = 0;
    for (size_t i = 0; i < depth; i++) {
        out[n++] = 0x81;
        out[n++] = 0xc0;
    }
    out[n++] = 0xc0;
    return n;
}

Test(client_msgpack, nesting_up_to_32_passes_and_deeper_is_refused) {
    uint8_t buf[2 * 40 + 1];
    cr_assert_eq(evs_msgpack_check(buf, nested_maps(buf, 10), NULL), 0);
    cr_assert_eq(evs_msgpack_check(buf, nested_maps(buf, 40), NULL), EVS_EINVAL);
}
