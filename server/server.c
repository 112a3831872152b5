/* server.c: reading the daemon's shared state as a whole (see server.h). */
#include "server.h"

#include "conn.h"
#include "health.h"
#include "subs.h"

void server_gauges(const server_t *srv, stats_gauges_t *g) {
    g->draining = srv->draining;
    g->connections = srv->nconns;
    g->subscribers = srv->subs ? subs_count(srv->subs) : 0;
    g->subscriber_queue_bytes = g->subscriber_socket_bytes = g->subscription_lag_max = 0;
    g->pack_subscriptions = NULL;
    if (srv->subs) subs_gauges(srv->subs, g);
    g->head = server_head(srv);
    g->store = srv->store ? srv->store->ops->name : "none";
    g->consumers = &srv->consumers;
    health_t h;
    health_get(srv, &h);
    g->store_state = h.store_state;
    g->store_reason = h.reason;
}

uint64_t server_head(const server_t *srv) {
    uint64_t head = srv->head_position;
    if (srv->store && srv->store->live_head > head) head = srv->store->live_head;
    return head;
}
