/* subs_live.c: the live side of subscriptions: the topic index (topic -> the subscriptions
 * that name it) and the fan-out of each commit to the subscriptions it matches (see subs.h for
 * the model, subs_priv.h for the structures). */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "subs_priv.h"

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
int subs_index_add(subs_t *s, sub_t *sub) {
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
void subs_index_remove(subs_t *s, sub_t *sub) {
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
        size_t start = sub_push_begin(sub, n, &pk);
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
                sub_add_pending(sub, &evs[s->hits[k].event]);
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
                sub_retry_later(sub);
            } else if (sub->reading) {
                sub_clear_pending(sub);
                sub->overflow = true;
            }
    }
}
