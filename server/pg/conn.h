/* pg/conn.h: one asynchronous libpq connection on the daemon's libuv loop.
 *
 * A pg_conn connects without blocking (PQconnectStart/PQconnectPoll), watches its socket with one
 * uv_poll_t, and reconnects by itself with a capped exponential backoff whenever the connection
 * fails. Once connected it can run an optional setup step in ordinary (non-pipeline) mode (the
 * store runs its migrations there), then enters pipeline mode and is "ready".
 *
 * Work is sent as units: the caller sends one or more statements with pg_conn_send (each gets
 * exactly one result), then ends the unit with pg_conn_sync, which adds a pipeline sync point and
 * registers the unit's callback. Results come back in order; the callback sees each statement's
 * result (PG_CONN_RESULT; an error aborts the statements after it up to the sync, which then come
 * back as PGRES_PIPELINE_ABORTED), then PG_CONN_END once the sync point arrived; or PG_CONN_LOST,
 * once, if the connection failed first. Either PG_CONN_END or PG_CONN_LOST is the last call for a
 * unit.
 *
 * Modelled on PostgreSQL's src/test/modules/libpq_pipeline/libpq_pipeline.c; docs/architecture.md
 * ("Connections") explains the design. */
#ifndef EVS_PG_CONN_H
#define EVS_PG_CONN_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct pg_conn pg_conn_t;

/* What kind of failure kept a connection from serving, as the store's condition reports it
 * (store.h): told apart from libpq's connect error (PQconnectionNeedsPassword and the server's
 * message, which carries no SQLSTATE) or from a result's SQLSTATE. */
typedef enum pg_failure_kind {
    PG_FAIL_NONE = 0,
    PG_FAIL_UNREACHABLE, /* no connection: refused, timed out, lost (08xxx, 57P0x) */
    PG_FAIL_AUTH,        /* the login was refused: password missing or wrong, pg_hba (28xxx) */
    PG_FAIL_PERMISSION,  /* the role may not do what the daemon needs (42501) */
    PG_FAIL_SCHEMA,      /* the schema is not what this daemon needs (42883, 42P01, 3F000...) */
    PG_FAIL_ERROR,       /* any other error */
} pg_failure_kind_t;

typedef struct pg_failure {
    pg_failure_kind_t kind;
    char text[400]; /* the first line of PostgreSQL's or libpq's message, or ours */
} pg_failure_t;

/* Fills f from a failed result: its kind from the SQLSTATE, its text from the message. */
void pg_failure_from_result(pg_failure_t *f, const PGresult *res);

/* Fills f with kind and a printf-formatted text. */
void pg_failure_set(pg_failure_t *f, pg_failure_kind_t kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The kind's name in the store's condition: "unreachable", "authentication", "permission",
 * "schema" or "error" ("ok" for PG_FAIL_NONE). */
const char *pg_failure_kind_name(pg_failure_kind_t kind);

typedef enum pg_conn_event { PG_CONN_RESULT, PG_CONN_END, PG_CONN_LOST } pg_conn_event_t;

/* One unit's callback. res is set only with PG_CONN_RESULT and is cleared by pg_conn after the
 * call. */
typedef void (*pg_conn_unit_cb)(void *arg, pg_conn_event_t ev, PGresult *res);

typedef struct pg_conn_cbs {
    /* Optional: the connection is up and in ordinary mode; send work with pg_conn_send_simple and
     * call pg_conn_setup_done exactly once (possibly later). */
    void (*setup)(void *arg, pg_conn_t *c);
    /* The connection is in pipeline mode and takes units. */
    void (*on_ready)(void *arg, pg_conn_t *c);
    /* A connection attempt or a ready connection failed; every unit already got PG_CONN_LOST. A
     * reconnect is scheduled. */
    void (*on_lost)(void *arg, pg_conn_t *c);
    /* Optional: a notification arrived (after LISTEN); n is freed by pg_conn after the call. */
    void (*on_notify)(void *arg, pg_conn_t *c, const PGnotify *n);
    /* Optional: the application_name the server shows for this connection (pg_stat_activity);
     * "evstored" when NULL. */
    const char *application_name;
} pg_conn_cbs_t;

/* Creates a connection to conninfo (a libpq URI or key=value string) named name in logs, and
 * starts connecting on loop. cbs is copied. Returns NULL when out of memory. */
pg_conn_t *pg_conn_new(uv_loop_t *loop, const char *conninfo, const char *name,
                       const pg_conn_cbs_t *cbs, void *arg);

/* Closes the connection: units still pending get PG_CONN_LOST now, no other callback follows, and
 * the memory is freed once its libuv handles are closed (run the loop). */
void pg_conn_close(pg_conn_t *c);

bool pg_conn_is_ready(const pg_conn_t *c);
/* True while an attempt is in progress (connecting or in setup): work may wait for it. */
bool pg_conn_is_connecting(const pg_conn_t *c);
const char *pg_conn_name(const pg_conn_t *c);
/* The arg given to pg_conn_new. */
void *pg_conn_arg(const pg_conn_t *c);
/* Number of units sent and not yet finished. */
size_t pg_conn_pending(const pg_conn_t *c);

/* Sends one statement of the unit being built (PQsendQueryParams; results in binary when
 * binary_results). A failure is remembered and reported by pg_conn_sync. */
void pg_conn_send(pg_conn_t *c, const char *sql, int nparams, const Oid *types,
                  const char *const *values, const int *lengths, const int *formats,
                  bool binary_results);

/* Prepares a named statement as part of the unit being built (PQsendPrepare; one result). */
void pg_conn_prepare(pg_conn_t *c, const char *name, const char *sql, int nparams,
                     const Oid *types);

/* Sends one execution of a prepared statement (PQsendQueryPrepared), like pg_conn_send. */
void pg_conn_send_prepared(pg_conn_t *c, const char *name, int nparams, const char *const *values,
                           const int *lengths, const int *formats, bool binary_results);

/* Ends the unit being built: adds a sync point, registers cb and flushes. Returns 0; the unit
 * then gets its calls later (PG_CONN_LOST, asynchronously, if sending failed). Returns -1 without
 * registering anything when the connection is not ready. */
int pg_conn_sync(pg_conn_t *c, pg_conn_unit_cb cb, void *arg);

/* During setup only: sends sql (several statements allowed) with PQsendQuery; cb gets each
 * statement's result, then PG_CONN_END when all are in, or PG_CONN_LOST. 0, or -1 when sending
 * failed (nothing registered; the connection is then failing). */
int pg_conn_send_simple(pg_conn_t *c, const char *sql, pg_conn_unit_cb cb, void *arg);

/* Ends the setup step: ok enters pipeline mode and makes the connection ready; !ok drops the
 * connection and retries later. */
void pg_conn_setup_done(pg_conn_t *c, bool ok);

/* Drops the connection (units get PG_CONN_LOST, on_lost is called) and reconnects after the
 * backoff. Safe to call from a unit callback: the teardown then runs from the loop. */
void pg_conn_fail(pg_conn_t *c, const char *why);

/* Fails the connection because what its owner runs on a fresh connection (the setup step, or
 * preparing statements once ready) failed with f: counted as a failed attempt (the backoff keeps
 * growing and nothing is logged above debug: the owner reports f, once per change) rather than
 * as a lost connection. */
void pg_conn_reject(pg_conn_t *c, const pg_failure_t *f);

/* Why the connection last failed (kind PG_FAIL_NONE once it is ready and nothing failed
 * since). */
const pg_failure_t *pg_conn_failure(const pg_conn_t *c);

/* True when res failed with an error that says the database cannot serve now (connection lost,
 * shutting down, out of resources, serialization failure): the client should retry. */
bool pg_conn_result_is_transient(const PGresult *res);

#endif
