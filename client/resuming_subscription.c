/* resuming_subscription.c: a subscription that survives lost connections. Its public name is
 * evs_stream_t (evs_stream_open, evs_stream_next, ...): a stream of the store's events, not an
 * entity's event stream.
 *
 * A stream owns its own context. It hands out events one at a time and remembers the position
 * of the last one it handed out. When the connection fails (the daemon restarted, the network
 * cut, a timeout), it drops the context, waits a backoff, connects again and subscribes with
 * "after" = that position, so the application sees every event exactly once and in order across
 * any number of reconnects. Events at or below the last position are skipped as a guard, though
 * the server's exactly-once rule already excludes them. Before the first event, the position to
 * resume from is the "after" of the first subscribe reply (where the live stream started).
 *
 * A position belongs to one store. On every connection the stream asks the server for its store
 * identity (ping's "store_id") before it subscribes; when it differs from the one its position
 * belongs to (a memory daemon restarted, a daemon pointed at another database), the position
 * means nothing there, and resuming after it would skip that store's first events: the stream
 * starts from the new store's beginning instead (unless keep_position), and counts the change. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client_priv.h"

struct evs_stream {
    char *addr;
    int timeout_ms;
    char **topics;
    size_t ntopics;
    char *entity_prefix;
    int retry_min_ms, retry_max_ms;
    uint32_t max_frame; /* as evs_options_t.max_frame */
    bool tls;           /* evs_stream_options_t.tls was given: its strings are in tls_str */
    char *tls_str[4];   /* ca_file, cert_file, key_file, server_name (each may be NULL) */
    char *token;        /* as evs_options_t.token (NULL: $EVSTORE_TOKEN) */

    evs_context_t *ctx; /* NULL while disconnected */
    evs_push_t *push;   /* the push being handed out */
    size_t next;        /* its next event */
    bool have_position; /* last is meaningful (given by the caller or learnt) */
    uint64_t last;      /* position of the last event handed out, or the start */
    bool caught_up;
    int backoff_ms;
    int64_t retry_at; /* monotonic ms before which no reconnect is tried */
    bool connected_once;
    unsigned reconnects;             /* successful connections after the first */
    int stopped;                     /* 0, or the code of a failure reconnecting cannot mend */
    char store_id[EVS_STORE_ID_LEN]; /* the store the position belongs to, "" while unknown */
    bool keep_position;
    unsigned store_changes;
    char errstr[256];
};

static int64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int64_t ms) {
    if (ms <= 0) return;
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

EVS_API void evs_stream_close(evs_stream_t *s) {
    if (!s) return;
    evs_free(s->ctx);
    evs_push_free(s->push);
    for (size_t i = 0; i < s->ntopics; i++)
        free(s->topics[i]);
    free(s->topics);
    free(s->entity_prefix);
    free(s->addr);
    for (int i = 0; i < 4; i++)
        free(s->tls_str[i]);
    free(s->token);
    free(s);
}

EVS_API evs_stream_t *evs_stream_open(const evs_stream_options_t *o) {
    evs_stream_t *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    evs_stream_options_t d = {0};
    if (!o) o = &d;
    s->addr = strdup(o->addr ? o->addr : EVS_DEFAULT_ADDR);
    s->timeout_ms = o->timeout_ms;
    s->max_frame = o->max_frame;
    if (o->token && !(s->token = strdup(o->token))) goto fail;
    s->retry_min_ms = o->retry_min_ms > 0 ? o->retry_min_ms : 100;
    s->retry_max_ms = o->retry_max_ms > 0 ? o->retry_max_ms : 5000;
    if (s->retry_max_ms < s->retry_min_ms) s->retry_max_ms = s->retry_min_ms;
    s->backoff_ms = s->retry_min_ms;
    s->have_position = o->has_after;
    s->last = o->after;
    s->keep_position = o->keep_position;
    if (o->store_id) snprintf(s->store_id, sizeof s->store_id, "%s", o->store_id);
    if (!s->addr || o->ntopics > CODEC_MAX_TOPICS) goto fail;
    if ((s->tls = o->tls != NULL)) {
        const char *str[4] = {o->tls->ca_file, o->tls->cert_file, o->tls->key_file,
                              o->tls->server_name};
        for (int i = 0; i < 4; i++)
            if (str[i] && !(s->tls_str[i] = strdup(str[i]))) goto fail;
    }
    if (o->ntopics) {
        if (!(s->topics = calloc(o->ntopics, sizeof *s->topics))) goto fail;
        for (size_t i = 0; i < o->ntopics; i++) {
            if (!o->topics[i] || !codec_valid_name(o->topics[i], strlen(o->topics[i])) ||
                !(s->topics[i] = strdup(o->topics[i])))
                goto fail;
            s->ntopics++;
        }
    }
    if (o->entity_prefix && *o->entity_prefix) {
        size_t n = strlen(o->entity_prefix);
        if (n > EVS_NAME_MAX || !codec_valid_name(o->entity_prefix, n) ||
            !(s->entity_prefix = strdup(o->entity_prefix)))
            goto fail;
    }
    return s;
fail:
    evs_stream_close(s);
    return NULL;
}

/* Drops the connection after a failure and schedules the next attempt (doubling backoff). */
static void disconnect(evs_stream_t *s, const char *why) {
    snprintf(s->errstr, sizeof s->errstr, "%s", why);
    evs_free(s->ctx);
    s->ctx = NULL;
    evs_push_free(s->push);
    s->push = NULL;
    s->retry_at = mono_ms() + s->backoff_ms;
    s->backoff_ms = s->backoff_ms * 2 > s->retry_max_ms ? s->retry_max_ms : s->backoff_ms * 2;
}

/* Connects and subscribes from the stream's position. 0, or -1 (disconnected again). */
static int connect_and_subscribe(evs_stream_t *s) {
    evs_tls_options_t tls = {s->tls_str[0], s->tls_str[1], s->tls_str[2], s->tls_str[3]};
    evs_options_t co = {.addr = s->addr,
                        .timeout_ms = s->timeout_ms,
                        .max_frame = s->max_frame,
                        .tls = s->tls ? &tls : NULL,
                        .token = s->token};
    s->ctx = evs_connect_with_options(&co);
    if (!s->ctx) {
        disconnect(s, "out of memory");
        return -1;
    }
    if (s->ctx->err) {
        if (s->ctx->err == EVS_EUNAUTHORIZED) s->stopped = EVS_EUNAUTHORIZED;
        disconnect(s, s->ctx->errstr);
        return -1;
    }
    evs_context_t *c = s->ctx;
    char store_id[EVS_STORE_ID_LEN];
    if (evs_store_info(c, store_id, NULL) != 0) {
        disconnect(s, c->errstr);
        return -1;
    }
    if (store_id[0]) {
        if (s->store_id[0] && strcmp(store_id, s->store_id) != 0) {
            s->store_changes++;
            if (!s->keep_position) {
                /* The position belongs to another store: read this one from its beginning. */
                s->last = 0;
                s->have_position = true;
                s->caught_up = false;
            }
        }
        memcpy(s->store_id, store_id, sizeof store_id);
    }
    msgpack_packer pk;
    uint64_t id;
    uint32_t nargs = (uint32_t)s->have_position + (s->ntopics > 0) + (s->entity_prefix != NULL);
    if (client_begin(c) != 0) {
        disconnect(s, c->errstr);
        return -1;
    }
    size_t start = client_request_begin(c, &pk, "subscribe", nargs, &id);
    if (s->have_position) {
        codec_pack_key(&pk, "after");
        msgpack_pack_uint64(&pk, s->last);
    }
    if (s->ntopics) {
        codec_pack_key(&pk, "topics");
        msgpack_pack_array(&pk, (uint32_t)s->ntopics);
        for (size_t i = 0; i < s->ntopics; i++)
            codec_pack_cstr(&pk, s->topics[i]);
    }
    if (s->entity_prefix) {
        codec_pack_key(&pk, "entity_prefix");
        codec_pack_cstr(&pk, s->entity_prefix);
    }
    const msgpack_object *res;
    if (client_request_end(c, start, id, &res) != 0) {
        if (c->err == EVS_EUNAUTHORIZED || c->err == EVS_EFORBIDDEN) s->stopped = c->err;
        disconnect(s, c->errstr);
        return -1;
    }
    const msgpack_object *after = codec_map_get(res, "after");
    if (!s->have_position) {
        if (!after || after->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
            disconnect(s, "the server's subscribe reply has no \"after\": cannot resume safely");
            return -1;
        }
        s->last = after->via.u64;
        s->have_position = true;
    }
    s->backoff_ms = s->retry_min_ms;
    if (s->connected_once) s->reconnects++;
    s->connected_once = true;
    return 0;
}

EVS_API int evs_stream_next(evs_stream_t *s, int timeout_ms, evs_event_t **out) {
    *out = NULL;
    if (s->stopped) return s->stopped;
    int64_t deadline = timeout_ms < 0 ? -1 : mono_ms() + timeout_ms;
    for (;;) {
        while (s->push && s->next < s->push->n) {
            evs_event_t *ev = &s->push->events[s->next++];
            if (ev->position <= s->last) continue;
            evs_event_t *copy = malloc(sizeof *copy);
            if (!copy || evs_event_dup(copy, ev) != 0) {
                free(copy);
                s->next--;
                return EVS_ENOMEM;
            }
            s->last = ev->position;
            *out = copy;
            return 0;
        }
        evs_push_free(s->push);
        s->push = NULL;
        s->next = 0;
        int64_t now = mono_ms();
        if (!s->ctx) {
            /* A reconnect that is due is tried even by a call that does not wait. */
            if (now < s->retry_at) {
                if (deadline >= 0 && now >= deadline) return 0;
                int64_t until = s->retry_at;
                if (deadline >= 0 && deadline < until) until = deadline;
                sleep_ms(until - now);
                continue;
            }
            if (connect_and_subscribe(s) != 0) {
                if (s->stopped) return s->stopped;
                if (deadline >= 0 && mono_ms() >= deadline) return 0;
                continue;
            }
        }
        int wait = deadline < 0 ? -1 : (int)(deadline - mono_ms());
        if (wait < 0 && deadline >= 0) wait = 0;
        evs_push_t *p = NULL;
        int r = evs_sub_next(s->ctx, 0, wait, &p);
        if (r < 0) {
            /* A frame this client cannot take (over its max_frame, or not the protocol) would
             * come again after a reconnect: stop rather than loop. */
            int code = s->ctx->err;
            disconnect(s, s->ctx->errstr);
            if (code == EVS_EPROTOCOL) return s->stopped = code;
            continue;
        }
        if (!p) {
            /* Timed out (or a signal): done unless the deadline is still ahead. */
            if (deadline >= 0 && mono_ms() >= deadline) return 0;
            if (deadline < 0) return 0;
            continue;
        }
        if (p->caught_up) {
            s->caught_up = true;
            evs_push_free(p);
            continue;
        }
        s->push = p;
    }
}

EVS_API uint64_t evs_stream_position(const evs_stream_t *s) {
    return s->last;
}

EVS_API unsigned evs_stream_store_changes(const evs_stream_t *s) {
    return s->store_changes;
}

EVS_API const char *evs_stream_store_id(const evs_stream_t *s) {
    return s->store_id;
}

EVS_API bool evs_stream_caught_up(const evs_stream_t *s) {
    return s->caught_up;
}

EVS_API unsigned evs_stream_reconnects(const evs_stream_t *s) {
    return s->reconnects;
}

EVS_API const char *evs_stream_errstr(const evs_stream_t *s) {
    return s->errstr;
}
