/* evstore_libuv.h: the libuv adapter of libevstore's asynchronous API, installed as
 * <evstore/libuv.h>. Header only: the program that includes it links libuv itself.
 *
 *     evs_async_t *ac = evs_async_connect(&opts);
 *     if (ac->err || evs_libuv_attach(ac, loop) < 0) ... evs_async_free(ac);
 *
 * One uv_poll_t watches the context's socket. It is closed when the context dies or is freed
 * (its memory is released in the close callback), so uv_run returns once every context is
 * freed. */
#ifndef EVSTORE_LIBUV_H
#define EVSTORE_LIBUV_H

#include <stdlib.h>
#include <uv.h>

#include <evstore/async.h>

typedef struct evs_libuv_events {
    uv_poll_t handle;
    evs_async_t *ac; /* NULL once the context let go of the adapter */
    int events;      /* the UV_READABLE / UV_WRITABLE the context waits for */
} evs_libuv_events_t;

static inline void evs_libuv_poll(uv_poll_t *handle, int status, int events) {
    evs_libuv_events_t *p = (evs_libuv_events_t *)handle->data;
    /* On a poll error, let the context's own read or write meet the error and say it. */
    int ready = status < 0 ? p->events : events;
    if (p->ac && (ready & UV_READABLE)) evs_async_handle_read(p->ac);
    if (p->ac && (ready & UV_WRITABLE)) evs_async_handle_write(p->ac);
}

static inline void evs_libuv_update(evs_libuv_events_t *p, int events) {
    p->events = events;
    if (events)
        uv_poll_start(&p->handle, events, evs_libuv_poll);
    else
        uv_poll_stop(&p->handle);
}

static inline void evs_libuv_add_read(void *data) {
    evs_libuv_events_t *p = (evs_libuv_events_t *)data;
    evs_libuv_update(p, p->events | UV_READABLE);
}

static inline void evs_libuv_del_read(void *data) {
    evs_libuv_events_t *p = (evs_libuv_events_t *)data;
    evs_libuv_update(p, p->events & ~UV_READABLE);
}

static inline void evs_libuv_add_write(void *data) {
    evs_libuv_events_t *p = (evs_libuv_events_t *)data;
    evs_libuv_update(p, p->events | UV_WRITABLE);
}

static inline void evs_libuv_del_write(void *data) {
    evs_libuv_events_t *p = (evs_libuv_events_t *)data;
    evs_libuv_update(p, p->events & ~UV_WRITABLE);
}

static inline void evs_libuv_on_close(uv_handle_t *handle) {
    free(handle->data);
}

static inline void evs_libuv_cleanup(void *data) {
    evs_libuv_events_t *p = (evs_libuv_events_t *)data;
    p->ac = NULL;
    uv_close((uv_handle_t *)&p->handle, evs_libuv_on_close);
}

/* Drives ac from loop. Returns 0; ac->err for a dead context; EVS_EINVAL when ac already has an
 * adapter; EVS_ENOMEM; EVS_EIO when libuv refuses the socket. On failure ac is left as it was. */
static inline int evs_libuv_attach(evs_async_t *ac, uv_loop_t *loop) {
    if (ac->err) return ac->err;
    evs_libuv_events_t *p = (evs_libuv_events_t *)calloc(1, sizeof *p);
    if (!p) return EVS_ENOMEM;
    if (uv_poll_init_socket(loop, &p->handle, ac->fd) < 0) {
        free(p);
        return EVS_EIO;
    }
    p->handle.data = p;
    p->ac = ac;
    evs_async_events_t ev = {.data = p,
                             .add_read = evs_libuv_add_read,
                             .del_read = evs_libuv_del_read,
                             .add_write = evs_libuv_add_write,
                             .del_write = evs_libuv_del_write,
                             .cleanup = evs_libuv_cleanup};
    int r = evs_async_set_events(ac, &ev);
    if (r < 0) {
        p->ac = NULL;
        uv_close((uv_handle_t *)&p->handle, evs_libuv_on_close);
    }
    return r;
}

#endif
