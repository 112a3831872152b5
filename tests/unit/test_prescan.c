/* test_prescan.c: codec_prescan, the check of untrusted msgpack before msgpack-c sees it.
 *
 * Every declared length and count must fit in the bytes that follow, nesting is at most
 * CODEC_MAX_DEPTH containers deep (the top-level map counts as one), the message is exactly one
 * map with nothing after it, and 0xc1 never appears. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "../../proto/codec_prescan.h"
#include "mp.h"

TestSuite(prescan, .fini = leak_check);

static int prescan(const mp_t *m) {
    const char *why = NULL;
    int rc = codec_prescan(m->b.data, m->b.len, CODEC_MAX_DEPTH, &why);
    if (rc != 0) cr_assert_not_null(why, "a refusal says why");
    return rc;
}

/* Valid test data is checked against msgpack-c too, so that a wrong test cannot pass. */
static void accepted(const mp_t *m) {
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    cr_assert_eq(msgpack_unpack_next(&u, (const char *)m->b.data, m->b.len, &off),
                 MSGPACK_UNPACK_SUCCESS, "test data is not msgpack");
    cr_assert_eq(off, m->b.len, "test data has trailing bytes");
    msgpack_unpacked_destroy(&u);
    cr_assert_eq(prescan(m), 0, "valid msgpack refused");
}

#define ACCEPTED(m) accepted(m)
#define REFUSED(m) cr_assert_eq(prescan(m), -1, "invalid msgpack accepted")

/* A one-entry map {"k": <value>} whose value the caller appends. */
static void key_k(mp_t *m) {
    mp_map(m, 1);
    mp_str(m, "k");
}

/* ---------------------------------------------------------------- accepted */

Test(prescan, empty_map_is_accepted) {
    mp_t m;
    mp_init(&m);
    mp_bytes(&m, 0x80, -1);
    ACCEPTED(&m);
    mp_free(&m);
}

Test(prescan, map16_and_map32_headers_are_accepted_at_top_level) {
    mp_t m;
    mp_init(&m);
    mp_bytes(&m, 0xde, 0, 1, 0xa1, 'a', 0xc0, -1);
    ACCEPTED(&m);
    mp_free(&m);
    mp_init(&m);
    mp_bytes(&m, 0xdf, 0, 0, 0, 1, 0xa1, 'a', 0xc0, -1);
    ACCEPTED(&m);
    mp_free(&m);
}

/* One value of every msgpack type, each in its longest and shortest encodings. */
Test(prescan, every_msgpack_type_is_accepted) {
    mp_t m;
    mp_init(&m);
    mp_map(&m, 1);
    mp_str(&m, "all");
    mp_array(&m, 30);
    mp_bytes(&m, 0xc0, 0xc2, 0xc3, 0x00, 0x7f, 0xe0, 0xff, -1); /* nil, false, true, fixints: 7 */
    mp_bytes(&m, 0xcc, 1, 0xcd, 1, 2, 0xce, 1, 2, 3, 4, -1);    /* uint8/16/32: 10 */
    mp_bytes(&m, 0xcf, 1, 2, 3, 4, 5, 6, 7, 8, -1);             /* uint64: 11 */
    mp_bytes(&m, 0xd0, 0x80, 0xd1, 0, 0, 0xd2, 0, 0, 0, 0, 0xd3, 0, 0, 0, 0, 0, 0, 0, 0,
             -1);                                                     /* int8..64: 15 */
    mp_bytes(&m, 0xca, 0, 0, 0, 0, 0xcb, 0, 0, 0, 0, 0, 0, 0, 0, -1); /* float32/64: 17 */
    mp_bytes(&m, 0xa0, 0xd9, 1, 'x', 0xda, 0, 1, 'x', 0xdb, 0, 0, 0, 1, 'x', -1); /* str: 21 */
    mp_bytes(&m, 0xc4, 1, 9, 0xc5, 0, 1, 9, 0xc6, 0, 0, 0, 1, 9, -1);             /* bin: 24 */
    mp_bytes(&m, 0xd4, 1, 0, 0xd8, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
             -1);                                         /* fixext1, fixext16: 26 */
    mp_bytes(&m, 0xc7, 1, 5, 0, 0xc8, 0, 0, 5, -1);       /* ext8/16: 28 */
    mp_bytes(&m, 0xdc, 0, 1, 0xc0, 0xdd, 0, 0, 0, 0, -1); /* array16/32: 30 */
    ACCEPTED(&m);
    mp_free(&m);
}

Test(prescan, remaining_fixext_and_ext32_are_accepted) {
    mp_t m;
    mp_init(&m);
    mp_map(&m, 1);
    mp_str(&m, "e");
    mp_array(&m, 4);
    mp_bytes(&m, 0xd5, 1, 0, 0, 0xd6, 1, 0, 0, 0, 0, -1);
    mp_bytes(&m, 0xd7, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0xc9, 0, 0, 0, 2, 7, 0xaa, 0xbb, -1);
    ACCEPTED(&m);
    mp_free(&m);
}

Test(prescan, nested_maps_with_non_string_keys_are_accepted) {
    mp_t m;
    mp_init(&m);
    mp_map(&m, 2);
    mp_uint(&m, 1);
    mp_map(&m, 1);
    mp_array(&m, 0);
    mp_bin(&m, "ab", 2);
    mp_map(&m, 0);
    mp_map(&m, 0);
    ACCEPTED(&m);
    mp_free(&m);
}

Test(prescan, container_count_exactly_filling_the_frame_is_accepted) {
    mp_t m;
    mp_init(&m);
    key_k(&m);
    mp_array(&m, 1000);
    for (int i = 0; i < 1000; i++)
        mp_bytes(&m, 0xc0, -1);
    ACCEPTED(&m);
    mp_free(&m);
}

/* ---------------------------------------------------------------- shape of the message */

Test(prescan, empty_input_is_refused) {
    const char *why = NULL;
    cr_assert_eq(codec_prescan((const uint8_t *)"", 0, CODEC_MAX_DEPTH, &why), -1);
    cr_assert_not_null(why);
}

Test(prescan, top_level_that_is_not_a_map_is_refused) {
    static const uint8_t tops[][3] = {
        {0x90}, {0x00}, {0xc0}, {0xa1, 'a'}, {0xdc, 0, 0}, {0xc3}, {0xc4, 0}, {0xff},
    };
    static const size_t lens[] = {1, 1, 1, 2, 3, 1, 2, 1};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        const char *why = NULL;
        cr_assert_eq(codec_prescan(tops[i], lens[i], CODEC_MAX_DEPTH, &why), -1, "case %zu", i);
    }
}

Test(prescan, trailing_bytes_after_the_map_are_refused) {
    mp_t m;
    mp_init(&m);
    mp_bytes(&m, 0x80, 0x00, -1);
    REFUSED(&m);
    mp_free(&m);
    mp_init(&m);
    mp_bytes(&m, 0x80, 0x80, -1); /* two messages in one frame */
    REFUSED(&m);
    mp_free(&m);
}

Test(prescan, byte_0xc1_is_refused_anywhere) {
    mp_t m;
    mp_init(&m);
    mp_bytes(&m, 0xc1, -1);
    REFUSED(&m);
    mp_free(&m);
    mp_init(&m);
    mp_bytes(&m, 0x81, 0xc1, 0xc0, -1); /* as a key */
    REFUSED(&m);
    mp_free(&m);
    mp_init(&m);
    key_k(&m);
    mp_bytes(&m, 0x92, 0x01, 0xc1, -1); /* inside an array */
    REFUSED(&m);
    mp_free(&m);
}

/* ---------------------------------------------------------------- truncation */

Test(prescan, map_missing_its_last_value_is_refused) {
    mp_t m;
    mp_init(&m);
    mp_bytes(&m, 0x81, 0xa1, 'a', -1);
    REFUSED(&m);
    mp_free(&m);
}

Test(prescan, frame_ending_inside_a_length_is_refused) {
    static const uint8_t heads[] = {0xd9, 0xda, 0xdb, 0xc4, 0xc5, 0xc6, 0xc7,
                                    0xc8, 0xc9, 0xdc, 0xdd, 0xde, 0xdf};
    for (size_t i = 0; i < sizeof heads; i++) {
        mp_t m;
        mp_init(&m);
        key_k(&m);
        mp_bytes(&m, heads[i], -1); /* the length bytes are missing */
        cr_assert_eq(prescan(&m), -1, "type byte 0x%02x", heads[i]);
        mp_free(&m);
    }
}

Test(prescan, truncated_fixed_size_scalars_are_refused) {
    static const struct {
        uint8_t type;
        int size; /* bytes after the type byte */
    } cases[] = {{0xcc, 1}, {0xcd, 2}, {0xce, 4}, {0xcf, 8}, {0xd0, 1},
                 {0xd1, 2}, {0xd2, 4}, {0xd3, 8}, {0xca, 4}, {0xcb, 8},
                 {0xd4, 2}, {0xd5, 3}, {0xd6, 5}, {0xd7, 9}, {0xd8, 17}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mp_t m;
        mp_init(&m);
        key_k(&m);
        mp_bytes(&m, cases[i].type, -1);
        for (int k = 0; k < cases[i].size - 1; k++)
            mp_bytes(&m, 0, -1);
        cr_assert_eq(prescan(&m), -1, "type 0x%02x one byte short", cases[i].type);
        mp_bytes(&m, 0, -1);
        cr_assert_eq(prescan(&m), 0, "type 0x%02x complete", cases[i].type);
        mp_free(&m);
    }
}

/* ---------------------------------------------------------------- declared lengths */

Test(prescan, fixstr_longer_than_the_frame_is_refused) {
    mp_t m;
    mp_init(&m);
    key_k(&m);
    mp_bytes(&m, 0xa5, 'a', 'b', -1);
    REFUSED(&m);
    mp_free(&m);
}

Test(prescan, str8_str16_str32_longer_than_the_frame_are_refused) {
    mp_t m;
    mp_init(&m);
    key_k(&m);
    mp_bytes(&m, 0xd9, 0xff, 'a', -1);
    REFUSED(&m);
    mp_free(&m);
    mp_init(&m);
    key_k(&m);
    mp_bytes(&m, 0xda, 0xff, 0xff, 'a', -1);
    REFUSED(&m);
    mp_free(&m);
    mp_init(&m);
    key_k(&m);
    mp_bytes(&m, 0xdb, 0xff, 0xff, 0xff, 0xff, 'a', -1);
    REFUSED(&m);
    mp_free(&m);
}

Test(prescan, bin8_bin16_bin32_longer_than_the_frame_are_refused) {
    mp_t m;
    mp_init(&m);
    key_k(&m);
    mp_bytes(&m, 0xc4, 2, 0, -1);
    REFUSED(&m);
    mp_free(&m);
    mp_init(&m);
    key_k(&m);
    mp_bytes(&m, 0xc5, 0x80, 0, 0, -1);
    REFUSED(&m);
    mp_free(&m);
    mp_init(&m);
    key_k(&m);
    mp_bytes(&m, 0xc6, 0xff, 0xff, 0xff, 0xff, -1);
    REFUSED(&m);
    mp_free(&m);
}

Test(prescan, ext_longer_than_the_frame_is_refused) {
    mp_t m;
    mp_init(&m);
    key_k(&m);
    mp_bytes(&m, 0xc7, 3, 1, 0, 0, -1); /* ext8 of 3 bytes, 2 present */
    REFUSED(&m);
    mp_free(&m);
    mp_init(&m);
    key_k(&m);
    mp_bytes(&m, 0xc9, 0xff, 0xff, 0xff, 0xff, 1, -1);
    REFUSED(&m);
    mp_free(&m);
}

Test(prescan, length_exactly_reaching_the_end_is_accepted) {
    mp_t m;
    mp_init(&m);
    key_k(&m);
    mp_bytes(&m, 0xd9, 3, 'a', 'b', 'c', -1);
    ACCEPTED(&m);
    mp_free(&m);
}

/* ---------------------------------------------------------------- declared counts */

Test(prescan, fixarray_count_larger_than_the_frame_is_refused) {
    mp_t m;
    mp_init(&m);
    key_k(&m);
    mp_bytes(&m, 0x9f, 1, 2, 3, -1);
    REFUSED(&m);
    mp_free(&m);
}

Test(prescan, array16_and_array32_counts_larger_than_the_frame_are_refused) {
    mp_t m;
    mp_init(&m);
    key_k(&m);
    mp_bytes(&m, 0xdc, 0xff, 0xff, 0xc0, -1);
    REFUSED(&m);
    mp_free(&m);
    mp_init(&m);
    key_k(&m);
    mp_bytes(&m, 0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0, -1);
    REFUSED(&m);
    mp_free(&m);
}

/* msgpack-c would allocate room for 4 billion key/value pairs on reading this header. */
Test(prescan, map32_declaring_four_billion_entries_in_a_5_byte_body_is_refused) {
    mp_t m;
    mp_init(&m);
    mp_bytes(&m, 0xdf, 0xff, 0xff, 0xff, 0xff, -1);
    cr_assert_eq(m.b.len, 5);
    REFUSED(&m);
    mp_free(&m);
}

Test(prescan, inner_map_counts_pairs_not_elements) {
    /* {"k": {1 pair}} with only the key present: one byte short of a pair. */
    mp_t m;
    mp_init(&m);
    key_k(&m);
    mp_bytes(&m, 0x81, 0x01, -1);
    REFUSED(&m);
    mp_free(&m);
    /* map16 declaring 2 pairs with 3 one-byte elements after it */
    mp_init(&m);
    key_k(&m);
    mp_bytes(&m, 0xde, 0, 2, 1, 2, 3, -1);
    REFUSED(&m);
    mp_free(&m);
}

Test(prescan, count_one_more_than_the_bytes_left_is_refused) {
    mp_t m;
    mp_init(&m);
    key_k(&m);
    mp_array(&m, 1001);
    for (int i = 0; i < 1000; i++)
        mp_bytes(&m, 0xc0, -1);
    REFUSED(&m);
    mp_free(&m);
}

/* ---------------------------------------------------------------- nesting */

/* A map {"k": [[...[1]...]]} with depth containers in all (the map included), the innermost
 * holding one integer, or nothing when empty_innermost. */
static void nested(mp_t *m, int depth, bool empty_innermost) {
    key_k(m);
    for (int i = 1; i < depth; i++)
        mp_array(m, (i == depth - 1 && empty_innermost) ? 0 : 1);
    if (!(empty_innermost && depth > 1)) mp_uint(m, 1);
}

Test(prescan, nesting_of_32_containers_is_accepted) {
    mp_t m;
    mp_init(&m);
    nested(&m, CODEC_MAX_DEPTH, false);
    ACCEPTED(&m);
    mp_free(&m);
}

Test(prescan, nesting_of_33_containers_is_refused) {
    mp_t m;
    mp_init(&m);
    nested(&m, CODEC_MAX_DEPTH + 1, false);
    REFUSED(&m);
    mp_free(&m);
}

Test(prescan, empty_container_at_depth_33_is_refused) {
    mp_t m;
    mp_init(&m);
    nested(&m, CODEC_MAX_DEPTH + 1, true);
    REFUSED(&m);
    mp_free(&m);
}

Test(prescan, nesting_of_thousands_of_containers_is_refused) {
    mp_t m;
    mp_init(&m);
    nested(&m, 5000, false);
    REFUSED(&m);
    mp_free(&m);
}

Test(prescan, nesting_of_maps_counts_like_arrays) {
    mp_t m;
    mp_init(&m);
    for (int i = 0; i < CODEC_MAX_DEPTH; i++) {
        mp_map(&m, 1);
        mp_uint(&m, (uint64_t)i);
    }
    mp_uint(&m, 0);
    ACCEPTED(&m);
    mp_free(&m);
    mp_init(&m);
    for (int i = 0; i < CODEC_MAX_DEPTH + 1; i++) {
        mp_map(&m, 1);
        mp_uint(&m, (uint64_t)i);
    }
    mp_uint(&m, 0);
    REFUSED(&m);
    mp_free(&m);
}

Test(prescan, a_smaller_max_depth_is_honoured) {
    mp_t m;
    mp_init(&m);
    nested(&m, 3, false);
    const char *why = NULL;
    cr_assert_eq(codec_prescan(m.b.data, m.b.len, 3, &why), 0);
    cr_assert_eq(codec_prescan(m.b.data, m.b.len, 2, &why), -1);
    mp_free(&m);
}

Test(prescan, depth_returns_to_the_parent_after_a_container_ends) {
    /* Many siblings each 31 deep: the depth never exceeds 32, however many there are. */
    mp_t m;
    mp_init(&m);
    mp_map(&m, 1);
    mp_str(&m, "k");
    mp_array(&m, 50);
    for (int s = 0; s < 50; s++) {
        for (int i = 0; i < CODEC_MAX_DEPTH - 2; i++)
            mp_array(&m, 1);
        mp_uint(&m, 1);
    }
    ACCEPTED(&m);
    mp_free(&m);
}

/* ---------------------------------------------------------------- the decoder agrees */

/* What the pre-scan accepts, msgpack-c must decode: the pre-scan is the gate in front of it. */
Test(prescan, msgpack_c_decodes_the_deepest_accepted_nesting) {
    mp_t m;
    mp_init(&m);
    nested(&m, CODEC_MAX_DEPTH, false);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    cr_assert_eq(msgpack_unpack_next(&u, (const char *)m.b.data, m.b.len, &off),
                 MSGPACK_UNPACK_SUCCESS);
    msgpack_unpacked_destroy(&u);
    mp_free(&m);
}
