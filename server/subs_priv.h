/* subs_priv.h: what subs.c (requests, catch-up, waiting for the live feed) and subs_live.c (the
 * topic index and the fan-out of commits) share: the subscription and the set of them. */
#ifndef EVS_SUBS_PRIV_H
#define EVS_SUBS_PRIV_H

#include <uthash.h>

#include "conn.h"
#include "subs.h"

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

/* Drops the pending events and the overflow mark. */
void sub_clear_pending(sub_t *sub);

/* Keeps a copy of a live event that matched during a catch-up read (or marks overflow). */
void sub_add_pending(sub_t *sub, const evs_event_t *ev);

/* Marks sub to be pumped again by the retry timer (RETRY_MS from now). */
void sub_retry_later(sub_t *sub);

/* Starts the push frame {"sub": SID, "events": [n events...]} in sub's connection's output,
 * for the caller to write the n events into; returns the frame's start for codec_frame_end. */
size_t sub_push_begin(sub_t *sub, size_t n, msgpack_packer *pk);

/* Puts sub in the topic index: a link in each of its topics' buckets, or on the any list.
 * Returns 0, or -1 when out of memory (sub is then in no bucket). */
int subs_index_add(subs_t *s, sub_t *sub);

/* Takes sub out of the topic index. */
void subs_index_remove(subs_t *s, sub_t *sub);

#endif
