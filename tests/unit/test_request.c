/* test_request.c: codec_request_decode, the generic request decoder. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "../../proto/codec_prescan.h"
#include "../../proto/codec_request.h"
#include "mp.h"

TestSuite(request, .fini = leak_check);
TestSuite(valid_name, .fini = leak_check);

/* Decodes the request in m; the result stays in *req until codec_request_free. */
static int decode(const mp_t *m, codec_request_t *req, codec_error_t *err) {
    memset(err, 0, sizeof *err);
    int rc = codec_request_decode(m->b.data, m->b.len, req, err);
    if (rc != 0) {
        cr_assert_eq(rc, err->code, "the return value is the error's code");
        cr_assert_neq(err->message[0], '\0', "an error carries a message");
    }
    return rc;
}

/* Asserts that m is refused as bad_request with the id 7 echoed and a message that holds text
 * (NULL: any message). */
static void refused_saying(const mp_t *m, const char *text) {
    codec_request_t req;
    codec_error_t err;
    int rc = decode(m, &req, &err);
    cr_assert_eq(rc, EVS_EBAD_REQUEST, "expected bad_request, got %d (%s)", rc, err.message);
    cr_assert(req.has_id, "the id is read despite the error (%s)", err.message);
    cr_assert_eq(req.id, 7);
    if (text) cr_assert(strstr(err.message, text), "the message says %s: %s", text, err.message);
    codec_request_free(&req);
}

/* Asserts that m is refused as bad_request with the id 7 echoed. */
static void refused_with_id_7(const mp_t *m) {
    refused_saying(m, NULL);
}

/* Asserts that m is decoded, and returns the request (free it). */
static void accepted(const mp_t *m, codec_request_t *req) {
    codec_error_t err;
    int rc = decode(m, req, &err);
    cr_assert_eq(rc, 0, "refused: %s", err.message);
}

/* Starts {"op": op, "id": 7, ...n_more keys}. */
static void req_begin(mp_t *m, const char *op, uint32_t n_more) {
    mp_init(m);
    mp_map(m, 2 + n_more);
    mp_str(m, "op");
    mp_str(m, op);
    mp_str(m, "id");
    mp_uint(m, 7);
}

/* A get-by-entity request whose entity_id is the n bytes at s. */
static void get_by_entity(mp_t *m, const char *s, size_t n) {
    req_begin(m, "get-by-entity", 1);
    mp_str(m, "entity_id");
    mp_strn(m, s, n);
}

/* ---------------------------------------------------------------- op and id */

Test(request, ping_decodes_op_and_id) {
    mp_t m;
    req_begin(&m, "ping", 0);
    codec_request_t req;
    accepted(&m, &req);
    cr_assert_str_eq(req.op, "ping");
    cr_assert(req.has_id);
    cr_assert_eq(req.id, 7);
    cr_assert_eq(req.present, 0);
    codec_request_free(&req);
    mp_free(&m);
}

Test(request, largest_uint64_id_is_read) {
    mp_t m;
    mp_init(&m);
    mp_map(&m, 2);
    mp_str(&m, "id");
    mp_uint(&m, UINT64_MAX);
    mp_str(&m, "op");
    mp_str(&m, "ping");
    codec_request_t req;
    accepted(&m, &req);
    cr_assert_eq(req.id, UINT64_MAX);
    codec_request_free(&req);
    mp_free(&m);
}

Test(request, missing_op_is_bad_request_with_the_id) {
    mp_t m;
    mp_init(&m);
    mp_map(&m, 1);
    mp_str(&m, "id");
    mp_uint(&m, 7);
    refused_with_id_7(&m);
    mp_free(&m);
}

Test(request, op_that_is_not_a_string_is_bad_request_with_the_id) {
    mp_t m;
    mp_init(&m);
    mp_map(&m, 2);
    mp_str(&m, "op");
    mp_uint(&m, 1);
    mp_str(&m, "id");
    mp_uint(&m, 7);
    refused_with_id_7(&m);
    mp_free(&m);
    mp_init(&m);
    mp_map(&m, 2);
    mp_str(&m, "op");
    mp_bin(&m, "ping", 4);
    mp_str(&m, "id");
    mp_uint(&m, 7);
    refused_with_id_7(&m);
    mp_free(&m);
}

Test(request, empty_op_is_bad_request_with_the_id) {
    mp_t m;
    req_begin(&m, "", 0);
    refused_with_id_7(&m);
    mp_free(&m);
}

Test(request, missing_id_is_bad_request_without_id) {
    mp_t m;
    mp_init(&m);
    mp_map(&m, 1);
    mp_str(&m, "op");
    mp_str(&m, "ping");
    codec_request_t req;
    codec_error_t err;
    cr_assert_eq(decode(&m, &req, &err), EVS_EBAD_REQUEST);
    cr_assert_not(req.has_id);
    codec_request_free(&req);
    mp_free(&m);
}

Test(request, id_that_is_not_an_unsigned_integer_is_bad_request_without_id) {
    for (int kind = 0; kind < 4; kind++) {
        mp_t m;
        mp_init(&m);
        mp_map(&m, 2);
        mp_str(&m, "op");
        mp_str(&m, "ping");
        mp_str(&m, "id");
        switch (kind) {
        case 0:
            mp_int(&m, -1);
            break;
        case 1:
            mp_str(&m, "7");
            break;
        case 2:
            msgpack_pack_double(&m.pk, 7.0);
            break;
        case 3:
            msgpack_pack_nil(&m.pk);
            break;
        }
        codec_request_t req;
        codec_error_t err;
        cr_assert_eq(decode(&m, &req, &err), EVS_EBAD_REQUEST, "kind %d", kind);
        cr_assert_not(req.has_id, "kind %d", kind);
        codec_request_free(&req);
        mp_free(&m);
    }
}

Test(request, malformed_msgpack_is_bad_request_without_id) {
    mp_t m;
    mp_init(&m);
    mp_bytes(&m, 0x82, 0xa2, 'i', 'd', 0x07, 0xa2, 'o', 'p', -1); /* op's value missing */
    codec_request_t req;
    codec_error_t err;
    cr_assert_eq(decode(&m, &req, &err), EVS_EBAD_REQUEST);
    codec_request_free(&req);
    mp_free(&m);
}

Test(request, top_level_array_is_bad_request) {
    mp_t m;
    mp_init(&m);
    mp_array(&m, 2);
    mp_str(&m, "op");
    mp_str(&m, "ping");
    codec_request_t req;
    codec_error_t err;
    cr_assert_eq(decode(&m, &req, &err), EVS_EBAD_REQUEST);
    cr_assert_not(req.has_id);
    codec_request_free(&req);
    mp_free(&m);
}

Test(request, unknown_keys_are_bad_request_naming_them) {
    mp_t m;
    req_begin(&m, "ping", 1);
    mp_str(&m, "topci");
    mp_uint(&m, 1);
    refused_saying(&m, "\"topci\"");
    mp_free(&m);
}

Test(request, keys_that_are_not_strings_are_bad_request) {
    mp_t m;
    req_begin(&m, "ping", 1);
    mp_uint(&m, 5);
    mp_uint(&m, 6);
    refused_with_id_7(&m);
    mp_free(&m);
}

Test(request, a_key_given_twice_is_bad_request) {
    mp_t m;
    req_begin(&m, "ping", 1);
    mp_str(&m, "op");
    mp_str(&m, "stats");
    refused_saying(&m, "twice");
    mp_free(&m);
}

Test(request, an_id_given_twice_is_bad_request_without_an_id) {
    mp_t m;
    mp_init(&m);
    mp_map(&m, 3);
    mp_str(&m, "id");
    mp_uint(&m, 1);
    mp_str(&m, "op");
    mp_str(&m, "ping");
    mp_str(&m, "id");
    mp_uint(&m, 2);
    codec_request_t req;
    codec_error_t err;
    cr_assert_eq(decode(&m, &req, &err), EVS_EBAD_REQUEST);
    cr_assert(!req.has_id, "which of the two ids would it be?");
    codec_request_free(&req);
    mp_free(&m);
}

Test(request, a_key_given_twice_in_an_event_is_bad_request) {
    mp_t m;
    req_begin(&m, "append", 1);
    mp_str(&m, "events");
    mp_array(&m, 1);
    mp_map(&m, 4);
    mp_str(&m, "entity_id");
    mp_str(&m, "a");
    mp_str(&m, "topic");
    mp_str(&m, "t");
    mp_str(&m, "payload");
    mp_bin(&m, "x", 1);
    mp_str(&m, "entity_id");
    mp_str(&m, "b");
    refused_saying(&m, "events[0]");
    mp_free(&m);
}

Test(request, an_op_with_a_nul_is_bad_request) {
    mp_t m;
    mp_init(&m);
    mp_map(&m, 2);
    mp_str(&m, "op");
    mp_strn(&m, "ping\0x", 6);
    mp_str(&m, "id");
    mp_uint(&m, 7);
    refused_with_id_7(&m);
    mp_free(&m);
}

/* The 16 MiB map of 8.4 million nil:nil pairs: refused at its header, before msgpack-c
 * allocates for it. */
Test(request, a_map_of_more_objects_than_a_request_may_hold_is_bad_request) {
    size_t pairs = (16u << 20) / 2 - 8;
    mp_t m;
    mp_init(&m);
    mp_map(&m, (uint32_t)pairs);
    uint8_t *nils = malloc(2 * pairs);
    cr_assert(nils);
    memset(nils, 0xc0, 2 * pairs);
    mp_raw(&m, nils, 2 * pairs);
    free(nils);
    codec_request_t req;
    codec_error_t err;
    cr_assert_eq(decode(&m, &req, &err), EVS_EBAD_REQUEST);
    cr_assert(strstr(err.message, "too many"), "%s", err.message);
    codec_request_free(&req);
    mp_free(&m);
}

Test(request, the_object_budget_counts_every_key_and_value) {
    const char *why = NULL;
    /* {"a": [nil x 5]}: the map, the key, the array and 5 nils are 8 objects */
    const uint8_t b[] = {0x81, 0xa1, 'a', 0x95, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0};
    cr_assert_eq(codec_prescan_limited(b, sizeof b, CODEC_MAX_DEPTH, 8, &why), 0);
    cr_assert_eq(codec_prescan_limited(b, sizeof b, CODEC_MAX_DEPTH, 7, &why), -1);
    cr_assert_eq(codec_prescan(b, sizeof b, CODEC_MAX_DEPTH, &why), 0);
}

Test(request, unknown_op_is_decoded_and_left_to_dispatch) {
    mp_t m;
    req_begin(&m, "no-such-op", 0);
    codec_request_t req;
    accepted(&m, &req);
    cr_assert_str_eq(req.op, "no-such-op");
    codec_request_free(&req);
    mp_free(&m);
}

/* ---------------------------------------------------------------- argument types */

Test(request, version_as_a_string_is_bad_request_with_the_id) {
    mp_t m;
    req_begin(&m, "get-by-entity", 2);
    mp_str(&m, "entity_id");
    mp_str(&m, "a");
    mp_str(&m, "version");
    mp_str(&m, "3");
    refused_with_id_7(&m);
    mp_free(&m);
}

/* The id comes after the faulty key in the map: it is still echoed. */
Test(request, id_after_the_faulty_key_is_still_read) {
    mp_t m;
    mp_init(&m);
    mp_map(&m, 3);
    mp_str(&m, "from_version");
    mp_str(&m, "3");
    mp_str(&m, "op");
    mp_str(&m, "get-by-entity");
    mp_str(&m, "id");
    mp_uint(&m, 7);
    refused_with_id_7(&m);
    mp_free(&m);
}

Test(request, version_inside_an_appended_event_as_a_string_is_bad_request_with_the_id) {
    mp_t m;
    req_begin(&m, "append", 1);
    mp_str(&m, "events");
    mp_array(&m, 1);
    mp_map(&m, 4);
    mp_str(&m, "entity_id");
    mp_str(&m, "a");
    mp_str(&m, "topic");
    mp_str(&m, "t");
    mp_str(&m, "payload");
    mp_bin(&m, "x", 1);
    mp_str(&m, "version");
    mp_str(&m, "0");
    refused_with_id_7(&m);
    mp_free(&m);
}

Test(request, unsigned_arguments_refuse_negative_and_other_types) {
    static const char *keys[] = {"from_version", "limit", "after", "sub", "version", "max_version"};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        for (int kind = 0; kind < 3; kind++) {
            mp_t m;
            req_begin(&m, "read-all", 1);
            mp_str(&m, keys[k]);
            if (kind == 0)
                mp_int(&m, -1);
            else if (kind == 1)
                mp_str(&m, "1");
            else
                msgpack_pack_true(&m.pk);
            refused_with_id_7(&m);
            mp_free(&m);
        }
    }
}

Test(request, unsigned_arguments_are_read) {
    mp_t m;
    req_begin(&m, "read-all", 6);
    mp_str(&m, "from_version");
    mp_uint(&m, 1);
    mp_str(&m, "limit");
    mp_uint(&m, 2);
    mp_str(&m, "after");
    mp_uint(&m, UINT64_MAX);
    mp_str(&m, "sub");
    mp_uint(&m, 4);
    mp_str(&m, "version");
    mp_uint(&m, 5);
    mp_str(&m, "max_version");
    mp_uint(&m, 6);
    codec_request_t req;
    accepted(&m, &req);
    cr_assert_eq(req.present, ARG_FROM_VERSION | ARG_LIMIT | ARG_AFTER | ARG_SUB | ARG_VERSION |
                                  ARG_MAX_VERSION);
    cr_assert_eq(req.from_version, 1);
    cr_assert_eq(req.limit, 2);
    cr_assert_eq(req.after, UINT64_MAX);
    cr_assert_eq(req.sub, 4);
    cr_assert_eq(req.version, 5);
    cr_assert_eq(req.max_version, 6);
    codec_request_free(&req);
    mp_free(&m);
}

Test(request, backwards_must_be_a_boolean) {
    mp_t m;
    req_begin(&m, "get-by-entity", 1);
    mp_str(&m, "backwards");
    mp_uint(&m, 1);
    refused_with_id_7(&m);
    mp_free(&m);
    req_begin(&m, "get-by-entity", 1);
    mp_str(&m, "backwards");
    msgpack_pack_true(&m.pk);
    codec_request_t req;
    accepted(&m, &req);
    cr_assert(req.present & ARG_BACKWARDS);
    cr_assert(req.backwards);
    codec_request_free(&req);
    mp_free(&m);
}

/* ---------------------------------------------------------------- names */

Test(request, entity_id_is_copied_with_a_nul) {
    mp_t m;
    get_by_entity(&m, "account-1", 9);
    codec_request_t req;
    accepted(&m, &req);
    cr_assert(req.present & ARG_ENTITY_ID);
    cr_assert_str_eq(req.entity_id, "account-1");
    codec_request_free(&req);
    mp_free(&m);
}

Test(request, empty_entity_id_is_bad_request_with_the_id) {
    mp_t m;
    get_by_entity(&m, "", 0);
    refused_with_id_7(&m);
    mp_free(&m);
}

Test(request, entity_id_of_255_bytes_is_accepted) {
    mp_t m;
    get_by_entity(&m, repeat('e', 255), 255);
    codec_request_t req;
    accepted(&m, &req);
    cr_assert_eq(strlen(req.entity_id), 255);
    codec_request_free(&req);
    mp_free(&m);
}

Test(request, entity_id_of_256_bytes_is_bad_request_with_the_id) {
    mp_t m;
    get_by_entity(&m, repeat('e', 256), 256);
    refused_with_id_7(&m);
    mp_free(&m);
}

Test(request, entity_id_of_255_bytes_in_multibyte_characters_is_accepted) {
    char s[256];
    for (int i = 0; i < 85; i++)
        memcpy(s + 3 * i, "\xe2\x82\xac", 3); /* 85 euro signs */
    mp_t m;
    get_by_entity(&m, s, 255);
    codec_request_t req;
    accepted(&m, &req);
    codec_request_free(&req);
    mp_free(&m);
}

Test(request, entity_id_with_invalid_utf8_is_bad_request_with_the_id) {
    static const struct {
        const char *s;
        size_t n;
    } bad[] = {
        {"\xff", 1},             /* never valid */
        {"a\x80", 2},            /* lone continuation byte */
        {"\xc3", 1},             /* truncated two-byte sequence */
        {"\xe2\x82", 2},         /* truncated three-byte sequence */
        {"\xc0\x80", 2},         /* overlong NUL */
        {"\xe0\x80\xaf", 3},     /* overlong '/' */
        {"\xed\xa0\x80", 3},     /* UTF-16 surrogate */
        {"\xf4\x90\x80\x80", 4}, /* beyond U+10FFFF */
        {"\xc3\x28", 2},         /* bad continuation */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mp_t m;
        get_by_entity(&m, bad[i].s, bad[i].n);
        refused_with_id_7(&m);
        mp_free(&m);
    }
}

Test(request, entity_id_with_valid_multibyte_utf8_is_accepted) {
    static const char *good[] = {"caf\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
                                 "\xf4\x8f\xbf\xbf" /* U+10FFFF */};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        mp_t m;
        get_by_entity(&m, good[i], strlen(good[i]));
        codec_request_t req;
        accepted(&m, &req);
        cr_assert_str_eq(req.entity_id, good[i]);
        codec_request_free(&req);
        mp_free(&m);
    }
}

Test(request, entity_id_with_an_embedded_nul_is_bad_request_with_the_id) {
    mp_t m;
    get_by_entity(&m, "ab\0cd", 5);
    refused_with_id_7(&m);
    mp_free(&m);
}

Test(request, entity_id_that_is_not_a_string_is_bad_request_with_the_id) {
    mp_t m;
    req_begin(&m, "get-by-entity", 1);
    mp_str(&m, "entity_id");
    mp_bin(&m, "abc", 3);
    refused_with_id_7(&m);
    mp_free(&m);
}

Test(request, topic_follows_the_same_rules_as_entity_id) {
    mp_t m;
    req_begin(&m, "get-by-topic", 1);
    mp_str(&m, "topic");
    mp_strn(&m, repeat('t', 256), 256);
    refused_with_id_7(&m);
    mp_free(&m);
    req_begin(&m, "get-by-topic", 1);
    mp_str(&m, "topic");
    mp_str(&m, "");
    refused_with_id_7(&m);
    mp_free(&m);
    req_begin(&m, "get-by-topic", 1);
    mp_str(&m, "topic");
    mp_str(&m, "orders");
    codec_request_t req;
    accepted(&m, &req);
    cr_assert(req.present & ARG_TOPIC);
    cr_assert_str_eq(req.topic, "orders");
    codec_request_free(&req);
    mp_free(&m);
}

Test(request, entity_prefix_may_be_empty_but_not_over_255_bytes) {
    mp_t m;
    req_begin(&m, "subscribe", 1);
    mp_str(&m, "entity_prefix");
    mp_str(&m, "");
    codec_request_t req;
    accepted(&m, &req);
    cr_assert(req.present & ARG_ENTITY_PREFIX);
    cr_assert_str_eq(req.entity_prefix, "");
    codec_request_free(&req);
    mp_free(&m);
    req_begin(&m, "subscribe", 1);
    mp_str(&m, "entity_prefix");
    mp_strn(&m, repeat('p', 256), 256);
    refused_with_id_7(&m);
    mp_free(&m);
    req_begin(&m, "subscribe", 1);
    mp_str(&m, "entity_prefix");
    mp_strn(&m, "a\0", 2);
    refused_with_id_7(&m);
    mp_free(&m);
}

/* ---------------------------------------------------------------- event_id */

Test(request, event_id_of_16_bytes_is_read) {
    uint8_t id[16];
    for (int i = 0; i < 16; i++)
        id[i] = (uint8_t)(0xf0 + i);
    mp_t m;
    req_begin(&m, "get-by-id", 1);
    mp_str(&m, "event_id");
    mp_bin(&m, id, 16);
    codec_request_t req;
    accepted(&m, &req);
    cr_assert(req.present & ARG_EVENT_ID);
    cr_assert_arr_eq(req.event_id, id, 16);
    codec_request_free(&req);
    mp_free(&m);
}

Test(request, event_id_that_is_not_bin_16_is_bad_request_with_the_id) {
    static const size_t sizes[] = {0, 15, 17, 36};
    char zeros[40] = {0};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        mp_t m;
        req_begin(&m, "get-by-id", 1);
        mp_str(&m, "event_id");
        mp_bin(&m, zeros, sizes[i]);
        refused_with_id_7(&m);
        mp_free(&m);
    }
    mp_t m;
    req_begin(&m, "get-by-id", 1);
    mp_str(&m, "event_id");
    mp_strn(&m, "0123456789abcdef", 16); /* 16 bytes, but str */
    refused_with_id_7(&m);
    mp_free(&m);
}

/* ---------------------------------------------------------------- topics */

Test(request, topics_array_of_strings_is_read_in_order) {
    mp_t m;
    req_begin(&m, "subscribe", 1);
    mp_str(&m, "topics");
    mp_array(&m, 3);
    mp_str(&m, "a");
    mp_str(&m, "b");
    mp_str(&m, "c");
    codec_request_t req;
    accepted(&m, &req);
    cr_assert(req.present & ARG_TOPICS);
    cr_assert_eq(req.ntopics, 3);
    cr_assert_str_eq(req.topics[0], "a");
    cr_assert_str_eq(req.topics[1], "b");
    cr_assert_str_eq(req.topics[2], "c");
    codec_request_free(&req);
    mp_free(&m);
}

Test(request, topics_empty_array_is_accepted) {
    mp_t m;
    req_begin(&m, "subscribe", 1);
    mp_str(&m, "topics");
    mp_array(&m, 0);
    codec_request_t req;
    accepted(&m, &req);
    cr_assert_eq(req.ntopics, 0);
    codec_request_free(&req);
    mp_free(&m);
}

Test(request, topics_that_is_not_an_array_of_strings_is_bad_request_with_the_id) {
    for (int kind = 0; kind < 4; kind++) {
        mp_t m;
        req_begin(&m, "subscribe", 1);
        mp_str(&m, "topics");
        switch (kind) {
        case 0:
            mp_str(&m, "a");
            break; /* a string, not an array */
        case 1:
            mp_array(&m, 2);
            mp_str(&m, "a");
            mp_uint(&m, 1);
            break;
        case 2:
            mp_array(&m, 1);
            mp_str(&m, "");
            break;
        case 3:
            mp_array(&m, 1);
            mp_array(&m, 1);
            mp_str(&m, "a");
            break;
        }
        refused_with_id_7(&m);
        mp_free(&m);
    }
}

Test(request, more_than_the_topic_limit_is_bad_request_with_the_id) {
    mp_t m;
    req_begin(&m, "subscribe", 1);
    mp_str(&m, "topics");
    mp_array(&m, CODEC_MAX_TOPICS + 1);
    for (int i = 0; i < CODEC_MAX_TOPICS + 1; i++)
        mp_str(&m, "t");
    refused_with_id_7(&m);
    mp_free(&m);
}

/* ---------------------------------------------------------------- events */

/* Packs one append event map with the given optional parts. */
static void pack_append_event(mp_t *m, const char *entity, const char *topic, bool with_id,
                              uint8_t id_byte, bool with_version, uint64_t version,
                              bool with_metadata) {
    mp_map(m, 3 + with_id + with_version + with_metadata);
    mp_str(m, "entity_id");
    mp_str(m, entity);
    mp_str(m, "topic");
    mp_str(m, topic);
    mp_str(m, "payload");
    mp_bin(m, "\x00\x01\x02", 3);
    if (with_id) {
        uint8_t id[16];
        memset(id, id_byte, 16);
        mp_str(m, "event_id");
        mp_bin(m, id, 16);
    }
    if (with_version) {
        mp_str(m, "version");
        mp_uint(m, version);
    }
    if (with_metadata) {
        mp_str(m, "metadata");
        mp_map(m, 2);
        mp_str(m, "user");
        mp_str(m, "ann");
        mp_str(m, "n");
        mp_array(m, 2);
        mp_uint(m, 1);
        mp_int(m, -2);
    }
}

Test(request, append_events_are_decoded_in_order) {
    mp_t m;
    req_begin(&m, "append", 1);
    mp_str(&m, "events");
    mp_array(&m, 3);
    pack_append_event(&m, "a", "t1", false, 0, false, 0, false);
    pack_append_event(&m, "b", "t2", true, 0xab, true, 4, false);
    pack_append_event(&m, "a", "t3", false, 0, true, 1, true);
    codec_request_t req;
    accepted(&m, &req);
    cr_assert(req.present & ARG_EVENTS);
    cr_assert_eq(req.nevents, 3);
    const evs_event_t *e = req.events;
    cr_assert_str_eq(e[0].entity_id, "a");
    cr_assert_str_eq(e[0].topic, "t1");
    cr_assert_eq(e[0].payload_len, 3);
    cr_assert_arr_eq(e[0].payload, "\x00\x01\x02", 3);
    cr_assert_not(e[0].has_event_id);
    cr_assert_not(e[0].has_version);
    cr_assert_null(e[0].metadata);
    cr_assert_str_eq(e[1].entity_id, "b");
    cr_assert(e[1].has_event_id);
    uint8_t id[16];
    memset(id, 0xab, 16);
    cr_assert_arr_eq(e[1].event_id, id, 16);
    cr_assert(e[1].has_version);
    cr_assert_eq(e[1].version, 4);
    cr_assert_str_eq(e[2].topic, "t3");
    cr_assert(e[2].has_version);
    cr_assert_eq(e[2].version, 1);
    cr_assert_not_null(e[2].metadata);
    codec_request_free(&req);
    mp_free(&m);
}

/* The metadata map is kept as the msgpack bytes of the map, not interpreted. */
Test(request, metadata_is_kept_as_raw_msgpack_map_bytes) {
    mp_t meta;
    mp_init(&meta);
    mp_map(&meta, 2);
    mp_str(&meta, "user");
    mp_str(&meta, "ann");
    mp_str(&meta, "n");
    mp_array(&meta, 2);
    mp_uint(&meta, 1);
    mp_int(&meta, -2);

    mp_t m;
    req_begin(&m, "append", 1);
    mp_str(&m, "events");
    mp_array(&m, 1);
    pack_append_event(&m, "a", "t", false, 0, false, 0, true);
    codec_request_t req;
    accepted(&m, &req);
    cr_assert_eq(req.nevents, 1);
    cr_assert_eq(req.events[0].metadata_len, meta.b.len);
    cr_assert_arr_eq(req.events[0].metadata, meta.b.data, meta.b.len);
    codec_request_free(&req);
    mp_free(&m);
    mp_free(&meta);
}

Test(request, empty_metadata_map_is_kept) {
    mp_t m;
    req_begin(&m, "append", 1);
    mp_str(&m, "events");
    mp_array(&m, 1);
    mp_map(&m, 4);
    mp_str(&m, "entity_id");
    mp_str(&m, "a");
    mp_str(&m, "topic");
    mp_str(&m, "t");
    mp_str(&m, "payload");
    mp_bin(&m, "", 0);
    mp_str(&m, "metadata");
    mp_map(&m, 0);
    codec_request_t req;
    accepted(&m, &req);
    cr_assert_not_null(req.events[0].metadata, "an empty map is present, not absent");
    cr_assert_eq(req.events[0].metadata_len, 1);
    cr_assert_eq(req.events[0].metadata[0], 0x80);
    cr_assert_eq(req.events[0].payload_len, 0);
    codec_request_free(&req);
    mp_free(&m);
}

Test(request, metadata_that_is_not_a_map_is_bad_request_with_the_id) {
    mp_t m;
    req_begin(&m, "append", 1);
    mp_str(&m, "events");
    mp_array(&m, 1);
    mp_map(&m, 4);
    mp_str(&m, "entity_id");
    mp_str(&m, "a");
    mp_str(&m, "topic");
    mp_str(&m, "t");
    mp_str(&m, "payload");
    mp_bin(&m, "x", 1);
    mp_str(&m, "metadata");
    mp_array(&m, 0);
    refused_with_id_7(&m);
    mp_free(&m);
}

Test(request, empty_events_array_is_accepted) {
    mp_t m;
    req_begin(&m, "append", 1);
    mp_str(&m, "events");
    mp_array(&m, 0);
    codec_request_t req;
    accepted(&m, &req);
    cr_assert(req.present & ARG_EVENTS);
    cr_assert_eq(req.nevents, 0);
    codec_request_free(&req);
    mp_free(&m);
}

Test(request, events_that_is_not_an_array_of_maps_is_bad_request_with_the_id) {
    for (int kind = 0; kind < 3; kind++) {
        mp_t m;
        req_begin(&m, "append", 1);
        mp_str(&m, "events");
        if (kind == 0)
            mp_map(&m, 0);
        else if (kind == 1) {
            mp_array(&m, 1);
            mp_str(&m, "event");
        } else {
            mp_array(&m, 2);
            pack_append_event(&m, "a", "t", false, 0, false, 0, false);
            mp_uint(&m, 3);
        }
        refused_with_id_7(&m);
        mp_free(&m);
    }
}

/* An event missing one of entity_id, topic, payload, or with one of them of the wrong type. */
Test(request, event_missing_a_required_field_is_bad_request_with_the_id) {
    static const char *fields[] = {"entity_id", "topic", "payload"};
    for (int skip = 0; skip < 3; skip++) {
        mp_t m;
        req_begin(&m, "append", 1);
        mp_str(&m, "events");
        mp_array(&m, 1);
        mp_map(&m, 2);
        for (int f = 0; f < 3; f++) {
            if (f == skip) continue;
            mp_str(&m, fields[f]);
            if (f == 2)
                mp_bin(&m, "x", 1);
            else
                mp_str(&m, "x");
        }
        refused_with_id_7(&m);
        mp_free(&m);
    }
}

Test(request, event_payload_as_a_string_is_bad_request_with_the_id) {
    mp_t m;
    req_begin(&m, "append", 1);
    mp_str(&m, "events");
    mp_array(&m, 1);
    mp_map(&m, 3);
    mp_str(&m, "entity_id");
    mp_str(&m, "a");
    mp_str(&m, "topic");
    mp_str(&m, "t");
    mp_str(&m, "payload");
    mp_str(&m, "x");
    refused_with_id_7(&m);
    mp_free(&m);
}

Test(request, event_with_a_256_byte_entity_id_is_bad_request_with_the_id) {
    mp_t m;
    req_begin(&m, "append", 1);
    mp_str(&m, "events");
    mp_array(&m, 2);
    pack_append_event(&m, "ok", "t", false, 0, false, 0, false);
    pack_append_event(&m, repeat('e', 256), "t", false, 0, false, 0, false);
    refused_with_id_7(&m);
    mp_free(&m);
}

Test(request, event_with_an_event_id_of_15_bytes_is_bad_request_with_the_id) {
    mp_t m;
    req_begin(&m, "append", 1);
    mp_str(&m, "events");
    mp_array(&m, 1);
    mp_map(&m, 4);
    mp_str(&m, "entity_id");
    mp_str(&m, "a");
    mp_str(&m, "topic");
    mp_str(&m, "t");
    mp_str(&m, "payload");
    mp_bin(&m, "x", 1);
    mp_str(&m, "event_id");
    mp_bin(&m, "0123456789abcde", 15);
    refused_with_id_7(&m);
    mp_free(&m);
}

Test(request, deepest_accepted_nesting_decodes) {
    /* an append whose metadata nests to 32 containers in all, the request map included */
    mp_t m;
    req_begin(&m, "append", 1);
    mp_str(&m, "events");
    mp_array(&m, 1);
    mp_map(&m, 4);
    mp_str(&m, "entity_id");
    mp_str(&m, "a");
    mp_str(&m, "topic");
    mp_str(&m, "t");
    mp_str(&m, "payload");
    mp_bin(&m, "x", 1);
    mp_str(&m, "metadata");
    mp_map(&m, 1);
    mp_str(&m, "k");
    for (int i = 4; i < CODEC_MAX_DEPTH; i++)
        mp_array(&m, 1);
    mp_uint(&m, 1);
    codec_request_t req;
    accepted(&m, &req);
    codec_request_free(&req);
    mp_free(&m);
}

Test(request, nesting_over_the_limit_is_bad_request) {
    mp_t m;
    req_begin(&m, "ping", 1);
    mp_str(&m, "x");
    for (int i = 1; i < CODEC_MAX_DEPTH + 1; i++)
        mp_array(&m, 1);
    mp_uint(&m, 1);
    codec_request_t req;
    codec_error_t err;
    cr_assert_eq(decode(&m, &req, &err), EVS_EBAD_REQUEST);
    codec_request_free(&req);
    mp_free(&m);
}

/* ---------------------------------------------------------------- codec_valid_name */

Test(valid_name, limits) {
    cr_assert_not(codec_valid_name("", 0));
    cr_assert(codec_valid_name("a", 1));
    cr_assert(codec_valid_name(repeat('a', 255), 255));
    cr_assert_not(codec_valid_name(repeat('a', 256), 256));
    cr_assert_not(codec_valid_name("a\0b", 3));
    cr_assert_not(codec_valid_name("\xc3", 1));
    cr_assert(codec_valid_name("\xc3\xa9", 2));
}
