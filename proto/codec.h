/* codec.h: msgpack on the wire, shared by server and client.
 *
 * The codec is three files. codec_prescan checks untrusted bytes before msgpack-c sees them
 * (every reader of the wire runs it first, so this header brings it along); codec_request
 * decodes a request frame into a plain struct (the server's side); this file holds the rest:
 * errors on their way to a reply, the output buffer and its frames, packing of replies, pushes
 * and events, and reading msgpack objects (events in replies, map keys, names). Output is
 * packed with msgpack-c into a growable byte buffer, one frame at a time. */
#ifndef EVS_CODEC_H
#define EVS_CODEC_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec_prescan.h"
#include "errors.h"
#include "event.h"

#define CODEC_MAX_TOPICS 1024 /* most topics in one subscribe filter (both sides check it) */
#define CODEC_MAX_TOKEN 1024  /* longest token of an auth request, in bytes */

/* ---------------------------------------------------------------- errors */

/* An error as it travels from a store or handler to the reply: a stable code, a sentence, and
 * optional details (which fields are set is said by the has_ flags). */
typedef struct codec_error {
    int code;
    char message[256];
    bool has_entity;
    char entity_id[EVS_NAME_MAX + 1];
    bool has_version;
    uint64_t version; /* the version asked for */
    bool has_current;
    int64_t current_version; /* the entity's latest version, -1 when it has no events */
    bool has_event_id;
    uint8_t event_id[16];
} codec_error_t;

/* Sets code and a printf-style message, and clears the details. Returns code. */
int codec_error_set(codec_error_t *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

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

/* The bytes an event takes besides its entity_id, topic, payload and metadata bytes, at most:
 * 8 keys of at most 10 bytes, the 16-byte id, three uint64, str/bin headers of at most 5 bytes. */
#define CODEC_EVENT_OVERHEAD 160

/* An upper bound of the bytes codec_pack_event writes for ev: CODEC_EVENT_OVERHEAD plus the
 * bytes of its entity_id, topic, payload and metadata. This is the size of an event as the
 * max_event limit and the byte bound of every page count it (docs/protocol.md, section 2). */
size_t codec_event_size(const evs_event_t *ev);

/* Copying an event's bytes (entity_id and topic with their NULs, payload, metadata) into memory
 * the caller owns: codec_event_bytes is how many, codec_event_copy_into copies them to at, points
 * *dst (otherwise a copy of *src) at them, and returns the byte after the last. evs_event_dup
 * and the client's event lists use them. */
size_t codec_event_bytes(const evs_event_t *ev);
char *codec_event_copy_into(evs_event_t *dst, const evs_event_t *src, char *at);

/* The bytes a reply or a push adds around the events of one page, at most: the map header,
 * "id" or "sub" with a uint64, "ok": true, "events" or "event" with a 32-bit array header, and
 * "truncated": true. A page's events may use the rest of max_frame (codec_page_budget). */
#define CODEC_PAGE_ENVELOPE 64

/* The packed bytes left for the events of one page in a frame of at most max_frame bytes. */
size_t codec_page_budget(uint32_t max_frame);

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

/* True when the object k is the string name (a map key as the protocol writes it). */
bool codec_key_is(const msgpack_object *k, const char *name);

/* Checks that s (len bytes) is valid UTF-8 of 1..255 bytes without NUL. */
bool codec_valid_name(const char *s, size_t len);

/* Replaces, in place, every byte of the NUL-terminated s that does not start a valid UTF-8
 * sequence (codec_valid_name's rules) with '?', so that s is valid UTF-8 of the same length. */
void codec_utf8_sanitize(char *s);

/* A NUL-terminated copy of the len bytes at s in zone; NULL when out of memory. */
char *codec_zone_strdup(msgpack_zone *z, const char *s, size_t len);

/* Packs obj back to msgpack bytes in the zone (*out, *len): how metadata keeps its exact
 * encoding as raw bytes without being interpreted. 0, or -1 when out of memory. */
int codec_repack(const msgpack_object *obj, msgpack_zone *z, uint8_t **out, size_t *len);

/* Decodes a returned event (a map as codec_pack_event writes it) into *ev, whose strings and
 * bytes point into obj's memory, except entity_id and topic which are copied into zone (for the
 * NUL). Returns 0, or -1 with *why set when a field is missing or of the wrong type. */
int codec_decode_event(const msgpack_object *obj, msgpack_zone *zone, evs_event_t *ev,
                       const char **why);

#endif
