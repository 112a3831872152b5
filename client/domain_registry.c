/* domain_registry.c: the registry of event types, entity types and upcasters, and the two
 * conversions between a domain event and the stored event the daemon keeps.
 *
 * A registry is filled once at start-up and then only read, so lookups are linear scans of
 * small arrays: no hashing, and the order of registration is kept for error messages. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../proto/codec.h"
#include "domain_priv.h"

typedef struct upcaster {
    char *topic;
    uint32_t from;
    evs_upcast_fn fn;
} upcaster_t;

struct evs_registry {
    const evs_event_type_t **events;
    size_t nevents, events_cap;
    const evs_entity_type_t **entities;
    size_t nentities, entities_cap;
    upcaster_t *upcasters;
    size_t nupcasters, upcasters_cap;
    char errstr[256]; /* why the last evs_registry_add_* failed */
};

/* Records why an evs_registry_add_* call failed; returns code. */
static int reg_fail(evs_registry_t *reg, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int reg_fail(evs_registry_t *reg, int code, const char *fmt, ...) {
    if (!reg) return code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reg->errstr, sizeof reg->errstr, fmt, ap);
    va_end(ap);
    return code;
}

EVS_API const char *evs_registry_errstr(const evs_registry_t *reg) {
    return reg ? reg->errstr : "";
}

/* A bigger copy of the array items (of *cap elements of size bytes), with *cap updated; NULL
 * when out of memory (items is then unchanged). */
static void *grow(void *items, size_t *cap, size_t size) {
    size_t ncap = *cap ? *cap * 2 : 8;
    void *p = realloc(items, ncap * size);
    if (p) *cap = ncap;
    return p;
}

/* Makes room for one more element in (items, n, cap) of reg; returns EVS_ENOMEM from the
 * caller. */
#define GROW_OR_FAIL(reg, items, n, cap)                                                           \
    do {                                                                                           \
        if ((n) == (cap)) {                                                                        \
            void *p_ = grow((void *)(items), &(cap), sizeof *(items));                             \
            if (!p_) return reg_fail(reg, EVS_ENOMEM, "out of memory");                            \
            (items) = p_;                                                                          \
        }                                                                                          \
    } while (0)

EVS_API evs_registry_t *evs_registry_new(void) {
    return calloc(1, sizeof(evs_registry_t));
}

EVS_API void evs_registry_free(evs_registry_t *reg) {
    if (!reg) return;
    for (size_t i = 0; i < reg->nupcasters; i++)
        free(reg->upcasters[i].topic);
    free(reg->upcasters);
    free(reg->events);
    free(reg->entities);
    free(reg);
}

/* Topics are names of the protocol (1..255 bytes of UTF-8) without '@', which separates a
 * snapshot topic from its schema version, and short enough for that suffix. */
static bool topic_ok(const char *topic) {
    if (!topic) return false;
    size_t len = strlen(topic);
    return len <= EVS_NAME_MAX - 11 && codec_valid_name(topic, len) && !strchr(topic, '@');
}

/* Checks a topic to register (what names it in messages: "event type", "entity type"):
 * 0, or EVS_EINVAL with the reason recorded in reg. */
static int check_new_topic(evs_registry_t *reg, const char *what, const char *topic) {
    if (!topic) return reg_fail(reg, EVS_EINVAL, "the %s has no topic", what);
    if (!topic_ok(topic))
        return reg_fail(reg, EVS_EINVAL,
                        "the %s topic \"%.64s\" is invalid: it must be UTF-8 of 1 to %d bytes "
                        "without '@'",
                        what, topic, EVS_NAME_MAX - 11);
    if (evs_registry_event_type(reg, topic))
        return reg_fail(reg, EVS_EINVAL, "the topic %s is already registered as an event type",
                        topic);
    if (evs_registry_entity_type(reg, topic))
        return reg_fail(reg, EVS_EINVAL, "the topic %s is already registered as an entity type",
                        topic);
    return 0;
}

EVS_API int evs_registry_add_event(evs_registry_t *reg, const evs_event_type_t *type) {
    if (!reg) return EVS_EINVAL;
    reg->errstr[0] = '\0';
    if (!type) return reg_fail(reg, EVS_EINVAL, "the event type is NULL");
    int r = check_new_topic(reg, "event type", type->topic);
    if (r < 0) return r;
    GROW_OR_FAIL(reg, reg->events, reg->nevents, reg->events_cap);
    reg->events[reg->nevents++] = type;
    return 0;
}

/* The most event types one entity type may list (a bound on a list missing its NULL). */
#define MAX_ENTITY_EVENTS 4096

EVS_API int evs_registry_add_entity(evs_registry_t *reg, const evs_entity_type_t *type) {
    if (!reg) return EVS_EINVAL;
    reg->errstr[0] = '\0';
    if (!type) return reg_fail(reg, EVS_EINVAL, "the entity type is NULL");
    int r = check_new_topic(reg, "entity type", type->topic);
    if (r < 0) return r;
    if (type->size < sizeof(evs_entity_t))
        return reg_fail(reg, EVS_EINVAL,
                        "the entity type %s has size %zu, below sizeof(evs_entity_t) (%zu): its "
                        "struct must start with an evs_entity_t",
                        type->topic, type->size, sizeof(evs_entity_t));
    if (!type->events || !type->events[0])
        return reg_fail(reg, EVS_EINVAL,
                        "the entity type %s lists no event types (set .events to a "
                        "NULL-terminated array of them)",
                        type->topic);
    for (size_t i = 0; type->events[i]; i++) {
        if (i == MAX_ENTITY_EVENTS)
            return reg_fail(reg, EVS_EINVAL,
                            "the entity type %s lists over %d event types (is its list missing "
                            "the NULL at its end?)",
                            type->topic, MAX_ENTITY_EVENTS);
        if (!topic_ok(type->events[i]->topic))
            return reg_fail(reg, EVS_EINVAL,
                            "the entity type %s lists an event type (number %zu) without a valid "
                            "topic",
                            type->topic, i + 1);
    }
    GROW_OR_FAIL(reg, reg->entities, reg->nentities, reg->entities_cap);
    reg->entities[reg->nentities++] = type;
    return 0;
}

EVS_API bool evs_entity_type_owns(const evs_entity_type_t *t, const char *topic) {
    if (!t || !t->events || !topic) return false;
    for (size_t i = 0; t->events[i] && i < MAX_ENTITY_EVENTS; i++)
        if (t->events[i]->topic && strcmp(t->events[i]->topic, topic) == 0) return true;
    return false;
}

static const upcaster_t *find_upcaster(const evs_registry_t *reg, const char *topic,
                                       size_t topic_len, uint32_t from) {
    for (size_t i = 0; i < reg->nupcasters; i++) {
        const upcaster_t *u = &reg->upcasters[i];
        if (u->from == from && strlen(u->topic) == topic_len &&
            memcmp(u->topic, topic, topic_len) == 0)
            return u;
    }
    return NULL;
}

EVS_API int evs_registry_add_upcaster(evs_registry_t *reg, const char *topic, uint32_t from_version,
                                      evs_upcast_fn fn) {
    if (!reg) return EVS_EINVAL;
    reg->errstr[0] = '\0';
    if (!fn) return reg_fail(reg, EVS_EINVAL, "the upcaster function is NULL");
    if (!topic_ok(topic))
        return reg_fail(reg, EVS_EINVAL,
                        "the upcaster's topic is invalid: it must be UTF-8 of 1 to %d bytes "
                        "without '@'",
                        EVS_NAME_MAX - 11);
    if (from_version == 0 || from_version == UINT32_MAX)
        return reg_fail(reg, EVS_EINVAL,
                        "an upcaster of %s from schema version %" PRIu32
                        ": schema versions start at 1 and the step must lead to a version",
                        topic, from_version);
    if (find_upcaster(reg, topic, strlen(topic), from_version))
        return reg_fail(reg, EVS_EINVAL, "%s already has an upcaster from schema version %" PRIu32,
                        topic, from_version);
    GROW_OR_FAIL(reg, reg->upcasters, reg->nupcasters, reg->upcasters_cap);
    char *t = strdup(topic);
    if (!t) return reg_fail(reg, EVS_ENOMEM, "out of memory");
    reg->upcasters[reg->nupcasters++] = (upcaster_t){.topic = t, .from = from_version, .fn = fn};
    return 0;
}

EVS_API const evs_event_type_t *evs_registry_event_type(const evs_registry_t *reg,
                                                        const char *topic) {
    if (!reg || !topic) return NULL;
    for (size_t i = 0; i < reg->nevents; i++)
        if (strcmp(reg->events[i]->topic, topic) == 0) return reg->events[i];
    return NULL;
}

EVS_API const evs_entity_type_t *evs_registry_entity_type(const evs_registry_t *reg,
                                                          const char *topic) {
    if (!reg || !topic) return NULL;
    for (size_t i = 0; i < reg->nentities; i++)
        if (strcmp(reg->entities[i]->topic, topic) == 0) return reg->entities[i];
    return NULL;
}

EVS_API const char *evs_registry_topic_of(const evs_registry_t *reg, const evs_event_type_t *type) {
    if (!reg || !type) return NULL;
    for (size_t i = 0; i < reg->nevents; i++)
        if (reg->events[i] == type) return type->topic;
    return NULL;
}

/* The upcast chain for a topic given by pointer and length (a snapshot topic is "T@N"). */
static int upcast_n(const evs_registry_t *reg, const char *topic, size_t topic_len, uint32_t from,
                    uint32_t to, evs_value_t *attrs, evs_error_t *err) {
    if (from > to)
        return dom_fail(err, EVS_EINVAL,
                        "%.*s has schema version %" PRIu32 ", newer than this program's %" PRIu32,
                        (int)topic_len, topic, from, to);
    for (uint32_t v = from; v < to; v++) {
        const upcaster_t *u = find_upcaster(reg, topic, topic_len, v);
        if (!u)
            return dom_fail(err, EVS_EINVAL,
                            "no upcaster for %.*s from schema version %" PRIu32 " to %" PRIu32,
                            (int)topic_len, topic, v, v + 1);
        int r = u->fn(attrs, err);
        if (r < 0) { /* the data does not fit the upcaster: a domain failure, unless memory */
            int code = r == EVS_ENOMEM ? r : EVS_EINVAL;
            if (err && !err->code)
                dom_fail(err, code,
                         "the upcaster of %.*s from schema version %" PRIu32 " failed (%s)",
                         (int)topic_len, topic, v, evs_code_name(r));
            else if (err)
                err->code = code;
            return code;
        }
        if (attrs->type != EVS_VAL_MAP)
            return dom_fail(err, EVS_EINVAL,
                            "the upcaster of %.*s from %" PRIu32 " did not leave a map",
                            (int)topic_len, topic, v);
    }
    return 0;
}

EVS_API int evs_registry_upcast(const evs_registry_t *reg, const char *topic, uint32_t from_version,
                                uint32_t to_version, evs_value_t *attrs, evs_error_t *err) {
    dom_ok(err);
    if (!reg || !topic || !attrs || attrs->type != EVS_VAL_MAP)
        return dom_fail(err, EVS_EINVAL, "upcasting needs a registry, a topic and a map");
    return upcast_n(reg, topic, strlen(topic), dom_schema(from_version), dom_schema(to_version),
                    attrs, err);
}

/* ---------------------------------------------------------------- snapshot topics */

int dom_snapshot_topic(const char *topic, uint32_t schema, char *out, size_t cap) {
    int n = snprintf(out, cap, "%s@%" PRIu32, topic, dom_schema(schema));
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

int dom_snapshot_topic_parse(const char *stopic, size_t *topic_len, uint32_t *schema) {
    const char *at = strrchr(stopic, '@');
    if (!at) {
        *topic_len = strlen(stopic);
        *schema = 1;
        return 0;
    }
    uint64_t v = 0;
    const char *p = at + 1;
    if (!*p) return -1;
    for (; *p; p++) {
        if (*p < '0' || *p > '9') return -1;
        v = v * 10 + (uint64_t)(*p - '0');
        if (v > UINT32_MAX) return -1;
    }
    if (v == 0) return -1;
    *topic_len = (size_t)(at - stopic);
    *schema = (uint32_t)v;
    return 0;
}

/* ---------------------------------------------------------------- domain events */

EVS_API void evs_domain_event_free(evs_domain_event_t *ev) {
    if (!ev) return;
    free(ev->entity_id);
    evs_value_free(ev->attrs);
    free(ev);
}

EVS_API int evs_domain_event_new(const evs_event_type_t *type, const char *entity_id,
                                 uint64_t version, evs_value_t *attrs, evs_domain_event_t **out,
                                 evs_error_t *err) {
    *out = NULL;
    dom_ok(err);
    if (!type || !topic_ok(type->topic)) {
        evs_value_free(attrs);
        return dom_fail(err, EVS_EINVAL, "an event type needs a topic without '@'");
    }
    if (!entity_id || !codec_valid_name(entity_id, strlen(entity_id))) {
        evs_value_free(attrs);
        return dom_fail(err, EVS_EINVAL, "an entity id must be UTF-8 of 1 to %d bytes",
                        EVS_NAME_MAX);
    }
    if (attrs && attrs->type != EVS_VAL_MAP) {
        evs_value_free(attrs);
        return dom_fail(err, EVS_EINVAL, "the attributes of %s are not a map", type->topic);
    }
    evs_domain_event_t *ev = calloc(1, sizeof *ev);
    if (ev) ev->entity_id = strdup(entity_id);
    if (ev && !attrs) attrs = evs_map_new();
    if (!ev || !ev->entity_id || !attrs) {
        if (ev) free(ev->entity_id);
        free(ev);
        evs_value_free(attrs);
        return dom_fail(err, EVS_ENOMEM, "out of memory for an event");
    }
    if (evs_uuid_generate_v7(ev->event_id, 1) != 0) {
        free(ev->entity_id);
        free(ev);
        evs_value_free(attrs);
        return dom_fail(err, EVS_EIO, "no randomness for an event id (getrandom failed)");
    }
    ev->type = type;
    ev->version = version;
    ev->attrs = attrs;
    *out = ev;
    return 0;
}

EVS_API int evs_domain_event_to_stored(const evs_domain_event_t *ev, evs_event_t *out,
                                       evs_error_t *err) {
    memset(out, 0, sizeof *out);
    dom_ok(err);
    if (!ev || !ev->type || !ev->attrs || ev->attrs->type != EVS_VAL_MAP)
        return dom_fail(err, EVS_EINVAL, "a domain event needs a type and a map of attributes");
    uint8_t *payload = NULL, *meta = NULL;
    size_t plen = 0, mlen = 0;
    evs_value_t *metadata = evs_map_new();
    int r = EVS_ENOMEM;
    if (!metadata ||
        evs_map_set_uint(metadata, DOM_SCHEMA_KEY, dom_schema(ev->type->schema_version)) < 0 ||
        (ev->entity_type &&
         evs_map_set_str(metadata, DOM_ORIGINATOR_KEY, ev->entity_type->topic) < 0))
        goto done;
    if (evs_value_encode(ev->attrs, &payload, &plen) < 0 ||
        evs_value_encode(metadata, &meta, &mlen) < 0)
        goto done;
    evs_event_t tmp = {.entity_id = ev->entity_id,
                       .topic = (char *)ev->type->topic,
                       .version = ev->version,
                       .position = ev->position,
                       .timestamp = ev->timestamp,
                       .payload = payload,
                       .payload_len = plen,
                       .metadata = meta,
                       .metadata_len = mlen,
                       .has_event_id = 1,
                       .has_version = 1};
    memcpy(tmp.event_id, ev->event_id, 16);
    r = evs_event_dup(out, &tmp) < 0 ? EVS_ENOMEM : 0;
done:
    free(payload);
    free(meta);
    evs_value_free(metadata);
    if (r < 0) return dom_fail(err, r, "out of memory encoding an event of %s", ev->type->topic);
    return 0;
}

int dom_stored_meta(const evs_event_t *stored, uint32_t *schema, char originator[EVS_NAME_MAX + 1],
                    evs_error_t *err) {
    *schema = 1;
    originator[0] = '\0';
    if (!stored->metadata || !stored->metadata_len) return 0;
    evs_value_t *meta;
    int r = evs_value_decode(stored->metadata, stored->metadata_len, &meta, err);
    if (r < 0) return r;
    uint64_t v = 1;
    const char *o = NULL;
    r = evs_map_get_uint(meta, DOM_SCHEMA_KEY, &v);
    int ro = evs_map_get_str(meta, DOM_ORIGINATOR_KEY, &o);
    if (ro == 0) snprintf(originator, EVS_NAME_MAX + 1, "%s", o);
    evs_value_free(meta);
    if (r == EVS_ENOT_FOUND) r = 0, v = 1;
    if (r < 0 || v == 0 || v > UINT32_MAX)
        return dom_fail(err, EVS_EINVAL, "the metadata of an event of %s has a bad schema",
                        stored->topic);
    if (ro < 0 && ro != EVS_ENOT_FOUND)
        return dom_fail(err, EVS_EINVAL,
                        "the metadata of an event of %s has an originator_topic that is not a "
                        "string",
                        stored->topic);
    *schema = (uint32_t)v;
    return 0;
}

EVS_API int evs_domain_event_from_stored(const evs_registry_t *reg, const evs_event_t *stored,
                                         evs_domain_event_t **out, evs_error_t *err) {
    *out = NULL;
    dom_ok(err);
    if (!reg || !stored || !stored->topic || !stored->entity_id)
        return dom_fail(err, EVS_EINVAL, "a stored event needs a registry, a topic and an id");
    const evs_event_type_t *type = evs_registry_event_type(reg, stored->topic);
    if (!type)
        return dom_fail(err, EVS_EINVAL,
                        "unknown topic \"%s\" (event %" PRIu64 " of %s): register its type",
                        stored->topic, stored->version, stored->entity_id);
    uint32_t schema;
    char originator[EVS_NAME_MAX + 1];
    int r = dom_stored_meta(stored, &schema, originator, err);
    if (r < 0) return r;
    evs_value_t *attrs;
    if ((r = evs_value_decode(stored->payload, stored->payload_len, &attrs, err)) < 0) {
        char why[sizeof err->str];
        memcpy(why, err ? err->str : "", err ? sizeof why : 1);
        return dom_fail(err, r, "event %" PRIu64 " of %s (%s): %s", stored->version,
                        stored->entity_id, stored->topic, why);
    }
    const char *topic = type->topic;
    if ((r = upcast_n(reg, topic, strlen(topic), schema, dom_schema(type->schema_version), attrs,
                      err)) < 0 ||
        (type->check && (r = type->check(attrs, err)) < 0)) {
        evs_value_free(attrs);
        if (err && !err->code) dom_fail(err, r, "an event of %s failed its check", topic);
        return r;
    }
    evs_domain_event_t *ev;
    if ((r = evs_domain_event_new(type, stored->entity_id, stored->version, attrs, &ev, err)) < 0)
        return r;
    memcpy(ev->event_id, stored->event_id, 16);
    ev->position = stored->position;
    ev->timestamp = stored->timestamp;
    if (originator[0]) ev->entity_type = evs_registry_entity_type(reg, originator);
    *out = ev;
    return 0;
}
