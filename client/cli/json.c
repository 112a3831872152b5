/* json.c: msgpack <-> JSON for the evstore CLI. */
#include "json.h"

#include <stdlib.h>
#include <string.h>

int json_to_msgpack(msgpack_packer *pk, const json_t *j) {
    int rc = 0;
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        const char *key;
        size_t klen;
        json_t *v;
        rc |= msgpack_pack_map(pk, (uint32_t)json_object_size(j));
        json_object_keylen_foreach((json_t *)j, key, klen, v) {
            rc |= msgpack_pack_str(pk, klen);
            rc |= msgpack_pack_str_body(pk, key, klen);
            rc |= json_to_msgpack(pk, v);
        }
        break;
    }
    case JSON_ARRAY:
        rc |= msgpack_pack_array(pk, (uint32_t)json_array_size(j));
        for (size_t i = 0; i < json_array_size(j); i++)
            rc |= json_to_msgpack(pk, json_array_get(j, i));
        break;
    case JSON_STRING:
        rc |= msgpack_pack_str(pk, json_string_length(j));
        rc |= msgpack_pack_str_body(pk, json_string_value(j), json_string_length(j));
        break;
    case JSON_INTEGER:
        rc |= msgpack_pack_int64(pk, json_integer_value(j));
        break;
    case JSON_REAL:
        rc |= msgpack_pack_double(pk, json_real_value(j));
        break;
    case JSON_TRUE:
        rc |= msgpack_pack_true(pk);
        break;
    case JSON_FALSE:
        rc |= msgpack_pack_false(pk);
        break;
    case JSON_NULL:
        rc |= msgpack_pack_nil(pk);
        break;
    }
    return rc ? -1 : 0;
}

json_t *json_base64(const uint8_t *data, size_t len) {
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t olen = 4 * ((len + 2) / 3);
    char *out = malloc(olen + 1), *p = out;
    if (!out) return NULL;
    size_t i = 0;
    for (; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8 | data[i + 2];
        *p++ = abc[v >> 18];
        *p++ = abc[(v >> 12) & 63];
        *p++ = abc[(v >> 6) & 63];
        *p++ = abc[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)data[i] << 16 | (i + 1 < len ? (uint32_t)data[i + 1] << 8 : 0);
        *p++ = abc[v >> 18];
        *p++ = abc[(v >> 12) & 63];
        *p++ = i + 1 < len ? abc[(v >> 6) & 63] : '=';
        *p++ = '=';
    }
    *p = '\0';
    json_t *s = json_stringn(out, olen);
    free(out);
    return s;
}

/* A map key as a JSON object key: strings as they are, anything else as its JSON text. */
static char *key_text(const msgpack_object *k, size_t *len) {
    if (k->type == MSGPACK_OBJECT_STR) {
        char *s = malloc(k->via.str.size + 1);
        if (!s) return NULL;
        memcpy(s, k->via.str.ptr, k->via.str.size);
        s[k->via.str.size] = '\0';
        *len = k->via.str.size;
        return s;
    }
    json_t *j = msgpack_to_json(k);
    if (!j) return NULL;
    char *s = json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT);
    json_decref(j);
    if (s) *len = strlen(s);
    return s;
}

json_t *msgpack_to_json(const msgpack_object *o) {
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        return json_null();
    case MSGPACK_OBJECT_BOOLEAN:
        return json_boolean(o->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (o->via.u64 <= INT64_MAX) return json_integer((json_int_t)o->via.u64);
        return json_real((double)o->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return json_integer(o->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return json_real(o->via.f64);
    case MSGPACK_OBJECT_STR: {
        json_t *s = json_stringn(o->via.str.ptr, o->via.str.size);
        /* Not UTF-8: shown as base64 rather than as invalid JSON. */
        return s ? s : json_base64((const uint8_t *)o->via.str.ptr, o->via.str.size);
    }
    case MSGPACK_OBJECT_BIN:
        return json_base64((const uint8_t *)o->via.bin.ptr, o->via.bin.size);
    case MSGPACK_OBJECT_EXT:
        return json_base64((const uint8_t *)o->via.ext.ptr, o->via.ext.size);
    case MSGPACK_OBJECT_ARRAY: {
        json_t *a = json_array();
        if (!a) return NULL;
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            json_t *v = msgpack_to_json(&o->via.array.ptr[i]);
            if (!v || json_array_append_new(a, v) < 0) {
                json_decref(a);
                return NULL;
            }
        }
        return a;
    }
    case MSGPACK_OBJECT_MAP: {
        json_t *m = json_object();
        if (!m) return NULL;
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            size_t klen = 0;
            char *k = key_text(&o->via.map.ptr[i].key, &klen);
            json_t *v = msgpack_to_json(&o->via.map.ptr[i].val);
            /* A key that is not UTF-8 is shown by its base64 text. */
            json_t *ks = k ? json_stringn(k, klen) : NULL;
            if (k && !ks) ks = json_base64((const uint8_t *)k, klen);
            int r = -1;
            if (ks && v)
                r = json_object_setn_new(m, json_string_value(ks), json_string_length(ks), v);
            else
                json_decref(v);
            json_decref(ks);
            free(k);
            if (r < 0) {
                json_decref(m);
                return NULL;
            }
        }
        return m;
    }
    }
    return json_null();
}

json_t *msgpack_map_bytes_to_json(const uint8_t *data, size_t len) {
    if (evs_msgpack_check(data, len, NULL) != 0) return NULL;
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    json_t *j = NULL;
    if (msgpack_unpack_next(&u, (const char *)data, len, &off) == MSGPACK_UNPACK_SUCCESS &&
        off == len && u.data.type == MSGPACK_OBJECT_MAP)
        j = msgpack_to_json(&u.data);
    msgpack_unpacked_destroy(&u);
    return j;
}

json_t *event_to_json(const evs_event_t *ev) {
    char uuid[37];
    evs_uuid_format(ev->event_id, uuid);
    json_t *o = json_object();
    if (!o) return NULL;
    json_object_set_new(o, "event_id", json_string(uuid));
    json_object_set_new(o, "position", json_integer((json_int_t)ev->position));
    json_object_set_new(o, "entity_id", json_string(ev->entity_id));
    json_object_set_new(o, "version", json_integer((json_int_t)ev->version));
    json_object_set_new(o, "topic", json_string(ev->topic));
    json_object_set_new(o, "timestamp", json_integer(ev->timestamp));
    json_t *p = msgpack_map_bytes_to_json(ev->payload, ev->payload_len);
    if (p)
        json_object_set_new(o, "payload", p);
    else
        json_object_set_new(o, "payload_base64", json_base64(ev->payload, ev->payload_len));
    if (ev->metadata) {
        json_t *m = msgpack_map_bytes_to_json(ev->metadata, ev->metadata_len);
        if (m)
            json_object_set_new(o, "metadata", m);
        else
            json_object_set_new(o, "metadata_base64", json_base64(ev->metadata, ev->metadata_len));
    }
    return o;
}
