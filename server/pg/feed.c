/* pg/feed.c: the PostgreSQL store's live feed (see feed.h for the model and why it is exact).
 *
 * One unit is in flight at a time on the feed's connection. A unit is built from what the feed
 * lacks, in this order: LISTEN (once per connection), the prepared read statement (once per
 * connection, once the schema exists), then either the start query (max(position), once per
 * feed) or one read page. */
#include "feed.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../log.h"
#include "conn.h"
#include "schema.h"
#include "wire.h"

enum step { S_LISTEN, S_PREPARE, S_START, S_READ };

typedef struct waiter {
    struct waiter *next;
    uint64_t position;
    uint64_t tick; /* the feed's tick count when it started waiting */
    void (*cb)(void *arg);
    void *arg;
} waiter_t;

struct pg_feed {
    uv_loop_t *loop;
    store_t *store;
    pg_conn_t *conn;
    uv_timer_t timer;
    void (*on_change)(void *arg);
    void *change_arg;
    bool schema_ready;
    bool started;   /* head is known */
    uint64_t head;  /* highest position delivered */
    bool listening; /* LISTEN was sent on this connection */
    bool prepared;  /* the read statement was prepared on this connection */
    bool busy;      /* a unit is in flight */
    bool again;     /* poked while busy */
    bool closing;
    /* The unit in flight: its steps in order, the index of the next result, whether it failed. */
    enum step steps[4];
    int nsteps, next_result;
    bool unit_failed;
    enum step failed_step;
    pg_failure_t failure;       /* why the unit's step failed */
    waiter_t *waiters, **wtail; /* in arrival order, so appends are answered in order */
    uint64_t ticks;
    pg_feed_stats_t stats;
};

static void poke(pg_feed_t *f);

/* ---------------------------------------------------------------- waiters */

/* Calls back every waiter whose position was delivered, or every waiter when all is true, or
 * those older than one full tick when old_only is true. */
static void release(pg_feed_t *f, bool all, bool old_only) {
    waiter_t **pp = &f->waiters;
    waiter_t *done = NULL, **tail = &done;
    while (*pp) {
        waiter_t *w = *pp;
        bool go =
            all || (f->started && w->position <= f->head) || (old_only && w->tick + 1 < f->ticks);
        if (go) {
            *pp = w->next;
            w->next = NULL;
            *tail = w;
            tail = &w->next;
        } else {
            pp = &w->next;
        }
    }
    f->wtail = &f->waiters;
    while (*f->wtail)
        f->wtail = &(*f->wtail)->next;
    /* Called after the list is consistent: a callback may add a waiter. */
    while (done) {
        waiter_t *w = done;
        done = w->next;
        w->cb(w->arg);
        free(w);
    }
}

/* ---------------------------------------------------------------- delivering */

/* The byte bound of the feed's read, as SCHEMA_PAGE takes it (store_t.page_bytes; 0: none).
 */
static int64_t read_bytes(const pg_feed_t *f) {
    size_t b = f->store->page_bytes;
    return b == 0 || b > INT64_MAX ? INT64_MAX : (int64_t)b;
}

/* Whether a read's result is a whole page, so that there may be more to read: FEED_PAGE rows, or
 * rows whose sizes (as SCHEMA_EVENT_SIZE counts them) pass the byte bound. */
static bool full_page(const pg_feed_t *f, const PGresult *res) {
    int n = PQntuples(res);
    if (n >= FEED_PAGE) return true;
    uint64_t bytes = 0;
    for (int row = 0; row < n; row++)
        bytes += CODEC_EVENT_OVERHEAD + (uint64_t)PQgetlength(res, row, SCHEMA_EVENT_ENTITY_ID) +
                 (uint64_t)PQgetlength(res, row, SCHEMA_EVENT_TOPIC) +
                 (uint64_t)PQgetlength(res, row, SCHEMA_EVENT_PAYLOAD) +
                 (uint64_t)PQgetlength(res, row, SCHEMA_EVENT_METADATA);
    return bytes > (uint64_t)read_bytes(f);
}

/* Hands the events of a read's result with position > head to the listener, in order, and
 * moves head to the last row's position. Returns the number of rows. */
static int deliver_rows(pg_feed_t *f, PGresult *res) {
    int n = PQntuples(res);
    if (n == 0) return 0;
    evs_event_t *evs = calloc((size_t)n, sizeof *evs);
    if (!evs) {
        /* head stays: the next read returns the same rows. */
        log_error("pg", "feed: out of memory delivering %d events; retrying", n);
        f->unit_failed = true;
        return 0;
    }
    size_t k = 0;
    uint64_t last = f->head;
    for (int row = 0; row < n; row++) {
        uint64_t pos = (uint64_t)pg_wire_get_i64(res, row, SCHEMA_EVENT_POSITION);
        if (pos > last) last = pos;
        if (pos <= f->head) continue; /* delivered already (own group, or an earlier page) */
        schema_event_from_row(res, row, &evs[k++]);
    }
    f->head = last;
    if (k && f->store->on_commit) f->store->on_commit(f->store->on_commit_arg, evs, k);
    free(evs);
    return n;
}

/* ---------------------------------------------------------------- units */

/* Takes the result of one step of the unit in flight: a failure marks the unit failed (the
 * steps after it are aborted); the start query sets head; a read delivers its rows. */
static void on_step_result(pg_feed_t *f, PGresult *res) {
    ExecStatusType st = PQresultStatus(res);
    int i = f->next_result++;
    if (i >= f->nsteps || f->unit_failed) return;
    enum step step = f->steps[i];
    bool ok = st == (step == S_LISTEN || step == S_PREPARE ? PGRES_COMMAND_OK : PGRES_TUPLES_OK);
    if (!ok) {
        f->unit_failed = true;
        f->failed_step = step;
        pg_failure_from_result(&f->failure, res);
        /* A failed LISTEN or prepare rejects the connection: the store's condition reports it,
         * once. A failed read is retried by the next poke. */
        if (step == S_READ) log_warn("pg", "feed: read failed: %s", f->failure.text);
        return;
    }
    if (step == S_START) {
        uint64_t max = PQntuples(res) == 1 ? (uint64_t)pg_wire_get_i64(res, 0, 0) : 0;
        f->head = max;
        f->started = true;
        f->again = true; /* other daemons may have committed since: read at once */
        log_info("pg", "feed: started at position %" PRIu64, f->head);
        if (f->on_change) f->on_change(f->change_arg);
    } else if (step == S_READ) {
        bool more = full_page(f, res);
        if (deliver_rows(f, res) > 0 && more) f->again = true;
    }
}

/* The unit callback of the feed's connection: each result goes to on_step_result; at the end of
 * the unit (or when the connection is lost) the waiters that can be are released, and the next
 * unit goes out if the feed was poked meanwhile. Nothing runs once the feed is closing. */
static void on_unit(void *arg, pg_conn_event_t ev, PGresult *res) {
    pg_feed_t *f = arg;
    if (f->closing) return;
    if (ev == PG_CONN_RESULT) {
        on_step_result(f, res);
        return;
    }
    f->busy = false;
    if (ev == PG_CONN_LOST || f->unit_failed) {
        /* Nobody waits on a feed that cannot deliver now; the events come with a later read. */
        release(f, true, false);
        /* A failed LISTEN or prepare starts again on a fresh connection; a failed read or start
         * query is retried by the next poke (the tick at the latest). */
        if (ev == PG_CONN_END && (f->failed_step == S_LISTEN || f->failed_step == S_PREPARE))
            pg_conn_reject(f->conn, &f->failure);
        return;
    }
    release(f, false, false);
    if (f->again) poke(f);
}

/* Queues what the connection lacks: LISTEN (once per connection), and the prepared read
 * statement (once per connection, once the schema exists). */
static void queue_setup(pg_feed_t *f) {
    if (!f->listening) {
        pg_conn_send(f->conn, SCHEMA_SQL_LISTEN, 0, NULL, NULL, NULL, NULL, false);
        f->steps[f->nsteps++] = S_LISTEN;
        f->listening = true;
    }
    if (f->schema_ready && !f->prepared) {
        static const Oid types[SCHEMA_FEED_READ_NPARAMS] = {PG_INT8OID, PG_INT8OID};
        char sql[sizeof SCHEMA_SQL_FEED_READ_FMT + 16];
        snprintf(sql, sizeof sql, SCHEMA_SQL_FEED_READ_FMT, FEED_PAGE, FEED_PAGE, FEED_PAGE);
        pg_conn_prepare(f->conn, SCHEMA_FEED_READ_NAME, sql, SCHEMA_FEED_READ_NPARAMS, types);
        f->steps[f->nsteps++] = S_PREPARE;
        f->prepared = true;
    }
}

/* Sends the next unit if none is in flight: whatever the connection lacks, then the start query
 * or a read. */
static void poke(pg_feed_t *f) {
    if (f->closing) return;
    if (f->busy) {
        f->again = true;
        return;
    }
    if (!pg_conn_is_ready(f->conn)) return;
    f->again = false;
    f->nsteps = 0;
    f->next_result = 0;
    f->unit_failed = false;
    f->failed_step = S_READ;
    queue_setup(f);
    if (f->schema_ready && !f->started) {
        pg_conn_send(f->conn, SCHEMA_SQL_MAX_POSITION, 0, NULL, NULL, NULL, NULL, true);
        f->steps[f->nsteps++] = S_START;
    } else if (f->schema_ready) {
        pg_wire_buf_t b[SCHEMA_FEED_READ_NPARAMS] = {{0}};
        pg_wire_put_i64(&b[SCHEMA_FEED_READ_P_AFTER], (int64_t)f->head);
        pg_wire_put_i64(&b[SCHEMA_FEED_READ_P_BYTES], read_bytes(f));
        const char *values[SCHEMA_FEED_READ_NPARAMS];
        int lengths[SCHEMA_FEED_READ_NPARAMS], formats[SCHEMA_FEED_READ_NPARAMS];
        bool failed = false;
        for (int p = 0; p < SCHEMA_FEED_READ_NPARAMS; p++) {
            failed |= b[p].failed;
            values[p] = b[p].data;
            lengths[p] = (int)b[p].len;
            formats[p] = 1;
        }
        if (!failed)
            pg_conn_send_prepared(f->conn, SCHEMA_FEED_READ_NAME, SCHEMA_FEED_READ_NPARAMS, values,
                                  lengths, formats, true);
        for (int p = 0; p < SCHEMA_FEED_READ_NPARAMS; p++)
            pg_wire_free(&b[p]);
        if (failed) {
            f->again = true; /* the tick tries again */
            return;
        }
        f->steps[f->nsteps++] = S_READ;
        f->stats.reads++;
    }
    if (f->nsteps == 0) return;
    f->busy = true;
    if (pg_conn_sync(f->conn, on_unit, f) != 0) f->busy = false;
}

/* ---------------------------------------------------------------- connection */

/* The feed's connection is ready (again): LISTEN and prepare anew, then read; the store looks
 * at its condition again. */
static void on_ready(void *arg, pg_conn_t *c) {
    pg_feed_t *f = arg;
    (void)c;
    f->listening = f->prepared = false;
    poke(f);
    if (f->on_change) f->on_change(f->change_arg); /* its connection works again */
}

/* The feed's connection was lost (its unit already got PG_CONN_LOST): nobody waits on a feed that
 * cannot deliver, and the store re-examines what waits for the feed. */
static void on_lost(void *arg, pg_conn_t *c) {
    pg_feed_t *f = arg;
    (void)c;
    f->listening = f->prepared = false;
    f->busy = false;
    release(f, true, false);
    if (f->on_change) f->on_change(f->change_arg);
}

/* A notification: the doorbell of SCHEMA_NOTIFY_CHANNEL pokes the feed, unless it names a
 * position the feed delivered already. */
static void on_notify(void *arg, pg_conn_t *c, const PGnotify *n) {
    pg_feed_t *f = arg;
    (void)c;
    f->stats.notifies++;
    if (strcmp(n->relname, SCHEMA_NOTIFY_CHANNEL) != 0) return;
    char *end = NULL;
    unsigned long long pos = n->extra ? strtoull(n->extra, &end, 10) : 0;
    /* A doorbell for what this feed delivered already (usually our own group) is ignored. */
    if (f->started && end && end != n->extra && pos <= f->head) return;
    poke(f);
}

/* The safety timer: releases the waiters older than one full tick, and reads. */
static void on_tick(uv_timer_t *t) {
    pg_feed_t *f = t->data;
    f->ticks++;
    release(f, false, true);
    poke(f);
}

/* ---------------------------------------------------------------- public */

pg_feed_t *pg_feed_new(uv_loop_t *loop, const char *conninfo, store_t *store,
                       void (*on_change)(void *arg), void *arg) {
    pg_feed_t *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    f->loop = loop;
    f->store = store;
    f->on_change = on_change;
    f->change_arg = arg;
    f->wtail = &f->waiters;
    static const pg_conn_cbs_t cbs = {.on_ready = on_ready,
                                      .on_lost = on_lost,
                                      .on_notify = on_notify,
                                      .application_name = FEED_APPLICATION_NAME};
    f->conn = pg_conn_new(loop, conninfo, "feed", &cbs, f);
    if (!f->conn) {
        free(f);
        return NULL;
    }
    uv_timer_init(loop, &f->timer);
    f->timer.data = f;
    uv_timer_start(&f->timer, on_tick, FEED_TICK_MS, FEED_TICK_MS);
    return f;
}

static void on_timer_closed(uv_handle_t *h) {
    free(h->data);
}

void pg_feed_free(pg_feed_t *f) {
    if (!f) return;
    f->closing = true;
    pg_conn_close(f->conn);
    release(f, true, false);
    uv_close((uv_handle_t *)&f->timer, on_timer_closed);
}

void pg_feed_schema_ready(pg_feed_t *f) {
    f->schema_ready = true;
    poke(f);
}

bool pg_feed_is_started(const pg_feed_t *f) {
    return f->started;
}

bool pg_feed_is_connected(const pg_feed_t *f) {
    return pg_conn_is_ready(f->conn);
}

const pg_failure_t *pg_feed_failure(const pg_feed_t *f) {
    return pg_conn_failure(f->conn);
}

bool pg_feed_may_start(const pg_feed_t *f) {
    return !f->started && (pg_conn_is_connecting(f->conn) || pg_conn_is_ready(f->conn));
}

void pg_feed_committed(void *arg, const evs_event_t *events, size_t n, uint64_t block_first,
                       uint64_t block_last) {
    pg_feed_t *f = arg;
    if (!f->started || block_first > f->head + 1) {
        /* Another daemon's events, or a gap, may lie below the block: read them in order. (Not
         * started does not happen: the store commits nothing before the start, feed.h.) */
        poke(f);
        return;
    }
    /* Everything below the block was delivered, and nothing but these events is in it. */
    size_t first = 0;
    while (first < n && events[first].position <= f->head)
        first++;
    if (block_last > f->head) f->head = block_last;
    f->stats.direct++;
    if (first < n && f->store->on_commit)
        f->store->on_commit(f->store->on_commit_arg, events + first, n - first);
    release(f, false, false); /* earlier appends that waited are answered before these */
}

int pg_feed_wait(pg_feed_t *f, uint64_t position, void (*cb)(void *arg), void *arg) {
    if (f->closing || (f->started && position <= f->head) || !pg_conn_is_ready(f->conn)) return -1;
    waiter_t *w = malloc(sizeof *w);
    if (!w) return -1;
    w->position = position;
    w->tick = f->ticks;
    w->cb = cb;
    w->arg = arg;
    w->next = NULL;
    *f->wtail = w;
    f->wtail = &w->next;
    if (!f->busy) poke(f); /* else the read in flight (sent after the COMMIT) brings it */
    return 0;
}

void pg_feed_get_stats(const pg_feed_t *f, pg_feed_stats_t *st) {
    *st = f->stats;
    st->head = f->head;
}
