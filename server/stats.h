/* stats.h: the daemon's counters and gauges, for the stats op and the STATUS= line.
 *
 * Counters only ever grow from start-up (a reload does not reset them) and are kept here. Gauges
 * (connections, subscribers, queued bytes) belong to the modules that hold those things: the
 * caller reads them into a stats_gauges_t (server_gauges in server.h) when the stats are packed,
 * so that this module knows nothing of connections or subscriptions. Store latency is
 * the time from a store call to its callback, kept for the last STATS_LATENCY_SAMPLES calls so
 * that percentiles describe the recent past and cost nothing to record. Everything runs on the
 * loop thread: no locks. */
#ifndef EVS_STATS_H
#define EVS_STATS_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STATS_MAX_OPS 32
#define STATS_MAX_CODES 10 /* server error codes are -1..-9; index is -code */
#define STATS_LATENCY_SAMPLES 4096
/* Rows of the per-op counters past the op table: requests whose op is not in it, and frames that
 * could not be decoded (or were refused before decoding). */
#define STATS_OP_UNKNOWN STATS_MAX_OPS
#define STATS_OP_INVALID (STATS_MAX_OPS + 1)
#define STATS_OP_ROWS (STATS_MAX_OPS + 2)
/* The latency histogram's bucket bounds, in microseconds (the last bucket, +Inf, has none). */
#define STATS_LATENCY_BUCKETS 16
extern const uint32_t stats_latency_bounds_us[STATS_LATENCY_BUCKETS];

/* The time from a request's arrival to its reply, for one op: how many fell in each bucket (not
 * cumulative: bucket i counts the requests over bound i-1 and at most bound i; the last one
 * those over every bound), their number and their sum. */
typedef struct stats_histogram {
    uint64_t buckets[STATS_LATENCY_BUCKETS + 1];
    uint64_t count;
    uint64_t sum_us;
} stats_histogram_t;

/* What the daemon last learned about its store. */
enum stats_store_state {
    STORE_STATE_UNKNOWN = 0, /* no answer yet (start-up, PostgreSQL connecting) */
    STORE_STATE_OK,          /* the last call was served */
    STORE_STATE_UNAVAILABLE, /* the last call failed with "unavailable" */
};

typedef struct stats {
    uint64_t started_ns; /* uv_hrtime() at start-up */
    uint64_t connections_accepted;
    uint64_t requests[STATS_MAX_OPS]; /* by index in dispatch's op table */
    uint64_t requests_unknown;        /* unknown op */
    uint64_t requests_invalid;        /* not decodable at all */
    uint64_t errors[STATS_MAX_CODES]; /* error replies by -code */
    uint64_t events_appended;
    uint64_t conflicts;
    uint64_t subscription_filter_checks; /* (event, subscription) pairs fan-out examined */
    uint64_t
        subscription_pending_overflows; /* live events during a catch-up read dropped to be read */
    uint64_t reloads, reloads_failed;
    uint64_t store_calls;                       /* store callbacks seen */
    uint32_t latency_us[STATS_LATENCY_SAMPLES]; /* ring of the latest store round trips */
    size_t latency_next;                        /* next slot of the ring */
    int store_state;                            /* enum stats_store_state */
    /* Error replies by op (its index in dispatch's op table, or STATS_OP_UNKNOWN/INVALID) and
     * -code, and the latency of the requests that went to the store, by op: fixed arrays, so
     * that counting costs no allocation. */
    uint64_t op_errors[STATS_OP_ROWS][STATS_MAX_CODES];
    stats_histogram_t op_latency[STATS_MAX_OPS];
} stats_t;

/* The gauges of one stats reply or status line, read from the server when it is packed. */
typedef struct stats_gauges {
    bool draining;                    /* SIGTERM seen */
    size_t connections;               /* open connections */
    size_t subscribers;               /* subscriptions */
    uint64_t subscriber_queue_bytes;  /* what the daemon holds for subscribers: the queued
                                         output of their connections and the live events kept
                                         during catch-up reads */
    uint64_t subscriber_socket_bytes; /* sent to the sockets of those connections and not yet
                                         acknowledged by the peer (the kernel's send queues) */
    uint64_t subscription_lag_max;    /* the largest lag (head - position) of a subscription */
    uint64_t head;                    /* the newest position the daemon knows of */
    const char *store;                /* the store's kind ("memory", ...); "none" before one */
    const struct stats_consumers *consumers; /* stats_consumers.h; NULL: none */
    /* Packs the "subscriptions" array of the stats map (subs_pack_stats); NULL: an empty one. */
    void (*pack_subscriptions)(msgpack_packer *pk, const void *arg);
    const void *subscriptions;
    /* The store's condition (health.h): store_state ("unknown", "ok", "degraded",
     * "unavailable"; NULL: from the last store answer, stats_t.store_state) and why ("" ok). */
    const char *store_state, *store_reason;
} stats_gauges_t;

/* Starts the clock: call once at start-up. */
void stats_init(stats_t *st);

/* Records one store round trip that started at started_ns (uv_hrtime) and ended now with
 * code (0 or an evs_code_t); an "unavailable" answer marks the store unavailable, any other
 * answer marks it ok. */
void stats_store_done(stats_t *st, uint64_t started_ns, int code);

/* Counts an error reply with this code to a request of op (an index of dispatch's op table, or
 * STATS_OP_UNKNOWN or STATS_OP_INVALID). */
void stats_error_op(stats_t *st, size_t op, int code);

/* Counts an error reply to a frame that could not be decoded (stats_error_op with
 * STATS_OP_INVALID). */
void stats_error(stats_t *st, int code);

/* Records that a request of op took from arrived_ns (uv_hrtime) to now to be answered. */
void stats_request_done(stats_t *st, size_t op, uint64_t arrived_ns);

/* The store state as a word: "unknown", "ok" or "unavailable". */
const char *stats_store_state_name(int state);

/* Packs the stats map (see docs/protocol.md, "stats") from the counters st and the gauges g;
 * op_names[0..nops) name the entries of st->requests. */
void stats_pack(msgpack_packer *pk, const stats_t *st, const stats_gauges_t *g,
                const char *const *op_names, size_t nops);

/* A one-line summary for systemd's STATUS= ("serving; N connections, N subscribers, ..."). */
void stats_summary(const stats_t *st, const stats_gauges_t *g, char *buf, size_t len);

#endif
