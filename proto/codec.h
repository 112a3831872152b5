/* codec.h: msgpack on the wire, shared by server and client.
 *
 * Untrusted bytes go through codec_prescan before msgpack-c sees them: msgpack-c allocates for an
 * array or map as soon as it reads its header, so every declared length and count is checked
 * against the bytes that are really there, and nesting is capped, first.
 *
 * Requests are decoded generically: every argument key of the protocol has one meaning and one
 * type whatever the op, so the decoder fills a plain struct with the keys it finds (checking
 * their types and limits) and the op handler then asks for the ones it needs. Unknown keys are
 * ignored. Output is packed with msgpack-c into a growable byte buffer, one frame at a time. */
#ifndef EVS_CODEC_H
#define EVS_CODEC_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errors.h"
#include "event.h"

#define CODEC_MAX_DEPTH 32     /* deepest nesting of arrays and maps in one frame */
#define CODEC_MAX_TOPICS 1024  /* most topics in one subscribe filter */

/* ---------------------------------------------------------------- pre-scan */

/* Checks that the len bytes at buf are exactly one well-formed msgpack map whose every declared
 * length and count fits in the bytes that follow it, nested at most max_depth deep. Returns 0,
 * or -1 with *why set to a static sentence saying what is wrong. Allocates nothing. */
int codec_prescan(const uint8_t *buf, size_t len, int max_depth, const char **why);

/* ---------------------------------------------------------------- errors */

/* An error as it travels from a store or handler to the reply: a stable code, a sentence, and
 * optional details (which fields are set is said by the has_ flags). */
typedef struct codec_error {
    int code;
    char message[256];
    bool has_entity;
    char entity_id[EVS_NAME_MAX + 1];
    bool has_version;
    uint64_t version;         /* the version asked for */
    bool has_current;
    int64_t current_version;  /* the entity's latest version, -1 when it has no events */
    bool has_event_id;
    uint8_t event_id[16];
} codec_error_t;

/* Sets code and a printf-style message, and clears the details. Returns code. */
int codec_error_set(codec_error_t *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---------------------------------------------------------------- requests */

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
};

/* A decoded request. Strings and events point into memory owned by the request (its msgpack
 * zone), valid until codec_request_free. */
typedef struct codec_request {
    bool has_id;
    uint64_t id;
    const char *op;     /* NULL when missing */
    uint32_t present;   /* ARG_* bits */
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
    msgpack_unpacked unpacked; /* owns the memory of everything above */
} codec_request_t;

/* Decodes the len bytes at buf (one frame body) into *req. Returns 0, or EVS_EBAD_REQUEST with
 * err filled; in both cases req->has_id/id are set if the id could be read, and the caller must
 * call codec_request_free. Runs codec_prescan first, so buf may be any bytes at all. */
int codec_request_decode(const uint8_t *buf, size_t len, codec_request_t *req, codec_error_t *err);

void codec_request_free(codec_request_t *req);

/* Same as codec_request_decode, but reuses the msgpack zone that req kept from its previous
 * decode (req must be zeroed, or have been decoded before and not freed): a server decoding one
 * request after another saves an allocation per request. Call codec_request_free to release
 * the zone for good. */
int codec_request_decode_reusing(const uint8_t *buf, size_t len, codec_request_t *req,
                                 codec_error_t *err);

/* ---------------------------------------------------------------- output buffer */

/* A growable byte buffer that msgpack-c packs into (codec_buf_write is its write callback). */
typedef struct codec_buf {
    uint8_t *data;
    size_t len, cap;
    bool failed; /* an allocation failed; the contents are incomplete */
} codec_buf_t;

void codec_buf_init(codec_buf_t *b);
void codec_buf_free(codec_buf_t *b);
int codec_buf_reserve(codec_buf_t *b, size_t extra);
int codec_buf_write(void *buf, const char *data, size_t len);
/* Initialises pk to pack into b. */
void codec_packer_init(msgpack_packer *pk, codec_buf_t *b);

/* Starts a frame: reserves its 4-byte header and returns where it starts. */
size_t codec_frame_begin(codec_buf_t *b);
/* Ends the frame started at start by writing its length. Returns 0, or -1 if the buffer failed or
 * the body is empty or too large for a frame (the frame is then removed from the buffer). */
int codec_frame_end(codec_buf_t *b, size_t start, uint32_t max_frame);

/* ---------------------------------------------------------------- packing */

void codec_pack_cstr(msgpack_packer *pk, const char *s);
void codec_pack_key(msgpack_packer *pk, const char *key); /* same as codec_pack_cstr */
void codec_pack_bin(msgpack_packer *pk, const void *data, size_t len);

/* Packs an event as the protocol returns it (a map of 7 or 8 keys). */
void codec_pack_event(msgpack_packer *pk, const evs_event_t *ev);

/* An upper bound of the bytes codec_pack_event writes for ev. */
size_t codec_event_size(const evs_event_t *ev);

/* Copying an event's bytes (entity_id and topic with their NULs, payload, metadata) into memory
 * the caller owns: codec_event_bytes is how many, codec_event_copy_into copies them to at, points
 * *dst (otherwise a copy of *src) at them, and returns the byte after the last. evs_event_dup
 * and the client's event lists use them. */
size_t codec_event_bytes(const evs_event_t *ev);
char *codec_event_copy_into(evs_event_t *dst, const evs_event_t *src, char *at);

/* How many of the n events, from the first, fit in budget packed bytes; at least 1 when n > 0,
 * so that a page always makes progress. */
size_t codec_events_fitting(const evs_event_t *evs, size_t n, size_t budget);

/* Packs an event as append takes it (entity_id, topic, payload, and event_id, version, metadata
 * when given). */
void codec_pack_event_for_append(msgpack_packer *pk, const evs_event_t *ev);

/* Packs a whole error reply frame {"id", "ok": false, "error": {...}} into b. The id is omitted
 * when has_id is false. */
void codec_reply_error(codec_buf_t *b, bool has_id, uint64_t id, const codec_error_t *err);

/* Starts an ok reply map: packs the map header for 2 + nresults keys, then "id" and "ok": true.
 * The caller packs nresults key/value pairs after it. */
void codec_reply_ok_begin(msgpack_packer *pk, uint64_t id, uint32_t nresults);

/* ---------------------------------------------------------------- reading objects */

/* Looks up key in a map object; NULL when absent or when obj is not a map. */
const msgpack_object *codec_map_get(const msgpack_object *obj, const char *key);

/* Checks that s (len bytes) is valid UTF-8 of 1..255 bytes without NUL. */
bool codec_valid_name(const char *s, size_t len);

/* Decodes a returned event (a map as codec_pack_event writes it) into *ev, whose strings and
 * bytes point into obj's memory, except entity_id and topic which are copied into zone (for the
 * NUL). Returns 0, or -1 with *why set when a field is missing or of the wrong type. */
int codec_decode_event(const msgpack_object *obj, msgpack_zone *zone, evs_event_t *ev,
                       const char **why);

#endif
