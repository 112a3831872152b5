/* metrics.c: the metrics of the Prometheus endpoint (see metrics.h). */
#include "metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "../proto/errors.h"
#include "dispatch.h"
#include "http.h"
#include "log.h"
#include "stats_consumers.h"

#define CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* The ops whose latency is shown (evstore_request_duration_seconds): the append and the
 * reads. */
static const char *const timed_ops[] = {"append", "get-by-entity", "get-by-topic", "get-by-id",
                                        "read-all"};

/* ---------------------------------------------------------------- writing the text format */

static void put(codec_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(codec_buf_t *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || codec_buf_reserve(b, (size_t)n + 1) != 0) {
        b->failed = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* The HELP and TYPE lines of a family. */
static void family(codec_buf_t *b, const char *name, const char *type, const char *help) {
    put(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Writes s as a label value: backslash, double quote and newline escaped. */
static void put_label_value(codec_buf_t *b, const char *s) {
    const char *run = s;
    for (; *s; s++) {
        const char *esc = *s == '\\' ? "\\\\" : *s == '"' ? "\\\"" : *s == '\n' ? "\\n" : NULL;
        if (!esc) continue;
        codec_buf_write(b, run, (size_t)(s - run));
        codec_buf_write(b, esc, 2);
        run = s + 1;
    }
    codec_buf_write(b, run, (size_t)(s - run));
}

/* One sample with one label: name{label="value"} v. */
static void sample1(codec_buf_t *b, const char *name, const char *label, const char *value,
                    unsigned long long v) {
    put(b, "%s{%s=\"", name, label);
    put_label_value(b, value);
    put(b, "\"} %llu\n", v);
}

static void gauge(codec_buf_t *b, const char *name, const char *help, unsigned long long v) {
    family(b, name, "gauge", help);
    put(b, "%s %llu\n", name, v);
}

static void counter(codec_buf_t *b, const char *name, const char *help, unsigned long long v) {
    family(b, name, "counter", help);
    put(b, "%s %llu\n", name, v);
}

/* ---------------------------------------------------------------- the families */

static void render_requests(codec_buf_t *b, const stats_t *st, const char *const *ops,
                            size_t nops) {
    family(b, "evstore_requests_total", "counter",
           "Requests received, by op (unknown_op: an op not in the table; invalid: a frame that "
           "could not be decoded).");
    for (size_t i = 0; i < nops; i++)
        sample1(b, "evstore_requests_total", "op", ops[i], st->requests[i]);
    sample1(b, "evstore_requests_total", "op", "unknown_op", st->requests_unknown);
    sample1(b, "evstore_requests_total", "op", "invalid", st->requests_invalid);

    /* Only the (op, code) pairs that happened: most never do. */
    family(b, "evstore_errors_total", "counter",
           "Error replies, by op and error code (docs/protocol.md); pairs that never happened are "
           "not shown.");
    for (size_t op = 0; op < STATS_OP_ROWS; op++) {
        const char *name = op < nops                ? ops[op]
                           : op == STATS_OP_UNKNOWN ? "unknown_op"
                           : op == STATS_OP_INVALID ? "invalid"
                                                    : NULL;
        if (!name) continue;
        for (int code = 1; code < STATS_MAX_CODES; code++) {
            if (!st->op_errors[op][code]) continue;
            put(b, "evstore_errors_total{op=\"");
            put_label_value(b, name);
            put(b, "\",code=\"%s\"} %llu\n", evs_code_name(-code),
                (unsigned long long)st->op_errors[op][code]);
        }
    }
}

static void render_latency(codec_buf_t *b, const stats_t *st) {
    family(b, "evstore_request_duration_seconds", "histogram",
           "Time from a request's arrival to its reply, for the append and the reads.");
    for (size_t k = 0; k < sizeof timed_ops / sizeof timed_ops[0]; k++) {
        size_t op = dispatch_op_index(timed_ops[k]);
        if (op >= STATS_MAX_OPS) continue;
        const stats_histogram_t *h = &st->op_latency[op];
        unsigned long long cumulative = 0;
        for (size_t i = 0; i < STATS_LATENCY_BUCKETS; i++) {
            cumulative += h->buckets[i];
            put(b, "evstore_request_duration_seconds_bucket{op=\"%s\",le=\"%g\"} %llu\n",
                timed_ops[k], stats_latency_bounds_us[i] / 1e6, cumulative);
        }
        put(b, "evstore_request_duration_seconds_bucket{op=\"%s\",le=\"+Inf\"} %llu\n",
            timed_ops[k], (unsigned long long)h->count);
        put(b, "evstore_request_duration_seconds_sum{op=\"%s\"} %.6f\n", timed_ops[k],
            (double)h->sum_us / 1e6);
        put(b, "evstore_request_duration_seconds_count{op=\"%s\"} %llu\n", timed_ops[k],
            (unsigned long long)h->count);
    }
}

static void render_store(codec_buf_t *b, const stats_t *st, const stats_gauges_t *g) {
    family(b, "evstore_info", "gauge", "Always 1: the daemon's version and store kind.");
    put(b, "evstore_info{version=\"%s\",store=\"", EVS_VERSION);
    put_label_value(b, g->store);
    put(b, "\"} 1\n");
    gauge(b, "evstore_store_up",
          "1 when the store served the last call, 0 when it answered unavailable or has not "
          "answered yet.",
          st->store_state == STORE_STATE_OK);
    family(b, "evstore_store_state", "gauge",
           "1 for the store's state as the daemon last learned it, 0 for the others.");
    for (int s = STORE_STATE_UNKNOWN; s <= STORE_STATE_UNAVAILABLE; s++)
        sample1(b, "evstore_store_state", "state", stats_store_state_name(s), st->store_state == s);
    counter(b, "evstore_store_calls_total", "Store calls answered.", st->store_calls);
    gauge(b, "evstore_head_position", "The newest committed position the daemon knows of.",
          g->head);
}

static void render_consumers(codec_buf_t *b, const stats_consumers_t *sc) {
    family(b, "evstore_consumers_age_seconds", "gauge",
           "Age of the daemon's copy of the consumers' checkpoints (NaN before the first read).");
    if (sc->refreshed_ns)
        put(b, "evstore_consumers_age_seconds %.3f\n",
            (double)(uv_hrtime() - sc->refreshed_ns) / 1e9);
    else
        put(b, "evstore_consumers_age_seconds NaN\n");
    gauge(b, "evstore_consumers", "Consumers with a checkpoint (at most 100 are shown by name).",
          sc->count);
    family(b, "evstore_consumer_position", "gauge", "A consumer's checkpoint.");
    for (size_t i = 0; i < sc->n; i++)
        sample1(b, "evstore_consumer_position", "consumer", sc->list[i].consumer,
                sc->list[i].position);
    family(b, "evstore_consumer_lag", "gauge",
           "Positions between a consumer's checkpoint and the store's head.");
    for (size_t i = 0; i < sc->n; i++)
        sample1(b, "evstore_consumer_lag", "consumer", sc->list[i].consumer,
                sc->head > sc->list[i].position ? sc->head - sc->list[i].position : 0);
    family(b, "evstore_consumer_active", "gauge", "1 when a subscription holds the consumer.");
    for (size_t i = 0; i < sc->n; i++)
        sample1(b, "evstore_consumer_active", "consumer", sc->list[i].consumer, sc->list[i].active);
}

void metrics_render(server_t *srv, codec_buf_t *out) {
    const stats_t *st = &srv->stats;
    stats_gauges_t g;
    server_gauges(srv, &g);
    const char *ops[STATS_MAX_OPS];
    size_t nops = dispatch_op_names(ops, STATS_MAX_OPS);

    render_store(out, st, &g);
    gauge(out, "evstore_uptime_seconds", "Seconds since the daemon started.",
          (uv_hrtime() - st->started_ns) / 1000000000u);
    gauge(out, "evstore_draining", "1 once SIGTERM was received.", g.draining);
    gauge(out, "evstore_connections", "Open client connections.", g.connections);
    counter(out, "evstore_connections_accepted_total", "Client connections accepted.",
            st->connections_accepted);
    render_requests(out, st, ops, nops);
    render_latency(out, st);
    counter(out, "evstore_events_appended_total", "Events stored by successful appends.",
            st->events_appended);
    counter(out, "evstore_conflicts_total", "Appends refused with conflict.", st->conflicts);
    gauge(out, "evstore_subscriptions", "Open subscriptions.", g.subscribers);
    gauge(out, "evstore_subscriber_queued_bytes",
          "Bytes the daemon holds for subscribers: their connections' queued output and the "
          "live events kept during catch-up reads.",
          g.subscriber_queue_bytes);
    gauge(out, "evstore_subscriber_socket_bytes",
          "Bytes in the socket send queues of subscribers' connections, not yet acknowledged.",
          g.subscriber_socket_bytes);
    gauge(out, "evstore_subscription_lag_max",
          "The largest lag of a subscription: positions between the last event queued for it "
          "and the head.",
          g.subscription_lag_max);
    counter(out, "evstore_subscription_pending_overflows_total",
            "Times a catching-up subscription dropped the live events it kept, to read them from "
            "the store.",
            st->subscription_pending_overflows);
    render_consumers(out, &srv->consumers);
    counter(out, "evstore_reloads_total", "SIGHUP reloads applied.", st->reloads);
    counter(out, "evstore_reloads_failed_total", "SIGHUP reloads refused.", st->reloads_failed);
    gauge(out, "evstore_metrics_connections", "Open connections to the metrics endpoint.",
          srv->metrics ? http_server_connections(srv->metrics) : 0);
    counter(out, "evstore_metrics_refused_total",
            "Metrics connections refused because metrics_max_connections were open.",
            srv->metrics ? http_server_refused(srv->metrics) : 0);
}

/* ---------------------------------------------------------------- the endpoint */

static int handle(void *arg, const char *path, codec_buf_t *body, const char **content_type) {
    server_t *srv = arg;
    if (strcmp(path, "/metrics") != 0) return 404;
    /* The consumers' copy is read again in the background when it is old: the next scrape
     * shows it. */
    stats_consumers_refresh(&srv->consumers, srv->store, STATS_CONSUMERS_FRESH_MS);
    metrics_render(srv, body);
    *content_type = CONTENT_TYPE;
    return 200;
}

static http_limits_t limits_of(const server_config_t *cfg) {
    return (http_limits_t){.max_request = cfg->metrics_max_request,
                           .timeout_ms = cfg->metrics_timeout_ms,
                           .max_connections = cfg->metrics_max_connections};
}

int metrics_start(server_t *srv, char *why, size_t whylen) {
    if (!srv->cfg.metrics_listen) return 0;
    http_limits_t limits = limits_of(&srv->cfg);
    srv->metrics = http_server_new(srv->loop, "metrics_listen", srv->cfg.metrics_listen, &limits,
                                   handle, srv, why, whylen);
    if (!srv->metrics) return -1;
    log_info("metrics", "serving http://%s/metrics", srv->cfg.metrics_listen);
    return 0;
}

void metrics_apply_config(server_t *srv) {
    if (!srv->metrics) return;
    http_limits_t limits = limits_of(&srv->cfg);
    http_server_set_limits(srv->metrics, &limits);
}

void metrics_stop(server_t *srv) {
    if (srv->metrics) http_server_close(srv->metrics);
    srv->metrics = NULL;
}
