/* main.c: evstored's start-up, the event loop, readiness, reload and shutdown.
 *
 * Start-up: the options come from config.c (defaults, file, $EVSTORE_STORE, flags); the store
 * is opened, the listeners bound, then the store is probed with a one-event read and systemd is
 * told READY=1 only once that read is served (a PostgreSQL store that cannot connect yet keeps
 * the daemon "starting", with the reason in STATUS=, and the probe is retried every second).
 *
 * SIGHUP: RELOADING=1, the config file is read again with the same environment and flags on
 * top; an invalid file leaves the running configuration as it was (logged, counted in stats);
 * a change to an option that cannot change at run time is logged and ignored until a restart.
 * Then READY=1.
 *
 * SIGTERM or SIGINT: STOPPING=1; the listeners close and connections stop reading; requests
 * already started finish and their replies go out (an append acknowledged to its client is
 * stored); subscribers get a "closing" push; when every reply is written, or when
 * shutdown_timeout passes, the daemon exits 0. A second signal exits at once with status 1. */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "../proto/frame.h"
#include "auth.h"
#include "config.h"
#include "conn.h"
#include "dispatch.h"
#include "listener.h"
#include "log.h"
#include "metrics.h"
#include "notify.h"
#include "server.h"
#include "subs.h"
#include "tls.h"

#define DRAIN_TICK_MS 10
#define DRAIN_EOF_MS 1000
#define PROBE_RETRY_MS 1000

static const char usage_head[] =
    "Usage: evstored [--config FILE] [--check-config | --migrate | --new-store-id] [options]\n"
    "The evstore event store daemon.\n"
    "\n"
    "  --config FILE                read options from FILE (default " CONFIG_DEFAULT_PATH
    " when it exists);\n"
    "                               flags win over the file; SIGHUP reads it again\n"
    "  --check-config               check the configuration, print what is wrong, exit 0 or 1\n"
    "  --migrate                    apply the schema migrations the store's database lacks,\n"
    "                               print what was done, exit 0 (or 1 with why not)\n"
    "  --new-store-id               give the store a new random identity (after restoring a\n"
    "                               backup to an earlier point), exit 0 or 1\n"
    "  --help                       print this and exit\n"
    "  --version                    print the version and exit\n"
    "\n"
    "Options (also \"key = value\" in the config file, key with '_' for '-'):\n";

static server_t srv;
static uv_timer_t watchdog_timer;    /* WATCHDOG=1 to systemd (notify.h), when it asks for them */
static config_override_t *overrides; /* the flags' values, applied again on each reload */
static size_t noverrides;

static bool ready;          /* READY=1 was sent */
static bool finished;       /* finish() ran: no more timers, no more notifications */
static bool probe_inflight; /* a store probe waits for its callback */
static int exit_status;     /* main's, once the loop ends */
static uint64_t probe_started;
/* 0: waiting for requests in flight; 1: for output to be written; 2: for the clients to close
 * their side after the daemon shut down its sending side (conn_shutdown), at most
 * DRAIN_EOF_MS. */
static int drain_phase;
static uint64_t drain_eof_started_ms;
static uint64_t drain_elapsed_ms;

static void raise_nofile_limit(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            log_warn("main", "cannot raise the open-file limit: %s", strerror(errno));
    }
}

/* Sends a notification and logs a failure once (an unusable $NOTIFY_SOCKET would otherwise
 * log on every status line). */
static void notify(const char *msg) {
    static bool warned;
    int rc = notify_send(msg);
    if (rc < 0 && !warned) {
        warned = true;
        log_warn("main", "cannot notify systemd at $NOTIFY_SOCKET: %s", strerror(-rc));
    }
}

/* Sends the STATUS= summary, preceded by the lines in extra (e.g. "READY=1\n"). */
static void notify_status(const char *extra) {
    char summary[512], msg[700];
    stats_gauges_t gauges;
    server_gauges(&srv, &gauges);
    stats_summary(&srv.stats, &gauges, summary, sizeof summary);
    snprintf(msg, sizeof msg, "%sSTATUS=%s", extra, summary);
    notify(msg);
}

static void on_flush(uv_prepare_t *h) {
    conn_flush_all(h->data);
}

static void close_handle(uv_handle_t *h) {
    if (!uv_is_closing(h)) uv_close(h, NULL);
}

/* ---------------------------------------------------------------- readiness and status */

static void on_status_tick(uv_timer_t *t);
static void finish(void);

/* (Re)starts the status timer: every status_interval once ready, a one-shot retry before. */
static void schedule_status(void) {
    if (finished || srv.draining) return;
    if (!ready)
        uv_timer_start(&srv.status_timer, on_status_tick, PROBE_RETRY_MS, 0);
    else if (srv.cfg.status_interval_ms)
        uv_timer_start(&srv.status_timer, on_status_tick, srv.cfg.status_interval_ms,
                       srv.cfg.status_interval_ms);
    else
        uv_timer_stop(&srv.status_timer);
}

static void probe_done(void *arg, const codec_error_t *err, const evs_event_t *evs, size_t n) {
    (void)arg, (void)evs, (void)n;
    int before = srv.stats.store_state;
    probe_inflight = false;
    stats_store_done(&srv.stats, probe_started, err ? err->code : 0);
    if (finished) return;
    if (err) {
        /* A condition of the store's was logged by the store, once (store_set_condition). */
        if (before != STORE_STATE_UNAVAILABLE && srv.store->condition.status == STORE_STATUS_OK)
            log_warn("store", "cannot serve: %s", err->message);
        if (!ready) {
            char msg[400];
            snprintf(msg, sizeof msg, "STATUS=waiting for the store: %s", err->message);
            notify(msg);
            schedule_status();
        }
        return;
    }
    if (before == STORE_STATE_UNAVAILABLE && srv.store->condition.status == STORE_STATUS_OK)
        log_info("store", "serving again");
    /* A read was served, but READY=1 also waits for the store to say that appends work (a
     * schema whose functions are missing serves reads and fails every append). */
    store_status_t status = srv.store->condition.status;
    if (!ready && status != STORE_STATUS_OK && status != STORE_STATUS_DEGRADED) {
        char msg[600];
        snprintf(msg, sizeof msg, "STATUS=waiting for the store: %s", srv.store->condition.reason);
        notify(msg);
        schedule_status();
        return;
    }
    if (!ready && !srv.draining) {
        ready = true;
        log_info("main", "ready");
        notify_status("READY=1\n");
        schedule_status();
    }
}

/* The store refused its database's schema before the daemon was ready: it exits 1 (from the
 * loop, not inside the store's callback), so that a service manager shows the failure instead
 * of a daemon that retries for ever. */
static void on_refused_tick(uv_timer_t *t) {
    (void)t;
    if (finished) return;
    if (srv.tcp) listener_close(srv.tcp);
    if (srv.unix_listener) listener_close(srv.unix_listener);
    if (srv.tls_listener) listener_close(srv.tls_listener);
    srv.tcp = srv.unix_listener = srv.tls_listener = NULL;
    finish();
}

/* The store's condition changed (store.h): a refused schema ends a daemon that is not ready yet
 * (once ready, the daemon stays up and says why in health, stats and every failed request). */
static void on_store_condition(void *arg) {
    (void)arg;
    const store_condition_t *c = &srv.store->condition;
    if (ready || finished || srv.draining) return;
    if (c->status == STORE_STATUS_OK || c->status == STORE_STATUS_DEGRADED) {
        /* READY=1 as soon as a read is served too: the probe goes from the loop, not from
         * inside the store's callback. */
        uv_timer_start(&srv.status_timer, on_status_tick, 0, 0);
        return;
    }
    if (c->status != STORE_STATUS_DOWN || !c->refused) return;
    char msg[600];
    snprintf(msg, sizeof msg, "STATUS=refusing the store's schema: %s", c->reason);
    notify(msg);
    log_error("main", "exiting: the store's schema cannot be used by this evstored");
    exit_status = 1;
    srv.draining = true;
    uv_timer_stop(&srv.status_timer);
    uv_timer_start(&srv.drain_timer, on_refused_tick, 0, 0);
}

/* Asks the store for one event: the answer says whether it can serve. */
static void probe_store(void) {
    if (probe_inflight || !srv.store) return;
    probe_inflight = true;
    probe_started = uv_hrtime();
    store_read_t q = {.after = 0, .limit = 1};
    srv.store->ops->read(srv.store, &q, probe_done, NULL);
    stats_consumers_refresh(&srv.consumers, srv.store, 0);
}

static void on_status_tick(uv_timer_t *t) {
    (void)t;
    if (ready) notify_status("");
    probe_store();
}

/* ---------------------------------------------------------------- shutdown */

/* Ends the daemon: closes every connection, frees the store and the subscriptions, and closes
 * the remaining handles so that uv_run returns. */
static void finish(void) {
    finished = true;
    while (srv.conns)
        conn_close(srv.conns, NULL);
    conn_flush_all(&srv);
    stats_consumers_close(&srv.consumers);
    if (srv.store) srv.store->ops->free(srv.store);
    srv.store = NULL;
    if (srv.subs) subs_free(srv.subs);
    srv.subs = NULL;
    dispatch_free();
    metrics_stop(&srv);
    close_handle((uv_handle_t *)&srv.drain_timer);
    close_handle((uv_handle_t *)&srv.status_timer);
    close_handle((uv_handle_t *)&watchdog_timer);
    close_handle((uv_handle_t *)&srv.flush_handle);
    close_handle((uv_handle_t *)&srv.sigterm);
    close_handle((uv_handle_t *)&srv.sigint);
    close_handle((uv_handle_t *)&srv.sighup);
    tls_ctx_free(srv.tls_ctx); /* the sessions of connections still closing hold their own */
    srv.tls_ctx = NULL;
}

static size_t requests_in_flight(void) {
    size_t n = 0;
    for (conn_t *c = srv.conns; c; c = c->next)
        n += c->inflight;
    return n;
}

static size_t output_queued(void) {
    size_t n = 0;
    for (conn_t *c = srv.conns; c; c = c->next)
        n += conn_queued(c);
    return n;
}

static void on_drain_tick(uv_timer_t *t) {
    (void)t;
    drain_elapsed_ms += DRAIN_TICK_MS;
    conn_flush_all(&srv);
    bool late = drain_elapsed_ms >= srv.cfg.shutdown_timeout_ms;
    if (drain_phase == 0) {
        size_t n = requests_in_flight();
        if (n && !late) return;
        if (n) log_warn("main", "shutdown_timeout passed with %zu requests in flight", n);
        /* Every reply is packed: the subscribers learn that the stream ends here. */
        if (srv.subs) subs_notify_closing(srv.subs);
        conn_flush_all(&srv);
        drain_phase = 1;
    }
    if (drain_phase == 1) {
        size_t queued = output_queued();
        if (queued && !late) return;
        if (queued) {
            log_warn("main", "shutdown_timeout passed with %zu bytes unsent", queued);
            finish();
            return;
        }
        /* Every reply is written: each client reads EOF after its last one. */
        for (conn_t *c = srv.conns; c; c = c->next)
            conn_shutdown(c);
        drain_phase = 2;
        drain_eof_started_ms = drain_elapsed_ms;
    }
    if (srv.conns && !late && drain_elapsed_ms - drain_eof_started_ms < DRAIN_EOF_MS) return;
    log_info("main", "drained; exiting");
    finish();
}

/* SIGTERM or SIGINT: see the top of the file. */
static void on_signal(uv_signal_t *h, int signum) {
    (void)h;
    if (srv.draining) {
        log_warn("main", "second signal %d: exiting now", signum);
        notify("STATUS=exiting at once on a second signal");
        _exit(1);
    }
    log_info("main", "signal %d: draining (at most %u s)", signum,
             srv.cfg.shutdown_timeout_ms / 1000);
    srv.draining = true;
    notify_status("STOPPING=1\n");
    uv_timer_stop(&srv.status_timer);
    if (srv.tcp) listener_close(srv.tcp);
    if (srv.unix_listener) listener_close(srv.unix_listener);
    if (srv.tls_listener) listener_close(srv.tls_listener);
    srv.tcp = srv.unix_listener = srv.tls_listener = NULL;
    for (conn_t *c = srv.conns; c; c = c->next)
        conn_stop_reading(c);
    uv_timer_start(&srv.drain_timer, on_drain_tick, 0, DRAIN_TICK_MS);
}

/* ---------------------------------------------------------------- reload */

/* Applies the options of srv.cfg that take effect elsewhere than where they are read. */
static void apply_config(void) {
    log_level = srv.cfg.log_level;
    if (srv.store) {
        srv.store->request_timeout_ms = srv.cfg.request_timeout_ms;
        /* No reply carries more than a page under max_frame, nor more than output_limit (the
         * connection's room, conn_reply_room): a read fetches no more than that. */
        size_t page = codec_page_budget(srv.cfg.max_frame);
        srv.store->page_bytes = page < srv.cfg.out_limit ? page : srv.cfg.out_limit;
        srv.store->write_queue_bytes = srv.cfg.write_queue_bytes;
        srv.store->write_queue_requests = srv.cfg.write_queue_requests;
        srv.store->memory_limit = srv.cfg.memory_limit;
        srv.store->never_migrate = !srv.cfg.migrate;
    }
    conn_timeouts_changed(&srv);
    metrics_apply_config(&srv);
}

/* Makes auth the principals in force (NULL: no auth_file): new auth requests use it at once,
 * and each connection's principal is looked up again by name. */
static void replace_auth(auth_table_t *auth) {
    auth_table_t *old = srv.auth;
    srv.auth = auth;
    conn_auth_reloaded(&srv);
    auth_table_free(old);
    if (auth)
        log_info("auth", "%s: %zu principal%s", srv.cfg.auth_file, auth_table_size(auth),
                 auth_table_size(auth) == 1 ? "" : "s");
}

/* Ends a reload for systemd: READY=1 again, if the daemon was ready before it (a reload while
 * still waiting for the store says nothing: READY=1 comes with the store). */
static void reload_done(void) {
    if (!ready) return;
    notify_status("READY=1\n");
    schedule_status();
}

/* Builds the TLS context again from the files (they may have changed under the same names): the
 * connections accepted from now on use it, the others keep theirs. A failure keeps the old one. */
static void reload_tls(void) {
    if (!srv.tls_listener) return;
    char why[600];
    struct ssl_ctx_st *ctx = tls_ctx_new(&srv.cfg, why, sizeof why);
    if (!ctx) {
        srv.stats.reloads_failed++;
        log_error("config", "TLS: keeping the running certificate: %s", why);
        return;
    }
    tls_ctx_free(srv.tls_ctx);
    srv.tls_ctx = ctx;
    log_info("config", "TLS: certificate and key read again from %s and %s", srv.cfg.tls_cert,
             srv.cfg.tls_key);
}

static void on_sighup(uv_signal_t *h, int signum) {
    (void)h, (void)signum;
    if (srv.draining) return;
    if (ready) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        char msg[128];
        snprintf(msg, sizeof msg, "RELOADING=1\nMONOTONIC_USEC=%llu",
                 (unsigned long long)ts.tv_sec * 1000000ULL +
                     (unsigned long long)ts.tv_nsec / 1000);
        notify(msg);
    }
    log_info("config", "SIGHUP: reloading %s", srv.config_path ? srv.config_path : "(no file)");

    server_config_t next;
    char why[CONFIG_WHY_MAX];
    auth_table_t *auth = NULL;
    if (config_load(&next, srv.config_path, overrides, noverrides, why, sizeof why) != 0) {
        srv.stats.reloads_failed++;
        for (char *save = NULL, *p = why, *line; (line = strtok_r(p, "\n", &save)); p = NULL)
            log_error("config", "reload: %s", line);
        log_error("config", "reload failed (%zu error%s above), keeping the running configuration",
                  config_errors_count(why), config_errors_count(why) == 1 ? "" : "s");
        reload_done();
        return;
    }
    if (next.auth_file && auth_table_load(next.auth_file, &auth, why, sizeof why) != 0) {
        config_free(&next);
        srv.stats.reloads_failed++;
        log_error("config", "reload failed, keeping the running configuration and auth_file: %s",
                  why);
        reload_done();
        return;
    }
    int changed = 0;
    for (size_t i = 0; i < config_noptions; i++) {
        const config_option_t *o = &config_options[i];
        if (config_same(&srv.cfg, &next, o)) continue;
        char was[256], now[256];
        config_format(&srv.cfg, o, was, sizeof was);
        config_format(&next, o, now, sizeof now);
        if (!o->reloadable) {
            log_warn("config", "%s changed from \"%s\" to \"%s\": restart evstored to apply it",
                     o->name, was, now);
            if (config_copy_option(&next, &srv.cfg, o) != 0) {
                config_free(&next);
                srv.stats.reloads_failed++;
                log_error("config", "reload failed (out of memory), keeping the running one");
                reload_done();
                return;
            }
            continue;
        }
        log_info("config", "%s: \"%s\" -> \"%s\"", o->name, was, now);
        changed++;
    }
    config_free(&srv.cfg);
    srv.cfg = next;
    replace_auth(auth);
    apply_config();
    reload_tls();
    srv.stats.reloads++;
    log_info("config", "reloaded: %d option%s changed", changed, changed == 1 ? "" : "s");
    reload_done();
}

/* ---------------------------------------------------------------- start-up */

enum {
    OPT_CONFIG = 1000,
    OPT_CHECK,
    OPT_HELP,
    OPT_VERSION,
    OPT_MIGRATE,
    OPT_NEW_STORE_ID,
    OPT_TABLE = 2000
};

/* What evstored does: serve, or one of the one-shot modes. */
enum mode { MODE_SERVE, MODE_CHECK, MODE_MIGRATE, MODE_NEW_STORE_ID };

/* Fills getopt_long's table: a flag for each option of config.c's table (OPT_TABLE + its
 * index), named in names[i] with '-' for '_', then the mode flags, then the zero row. */
static void fill_longopts(struct option *longopts, char (*names)[64]) {
    size_t k = 0;
    for (size_t i = 0; i < config_noptions; i++) {
        config_flag_name(&config_options[i], names[i], sizeof names[i]);
        longopts[k++] = (struct option){names[i], required_argument, NULL, OPT_TABLE + (int)i};
    }
    longopts[k++] = (struct option){"config", required_argument, NULL, OPT_CONFIG};
    longopts[k++] = (struct option){"check-config", no_argument, NULL, OPT_CHECK};
    longopts[k++] = (struct option){"migrate", no_argument, NULL, OPT_MIGRATE};
    longopts[k++] = (struct option){"new-store-id", no_argument, NULL, OPT_NEW_STORE_ID};
    longopts[k++] = (struct option){"help", no_argument, NULL, OPT_HELP};
    longopts[k++] = (struct option){"version", no_argument, NULL, OPT_VERSION};
}

/* Parses the command line into the config path, the overrides and the mode flags. Returns -1
 * to go on, or an exit status. */
static int parse_args(int argc, char **argv, const char **config_path, enum mode *mode) {
    struct option *longopts = calloc(config_noptions + 7, sizeof *longopts);
    char(*names)[64] = calloc(config_noptions, sizeof *names);
    overrides = calloc(argc, sizeof *overrides);
    if (!longopts || !names || !overrides) {
        fprintf(stderr, "evstored: out of memory\n");
        free(longopts);
        free(names);
        return 1;
    }
    fill_longopts(longopts, names);

    int status = -1, opt;
    char bad_flags[CONFIG_WHY_MAX] = ""; /* printed unless --check-config reports them */
    server_config_t scratch;
    memset(&scratch, 0, sizeof scratch);
    while (status < 0 && (opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (opt >= OPT_TABLE && opt < OPT_TABLE + (int)config_noptions) {
            /* Check the value now so that a bad flag is a usage error (status 2); with
             * --check-config, config_load reports it among the others. */
            const config_option_t *o = &config_options[opt - OPT_TABLE];
            char why[1024];
            if (config_set(&scratch, o, optarg, why, sizeof why) != 0) {
                const char *colon = strchr(why, ':');
                size_t at = strlen(bad_flags);
                snprintf(bad_flags + at, sizeof bad_flags - at, "evstored: --%s%s\n",
                         names[opt - OPT_TABLE], colon ? colon : why);
            }
            overrides[noverrides++] = (config_override_t){o, optarg};
            continue;
        }
        switch (opt) {
        case OPT_CONFIG:
            *config_path = optarg;
            break;
        case OPT_CHECK:
            *mode = MODE_CHECK;
            break;
        case OPT_MIGRATE:
            *mode = MODE_MIGRATE;
            break;
        case OPT_NEW_STORE_ID:
            *mode = MODE_NEW_STORE_ID;
            break;
        case OPT_HELP:
            fputs(usage_head, stdout);
            config_print_help(stdout);
            status = 0;
            break;
        case OPT_VERSION:
            printf("evstored %s\n", EVS_VERSION);
            status = 0;
            break;
        default:
            fputs(usage_head, stderr);
            config_print_help(stderr);
            status = 2;
        }
    }
    if (status < 0 && *bad_flags && *mode != MODE_CHECK) {
        fputs(bad_flags, stderr);
        status = 2;
    }
    if (status < 0 && optind < argc) {
        fprintf(stderr, "evstored: unexpected argument %s (evstored --help lists the options)\n",
                argv[optind]);
        status = 2;
    }
    config_free(&scratch);
    free(longopts);
    free(names);
    return status;
}

static void free_globals(void) {
    auth_table_free(srv.auth);
    srv.auth = NULL;
    config_free(&srv.cfg);
    free(overrides);
    overrides = NULL;
}

/* Opens the store, the subscriptions and the listeners that srv.cfg asks for. Returns -1 to go
 * on, or the exit status with the reason printed. */
static int open_server(void) {
    const server_config_t *cfg = &srv.cfg;
    codec_error_t err;
    srv.store = store_open(cfg->store_url, srv.loop, &err);
    if (!srv.store) {
        fprintf(stderr, "evstored: store: %s\n", err.message);
        free_globals();
        return 1;
    }
    apply_config();
    srv.subs = subs_new(&srv);
    if (!srv.subs) {
        fprintf(stderr, "evstored: out of memory\n");
        return 1;
    }
    store_set_commit_listener(srv.store, subs_on_commit, srv.subs);
    store_set_live_listener(srv.store, subs_on_live, srv.subs);
    srv.store->on_condition = on_store_condition;

    char why[600];
    if (cfg->listen && !(srv.tcp = listener_tcp(&srv, cfg->listen, why, sizeof why))) {
        fprintf(stderr, "evstored: %s\n", why);
        return 1;
    }
    if (cfg->tls_listen) {
        char hostport[128];
        tls_listen_address(cfg->tls_listen, hostport, sizeof hostport);
        if (!(srv.tls_ctx = tls_ctx_new(cfg, why, sizeof why)) ||
            !(srv.tls_listener = listener_tls(&srv, hostport, why, sizeof why))) {
            fprintf(stderr, "evstored: %s\n", why);
            return 1;
        }
    }
    if (cfg->unix_path) {
        srv.unix_listener = listener_unix(&srv, cfg->unix_path, why, sizeof why);
        if (!srv.unix_listener) {
            fprintf(stderr, "evstored: %s\n", why);
            return 1;
        }
    }
    if (metrics_start(&srv, why, sizeof why) != 0) {
        fprintf(stderr, "evstored: %s\n", why);
        return 1;
    }
    return -1;
}

/* A service is expected to keep its data across restarts; the memory store (the installed
 * default) does not: say so where the administrator looks, when systemd runs the daemon. */
static void warn_memory_store_under_systemd(void) {
    if (strcmp(srv.store->ops->name, "memory") != 0) return;
    if (!getenv("INVOCATION_ID") && !getenv("NOTIFY_SOCKET")) return;
    log_warn("store",
             "the memory store keeps events only in this process: every event is lost "
             "when evstored stops or restarts; set store to a PostgreSQL URL in %s "
             "(evstored.conf(5))",
             srv.config_path ? srv.config_path : CONFIG_DEFAULT_PATH);
}

/* Starts the loop's own handles: the flush after each loop turn, the drain and status timers,
 * the watchdog's keep-alive, and the signals. */
static void start_handles(void) {
    uv_prepare_init(srv.loop, &srv.flush_handle);
    srv.flush_handle.data = &srv;
    uv_prepare_start(&srv.flush_handle, on_flush);
    uv_timer_init(srv.loop, &srv.drain_timer);
    uv_timer_init(srv.loop, &srv.status_timer);
    uv_timer_init(srv.loop, &watchdog_timer);
    uint64_t watchdog_ms = notify_watchdog_start(&watchdog_timer);
    if (watchdog_ms)
        log_info("main", "systemd watchdog: WATCHDOG=1 every %llu ms",
                 (unsigned long long)watchdog_ms);
    uv_signal_init(srv.loop, &srv.sigterm);
    uv_signal_init(srv.loop, &srv.sigint);
    uv_signal_init(srv.loop, &srv.sighup);
    uv_signal_start(&srv.sigterm, on_signal, SIGTERM);
    uv_signal_start(&srv.sigint, on_signal, SIGINT);
    uv_signal_start(&srv.sighup, on_sighup, SIGHUP);
}

int main(int argc, char **argv) {
    const char *config_path = NULL;
    enum mode mode = MODE_SERVE;
    int status = parse_args(argc, argv, &config_path, &mode);
    if (status >= 0) {
        free(overrides);
        return status;
    }
    if (!config_path && access(CONFIG_DEFAULT_PATH, F_OK) == 0) config_path = CONFIG_DEFAULT_PATH;
    srv.config_path = config_path;

    char why[CONFIG_WHY_MAX];
    if (config_load(&srv.cfg, config_path, overrides, noverrides, why, sizeof why) != 0) {
        /* Every error, one a line, each saying where the value came from; then their number
         * when there are several. */
        size_t n = config_errors_count(why);
        fprintf(stderr, "%s\n", why);
        if (n > 1) fprintf(stderr, "evstored: %zu errors in the configuration\n", n);
        free(overrides);
        return 1;
    }
    if (srv.cfg.auth_file && auth_table_load(srv.cfg.auth_file, &srv.auth, why, sizeof why) != 0) {
        fprintf(stderr, "evstored: auth_file %s\n", why);
        free_globals();
        return 1;
    }
    if (mode == MODE_CHECK) {
        printf("evstored: configuration OK (%s)\n", config_path ? config_path : "no file");
        free_globals();
        return 0;
    }
    if (mode == MODE_MIGRATE || mode == MODE_NEW_STORE_ID) {
        log_level = srv.cfg.log_level;
        char msg[800];
        int rc = mode == MODE_MIGRATE ? store_migrate(srv.cfg.store_url, msg, sizeof msg)
                                      : store_new_id(srv.cfg.store_url, msg, sizeof msg);
        fprintf(rc == 0 ? stdout : stderr, "evstored: %s\n", msg);
        free_globals();
        return rc == 0 ? 0 : 1;
    }
    server_config_t *cfg = &srv.cfg;
    log_level = cfg->log_level;
    /* Frames and replies of up to max_frame (16 MiB) come and go. glibc serves a block that
     * large with mmap, but after freeing one it raises its mmap threshold to that size, so the
     * next ones come from the heap, where a freed 16 MiB block is rarely returned to the system
     * and can be split for small allocations: under a mix of large frames the daemon's memory
     * then grew to about twice the bytes in flight. A fixed threshold keeps every block over
     * 1 MiB in its own mapping, returned when it is freed. */
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
    stats_init(&srv.stats);

    signal(SIGPIPE, SIG_IGN);
    raise_nofile_limit();
    srv.loop = uv_default_loop();

    status = open_server();
    if (status >= 0) return status;
    start_handles();

    log_info("main", "evstored %s listening on %s%s%s%s%s, store %s%s%s", EVS_VERSION,
             cfg->listen ? cfg->listen : "", cfg->tls_listen ? " tls:" : "",
             cfg->tls_listen ? cfg->tls_listen : "", cfg->unix_path ? " unix:" : "",
             cfg->unix_path ? cfg->unix_path : "", srv.store->ops->name,
             config_path ? ", config " : "", config_path ? config_path : "");
    warn_memory_store_under_systemd();
    probe_store();
    uv_run(srv.loop, UV_RUN_DEFAULT);
    uv_loop_close(srv.loop);
    free_globals();
    return exit_status;
}
