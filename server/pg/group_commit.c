/* pg/group_commit.c: batching appends into transactions on the writer connection (see
 * group_commit.h for the protocol of one transaction). */
#include "group_commit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../log.h"
#include "../store.h"
#include "checkpoint.h"
#include "decide.h"
#include "schema.h"
#include "version_cache.h"
#include "wire.h"
#include "write_queue.h"

enum phase { PH_IDLE, PH_CHECK, PH_WRITE, PH_DELETE };

/* The statements of a phase 1 unit, in the order their results come back. */
enum check_result { CHECK_BEGIN, CHECK_LOCK, CHECK_POSITIONS, CHECK_ROWS, CHECK_NRESULTS };

/* The statements of a delete-entity unit, in the order their results come back. */
enum delete_result {
    DELETE_BEGIN,
    DELETE_LOCK,
    DELETE_EVENTS,
    DELETE_SNAPSHOTS,
    DELETE_TAKE_POSITION,
    DELETE_COMMIT
};

/* Groups sent the slow way, after an entity taken for new turned out to have events (or a tracked
 * consumer was past a tracking), before the fast path takes unseen entities for new (or carries
 * trackings) again. */
#define GC_GUESS_BACKOFF 64

struct group_commit {
    pg_conn_t *w;
    gc_commit_hook hook;
    void *hook_arg;
    write_queue_t queue; /* requests not yet in a transaction */
    gc_request_t *group; /* in flight, in arrival order */
    size_t group_events;
    enum phase phase;
    int nresults;
    bool failed, transient;
    char why[256];
    int64_t first_position; /* of the block taken in phase 1 */
    decide_t d;             /* the group's entities and known event ids, and deciding it */
    /* The parameters of phase 1 and of the guard, by what they hold (schema.h), and of the
     * INSERT. They keep their memory from group to group. */
    pg_wire_buf_t entities_param;  /* text[]: every entity, or the fast path's new ones */
    pg_wire_buf_t event_ids_param; /* uuid[]: the client-chosen event ids */
    pg_wire_buf_t count_param;     /* int8: the number of positions to take */
    pg_wire_buf_t last_seq_param;  /* int8: the guard's expected sequence value */
    pg_wire_buf_t insert[SCHEMA_INSERT_NPARAMS];
    /* The bound on event sizes stored (evs_event_size) as far as this writer knows: at least
     * SCHEMA_EVENT_SIZE_FLOOR; and the group in flight's largest event when it raises it, else
     * -1 (both less CODEC_EVENT_OVERHEAD). */
    int64_t size_known, size_raising;
    pg_wire_buf_t size_param;
    /* The fast path (migrations/003_append_guard.sql). */
    vcache_t cache;
    bool fast;     /* the group in flight was decided from the cache */
    char guard[6]; /* the guard's SQLSTATE when it refused the group in flight */
    unsigned guess_backoff;
    unsigned tracking_backoff;     /* the same, after the trackings' guard refused a group */
    int64_t delete_position;       /* the position a delete-entity took (it changes evs_events) */
    uint64_t nfast, nslow, nguard; /* groups sent each way, guards that refused */
    bool held;                     /* gc_set_held */
    void (*prepared_hook)(void *arg, const pg_failure_t *failure);
    void (*outcome_hook)(void *arg, const pg_failure_t *failure, unsigned wrote);
    void *outcome_arg;
    pg_failure_t failure; /* the transaction in flight's first failure, classified */
    bool prepared; /* the statements are prepared on this connection: transactions may start */
    bool prepare_failed;          /* preparing the statements on this connection failed: */
    pg_failure_t prepare_failure; /* why */
    void *prepared_arg;
    ckpt_group_t ckpts; /* consumers of a group with trackings (checkpoint.h) */
};

static void start_next(group_commit_t *g);
static void send_check(group_commit_t *g);

/* ---------------------------------------------------------------- queue */

/* Finishes every request of the list r with code and why (unless it has an error already). */
static void fail_list(gc_request_t *r, int code, const char *why) {
    while (r) {
        gc_request_t *next = r->next;
        if (r->err.code == 0) codec_error_set(&r->err, code, "%s", why);
        r->done(r);
        r = next;
    }
}

/* ---------------------------------------------------------------- group state */

static void clear_group_state(group_commit_t *g) {
    decide_clear(&g->d);
    g->size_raising = -1;
    g->nresults = 0;
    g->failed = g->transient = false;
    g->why[0] = '\0';
    g->fast = false;
    g->guard[0] = '\0';
    ckpt_clear(&g->ckpts);
}

/* After a COMMIT that wrote the group: every entity of the group is at e->next, and the sequence
 * at seq. */
static void remember_versions(group_commit_t *g, int64_t seq) {
    for (decide_entity_t *e = g->d.entities; e; e = e->hh.next)
        if (vcache_set(&g->cache, e->id, e->next) != 0) return; /* invalidated */
    vcache_commit(&g->cache, seq);
}

/* Records the first failure of the transaction in flight (res NULL: the connection was lost). */
static void note_failure(group_commit_t *g, PGresult *res) {
    if (g->failed) return;
    g->failed = true;
    g->transient = res ? pg_conn_result_is_transient(res) : true;
    if (res)
        pg_failure_from_result(&g->failure, res);
    else
        pg_failure_set(&g->failure, PG_FAIL_UNREACHABLE, "the connection was lost");
    const char *msg = res ? PQresultErrorMessage(res) : "the connection to PostgreSQL was lost";
    snprintf(g->why, sizeof g->why, "%s", msg && *msg ? msg : "PostgreSQL failed the write");
    size_t n = strlen(g->why);
    while (n && (g->why[n - 1] == '\n' || g->why[n - 1] == ' '))
        g->why[--n] = '\0';
}

/* Records that memory ran short before anything of the group was sent. */
static void note_out_of_memory(group_commit_t *g) {
    note_failure(g, NULL);
    snprintf(g->why, sizeof g->why, "out of memory");
}

/* Hands the accepted events of the group that committed, in position order, to the commit hook
 * with the block of positions the transaction reserved. */
static void call_commit_hook(group_commit_t *g, gc_request_t *list, size_t block) {
    evs_event_t *all = malloc(g->d.naccepted * sizeof *all);
    if (!all) {
        log_error("pg", "out of memory: subscribers miss a committed group");
        return;
    }
    size_t k = 0;
    for (gc_request_t *r = list; r; r = r->next)
        if (r->written)
            for (size_t i = 0; i < r->n; i++)
                all[k++] = r->events[i];
    g->hook(g->hook_arg, all, k, (uint64_t)g->first_position,
            (uint64_t)g->first_position + block - 1);
    free(all);
}

static void send_sql(group_commit_t *g, const char *sql);

/* The unit callback of the ROLLBACK after a failed transaction: nothing to do. */
static void on_cleanup(void *arg, pg_conn_event_t ev, PGresult *res) {
    (void)arg, (void)ev, (void)res;
}

/* What the requests of list write (GC_WROTE_* bits). */
static unsigned group_wrote(const gc_request_t *list) {
    unsigned wrote = 0;
    for (const gc_request_t *r = list; r; r = r->next) {
        if (r->is_delete) wrote |= GC_WROTE_DELETE;
        if (r->n) wrote |= GC_WROTE_EVENTS;
        if (r->track != GC_TRACK_NONE) wrote |= GC_WROTE_CHECKPOINTS;
    }
    return wrote;
}

/* Finishes the transaction in flight: on success calls the commit hook, remembers the versions
 * and starts the next transaction before calling every request's done; on failure fails every
 * request. */
static void finish_group(group_commit_t *g, bool ok) {
    gc_request_t *list = g->group;
    unsigned wrote = group_wrote(list);
    size_t block = g->group_events; /* positions reserved by the transaction */
    bool append = g->phase != PH_DELETE;
    g->group = NULL;
    g->group_events = 0;
    g->phase = PH_IDLE;
    if (!ok) {
        int code = g->transient ? EVS_EUNAVAILABLE : EVS_EINTERNAL;
        char why[400];
        snprintf(why, sizeof why, "the write did not commit (%s)%s", g->why,
                 g->transient ? "; retry it (an append with the same event ids)" : "");
        /* A failure the store's condition reports (a privilege or the schema) is logged there,
         * once; any other, here. */
        bool reported = g->outcome_hook && (g->failure.kind == PG_FAIL_PERMISSION ||
                                            g->failure.kind == PG_FAIL_SCHEMA);
        if (reported)
            log_debug("pg", "group of appends failed: %s", g->why);
        else
            log_warn("pg", "group of appends failed: %s", g->why);
        pg_failure_t failure = g->failure;
        vcache_invalidate(&g->cache); /* it may or may not have committed */
        clear_group_state(g);
        fail_list(list, code, why);
        /* A statement that failed inside BEGIN leaves the transaction open and aborted after the
         * sync point (the COMMIT behind it was skipped): end it before the next one, which would
         * otherwise fail with "current transaction is aborted". Harmless when none is open. */
        if (pg_conn_is_ready(g->w)) {
            send_sql(g, "ROLLBACK");
            pg_conn_sync(g->w, on_cleanup, g);
        }
        if (g->outcome_hook) g->outcome_hook(g->outcome_arg, &failure, wrote);
        start_next(g);
        return;
    }
    if (g->outcome_hook) g->outcome_hook(g->outcome_arg, NULL, wrote);
    if (g->hook && g->d.naccepted) call_commit_hook(g, list, block);
    if (append) remember_versions(g, g->first_position + (int64_t)block - 1);
    if (append && g->size_raising > g->size_known) g->size_known = g->size_raising;
    clear_group_state(g);
    /* The next transaction goes out before the replies are written, so that PostgreSQL works on
     * it while the daemon answers this one's clients. */
    start_next(g);
    while (list) {
        gc_request_t *next = list->next;
        list->done(list);
        list = next;
    }
}

/* ---------------------------------------------------------------- statements */

/* Queues one execution of a group commit statement (schema_writes) with binary parameters. */
static void send_statement(group_commit_t *g, enum schema_write which, int nparams,
                           const pg_wire_buf_t *const *params, bool binary_results) {
    const char *values[SCHEMA_MAX_PARAMS];
    int lengths[SCHEMA_MAX_PARAMS], formats[SCHEMA_MAX_PARAMS];
    /* The values are copied into libpq's output buffer by the call. */
    for (int k = 0; k < nparams; k++) {
        values[k] = params[k]->data;
        lengths[k] = (int)params[k]->len;
        formats[k] = 1;
    }
    pg_conn_send_prepared(g->w, schema_writes[which].name, nparams, values, lengths, formats,
                          binary_results);
}

static void send_sql(group_commit_t *g, const char *sql) {
    pg_conn_send(g->w, sql, 0, NULL, NULL, NULL, NULL, false);
}

/* Queues BEGIN and the append lock: how every transaction of the group commit starts. */
static void send_begin_and_lock(group_commit_t *g) {
    send_sql(g, "BEGIN");
    send_statement(g, SCHEMA_APPEND_LOCK, 0, NULL, false);
}

/* Ends the unit being built with cb as its callback; when it cannot be sent, the group fails. */
static void sync_or_fail(group_commit_t *g, pg_conn_unit_cb cb) {
    if (pg_conn_sync(g->w, cb, g) != 0) {
        note_failure(g, NULL);
        finish_group(g, false);
    }
}

/* ---------------------------------------------------------------- phase 2 */

/* Queues the INSERT of the accepted events and the NOTIFY that rings every daemon's live feed
 * with the last position written (no data). */
static void send_insert_and_notify(group_commit_t *g, int64_t last_position) {
    const pg_wire_buf_t *params[SCHEMA_INSERT_NPARAMS];
    for (int k = 0; k < SCHEMA_INSERT_NPARAMS; k++)
        params[k] = &g->insert[k];
    send_statement(g, SCHEMA_INSERT, SCHEMA_INSERT_NPARAMS, params, false);
    char notify[80];
    snprintf(notify, sizeof notify, SCHEMA_SQL_NOTIFY_FMT, (long long)last_position);
    send_sql(g, notify);
}

/* The largest event of the group, as evs_event_size counts it (codec_event_size less
 * CODEC_EVENT_OVERHEAD). */
static int64_t group_max_size(const gc_request_t *r) {
    size_t max = 0;
    for (; r; r = r->next)
        for (size_t i = 0; i < r->n; i++) {
            size_t b = codec_event_size(&r->events[i]) - CODEC_EVENT_OVERHEAD;
            if (b > max) max = b;
        }
    return (int64_t)max;
}

/* Fills the parameter of the statement that raises the largest event size stored when the group
 * holds an event larger than this writer knows to be stored (size_raising, else -1). Returns -1
 * when out of memory. */
static int prepare_raise_size(group_commit_t *g) {
    int64_t max = group_max_size(g->group);
    g->size_raising = -1;
    if (max <= g->size_known) return 0;
    pg_wire_reset(&g->size_param);
    pg_wire_put_i64(&g->size_param, max);
    if (g->size_param.failed) return -1;
    g->size_raising = max;
    return 0;
}

/* Queues that statement: under the append lock, in the transaction that stores the events, so
 * that no read ever sees an event larger than the size it reads in the same snapshot. */
static void send_raise_size(group_commit_t *g) {
    if (g->size_raising < 0) return;
    const pg_wire_buf_t *params[1] = {[SCHEMA_RAISE_SIZE_P_BYTES] = &g->size_param};
    send_statement(g, SCHEMA_RAISE_SIZE, 1, params, false);
}

/* Decides every request of the group (positions from first_position on), then queues the INSERT
 * of the accepted events with the NOTIFY (or a ROLLBACK when out of memory), and COMMIT. */
static void queue_decided(group_commit_t *g, int64_t last_position) {
    if (g->d.naccepted) {
        if (decide_put_insert_params(&g->d, g->group, g->insert, store_now_us()) == 0 &&
            prepare_raise_size(g) == 0) {
            send_raise_size(g);
            send_insert_and_notify(g, last_position);
        } else {
            /* Nothing was written: roll back and fail the group (retryable). */
            note_out_of_memory(g);
            send_sql(g, "ROLLBACK");
        }
    }
    /* The fast path wrote its checkpoints with SCHEMA_CKPT_ADVANCE, before the append guard. */
    if (g->ckpts.tracked && !g->fast && !g->failed) {
        if (ckpt_send_writes(&g->ckpts, g->w) != 0) {
            /* Roll back what was queued and fail the group (retryable). */
            note_out_of_memory(g);
            send_sql(g, "ROLLBACK");
        }
    }
    send_sql(g, "COMMIT");
}

/* Decides the group and queues its writes and COMMIT. */
static void queue_write(group_commit_t *g) {
    queue_decided(g, decide_group(&g->d, g->group, g->first_position));
}

static void on_write(void *arg, pg_conn_event_t ev, PGresult *res);

/* Phase 2 of the slow path, once phase 1's results are in. */
static void send_write(group_commit_t *g) {
    g->phase = PH_WRITE;
    g->nresults = 0;
    queue_write(g);
    sync_or_fail(g, on_write);
}

/* The unit callback of the ROLLBACK after the guard refused the group: the group is decided again
 * the slow way, from scratch (nothing of the refused attempt was written or answered). */
static void on_guard_rollback(void *arg, pg_conn_event_t ev, PGresult *res) {
    group_commit_t *g = arg;
    if (ev == PG_CONN_RESULT) {
        if (PQresultStatus(res) != PGRES_COMMAND_OK) note_failure(g, res);
        return;
    }
    if (ev == PG_CONN_LOST) note_failure(g, NULL);
    if (g->failed) {
        finish_group(g, false);
        return;
    }
    for (gc_request_t *r = g->group; r; r = r->next) {
        memset(&r->err, 0, sizeof r->err);
        r->written = false;
    }
    clear_group_state(g);
    send_check(g);
}

/* The guard raised sqlstate on the fast path: nothing was written. Learns from it (a moved
 * sequence invalidates the cache; an entity taken for new that exists stops guessing for a
 * while) and rolls back, then decides the group again (on_guard_rollback). */
static void retry_refused_group(group_commit_t *g) {
    g->nguard++;
    log_debug("pg", "the fast path was refused (%s); deciding the group again", g->guard);
    if (strcmp(g->guard, SCHEMA_GUARD_ENTITY_EXISTS) == 0)
        g->guess_backoff = GC_GUESS_BACKOFF;
    else if (strcmp(g->guard, SCHEMA_GUARD_TRACKING) == 0)
        g->tracking_backoff = GC_GUESS_BACKOFF;
    else if (strcmp(g->guard, SCHEMA_GUARD_SEQ_MOVED) == 0)
        vcache_invalidate(&g->cache);
    send_sql(g, "ROLLBACK");
    sync_or_fail(g, on_guard_rollback);
}

/* The unit callback of a write (phase 2 of the slow path, or the whole fast path): any failed
 * statement fails the group, except the guard's refusal, which sends it the slow way; at the sync
 * point the group is finished, or retried when the guard refused it. */
static void on_write(void *arg, pg_conn_event_t ev, PGresult *res) {
    group_commit_t *g = arg;
    if (ev == PG_CONN_RESULT) {
        ExecStatusType st = PQresultStatus(res);
        g->nresults++;
        if (g->fast && !g->failed && !g->guard[0] && st == PGRES_FATAL_ERROR) {
            const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
            if (state && strncmp(state, SCHEMA_GUARD_SQLSTATE_CLASS,
                                 strlen(SCHEMA_GUARD_SQLSTATE_CLASS)) == 0) {
                snprintf(g->guard, sizeof g->guard, "%s", state);
                return;
            }
        }
        if (g->guard[0] && st == PGRES_PIPELINE_ABORTED) return;
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
            note_failure(g, res);
        else if (strcmp(PQcmdStatus(res), "ROLLBACK") == 0 && !g->failed) {
            g->failed = true;
            snprintf(g->why, sizeof g->why, "the transaction was rolled back");
        }
        return;
    }
    if (ev == PG_CONN_LOST) note_failure(g, NULL);
    if (g->guard[0] && !g->failed)
        retry_refused_group(g);
    else
        finish_group(g, !g->failed);
}

/* ---------------------------------------------------------------- phase 1 */

/* Records what one SCHEMA_CHECK row says: an entity's latest version, or a stored event with one
 * of the group's ids. Returns -1 when out of memory. */
static int read_check_row(group_commit_t *g, PGresult *res, int row) {
    const char *entity = PQgetvalue(res, row, SCHEMA_CHECK_ENTITY);
    if (pg_wire_get_i32(res, row, SCHEMA_CHECK_KIND) == SCHEMA_CHECK_LATEST) {
        if (!PQgetisnull(res, row, SCHEMA_CHECK_VERSION))
            decide_set_latest(&g->d, entity,
                              (uint64_t)pg_wire_get_i64(res, row, SCHEMA_CHECK_VERSION));
        return 0;
    }
    const uint8_t *id = (const uint8_t *)PQgetvalue(res, row, SCHEMA_CHECK_EVENT_ID);
    return decide_add_stored(&g->d, id, entity,
                             (uint64_t)pg_wire_get_i64(res, row, SCHEMA_CHECK_VERSION),
                             (uint64_t)pg_wire_get_i64(res, row, SCHEMA_CHECK_POSITION));
}

static void read_check(group_commit_t *g, PGresult *res) {
    for (int row = 0; row < PQntuples(res); row++)
        if (read_check_row(g, res, row) != 0) {
            g->failed = true;
            snprintf(g->why, sizeof g->why, "out of memory");
            return;
        }
}

/* The unit callback of phase 1 (enum check_result): takes the block of positions and what is
 * stored; at the sync point sends phase 2, or a ROLLBACK when a statement failed. */
static void on_check(void *arg, pg_conn_event_t ev, PGresult *res) {
    group_commit_t *g = arg;
    if (ev == PG_CONN_RESULT) {
        ExecStatusType st = PQresultStatus(res);
        int index = g->nresults++;
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
            note_failure(g, res);
            return;
        }
        if (index == CHECK_POSITIONS && PQntuples(res) == 1) {
            g->first_position = pg_wire_get_i64(res, 0, 0) - (int64_t)g->group_events + 1;
            /* Versions remembered as of another sequence value may be stale (another daemon
             * wrote since): only the group's own entities are known now. */
            if (g->cache.valid && g->cache.seq != g->first_position - 1)
                vcache_invalidate(&g->cache);
            g->ckpts.head = (uint64_t)(g->first_position - 1);
        } else if (index == CHECK_ROWS) {
            read_check(g, res);
        } else if (index == CHECK_NRESULTS) {
            ckpt_read_rows(&g->ckpts, res);
        }
        return;
    }
    if (ev == PG_CONN_LOST) {
        note_failure(g, NULL);
        finish_group(g, false);
        return;
    }
    if (g->failed || g->nresults != CHECK_NRESULTS + (g->ckpts.tracked ? 1 : 0)) {
        /* The transaction is open and failed: roll it back before the next one. */
        send_sql(g, "ROLLBACK");
        g->phase = PH_WRITE;
        if (pg_conn_sync(g->w, on_write, g) != 0) finish_group(g, false);
        return;
    }
    send_write(g);
}

/* Lists the group's entities (g->d) and empties the phase 1 and guard parameters. Returns 0, or
 * -1 when out of memory. */
static int list_entities(group_commit_t *g, size_t *total) {
    pg_wire_reset(&g->entities_param);
    pg_wire_reset(&g->event_ids_param);
    pg_wire_reset(&g->count_param);
    pg_wire_reset(&g->last_seq_param);
    return decide_list_entities(&g->d, g->group, total);
}

/* The fast path: each entity of the group takes its next version from the cache, or is taken for
 * new when the cache does not know it. Returns the number taken for new. */
static size_t versions_from_cache(group_commit_t *g) {
    size_t nnew = 0;
    for (size_t k = 0; k < g->d.nentities; k++) {
        decide_entity_t *e = &g->d.nodes[k];
        e->taken_for_new = !vcache_lookup(&g->cache, e->id, &e->next);
        nnew += e->taken_for_new;
    }
    return nnew;
}

/* Fills the guard's parameters (schema.h, SCHEMA_GUARD). Returns -1 when out of memory. */
static int fill_guard_params(group_commit_t *g, size_t total) {
    decide_put_entities(&g->d, &g->entities_param, true);
    decide_put_event_ids(g->group, &g->event_ids_param);
    pg_wire_put_i64(&g->last_seq_param, g->cache.seq);
    pg_wire_put_i64(&g->count_param, (int64_t)total);
    return g->entities_param.failed || g->event_ids_param.failed || g->last_seq_param.failed ||
                   g->count_param.failed
               ? -1
               : 0;
}

/* Sends the group the fast way when the cache is valid: decided now from the cache (an entity the
 * cache does not know is taken for new) and sent in one round trip: BEGIN, the lock, with
 * trackings SCHEMA_CKPT_ADVANCE (which proves under the lock that no tracked consumer's
 * checkpoint is at or past the group's trackings and that the leases still have the appends'
 * fences, and writes the checkpoints: checkpoint.h, ckpt_list_assumed), the guard (which proves
 * under the lock that nothing changed since our last COMMIT and that the entities taken for new
 * and the client-chosen event ids are not stored, and takes the block of positions), the INSERT,
 * NOTIFY, COMMIT. The trackings' statement goes first so that a refused group takes no positions.
 * Returns false, having sent nothing, when the group must go the slow way. */
static bool send_fast(group_commit_t *g) {
    if (!g->cache.valid) return false;
    bool tracked = ckpt_group_tracks(g->group);
    if (tracked && g->tracking_backoff) {
        g->tracking_backoff--;
        return false;
    }
    if (tracked && ckpt_list_assumed(&g->ckpts, g->group, g->cache.seq) != 0) {
        clear_group_state(g);
        return false; /* the slow path decides it (or reports running out of memory) */
    }
    g->d.ckpts = tracked ? &g->ckpts : NULL;
    size_t total;
    if (list_entities(g, &total) != 0) {
        clear_group_state(g);
        return false; /* the slow path reports it */
    }
    size_t nnew = versions_from_cache(g);
    if (nnew && g->guess_backoff) {
        g->guess_backoff--;
        clear_group_state(g);
        return false;
    }
    if (fill_guard_params(g, total) != 0) {
        clear_group_state(g);
        return false;
    }
    g->group_events = total;
    g->first_position = g->cache.seq + 1;
    g->fast = true;
    g->phase = PH_WRITE;
    g->nresults = 0;
    g->nfast++;
    const pg_wire_buf_t *params[SCHEMA_GUARD_NPARAMS] = {
        [SCHEMA_GUARD_P_LAST_SEQ] = &g->last_seq_param,
        [SCHEMA_GUARD_P_COUNT] = &g->count_param,
        [SCHEMA_GUARD_P_NEW_ENTITIES] = &g->entities_param,
        [SCHEMA_GUARD_P_EVENT_IDS] = &g->event_ids_param,
    };
    /* Decided before anything is sent: SCHEMA_CKPT_ADVANCE, which goes right after the lock so that
     * a refused group takes no positions, carries the checkpoints the decision moves. */
    int64_t last_position = decide_group(&g->d, g->group, g->first_position);
    if (tracked && ckpt_put_advance(&g->ckpts) != 0) {
        note_out_of_memory(g);
        finish_group(g, false);
        return true;
    }
    send_begin_and_lock(g);
    if (tracked) ckpt_send_advance(&g->ckpts, g->w);
    send_statement(g, SCHEMA_GUARD, SCHEMA_GUARD_NPARAMS, params, true);
    queue_decided(g, last_position);
    sync_or_fail(g, on_write);
    return true;
}

/* Sends phase 1 of the slow path (enum check_result): BEGIN, the lock, the block of positions,
 * and the latest versions and stored ids the group needs to be decided. */
static void send_check(group_commit_t *g) {
    size_t total;
    if (list_entities(g, &total) != 0) {
        note_out_of_memory(g);
        finish_group(g, false);
        return;
    }
    g->nslow++;
    decide_put_entities(&g->d, &g->entities_param, false);
    decide_put_event_ids(g->group, &g->event_ids_param);
    pg_wire_put_i64(&g->count_param, (int64_t)total);
    bool tracked = ckpt_group_tracks(g->group);
    g->d.ckpts = tracked ? &g->ckpts : NULL;
    if (g->entities_param.failed || g->event_ids_param.failed || g->count_param.failed ||
        (tracked && ckpt_list(&g->ckpts, g->group) != 0)) {
        note_out_of_memory(g);
        finish_group(g, false);
        return;
    }
    g->group_events = total;
    g->phase = PH_CHECK;
    g->nresults = 0;
    const pg_wire_buf_t *count[1] = {[SCHEMA_POSITIONS_P_COUNT] = &g->count_param};
    const pg_wire_buf_t *check[2] = {[SCHEMA_CHECK_P_ENTITIES] = &g->entities_param,
                                     [SCHEMA_CHECK_P_EVENT_IDS] = &g->event_ids_param};
    send_begin_and_lock(g);
    if (total > 0)
        send_statement(g, SCHEMA_POSITIONS, 1, count, true);
    else /* checkpoints alone take no position */
        pg_conn_send(g->w, SCHEMA_SQL_HEAD, 0, NULL, NULL, NULL, NULL, true);
    send_statement(g, SCHEMA_CHECK, 2, check, true);
    if (tracked) {
        const pg_wire_buf_t *consumers[1] = {[SCHEMA_CKPT_READ_P_CONSUMERS] =
                                                 &g->ckpts.consumers_param};
        send_statement(g, SCHEMA_CKPT_READ, 1, consumers, true);
    }
    sync_or_fail(g, on_check);
}

/* ---------------------------------------------------------------- delete */

/* The unit callback of a delete-entity (enum delete_result): counts the events removed, notes the
 * position taken, and keeps the version cache valid when nothing else changed. */
static void on_delete(void *arg, pg_conn_event_t ev, PGresult *res) {
    group_commit_t *g = arg;
    if (ev == PG_CONN_RESULT) {
        ExecStatusType st = PQresultStatus(res);
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
            note_failure(g, res);
        else if (g->nresults == DELETE_EVENTS && g->group)
            g->group->deleted = strtoull(PQcmdTuples(res), NULL, 10);
        else if (g->nresults == DELETE_TAKE_POSITION && PQntuples(res) == 1)
            g->delete_position = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        else if (g->nresults == DELETE_COMMIT && strcmp(PQcmdStatus(res), "COMMIT") != 0 &&
                 !g->failed) {
            g->failed = true;
            snprintf(g->why, sizeof g->why, "the transaction was rolled back");
        }
        g->nresults++;
        return;
    }
    if (ev == PG_CONN_LOST) note_failure(g, NULL);
    if (g->failed)
        vcache_invalidate(&g->cache);
    else
        vcache_entity_deleted(&g->cache, g->group->entity_id, g->delete_position);
    finish_group(g, !g->failed);
}

/* Sends a delete-entity as its own transaction under the append lock (enum delete_result). */
static void send_delete(group_commit_t *g) {
    gc_request_t *r = g->group;
    g->phase = PH_DELETE;
    g->nresults = 0;
    const char *vals[1] = {r->entity_id};
    send_begin_and_lock(g);
    pg_conn_send(g->w, SCHEMA_SQL_DELETE_EVENTS, 1, NULL, vals, NULL, NULL, false);
    pg_conn_send(g->w, SCHEMA_SQL_DELETE_SNAPSHOTS, 1, NULL, vals, NULL, NULL, false);
    /* A delete takes a position too, under the lock: every daemon's version cache sees that
     * evs_events changed (migrations/003_append_guard.sql). The position stays a gap. */
    g->delete_position = 0;
    send_sql(g, SCHEMA_SQL_TAKE_POSITION);
    send_sql(g, "COMMIT");
    sync_or_fail(g, on_delete);
}

/* ---------------------------------------------------------------- driving */

/* Starts the next transaction when none is in flight: a delete alone, or as many queued appends
 * as fit the group limits (at least one). */
static void start_next(group_commit_t *g) {
    if (g->phase != PH_IDLE || g->held || !g->prepared || !pg_conn_is_ready(g->w)) return;
    while (g->queue.head && g->queue.head->cancelled) {
        gc_request_t *r = wq_pop(&g->queue);
        codec_error_set(&r->err, EVS_EUNAVAILABLE, "cancelled before it was sent");
        r->done(r);
    }
    if (!g->queue.head) return;
    if (g->queue.head->is_delete) {
        g->group = wq_pop(&g->queue);
        send_delete(g);
        return;
    }
    gc_request_t *tail = NULL;
    size_t events = 0, bytes = 0;
    while (g->queue.head && !g->queue.head->is_delete) {
        gc_request_t *r = g->queue.head;
        if (r->cancelled) {
            wq_pop(&g->queue);
            codec_error_set(&r->err, EVS_EUNAVAILABLE, "cancelled before it was sent");
            r->done(r);
            continue;
        }
        if (tail && (events + r->n > GC_MAX_GROUP_EVENTS || bytes + r->bytes > GC_MAX_GROUP_BYTES))
            break;
        wq_pop(&g->queue);
        events += r->n;
        bytes += r->bytes;
        if (tail)
            tail->next = r;
        else
            g->group = r;
        tail = r;
    }
    if (!tail) {
        start_next(g); /* everything before the next delete was cancelled */
        return;
    }
    if (!send_fast(g)) send_check(g);
}

group_commit_t *gc_new(pg_conn_t *writer) {
    group_commit_t *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->w = writer;
    g->size_known = SCHEMA_EVENT_SIZE_FLOOR;
    g->size_raising = -1;
    return g;
}

void gc_set_commit_hook(group_commit_t *g, gc_commit_hook hook, void *arg) {
    g->hook = hook;
    g->hook_arg = arg;
}

void gc_free(group_commit_t *g) {
    if (!g) return;
    gc_request_t *list = g->group;
    g->group = NULL;
    clear_group_state(g);
    fail_list(list, EVS_EUNAVAILABLE, "the store is closing");
    fail_list(wq_take_all(&g->queue), EVS_EUNAVAILABLE, "the store is closing");
    for (int k = 0; k < SCHEMA_INSERT_NPARAMS; k++)
        pg_wire_free(&g->insert[k]);
    pg_wire_free(&g->entities_param);
    pg_wire_free(&g->event_ids_param);
    pg_wire_free(&g->count_param);
    pg_wire_free(&g->last_seq_param);
    pg_wire_free(&g->size_param);
    ckpt_free(&g->ckpts);
    log_debug("pg",
              "group commit: %llu groups decided from the cache, %llu read first, %llu "
              "refused by the guard",
              (unsigned long long)g->nfast, (unsigned long long)g->nslow,
              (unsigned long long)g->nguard);
    vcache_invalidate(&g->cache);
    free(g);
}

void gc_submit(group_commit_t *g, gc_request_t *r) {
    r->gc = g;
    wq_push(&g->queue, r);
    start_next(g);
}

bool gc_queue_full(const group_commit_t *g, size_t bytes, size_t max_requests, size_t max_bytes) {
    return wq_full(&g->queue, bytes, max_requests, max_bytes);
}

void gc_cancel(gc_request_t *r) {
    r->cancelled = true;
    if (!r->queued) return;
    wq_remove(&r->gc->queue, r);
    codec_error_set(&r->err, EVS_EUNAVAILABLE, "cancelled before it was sent");
    r->done(r);
}

/* The unit callback of the statements' preparation: a failure drops the connection. */
static void on_prepared(void *arg, pg_conn_event_t ev, PGresult *res) {
    group_commit_t *g = arg;
    if (ev == PG_CONN_RESULT && PQresultStatus(res) != PGRES_COMMAND_OK && !g->prepare_failed) {
        g->prepare_failed = true;
        pg_failure_from_result(&g->prepare_failure, res);
        if (!g->prepared_hook) {
            log_error("pg", "preparing the append statements failed: %s", g->prepare_failure.text);
            pg_conn_fail(g->w, "cannot prepare statements");
        }
        return;
    }
    if (ev != PG_CONN_END) return;
    if (g->prepared_hook)
        g->prepared_hook(g->prepared_arg, g->prepare_failed ? &g->prepare_failure : NULL);
    if (g->prepare_failed) return;
    /* The statements exist: the writes that waited for them go. */
    g->prepared = true;
    start_next(g);
}

void gc_set_outcome_hook(group_commit_t *g,
                         void (*hook)(void *arg, const pg_failure_t *failure, unsigned wrote),
                         void *arg) {
    g->outcome_hook = hook;
    g->outcome_arg = arg;
}

void gc_set_prepared_hook(group_commit_t *g, void (*hook)(void *arg, const pg_failure_t *failure),
                          void *arg) {
    g->prepared_hook = hook;
    g->prepared_arg = arg;
}

/* Prepares the statements of every transaction once per connection (they are planned once,
 * generically: they only ever use the indexes named in the migrations). Queued before any work,
 * so nothing waits for it. */
static void prepare(group_commit_t *g) {
    g->prepare_failed = g->prepared = false;
    send_sql(g, SCHEMA_SQL_GENERIC_PLANS);
    send_sql(g, SCHEMA_SQL_EVENT_SIZE_KEPT);
    for (int k = 0; k < SCHEMA_NWRITES; k++)
        pg_conn_prepare(g->w, schema_writes[k].name, schema_writes[k].sql, schema_writes[k].nparams,
                        schema_writes[k].types);
    pg_conn_sync(g->w, on_prepared, g);
}

void gc_set_held(group_commit_t *g, bool held) {
    g->held = held;
    if (!held) start_next(g);
}

void gc_on_ready(group_commit_t *g) {
    vcache_invalidate(&g->cache); /* a new session: nothing is known */
    g->size_known = SCHEMA_EVENT_SIZE_FLOOR;
    prepare(g);
    start_next(g);
}

void gc_on_lost(group_commit_t *g, const char *why) {
    vcache_invalidate(&g->cache);
    g->prepared = false;
    fail_list(wq_take_all(&g->queue), EVS_EUNAVAILABLE,
              why ? why
                  : "the connection to PostgreSQL was lost before this request was sent; retry it");
}
