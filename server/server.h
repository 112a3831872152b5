/* server.h: the daemon's shared state, one per process, owned by main.c. */
#ifndef EVS_SERVER_H
#define EVS_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "stats.h"
#include "stats_consumers.h"
#include "store.h"

typedef struct conn conn_t;
typedef struct subs subs_t;
typedef struct listener listener_t;
typedef struct auth_table auth_table_t;

/* The effective options. config.c's option table describes every field (name, default,
 * whether a reload may change it); config.c owns the strings. */
typedef struct server_config {
    const char *listen;    /* HOST:PORT */
    const char *unix_path; /* optional second listener */
    const char *store_url; /* "memory" or a PostgreSQL URL */
    uint32_t migrate;   /* CONFIG_BOOL: apply missing schema migrations (store_t.never_migrate) */
    uint32_t max_frame; /* largest request frame accepted */
    uint32_t max_event; /* largest event appended, as codec_event_size counts it */
    uint32_t request_timeout_ms;
    size_t out_limit;                 /* per-connection output bytes above which reading pauses and
                                         subscribers fall back to catching up from the store */
    int log_level;                    /* enum log_level */
    uint32_t shutdown_timeout_ms;     /* SIGTERM: longest wait for requests in flight */
    uint32_t status_interval_ms;      /* STATUS= to systemd and the store probe; 0: never */
    uint32_t max_subscriptions;       /* per connection */
    uint32_t max_subscription_topics; /* per subscription */
    size_t write_queue_bytes;         /* writes waiting for the store's database: most bytes */
    size_t write_queue_requests;      /* and most requests */
    size_t memory_limit;              /* bytes the memory store's events and indexes may take */
    uint32_t idle_timeout_ms;         /* close a connection idle this long; 0: never */
    uint32_t frame_timeout_ms;        /* close a connection whose frame takes longer; 0: never */
    size_t frame_memory_limit;        /* input bytes held for unfinished frames, all connections */
    const char *tls_listen;           /* HOST[:PORT] of the TLS listener (tls.h); NULL: none */
    const char *tls_cert, *tls_key;   /* its PEM certificate chain and private key */
    const char *tls_ca;             /* PEM CAs that verify client certificates; NULL: none asked */
    const char *auth_file;          /* principals and credentials (auth.h); NULL: no checks */
    uint32_t allow_unauthenticated; /* CONFIG_BOOL: a plain non-loopback listen without auth */
    const char *unix_mode;          /* octal mode of the Unix socket; NULL: the umask's */
    const char *unix_group;         /* group (name or number) of the Unix socket; NULL: ours */
    const char *metrics_listen;     /* HOST:PORT of the metrics endpoint (metrics.h); NULL: none */
    uint32_t metrics_max_connections; /* its connections open at once */
    uint32_t metrics_timeout_ms;      /* a metrics connection's whole life */
    size_t metrics_max_request;       /* bytes of a metrics request's line and headers */
} server_config_t;

typedef struct server {
    uv_loop_t *loop;
    server_config_t cfg;
    store_t *store;
    subs_t *subs;
    listener_t *tcp, *unix_listener;
    conn_t *conns; /* every open connection (doubly linked through conn.next/prev) */
    size_t nconns;
    /* Connections with output waiting for the next flush, in the order their output became
     * ready: a commit's pushes go out before the replies that acknowledge it. */
    conn_t *flush_list, **flush_tail;
    uv_prepare_t flush_handle;
    uv_signal_t sigterm, sigint, sighup;
    uv_timer_t drain_timer;
    uv_timer_t status_timer;    /* STATUS= lines and the store probe (main.c) */
    stats_t stats;              /* counters and gauges for the stats op (stats.h) */
    const char *config_path;    /* the config file read at start and on SIGHUP; NULL: none */
    bool draining;              /* SIGTERM seen: no new connections or requests */
    uint64_t head_position;     /* highest position committed through this daemon */
    size_t input_bytes;         /* held by the connections' frame readers (frame_memory_limit) */
    listener_t *tls_listener;   /* tls_listen's */
    struct ssl_ctx_st *tls_ctx; /* for connections accepted from now on (tls.h) */
    auth_table_t *auth;         /* the auth_file's principals (auth.h); NULL: no auth_file */
    /* What stats shows of the consumers (stats_consumers.h). */
    stats_consumers_t consumers;
    struct http_server *metrics; /* the metrics endpoint (metrics.h); NULL: none */
} server_t;

/* Reads the gauges of the stats op and of the STATUS= line (connections, subscriptions, queued
 * output, the store's kind) from srv: the one place where stats meet connections and
 * subscriptions. */
void server_gauges(const server_t *srv, stats_gauges_t *g);

/* The newest committed position the daemon knows of: committed through it, or seen on the
 * store's live feed (0 before any). */
uint64_t server_head(const server_t *srv);

#endif
