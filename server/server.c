/* server.c: reading the daemon's shared state as a whole (see server.h). */
#include "server.h"

#include "conn.h"
#include "health.h"
#include "subs.h"

void server_gauges(const server_t *srv, stats_gauges_t *g) {
    g->draining = srv->draining;
    g->connections = srv->nconns;
    g->subscribers = srv->subs ? subs_count(srv->subs) : 0;
    /* Pushes wait in the output of their connection: count each connection with
     * subscriptions once. */
    g->subscriber_queue_bytes = 0;
    for (const conn_t *c = srv->conns; c; c = c->next)
        if (c->subs) g->subscriber_queue_bytes += conn_queued(c);
    g->store = srv->store ? srv->store->ops->name : "none";
    g->consumers = &srv->consumers;
    health_t h;
    health_get(srv, &h);
    g->store_state = h.store_state;
    g->store_reason = h.reason;
}
