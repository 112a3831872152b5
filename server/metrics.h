/* metrics.h: the Prometheus endpoint: GET /metrics on metrics_listen, in the text exposition
 * format 0.0.4, served by http.h's server on the daemon's loop.
 *
 * The metrics are the stats op's counters and gauges (stats.h) under Prometheus names; docs/
 * service.md ("Metrics") lists each with its type and labels. A scrape never waits for the
 * store: the consumers' positions are the copy the stats op shows, refreshed in the background
 * when it is older than a second (evstore_consumers_age_seconds says how old). */
#ifndef EVS_METRICS_H
#define EVS_METRICS_H

#include <stddef.h>

#include "../proto/codec.h"
#include "server.h"

/* Starts the endpoint when srv->cfg.metrics_listen is set. 0, or -1 with a message in why. */
int metrics_start(server_t *srv, char *why, size_t whylen);

/* Applies the reloadable metrics_* limits of srv->cfg to the running endpoint. */
void metrics_apply_config(server_t *srv);

/* Stops the endpoint (its connections are closed). */
void metrics_stop(server_t *srv);

/* Writes every metric of srv into out, in the text exposition format. */
void metrics_render(server_t *srv, codec_buf_t *out);

#endif
