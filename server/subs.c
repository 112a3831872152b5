/* subs.c: subscriptions (see subs.h for the model). */
#include "subs.h"

#include "subs_priv.h"

#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "dispatch.h"
#include "log.h"

static void on_lease_tick(uv_timer_t *t);
static void retry_standby(subs_t *s);

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
    uv_timer_init(srv->loop, &s->lease_timer);
    s->lease_timer.data = s;
    s->handles_open = 3;
    uv_timer_start(&s->lease_timer, on_lease_tick, LEASE_TICK_MS, LEASE_TICK_MS);
    uv_unref((uv_handle_t *)&s->lease_timer);
    return s;
}

void sub_clear_pending(sub_t *sub) {
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
void sub_add_pending(sub_t *sub, const evs_event_t *ev) {
    if (sub->overflow) return;
    size_t size = codec_event_size(ev);
    sub->pending_bytes += size;
    if (sub->npending == PENDING_MAX || sub->pending_bytes > pending_limit(sub) ||
        (!sub->pending && !(sub->pending = malloc(PENDING_MAX * sizeof *sub->pending))) ||
        evs_event_dup(&sub->pending[sub->npending], ev) != 0) {
        sub_clear_pending(sub);
        sub->overflow = true;
        sub->owner->srv->stats.subscription_pending_overflows++;
        return;
    }
    sub->npending++;
}

static void sub_free(sub_t *sub) {
    sub_clear_pending(sub);
    for (size_t i = 0; i < sub->ntopics; i++)
        free(sub->topics[i]);
    free(sub->topics);
    free(sub->links);
    free(sub->prefix);
    free(sub->consumer);
    conn_unref(sub->conn);
    free(sub);
}

/* A release came back: the subscribes that wait for it try again at once. */
static void lease_released(void *arg, const codec_error_t *err, uint64_t count) {
    release_t *rel = arg;
    (void)err;
    (void)count;
    if (!rel) return;
    subs_t *s = rel->owner;
    for (release_t **pp = &s->releases; *pp; pp = &(*pp)->next)
        if (*pp == rel) {
            *pp = rel->next;
            break;
        }
    free(rel);
    if (!s->closing) retry_standby(s);
}

static bool release_pending(const subs_t *s, const char *consumer) {
    for (const release_t *rel = s->releases; rel; rel = rel->next)
        if (strcmp(rel->consumer, consumer) == 0) return true;
    return false;
}

/* Gives a lease up (fence) in the store, noting it as in flight. */
static void release_lease(subs_t *s, const char *consumer, uint64_t fence) {
    store_t *store = s->srv->store;
    size_t len = strlen(consumer);
    release_t *rel = s->closing ? NULL : malloc(sizeof *rel + len + 1);
    if (rel) {
        rel->owner = s;
        memcpy(rel->consumer, consumer, len + 1);
        rel->next = s->releases;
        s->releases = rel;
    }
    store->ops->lease_release(store, consumer, fence, lease_released, rel);
}

/* Gives sub's lease up, when it holds one, so that a standby takes over at once. */
static void sub_release_lease(sub_t *sub) {
    if (!sub->consumer || sub->lost) return;
    sub->lost = true;
    release_lease(sub->owner, sub->consumer, sub->fence);
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

void subs_free(subs_t *s) {
    sub_t *sub = s->all, *next;
    for (; sub; sub = next) {
        next = sub->next;
        subs_index_remove(s, sub);
        if (sub->reading || sub->renewing)
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
    for (early_sub_t *e = s->standby, *enext; e; e = enext) {
        enext = e->next;
        early_free(e);
    }
    s->standby = NULL;
    while (s->releases) {
        release_t *rel = s->releases;
        s->releases = rel->next;
        free(rel);
    }
    uv_close((uv_handle_t *)&s->lease_timer, on_retry_closed);
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
    s->closing = true; /* releases from now on are not waited for */
    for (sub_t *sub = s->all; sub; sub = sub->next) {
        if (conn_is_open(sub->conn)) push_flag(sub, "closing");
        sub_release_lease(sub);
    }
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
    subs_index_remove(s, sub);
    s->count--;
    sub_release_lease(sub);
    if (sub->reading || sub->renewing)
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
void sub_retry_later(sub_t *sub) {
    subs_t *s = sub->owner;
    sub->failed = true;
    if (!s->retry_active) {
        s->retry_active = true;
        uv_timer_start(&s->retry, on_retry, RETRY_MS, 0);
    }
}

/* Starts the push frame {"sub": SID, "events": [n events...]} in sub's connection's output,
 * for the caller to write the n events into; returns the frame's start for codec_frame_end. */
size_t sub_push_begin(sub_t *sub, size_t n, msgpack_packer *pk) {
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
    size_t start = sub_push_begin(sub, n, &pk);
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
        if (!sub->renewing) sub_free(sub);
        return;
    }
    if (err) {
        log_warn("subs", "%s: subscription %llu: catch-up read failed: %s", sub->conn->peer,
                 (unsigned long long)sub->sid, err->message);
        sub_retry_later(sub);
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
        sub_clear_pending(sub);
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
        sub_clear_pending(sub); /* too big for one push: read them from the store instead */
        if (!sub->pumping) pump(sub);
        return;
    }
    push_events(sub, sub->pending + first, rest);
    sub_clear_pending(sub);
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
    while (!sub->live && !sub->reading && !sub->failed && !sub->removed && !sub->lost &&
           conn_is_open(sub->conn) && conn_queued(sub->conn) <= s->srv->cfg.out_limit) {
        store_read_t q = {
            .after = sub->last_sent,
            .limit = CATCHUP_PAGE,
            .topics = (const char *const *)sub->topics,
            .ntopics = sub->ntopics,
            .entity_prefix = sub->prefix,
            .partition_count = sub->partition_count,
            .partition_index = sub->partition_index,
        };
        sub->reading = true;
        sub_clear_pending(sub);
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
    free(e->consumer);
    if (!e->uncounted) e->conn->inflight--;
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
        req.present = e->has_after ? ARG_AFTER : 0;
        req.after = e->after;
        req.partition_count = e->partition_count;
        req.partition_index = e->partition_index;
        if (subs_subscribe(s, c, &req, &why) != 0) {
            err = &why;
        } else if (e->consumer) {
            /* subs_subscribe put the new subscription first on the connection. */
            c->subs->consumer = e->consumer;
            c->subs->fence = e->fence;
            e->consumer = NULL;
        }
    }
    if (e->consumer && e->fence) release_lease(s, e->consumer, e->fence);
    if (open && err) dispatch_reply_error_to(c, dispatch_op_index("subscribe"), true, e->id, err);
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

/* A copy of a subscribe's arguments, counted in flight on c until early_answer; NULL with err
 * set when out of memory. */
static early_sub_t *early_new(subs_t *s, conn_t *c, const codec_request_t *req,
                              codec_error_t *err) {
    early_sub_t *e = calloc(1, sizeof *e);
    if (!e) {
        codec_error_set(err, EVS_EINTERNAL, "out of memory");
        return NULL;
    }
    e->owner = s;
    e->conn = c;
    e->id = req->id;
    e->partition_count = req->partition_count;
    e->partition_index = req->partition_index;
    e->standby = req->standby;
    if (req->present & ARG_AFTER) {
        e->has_after = true;
        e->after = req->after;
    }
    conn_ref(c);
    c->inflight++;
    if (req->ntopics && !(e->topics = calloc(req->ntopics, sizeof *e->topics))) goto oom;
    for (size_t i = 0; i < req->ntopics; i++) {
        if (!(e->topics[i] = strdup(req->topics[i]))) goto oom;
        e->ntopics++;
    }
    if (req->entity_prefix && req->entity_prefix[0] && !(e->prefix = strdup(req->entity_prefix)))
        goto oom;
    if ((req->present & ARG_CONSUMER) && !(e->consumer = strdup(req->consumer))) goto oom;
    return e;
oom:
    early_free(e);
    codec_error_set(err, EVS_EINTERNAL, "out of memory");
    return NULL;
}

/* Makes a subscribe without "after" wait for the live feed. 0, or an error code with err. */
static int early_wait(subs_t *s, conn_t *c, const codec_request_t *req, codec_error_t *err) {
    early_sub_t *e = early_new(s, c, req, err);
    if (!e) return err->code;
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
}

/* The consumer's checkpoint came back: the subscription starts after it. */
static void consumer_start(void *arg, const codec_error_t *err, uint64_t position) {
    early_sub_t *e = arg;
    e->has_after = true;
    e->after = position;
    early_answer(e->owner, e, err);
}

static void lease_try(early_sub_t *e);

/* The lease of a subscribe with "consumer" came back: taken, the subscription starts (after the
 * consumer's checkpoint unless "after" was given); held by another, a standby waits for the next
 * tick and any other gets conflict. */
static void on_leased(void *arg, const codec_error_t *err, bool held, uint64_t fence) {
    early_sub_t *e = arg;
    subs_t *s = e->owner;
    codec_error_t why;
    if (held) e->fence = fence;
    if (err || !conn_is_open(e->conn)) {
        early_answer(s, e, err);
        return;
    }
    if (!held && (e->standby || release_pending(s, e->consumer))) {
        if (!e->uncounted) {
            e->conn->inflight--; /* a standby may wait for ever: it holds no request slot */
            e->uncounted = true;
        }
        e->next = s->standby;
        s->standby = e;
        return;
    }
    if (!held) {
        codec_error_set(&why, EVS_ECONFLICT,
                        "consumer %.255s is held by another subscription (here or on another "
                        "daemon); subscribe with \"standby\": true to take over when it ends",
                        e->consumer);
        early_answer(s, e, &why);
        return;
    }
    if (e->has_after) {
        early_answer(s, e, NULL);
        return;
    }
    s->srv->store->ops->get_checkpoint(s->srv->store, e->consumer, consumer_start, e);
}

static void lease_try(early_sub_t *e) {
    store_t *store = e->owner->srv->store;
    store->ops->lease(store, e->consumer, 0, LEASE_TTL_MS, on_leased, e);
}

/* A subscribe with "consumer": takes the consumer's lease, then starts. 0, or an error code
 * with err. */
static int consumer_wait(subs_t *s, conn_t *c, const codec_request_t *req, codec_error_t *err) {
    early_sub_t *e = early_new(s, c, req, err);
    if (!e) return err->code;
    lease_try(e);
    return 0;
}

/* A renewal came back: a lease that went to another ends the subscription's pushes, with a
 * closing push that says so. */
static void on_renewed(void *arg, const codec_error_t *err, bool held, uint64_t fence) {
    sub_t *sub = arg;
    (void)fence;
    sub->renewing = false;
    if (sub->removed) {
        if (!sub->reading) sub_free(sub);
        return;
    }
    if (err || held || sub->lost) return; /* a failed renewal is tried again next time */
    sub->lost = true;
    log_warn("subs", "%s: subscription %llu lost its lease on consumer %s", sub->conn->peer,
             (unsigned long long)sub->sid, sub->consumer);
    if (!conn_is_open(sub->conn)) return;
    conn_t *c = sub->conn;
    msgpack_packer pk;
    codec_packer_init(&pk, &c->out);
    size_t start = codec_frame_begin(&c->out);
    msgpack_pack_map(&pk, 3);
    codec_pack_key(&pk, "sub");
    msgpack_pack_uint64(&pk, sub->sid);
    codec_pack_key(&pk, "closing");
    msgpack_pack_true(&pk);
    codec_pack_key(&pk, "lease_lost");
    msgpack_pack_true(&pk);
    codec_frame_end(&c->out, start, UINT32_MAX);
    conn_schedule_flush(c);
}

/* The standby subscriptions try for their lease again (those whose connection closed are
 * dropped). */
static void retry_standby(subs_t *s) {
    early_sub_t *e = s->standby;
    s->standby = NULL;
    while (e) {
        early_sub_t *next = e->next;
        e->next = NULL;
        if (conn_is_open(e->conn))
            lease_try(e);
        else
            early_free(e);
        e = next;
    }
}

/* Every LEASE_TICK_MS: the standby subscriptions try again, and every other tick the held
 * leases are renewed. */
static void on_lease_tick(uv_timer_t *t) {
    subs_t *s = t->data;
    store_t *store = s->srv->store;
    retry_standby(s);
    if (s->lease_ticks++ % 2) return;
    for (sub_t *sub = s->all; sub; sub = sub->next)
        if (sub->consumer && !sub->lost && !sub->renewing) {
            sub->renewing = true;
            store->ops->lease(store, sub->consumer, sub->fence, LEASE_TTL_MS, on_renewed, sub);
        }
}

uint64_t subs_consumer_fence(conn_t *c, const char *consumer) {
    for (const sub_t *sub = c->subs; sub; sub = sub->conn_next)
        if (sub->consumer && strcmp(sub->consumer, consumer) == 0) return sub->fence;
    return 0;
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
    if ((req->present & ARG_STANDBY) && !(req->present & ARG_CONSUMER))
        return codec_error_set(err, EVS_EBAD_REQUEST, "standby needs consumer");
    if (req->present & ARG_CONSUMER) return consumer_wait(s, c, req, err);
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
    sub->partition_count = req->partition_count;
    sub->partition_index = req->partition_index;
    if (subs_index_add(s, sub) != 0) goto oom;
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
