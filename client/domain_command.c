/* domain_command.c: the short forms of the domain layer: commands that encode an attribute
 * struct and trigger in one call, the checked entity cast, the public error setter, and getters
 * that return a value (including arrays). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain_priv.h"

EVS_API int evs_error_set(evs_error_t *err, int code, const char *fmt, ...) {
    if (!err) return code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->str, sizeof err->str, fmt, ap);
    va_end(ap);
    err->code = code;
    return code;
}

EVS_API void *evs_entity_cast(const evs_entity_t *e, size_t size) {
    if (!e || !e->type || e->type->size != size) return NULL;
    return (void *)e;
}

EVS_API int evs_command(evs_entity_t *e, const evs_event_type_t *type, const void *attrs,
                        evs_error_t *err) {
    dom_ok(err);
    if (!e || !type)
        return dom_fail(err, EVS_EINVAL, "a command needs an entity and an event type");
    evs_value_t *map = NULL;
    if (type->fields) {
        if (!attrs)
            return dom_fail(err, EVS_EINVAL, "the command %s needs its attributes", type->topic);
        if (!(map = evs_map_new())) return dom_fail(err, EVS_ENOMEM, "out of memory");
        int r = evs_fields_encode(type->fields, attrs, map, err);
        if (r < 0) {
            evs_value_free(map);
            char why[sizeof err->str];
            snprintf(why, sizeof why, "%s", err ? err->str : "");
            return dom_fail(err, r, "%s: %s", type->topic, why);
        }
    } else if (attrs) {
        return dom_fail(err, EVS_EINVAL, "the event type %s has no field table for attributes",
                        type->topic);
    }
    return evs_entity_trigger(e, type, map, err); /* takes map in every case */
}

EVS_API void *evs_entity_start(const evs_registry_t *reg, const evs_entity_type_t *type,
                               const char *id, const evs_event_type_t *first, const void *attrs,
                               evs_error_t *err) {
    dom_ok(err);
    evs_entity_t *e = evs_entity_new(reg, type, id);
    if (!e) {
        dom_fail(err, EVS_EINVAL, "cannot make entity %s of %s (an id of 1 to 255 bytes of UTF-8)",
                 id ? id : "(null)", type && type->topic ? type->topic : "(no type)");
        return NULL;
    }
    if (evs_command(e, first, attrs, err) < 0) {
        evs_entity_free(e);
        return NULL;
    }
    return e;
}

/* ---------------------------------------------------------------- getters */

EVS_API bool evs_attr_bool(const evs_value_t *map, const char *key, bool def) {
    bool v;
    return evs_map_get_bool(map, key, &v) == 0 ? v : def;
}

EVS_API int64_t evs_attr_int(const evs_value_t *map, const char *key, int64_t def) {
    int64_t v;
    return evs_map_get_int(map, key, &v) == 0 ? v : def;
}

EVS_API double evs_attr_float(const evs_value_t *map, const char *key, double def) {
    double v;
    return evs_map_get_float(map, key, &v) == 0 ? v : def;
}

EVS_API const char *evs_attr_str(const evs_value_t *map, const char *key, const char *def) {
    const char *v;
    return evs_map_get_str(map, key, &v) == 0 ? v : def;
}

EVS_API int evs_map_get_array(const evs_value_t *map, const char *key, const evs_value_t **items,
                              size_t *n) {
    *items = NULL;
    *n = 0;
    const evs_value_t *v = evs_map_get(map, key);
    if (!v) return EVS_ENOT_FOUND;
    if (v->type != EVS_VAL_ARRAY) return EVS_EINVAL;
    *items = v->via.array.items;
    *n = v->via.array.n;
    return 0;
}

EVS_API int evs_map_get_int_array(const evs_value_t *map, const char *key, int64_t *out, size_t cap,
                                  size_t *n) {
    const evs_value_t *items;
    int r = evs_map_get_array(map, key, &items, n);
    if (r < 0) return r;
    if (*n > cap) return EVS_EINVAL;
    for (size_t i = 0; i < *n; i++) {
        if (items[i].type == EVS_VAL_INT)
            out[i] = items[i].via.i;
        else
            return EVS_EINVAL; /* a uint is above INT64_MAX: it does not fit either */
    }
    return 0;
}

EVS_API int evs_map_get_str_array(const evs_value_t *map, const char *key, const char **out,
                                  size_t cap, size_t *n) {
    const evs_value_t *items;
    int r = evs_map_get_array(map, key, &items, n);
    if (r < 0) return r;
    if (*n > cap) return EVS_EINVAL;
    for (size_t i = 0; i < *n; i++) {
        if (items[i].type != EVS_VAL_STR) return EVS_EINVAL;
        out[i] = items[i].via.str.ptr;
    }
    return 0;
}
