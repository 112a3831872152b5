/* listener.c: accepting TCP and Unix-socket connections. */
#include "listener.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "addr.h"
#include "conn.h"
#include "log.h"

struct listener {
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } h;
    server_t *srv;
    bool is_unix;
    bool tls; /* its connections are TLS ones, on srv->tls_ctx */
    bool emfile_logged;
    char path[108];
};

static void on_rejected_closed(uv_handle_t *h) {
    conn_discard(h->data);
}

static void on_connection(uv_stream_t *server, int status) {
    listener_t *l = server->data;
    server_t *srv = l->srv;
    if (status < 0) {
        log_warn("listener", "accept: %s", uv_strerror(status));
        return;
    }
    if (srv->draining) return;
    conn_t *c = conn_new(srv);
    if (!c) {
        log_error("listener", "out of memory for a connection");
        return;
    }
    int rc =
        l->is_unix ? uv_pipe_init(srv->loop, &c->h.pipe, 0) : uv_tcp_init(srv->loop, &c->h.tcp);
    if (rc) {
        conn_discard(c);
        return;
    }
    c->h.handle.data = c;
    rc = uv_accept(server, &c->h.stream);
    if (!rc && l->tls && conn_use_tls(c, srv->tls_ctx) != 0) rc = UV_ENOMEM;
    if (rc) {
        if (!l->emfile_logged || rc != UV_EMFILE)
            log_warn("listener", "accept: %s", uv_strerror(rc));
        if (rc == UV_EMFILE) l->emfile_logged = true;
        /* Never started, so not in the server's list: freed once its handle is closed. */
        uv_close(&c->h.handle, on_rejected_closed);
        return;
    }
    conn_start(c);
}

/* Listens on TCP at hostport; option names the option it comes from, for messages. */
static listener_t *listen_tcp(server_t *srv, const char *option, const char *hostport, bool tls,
                              char *why, size_t whylen) {
    char host[64];
    struct sockaddr_storage addr;
    int bad = addr_parse(hostport, &addr, host, sizeof host);
    if (bad == ADDR_BAD_FORM) {
        snprintf(why, whylen, "--%s %s: expected HOST:PORT", option, hostport);
        return NULL;
    }
    if (bad == ADDR_BAD_HOST) {
        snprintf(why, whylen, "--%s %s: %s is not an IPv4 or IPv6 address", option, hostport, host);
        return NULL;
    }
    listener_t *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    l->srv = srv;
    l->tls = tls;
    uv_tcp_init(srv->loop, &l->h.tcp);
    l->h.handle.data = l;
    int rc = uv_tcp_bind(&l->h.tcp, (struct sockaddr *)&addr, 0);
    if (!rc) rc = uv_listen(&l->h.stream, 511, on_connection);
    if (rc) {
        snprintf(why, whylen, "cannot listen on %s: %s", hostport, uv_strerror(rc));
        listener_close(l);
        return NULL;
    }
    return l;
}

listener_t *listener_tcp(server_t *srv, const char *hostport, char *why, size_t whylen) {
    return listen_tcp(srv, "listen", hostport, false, why, whylen);
}

listener_t *listener_tls(server_t *srv, const char *hostport, char *why, size_t whylen) {
    return listen_tcp(srv, "tls-listen", hostport, true, why, whylen);
}

listener_t *listener_unix(server_t *srv, const char *path, char *why, size_t whylen) {
    struct stat st;
    if (strlen(path) >= sizeof((listener_t *)0)->path) {
        snprintf(why, whylen, "--unix %s: path too long", path);
        return NULL;
    }
    if (stat(path, &st) == 0 && S_ISSOCK(st.st_mode)) unlink(path);
    listener_t *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    l->srv = srv;
    l->is_unix = true;
    snprintf(l->path, sizeof l->path, "%s", path);
    uv_pipe_init(srv->loop, &l->h.pipe, 0);
    l->h.handle.data = l;
    int rc = uv_pipe_bind(&l->h.pipe, path);
    if (!rc) rc = uv_listen(&l->h.stream, 511, on_connection);
    if (rc) {
        snprintf(why, whylen, "cannot listen on %s: %s", path, uv_strerror(rc));
        l->path[0] = '\0';
        listener_close(l);
        return NULL;
    }
    return l;
}

static void on_listener_closed(uv_handle_t *h) {
    listener_t *l = h->data;
    if (l->is_unix && l->path[0]) unlink(l->path);
    free(l);
}

void listener_close(listener_t *l) {
    uv_close(&l->h.handle, on_listener_closed);
}
