/* domain_fields.c: field tables, which map the members of a C struct to the keys of an attribute
 * map and back, and what is built on them: snapshot and restore for an entity whose state is
 * plain fields, and the apply function of an event type whose attributes are a struct.
 *
 * A table describes each member by offset and size, so the code reads and writes integers of
 * any width through memcpy, checking on decode that the value fits. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain_priv.h"

static const char *value_type_name(const evs_value_t *v) {
    switch (v->type) {
    case EVS_VAL_NIL:
        return "nil";
    case EVS_VAL_BOOL:
        return "a bool";
    case EVS_VAL_INT:
    case EVS_VAL_UINT:
        return "an integer";
    case EVS_VAL_FLOAT:
        return "a float";
    case EVS_VAL_STR:
        return "a string";
    case EVS_VAL_BIN:
        return "bytes";
    case EVS_VAL_ARRAY:
        return "an array";
    case EVS_VAL_MAP:
        return "a map";
    }
    return "unknown";
}

static const char *kind_name(evs_field_kind_t k) {
    switch (k) {
    case EVS_FIELD_BOOL:
        return "a bool";
    case EVS_FIELD_INT:
    case EVS_FIELD_UINT:
        return "an integer";
    case EVS_FIELD_FLOAT:
        return "a float";
    case EVS_FIELD_STR:
    case EVS_FIELD_STRREF:
        return "a string";
    case EVS_FIELD_STRUCT:
        return "a map";
    }
    return "unknown";
}

static bool int_size(size_t n) {
    return n == 1 || n == 2 || n == 4 || n == 8;
}

/* Whether the table entry f is well formed (its size matches its kind). */
static int check_field(const evs_field_t *f, evs_error_t *err) {
    bool ok;
    switch (f->kind) {
    case EVS_FIELD_BOOL:
        ok = f->size == sizeof(bool);
        break;
    case EVS_FIELD_INT:
    case EVS_FIELD_UINT:
        ok = int_size(f->size);
        break;
    case EVS_FIELD_FLOAT:
        ok = f->size == sizeof(float) || f->size == sizeof(double);
        break;
    case EVS_FIELD_STR:
        ok = f->size >= 1;
        break;
    case EVS_FIELD_STRREF:
        ok = f->size == sizeof(const char *);
        break;
    case EVS_FIELD_STRUCT:
        ok = f->sub != NULL;
        break;
    default:
        ok = false;
    }
    if (ok && f->cap) /* the count member must hold cap */
        ok = int_size(f->count_size) &&
             (f->count_size == 8 || (uint64_t)f->cap < (UINT64_C(1) << (f->count_size * 8)));
    if (!ok)
        return dom_fail(err, EVS_EINVAL, "field table: the field %s has kind %d and size %zu",
                        f->key, (int)f->kind, f->size);
    return 0;
}

static uint64_t load_uint(const void *p, size_t size) {
    switch (size) {
    case 1:
        return *(const uint8_t *)p;
    case 2: {
        uint16_t v;
        memcpy(&v, p, 2);
        return v;
    }
    case 4: {
        uint32_t v;
        memcpy(&v, p, 4);
        return v;
    }
    default: {
        uint64_t v;
        memcpy(&v, p, 8);
        return v;
    }
    }
}

static int64_t load_int(const void *p, size_t size) {
    switch (size) {
    case 1:
        return *(const int8_t *)p;
    case 2: {
        int16_t v;
        memcpy(&v, p, 2);
        return v;
    }
    case 4: {
        int32_t v;
        memcpy(&v, p, 4);
        return v;
    }
    default: {
        int64_t v;
        memcpy(&v, p, 8);
        return v;
    }
    }
}

static void store_uint(void *p, size_t size, uint64_t u) {
    switch (size) {
    case 1:
        *(uint8_t *)p = (uint8_t)u;
        break;
    case 2: {
        uint16_t v = (uint16_t)u;
        memcpy(p, &v, 2);
        break;
    }
    case 4: {
        uint32_t v = (uint32_t)u;
        memcpy(p, &v, 4);
        break;
    }
    default:
        memcpy(p, &u, 8);
    }
}

static void store_int(void *p, size_t size, int64_t i) {
    switch (size) {
    case 1:
        *(int8_t *)p = (int8_t)i;
        break;
    case 2: {
        int16_t v = (int16_t)i;
        memcpy(p, &v, 2);
        break;
    }
    case 4: {
        int32_t v = (int32_t)i;
        memcpy(p, &v, 4);
        break;
    }
    default:
        memcpy(p, &i, 8);
    }
}

/* ---------------------------------------------------------------- encode */

/* One element (or a plain field) at p into slot v. */
static int encode_one(const evs_field_t *f, const char *p, evs_value_t *v, evs_error_t *err) {
    switch (f->kind) {
    case EVS_FIELD_BOOL:
        evs_value_set_bool(v, *(const bool *)p);
        return 0;
    case EVS_FIELD_INT:
        evs_value_set_int(v, load_int(p, f->size));
        return 0;
    case EVS_FIELD_UINT: {
        uint64_t u = load_uint(p, f->size);
        if (u > INT64_MAX)
            evs_value_set_uint(v, u);
        else
            evs_value_set_int(v, (int64_t)u);
        return 0;
    }
    case EVS_FIELD_FLOAT:
        if (f->size == sizeof(float)) {
            float x;
            memcpy(&x, p, sizeof x);
            evs_value_set_float(v, x);
        } else {
            double x;
            memcpy(&x, p, sizeof x);
            evs_value_set_float(v, x);
        }
        return 0;
    case EVS_FIELD_STR: {
        const char *end = memchr(p, 0, f->size);
        if (!end)
            return dom_fail(err, EVS_EINVAL, "the field %s (char[%zu]) has no NUL", f->key,
                            f->size);
        if (evs_value_set_strn(v, p, (size_t)(end - p)) < 0)
            return dom_fail(err, EVS_ENOMEM, "out of memory");
        return 0;
    }
    case EVS_FIELD_STRREF: {
        const char *s;
        memcpy(&s, p, sizeof s);
        if (!s) {
            evs_value_set_nil(v);
            return 0;
        }
        if (evs_value_set_str(v, s) < 0) return dom_fail(err, EVS_ENOMEM, "out of memory");
        return 0;
    }
    case EVS_FIELD_STRUCT:
        evs_value_set_map(v);
        return evs_fields_encode(f->sub, p, v, err);
    }
    return dom_fail(err, EVS_EINVAL, "field table: bad kind for %s", f->key);
}

EVS_API int evs_fields_encode(const evs_field_t *fields, const void *obj, evs_value_t *map,
                              evs_error_t *err) {
    dom_ok(err);
    if (!fields || !obj || !map || map->type != EVS_VAL_MAP)
        return dom_fail(err, EVS_EINVAL, "encoding fields needs a table, a struct and a map");
    const char *base = obj;
    for (const evs_field_t *f = fields; f->key; f++) {
        int r = check_field(f, err);
        if (r < 0) return r;
        evs_value_t *slot = evs_map_put(map, f->key);
        if (!slot) return dom_fail(err, EVS_ENOMEM, "out of memory");
        if (!f->cap) {
            if ((r = encode_one(f, base + f->offset, slot, err)) < 0) return r;
            continue;
        }
        uint64_t n = load_uint(base + f->count_offset, f->count_size);
        if (n > f->cap)
            return dom_fail(err, EVS_EINVAL, "the field %s counts %" PRIu64 " elements of %zu",
                            f->key, n, f->cap);
        evs_value_set_array(slot);
        for (uint64_t i = 0; i < n; i++) {
            evs_value_t *item = evs_array_push(slot);
            if (!item) return dom_fail(err, EVS_ENOMEM, "out of memory");
            if ((r = encode_one(f, base + f->offset + i * f->size, item, err)) < 0) return r;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- decode */

/* Value v into one element (or a plain field) at p. what names it in messages ("amount",
 * "tags[2]"). */
static int decode_one(const evs_field_t *f, const evs_value_t *v, char *p, const char *what,
                      evs_error_t *err) {
    switch (f->kind) {
    case EVS_FIELD_BOOL:
        if (v->type != EVS_VAL_BOOL) break;
        *(bool *)p = v->via.b;
        return 0;
    case EVS_FIELD_INT: {
        if (v->type != EVS_VAL_INT && v->type != EVS_VAL_UINT) break;
        int64_t min = f->size == 8 ? INT64_MIN : -(INT64_C(1) << (f->size * 8 - 1));
        int64_t max = f->size == 8 ? INT64_MAX : (INT64_C(1) << (f->size * 8 - 1)) - 1;
        if (v->type == EVS_VAL_UINT || v->via.i < min || v->via.i > max)
            return dom_fail(err, EVS_EINVAL, "attribute %s does not fit a %zu-byte integer", what,
                            f->size);
        store_int(p, f->size, v->via.i);
        return 0;
    }
    case EVS_FIELD_UINT: {
        if (v->type != EVS_VAL_INT && v->type != EVS_VAL_UINT) break;
        uint64_t max = f->size == 8 ? UINT64_MAX : (UINT64_C(1) << (f->size * 8)) - 1;
        if (v->type == EVS_VAL_INT && v->via.i < 0)
            return dom_fail(err, EVS_EINVAL, "attribute %s is negative", what);
        uint64_t u = v->type == EVS_VAL_INT ? (uint64_t)v->via.i : v->via.u;
        if (u > max)
            return dom_fail(err, EVS_EINVAL, "attribute %s does not fit a %zu-byte integer", what,
                            f->size);
        store_uint(p, f->size, u);
        return 0;
    }
    case EVS_FIELD_FLOAT: {
        double x;
        if (v->type == EVS_VAL_FLOAT)
            x = v->via.f;
        else if (v->type == EVS_VAL_INT)
            x = (double)v->via.i;
        else if (v->type == EVS_VAL_UINT)
            x = (double)v->via.u;
        else
            break;
        if (f->size == sizeof(float)) {
            float y = (float)x;
            memcpy(p, &y, sizeof y);
        } else {
            memcpy(p, &x, sizeof x);
        }
        return 0;
    }
    case EVS_FIELD_STR:
        if (v->type != EVS_VAL_STR) break;
        if (v->via.str.len >= f->size || memchr(v->via.str.ptr, 0, v->via.str.len))
            return dom_fail(err, EVS_EINVAL,
                            "attribute %s is a string of %zu bytes; the field holds at most %zu "
                            "(and no NUL)",
                            what, v->via.str.len, f->size - 1);
        memcpy(p, v->via.str.ptr, v->via.str.len);
        p[v->via.str.len] = 0;
        return 0;
    case EVS_FIELD_STRREF: {
        const char *s;
        if (v->type == EVS_VAL_NIL)
            s = NULL;
        else if (v->type == EVS_VAL_STR)
            s = v->via.str.ptr;
        else
            break;
        memcpy(p, &s, sizeof s);
        return 0;
    }
    case EVS_FIELD_STRUCT: {
        if (v->type != EVS_VAL_MAP) break;
        int r = evs_fields_decode(f->sub, v, p, err);
        if (r < 0) {
            char why[sizeof err->str];
            snprintf(why, sizeof why, "%s", err ? err->str : "");
            return dom_fail(err, r, "in %s, %s", what, why);
        }
        return 0;
    }
    }
    return dom_fail(err, EVS_EINVAL, "attribute %s is %s, not %s", what, value_type_name(v),
                    kind_name(f->kind));
}

EVS_API int evs_fields_decode(const evs_field_t *fields, const evs_value_t *map, void *obj,
                              evs_error_t *err) {
    dom_ok(err);
    if (!fields || !obj || !map || map->type != EVS_VAL_MAP)
        return dom_fail(err, EVS_EINVAL, "decoding fields needs a table, a map and a struct");
    char *base = obj;
    for (const evs_field_t *f = fields; f->key; f++) {
        int r = check_field(f, err);
        if (r < 0) return r;
        const evs_value_t *v = evs_map_get(map, f->key);
        if (!v) return dom_fail(err, EVS_EINVAL, "attribute %s is missing", f->key);
        if (!f->cap) {
            if ((r = decode_one(f, v, base + f->offset, f->key, err)) < 0) return r;
            continue;
        }
        if (v->type != EVS_VAL_ARRAY)
            return dom_fail(err, EVS_EINVAL, "attribute %s is %s, not an array", f->key,
                            value_type_name(v));
        size_t n = v->via.array.n;
        if (n > f->cap)
            return dom_fail(err, EVS_EINVAL,
                            "attribute %s has %zu elements; the field holds at most %zu", f->key, n,
                            f->cap);
        for (size_t i = 0; i < n; i++) {
            char what[300];
            snprintf(what, sizeof what, "%s[%zu]", f->key, i);
            if ((r = decode_one(f, &v->via.array.items[i], base + f->offset + i * f->size, what,
                                err)) < 0)
                return r;
        }
        store_uint(base + f->count_offset, f->count_size, n);
    }
    return 0;
}

/* ---------------------------------------------------------------- entities and events */

/* A table fit for an entity's state: no borrowed strings (a restored entity outlives the
 * state it came from), at any depth. */
static const evs_field_t *borrowed_field(const evs_field_t *fields, int depth) {
    for (const evs_field_t *f = fields; f->key; f++) {
        if (f->kind == EVS_FIELD_STRREF) return f;
        if (f->kind == EVS_FIELD_STRUCT && f->sub && depth < 8) {
            const evs_field_t *b = borrowed_field(f->sub, depth + 1);
            if (b) return b;
        }
    }
    return NULL;
}

static int entity_fields(const evs_entity_t *e, const evs_field_t **out, evs_error_t *err) {
    if (!e || !e->type || !e->type->fields)
        return dom_fail(err, EVS_EINVAL, "the entity type %s has no field table",
                        e && e->type ? e->type->topic : "(none)");
    const evs_field_t *b = borrowed_field(e->type->fields, 0);
    if (b)
        return dom_fail(err, EVS_EINVAL,
                        "field table of %s: the field %s is a borrowed string (use char[N] in "
                        "an entity)",
                        e->type->topic, b->key);
    for (const evs_field_t *f = e->type->fields; f->key; f++)
        if (f->offset < sizeof(evs_entity_t))
            return dom_fail(err, EVS_EINVAL,
                            "field table of %s: the field %s is inside the evs_entity_t base",
                            e->type->topic, f->key);
    *out = e->type->fields;
    return 0;
}

EVS_API int evs_fields_snapshot(const evs_entity_t *e, evs_value_t *state, evs_error_t *err) {
    const evs_field_t *fields;
    int r = entity_fields(e, &fields, err);
    return r < 0 ? r : evs_fields_encode(fields, e, state, err);
}

EVS_API int evs_fields_restore(evs_entity_t *e, const evs_value_t *state, evs_error_t *err) {
    const evs_field_t *fields;
    int r = entity_fields(e, &fields, err);
    if (r < 0) return r;
    if ((r = evs_fields_decode(fields, state, e, err)) < 0) {
        char why[sizeof err->str];
        snprintf(why, sizeof why, "%s", err ? err->str : "");
        return dom_fail(err, r, "the snapshot state of %s: %s", e->type->topic, why);
    }
    return 0;
}

EVS_API int evs_apply_fields(evs_entity_t *e, const evs_domain_event_t *ev, evs_error_t *err) {
    dom_ok(err);
    if (!e || !ev || !ev->type) return dom_fail(err, EVS_EINVAL, "applying needs an event");
    const evs_event_type_t *t = ev->type;
    void *attrs = NULL;
    if (t->fields) {
        if (!t->attrs_size)
            return dom_fail(err, EVS_EINVAL, "the event type %s has fields but no attrs_size",
                            t->topic);
        if (!(attrs = calloc(1, t->attrs_size)))
            return dom_fail(err, EVS_ENOMEM, "out of memory applying %s", t->topic);
        int r = ev->attrs ? evs_fields_decode(t->fields, ev->attrs, attrs, err)
                          : dom_fail(err, EVS_EINVAL, "the event has no attributes");
        if (r < 0) {
            free(attrs);
            char why[sizeof err->str];
            snprintf(why, sizeof why, "%s", err ? err->str : "");
            return dom_fail(err, r, "%s of %s: %s", t->topic, e->id, why);
        }
    }
    if (t->on) t->on(e, attrs);
    free(attrs);
    return 0;
}
