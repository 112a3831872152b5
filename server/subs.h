/* subs.h: subscriptions: catch-up from the store, then live pushes, with filters and
 * backpressure.
 *
 * A subscription is in one of two states. Catching up: it reads pages from the store after the
 * last position it was sent, pushing each page, until a page comes back short while no commit
 * happened during the read; then it goes live (and sends the caught_up marker once, if it
 * started with "after"). Live: every commit is pushed as it happens, from an encoding of the
 * batch shared by all subscribers. A live subscription whose connection's output is over the
 * limit is not fed; it goes back to catching up, and reads again from the store from the last
 * position it was sent once the output has drained. So every matching event is pushed exactly
 * once, in position order, and a slow reader costs bounded memory. */
#ifndef EVS_SUBS_H
#define EVS_SUBS_H

#include "../proto/codec_request.h"
#include "server.h"

subs_t *subs_new(server_t *srv);
void subs_free(subs_t *subs);

/* Handles a subscribe request: replies {"sub": SID} into c's output and starts the
 * subscription. Returns 0, or an error code with err filled (nothing was replied). A subscribe
 * without "after" that arrives before the store's live feed has started (store_t.live_ready)
 * waits for it, as a request in flight, until its deadline (request_timeout); it is then
 * answered (ok or unavailable) later, and 0 is returned now. */
int subs_subscribe(subs_t *subs, conn_t *c, const codec_request_t *req, codec_error_t *err);

/* Ends subscription sid of c. 0, or -1 when c has no such subscription. */
int subs_unsubscribe(subs_t *subs, conn_t *c, uint64_t sid);

/* c is closing: ends all its subscriptions. */
void subs_conn_closed(subs_t *subs, conn_t *c);

/* c's output has drained: resumes its subscriptions that were waiting. */
void subs_conn_drained(subs_t *subs, conn_t *c);

/* The store's commit listener (arg is the subs_t). */
void subs_on_commit(void *arg, const evs_event_t *events, size_t n);

/* The store's live listener (arg is the subs_t): the subscriptions without "after" that waited
 * for the live feed start now. */
void subs_on_live(void *arg);

/* The fencing number of the lease that c's subscription to consumer holds (or held, and lost),
 * 0 when c has none: checkpoints written on c carry it, so that a subscription that lost its
 * lease cannot move the consumer any more. */
uint64_t subs_consumer_fence(conn_t *c, const char *consumer);

/* Number of subscriptions. */
size_t subs_count(const subs_t *subs);

/* Most subscriptions the stats op lists (the furthest behind). */
#define SUBS_STATS_MAX 100

/* Fills the subscription gauges of g (subs_stats.c): the bytes the daemon holds for subscribers
 * (their connections' queued output, counted once per connection, and the live events kept
 * during catch-up reads), the bytes in those connections' socket send queues, the largest lag,
 * and the packer of the stats op's "subscriptions" list. */
void subs_gauges(const subs_t *subs, stats_gauges_t *g);

/* Packs the "subscriptions" array of the stats map (arg is the subs_t): the SUBS_STATS_MAX
 * subscriptions furthest behind, each {"sub", "peer", "consumer" (nil: none), "position" (of
 * the last event queued for the client), "head", "lag", "live", "queued_bytes",
 * "socket_bytes"}. */
void subs_pack_stats(msgpack_packer *pk, const void *arg);

/* Shutdown: pushes {"sub": SID, "closing": true} to every subscription, telling its client that
 * the stream ends here and that it resumes after the last position it received by subscribing
 * again (to this daemon once it is back, or to another). main.c calls it once the requests in
 * flight are done, so that no push of theirs can follow the "closing" one. */
void subs_notify_closing(subs_t *subs);

#endif
