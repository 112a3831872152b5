/* health.c: the daemon's health from its store's condition (see health.h). */
#include "health.h"

#include "../proto/codec.h"

void health_get(const server_t *srv, health_t *h) {
    static const store_condition_t none = {
        .status = STORE_STATUS_DOWN, .kind = "starting", .reason = "the store is not open"};
    const store_condition_t *c = srv->store ? &srv->store->condition : &none;
    h->status = store_status_health_name(c->status);
    h->store_state = store_status_state_name(c->status);
    h->kind = c->kind ? c->kind : "starting";
    h->reason = c->status == STORE_STATUS_OK ? "" : c->reason;
    h->store = srv->store ? srv->store->ops->name : "none";
    if (c->status == STORE_STATUS_STARTING) h->reason = "starting: the store is connecting";
    if (srv->draining) {
        h->status = "down";
        h->kind = "draining";
        h->reason = "draining: the daemon is shutting down";
    }
}

void health_pack(msgpack_packer *pk, const health_t *h) {
    codec_pack_key(pk, "status");
    codec_pack_cstr(pk, h->status);
    codec_pack_key(pk, "reason");
    codec_pack_cstr(pk, h->reason);
    codec_pack_key(pk, "kind");
    codec_pack_cstr(pk, h->kind);
    codec_pack_key(pk, "store");
    codec_pack_cstr(pk, h->store);
    codec_pack_key(pk, "store_state");
    codec_pack_cstr(pk, h->store_state);
}
