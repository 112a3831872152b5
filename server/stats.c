/* stats.c: counters, gauges and latency percentiles (see stats.h). */
#include "stats.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "../proto/codec.h"
#include "../proto/errors.h"
#include "stats_consumers.h"

void stats_init(stats_t *st) {
    memset(st, 0, sizeof *st);
    st->started_ns = uv_hrtime();
}

void stats_store_done(stats_t *st, uint64_t started_ns, int code) {
    uint64_t us = (uv_hrtime() - started_ns) / 1000;
    st->latency_us[st->latency_next] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
    st->latency_next = (st->latency_next + 1) % STATS_LATENCY_SAMPLES;
    st->store_calls++;
    st->store_state = code == EVS_EUNAVAILABLE ? STORE_STATE_UNAVAILABLE : STORE_STATE_OK;
}

/* From 100 us to 10 s, about three per decade: an append served from memory takes tens of
 * microseconds, one committed to PostgreSQL milliseconds, and a request_timeout tens of
 * seconds. */
const uint32_t stats_latency_bounds_us[STATS_LATENCY_BUCKETS] = {
    100,   250,    500,    1000,   2500,    5000,    10000,   25000,
    50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000,
};

void stats_error_op(stats_t *st, size_t op, int code) {
    if (code < 0 && -code < STATS_MAX_CODES) {
        st->errors[-code]++;
        if (op < STATS_OP_ROWS) st->op_errors[op][-code]++;
    }
    if (code == EVS_ECONFLICT) st->conflicts++;
}

void stats_error(stats_t *st, int code) {
    stats_error_op(st, STATS_OP_INVALID, code);
}

void stats_request_done(stats_t *st, size_t op, uint64_t arrived_ns) {
    if (op >= STATS_MAX_OPS) return;
    uint64_t us = (uv_hrtime() - arrived_ns) / 1000;
    stats_histogram_t *h = &st->op_latency[op];
    size_t i = 0;
    while (i < STATS_LATENCY_BUCKETS && us > stats_latency_bounds_us[i])
        i++;
    h->buckets[i]++;
    h->count++;
    h->sum_us += us;
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Sorts a copy of the recorded samples into out (STATS_LATENCY_SAMPLES slots); returns their
 * number. */
static size_t sorted_samples(const stats_t *st, uint32_t *out) {
    size_t n =
        st->store_calls < STATS_LATENCY_SAMPLES ? (size_t)st->store_calls : STATS_LATENCY_SAMPLES;
    memcpy(out, st->latency_us, n * sizeof *out);
    qsort(out, n, sizeof *out, cmp_u32);
    return n;
}

static uint32_t percentile_of(const uint32_t *sorted, size_t n, double p) {
    if (n == 0) return 0;
    size_t i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
    return sorted[i < n ? i : n - 1];
}

const char *stats_store_state_name(int state) {
    switch (state) {
    case STORE_STATE_OK:
        return "ok";
    case STORE_STATE_UNAVAILABLE:
        return "unavailable";
    default:
        return "unknown";
    }
}

static void pack_u64(msgpack_packer *pk, const char *key, uint64_t v) {
    codec_pack_key(pk, key);
    msgpack_pack_uint64(pk, v);
}

void stats_pack(msgpack_packer *pk, const stats_t *st, const stats_gauges_t *g,
                const char *const *op_names, size_t nops) {
    if (nops > STATS_MAX_OPS) nops = STATS_MAX_OPS;

    msgpack_pack_map(pk, 24); /* keep in step with the keys below */
    codec_pack_key(pk, "version");
    codec_pack_cstr(pk, EVS_VERSION);
    pack_u64(pk, "uptime_s", (uv_hrtime() - st->started_ns) / 1000000000u);
    codec_pack_key(pk, "draining");
    if (g->draining)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
    pack_u64(pk, "connections", g->connections);
    pack_u64(pk, "connections_accepted", st->connections_accepted);

    /* requests: every op of the table (zeros included, so that a client sees the names), then
     * the unknown and undecodable ones. */
    codec_pack_key(pk, "requests");
    msgpack_pack_map(pk, nops + 2);
    for (size_t i = 0; i < nops; i++)
        pack_u64(pk, op_names[i], st->requests[i]);
    pack_u64(pk, "unknown_op", st->requests_unknown);
    pack_u64(pk, "invalid", st->requests_invalid);

    pack_u64(pk, "events_appended", st->events_appended);
    pack_u64(pk, "conflicts", st->conflicts);

    codec_pack_key(pk, "errors");
    size_t ncodes = 0;
    for (int i = 1; i < STATS_MAX_CODES; i++)
        if (strcmp(evs_code_name(-i), "unknown") != 0) ncodes++;
    msgpack_pack_map(pk, ncodes);
    for (int i = 1; i < STATS_MAX_CODES; i++)
        if (strcmp(evs_code_name(-i), "unknown") != 0)
            pack_u64(pk, evs_code_name(-i), st->errors[i]);

    pack_u64(pk, "subscribers", g->subscribers);
    pack_u64(pk, "subscriber_queue_bytes", g->subscriber_queue_bytes);
    pack_u64(pk, "subscriber_socket_bytes", g->subscriber_socket_bytes);
    pack_u64(pk, "head", g->head);
    codec_pack_key(pk, "subscriptions");
    if (g->pack_subscriptions)
        g->pack_subscriptions(pk, g->subscriptions);
    else
        msgpack_pack_array(pk, 0);
    pack_u64(pk, "subscription_lag_max", g->subscription_lag_max);
    pack_u64(pk, "subscription_filter_checks", st->subscription_filter_checks);
    pack_u64(pk, "subscription_pending_overflows", st->subscription_pending_overflows);
    pack_u64(pk, "reloads", st->reloads);
    pack_u64(pk, "reloads_failed", st->reloads_failed);

    codec_pack_key(pk, "store");
    codec_pack_cstr(pk, g->store);
    codec_pack_key(pk, "store_state");
    codec_pack_cstr(pk, g->store_state ? g->store_state : stats_store_state_name(st->store_state));
    codec_pack_key(pk, "store_reason");
    codec_pack_cstr(pk, g->store_reason ? g->store_reason : "");

    uint32_t *sorted = malloc(STATS_LATENCY_SAMPLES * sizeof *sorted);
    size_t n = sorted ? sorted_samples(st, sorted) : 0;
    codec_pack_key(pk, "store_latency_us");
    msgpack_pack_map(pk, 6);
    pack_u64(pk, "calls", st->store_calls);
    pack_u64(pk, "samples", n);
    pack_u64(pk, "p50", percentile_of(sorted, n, 50));
    pack_u64(pk, "p90", percentile_of(sorted, n, 90));
    pack_u64(pk, "p99", percentile_of(sorted, n, 99));
    pack_u64(pk, "max", n ? sorted[n - 1] : 0);
    free(sorted);

    codec_pack_key(pk, "consumers");
    if (g->consumers)
        stats_consumers_pack(pk, g->consumers);
    else
        msgpack_pack_nil(pk);
}

void stats_summary(const stats_t *st, const stats_gauges_t *g, char *buf, size_t len) {
    snprintf(buf, len, "%s; %zu connections, %zu subscribers, %llu events appended; store %s %s",
             g->draining ? "draining" : "serving", g->connections, g->subscribers,
             (unsigned long long)st->events_appended, g->store,
             g->store_state ? g->store_state : stats_store_state_name(st->store_state));
}
