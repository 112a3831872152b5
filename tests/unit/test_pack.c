/* test_pack.c: packing events and replies, decoding returned events, error code names. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "../../proto/codec.h"
#include "../../proto/codec_request.h"
#include "../../proto/errors.h"
#include "../../proto/frame.h"
#include "mp.h"

TestSuite(pack_event, .fini = leak_check);
TestSuite(decode_event, .fini = leak_check);
TestSuite(reply_error, .fini = leak_check);
TestSuite(reply_ok, .fini = leak_check);
TestSuite(codes, .fini = leak_check);
TestSuite(uuid, .fini = leak_check);

/* Unpacks the single msgpack object in the len bytes at p into *u (destroy it). */
static const msgpack_object *unpack(msgpack_unpacked *u, const uint8_t *p, size_t len) {
    msgpack_unpacked_init(u);
    size_t off = 0;
    cr_assert_eq(msgpack_unpack_next(u, (const char *)p, len, &off), MSGPACK_UNPACK_SUCCESS);
    cr_assert_eq(off, len, "exactly one object");
    return &u->data;
}

/* Unpacks the one frame in b and checks its header. */
static const msgpack_object *unpack_frame(msgpack_unpacked *u, const codec_buf_t *b) {
    const uint8_t *body;
    size_t body_len, consumed;
    cr_assert_eq(frame_parse(b->data, b->len, FRAME_DEFAULT_MAX, &body, &body_len, &consumed),
                 FRAME_OK);
    cr_assert_eq(consumed, b->len, "one frame");
    const char *why = NULL;
    cr_assert_eq(codec_prescan(body, body_len, CODEC_MAX_DEPTH, &why), 0, "%s", why);
    return unpack(u, body, body_len);
}

static bool str_is(const msgpack_object *o, const char *s) {
    return o && o->type == MSGPACK_OBJECT_STR && o->via.str.size == strlen(s) &&
           memcmp(o->via.str.ptr, s, o->via.str.size) == 0;
}

static evs_event_t sample_event(uint8_t *meta, size_t meta_len) {
    static uint8_t payload[] = {0, 1, 2, 0xff, 0};
    evs_event_t ev;
    memset(&ev, 0, sizeof ev);
    for (int i = 0; i < 16; i++)
        ev.event_id[i] = (uint8_t)(i * 17);
    ev.entity_id = "account-\xc3\xa9";
    ev.topic = "deposits";
    ev.version = 41;
    ev.position = 1234567890123ull;
    ev.timestamp = 1700000000123456ll;
    ev.payload = payload;
    ev.payload_len = sizeof payload;
    ev.metadata = meta;
    ev.metadata_len = meta_len;
    return ev;
}

static void assert_same_event(const evs_event_t *a, const evs_event_t *b) {
    cr_assert_arr_eq(a->event_id, b->event_id, 16);
    cr_assert_str_eq(a->entity_id, b->entity_id);
    cr_assert_str_eq(a->topic, b->topic);
    cr_assert_eq(a->version, b->version);
    cr_assert_eq(a->position, b->position);
    cr_assert_eq(a->timestamp, b->timestamp);
    cr_assert_eq(a->payload_len, b->payload_len);
    if (a->payload_len) cr_assert_arr_eq(a->payload, b->payload, a->payload_len);
    cr_assert_eq(a->metadata == NULL, b->metadata == NULL);
    cr_assert_eq(a->metadata_len, b->metadata_len);
    if (a->metadata_len) cr_assert_arr_eq(a->metadata, b->metadata, a->metadata_len);
}

/* Packs ev, decodes it back, and compares. */
static void round_trip(const evs_event_t *ev) {
    mp_t m;
    mp_init(&m);
    codec_pack_event(&m.pk, ev);
    cr_assert_not(m.b.failed);
    msgpack_unpacked u;
    const msgpack_object *o = unpack(&u, m.b.data, m.b.len);
    cr_assert_eq(o->type, MSGPACK_OBJECT_MAP);
    cr_assert_eq(o->via.map.size, ev->metadata ? 8 : 7);
    evs_event_t back;
    const char *why = NULL;
    cr_assert_eq(codec_decode_event(o, u.zone, &back, &why), 0, "%s", why);
    assert_same_event(ev, &back);
    msgpack_unpacked_destroy(&u);
    mp_free(&m);
}

/* ---------------------------------------------------------------- events */

Test(pack_event, round_trip_without_metadata) {
    evs_event_t ev = sample_event(NULL, 0);
    round_trip(&ev);
}

Test(pack_event, round_trip_with_metadata) {
    mp_t meta;
    mp_init(&meta);
    mp_map(&meta, 2);
    mp_str(&meta, "user");
    mp_str(&meta, "ann");
    mp_str(&meta, "tags");
    mp_array(&meta, 2);
    mp_str(&meta, "a");
    mp_uint(&meta, 300);
    evs_event_t ev = sample_event(meta.b.data, meta.b.len);
    round_trip(&ev);
    mp_free(&meta);
}

Test(pack_event, round_trip_of_extreme_values) {
    evs_event_t ev = sample_event(NULL, 0);
    ev.version = UINT64_MAX;
    ev.position = UINT64_MAX;
    ev.timestamp = INT64_MIN;
    ev.payload_len = 0;
    ev.entity_id = (char *)repeat('e', 255);
    ev.topic = "t";
    round_trip(&ev);
    ev.timestamp = -1;
    round_trip(&ev);
    ev.timestamp = INT64_MAX;
    round_trip(&ev);
    ev.version = 0;
    ev.timestamp = 0;
    round_trip(&ev);
}

/* codec_pack_event writes straight into a codec_buf_t; through any other packer it goes through
 * msgpack-c. Both must give the same bytes, for every size class of every field. */
static int sbuf_write(void *data, const char *buf, size_t len) {
    return msgpack_sbuffer_write(data, buf, len);
}

static void assert_fast_path_matches_msgpack_c(const evs_event_t *ev) {
    mp_t fast;
    mp_init(&fast);
    codec_pack_event(&fast.pk, ev);
    cr_assert_not(fast.b.failed);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, sbuf_write);
    codec_pack_event(&pk, ev);
    cr_assert_eq(fast.b.len, sb.size, "fast path %zu bytes, msgpack-c %zu", fast.b.len, sb.size);
    cr_assert_arr_eq(fast.b.data, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    mp_free(&fast);
}

Test(pack_event, direct_writer_gives_the_bytes_of_msgpack_c) {
    static const uint64_t uints[] = {0,     1,     127,      128,         255,        256,
                                     65535, 65536, 1u << 31, 0xffffffffu, 1ull << 32, UINT64_MAX};
    static const int64_t ints[] = {0,
                                   -1,
                                   -32,
                                   -33,
                                   -128,
                                   -129,
                                   -32768,
                                   -32769,
                                   -2147483648LL,
                                   -2147483649LL,
                                   INT64_MIN,
                                   127,
                                   128,
                                   65536,
                                   INT64_MAX,
                                   1700000000123456LL};
    static const size_t lens[] = {1, 31, 32, 255};
    static const size_t bins[] = {0, 1, 255, 256, 65535, 65536, 70000};
    uint8_t *payload = calloc(1, 70000);
    cr_assert(payload);
    for (size_t i = 0; i < 70000; i++)
        payload[i] = (uint8_t)(i * 7);
    evs_event_t ev = sample_event(NULL, 0);
    ev.payload = payload;
    for (size_t k = 0; k < sizeof uints / sizeof uints[0]; k++) {
        ev.version = uints[k];
        ev.position = uints[sizeof uints / sizeof uints[0] - 1 - k];
        assert_fast_path_matches_msgpack_c(&ev);
    }
    for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++) {
        ev.timestamp = ints[k];
        assert_fast_path_matches_msgpack_c(&ev);
    }
    char entity[256], topic[256];
    for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
        memset(entity, 'e', lens[k]);
        entity[lens[k]] = '\0';
        memset(topic, 't', lens[sizeof lens / sizeof lens[0] - 1 - k]);
        topic[lens[sizeof lens / sizeof lens[0] - 1 - k]] = '\0';
        ev.entity_id = entity;
        ev.topic = topic;
        assert_fast_path_matches_msgpack_c(&ev);
    }
    for (size_t k = 0; k < sizeof bins / sizeof bins[0]; k++) {
        ev.payload_len = bins[k];
        assert_fast_path_matches_msgpack_c(&ev);
    }
    ev.metadata = (uint8_t *)"\x81\xa1k\x01";
    ev.metadata_len = 4;
    assert_fast_path_matches_msgpack_c(&ev);
    free(payload);
}

Test(pack_event, returned_event_has_the_protocol_key_names_and_types) {
    evs_event_t ev = sample_event((uint8_t *)"\x80", 1);
    mp_t m;
    mp_init(&m);
    codec_pack_event(&m.pk, &ev);
    msgpack_unpacked u;
    const msgpack_object *o = unpack(&u, m.b.data, m.b.len);
    const msgpack_object *v;
    cr_assert((v = codec_map_get(o, "event_id")) && v->type == MSGPACK_OBJECT_BIN &&
              v->via.bin.size == 16);
    cr_assert(str_is(codec_map_get(o, "entity_id"), ev.entity_id));
    cr_assert(str_is(codec_map_get(o, "topic"), "deposits"));
    cr_assert((v = codec_map_get(o, "version")) && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
              v->via.u64 == 41);
    cr_assert((v = codec_map_get(o, "position")) && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER);
    cr_assert((v = codec_map_get(o, "timestamp")) && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
              v->via.i64 == ev.timestamp);
    cr_assert((v = codec_map_get(o, "payload")) && v->type == MSGPACK_OBJECT_BIN &&
              v->via.bin.size == 5);
    cr_assert((v = codec_map_get(o, "metadata")) && v->type == MSGPACK_OBJECT_MAP &&
              v->via.map.size == 0);
    msgpack_unpacked_destroy(&u);
    mp_free(&m);
}

/* Returned events are decoded strictly: a client must not accept a malformed event. */
Test(decode_event, missing_or_mistyped_fields_are_refused) {
    static const char *keys[] = {"event_id", "entity_id", "version", "topic",
                                 "position", "timestamp", "payload"};
    for (size_t drop = 0; drop < 7; drop++) {
        for (int mistype = 0; mistype < 2; mistype++) {
            mp_t m;
            mp_init(&m);
            mp_map(&m, mistype ? 7 : 6);
            for (size_t k = 0; k < 7; k++) {
                if (k == drop && !mistype) continue;
                mp_str(&m, keys[k]);
                if (k == drop) {
                    mp_array(&m, 0); /* the wrong type for every field */
                    continue;
                }
                switch (k) {
                case 0:
                    mp_bin(&m, "0123456789abcdef", 16);
                    break;
                case 1:
                    mp_str(&m, "e");
                    break;
                case 3:
                    mp_str(&m, "t");
                    break;
                case 6:
                    mp_bin(&m, "p", 1);
                    break;
                default:
                    mp_uint(&m, 1);
                    break;
                }
            }
            msgpack_unpacked u;
            const msgpack_object *o = unpack(&u, m.b.data, m.b.len);
            evs_event_t ev;
            const char *why = NULL;
            cr_assert_eq(codec_decode_event(o, u.zone, &ev, &why), -1, "%s %s", keys[drop],
                         mistype ? "mistyped" : "missing");
            cr_assert_not_null(why);
            msgpack_unpacked_destroy(&u);
            mp_free(&m);
        }
    }
}

Test(decode_event, event_id_of_15_bytes_and_non_map_are_refused) {
    mp_t m;
    mp_init(&m);
    mp_array(&m, 0);
    msgpack_unpacked u;
    const msgpack_object *o = unpack(&u, m.b.data, m.b.len);
    evs_event_t ev;
    const char *why = NULL;
    cr_assert_eq(codec_decode_event(o, u.zone, &ev, &why), -1);
    msgpack_unpacked_destroy(&u);
    mp_free(&m);

    evs_event_t good = sample_event(NULL, 0);
    mp_init(&m);
    codec_pack_event(&m.pk, &good);
    /* The event_id is the first value: bin8 header c4 10 after the fixmap and "event_id" key. */
    cr_assert_eq(m.b.data[10], 0xc4);
    cr_assert_eq(m.b.data[11], 16);
    m.b.data[11] = 15; /* now declares 15 bytes ... */
    memmove(m.b.data + 12 + 15, m.b.data + 12 + 16, m.b.len - 12 - 16);
    m.b.len--; /* ... and has them */
    o = unpack(&u, m.b.data, m.b.len);
    cr_assert_eq(codec_decode_event(o, u.zone, &ev, &why), -1);
    msgpack_unpacked_destroy(&u);
    mp_free(&m);
}

/* What codec_pack_event_for_append writes, codec_request_decode reads back as the same event. */
Test(pack_event, append_form_round_trips_through_the_request_decoder) {
    mp_t meta;
    mp_init(&meta);
    mp_map(&meta, 1);
    mp_str(&meta, "k");
    mp_uint(&meta, 1);
    evs_event_t evs[2] = {sample_event(NULL, 0), sample_event(meta.b.data, meta.b.len)};
    evs[0].has_event_id = 0;
    evs[0].has_version = 0;
    evs[1].has_event_id = 1;
    evs[1].has_version = 1;
    evs[1].version = 3;

    mp_t m;
    mp_init(&m);
    mp_map(&m, 3);
    mp_str(&m, "op");
    mp_str(&m, "append");
    mp_str(&m, "id");
    mp_uint(&m, 1);
    mp_str(&m, "events");
    mp_array(&m, 2);
    codec_pack_event_for_append(&m.pk, &evs[0]);
    codec_pack_event_for_append(&m.pk, &evs[1]);
    codec_request_t req;
    codec_error_t err;
    cr_assert_eq(codec_request_decode(m.b.data, m.b.len, &req, &err), 0, "%s", err.message);
    cr_assert_eq(req.nevents, 2);
    for (int i = 0; i < 2; i++) {
        const evs_event_t *a = &evs[i], *b = &req.events[i];
        cr_assert_str_eq(a->entity_id, b->entity_id);
        cr_assert_str_eq(a->topic, b->topic);
        cr_assert_eq(a->payload_len, b->payload_len);
        cr_assert_arr_eq(a->payload, b->payload, a->payload_len);
        cr_assert_eq(a->has_event_id, b->has_event_id);
        cr_assert_eq(a->has_version, b->has_version);
        cr_assert_eq(a->metadata_len, b->metadata_len);
    }
    cr_assert_arr_eq(req.events[1].event_id, evs[1].event_id, 16);
    cr_assert_eq(req.events[1].version, 3);
    cr_assert_arr_eq(req.events[1].metadata, meta.b.data, meta.b.len);
    codec_request_free(&req);
    mp_free(&m);
    mp_free(&meta);
}

/* ---------------------------------------------------------------- replies */

Test(reply_error, carries_id_ok_false_code_and_message) {
    codec_buf_t b;
    codec_buf_init(&b);
    codec_error_t err;
    cr_assert_eq(codec_error_set(&err, EVS_ENOT_FOUND, "no event %d", 5), EVS_ENOT_FOUND);
    codec_reply_error(&b, true, 99, &err);
    msgpack_unpacked u;
    const msgpack_object *o = unpack_frame(&u, &b);
    cr_assert_eq(o->via.map.size, 3);
    const msgpack_object *v = codec_map_get(o, "id");
    cr_assert(v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 == 99);
    v = codec_map_get(o, "ok");
    cr_assert(v && v->type == MSGPACK_OBJECT_BOOLEAN && !v->via.boolean);
    const msgpack_object *e = codec_map_get(o, "error");
    cr_assert(e && e->type == MSGPACK_OBJECT_MAP);
    cr_assert_eq(e->via.map.size, 2, "no details were set");
    cr_assert(str_is(codec_map_get(e, "code"), "not_found"));
    cr_assert(str_is(codec_map_get(e, "message"), "no event 5"));
    msgpack_unpacked_destroy(&u);
    codec_buf_free(&b);
}

Test(reply_error, without_id_has_no_id_key) {
    codec_buf_t b;
    codec_buf_init(&b);
    codec_error_t err;
    codec_error_set(&err, EVS_ETOO_LARGE, "frame too large");
    codec_reply_error(&b, false, 0, &err);
    msgpack_unpacked u;
    const msgpack_object *o = unpack_frame(&u, &b);
    cr_assert_eq(o->via.map.size, 2);
    cr_assert_null(codec_map_get(o, "id"));
    cr_assert(str_is(codec_map_get(codec_map_get(o, "error"), "code"), "too_large"));
    msgpack_unpacked_destroy(&u);
    codec_buf_free(&b);
}

Test(reply_error, conflict_details_are_packed) {
    codec_buf_t b;
    codec_buf_init(&b);
    codec_error_t err;
    codec_error_set(&err, EVS_ECONFLICT, "version conflict");
    err.has_entity = true;
    strcpy(err.entity_id, "acct-1");
    err.has_version = true;
    err.version = 3;
    err.has_current = true;
    err.current_version = 5;
    codec_reply_error(&b, true, 1, &err);
    msgpack_unpacked u;
    const msgpack_object *o = unpack_frame(&u, &b);
    const msgpack_object *e = codec_map_get(o, "error");
    cr_assert_eq(e->via.map.size, 5);
    cr_assert(str_is(codec_map_get(e, "code"), "conflict"));
    cr_assert(str_is(codec_map_get(e, "entity_id"), "acct-1"));
    const msgpack_object *v = codec_map_get(e, "version");
    cr_assert(v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 == 3);
    v = codec_map_get(e, "current_version");
    cr_assert(v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 == 5);
    cr_assert_null(codec_map_get(e, "event_id"));
    msgpack_unpacked_destroy(&u);
    codec_buf_free(&b);
}

Test(reply_error, current_version_of_an_entity_without_events_is_nil) {
    codec_buf_t b;
    codec_buf_init(&b);
    codec_error_t err;
    codec_error_set(&err, EVS_ECONFLICT, "version conflict");
    err.has_current = true;
    err.current_version = -1;
    codec_reply_error(&b, true, 1, &err);
    msgpack_unpacked u;
    const msgpack_object *o = unpack_frame(&u, &b);
    const msgpack_object *v = codec_map_get(codec_map_get(o, "error"), "current_version");
    cr_assert(v && v->type == MSGPACK_OBJECT_NIL);
    msgpack_unpacked_destroy(&u);
    codec_buf_free(&b);
}

Test(reply_error, duplicate_event_id_detail_is_bin_16) {
    codec_buf_t b;
    codec_buf_init(&b);
    codec_error_t err;
    codec_error_set(&err, EVS_ECONFLICT, "duplicate event id");
    err.has_event_id = true;
    memset(err.event_id, 0x5a, 16);
    codec_reply_error(&b, true, 1, &err);
    msgpack_unpacked u;
    const msgpack_object *o = unpack_frame(&u, &b);
    const msgpack_object *v = codec_map_get(codec_map_get(o, "error"), "event_id");
    cr_assert(v && v->type == MSGPACK_OBJECT_BIN && v->via.bin.size == 16);
    cr_assert_arr_eq(v->via.bin.ptr, err.event_id, 16);
    msgpack_unpacked_destroy(&u);
    codec_buf_free(&b);
}

Test(reply_error, error_set_clears_earlier_details) {
    codec_error_t err;
    memset(&err, 0xff, sizeof err);
    codec_error_set(&err, EVS_EINTERNAL, "x");
    cr_assert_not(err.has_entity);
    cr_assert_not(err.has_version);
    cr_assert_not(err.has_current);
    cr_assert_not(err.has_event_id);
    cr_assert_str_eq(err.message, "x");
}

Test(reply_error, long_message_is_truncated_not_overflowed) {
    codec_error_t err;
    codec_error_set(&err, EVS_EBAD_REQUEST, "%s%s", repeat('m', 500), "");
    cr_assert_eq(strlen(err.message), sizeof err.message - 1);
}

Test(reply_ok, begin_packs_id_and_ok_true_then_the_results) {
    codec_buf_t b;
    codec_buf_init(&b);
    msgpack_packer pk;
    codec_packer_init(&pk, &b);
    size_t start = codec_frame_begin(&b);
    codec_reply_ok_begin(&pk, 42, 1);
    codec_pack_key(&pk, "version");
    codec_pack_cstr(&pk, "0.1.0");
    cr_assert_eq(codec_frame_end(&b, start, FRAME_DEFAULT_MAX), 0);
    msgpack_unpacked u;
    const msgpack_object *o = unpack_frame(&u, &b);
    cr_assert_eq(o->via.map.size, 3);
    const msgpack_object *v = codec_map_get(o, "id");
    cr_assert(v && v->via.u64 == 42);
    v = codec_map_get(o, "ok");
    cr_assert(v && v->type == MSGPACK_OBJECT_BOOLEAN && v->via.boolean);
    cr_assert(str_is(codec_map_get(o, "version"), "0.1.0"));
    msgpack_unpacked_destroy(&u);
    codec_buf_free(&b);
}

/* ---------------------------------------------------------------- code names */

Test(codes, wire_names_are_the_protocol_ones) {
    cr_assert_str_eq(evs_code_name(EVS_EBAD_REQUEST), "bad_request");
    cr_assert_str_eq(evs_code_name(EVS_ETOO_LARGE), "too_large");
    cr_assert_str_eq(evs_code_name(EVS_ECONFLICT), "conflict");
    cr_assert_str_eq(evs_code_name(EVS_ENOT_FOUND), "not_found");
    cr_assert_str_eq(evs_code_name(EVS_EUNAVAILABLE), "unavailable");
    cr_assert_str_eq(evs_code_name(EVS_EINTERNAL), "internal");
    cr_assert_str_eq(evs_code_name(EVS_ELIMIT_EXCEEDED), "limit_exceeded");
    cr_assert_str_eq(evs_code_name(12345), "unknown");
}

Test(codes, names_map_back_to_codes) {
    static const int codes[] = {EVS_EBAD_REQUEST,   EVS_ETOO_LARGE,   EVS_ECONFLICT,
                                EVS_ENOT_FOUND,     EVS_EUNAVAILABLE, EVS_EINTERNAL,
                                EVS_ELIMIT_EXCEEDED};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        const char *n = evs_code_name(codes[i]);
        cr_assert_eq(evs_code_from_name(n, strlen(n)), codes[i], "%s", n);
    }
    /* A code added to the protocol later still reads as an error. */
    cr_assert_eq(evs_code_from_name("rate_limited", 12), EVS_EINTERNAL);
    /* Only the whole name counts. */
    cr_assert_eq(evs_code_from_name("conflict", 4), EVS_EINTERNAL);
}

/* ---------------------------------------------------------------- uuid text */

Test(uuid, format_and_parse_round_trip) {
    uint8_t id[16], back[16];
    for (int i = 0; i < 16; i++)
        id[i] = (uint8_t)(0xa0 + i * 3);
    char text[37];
    evs_uuid_format(id, text);
    cr_assert_eq(strlen(text), 36);
    cr_assert_eq(text[8], '-');
    cr_assert_eq(text[13], '-');
    cr_assert_eq(text[18], '-');
    cr_assert_eq(text[23], '-');
    cr_assert_eq(evs_uuid_parse(text, back), 0);
    cr_assert_arr_eq(id, back, 16);
    cr_assert_eq(evs_uuid_parse("A0A3A6A9-ACAF-B2B5-B8BB-BEC1C4C7CACD", back), 0, "any case");
    cr_assert_arr_eq(id, back, 16);
    cr_assert_eq(evs_uuid_parse("not-a-uuid", back), -1);
    cr_assert_eq(evs_uuid_parse("a0a3a6a9-acaf-b2b5-b8bb-bec1c4c7cacdx", back), -1);
    cr_assert_eq(evs_uuid_parse("a0a3a6a9xacafxb2b5xb8bbxbec1c4c7cacd", back), -1);
}
