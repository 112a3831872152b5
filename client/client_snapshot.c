/* client_snapshot.c: the put-snapshot and get-snapshot calls (the daemon's snapshot store;
 * domain_snapshot.c takes snapshots of entities on top of them).
 *
 * Built like the other blocking calls of client.c: pack the request with client_request_begin,
 * send it and wait for the reply with client_request_end, then copy what the reply holds (it
 * points into the frame read) into memory the caller owns. */
#include <stdlib.h>
#include <string.h>

#include "client_priv.h"

EVS_API int evs_put_snapshot(evs_context_t *c, const evs_snapshot_t *snap) {
    int r = client_begin(c);
    if (r) return r;
    if (!snap) return client_fail(c, EVS_EINVAL, "snap is NULL");
    if (client_check_name(c, "entity_id", snap->entity_id) < 0) return c->err;
    if (client_check_name(c, "topic", snap->topic) < 0) return c->err;
    if (snap->payload_len && !snap->payload)
        return client_fail(c, EVS_EINVAL, "the snapshot has payload_len but no payload");
    msgpack_packer pk;
    uint64_t id;
    size_t start = client_request_begin(c, &pk, "put-snapshot", 4, &id);
    codec_pack_key(&pk, "entity_id");
    codec_pack_cstr(&pk, snap->entity_id);
    codec_pack_key(&pk, "version");
    msgpack_pack_uint64(&pk, snap->version);
    codec_pack_key(&pk, "topic");
    codec_pack_cstr(&pk, snap->topic);
    codec_pack_key(&pk, "payload");
    codec_pack_bin(&pk, snap->payload, snap->payload_len);
    const msgpack_object *res;
    return client_request_end(c, start, id, &res);
}

/* Copies the string object o into a new NUL-terminated string; NULL when out of memory. */
static char *dup_str(const msgpack_object *o) {
    char *s = malloc(o->via.str.size + 1);
    if (!s) return NULL;
    memcpy(s, o->via.str.ptr, o->via.str.size);
    s[o->via.str.size] = '\0';
    return s;
}

EVS_API int evs_get_snapshot(evs_context_t *c, const char *entity_id, uint64_t max_version,
                             evs_snapshot_t **out) {
    *out = NULL;
    int r = client_begin(c);
    if (r) return r;
    if (client_check_name(c, "entity_id", entity_id) < 0) return c->err;
    bool send_max = max_version != EVS_LATEST;
    msgpack_packer pk;
    uint64_t id;
    size_t start = client_request_begin(c, &pk, "get-snapshot", 1 + send_max, &id);
    codec_pack_key(&pk, "entity_id");
    codec_pack_cstr(&pk, entity_id);
    if (send_max) {
        codec_pack_key(&pk, "max_version");
        msgpack_pack_uint64(&pk, max_version);
    }
    const msgpack_object *res;
    if ((r = client_request_end(c, start, id, &res)) < 0) return r;
    const msgpack_object *o = codec_map_get(res, "snapshot");
    const msgpack_object *eid = codec_map_get(o, "entity_id"), *ver = codec_map_get(o, "version"),
                         *top = codec_map_get(o, "topic"), *pay = codec_map_get(o, "payload"),
                         *ts = codec_map_get(o, "timestamp");
    if (!eid || eid->type != MSGPACK_OBJECT_STR || !ver ||
        ver->type != MSGPACK_OBJECT_POSITIVE_INTEGER || !top || top->type != MSGPACK_OBJECT_STR ||
        !pay || pay->type != MSGPACK_OBJECT_BIN ||
        (ts && ts->type != MSGPACK_OBJECT_POSITIVE_INTEGER &&
         ts->type != MSGPACK_OBJECT_NEGATIVE_INTEGER))
        return client_fail(c, EVS_EPROTOCOL, "a get-snapshot reply without a whole snapshot");
    evs_snapshot_t *s = calloc(1, sizeof *s);
    if (s) {
        s->entity_id = dup_str(eid);
        s->topic = dup_str(top);
        s->payload = malloc(pay->via.bin.size ? pay->via.bin.size : 1);
    }
    if (!s || !s->entity_id || !s->topic || !s->payload) {
        evs_snapshot_free(s);
        return client_fail(c, EVS_ENOMEM, "out of memory for a snapshot");
    }
    if (pay->via.bin.size) memcpy(s->payload, pay->via.bin.ptr, pay->via.bin.size);
    s->payload_len = pay->via.bin.size;
    s->version = ver->via.u64;
    if (ts) s->timestamp = ts->via.i64; /* the same bits for either integer type */
    *out = s;
    return 0;
}

EVS_API int evs_delete_snapshots(evs_context_t *c, const char *entity_id, uint64_t *deleted) {
    if (deleted) *deleted = 0;
    int r = client_begin(c);
    if (r) return r;
    if (client_check_name(c, "entity_id", entity_id) < 0) return c->err;
    msgpack_packer pk;
    uint64_t id;
    size_t start = client_request_begin(c, &pk, "delete-snapshots", 1, &id);
    codec_pack_key(&pk, "entity_id");
    codec_pack_cstr(&pk, entity_id);
    const msgpack_object *res;
    if ((r = client_request_end(c, start, id, &res)) < 0) return r;
    const msgpack_object *n = codec_map_get(res, "deleted");
    if (!n || n->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return client_fail(c, EVS_EPROTOCOL, "a delete-snapshots reply without \"deleted\"");
    if (deleted) *deleted = n->via.u64;
    return 0;
}
