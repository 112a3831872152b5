/* main.c: evstored's flags, the event loop, signals and shutdown. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "../proto/frame.h"
#include "conn.h"
#include "listener.h"
#include "log.h"
#include "server.h"
#include "subs.h"

#define DRAIN_TICK_MS 10
#define DRAIN_DEADLINE_MS 10000

static const char usage[] =
    "Usage: evstored [options]\n"
    "The evstore event store daemon.\n"
    "\n"
    "  --listen HOST:PORT        TCP address to listen on (default 127.0.0.1:7433)\n"
    "  --unix PATH               also listen on a Unix socket at PATH\n"
    "  --store URL               \"memory\" (default) or a PostgreSQL URL; default from\n"
    "                            the environment variable EVSTORE_STORE\n"
    "  --max-frame BYTES         largest request frame accepted (default 16777216)\n"
    "  --output-limit BYTES      per-connection queued output above which reading pauses\n"
    "                            and subscribers catch up from the store (default 2097152)\n"
    "  --request-timeout SECONDS deadline of each store operation (default 30)\n"
    "  --log-level LEVEL         error, warn, info (default) or debug\n"
    "  --help                    print this and exit\n"
    "  --version                 print the version and exit\n";

static server_t srv;
static uint64_t drain_elapsed_ms;

/* Parses a whole unsigned number within [min, max]. */
static int parse_uint(const char *s, unsigned long long min, unsigned long long max,
                      unsigned long long *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v < min || v > max) return -1;
    *out = v;
    return 0;
}

static void raise_nofile_limit(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            log_warn("main", "cannot raise the open-file limit: %s", strerror(errno));
    }
}

static void on_flush(uv_prepare_t *h) {
    conn_flush_all(h->data);
}

static void close_handle(uv_handle_t *h) {
    if (!uv_is_closing(h)) uv_close(h, NULL);
}

/* Ends the daemon: closes every connection, frees the store and the subscriptions, and closes
 * the remaining handles so that uv_run returns. */
static void finish(void) {
    while (srv.conns) conn_close(srv.conns, NULL);
    conn_flush_all(&srv);
    if (srv.store) srv.store->ops->free(srv.store);
    srv.store = NULL;
    if (srv.subs) subs_free(srv.subs);
    srv.subs = NULL;
    close_handle((uv_handle_t *)&srv.drain_timer);
    close_handle((uv_handle_t *)&srv.flush_handle);
    close_handle((uv_handle_t *)&srv.sigterm);
    close_handle((uv_handle_t *)&srv.sigint);
}

static bool all_done(void) {
    for (conn_t *c = srv.conns; c; c = c->next)
        if (c->inflight || conn_queued(c)) return false;
    return true;
}

static void on_drain_tick(uv_timer_t *t) {
    (void)t;
    drain_elapsed_ms += DRAIN_TICK_MS;
    conn_flush_all(&srv);
    if (all_done()) {
        log_info("main", "drained; exiting");
        finish();
    } else if (drain_elapsed_ms >= DRAIN_DEADLINE_MS) {
        log_warn("main", "drain deadline passed with requests in flight; exiting");
        finish();
    }
}

/* SIGTERM or SIGINT: stop accepting and reading, let requests in flight finish and their replies
 * go out, then exit 0. A second signal exits at once. */
static void on_signal(uv_signal_t *h, int signum) {
    (void)h;
    if (srv.draining) {
        log_warn("main", "second signal %d: exiting now", signum);
        _exit(1);
    }
    log_info("main", "signal %d: draining", signum);
    srv.draining = true;
    if (srv.tcp) listener_close(srv.tcp);
    if (srv.unix_listener) listener_close(srv.unix_listener);
    srv.tcp = srv.unix_listener = NULL;
    for (conn_t *c = srv.conns; c; c = c->next) conn_stop_reading(c);
    uv_timer_start(&srv.drain_timer, on_drain_tick, 0, DRAIN_TICK_MS);
}

int main(int argc, char **argv) {
    enum { OPT_LISTEN = 256, OPT_UNIX, OPT_STORE, OPT_MAX_FRAME, OPT_OUTPUT_LIMIT, OPT_TIMEOUT,
           OPT_LOG_LEVEL, OPT_HELP, OPT_VERSION };
    static const struct option options[] = {
        {"listen", required_argument, NULL, OPT_LISTEN},
        {"unix", required_argument, NULL, OPT_UNIX},
        {"store", required_argument, NULL, OPT_STORE},
        {"max-frame", required_argument, NULL, OPT_MAX_FRAME},
        {"output-limit", required_argument, NULL, OPT_OUTPUT_LIMIT},
        {"request-timeout", required_argument, NULL, OPT_TIMEOUT},
        {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
        {"help", no_argument, NULL, OPT_HELP},
        {"version", no_argument, NULL, OPT_VERSION},
        {NULL, 0, NULL, 0},
    };
    server_config_t *cfg = &srv.cfg;
    cfg->listen = "127.0.0.1:7433";
    cfg->store_url = getenv("EVSTORE_STORE");
    if (!cfg->store_url || !*cfg->store_url) cfg->store_url = "memory";
    cfg->max_frame = FRAME_DEFAULT_MAX;
    cfg->out_limit = 2 * 1024 * 1024;
    cfg->request_timeout_ms = STORE_DEFAULT_TIMEOUT_MS;

    int opt;
    unsigned long long v;
    while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
        switch (opt) {
        case OPT_LISTEN: cfg->listen = optarg; break;
        case OPT_UNIX: cfg->unix_path = optarg; break;
        case OPT_STORE: cfg->store_url = optarg; break;
        case OPT_MAX_FRAME:
            if (parse_uint(optarg, 64, UINT32_MAX, &v)) {
                fprintf(stderr, "evstored: --max-frame takes 64..4294967295 bytes\n");
                return 2;
            }
            cfg->max_frame = (uint32_t)v;
            break;
        case OPT_OUTPUT_LIMIT:
            if (parse_uint(optarg, 4096, (unsigned long long)1 << 40, &v)) {
                fprintf(stderr, "evstored: --output-limit takes at least 4096 bytes\n");
                return 2;
            }
            cfg->out_limit = (size_t)v;
            break;
        case OPT_TIMEOUT:
            if (parse_uint(optarg, 1, 86400, &v)) {
                fprintf(stderr, "evstored: --request-timeout takes 1..86400 seconds\n");
                return 2;
            }
            cfg->request_timeout_ms = (uint32_t)v * 1000;
            break;
        case OPT_LOG_LEVEL:
            if ((log_level = log_level_parse(optarg)) < 0) {
                fprintf(stderr, "evstored: --log-level takes error, warn, info or debug\n");
                return 2;
            }
            break;
        case OPT_HELP: fputs(usage, stdout); return 0;
        case OPT_VERSION: printf("evstored %s\n", EVS_VERSION); return 0;
        default: fputs(usage, stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "evstored: unexpected argument %s\n%s", argv[optind], usage);
        return 2;
    }

    signal(SIGPIPE, SIG_IGN);
    raise_nofile_limit();
    srv.loop = uv_default_loop();

    codec_error_t err;
    srv.store = store_open(cfg->store_url, srv.loop, &err);
    if (!srv.store) {
        fprintf(stderr, "evstored: store: %s\n", err.message);
        return 1;
    }
    srv.store->request_timeout_ms = cfg->request_timeout_ms;
    srv.subs = subs_new(&srv);
    if (!srv.subs) {
        fprintf(stderr, "evstored: out of memory\n");
        return 1;
    }
    store_set_commit_listener(srv.store, subs_on_commit, srv.subs);

    char why[256];
    srv.tcp = listener_tcp(&srv, cfg->listen, why, sizeof why);
    if (!srv.tcp) {
        fprintf(stderr, "evstored: %s\n", why);
        return 1;
    }
    if (cfg->unix_path) {
        srv.unix_listener = listener_unix(&srv, cfg->unix_path, why, sizeof why);
        if (!srv.unix_listener) {
            fprintf(stderr, "evstored: %s\n", why);
            return 1;
        }
    }
    uv_prepare_init(srv.loop, &srv.flush_handle);
    srv.flush_handle.data = &srv;
    uv_prepare_start(&srv.flush_handle, on_flush);
    uv_timer_init(srv.loop, &srv.drain_timer);
    uv_signal_init(srv.loop, &srv.sigterm);
    uv_signal_init(srv.loop, &srv.sigint);
    uv_signal_start(&srv.sigterm, on_signal, SIGTERM);
    uv_signal_start(&srv.sigint, on_signal, SIGINT);

    log_info("main", "evstored %s listening on %s%s%s, store %s", EVS_VERSION, cfg->listen,
             cfg->unix_path ? " and " : "", cfg->unix_path ? cfg->unix_path : "",
             srv.store->ops->name);
    uv_run(srv.loop, UV_RUN_DEFAULT);
    uv_loop_close(srv.loop);
    return 0;
}
