/* listener.c: accepting TCP and Unix-socket connections. */
#include "listener.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
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
    int lock_fd; /* PATH.lock, locked while the Unix socket is ours; -1 for TCP */
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
    char flag[64];
    struct sockaddr_storage addr;
    snprintf(flag, sizeof flag, "--%s", option);
    if (addr_parse_listen(flag, hostport, &addr, why, whylen) != 0) return NULL;
    listener_t *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    l->srv = srv;
    l->tls = tls;
    l->lock_fd = -1;
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

/* Removes the socket (when socket_too: it was bound) and the lock file of a Unix listener that
 * owns them (the lock file while still held, so that the next daemon's lock is on a new file),
 * and releases the lock. */
static void remove_unix_files(listener_t *l, bool socket_too) {
    if (l->is_unix && l->path[0]) {
        char lock[sizeof l->path + 8];
        snprintf(lock, sizeof lock, "%s.lock", l->path);
        if (socket_too) unlink(l->path);
        unlink(lock);
        l->path[0] = '\0';
    }
    if (l->lock_fd >= 0) close(l->lock_fd);
    l->lock_fd = -1;
}

/* Takes PATH.lock with flock: the daemon holding it owns the socket at path (and removes both
 * when it stops). Returns the locked fd, or -1 with why set: a second daemon given the same path
 * refuses to start instead of taking the socket over. A lock taken on a file that its owner
 * removed meanwhile is no lock: the path must still name the locked file, else it is tried
 * again. */
static int lock_unix_path(const char *path, char *why, size_t whylen) {
    char lock[sizeof((listener_t *)0)->path + 8];
    snprintf(lock, sizeof lock, "%s.lock", path);
    for (int attempt = 0; attempt < 5; attempt++) {
        int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0) {
            snprintf(why, whylen, "--unix %s: cannot open %s: %s", path, lock, strerror(errno));
            return -1;
        }
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            int e = errno;
            close(fd);
            if (e == EWOULDBLOCK)
                snprintf(why, whylen,
                         "--unix %s: another evstored serves this socket (it holds %s); not "
                         "taking it over",
                         path, lock);
            else
                snprintf(why, whylen, "--unix %s: cannot lock %s: %s", path, lock, strerror(e));
            return -1;
        }
        struct stat held, named;
        if (fstat(fd, &held) == 0 && stat(lock, &named) == 0 && held.st_dev == named.st_dev &&
            held.st_ino == named.st_ino)
            return fd;
        close(fd);
    }
    snprintf(why, whylen, "--unix %s: %s keeps changing: another evstored is starting", path, lock);
    return -1;
}

/* Gives the bound socket the group and mode of the unix_group and unix_mode options. */
static int set_unix_owner(const server_config_t *cfg, const char *path, char *why, size_t whylen) {
    if (cfg->unix_group) {
        char *end;
        unsigned long gid = strtoul(cfg->unix_group, &end, 10);
        if (*end || !*cfg->unix_group) {
            struct group *g = getgrnam(cfg->unix_group);
            if (!g) {
                snprintf(why, whylen, "unix_group: no group \"%s\"", cfg->unix_group);
                return -1;
            }
            gid = g->gr_gid;
        }
        if (chown(path, (uid_t)-1, (gid_t)gid) != 0) {
            snprintf(why, whylen, "unix_group: cannot give %s group %s: %s", path, cfg->unix_group,
                     strerror(errno));
            return -1;
        }
    }
    if (cfg->unix_mode && chmod(path, (mode_t)strtoul(cfg->unix_mode, NULL, 8)) != 0) {
        snprintf(why, whylen, "unix_mode: cannot chmod %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

listener_t *listener_unix(server_t *srv, const char *path, char *why, size_t whylen) {
    struct stat st;
    if (strlen(path) >= sizeof((listener_t *)0)->path) {
        snprintf(why, whylen, "--unix %s: path too long", path);
        return NULL;
    }
    int lock_fd = lock_unix_path(path, why, whylen);
    if (lock_fd < 0) return NULL;
    /* Ours now: a socket left at path is a stale one of a daemon that did not remove it. */
    if (stat(path, &st) == 0 && S_ISSOCK(st.st_mode)) unlink(path);
    listener_t *l = calloc(1, sizeof *l);
    if (!l) {
        close(lock_fd);
        return NULL;
    }
    l->srv = srv;
    l->is_unix = true;
    l->lock_fd = lock_fd;
    snprintf(l->path, sizeof l->path, "%s", path);
    uv_pipe_init(srv->loop, &l->h.pipe, 0);
    l->h.handle.data = l;
    /* With unix_mode, no one else may connect between bind and chmod. */
    mode_t old_umask = srv->cfg.unix_mode ? umask(0177) : 0;
    int rc = uv_pipe_bind(&l->h.pipe, path);
    if (srv->cfg.unix_mode) umask(old_umask);
    bool bound = rc == 0; /* else what is at path is not ours to remove */
    if (rc) snprintf(why, whylen, "cannot listen on %s: %s", path, uv_strerror(rc));
    if (!rc && set_unix_owner(&srv->cfg, path, why, whylen) != 0) rc = -1;
    if (!rc && (rc = uv_listen(&l->h.stream, 511, on_connection)) != 0)
        snprintf(why, whylen, "cannot listen on %s: %s", path, uv_strerror(rc));
    if (rc) {
        /* Now: the daemon exits without running the loop that would close the handle. */
        remove_unix_files(l, bound);
        listener_close(l);
        return NULL;
    }
    return l;
}

static void on_listener_closed(uv_handle_t *h) {
    listener_t *l = h->data;
    remove_unix_files(l, true);
    free(l);
}

void listener_close(listener_t *l) {
    uv_close(&l->h.handle, on_listener_closed);
}
