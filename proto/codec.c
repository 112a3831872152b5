/* codec.c: errors, the output buffer and its frames, packing, and reading msgpack objects. */
#include "codec.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"

/* ================================================================ errors */

int codec_error_set(codec_error_t *err, int code, const char *fmt, ...) {
    memset(err, 0, sizeof *err);
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    /* Messages quote client input (an op name, a key) and may be cut inside a character: a
     * client must always be able to decode the text as UTF-8. */
    codec_utf8_sanitize(err->message);
    return code;
}

/* ================================================================ output buffer */

void codec_buf_init(codec_buf_t *b) {
    memset(b, 0, sizeof *b);
}

void codec_buf_free(codec_buf_t *b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}

int codec_buf_reserve(codec_buf_t *b, size_t extra) {
    if (b->failed) return -1;
    if (b->cap - b->len >= extra) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < extra)
        cap *= 2;
    uint8_t *d = realloc(b->data, cap);
    if (!d) {
        b->failed = true;
        return -1;
    }
    b->data = d;
    b->cap = cap;
    return 0;
}

int codec_buf_write(void *buf, const char *data, size_t len) {
    codec_buf_t *b = buf;
    if (codec_buf_reserve(b, len) != 0) return -1;
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return 0;
}

void codec_packer_init(msgpack_packer *pk, codec_buf_t *b) {
    msgpack_packer_init(pk, b, codec_buf_write);
}

size_t codec_frame_begin(codec_buf_t *b) {
    size_t start = b->len;
    static const char zero[FRAME_HEADER];
    codec_buf_write(b, zero, FRAME_HEADER);
    return start;
}

int codec_frame_end(codec_buf_t *b, size_t start, uint32_t max_frame) {
    if (b->failed) return -1;
    size_t body = b->len - start - FRAME_HEADER;
    if (body == 0 || body > max_frame) {
        b->len = start;
        return -1;
    }
    frame_put_header(b->data + start, (uint32_t)body);
    return 0;
}

/* ================================================================ packing */

void codec_pack_cstr(msgpack_packer *pk, const char *s) {
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

void codec_pack_key(msgpack_packer *pk, const char *key) {
    codec_pack_cstr(pk, key);
}

void codec_pack_bin(msgpack_packer *pk, const void *data, size_t len) {
    msgpack_pack_bin(pk, len);
    if (len) msgpack_pack_bin_body(pk, data, len);
}

/* codec_event_size with the string lengths already known. */
static size_t event_size(const evs_event_t *ev, size_t elen, size_t tlen) {
    return CODEC_EVENT_OVERHEAD + elen + tlen + ev->payload_len + ev->metadata_len;
}

/* Direct writers for codec_pack_event's fast path: the same bytes as msgpack-c's packer (the
 * smallest form of each value; tests/unit/test_pack.c compares them). */
static uint8_t *put_be(uint8_t *p, uint64_t v, int bytes) {
    for (int i = bytes - 1; i >= 0; i--)
        *p++ = (uint8_t)(v >> (8 * i));
    return p;
}

static uint8_t *put_uint(uint8_t *p, uint64_t v) {
    if (v < 128) {
        *p++ = (uint8_t)v;
        return p;
    }
    if (v < 256)
        *p++ = 0xcc, p = put_be(p, v, 1);
    else if (v < 65536)
        *p++ = 0xcd, p = put_be(p, v, 2);
    else if (v < (1ull << 32))
        *p++ = 0xce, p = put_be(p, v, 4);
    else
        *p++ = 0xcf, p = put_be(p, v, 8);
    return p;
}

static uint8_t *put_int(uint8_t *p, int64_t v) {
    if (v >= 0) return put_uint(p, (uint64_t)v);
    if (v >= -32)
        *p++ = (uint8_t)(int8_t)v;
    else if (v >= -128)
        *p++ = 0xd0, p = put_be(p, (uint64_t)v, 1);
    else if (v >= -32768)
        *p++ = 0xd1, p = put_be(p, (uint64_t)v, 2);
    else if (v >= -2147483648LL)
        *p++ = 0xd2, p = put_be(p, (uint64_t)v, 4);
    else
        *p++ = 0xd3, p = put_be(p, (uint64_t)v, 8);
    return p;
}

static uint8_t *put_str(uint8_t *p, const char *s, size_t n) {
    if (n < 32)
        *p++ = (uint8_t)(0xa0 | n);
    else if (n < 256)
        *p++ = 0xd9, p = put_be(p, n, 1);
    else if (n < 65536)
        *p++ = 0xda, p = put_be(p, n, 2);
    else
        *p++ = 0xdb, p = put_be(p, n, 4);
    memcpy(p, s, n);
    return p + n;
}

static uint8_t *put_bin(uint8_t *p, const void *d, size_t n) {
    if (n < 256)
        *p++ = 0xc4, p = put_be(p, n, 1);
    else if (n < 65536)
        *p++ = 0xc5, p = put_be(p, n, 2);
    else
        *p++ = 0xc6, p = put_be(p, n, 4);
    if (n) memcpy(p, d, n);
    return p + n;
}

#define PUT_KEY(p, lit) put_str(p, lit, sizeof lit - 1)

void codec_pack_event(msgpack_packer *pk, const evs_event_t *ev) {
    if (pk->callback == codec_buf_write) {
        /* Fast path (every reply and push of the daemon): the event's size is bounded, so the
         * buffer grows once and the bytes are written in place. */
        codec_buf_t *b = pk->data;
        size_t elen = strlen(ev->entity_id), tlen = strlen(ev->topic);
        if (codec_buf_reserve(b, event_size(ev, elen, tlen)) != 0) return;
        uint8_t *p = b->data + b->len;
        *p++ = (uint8_t)(0x80 | (ev->metadata ? 8 : 7));
        p = PUT_KEY(p, "event_id");
        p = put_bin(p, ev->event_id, 16);
        p = PUT_KEY(p, "entity_id");
        p = put_str(p, ev->entity_id, elen);
        p = PUT_KEY(p, "version");
        p = put_uint(p, ev->version);
        p = PUT_KEY(p, "topic");
        p = put_str(p, ev->topic, tlen);
        p = PUT_KEY(p, "position");
        p = put_uint(p, ev->position);
        p = PUT_KEY(p, "timestamp");
        p = put_int(p, ev->timestamp);
        p = PUT_KEY(p, "payload");
        p = put_bin(p, ev->payload, ev->payload_len);
        if (ev->metadata) {
            p = PUT_KEY(p, "metadata");
            memcpy(p, ev->metadata, ev->metadata_len); /* already one msgpack map */
            p += ev->metadata_len;
        }
        b->len = (size_t)(p - b->data);
        return;
    }
    msgpack_pack_map(pk, ev->metadata ? 8 : 7);
    codec_pack_key(pk, "event_id");
    codec_pack_bin(pk, ev->event_id, 16);
    codec_pack_key(pk, "entity_id");
    codec_pack_cstr(pk, ev->entity_id);
    codec_pack_key(pk, "version");
    msgpack_pack_uint64(pk, ev->version);
    codec_pack_key(pk, "topic");
    codec_pack_cstr(pk, ev->topic);
    codec_pack_key(pk, "position");
    msgpack_pack_uint64(pk, ev->position);
    codec_pack_key(pk, "timestamp");
    msgpack_pack_int64(pk, ev->timestamp);
    codec_pack_key(pk, "payload");
    codec_pack_bin(pk, ev->payload, ev->payload_len);
    if (ev->metadata) {
        codec_pack_key(pk, "metadata");
        /* Already one msgpack map: copied as it is. */
        pk->callback(pk->data, (const char *)ev->metadata, ev->metadata_len);
    }
}

size_t codec_event_size(const evs_event_t *ev) {
    return event_size(ev, strlen(ev->entity_id), strlen(ev->topic));
}

size_t codec_event_bytes(const evs_event_t *ev) {
    return strlen(ev->entity_id) + 1 + strlen(ev->topic) + 1 + ev->payload_len +
           (ev->metadata ? ev->metadata_len : 0);
}

char *codec_event_copy_into(evs_event_t *dst, const evs_event_t *src, char *at) {
    size_t elen = strlen(src->entity_id) + 1, tlen = strlen(src->topic) + 1;
    *dst = *src;
    dst->entity_id = memcpy(at, src->entity_id, elen);
    at += elen;
    dst->topic = memcpy(at, src->topic, tlen);
    at += tlen;
    dst->payload = (uint8_t *)at;
    if (src->payload_len) memcpy(at, src->payload, src->payload_len);
    at += src->payload_len;
    if (src->metadata) {
        dst->metadata = memcpy(at, src->metadata, src->metadata_len);
        at += src->metadata_len;
    } else {
        dst->metadata = NULL;
        dst->metadata_len = 0;
    }
    return at;
}

size_t codec_page_budget(uint32_t max_frame) {
    return max_frame > CODEC_PAGE_ENVELOPE ? max_frame - CODEC_PAGE_ENVELOPE : 0;
}

size_t codec_events_fitting(const evs_event_t *evs, size_t n, size_t budget) {
    size_t used = 0, k = 0;
    while (k < n) {
        used += codec_event_size(&evs[k]);
        if (used > budget && k > 0) break;
        k++;
    }
    return k;
}

void codec_pack_event_for_append(msgpack_packer *pk, const evs_event_t *ev) {
    msgpack_pack_map(pk, 3 + (ev->has_event_id ? 1 : 0) + (ev->has_version ? 1 : 0) +
                             (ev->metadata ? 1 : 0));
    codec_pack_key(pk, "entity_id");
    codec_pack_cstr(pk, ev->entity_id);
    codec_pack_key(pk, "topic");
    codec_pack_cstr(pk, ev->topic);
    codec_pack_key(pk, "payload");
    codec_pack_bin(pk, ev->payload, ev->payload_len);
    if (ev->has_event_id) {
        codec_pack_key(pk, "event_id");
        codec_pack_bin(pk, ev->event_id, 16);
    }
    if (ev->has_version) {
        codec_pack_key(pk, "version");
        msgpack_pack_uint64(pk, ev->version);
    }
    if (ev->metadata) {
        codec_pack_key(pk, "metadata");
        pk->callback(pk->data, (const char *)ev->metadata, ev->metadata_len);
    }
}

void codec_reply_error(codec_buf_t *b, bool has_id, uint64_t id, const codec_error_t *err) {
    msgpack_packer pk;
    codec_packer_init(&pk, b);
    size_t start = codec_frame_begin(b);
    msgpack_pack_map(&pk, has_id ? 3 : 2);
    if (has_id) {
        codec_pack_key(&pk, "id");
        msgpack_pack_uint64(&pk, id);
    }
    codec_pack_key(&pk, "ok");
    msgpack_pack_false(&pk);
    codec_pack_key(&pk, "error");
    int n = 2 + err->has_entity + err->has_version + err->has_current + err->has_event_id +
            err->has_position + err->has_tracking;
    msgpack_pack_map(&pk, n);
    codec_pack_key(&pk, "code");
    codec_pack_cstr(&pk, evs_code_name(err->code));
    codec_pack_key(&pk, "message");
    codec_pack_cstr(&pk, err->message);
    if (err->has_entity) {
        codec_pack_key(&pk, "entity_id");
        codec_pack_cstr(&pk, err->entity_id);
    }
    if (err->has_version) {
        codec_pack_key(&pk, "version");
        msgpack_pack_uint64(&pk, err->version);
    }
    if (err->has_current) {
        codec_pack_key(&pk, "current_version");
        if (err->current_version < 0)
            msgpack_pack_nil(&pk);
        else
            msgpack_pack_uint64(&pk, (uint64_t)err->current_version);
    }
    if (err->has_event_id) {
        codec_pack_key(&pk, "event_id");
        codec_pack_bin(&pk, err->event_id, 16);
    }
    if (err->has_position) {
        codec_pack_key(&pk, "position");
        msgpack_pack_uint64(&pk, err->position);
    }
    if (err->has_tracking) {
        codec_pack_key(&pk, "tracking");
        msgpack_pack_true(&pk);
    }
    codec_frame_end(b, start, UINT32_MAX);
}

void codec_reply_ok_begin(msgpack_packer *pk, uint64_t id, uint32_t nresults) {
    msgpack_pack_map(pk, 2 + nresults);
    codec_pack_key(pk, "id");
    msgpack_pack_uint64(pk, id);
    codec_pack_key(pk, "ok");
    msgpack_pack_true(pk);
}

/* ================================================================ reading objects */

/* The length of the valid UTF-8 sequence at p (before end), or 0 when the bytes there are not
 * one: a stray continuation byte, a truncated sequence, an overlong form, a UTF-16 surrogate or
 * a code point beyond U+10FFFF. NUL is a valid sequence of length 1. */
static size_t utf8_sequence(const unsigned char *p, const unsigned char *end) {
    unsigned c = *p;
    int n;
    uint32_t cp;
    if (c < 0x80) return 1;
    if ((c & 0xe0) == 0xc0)
        n = 1, cp = c & 0x1f;
    else if ((c & 0xf0) == 0xe0)
        n = 2, cp = c & 0x0f;
    else if ((c & 0xf8) == 0xf0)
        n = 3, cp = c & 0x07;
    else
        return 0;
    if (end - p <= n) return 0;
    for (int i = 1; i <= n; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
        (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
        return 0;
    return (size_t)n + 1;
}

bool codec_valid_name(const char *s, size_t len) {
    if (len < 1 || len > EVS_NAME_MAX) return false;
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    while (p < end) {
        size_t n = *p ? utf8_sequence(p, end) : 0;
        if (n == 0) return false;
        p += n;
    }
    return true;
}

void codec_utf8_sanitize(char *s) {
    unsigned char *p = (unsigned char *)s, *end = p + strlen(s);
    while (p < end) {
        size_t n = utf8_sequence(p, end);
        if (n == 0) {
            *p++ = '?';
            continue;
        }
        p += n;
    }
}

bool codec_key_is(const msgpack_object *k, const char *name) {
    size_t n = strlen(name);
    return k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
           memcmp(k->via.str.ptr, name, n) == 0;
}

const msgpack_object *codec_map_get(const msgpack_object *obj, const char *key) {
    if (!obj || obj->type != MSGPACK_OBJECT_MAP) return NULL;
    for (uint32_t i = 0; i < obj->via.map.size; i++)
        if (codec_key_is(&obj->via.map.ptr[i].key, key)) return &obj->via.map.ptr[i].val;
    return NULL;
}

char *codec_zone_strdup(msgpack_zone *z, const char *s, size_t len) {
    char *out = msgpack_zone_malloc(z, len + 1);
    if (!out) return NULL;
    memcpy(out, s, len);
    out[len] = '\0';
    return out;
}

int codec_repack(const msgpack_object *obj, msgpack_zone *z, uint8_t **out, size_t *len) {
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (msgpack_pack_object(&pk, *obj) != 0) {
        msgpack_sbuffer_destroy(&sb);
        return -1;
    }
    *out = msgpack_zone_malloc(z, sb.size ? sb.size : 1);
    if (*out) memcpy(*out, sb.data, sb.size);
    *len = sb.size;
    msgpack_sbuffer_destroy(&sb);
    return *out ? 0 : -1;
}

int codec_decode_event(const msgpack_object *obj, msgpack_zone *zone, evs_event_t *ev,
                       const char **why) {
    memset(ev, 0, sizeof *ev);
    if (!obj || obj->type != MSGPACK_OBJECT_MAP) return *why = "event is not a map", -1;
    const msgpack_object *id = codec_map_get(obj, "event_id"),
                         *ent = codec_map_get(obj, "entity_id"),
                         *ver = codec_map_get(obj, "version"), *top = codec_map_get(obj, "topic"),
                         *pos = codec_map_get(obj, "position"),
                         *ts = codec_map_get(obj, "timestamp"),
                         *pay = codec_map_get(obj, "payload"),
                         *meta = codec_map_get(obj, "metadata");
    if (!id || id->type != MSGPACK_OBJECT_BIN || id->via.bin.size != 16)
        return *why = "event_id missing or not bin(16)", -1;
    if (!ent || ent->type != MSGPACK_OBJECT_STR ||
        !codec_valid_name(ent->via.str.ptr, ent->via.str.size))
        return *why = "entity_id missing or invalid", -1;
    if (!top || top->type != MSGPACK_OBJECT_STR ||
        !codec_valid_name(top->via.str.ptr, top->via.str.size))
        return *why = "topic missing or invalid", -1;
    if (!ver || ver->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return *why = "version missing or not unsigned", -1;
    if (!pos || pos->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return *why = "position missing or not unsigned", -1;
    if (!ts || (ts->type != MSGPACK_OBJECT_POSITIVE_INTEGER &&
                ts->type != MSGPACK_OBJECT_NEGATIVE_INTEGER))
        return *why = "timestamp missing or not an integer", -1;
    if (!pay || pay->type != MSGPACK_OBJECT_BIN) return *why = "payload missing or not bin", -1;
    if (meta && meta->type != MSGPACK_OBJECT_MAP) return *why = "metadata not a map", -1;
    memcpy(ev->event_id, id->via.bin.ptr, 16);
    ev->entity_id = codec_zone_strdup(zone, ent->via.str.ptr, ent->via.str.size);
    ev->topic = codec_zone_strdup(zone, top->via.str.ptr, top->via.str.size);
    if (!ev->entity_id || !ev->topic) return *why = "out of memory", -1;
    ev->version = ver->via.u64;
    ev->position = pos->via.u64;
    ev->timestamp = ts->via.i64;
    ev->payload = (uint8_t *)pay->via.bin.ptr;
    ev->payload_len = pay->via.bin.size;
    if (meta && codec_repack(meta, zone, &ev->metadata, &ev->metadata_len) != 0)
        return *why = "out of memory", -1;
    ev->has_event_id = ev->has_version = 1;
    return 0;
}
