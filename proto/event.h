/* event.h: the event as both sides of the protocol hold it in memory.
 *
 * This header is self-contained: it is installed as <evstore/event.h> and is part of the public
 * client API. Strings are NUL-terminated UTF-8 of 1..255 bytes. Who owns the pointed-to memory is
 * said by whoever hands an event out (evs_event_free releases an event made by evs_event_dup or by
 * the client library). */
#ifndef EVS_EVENT_H
#define EVS_EVENT_H

#include <stddef.h>
#include <stdint.h>

#define EVS_NAME_MAX 255 /* longest entity_id or topic, in bytes */

/* Exported from libevstore.so (built with hidden visibility by default). */
#ifndef EVS_PROTO_API
#if defined(__GNUC__)
#define EVS_PROTO_API __attribute__((visibility("default")))
#else
#define EVS_PROTO_API
#endif
#endif

typedef struct evs_event {
    uint8_t event_id[16]; /* a UUID, as its 16 raw bytes */
    char *entity_id;
    char *topic;
    uint64_t version;  /* index in the entity's stream, from 0 */
    uint64_t position; /* global, > 0, increasing in commit order (gaps allowed) */
    int64_t timestamp; /* microseconds since the Unix epoch, set by the server */
    uint8_t *payload;  /* opaque bytes */
    size_t payload_len;
    uint8_t *metadata; /* one msgpack map, as raw bytes; NULL when absent */
    size_t metadata_len;
    /* For events handed to append: whether event_id and version were given. */
    uint8_t has_event_id;
    uint8_t has_version;
} evs_event_t;

/* Deep copy of src into *dst (one allocation for all its bytes). 0, or -1 when out of memory. */
EVS_PROTO_API int evs_event_dup(evs_event_t *dst, const evs_event_t *src);

/* Releases what evs_event_dup allocated for ev (not ev itself). */
EVS_PROTO_API void evs_event_clear(evs_event_t *ev);

/* Fills ids with n random (version 4) UUIDs, 16 bytes each, from the kernel's CSPRNG in one
 * call. 0, or -1 when no randomness could be had. */
EVS_PROTO_API int evs_uuid_generate(uint8_t *ids, size_t n);

/* Fills ids with n time-ordered (version 7, RFC 9562) UUIDs, 16 bytes each: 48 bits of Unix
 * milliseconds, a 42-bit counter that goes up by one within a millisecond and 32 random bits,
 * so that every id made in this process is greater, as 16 unsigned bytes, than the one made
 * before it (any thread). Random bits come from the kernel's CSPRNG in one call. 0, or -1 when
 * no randomness could be had. */
EVS_PROTO_API int evs_uuid_generate_v7(uint8_t *ids, size_t n);

/* Turns the 16 random bytes in id into a version 7 UUID made now (as evs_uuid_generate_v7 does;
 * the last 4 bytes keep their random bits): for callers that keep their own pool of random
 * bytes. */
EVS_PROTO_API void evs_uuid_v7_stamp(uint8_t id[16]);

/* Formats a UUID as 36 characters plus NUL into out. */
EVS_PROTO_API void evs_uuid_format(const uint8_t id[16], char out[37]);

/* Parses a 36-character UUID (any case). 0, or -1 when text is not a UUID. */
EVS_PROTO_API int evs_uuid_parse(const char *text, uint8_t id[16]);

#endif
