/* subs.c: subscriptions (see subs.h for the model). */
#include "subs.h"

#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#include "conn.h"
#include "dispatch.h"
#include "log.h"

#define CATCHUP_PAGE 500
#define PENDING_MAX 256
#define RETRY_MS 1000

/* The topic index: topic -> the subscriptions that name it, so that a commit visits only the
 * subscriptions its events can match (those without a topic filter are on owner->any). */
typedef struct topic_link topic_link_t;
typedef struct topic_bucket {
    char *topic; /* the key; owned */
    topic_link_t *head;
    UT_hash_handle hh;
} topic_bucket_t;

/* One subscription in one topic's bucket. */
struct topic_link {
    sub_t *sub;
    topic_bucket_t *bucket;
    topic_link_t *prev, *next;
};

#define NO_HIT UINT32_MAX
#define HITS_WINDOW 65536 /* hits recorded before they are delivered: 512 KiB */

/* One event of the batch being fanned out that matched one subscription; a subscription's hits
 * are chained in event order through next (an index into subs_t.hits). */
typedef struct hit {
    uint32_t event;
    uint32_t next;
} hit_t;

struct sub {
    uint64_t sid;
    conn_t *conn;
    subs_t *owner;
    sub_t *next, *prev;         /* in owner->all */
    sub_t *conn_next;           /* in conn->subs */
    sub_t *any_next, *any_prev; /* in owner->any, when it has no topic filter */
    char **topics;
    size_t ntopics;
    topic_link_t *links; /* ntopics links, one in each of its topics' buckets */
    /* The batch being fanned out: the batch number this subscription was last touched in, and
     * its chain of hits in subs_t.hits (valid while batch is the current one). */
    uint64_t batch;
    uint32_t hit_first, hit_last, nhits;
    char *prefix; /* NULL: no entity filter */
    size_t prefix_len;
    uint64_t last_sent; /* position of the last event pushed (or skipped as seen) */
    bool live;
    bool reading; /* a store read is in flight */
    /* Live events that matched while a catch-up read was in flight (copies, in position
     * order): pushed after a short page, so that a steady stream of commits cannot keep a
     * subscription reading forever. When more than PENDING_MAX matched, or more bytes than one
     * push may carry (pending_limit), they are dropped and the subscription reads again instead
     * (overflow). */
    evs_event_t *pending;
    size_t npending;
    size_t pending_bytes; /* their sizes, as codec_event_size counts them */
    bool overflow;
    bool removed;        /* unsubscribed or closed while reading: free when the read ends */
    bool want_caught_up; /* send the caught_up marker when first live */
    bool failed;         /* the last read failed: the retry timer pumps it */
    bool pumping;        /* inside pump: read_done must not pump again */
};

/* A subscribe without "after" that arrived before the store's live feed started: its arguments
 * (copied), its connection (referenced, the request counted in flight) and its deadline. */
typedef struct early_sub {
    struct early_sub *next;
    conn_t *conn;
    uint64_t id;
    uint64_t deadline; /* uv_now milliseconds */
    char **topics;
    size_t ntopics;
    char *prefix;
} early_sub_t;

struct subs {
    server_t *srv;
    early_sub_t *early, *early_tail; /* waiting for the live feed, in arrival order */
    uv_timer_t early_timer;          /* the deadline of the first of them */
    int handles_open;
    sub_t *all;
    sub_t *any;             /* the subscriptions without a topic filter */
    topic_bucket_t *topics; /* the topic index (uthash) */
    size_t count;
    /* Fanning out one commit: its number, the hits of every subscription, and the
     * subscriptions that have hits, in the order they got their first. */
    uint64_t batch;
    hit_t *hits;
    size_t nhits, hits_cap;
    sub_t **touched;
    size_t ntouched, touched_cap;
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
    uv_timer_init(srv->loop, &s->early_timer);
    s->early_timer.data = s;
    s->handles_open = 2;
    return s;
}

static void clear_pending(sub_t *sub) {
    for (size_t i = 0; i < sub->npending; i++)
        evs_event_clear(&sub->pending[i]);
    free(sub->pending);
    sub->pending = NULL;
    sub->npending = 0;
    sub->pending_bytes = 0;
    sub->overflow = false;
}

/* The most bytes of pending events a subscription keeps: what read_done may push of them in one
 * frame (a page), and no more than the connection's output limit. */
static size_t pending_limit(const sub_t *sub) {
    const server_config_t *cfg = &sub->owner->srv->cfg;
    size_t page = codec_page_budget(cfg->max_frame);
    return cfg->out_limit < page ? cfg->out_limit : page;
}

/* Keeps a copy of a live event that matched during a catch-up read. */
static void add_pending(sub_t *sub, const evs_event_t *ev) {
    if (sub->overflow) return;
    size_t size = codec_event_size(ev);
    sub->pending_bytes += size;
    if (sub->npending == PENDING_MAX || sub->pending_bytes > pending_limit(sub) ||
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
    free(sub->links);
    free(sub->prefix);
    conn_unref(sub->conn);
    free(sub);
}

static void early_free(early_sub_t *e);

static void on_retry_closed(uv_handle_t *h) {
    subs_t *s = h->data;
    if (--s->handles_open > 0) return;
    codec_buf_free(&s->enc);
    free(s->offsets);
    free(s->hits);
    free(s->touched);
    free(s);
}

/* ---------------------------------------------------------------- the topic index */

/* Takes one link out of its bucket; a bucket left empty is freed. */
static void unlink_topic(subs_t *s, topic_link_t *l) {
    if (l->prev)
        l->prev->next = l->next;
    else
        l->bucket->head = l->next;
    if (l->next) l->next->prev = l->prev;
    if (!l->bucket->head) {
        HASH_DEL(s->topics, l->bucket);
        free(l->bucket->topic);
        free(l->bucket);
    }
}

/* Puts sub in the index: a link in each of its topics' buckets, or on the any list. Returns 0,
 * or -1 when out of memory (sub is then in no bucket). */
static int index_add(subs_t *s, sub_t *sub) {
    if (sub->ntopics == 0) {
        sub->any_next = s->any;
        if (s->any) s->any->any_prev = sub;
        s->any = sub;
        return 0;
    }
    if (!(sub->links = calloc(sub->ntopics, sizeof *sub->links))) return -1;
    for (size_t i = 0; i < sub->ntopics; i++) {
        topic_bucket_t *b;
        HASH_FIND_STR(s->topics, sub->topics[i], b);
        if (!b) {
            if (!(b = calloc(1, sizeof *b)) || !(b->topic = strdup(sub->topics[i]))) {
                free(b);
                goto oom;
            }
            HASH_ADD_KEYPTR(hh, s->topics, b->topic, strlen(b->topic), b);
        }
        topic_link_t *l = &sub->links[i];
        l->sub = sub;
        l->bucket = b;
        l->next = b->head;
        if (b->head) b->head->prev = l;
        b->head = l;
    }
    return 0;
oom:
    for (size_t i = 0; i < sub->ntopics; i++)
        if (sub->links[i].bucket) unlink_topic(s, &sub->links[i]);
    free(sub->links);
    sub->links = NULL;
    return -1;
}

/* Takes sub out of the index. */
static void index_remove(subs_t *s, sub_t *sub) {
    if (sub->ntopics == 0) {
        if (sub->any_prev)
            sub->any_prev->any_next = sub->any_next;
        else
            s->any = sub->any_next;
        if (sub->any_next) sub->any_next->any_prev = sub->any_prev;
        return;
    }
    for (size_t i = 0; i < sub->ntopics; i++)
        unlink_topic(s, &sub->links[i]);
}

void subs_free(subs_t *s) {
    sub_t *sub = s->all, *next;
    for (; sub; sub = next) {
        next = sub->next;
        index_remove(s, sub);
        if (sub->reading)
            sub->removed = true;
        else
            sub_free(sub);
    }
    s->all = NULL;
    for (early_sub_t *e = s->early, *enext; e; e = enext) {
        enext = e->next;
        early_free(e);
    }
    s->early = s->early_tail = NULL;
    uv_close((uv_handle_t *)&s->retry, on_retry_closed);
    uv_close((uv_handle_t *)&s->early_timer, on_retry_closed);
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
    index_remove(s, sub);
    s->count--;
    if (sub->reading)
        sub->removed = true;
    else
        sub_free(sub);
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

/* Marks sub to be pumped again by the retry timer (RETRY_MS from now). */
static void retry_later(sub_t *sub) {
    subs_t *s = sub->owner;
    sub->failed = true;
    if (!s->retry_active) {
        s->retry_active = true;
        uv_timer_start(&s->retry, on_retry, RETRY_MS, 0);
    }
}

/* Starts the push frame {"sub": SID, "events": [n events...]} in sub's connection's output,
 * for the caller to write the n events into; returns the frame's start for codec_frame_end. */
static size_t push_events_begin(sub_t *sub, size_t n, msgpack_packer *pk) {
    conn_t *c = sub->conn;
    codec_packer_init(pk, &c->out);
    size_t start = codec_frame_begin(&c->out);
    msgpack_pack_map(pk, 2);
    codec_pack_key(pk, "sub");
    msgpack_pack_uint64(pk, sub->sid);
    codec_pack_key(pk, "events");
    msgpack_pack_array(pk, n);
    return start;
}

/* Pushes evs[0..n) (n may be 0: nothing) and advances last_sent. */
static void push_events(sub_t *sub, const evs_event_t *evs, size_t n) {
    if (n == 0) return;
    conn_t *c = sub->conn;
    msgpack_packer pk;
    size_t start = push_events_begin(sub, n, &pk);
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
        retry_later(sub);
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
    if (codec_events_fitting(sub->pending + first, rest,
                             codec_page_budget(sub->conn->srv->cfg.max_frame)) < rest) {
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

/* ---------------------------------------------------------------- waiting for the live feed */

/* Ends a waiting subscribe's time in flight and frees it (no reply). */
static void early_free(early_sub_t *e) {
    for (size_t i = 0; i < e->ntopics; i++)
        free(e->topics[i]);
    free(e->topics);
    free(e->prefix);
    e->conn->inflight--;
    conn_unref(e->conn);
    free(e);
}

/* Answers a waiting subscribe: starts it (the feed is live now) or replies err. */
static void early_answer(subs_t *s, early_sub_t *e, const codec_error_t *err) {
    conn_t *c = e->conn;
    codec_error_t why;
    bool open = conn_is_open(c);
    if (open && !err) {
        codec_request_t req;
        memset(&req, 0, sizeof req);
        req.has_id = true;
        req.id = e->id;
        req.op = "subscribe";
        req.topics = (const char **)e->topics;
        req.ntopics = e->ntopics;
        req.entity_prefix = e->prefix;
        if (subs_subscribe(s, c, &req, &why) != 0) err = &why;
    }
    if (open && err) dispatch_reply_error(c, true, e->id, err);
    early_free(e);
    if (open) conn_schedule_flush(c); /* a drain or a close may wait for this reply */
}

static void on_early_deadline(uv_timer_t *t) {
    subs_t *s = t->data;
    uint64_t now = uv_now(s->srv->loop);
    while (s->early && s->early->deadline <= now) {
        early_sub_t *e = s->early;
        s->early = e->next;
        if (!s->early) s->early_tail = NULL;
        codec_error_t err;
        codec_error_set(&err, EVS_EUNAVAILABLE,
                        "the store's live feed did not start within the request timeout "
                        "(PostgreSQL not reachable?); retry, or subscribe with \"after\"");
        early_answer(s, e, &err);
    }
    if (s->early) uv_timer_start(&s->early_timer, on_early_deadline, s->early->deadline - now, 0);
}

/* Makes a subscribe without "after" wait for the live feed. 0, or an error code with err. */
static int early_wait(subs_t *s, conn_t *c, const codec_request_t *req, codec_error_t *err) {
    early_sub_t *e = calloc(1, sizeof *e);
    if (!e) return codec_error_set(err, EVS_EINTERNAL, "out of memory");
    e->conn = c;
    e->id = req->id;
    conn_ref(c);
    c->inflight++;
    if (req->ntopics && !(e->topics = calloc(req->ntopics, sizeof *e->topics))) goto oom;
    for (size_t i = 0; i < req->ntopics; i++) {
        if (!(e->topics[i] = strdup(req->topics[i]))) goto oom;
        e->ntopics++;
    }
    if (req->entity_prefix && req->entity_prefix[0] && !(e->prefix = strdup(req->entity_prefix)))
        goto oom;
    uint32_t timeout = s->srv->cfg.request_timeout_ms;
    e->deadline = uv_now(s->srv->loop) + (timeout ? timeout : STORE_DEFAULT_TIMEOUT_MS);
    if (s->early_tail)
        s->early_tail->next = e;
    else
        s->early = e;
    s->early_tail = e;
    if (!uv_is_active((uv_handle_t *)&s->early_timer))
        uv_timer_start(&s->early_timer, on_early_deadline, e->deadline - uv_now(s->srv->loop), 0);
    return 0;
oom:
    early_free(e);
    return codec_error_set(err, EVS_EINTERNAL, "out of memory");
}

void subs_on_live(void *arg) {
    subs_t *s = arg;
    uv_timer_stop(&s->early_timer);
    early_sub_t *e = s->early;
    s->early = s->early_tail = NULL;
    while (e) {
        early_sub_t *next = e->next;
        early_answer(s, e, NULL);
        e = next;
    }
}

/* ---------------------------------------------------------------- requests */

int subs_subscribe(subs_t *s, conn_t *c, const codec_request_t *req, codec_error_t *err) {
    store_t *store = s->srv->store;
    const server_config_t *cfg = &s->srv->cfg;
    size_t nsubs = 0;
    for (const sub_t *o = c->subs; o; o = o->conn_next)
        nsubs++;
    if (nsubs >= cfg->max_subscriptions)
        return codec_error_set(err, EVS_ELIMIT_EXCEEDED,
                               "this connection has %zu subscriptions, the most the daemon allows "
                               "(option max_subscriptions); unsubscribe one first",
                               nsubs);
    if (req->ntopics > cfg->max_subscription_topics)
        return codec_error_set(err, EVS_ELIMIT_EXCEEDED,
                               "a subscription may name at most %u topics (option "
                               "max_subscription_topics); this one names %zu",
                               (unsigned)cfg->max_subscription_topics, req->ntopics);
    if (!(req->present & ARG_AFTER) && !store->live_ready) return early_wait(s, c, req, err);
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
    if (index_add(s, sub) != 0) goto oom;
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
    codec_reply_ok_begin(&pk, req->id, 3);
    codec_pack_key(&pk, "sub");
    msgpack_pack_uint64(&pk, sub->sid);
    /* The store "after" belongs to: a client that resumes against another store starts over. */
    codec_pack_key(&pk, "store_id");
    codec_pack_cstr(&pk, store->store_id);
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

/* Records that event i of the batch matches sub, if it does (its entity prefix, and a position
 * past what sub was sent); sub already passed the topic filter by being found through the index.
 * Only live subscriptions and catching-up ones with a read in flight take events. 0, or -1 when
 * out of memory. */
static int consider(subs_t *s, sub_t *sub, const evs_event_t *evs, uint32_t i) {
    s->srv->stats.subscription_filter_checks++;
    if (!sub->live && !sub->reading) return 0;
    if (evs[i].position <= sub->last_sent) return 0;
    if (sub->prefix && strncmp(evs[i].entity_id, sub->prefix, sub->prefix_len) != 0) return 0;
    if (sub->batch != s->batch) {
        if (s->ntouched == s->touched_cap) {
            size_t cap = s->touched_cap ? 2 * s->touched_cap : 64;
            sub_t **t = realloc(s->touched, cap * sizeof *t);
            if (!t) return -1;
            s->touched = t;
            s->touched_cap = cap;
        }
        s->touched[s->ntouched++] = sub;
        sub->batch = s->batch;
        sub->hit_first = sub->hit_last = NO_HIT;
        sub->nhits = 0;
    } else if (s->hits[sub->hit_last].event == i) {
        return 0; /* a topic the subscription named twice */
    }
    if (s->nhits == s->hits_cap) {
        size_t cap = s->hits_cap ? 2 * s->hits_cap : 256;
        hit_t *h = realloc(s->hits, cap * sizeof *h);
        if (!h) return -1;
        s->hits = h;
        s->hits_cap = cap;
    }
    uint32_t k = (uint32_t)s->nhits++;
    s->hits[k] = (hit_t){.event = i, .next = NO_HIT};
    if (sub->hit_last == NO_HIT)
        sub->hit_first = k;
    else
        s->hits[sub->hit_last].next = k;
    sub->hit_last = k;
    sub->nhits++;
    return 0;
}

/* Pushes the events of the batch that match sub (its hits) from the batch's shared encoding,
 * in frames whose events take at most the connection's room (conn_reply_room: what is left under
 * output_limit, at most a page, but at least one event per frame). So no push is over max_frame
 * however the commit's events grew from the request's (max_event leaves a push's envelope under
 * max_frame), and a commit adds at most one event past output_limit. Once the connection is
 * over output_limit the subscription stops being live and reads the rest from the store. When
 * every hit was pushed, sub has been sent everything up to position seen. */
static void push_hits(subs_t *s, sub_t *sub, const evs_event_t *evs, uint64_t seen) {
    conn_t *c = sub->conn;
    uint32_t k = sub->hit_first;
    while (k != NO_HIT) {
        if (conn_queued(c) > s->srv->cfg.out_limit) {
            /* Too slow to take more: from here it catches up from the store. */
            sub->live = false;
            return;
        }
        /* The hits from k that fit in the room: at least one. */
        size_t budget = conn_reply_room(c), n = 0, used = 0;
        uint32_t end = k;
        while (end != NO_HIT) {
            uint32_t i = s->hits[end].event;
            used += s->offsets[i + 1] - s->offsets[i];
            if (used > budget && n > 0) break;
            n++;
            end = s->hits[end].next;
        }
        msgpack_packer pk;
        size_t start = push_events_begin(sub, n, &pk);
        uint32_t last = k;
        for (; k != end; k = s->hits[k].next) {
            uint32_t i = s->hits[k].event;
            codec_buf_write(&c->out, (const char *)s->enc.data + s->offsets[i],
                            s->offsets[i + 1] - s->offsets[i]);
            last = k;
        }
        codec_frame_end(&c->out, start, UINT32_MAX);
        conn_schedule_flush(c);
        sub->last_sent = evs[s->hits[last].event].position;
    }
    sub->last_sent = seen;
}

/* Hands each subscription touched since the last delivery its hits: events[0..end) of the
 * commit evs[0..n) have been visited. A live one gets a push built from the batch's shared
 * encoding (made on the first push: *encoded), one catching up with a read in flight keeps them
 * as pending. */
static void deliver(subs_t *s, const evs_event_t *evs, size_t n, size_t end, bool *encoded) {
    for (size_t t = 0; t < s->ntouched; t++) {
        sub_t *sub = s->touched[t];
        if (!sub->live) {
            for (uint32_t k = sub->hit_first; k != NO_HIT; k = s->hits[k].next)
                add_pending(sub, &evs[s->hits[k].event]);
            continue;
        }
        if (!*encoded) {
            if (encode_batch(s, evs, n) != 0) {
                log_error("subs", "out of memory encoding a commit for subscribers");
                sub->live = false;
                continue;
            }
            *encoded = true;
        }
        push_hits(s, sub, evs, evs[end - 1].position);
    }
    s->batch++;
    s->nhits = 0;
    s->ntouched = 0;
}

/* Fans a commit out in two passes. First every event visits only the subscriptions that can
 * match it, those of its topic's bucket and those without a topic filter, and each match is
 * recorded as a hit; so the work grows with the matches, not with the number of subscriptions.
 * Then each subscription with hits gets them (deliver). The hits are delivered whenever there
 * are HITS_WINDOW of them, so that a large commit fanned out to many subscriptions takes
 * bounded memory (a subscription then gets the commit in several pushes). */
void subs_on_commit(void *arg, const evs_event_t *evs, size_t n) {
    subs_t *s = arg;
    if (n == 0) return;
    if (evs[n - 1].position > s->srv->head_position) s->srv->head_position = evs[n - 1].position;
    /* hits index events in 32 bits: a commit is one request (at most 2^20 msgpack objects) or
     * one group of the PostgreSQL store, far fewer events. */
    s->batch++;
    s->nhits = 0;
    s->ntouched = 0;
    bool oom = false, encoded = false;
    for (uint32_t i = 0; i < n && !oom; i++) {
        topic_bucket_t *b;
        HASH_FIND_STR(s->topics, evs[i].topic, b);
        for (topic_link_t *l = b ? b->head : NULL; l && !oom; l = l->next)
            oom = consider(s, l->sub, evs, i) != 0;
        for (sub_t *sub = s->any; sub && !oom; sub = sub->any_next)
            oom = consider(s, sub, evs, i) != 0;
        if (!oom && (s->nhits >= HITS_WINDOW || i + 1 == n)) deliver(s, evs, n, i + 1, &encoded);
    }
    if (oom) {
        /* Every subscription that could take events reads them from the store instead, after
         * the retry delay: nothing is lost. */
        log_error("subs", "out of memory fanning out a commit to subscribers");
        for (sub_t *sub = s->all; sub; sub = sub->next)
            if (sub->live) {
                sub->live = false;
                retry_later(sub);
            } else if (sub->reading) {
                clear_pending(sub);
                sub->overflow = true;
            }
    }
}
