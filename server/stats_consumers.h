/* stats_consumers.h: the consumers and the store's head as the stats op shows them.
 *
 * The stats op never waits for the store: it shows what the daemon last learned, with its age.
 * The list is refreshed by one store call (store_ops.consumers) at a time, started by the status
 * timer's store probe and by a stats request that finds it older than STATS_CONSUMERS_FRESH_MS;
 * a refresh that fails keeps the last list (its age grows). At most STATS_CONSUMERS_MAX consumers
 * are kept (the first by name); "count" says how many there were. Everything runs on the loop
 * thread. */
#ifndef EVS_STATS_CONSUMERS_H
#define EVS_STATS_CONSUMERS_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

#define STATS_CONSUMERS_MAX 100
#define STATS_CONSUMERS_FRESH_MS 1000

typedef struct stats_consumer {
    char *consumer;
    uint64_t position;
    bool active;
} stats_consumer_t;

typedef struct stats_consumers {
    stats_consumer_t *list; /* n of them, owned */
    size_t n, count;        /* kept, and listed by the store */
    uint64_t head;          /* the store's newest position at the refresh */
    uint64_t refreshed_ns;  /* uv_hrtime() of the last answer; 0: none yet */
    bool inflight;          /* a refresh waits for the store */
    bool closed;            /* stats_consumers_close ran: answers are dropped */
} stats_consumers_t;

/* Starts a refresh from store unless one is in flight or store is NULL; with if_older_ms > 0,
 * only when the list is older than that (or there is none). */
void stats_consumers_refresh(stats_consumers_t *sc, store_t *store, uint64_t if_older_ms);

/* Packs the "consumers" value of the stats map: {"age_ms": ms since the refresh, or nil before
 * one, "head", "count", "list": [{"consumer", "position", "lag", "active"}...]}. */
void stats_consumers_pack(msgpack_packer *pk, const stats_consumers_t *sc);

/* Frees the list; a refresh still in flight is dropped when it answers. */
void stats_consumers_close(stats_consumers_t *sc);

#endif
