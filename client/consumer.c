/* consumer.c: the consumers' calls: checkpoint, get-checkpoint, delete-checkpoint, consumers and
 * append with a tracking (docs/protocol.md, section 11).
 *
 * Built like the other blocking calls of client.c: pack the request with client_request_begin,
 * send it and wait for the reply with client_request_end, then copy what the reply holds (it
 * points into the frame read) into memory the caller owns. */
#include <stdlib.h>
#include <string.h>

#include "client_priv.h"

/* The uint at key of res into *out (when out is not NULL); EVS_EPROTOCOL when it is missing. */
static int take_uint(evs_context_t *c, const msgpack_object *res, const char *key, uint64_t *out) {
    const msgpack_object *o = codec_map_get(res, key);
    if (!o || o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return client_fail(c, EVS_EPROTOCOL, "a reply without \"%s\"", key);
    if (out) *out = o->via.u64;
    return 0;
}

/* Sends op {"consumer": consumer} (and "position" when has_position); on success the reply's
 * key goes to *out. */
static int consumer_call(evs_context_t *c, const char *op, const char *consumer, bool has_position,
                         uint64_t position, const char *key, uint64_t *out) {
    int r = client_begin(c);
    if (r) return r;
    if (client_check_name(c, "consumer", consumer) < 0) return c->err;
    msgpack_packer pk;
    uint64_t id;
    size_t start = client_request_begin(c, &pk, op, has_position ? 2 : 1, &id);
    codec_pack_key(&pk, "consumer");
    codec_pack_cstr(&pk, consumer);
    if (has_position) {
        codec_pack_key(&pk, "position");
        msgpack_pack_uint64(&pk, position);
    }
    const msgpack_object *res;
    if ((r = client_request_end(c, start, id, &res)) < 0) return r;
    return take_uint(c, res, key, out);
}

EVS_API int evs_checkpoint(evs_context_t *c, const char *consumer, uint64_t position,
                           uint64_t *stored) {
    return consumer_call(c, "checkpoint", consumer, true, position, "position", stored);
}

EVS_API int evs_get_checkpoint(evs_context_t *c, const char *consumer, uint64_t *position) {
    return consumer_call(c, "get-checkpoint", consumer, false, 0, "position", position);
}

EVS_API int evs_delete_checkpoint(evs_context_t *c, const char *consumer, uint64_t *deleted) {
    return consumer_call(c, "delete-checkpoint", consumer, false, 0, "deleted", deleted);
}

EVS_API int evs_consumers(evs_context_t *c, evs_consumer_info_t **out, size_t *n, uint64_t *head) {
    *out = NULL;
    *n = 0;
    int r = client_begin(c);
    if (r) return r;
    msgpack_packer pk;
    uint64_t id;
    size_t start = client_request_begin(c, &pk, "consumers", 0, &id);
    const msgpack_object *res;
    if ((r = client_request_end(c, start, id, &res)) < 0) return r;
    const msgpack_object *list = codec_map_get(res, "consumers");
    if (!list || list->type != MSGPACK_OBJECT_ARRAY)
        return client_fail(c, EVS_EPROTOCOL, "a consumers reply without \"consumers\"");
    if ((r = take_uint(c, res, "head", head)) < 0) return r;
    size_t count = list->via.array.size;
    evs_consumer_info_t *v = count ? calloc(count, sizeof *v) : NULL;
    if (count && !v) return client_fail(c, EVS_ENOMEM, "out of memory");
    for (size_t i = 0; i < count; i++) {
        const msgpack_object *o = &list->via.array.ptr[i], *name = codec_map_get(o, "consumer"),
                             *active = codec_map_get(o, "active");
        if (!name || name->type != MSGPACK_OBJECT_STR || name->via.str.size > EVS_NAME_MAX ||
            take_uint(c, o, "position", &v[i].position) < 0 ||
            take_uint(c, o, "head", &v[i].head) < 0 || take_uint(c, o, "lag", &v[i].lag) < 0) {
            free(v);
            return client_fail(c, EVS_EPROTOCOL, "a consumers reply with a bad consumer");
        }
        memcpy(v[i].consumer, name->via.str.ptr, name->via.str.size);
        v[i].active = active && active->type == MSGPACK_OBJECT_BOOLEAN && active->via.boolean;
    }
    *out = v;
    *n = count;
    return 0;
}

EVS_API int evs_append_tracked(evs_context_t *c, const evs_event_t *events, size_t n,
                               const char *consumer, uint64_t position, uint64_t *positions,
                               uint64_t *versions) {
    int r = client_begin(c);
    if (r) return r;
    if (client_check_events(c, events, n) < 0) return c->err;
    if (client_check_name(c, "consumer", consumer) < 0) return c->err;
    msgpack_packer pk;
    uint64_t id;
    size_t start = client_request_begin(c, &pk, "append", 2, &id);
    codec_pack_key(&pk, "events");
    msgpack_pack_array(&pk, (uint32_t)n);
    for (size_t i = 0; i < n; i++)
        codec_pack_event_for_append(&pk, &events[i]);
    codec_pack_key(&pk, "tracking");
    msgpack_pack_map(&pk, 2);
    codec_pack_key(&pk, "consumer");
    codec_pack_cstr(&pk, consumer);
    codec_pack_key(&pk, "position");
    msgpack_pack_uint64(&pk, position);
    const msgpack_object *res;
    if ((r = client_request_end(c, start, id, &res)) < 0) return r;
    if ((r = client_take_uints(c, res, "positions", n, positions)) < 0) return r;
    return client_take_uints(c, res, "versions", n, versions);
}
