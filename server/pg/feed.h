/* pg/feed.h: the PostgreSQL store's live feed: every committed event, from every daemon on the
 * database, handed to the store's commit listener exactly once and in position order.
 *
 * The feed keeps head, the highest position it has delivered. At start it sets head to the
 * current max(position) (live begins "now"; subscriptions with "after" catch up through store
 * reads). A *read* selects the events with position > head in position order, a page of
 * FEED_PAGE at a time and of at most store_t.page_bytes (bounded in the query, as the store's
 * reads are: SCHEMA_PAGE), hands them to the listener and moves head to the last one; a full
 * page, by count or by bytes, reads again. One read is in flight at a time; a poke that arrives
 * meanwhile makes it read once more when it ends. Pokes:
 *   1. this daemon's group committed (pg_feed_committed, the group commit's hook);
 *   2. a NOTIFY on evstore_events (every append transaction sends one with its last position
 *      just before its COMMIT: a doorbell, never data);
 *   3. the feed's connection (re)connected: LISTEN again, then read;
 *   4. a safety timer, every FEED_TICK_MS.
 * Nothing depends on a notification arriving: 1, 3 and 4 alone deliver everything.
 *
 * Why this is exact: every append transaction of every daemon takes its positions under one
 * advisory lock held until its COMMIT, so once a read sees position P, every lower position is
 * committed or gone for good; head only moves forward over what a read returned. When this
 * daemon's own group reserved the block of positions right after head, nothing else can be
 * below or inside it, so its events are delivered at once, without a read (the usual case with
 * one daemon).
 *
 * The feed runs on a connection of its own (application_name "evstored-feed"), so LISTEN never
 * waits behind reads or writes. */
#ifndef EVS_PG_FEED_H
#define EVS_PG_FEED_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "../store.h"
#include "conn.h"

#define FEED_PAGE 1000
#define FEED_TICK_MS 1000
#define FEED_APPLICATION_NAME "evstored-feed"

typedef struct pg_feed pg_feed_t;

/* Creates the feed of store (whose on_commit it calls) on its own connection to conninfo and
 * starts connecting. on_change(arg) is called when the feed starts (head became known), when
 * its connection is ready and when it is lost, so that the store can re-examine reads that wait for
 * it. NULL when out of memory. */
pg_feed_t *pg_feed_new(uv_loop_t *loop, const char *conninfo, store_t *store,
                       void (*on_change)(void *arg), void *arg);

/* Closes the feed: waiters are called now, then the memory is freed once the loop has closed
 * its handles. */
void pg_feed_free(pg_feed_t *f);

/* The schema exists (the writer ran the migrations): the feed may start. */
void pg_feed_schema_ready(pg_feed_t *f);

/* True once head is known. A subscription's catch-up read must not start before that: the
 * events it would not see could be at or below the head the feed starts from. */
bool pg_feed_is_started(const pg_feed_t *f);

/* True while the feed's connection is ready; and why it last failed (kind PG_FAIL_NONE when
 * nothing failed since it was ready). */
bool pg_feed_is_connected(const pg_feed_t *f);
const pg_failure_t *pg_feed_failure(const pg_feed_t *f);

/* True while the feed is not started but may start soon (connecting, or connected and
 * starting). */
bool pg_feed_may_start(const pg_feed_t *f);

/* The group commit's hook (arg is the feed): this daemon committed events in
 * [block_first, block_last]. The store must not commit before the feed has started
 * (pg_feed_is_started; pg/store.c holds its group commit until then): a group committed just
 * before the start query would be counted in head and never delivered. */
void pg_feed_committed(void *arg, const evs_event_t *events, size_t n, uint64_t block_first,
                       uint64_t block_last);

/* Asks to be called back once the listener has been given every event up to position (so that
 * an append is acknowledged after its events reached the listener, as store.h asks). Returns 0
 * when cb(arg) will be called exactly once later: when head reaches position, or when the feed
 * gives up waiting (its connection or a read failed, FEED_TICK_MS to twice that passed, or the
 * feed is freed). Returns -1, and never calls cb, when there is nothing to wait for (already
 * delivered) or the feed cannot deliver soon (not connected). */
int pg_feed_wait(pg_feed_t *f, uint64_t position, void (*cb)(void *arg), void *arg);

/* Counters, for tests and logs. */
typedef struct pg_feed_stats {
    uint64_t head;
    uint64_t reads;    /* reads sent */
    uint64_t direct;   /* own groups delivered without a read */
    uint64_t notifies; /* notifications received */
} pg_feed_stats_t;
void pg_feed_get_stats(const pg_feed_t *f, pg_feed_stats_t *st);

#endif
