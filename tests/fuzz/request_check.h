/* request_check.h: one request body through the daemon's decoder, as dispatch_frame does it, and
 * the promises checked on what comes out (fuzz_request and fuzz_frame_reader share it). */
#ifndef EVS_FUZZ_REQUEST_CHECK_H
#define EVS_FUZZ_REQUEST_CHECK_H

#include "../../proto/codec_request.h"
#include "fuzz.h"

/* What the prescan accepts, msgpack-c must unpack whole into one map: the prescan is the only
 * thing between untrusted bytes and msgpack-c's allocations. */
static inline void fuzz_check_prescan_agrees(const uint8_t *body, size_t len) {
    const char *why = NULL;
    if (codec_prescan(body, len, CODEC_MAX_DEPTH, &why) != 0) {
        FUZZ_CHECK(why != NULL, "a refusal without a reason");
        return;
    }
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    msgpack_unpack_return ur = msgpack_unpack_next(&u, (const char *)body, len, &off);
    FUZZ_CHECK(ur == MSGPACK_UNPACK_SUCCESS && off == len && u.data.type == MSGPACK_OBJECT_MAP,
               "prescan passed %zu bytes that msgpack-c unpacks with %d after %zu bytes", len,
               (int)ur, off);
    msgpack_unpacked_destroy(&u);
}

/* The events of an append, packed again as a client packs them, must decode to the same. */
static inline void fuzz_check_events_roundtrip(const codec_request_t *req) {
    codec_buf_t b;
    codec_buf_init(&b);
    msgpack_packer pk;
    codec_packer_init(&pk, &b);
    msgpack_pack_map(&pk, 3);
    codec_pack_key(&pk, "op");
    codec_pack_cstr(&pk, req->op);
    codec_pack_key(&pk, "id");
    msgpack_pack_uint64(&pk, req->id);
    codec_pack_key(&pk, "events");
    msgpack_pack_array(&pk, (uint32_t)req->nevents);
    for (size_t i = 0; i < req->nevents; i++)
        codec_pack_event_for_append(&pk, &req->events[i]);
    FUZZ_CHECK(!b.failed, "out of memory packing %zu events", req->nevents);
    codec_request_t again;
    codec_error_t err;
    int rc = codec_request_decode(b.data, b.len, &again, &err);
    FUZZ_CHECK(rc == 0, "events packed again do not decode: %s", err.message);
    FUZZ_CHECK(again.nevents == req->nevents, "%zu events became %zu", req->nevents, again.nevents);
    for (size_t i = 0; i < req->nevents; i++) {
        const evs_event_t *x = &req->events[i], *y = &again.events[i];
        FUZZ_CHECK(strcmp(x->entity_id, y->entity_id) == 0 && strcmp(x->topic, y->topic) == 0 &&
                       x->payload_len == y->payload_len &&
                       (!x->payload_len || memcmp(x->payload, y->payload, x->payload_len) == 0) &&
                       x->has_event_id == y->has_event_id && x->has_version == y->has_version &&
                       (!x->has_version || x->version == y->version) &&
                       (!x->has_event_id || memcmp(x->event_id, y->event_id, 16) == 0) &&
                       x->metadata_len == y->metadata_len &&
                       (!x->metadata_len || memcmp(x->metadata, y->metadata, x->metadata_len) == 0),
                   "event %zu differs after packing it again", i);
    }
    codec_request_free(&again);
    codec_buf_free(&b);
}

/* Decodes body into req (reusing its zone, as the daemon does) and checks the result: a decoded
 * request holds only valid names, readable bytes and metadata that is one msgpack map; a refused
 * one has an error whose reply frame a client can read. */
static inline void fuzz_decode_request(const uint8_t *body, size_t len, codec_request_t *req) {
    fuzz_check_prescan_agrees(body, len);
    codec_error_t err;
    memset(&err, 0, sizeof err);
    int rc = codec_request_decode_reusing(body, len, req, &err);
    if (rc != 0) {
        FUZZ_CHECK(rc == err.code && (rc == EVS_EBAD_REQUEST || rc == EVS_EINTERNAL),
                   "rc %d, code %d", rc, err.code);
        FUZZ_CHECK(err.message[0] && fuzz_utf8_ok(err.message), "message \"%s\"", err.message);
        codec_buf_t b;
        codec_buf_init(&b);
        codec_reply_error(&b, req->has_id, req->id, &err);
        int ok, has_id;
        fuzz_check_reply_frame(b.data, b.len, &ok, &has_id);
        FUZZ_CHECK(ok == 0 && has_id == req->has_id, "ok %d, id %d", ok, has_id);
        codec_buf_free(&b);
        return;
    }
    FUZZ_CHECK(req->op && req->has_id, "a request without op or id");
    size_t oplen = strlen(req->op);
    FUZZ_CHECK(oplen >= 1 && oplen <= 64, "op of %zu bytes", oplen);
    const char *names[] = {req->entity_id, req->topic};
    for (size_t i = 0; i < 2; i++)
        if (names[i]) FUZZ_CHECK(codec_valid_name(names[i], strlen(names[i])), "a bad name");
    if (req->entity_prefix && req->entity_prefix[0])
        FUZZ_CHECK(codec_valid_name(req->entity_prefix, strlen(req->entity_prefix)), "prefix");
    FUZZ_CHECK(req->ntopics <= CODEC_MAX_TOPICS, "%zu topics", req->ntopics);
    for (size_t i = 0; i < req->ntopics; i++)
        FUZZ_CHECK(codec_valid_name(req->topics[i], strlen(req->topics[i])), "topic %zu", i);
    if (req->payload) fuzz_touch(req->payload, req->payload_len);
    for (size_t i = 0; i < req->nevents; i++) {
        const evs_event_t *ev = &req->events[i];
        FUZZ_CHECK(ev->entity_id && codec_valid_name(ev->entity_id, strlen(ev->entity_id)),
                   "event %zu entity_id", i);
        FUZZ_CHECK(ev->topic && codec_valid_name(ev->topic, strlen(ev->topic)), "event %zu topic",
                   i);
        fuzz_touch(ev->payload, ev->payload_len);
        if (ev->metadata) {
            const char *why = NULL;
            FUZZ_CHECK(codec_prescan(ev->metadata, ev->metadata_len, CODEC_MAX_DEPTH, &why) == 0,
                       "event %zu metadata: %s", i, why);
        }
        FUZZ_CHECK(codec_event_size(ev) >= CODEC_EVENT_OVERHEAD + ev->payload_len, "event %zu size",
                   i);
    }
    if (req->present & ARG_EVENTS) fuzz_check_events_roundtrip(req);
}

#endif
