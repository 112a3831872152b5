/* codec_request.h: decoding a request frame into a plain struct, for the server's dispatch.
 *
 * Requests are decoded generically: every argument key of the protocol has one meaning and one
 * type whatever the op, so the decoder fills a codec_request_t with the keys it finds (checking
 * their types and limits) and the op handler then asks for the ones it needs (ARG_* bits in
 * present). A key the protocol does not have, a key that is not a string and a key given twice
 * are bad_request (dispatch then refuses keys the op does not take). The bytes go through
 * codec_prescan_limited first (at most CODEC_MAX_REQUEST_OBJECTS objects), so they may be
 * anything at all. */
#ifndef EVS_CODEC_REQUEST_H
#define EVS_CODEC_REQUEST_H

#include "codec.h"

/* Bits of codec_request_t.present: which argument keys the request carried. */
enum {
    ARG_EVENTS = 1u << 0,
    ARG_ENTITY_ID = 1u << 1,
    ARG_FROM_VERSION = 1u << 2,
    ARG_LIMIT = 1u << 3,
    ARG_BACKWARDS = 1u << 4,
    ARG_TOPIC = 1u << 5,
    ARG_AFTER = 1u << 6,
    ARG_EVENT_ID = 1u << 7,
    ARG_TOPICS = 1u << 8,
    ARG_SUB = 1u << 9,
    ARG_ENTITY_PREFIX = 1u << 10,
    ARG_VERSION = 1u << 11,
    ARG_MAX_VERSION = 1u << 12,
    ARG_PAYLOAD = 1u << 13,
    ARG_TOKEN = 1u << 14,
};

/* A decoded request. Strings and events point into memory owned by the request (its msgpack
 * zone), valid until codec_request_free. */
typedef struct codec_request {
    bool has_id;
    uint64_t id;
    const char *op;   /* NULL when missing */
    uint32_t present; /* ARG_* bits */
    evs_event_t *events;
    size_t nevents;
    const char *entity_id;
    const char *topic;
    const char *entity_prefix; /* may be "" */
    const char **topics;
    size_t ntopics;
    uint64_t from_version, limit, after, sub, version, max_version;
    bool backwards;
    uint8_t event_id[16];
    const uint8_t *payload;
    size_t payload_len;
    const char *token; /* auth: bytes, not NUL-terminated */
    size_t token_len;
    msgpack_unpacked unpacked; /* owns the memory of everything above */
} codec_request_t;

/* Decodes the len bytes at buf (one frame body) into *req. Returns 0, or EVS_EBAD_REQUEST with
 * err filled; in both cases req->has_id/id are set if the id could be read, and the caller must
 * call codec_request_free. Runs codec_prescan first, so buf may be any bytes at all. */
int codec_request_decode(const uint8_t *buf, size_t len, codec_request_t *req, codec_error_t *err);

void codec_request_free(codec_request_t *req);

/* The key of the argument whose ARG_* bit is bit ("?" for anything else). */
const char *codec_arg_name(uint32_t bit);

/* Same as codec_request_decode, but reuses the msgpack zone that req kept from its previous
 * decode (req must be zeroed, or have been decoded before and not freed): a server decoding one
 * request after another saves an allocation per request. Call codec_request_free to release
 * the zone for good. */
int codec_request_decode_reusing(const uint8_t *buf, size_t len, codec_request_t *req,
                                 codec_error_t *err);

#endif
