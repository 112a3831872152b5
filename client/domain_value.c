/* domain_value.c: attribute trees (evs_value_t) and their canonical msgpack form.
 *
 * Maps keep their members sorted by key bytes at all times, so encoding walks them in order
 * and equal trees always give the same bytes: that is what makes a payload canonical. Decoding
 * runs codec_prescan on the untrusted bytes before msgpack-c sees them, then copies the object
 * tree into evs_value_t nodes that own their memory. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../proto/codec.h"
#include "domain_priv.h"

/* ---------------------------------------------------------------- errors and ids */

int dom_fail(evs_error_t *err, int code, const char *fmt, ...) {
    if (!err) return code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->str, sizeof err->str, fmt, ap);
    va_end(ap);
    err->code = code;
    return code;
}

void dom_ok(evs_error_t *err) {
    if (!err) return;
    err->code = 0;
    err->str[0] = '\0';
}

/* evs_uuid_generate fails only where getrandom(2) does not exist (Linux before 3.17), which
 * evstore does not support; a repeated id would silently join two entities, so rather than
 * return one this stops the process. */
EVS_API void evs_random_id(char out[37]) {
    uint8_t id[16];
    if (evs_uuid_generate(id, 1) != 0) abort();
    evs_uuid_format(id, out);
}

EVS_API void evs_ordered_id(char out[37]) {
    uint8_t id[16];
    if (evs_uuid_generate_v7(id, 1) != 0) abort();
    evs_uuid_format(id, out);
}

/* ---------------------------------------------------------------- building */

void dom_value_clear(evs_value_t *v) {
    if (!v) return;
    switch (v->type) {
    case EVS_VAL_STR:
        free(v->via.str.ptr);
        break;
    case EVS_VAL_BIN:
        free(v->via.bin.ptr);
        break;
    case EVS_VAL_ARRAY:
        for (size_t i = 0; i < v->via.array.n; i++)
            dom_value_clear(&v->via.array.items[i]);
        free(v->via.array.items);
        break;
    case EVS_VAL_MAP:
        for (size_t i = 0; i < v->via.map.n; i++) {
            free(v->via.map.items[i].key);
            dom_value_clear(&v->via.map.items[i].value);
        }
        free(v->via.map.items);
        break;
    default:
        break;
    }
    memset(v, 0, sizeof *v);
    v->type = EVS_VAL_NIL;
}

EVS_API evs_value_t *evs_map_new(void) {
    evs_value_t *v = calloc(1, sizeof *v);
    if (v) v->type = EVS_VAL_MAP;
    return v;
}

EVS_API void evs_value_free(evs_value_t *v) {
    if (!v) return;
    dom_value_clear(v);
    free(v);
}

EVS_API void evs_value_set_nil(evs_value_t *v) {
    dom_value_clear(v);
}

EVS_API void evs_value_set_bool(evs_value_t *v, bool b) {
    dom_value_clear(v);
    v->type = EVS_VAL_BOOL;
    v->via.b = b;
}

EVS_API void evs_value_set_int(evs_value_t *v, int64_t i) {
    dom_value_clear(v);
    v->type = EVS_VAL_INT;
    v->via.i = i;
}

/* Integers that fit int64_t are always EVS_VAL_INT, so that one number has one representation
 * in memory as on the wire. */
EVS_API void evs_value_set_uint(evs_value_t *v, uint64_t u) {
    dom_value_clear(v);
    if (u <= INT64_MAX) {
        v->type = EVS_VAL_INT;
        v->via.i = (int64_t)u;
    } else {
        v->type = EVS_VAL_UINT;
        v->via.u = u;
    }
}

EVS_API void evs_value_set_float(evs_value_t *v, double f) {
    dom_value_clear(v);
    v->type = EVS_VAL_FLOAT;
    v->via.f = f;
}

EVS_API int evs_value_set_strn(evs_value_t *v, const char *s, size_t len) {
    dom_value_clear(v);
    char *p = malloc(len + 1);
    if (!p) return EVS_ENOMEM;
    if (len) memcpy(p, s, len);
    p[len] = '\0';
    v->type = EVS_VAL_STR;
    v->via.str.ptr = p;
    v->via.str.len = len;
    return 0;
}

EVS_API int evs_value_set_str(evs_value_t *v, const char *s) {
    return evs_value_set_strn(v, s, strlen(s));
}

EVS_API int evs_value_set_bin(evs_value_t *v, const void *data, size_t len) {
    dom_value_clear(v);
    uint8_t *p = malloc(len ? len : 1);
    if (!p) return EVS_ENOMEM;
    if (len) memcpy(p, data, len);
    v->type = EVS_VAL_BIN;
    v->via.bin.ptr = p;
    v->via.bin.len = len;
    return 0;
}

EVS_API void evs_value_set_map(evs_value_t *v) {
    dom_value_clear(v);
    v->type = EVS_VAL_MAP;
}

EVS_API void evs_value_set_array(evs_value_t *v) {
    dom_value_clear(v);
    v->type = EVS_VAL_ARRAY;
}

/* Byte order of keys, shorter first on a common prefix: the canonical order. */
static int key_cmp(const char *a, size_t alen, const char *b, size_t blen) {
    int r = memcmp(a, b, alen < blen ? alen : blen);
    if (r) return r;
    return alen < blen ? -1 : alen > blen;
}

/* Index of key in map, or (with *found false) where it would be inserted. */
static size_t map_find(const evs_value_t *map, const char *key, size_t klen, bool *found) {
    size_t lo = 0, hi = map->via.map.n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const evs_member_t *m = &map->via.map.items[mid];
        int r = key_cmp(m->key, m->key_len, key, klen);
        if (r == 0) {
            *found = true;
            return mid;
        }
        if (r < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

/* The slot of key (klen bytes) in map, made nil; NULL when out of memory. */
static evs_value_t *map_put_n(evs_value_t *map, const char *key, size_t klen) {
    bool found;
    size_t i = map_find(map, key, klen, &found);
    if (found) {
        dom_value_clear(&map->via.map.items[i].value);
        return &map->via.map.items[i].value;
    }
    if (map->via.map.n == map->via.map.cap) {
        size_t cap = map->via.map.cap ? map->via.map.cap * 2 : 4;
        evs_member_t *items = realloc(map->via.map.items, cap * sizeof *items);
        if (!items) return NULL;
        map->via.map.items = items;
        map->via.map.cap = cap;
    }
    char *k = malloc(klen + 1);
    if (!k) return NULL;
    memcpy(k, key, klen);
    k[klen] = '\0';
    evs_member_t *items = map->via.map.items;
    memmove(&items[i + 1], &items[i], (map->via.map.n - i) * sizeof *items);
    memset(&items[i], 0, sizeof items[i]);
    items[i].key = k;
    items[i].key_len = klen;
    items[i].value.type = EVS_VAL_NIL;
    map->via.map.n++;
    return &items[i].value;
}

EVS_API evs_value_t *evs_map_put(evs_value_t *map, const char *key) {
    if (!map || map->type != EVS_VAL_MAP || !key) return NULL;
    return map_put_n(map, key, strlen(key));
}

EVS_API evs_value_t *evs_array_push(evs_value_t *array) {
    if (!array || array->type != EVS_VAL_ARRAY) return NULL;
    if (array->via.array.n == array->via.array.cap) {
        size_t cap = array->via.array.cap ? array->via.array.cap * 2 : 4;
        evs_value_t *items = realloc(array->via.array.items, cap * sizeof *items);
        if (!items) return NULL;
        array->via.array.items = items;
        array->via.array.cap = cap;
    }
    evs_value_t *v = &array->via.array.items[array->via.array.n++];
    memset(v, 0, sizeof *v);
    v->type = EVS_VAL_NIL;
    return v;
}

static int put_check(evs_value_t *map, const char *key, evs_value_t **slot) {
    if (!map || map->type != EVS_VAL_MAP || !key) return EVS_EINVAL;
    *slot = evs_map_put(map, key);
    return *slot ? 0 : EVS_ENOMEM;
}

/* The setters of one scalar type: put the key, then set the slot. */
#define MAP_SETTER(name, ctype, set)                                                               \
    EVS_API int name(evs_value_t *map, const char *key, ctype x) {                                 \
        evs_value_t *v;                                                                            \
        int r = put_check(map, key, &v);                                                           \
        if (r == 0) set(v, x);                                                                     \
        return r;                                                                                  \
    }
MAP_SETTER(evs_map_set_bool, bool, evs_value_set_bool)
MAP_SETTER(evs_map_set_int, int64_t, evs_value_set_int)
MAP_SETTER(evs_map_set_uint, uint64_t, evs_value_set_uint)
MAP_SETTER(evs_map_set_float, double, evs_value_set_float)
#undef MAP_SETTER

EVS_API int evs_map_set_str(evs_value_t *map, const char *key, const char *s) {
    evs_value_t *v;
    int r = put_check(map, key, &v);
    if (r == 0 && !s) return EVS_EINVAL;
    return r ? r : evs_value_set_str(v, s);
}

EVS_API int evs_map_set_bin(evs_value_t *map, const char *key, const void *data, size_t len) {
    evs_value_t *v;
    int r = put_check(map, key, &v);
    return r ? r : evs_value_set_bin(v, data, len);
}

/* ---------------------------------------------------------------- reading */

EVS_API const evs_value_t *evs_map_get(const evs_value_t *map, const char *key) {
    if (!map || map->type != EVS_VAL_MAP || !key) return NULL;
    bool found;
    size_t i = map_find(map, key, strlen(key), &found);
    return found ? &map->via.map.items[i].value : NULL;
}

EVS_API int evs_map_get_bool(const evs_value_t *map, const char *key, bool *out) {
    const evs_value_t *v = evs_map_get(map, key);
    if (!v) return EVS_ENOT_FOUND;
    if (v->type != EVS_VAL_BOOL) return EVS_EINVAL;
    *out = v->via.b;
    return 0;
}

EVS_API int evs_map_get_int(const evs_value_t *map, const char *key, int64_t *out) {
    const evs_value_t *v = evs_map_get(map, key);
    if (!v) return EVS_ENOT_FOUND;
    if (v->type != EVS_VAL_INT) return EVS_EINVAL; /* EVS_VAL_UINT is always > INT64_MAX */
    *out = v->via.i;
    return 0;
}

EVS_API int evs_map_get_uint(const evs_value_t *map, const char *key, uint64_t *out) {
    const evs_value_t *v = evs_map_get(map, key);
    if (!v) return EVS_ENOT_FOUND;
    if (v->type == EVS_VAL_UINT)
        *out = v->via.u;
    else if (v->type == EVS_VAL_INT && v->via.i >= 0)
        *out = (uint64_t)v->via.i;
    else
        return EVS_EINVAL;
    return 0;
}

EVS_API int evs_map_get_float(const evs_value_t *map, const char *key, double *out) {
    const evs_value_t *v = evs_map_get(map, key);
    if (!v) return EVS_ENOT_FOUND;
    if (v->type == EVS_VAL_FLOAT)
        *out = v->via.f;
    else if (v->type == EVS_VAL_INT)
        *out = (double)v->via.i;
    else if (v->type == EVS_VAL_UINT)
        *out = (double)v->via.u;
    else
        return EVS_EINVAL;
    return 0;
}

EVS_API int evs_map_get_str(const evs_value_t *map, const char *key, const char **out) {
    const evs_value_t *v = evs_map_get(map, key);
    if (!v) return EVS_ENOT_FOUND;
    if (v->type != EVS_VAL_STR) return EVS_EINVAL;
    *out = v->via.str.ptr;
    return 0;
}

EVS_API int evs_map_get_bin(const evs_value_t *map, const char *key, const uint8_t **out,
                            size_t *len) {
    const evs_value_t *v = evs_map_get(map, key);
    if (!v) return EVS_ENOT_FOUND;
    if (v->type != EVS_VAL_BIN) return EVS_EINVAL;
    *out = v->via.bin.ptr;
    *len = v->via.bin.len;
    return 0;
}

EVS_API int evs_map_del(evs_value_t *map, const char *key) {
    if (!map || map->type != EVS_VAL_MAP || !key) return EVS_ENOT_FOUND;
    bool found;
    size_t i = map_find(map, key, strlen(key), &found);
    if (!found) return EVS_ENOT_FOUND;
    evs_member_t *items = map->via.map.items;
    free(items[i].key);
    dom_value_clear(&items[i].value);
    memmove(&items[i], &items[i + 1], (map->via.map.n - i - 1) * sizeof *items);
    map->via.map.n--;
    return 0;
}

/* Moves the value (not a copy) under its new key, keeping the members sorted. */
EVS_API int evs_map_rename(evs_value_t *map, const char *from, const char *to) {
    if (!map || map->type != EVS_VAL_MAP || !from || !to) return EVS_ENOT_FOUND;
    bool found;
    size_t i = map_find(map, from, strlen(from), &found);
    if (!found) return EVS_ENOT_FOUND;
    if (strcmp(from, to) == 0) return 0;
    evs_value_t moved = map->via.map.items[i].value;
    map->via.map.items[i].value.type = EVS_VAL_NIL; /* the slot no longer owns it */
    evs_value_t *slot = evs_map_put(map, to);
    if (!slot) {
        map->via.map.items[map_find(map, from, strlen(from), &found)].value = moved;
        return EVS_ENOMEM;
    }
    *slot = moved;
    return evs_map_del(map, from);
}

/* ---------------------------------------------------------------- copying and comparing */

static int value_copy(evs_value_t *dst, const evs_value_t *src) {
    memset(dst, 0, sizeof *dst);
    switch (src->type) {
    case EVS_VAL_STR:
        return evs_value_set_strn(dst, src->via.str.ptr, src->via.str.len);
    case EVS_VAL_BIN:
        return evs_value_set_bin(dst, src->via.bin.ptr, src->via.bin.len);
    case EVS_VAL_ARRAY:
        dst->type = EVS_VAL_ARRAY;
        for (size_t i = 0; i < src->via.array.n; i++) {
            evs_value_t *slot = evs_array_push(dst);
            if (!slot || value_copy(slot, &src->via.array.items[i]) < 0) {
                dom_value_clear(dst);
                return EVS_ENOMEM;
            }
        }
        return 0;
    case EVS_VAL_MAP:
        dst->type = EVS_VAL_MAP;
        for (size_t i = 0; i < src->via.map.n; i++) {
            const evs_member_t *m = &src->via.map.items[i];
            evs_value_t *slot = map_put_n(dst, m->key, m->key_len);
            if (!slot || value_copy(slot, &m->value) < 0) {
                dom_value_clear(dst);
                return EVS_ENOMEM;
            }
        }
        return 0;
    default:
        *dst = *src;
        return 0;
    }
}

EVS_API evs_value_t *evs_value_dup(const evs_value_t *v) {
    if (!v) return NULL;
    evs_value_t *d = malloc(sizeof *d);
    if (!d) return NULL;
    if (value_copy(d, v) < 0) {
        free(d);
        return NULL;
    }
    return d;
}

EVS_API bool evs_value_equal(const evs_value_t *a, const evs_value_t *b) {
    if (!a || !b) return a == b;
    if (a->type != b->type) return false;
    switch (a->type) {
    case EVS_VAL_NIL:
        return true;
    case EVS_VAL_BOOL:
        return a->via.b == b->via.b;
    case EVS_VAL_INT:
        return a->via.i == b->via.i;
    case EVS_VAL_UINT:
        return a->via.u == b->via.u;
    case EVS_VAL_FLOAT:
        return memcmp(&a->via.f, &b->via.f, sizeof a->via.f) == 0;
    case EVS_VAL_STR:
        return a->via.str.len == b->via.str.len &&
               memcmp(a->via.str.ptr, b->via.str.ptr, a->via.str.len) == 0;
    case EVS_VAL_BIN:
        return a->via.bin.len == b->via.bin.len &&
               (a->via.bin.len == 0 || memcmp(a->via.bin.ptr, b->via.bin.ptr, a->via.bin.len) == 0);
    case EVS_VAL_ARRAY:
        if (a->via.array.n != b->via.array.n) return false;
        for (size_t i = 0; i < a->via.array.n; i++)
            if (!evs_value_equal(&a->via.array.items[i], &b->via.array.items[i])) return false;
        return true;
    case EVS_VAL_MAP:
        if (a->via.map.n != b->via.map.n) return false;
        for (size_t i = 0; i < a->via.map.n; i++) {
            const evs_member_t *x = &a->via.map.items[i], *y = &b->via.map.items[i];
            if (key_cmp(x->key, x->key_len, y->key, y->key_len) != 0) return false;
            if (!evs_value_equal(&x->value, &y->value)) return false;
        }
        return true;
    }
    return false;
}

/* ---------------------------------------------------------------- encoding */

static void pack_value(msgpack_packer *pk, const evs_value_t *v) {
    switch (v->type) {
    case EVS_VAL_NIL:
        msgpack_pack_nil(pk);
        break;
    case EVS_VAL_BOOL:
        if (v->via.b)
            msgpack_pack_true(pk);
        else
            msgpack_pack_false(pk);
        break;
    case EVS_VAL_INT: /* msgpack-c picks the shortest form */
        msgpack_pack_int64(pk, v->via.i);
        break;
    case EVS_VAL_UINT:
        msgpack_pack_uint64(pk, v->via.u);
        break;
    case EVS_VAL_FLOAT:
        msgpack_pack_double(pk, v->via.f);
        break;
    case EVS_VAL_STR:
        msgpack_pack_str(pk, v->via.str.len);
        msgpack_pack_str_body(pk, v->via.str.ptr, v->via.str.len);
        break;
    case EVS_VAL_BIN:
        codec_pack_bin(pk, v->via.bin.ptr, v->via.bin.len);
        break;
    case EVS_VAL_ARRAY:
        msgpack_pack_array(pk, v->via.array.n);
        for (size_t i = 0; i < v->via.array.n; i++)
            pack_value(pk, &v->via.array.items[i]);
        break;
    case EVS_VAL_MAP:
        msgpack_pack_map(pk, v->via.map.n);
        for (size_t i = 0; i < v->via.map.n; i++) {
            const evs_member_t *m = &v->via.map.items[i];
            msgpack_pack_str(pk, m->key_len);
            msgpack_pack_str_body(pk, m->key, m->key_len);
            pack_value(pk, &m->value);
        }
        break;
    }
}

EVS_API int evs_value_encode(const evs_value_t *v, uint8_t **out, size_t *len) {
    *out = NULL;
    *len = 0;
    if (!v) return EVS_EINVAL;
    codec_buf_t b;
    msgpack_packer pk;
    codec_buf_init(&b);
    codec_packer_init(&pk, &b);
    pack_value(&pk, v);
    if (b.failed || !b.data) {
        codec_buf_free(&b);
        return EVS_ENOMEM;
    }
    *out = b.data; /* the buffer's bytes become the caller's */
    *len = b.len;
    return 0;
}

/* ---------------------------------------------------------------- decoding */

static int from_object(evs_value_t *dst, const msgpack_object *o, evs_error_t *err) {
    memset(dst, 0, sizeof *dst);
    dst->type = EVS_VAL_NIL;
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        return 0;
    case MSGPACK_OBJECT_BOOLEAN:
        evs_value_set_bool(dst, o->via.boolean);
        return 0;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        evs_value_set_uint(dst, o->via.u64);
        return 0;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        evs_value_set_int(dst, o->via.i64);
        return 0;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        evs_value_set_float(dst, o->via.f64);
        return 0;
    case MSGPACK_OBJECT_STR:
        if (evs_value_set_strn(dst, o->via.str.ptr, o->via.str.size) < 0) goto oom;
        return 0;
    case MSGPACK_OBJECT_BIN:
        if (evs_value_set_bin(dst, o->via.bin.ptr, o->via.bin.size) < 0) goto oom;
        return 0;
    case MSGPACK_OBJECT_ARRAY:
        dst->type = EVS_VAL_ARRAY;
        if (o->via.array.size) {
            dst->via.array.items = calloc(o->via.array.size, sizeof *dst->via.array.items);
            if (!dst->via.array.items) goto oom;
            dst->via.array.cap = o->via.array.size;
        }
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            int r = from_object(&dst->via.array.items[i], &o->via.array.ptr[i], err);
            dst->via.array.n = i + 1;
            if (r < 0) {
                dom_value_clear(dst);
                return r;
            }
        }
        return 0;
    case MSGPACK_OBJECT_MAP:
        dst->type = EVS_VAL_MAP;
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            const msgpack_object_kv *kv = &o->via.map.ptr[i];
            if (kv->key.type != MSGPACK_OBJECT_STR) {
                dom_value_clear(dst);
                return dom_fail(err, EVS_EINVAL, "a map key is not a string");
            }
            const char *k = kv->key.via.str.ptr;
            size_t klen = kv->key.via.str.size;
            bool found;
            if (memchr(k, 0, klen)) {
                dom_value_clear(dst);
                return dom_fail(err, EVS_EINVAL, "a map key contains a NUL byte");
            }
            map_find(dst, k, klen, &found);
            if (found) {
                dom_value_clear(dst);
                return dom_fail(err, EVS_EINVAL, "the map key \"%.*s\" appears twice",
                                (int)(klen > 64 ? 64 : klen), k);
            }
            evs_value_t *slot = map_put_n(dst, k, klen);
            if (!slot) {
                dom_value_clear(dst);
                goto oom;
            }
            int r = from_object(slot, &kv->val, err);
            if (r < 0) {
                dom_value_clear(dst);
                return r;
            }
        }
        return 0;
    default:
        return dom_fail(err, EVS_EINVAL, "msgpack ext values are not supported in attributes");
    }
oom:
    return dom_fail(err, EVS_ENOMEM, "out of memory decoding attributes");
}

EVS_API int evs_value_decode(const uint8_t *buf, size_t len, evs_value_t **out, evs_error_t *err) {
    *out = NULL;
    dom_ok(err);
    const char *why = NULL;
    if (!buf || codec_prescan(buf, len, CODEC_MAX_DEPTH, &why) < 0)
        return dom_fail(err, EVS_EINVAL, "the payload is not one msgpack map: %s",
                        why ? why : "no bytes");
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    msgpack_unpack_return ur = msgpack_unpack_next(&u, (const char *)buf, len, &off);
    if (ur == MSGPACK_UNPACK_NOMEM_ERROR) {
        msgpack_unpacked_destroy(&u);
        return dom_fail(err, EVS_ENOMEM, "out of memory decoding attributes");
    }
    if (ur != MSGPACK_UNPACK_SUCCESS || off != len || u.data.type != MSGPACK_OBJECT_MAP) {
        msgpack_unpacked_destroy(&u);
        return dom_fail(err, EVS_EINVAL, "the payload is not one msgpack map");
    }
    evs_value_t *v = malloc(sizeof *v);
    if (!v) {
        msgpack_unpacked_destroy(&u);
        return dom_fail(err, EVS_ENOMEM, "out of memory decoding attributes");
    }
    int r = from_object(v, &u.data, err);
    msgpack_unpacked_destroy(&u);
    if (r < 0) {
        free(v);
        return r;
    }
    *out = v;
    return 0;
}
