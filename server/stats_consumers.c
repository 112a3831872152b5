/* stats_consumers.c: the consumers and the head shown by stats (see stats_consumers.h). */
#include "stats_consumers.h"

#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "../proto/codec.h"

static void free_list(stats_consumers_t *sc) {
    for (size_t i = 0; i < sc->n; i++)
        free(sc->list[i].consumer);
    free(sc->list);
    sc->list = NULL;
    sc->n = 0;
}

/* The store's answer: replaces the list (a failure keeps the old one). */
static void on_consumers(void *arg, const codec_error_t *err, const store_consumer_t *consumers,
                         size_t n, uint64_t head) {
    stats_consumers_t *sc = arg;
    sc->inflight = false;
    if (err || sc->closed) return;
    size_t keep = n < STATS_CONSUMERS_MAX ? n : STATS_CONSUMERS_MAX;
    stats_consumer_t *list = calloc(keep ? keep : 1, sizeof *list);
    if (!list) return;
    for (size_t i = 0; i < keep; i++) {
        list[i].consumer = strdup(consumers[i].consumer);
        list[i].position = consumers[i].position;
        list[i].active = consumers[i].active;
        if (!list[i].consumer) {
            for (size_t k = 0; k < i; k++)
                free(list[k].consumer);
            free(list);
            return;
        }
    }
    free_list(sc);
    sc->list = list;
    sc->n = keep;
    sc->count = n;
    sc->head = head;
    sc->refreshed_ns = uv_hrtime();
}

void stats_consumers_refresh(stats_consumers_t *sc, store_t *store, uint64_t if_older_ms) {
    if (sc->inflight || sc->closed || !store) return;
    if (if_older_ms && sc->refreshed_ns && uv_hrtime() - sc->refreshed_ns < if_older_ms * 1000000u)
        return;
    sc->inflight = true;
    store->ops->consumers(store, on_consumers, sc);
}

static void pack_u64(msgpack_packer *pk, const char *key, uint64_t v) {
    codec_pack_key(pk, key);
    msgpack_pack_uint64(pk, v);
}

void stats_consumers_pack(msgpack_packer *pk, const stats_consumers_t *sc) {
    msgpack_pack_map(pk, 4);
    codec_pack_key(pk, "age_ms");
    if (sc->refreshed_ns)
        msgpack_pack_uint64(pk, (uv_hrtime() - sc->refreshed_ns) / 1000000u);
    else
        msgpack_pack_nil(pk);
    pack_u64(pk, "head", sc->head);
    pack_u64(pk, "count", sc->count);
    codec_pack_key(pk, "list");
    msgpack_pack_array(pk, (uint32_t)sc->n);
    for (size_t i = 0; i < sc->n; i++) {
        const stats_consumer_t *c = &sc->list[i];
        msgpack_pack_map(pk, 4);
        codec_pack_key(pk, "consumer");
        codec_pack_cstr(pk, c->consumer);
        pack_u64(pk, "position", c->position);
        pack_u64(pk, "lag", sc->head > c->position ? sc->head - c->position : 0);
        codec_pack_key(pk, "active");
        if (c->active)
            msgpack_pack_true(pk);
        else
            msgpack_pack_false(pk);
    }
}

void stats_consumers_close(stats_consumers_t *sc) {
    sc->closed = true;
    free_list(sc);
}
