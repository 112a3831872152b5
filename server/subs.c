/* subs.c: subscriptions (see subs.h for the model). */
#include "subs.h"

#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "log.h"

#define CATCHUP_PAGE 500
#define PENDING_MAX 256
#define RETRY_MS 1000

struct sub {
    uint64_t sid;
    conn_t *conn;
    subs_t *owner;
    sub_t *next, *prev; /* in owner->all */
    sub_t *conn_next;   /* in conn->subs */
    char **topics;
    size_t ntopics;
    char *prefix; /* NULL: no entity filter */
    size_t prefix_len;
    uint64_t last_sent; /* position of the last event pushed (or skipped as seen) */
    bool live;
    bool reading; /* a store read is in flight */
    /* Live events that matched while a catch-up read was in flight (copies, in position
     * order): pushed after a short page, so that a steady stream of commits cannot keep a
     * subscription reading forever. When more than PENDING_MAX matched, they are dropped and
     * the subscription reads again instead (overflow). */
    evs_event_t *pending;
    size_t npending;
    bool overflow;
    bool removed;        /* unsubscribed or closed while reading: free when the read ends */
    bool want_caught_up; /* send the caught_up marker when first live */
    bool failed;         /* the last read failed: the retry timer pumps it */
    bool pumping;        /* inside pump: read_done must not pump again */
};

struct subs {
    server_t *srv;
    sub_t *all;
    size_t count;
    uint64_t next_sid;
    uv_timer_t retry;
    bool retry_active;
    codec_buf_t enc; /* the current commit batch, each event packed once */
    size_t *offsets; /* enc offsets of event i (and of the end, at n) */
    size_t offsets_cap;
};

subs_t *subs_new(server_t *srv) {
    subs_t *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->srv = srv;
    s->next_sid = 1;
    codec_buf_init(&s->enc);
    uv_timer_init(srv->loop, &s->retry);
    s->retry.data = s;
    return s;
}

static void clear_pending(sub_t *sub) {
    for (size_t i = 0; i < sub->npending; i++)
        evs_event_clear(&sub->pending[i]);
    free(sub->pending);
    sub->pending = NULL;
    sub->npending = 0;
    sub->overflow = false;
}

/* Keeps a copy of a live event that matched during a catch-up read. */
static void add_pending(sub_t *sub, const evs_event_t *ev) {
    if (sub->overflow) return;
    if (sub->npending == PENDING_MAX ||
        (!sub->pending && !(sub->pending = malloc(PENDING_MAX * sizeof *sub->pending))) ||
        evs_event_dup(&sub->pending[sub->npending], ev) != 0) {
        clear_pending(sub);
        sub->overflow = true;
        return;
    }
    sub->npending++;
}

static void sub_free(sub_t *sub) {
    clear_pending(sub);
    for (size_t i = 0; i < sub->ntopics; i++)
        free(sub->topics[i]);
    free(sub->topics);
    free(sub->prefix);
    conn_unref(sub->conn);
    free(sub);
}

static void on_retry_closed(uv_handle_t *h) {
    subs_t *s = h->data;
    codec_buf_free(&s->enc);
    free(s->offsets);
    free(s);
}

void subs_free(subs_t *s) {
    sub_t *sub = s->all, *next;
    for (; sub; sub = next) {
        next = sub->next;
        if (sub->reading)
            sub->removed = true;
        else
            sub_free(sub);
    }
    s->all = NULL;
    uv_close((uv_handle_t *)&s->retry, on_retry_closed);
}

size_t subs_count(const subs_t *s) {
    return s->count;
}

/* Pushes {"sub": SID, flag: true} ("caught_up", "closing"). */
static void push_flag(sub_t *sub, const char *flag) {
    conn_t *c = sub->conn;
    msgpack_packer pk;
    codec_packer_init(&pk, &c->out);
    size_t start = codec_frame_begin(&c->out);
    msgpack_pack_map(&pk, 2);
    codec_pack_key(&pk, "sub");
    msgpack_pack_uint64(&pk, sub->sid);
    codec_pack_key(&pk, flag);
    msgpack_pack_true(&pk);
    codec_frame_end(&c->out, start, UINT32_MAX);
    conn_schedule_flush(c);
}

void subs_notify_closing(subs_t *s) {
    for (sub_t *sub = s->all; sub; sub = sub->next)
        if (conn_is_open(sub->conn)) push_flag(sub, "closing");
}

/* Takes sub out of every list; frees it now or, with a read in flight, when the read ends. */
static void sub_remove(subs_t *s, sub_t *sub) {
    if (sub->prev)
        sub->prev->next = sub->next;
    else
        s->all = sub->next;
    if (sub->next) sub->next->prev = sub->prev;
    sub_t **pp = &sub->conn->subs;
    while (*pp && *pp != sub)
        pp = &(*pp)->conn_next;
    if (*pp) *pp = sub->conn_next;
    s->count--;
    if (sub->reading)
        sub->removed = true;
    else
        sub_free(sub);
}

static bool sub_matches(const sub_t *sub, const evs_event_t *ev) {
    if (sub->prefix && strncmp(ev->entity_id, sub->prefix, sub->prefix_len) != 0) return false;
    if (sub->ntopics == 0) return true;
    for (size_t i = 0; i < sub->ntopics; i++)
        if (strcmp(ev->topic, sub->topics[i]) == 0) return true;
    return false;
}

/* ---------------------------------------------------------------- catching up */

static void pump(sub_t *sub);

static void on_retry(uv_timer_t *t) {
    subs_t *s = t->data;
    s->retry_active = false;
    for (sub_t *sub = s->all; sub; sub = sub->next)
        if (sub->failed) {
            sub->failed = false;
            pump(sub);
        }
}

/* Pushes evs[0..n) (n may be 0: nothing) and advances last_sent. */
static void push_events(sub_t *sub, const evs_event_t *evs, size_t n) {
    if (n == 0) return;
    conn_t *c = sub->conn;
    msgpack_packer pk;
    codec_packer_init(&pk, &c->out);
    size_t start = codec_frame_begin(&c->out);
    msgpack_pack_map(&pk, 2);
    codec_pack_key(&pk, "sub");
    msgpack_pack_uint64(&pk, sub->sid);
    codec_pack_key(&pk, "events");
    msgpack_pack_array(&pk, n);
    for (size_t i = 0; i < n; i++)
        codec_pack_event(&pk, &evs[i]);
    codec_frame_end(&c->out, start, UINT32_MAX);
    conn_schedule_flush(c);
    sub->last_sent = evs[n - 1].position;
}

static void read_done(void *arg, const codec_error_t *err, const evs_event_t *evs, size_t n) {
    sub_t *sub = arg;
    sub->reading = false;
    if (sub->removed) {
        sub_free(sub);
        return;
    }
    if (err) {
        log_warn("subs", "%s: subscription %llu: catch-up read failed: %s", sub->conn->peer,
                 (unsigned long long)sub->sid, err->message);
        sub->failed = true;
        subs_t *s = sub->owner;
        if (!s->retry_active) {
            s->retry_active = true;
            uv_timer_start(&s->retry, on_retry, RETRY_MS, 0);
        }
        return;
    }
    /* A page too large for one frame, or for the room left under output_limit, is pushed in
     * part; the rest is read again once the connection has drained. */
    size_t fit = codec_events_fitting(evs, n, conn_reply_room(sub->conn));
    bool more = fit < n || n == CATCHUP_PAGE || sub->overflow;
    push_events(sub, evs, fit);
    if (more) {
        /* More to read (the pending events will be read too): the pump loop goes on, or, for
         * a read that finished later, restarts. */
        clear_pending(sub);
        if (!sub->pumping) pump(sub);
        return;
    }
    /* The store had nothing more when it answered; what committed since came live meanwhile
     * and waits in pending (some of it may also have been in the page). */
    size_t first = 0;
    while (first < sub->npending && sub->pending[first].position <= sub->last_sent)
        first++;
    size_t rest = sub->npending - first;
    if (codec_events_fitting(sub->pending + first, rest, sub->conn->srv->cfg.max_frame) < rest) {
        clear_pending(sub); /* too big for one push: read them from the store instead */
        if (!sub->pumping) pump(sub);
        return;
    }
    push_events(sub, sub->pending + first, rest);
    clear_pending(sub);
    sub->live = true;
    if (sub->want_caught_up) {
        sub->want_caught_up = false;
        push_flag(sub, "caught_up");
    }
}

/* Reads pages from the store until the subscription is live, its connection's output is over
 * the limit, or a read is left in flight (a store that answers later calls read_done then, and
 * read_done's caller pumps again). */
static void pump(sub_t *sub) {
    subs_t *s = sub->owner;
    while (!sub->live && !sub->reading && !sub->failed && !sub->removed &&
           conn_is_open(sub->conn) && conn_queued(sub->conn) <= s->srv->cfg.out_limit) {
        store_read_t q = {
            .after = sub->last_sent,
            .limit = CATCHUP_PAGE,
            .topics = (const char *const *)sub->topics,
            .ntopics = sub->ntopics,
            .entity_prefix = sub->prefix,
        };
        sub->reading = true;
        clear_pending(sub);
        sub->pumping = true;
        s->srv->store->ops->read(s->srv->store, &q, read_done, sub);
        /* A read still in flight keeps sub allocated (sub_remove defers the free to read_done). */
        sub->pumping = false;
        if (sub->reading) return;
    }
}

/* ---------------------------------------------------------------- requests */

int subs_subscribe(subs_t *s, conn_t *c, const codec_request_t *req, codec_error_t *err) {
    store_t *store = s->srv->store;
    if (!(req->present & ARG_AFTER) && !store->live_ready)
        return codec_error_set(err, EVS_EUNAVAILABLE,
                               "the store's live feed has not started yet (PostgreSQL not "
                               "reachable?); retry, or subscribe with \"after\"");
    sub_t *sub = calloc(1, sizeof *sub);
    if (!sub) return codec_error_set(err, EVS_EINTERNAL, "out of memory");
    sub->owner = s;
    sub->conn = c;
    conn_ref(c);
    if (req->ntopics) {
        sub->topics = calloc(req->ntopics, sizeof *sub->topics);
        if (!sub->topics) goto oom;
        for (size_t i = 0; i < req->ntopics; i++) {
            if (!(sub->topics[i] = strdup(req->topics[i]))) goto oom;
            sub->ntopics++;
        }
    }
    if (req->entity_prefix && req->entity_prefix[0]) {
        if (!(sub->prefix = strdup(req->entity_prefix))) goto oom;
        sub->prefix_len = strlen(sub->prefix);
    }
    sub->sid = s->next_sid++;
    if (req->present & ARG_AFTER) {
        sub->last_sent = req->after;
        sub->want_caught_up = true;
    } else {
        sub->last_sent =
            s->srv->head_position > store->live_head ? s->srv->head_position : store->live_head;
        sub->live = true;
    }
    sub->next = s->all;
    if (s->all) s->all->prev = sub;
    s->all = sub;
    sub->conn_next = c->subs;
    c->subs = sub;
    s->count++;

    msgpack_packer pk;
    codec_packer_init(&pk, &c->out);
    size_t start = codec_frame_begin(&c->out);
    codec_reply_ok_begin(&pk, req->id, 2);
    codec_pack_key(&pk, "sub");
    msgpack_pack_uint64(&pk, sub->sid);
    /* Where the subscription starts: what a client resumes from if it loses the connection
     * before the first event arrives. */
    codec_pack_key(&pk, "after");
    msgpack_pack_uint64(&pk, sub->last_sent);
    codec_frame_end(&c->out, start, UINT32_MAX);
    conn_schedule_flush(c);
    pump(sub);
    return 0;
oom:
    sub_free(sub);
    return codec_error_set(err, EVS_EINTERNAL, "out of memory");
}

int subs_unsubscribe(subs_t *s, conn_t *c, uint64_t sid) {
    for (sub_t *sub = c->subs; sub; sub = sub->conn_next)
        if (sub->sid == sid) {
            sub_remove(s, sub);
            return 0;
        }
    return -1;
}

void subs_conn_closed(subs_t *s, conn_t *c) {
    while (c->subs)
        sub_remove(s, c->subs);
}

void subs_conn_drained(subs_t *s, conn_t *c) {
    (void)s;
    sub_t *sub = c->subs;
    while (sub) {
        sub_t *next = sub->conn_next;
        if (!sub->live) pump(sub);
        sub = next;
    }
}

/* ---------------------------------------------------------------- live */

/* Packs each event of the batch once; subscribers copy the bytes of the events they match. */
static int encode_batch(subs_t *s, const evs_event_t *evs, size_t n) {
    if (s->offsets_cap < n + 1) {
        size_t *o = realloc(s->offsets, (n + 1) * sizeof *o);
        if (!o) return -1;
        s->offsets = o;
        s->offsets_cap = n + 1;
    }
    s->enc.len = 0;
    s->enc.failed = false;
    msgpack_packer pk;
    codec_packer_init(&pk, &s->enc);
    for (size_t i = 0; i < n; i++) {
        s->offsets[i] = s->enc.len;
        codec_pack_event(&pk, &evs[i]);
    }
    s->offsets[n] = s->enc.len;
    return s->enc.failed ? -1 : 0;
}

void subs_on_commit(void *arg, const evs_event_t *evs, size_t n) {
    subs_t *s = arg;
    if (n == 0) return;
    if (evs[n - 1].position > s->srv->head_position) s->srv->head_position = evs[n - 1].position;
    bool encoded = false;
    for (sub_t *sub = s->all; sub; sub = sub->next) {
        if (!sub->live) {
            if (sub->reading)
                for (size_t i = 0; i < n; i++)
                    if (evs[i].position > sub->last_sent && sub_matches(sub, &evs[i]))
                        add_pending(sub, &evs[i]);
            continue;
        }
        conn_t *c = sub->conn;
        size_t first = n, count = 0;
        for (size_t i = 0; i < n; i++)
            if (evs[i].position > sub->last_sent && sub_matches(sub, &evs[i])) {
                if (first == n) first = i;
                count++;
            }
        if (count == 0) continue;
        if (conn_queued(c) > s->srv->cfg.out_limit) {
            /* Too slow to take more: from here it catches up from the store. */
            sub->live = false;
            continue;
        }
        if (!encoded) {
            if (encode_batch(s, evs, n) != 0) {
                log_error("subs", "out of memory encoding a commit for subscribers");
                sub->live = false;
                continue;
            }
            encoded = true;
        }
        msgpack_packer pk;
        codec_packer_init(&pk, &c->out);
        size_t start = codec_frame_begin(&c->out);
        msgpack_pack_map(&pk, 2);
        codec_pack_key(&pk, "sub");
        msgpack_pack_uint64(&pk, sub->sid);
        codec_pack_key(&pk, "events");
        msgpack_pack_array(&pk, count);
        for (size_t i = first; i < n; i++)
            if (evs[i].position > sub->last_sent && sub_matches(sub, &evs[i]))
                codec_buf_write(&c->out, (const char *)s->enc.data + s->offsets[i],
                                s->offsets[i + 1] - s->offsets[i]);
        codec_frame_end(&c->out, start, UINT32_MAX);
        conn_schedule_flush(c);
        sub->last_sent = evs[n - 1].position;
    }
}
