/* codec_request.c: decoding a request frame into a plain codec_request_t (see codec_request.h). */
#include "codec_request.h"

#include <stdio.h>
#include <string.h>

#include "codec_prescan.h"

/* Reads a name (entity_id, topic, entity prefix...) into a NUL-terminated copy in the zone. */
static int get_name(const msgpack_object *o, msgpack_zone *z, const char *what, const char **out,
                    bool allow_empty, codec_error_t *err) {
    if (o->type != MSGPACK_OBJECT_STR)
        return codec_error_set(err, EVS_EBAD_REQUEST, "%s must be a string", what);
    size_t n = o->via.str.size;
    if (!(allow_empty && n == 0) && !codec_valid_name(o->via.str.ptr, n))
        return codec_error_set(err, EVS_EBAD_REQUEST,
                               "%s must be UTF-8 of 1 to 255 bytes without NUL (got %zu bytes)",
                               what, n);
    if (allow_empty && n > 0 && !codec_valid_name(o->via.str.ptr, n))
        return codec_error_set(err, EVS_EBAD_REQUEST, "%s must be UTF-8 of at most 255 bytes",
                               what);
    *out = codec_zone_strdup(z, o->via.str.ptr, n);
    if (!*out) return codec_error_set(err, EVS_EINTERNAL, "out of memory");
    return 0;
}

static int get_uint(const msgpack_object *o, const char *what, uint64_t *out, codec_error_t *err) {
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return codec_error_set(err, EVS_EBAD_REQUEST, "%s must be an unsigned integer", what);
    *out = o->via.u64;
    return 0;
}

static int get_uuid(const msgpack_object *o, const char *what, uint8_t out[16],
                    codec_error_t *err) {
    if (o->type != MSGPACK_OBJECT_BIN || o->via.bin.size != 16)
        return codec_error_set(err, EVS_EBAD_REQUEST, "%s must be bin of 16 bytes (a UUID)", what);
    memcpy(out, o->via.bin.ptr, 16);
    return 0;
}

static int get_payload(const msgpack_object *o, const uint8_t **data, size_t *len,
                       codec_error_t *err) {
    if (o->type != MSGPACK_OBJECT_BIN)
        return codec_error_set(err, EVS_EBAD_REQUEST, "payload must be bin");
    *data = (const uint8_t *)o->via.bin.ptr;
    *len = o->via.bin.size;
    return 0;
}

static int decode_append_event(const msgpack_object *o, msgpack_zone *z, size_t i, evs_event_t *ev,
                               codec_error_t *err) {
    if (o->type != MSGPACK_OBJECT_MAP)
        return codec_error_set(err, EVS_EBAD_REQUEST, "events[%zu] must be a map", i);
    memset(ev, 0, sizeof *ev);
    /* Each known key at most once: a bit per key, set when it is read. */
    enum { K_ENTITY = 1, K_TOPIC = 2, K_PAYLOAD = 4, K_EVENT_ID = 8, K_VERSION = 16, K_META = 32 };
    unsigned have = 0;
    for (uint32_t k = 0; k < o->via.map.size; k++) {
        const msgpack_object *key = &o->via.map.ptr[k].key, *val = &o->via.map.ptr[k].val;
        int rc = 0;
        unsigned bit = codec_key_is(key, "entity_id")  ? K_ENTITY
                       : codec_key_is(key, "topic")    ? K_TOPIC
                       : codec_key_is(key, "payload")  ? K_PAYLOAD
                       : codec_key_is(key, "event_id") ? K_EVENT_ID
                       : codec_key_is(key, "version")  ? K_VERSION
                       : codec_key_is(key, "metadata") ? K_META
                                                       : 0;
        if (have & bit)
            rc = codec_error_set(err, EVS_EBAD_REQUEST, "key \"%.*s\" given twice",
                                 (int)key->via.str.size, key->via.str.ptr);
        else if (bit == K_ENTITY) {
            rc = get_name(val, z, "entity_id", (const char **)&ev->entity_id, false, err);
        } else if (bit == K_TOPIC) {
            rc = get_name(val, z, "topic", (const char **)&ev->topic, false, err);
        } else if (bit == K_PAYLOAD) {
            const uint8_t *p = NULL;
            rc = get_payload(val, &p, &ev->payload_len, err);
            ev->payload = (uint8_t *)p;
        } else if (bit == K_EVENT_ID) {
            rc = get_uuid(val, "event_id", ev->event_id, err);
            ev->has_event_id = 1;
        } else if (bit == K_VERSION) {
            rc = get_uint(val, "version", &ev->version, err);
            ev->has_version = 1;
        } else if (bit == K_META) {
            if (val->type != MSGPACK_OBJECT_MAP)
                rc = codec_error_set(err, EVS_EBAD_REQUEST, "metadata must be a map");
            else if (codec_repack(val, z, &ev->metadata, &ev->metadata_len) != 0)
                rc = codec_error_set(err, EVS_EINTERNAL, "out of memory");
        }
        have |= bit;
        if (rc) {
            if (err->code == EVS_EBAD_REQUEST) {
                char m[sizeof err->message];
                memcpy(m, err->message, sizeof m);
                snprintf(err->message, sizeof err->message, "events[%zu]: %.200s", i, m);
                codec_utf8_sanitize(err->message);
            }
            return rc;
        }
    }
    if ((have & (K_ENTITY | K_TOPIC | K_PAYLOAD)) != (K_ENTITY | K_TOPIC | K_PAYLOAD))
        return codec_error_set(err, EVS_EBAD_REQUEST,
                               "events[%zu] needs entity_id, topic and payload", i);
    return 0;
}

static int decode_events(const msgpack_object *o, codec_request_t *req, codec_error_t *err) {
    if (o->type != MSGPACK_OBJECT_ARRAY)
        return codec_error_set(err, EVS_EBAD_REQUEST, "events must be an array");
    size_t n = o->via.array.size;
    msgpack_zone *z = req->unpacked.zone;
    req->nevents = n;
    req->events = n ? msgpack_zone_malloc(z, n * sizeof(evs_event_t)) : NULL;
    if (n && !req->events) return codec_error_set(err, EVS_EINTERNAL, "out of memory");
    for (size_t i = 0; i < n; i++) {
        int rc = decode_append_event(&o->via.array.ptr[i], z, i, &req->events[i], err);
        if (rc) return rc;
    }
    return 0;
}

static int decode_topics(const msgpack_object *o, codec_request_t *req, codec_error_t *err) {
    if (o->type != MSGPACK_OBJECT_ARRAY)
        return codec_error_set(err, EVS_EBAD_REQUEST, "topics must be an array of strings");
    size_t n = o->via.array.size;
    if (n > CODEC_MAX_TOPICS)
        return codec_error_set(err, EVS_EBAD_REQUEST, "at most %d topics", CODEC_MAX_TOPICS);
    req->ntopics = n;
    req->topics = n ? msgpack_zone_malloc(req->unpacked.zone, n * sizeof(char *)) : NULL;
    if (n && !req->topics) return codec_error_set(err, EVS_EINTERNAL, "out of memory");
    for (size_t i = 0; i < n; i++) {
        int rc = get_name(&o->via.array.ptr[i], req->unpacked.zone, "topics[]", &req->topics[i],
                          false, err);
        if (rc) return rc;
    }
    return 0;
}

/* The argument keys that hold one name or one unsigned integer, each read into its field of
 * codec_request_t (the other keys need more than that and have their own code). */
typedef struct plain_arg {
    const char *key;
    uint32_t bit; /* ARG_* */
    enum { PLAIN_NAME, PLAIN_NAME_OR_EMPTY, PLAIN_UINT } type;
    size_t offset; /* of a const char * (names) or a uint64_t field */
} plain_arg_t;

static const plain_arg_t plain_args[] = {
    {"entity_id", ARG_ENTITY_ID, PLAIN_NAME, offsetof(codec_request_t, entity_id)},
    {"topic", ARG_TOPIC, PLAIN_NAME, offsetof(codec_request_t, topic)},
    {"entity_prefix", ARG_ENTITY_PREFIX, PLAIN_NAME_OR_EMPTY,
     offsetof(codec_request_t, entity_prefix)},
    {"from_version", ARG_FROM_VERSION, PLAIN_UINT, offsetof(codec_request_t, from_version)},
    {"limit", ARG_LIMIT, PLAIN_UINT, offsetof(codec_request_t, limit)},
    {"after", ARG_AFTER, PLAIN_UINT, offsetof(codec_request_t, after)},
    {"sub", ARG_SUB, PLAIN_UINT, offsetof(codec_request_t, sub)},
    {"version", ARG_VERSION, PLAIN_UINT, offsetof(codec_request_t, version)},
    {"max_version", ARG_MAX_VERSION, PLAIN_UINT, offsetof(codec_request_t, max_version)},
};

/* The row of plain_args for key; NULL when key is not a plain argument. */
static const plain_arg_t *plain_arg(const msgpack_object *key) {
    for (size_t i = 0; i < sizeof plain_args / sizeof plain_args[0]; i++)
        if (codec_key_is(key, plain_args[i].key)) return &plain_args[i];
    return NULL;
}

/* The argument keys that need more than plain_args gives, with their bits. */
static const struct {
    const char *key;
    uint32_t bit;
} other_args[] = {
    {"events", ARG_EVENTS},     {"topics", ARG_TOPICS},   {"backwards", ARG_BACKWARDS},
    {"event_id", ARG_EVENT_ID}, {"payload", ARG_PAYLOAD}, {"token", ARG_TOKEN},
};

/* The ARG_* bit of a key that is not in plain_args; 0 when the protocol has no such key. */
static uint32_t other_arg_bit(const msgpack_object *key) {
    for (size_t i = 0; i < sizeof other_args / sizeof other_args[0]; i++)
        if (codec_key_is(key, other_args[i].key)) return other_args[i].bit;
    return 0;
}

/* Bits of the decoder's own, beside ARG_*, to notice a repeated id or op. */
enum { SEEN_ID = 1u << 30, SEEN_OP = 1u << 31 };

const char *codec_arg_name(uint32_t bit) {
    for (size_t i = 0; i < sizeof plain_args / sizeof plain_args[0]; i++)
        if (plain_args[i].bit == bit) return plain_args[i].key;
    for (size_t i = 0; i < sizeof other_args / sizeof other_args[0]; i++)
        if (other_args[i].bit == bit) return other_args[i].key;
    return "?";
}

static int decode_request(const uint8_t *buf, size_t len, codec_request_t *req, codec_error_t *err);

int codec_request_decode(const uint8_t *buf, size_t len, codec_request_t *req, codec_error_t *err) {
    memset(req, 0, sizeof *req);
    msgpack_unpacked_init(&req->unpacked);
    return decode_request(buf, len, req, err);
}

int codec_request_decode_reusing(const uint8_t *buf, size_t len, codec_request_t *req,
                                 codec_error_t *err) {
    msgpack_zone *zone = req->unpacked.zone; /* msgpack_unpack_next clears and reuses it */
    memset(req, 0, sizeof *req);
    msgpack_unpacked_init(&req->unpacked);
    req->unpacked.zone = zone;
    return decode_request(buf, len, req, err);
}

static int decode_request(const uint8_t *buf, size_t len, codec_request_t *req,
                          codec_error_t *err) {
    const char *why;
    if (codec_prescan_limited(buf, len, CODEC_MAX_DEPTH, CODEC_MAX_REQUEST_OBJECTS, &why) != 0)
        return codec_error_set(err, EVS_EBAD_REQUEST, "malformed request: %s", why);
    size_t off = 0;
    if (msgpack_unpack_next(&req->unpacked, (const char *)buf, len, &off) != MSGPACK_UNPACK_SUCCESS)
        return codec_error_set(err, EVS_EBAD_REQUEST, "malformed request: invalid msgpack");
    const msgpack_object *root = &req->unpacked.data;
    msgpack_zone *z = req->unpacked.zone;

    /* The id first, so that every later error can echo it. */
    const msgpack_object *id = codec_map_get(root, "id");
    if (id && id->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        req->has_id = true;
        req->id = id->via.u64;
    }
    uint32_t seen = 0; /* ARG_* bits, and two of their own for id and op */
    for (uint32_t k = 0; k < root->via.map.size; k++) {
        const msgpack_object *key = &root->via.map.ptr[k].key, *v = &root->via.map.ptr[k].val;
        const plain_arg_t *arg = NULL;
        int rc = 0;
        if (key->type != MSGPACK_OBJECT_STR)
            return codec_error_set(err, EVS_EBAD_REQUEST, "argument keys must be strings");
        uint32_t bit = codec_key_is(key, "id")   ? SEEN_ID
                       : codec_key_is(key, "op") ? SEEN_OP
                       : (arg = plain_arg(key))  ? arg->bit
                                                 : other_arg_bit(key);
        if (bit == 0)
            return codec_error_set(err, EVS_EBAD_REQUEST, "unknown argument \"%.*s\"",
                                   key->via.str.size > 64 ? 64 : (int)key->via.str.size,
                                   key->via.str.ptr);
        if (seen & bit) {
            if (bit == SEEN_ID) req->has_id = false; /* which of the two ids to echo? neither */
            return codec_error_set(err, EVS_EBAD_REQUEST, "key \"%.*s\" given twice",
                                   (int)key->via.str.size, key->via.str.ptr);
        }
        seen |= bit;
        if (bit == SEEN_ID) {
            if (!req->has_id)
                rc = codec_error_set(err, EVS_EBAD_REQUEST, "id must be an unsigned integer");
        } else if (bit == SEEN_OP) {
            if (v->type != MSGPACK_OBJECT_STR || v->via.str.size == 0 || v->via.str.size > 64)
                rc = codec_error_set(err, EVS_EBAD_REQUEST, "op must be a non-empty string");
            else if (memchr(v->via.str.ptr, '\0', v->via.str.size))
                rc = codec_error_set(err, EVS_EBAD_REQUEST, "op must not contain NUL");
            else if (!(req->op = codec_zone_strdup(z, v->via.str.ptr, v->via.str.size)))
                rc = codec_error_set(err, EVS_EINTERNAL, "out of memory");
        } else if (arg) {
            req->present |= arg->bit;
            void *field = (char *)req + arg->offset;
            if (arg->type == PLAIN_UINT)
                rc = get_uint(v, arg->key, field, err);
            else
                rc = get_name(v, z, arg->key, field, arg->type == PLAIN_NAME_OR_EMPTY, err);
        } else if (bit == ARG_EVENTS) {
            req->present |= ARG_EVENTS;
            rc = decode_events(v, req, err);
        } else if (bit == ARG_TOPICS) {
            req->present |= ARG_TOPICS;
            rc = decode_topics(v, req, err);
        } else if (bit == ARG_BACKWARDS) {
            req->present |= ARG_BACKWARDS;
            if (v->type != MSGPACK_OBJECT_BOOLEAN)
                rc = codec_error_set(err, EVS_EBAD_REQUEST, "backwards must be a boolean");
            else
                req->backwards = v->via.boolean;
        } else if (bit == ARG_EVENT_ID) {
            req->present |= ARG_EVENT_ID;
            rc = get_uuid(v, "event_id", req->event_id, err);
        } else if (bit == ARG_PAYLOAD) {
            req->present |= ARG_PAYLOAD;
            rc = get_payload(v, &req->payload, &req->payload_len, err);
        } else if (bit == ARG_TOKEN) {
            req->present |= ARG_TOKEN;
            if (v->type != MSGPACK_OBJECT_STR || v->via.str.size == 0 ||
                v->via.str.size > CODEC_MAX_TOKEN)
                rc = codec_error_set(err, EVS_EBAD_REQUEST,
                                     "token must be a string of 1 to %d bytes", CODEC_MAX_TOKEN);
            req->token = v->via.str.ptr;
            req->token_len = v->via.str.size;
        }
        if (rc) return rc;
    }
    if (!req->op) return codec_error_set(err, EVS_EBAD_REQUEST, "missing op");
    if (!req->has_id) return codec_error_set(err, EVS_EBAD_REQUEST, "missing id");
    return 0;
}

void codec_request_free(codec_request_t *req) {
    msgpack_unpacked_destroy(&req->unpacked);
}
