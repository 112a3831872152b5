/* subs_stats.c: what the stats op and the metrics endpoint show of the subscriptions (see
 * subs.h): how far behind each one is and what the daemon holds for it.
 *
 * A subscriber that stops reading holds the daemon's memory in two places: the output queued on
 * its connection (pushes not yet written to the socket, at most about output_limit) and the live
 * events a catching-up subscription keeps while its store read is in flight (pending). What the
 * daemon does not hold is counted apart: the bytes the kernel keeps in the connection's send
 * queue (SIOCOUTQ), and the events not yet read from the store, which the lag says in positions
 * (head minus the position of the last event queued for the client). */
#include <linux/sockios.h>
#include <sys/ioctl.h>

#include "../proto/codec.h"
#include "subs_priv.h"

/* Bytes the kernel holds in c's socket send queue (written by the daemon, not yet acknowledged
 * by the peer); 0 when it cannot tell. */
static uint64_t socket_queued(const conn_t *c) {
    uv_os_fd_t fd;
    int n = 0;
    if (c->closing || uv_fileno(&c->h.handle, &fd) != 0 || ioctl(fd, SIOCOUTQ, &n) != 0 || n < 0)
        return 0;
    return (uint64_t)n;
}

static uint64_t sub_lag(const sub_t *sub, uint64_t head) {
    return head > sub->last_sent ? head - sub->last_sent : 0;
}

void subs_gauges(const subs_t *s, stats_gauges_t *g) {
    uint64_t head = server_head(s->srv);
    g->subscriber_queue_bytes = 0;
    g->subscriber_socket_bytes = 0;
    g->subscription_lag_max = 0;
    /* The output of a connection is shared by its subscriptions: count it once. */
    for (const conn_t *c = s->srv->conns; c; c = c->next)
        if (c->subs) {
            g->subscriber_queue_bytes += conn_queued(c);
            g->subscriber_socket_bytes += socket_queued(c);
        }
    for (const sub_t *sub = s->all; sub; sub = sub->next) {
        g->subscriber_queue_bytes += sub->pending_bytes;
        uint64_t lag = sub_lag(sub, head);
        if (lag > g->subscription_lag_max) g->subscription_lag_max = lag;
    }
    g->pack_subscriptions = subs_pack_stats;
    g->subscriptions = s;
}

static void pack_u64(msgpack_packer *pk, const char *key, uint64_t v) {
    codec_pack_key(pk, key);
    msgpack_pack_uint64(pk, v);
}

void subs_pack_stats(msgpack_packer *pk, const void *arg) {
    const subs_t *s = arg;
    uint64_t head = server_head(s->srv);
    /* The SUBS_STATS_MAX furthest behind, furthest first (the oldest first among equals): kept
     * sorted by insertion, so that many subscriptions cost no allocation and, when all are
     * live (lag 0), one comparison each. */
    const sub_t *top[SUBS_STATS_MAX];
    size_t n = 0;
    for (const sub_t *sub = s->all; sub; sub = sub->next) {
        uint64_t lag = sub_lag(sub, head);
        if (n == SUBS_STATS_MAX && lag <= sub_lag(top[n - 1], head)) continue;
        size_t i = n < SUBS_STATS_MAX ? n++ : n - 1;
        while (i > 0 && sub_lag(top[i - 1], head) < lag) {
            top[i] = top[i - 1];
            i--;
        }
        top[i] = sub;
    }
    msgpack_pack_array(pk, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        const sub_t *sub = top[i];
        msgpack_pack_map(pk, 9);
        pack_u64(pk, "sub", sub->sid);
        codec_pack_key(pk, "peer");
        codec_pack_cstr(pk, sub->conn->peer);
        codec_pack_key(pk, "consumer");
        if (sub->consumer)
            codec_pack_cstr(pk, sub->consumer);
        else
            msgpack_pack_nil(pk);
        pack_u64(pk, "position", sub->last_sent);
        pack_u64(pk, "head", head);
        pack_u64(pk, "lag", sub_lag(sub, head));
        codec_pack_key(pk, "live");
        if (sub->live)
            msgpack_pack_true(pk);
        else
            msgpack_pack_false(pk);
        pack_u64(pk, "queued_bytes", conn_queued(sub->conn) + sub->pending_bytes);
        pack_u64(pk, "socket_bytes", socket_queued(sub->conn));
    }
}
