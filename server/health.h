/* health.h: whether the daemon can serve appends and reads right now, from its store's condition
 * (store.h: store_condition_t): what the health op replies, what `evstore health` prints and
 * exits with, and what stats shows as store_state and store_reason. */
#ifndef EVS_HEALTH_H
#define EVS_HEALTH_H

#include <msgpack.h>

#include "server.h"

typedef struct health {
    const char *status;      /* "ok", "degraded" or "down" */
    const char *reason;      /* one sentence ("" when ok) */
    const char *kind;        /* store_condition_t.kind, or "draining" */
    const char *store;       /* the store's kind ("memory", "postgresql") */
    const char *store_state; /* stats' word: "unknown", "ok", "degraded" or "unavailable" */
} health_t;

/* Reads the daemon's health from srv; the strings live as long as srv's store condition. */
void health_get(const server_t *srv, health_t *h);

/* The number of keys health_pack packs, and packing them into a map being built (the health
 * op's reply). */
#define HEALTH_NKEYS 5
void health_pack(msgpack_packer *pk, const health_t *h);

#endif
