/* pg_conn.h: one asynchronous libpq connection on the daemon's libuv loop.
 *
 * A pg_conn connects without blocking (PQconnectStart/PQconnectPoll), watches its socket with one
 * uv_poll_t, and reconnects by itself with a capped exponential backoff whenever the connection
 * fails. Once connected it can run an optional setup step in ordinary (non-pipeline) mode (the
 * store runs its migrations there), then enters pipeline mode and is "ready".
 *
 * Work is sent as units: the caller sends one or more statements with pg_conn_send (each gets
 * exactly one result), then ends the unit with pg_conn_sync, which adds a pipeline sync point and
 * registers the unit's callback. Results come back in order; the callback sees each statement's
 * result (PG_RESULT; an error aborts the statements after it up to the sync, which then come back
 * as PGRES_PIPELINE_ABORTED), then PG_END once the sync point arrived; or PG_LOST, once, if the
 * connection failed first. Either PG_END or PG_LOST is the last call for a unit.
 *
 * Modelled on PostgreSQL's src/test/modules/libpq_pipeline/libpq_pipeline.c and on the notes in
 * ../shared/NOTES.md section 4. */
#ifndef EVS_PG_CONN_H
#define EVS_PG_CONN_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "../proto/event.h"

typedef struct pg_conn pg_conn_t;

typedef enum pg_event { PG_RESULT, PG_END, PG_LOST } pg_event_t;

/* One unit's callback. res is set only with PG_RESULT and is cleared by pg_conn after the call. */
typedef void (*pg_unit_cb)(void *arg, pg_event_t ev, PGresult *res);

typedef struct pg_conn_cbs {
    /* Optional: the connection is up and in ordinary mode; send work with pg_conn_send_simple and
     * call pg_conn_setup_done exactly once (possibly later). */
    void (*setup)(void *arg, pg_conn_t *c);
    /* The connection is in pipeline mode and takes units. */
    void (*on_ready)(void *arg, pg_conn_t *c);
    /* A connection attempt or a ready connection failed; every unit already got PG_LOST. A
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

/* Closes the connection: units still pending get PG_LOST now, no other callback follows, and
 * the memory is freed once its libuv handles are closed (run the loop). */
void pg_conn_close(pg_conn_t *c);

bool pg_conn_is_ready(const pg_conn_t *c);
/* True while an attempt is in progress (connecting or in setup): work may wait for it. */
bool pg_conn_is_connecting(const pg_conn_t *c);
const char *pg_conn_name(const pg_conn_t *c);
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
 * then gets its calls later (PG_LOST, asynchronously, if sending failed). Returns -1 without
 * registering anything when the connection is not ready. */
int pg_conn_sync(pg_conn_t *c, pg_unit_cb cb, void *arg);

/* During setup only: sends sql (several statements allowed) with PQsendQuery; cb gets each
 * statement's result, then PG_END when all are in, or PG_LOST. 0, or -1 when sending failed
 * (nothing registered; the connection is then failing). */
int pg_conn_send_simple(pg_conn_t *c, const char *sql, pg_unit_cb cb, void *arg);

/* Ends the setup step: ok enters pipeline mode and makes the connection ready; !ok drops the
 * connection and retries later. */
void pg_conn_setup_done(pg_conn_t *c, bool ok);

/* Drops the connection (units get PG_LOST, on_lost is called) and reconnects after the backoff.
 * Safe to call from a unit callback: the teardown then runs from the loop. */
void pg_conn_fail(pg_conn_t *c, const char *why);

/* ---------------------------------------------------------------- binary parameters */

/* Type OIDs of the binary parameters and results the store uses. */
#define PG_INT4OID 23
#define PG_INT8OID 20
#define PG_TEXTOID 25
#define PG_BYTEAOID 17
#define PG_UUIDOID 2950
#define PG_INT8ARRAYOID 1016
#define PG_TEXTARRAYOID 1009
#define PG_BYTEAARRAYOID 1001
#define PG_UUIDARRAYOID 2951

/* A growable buffer holding one value in PostgreSQL's binary format. */
typedef struct pg_buf {
    char *data;
    size_t len, cap;
    bool failed; /* an allocation failed */
} pg_buf_t;

void pg_buf_reset(pg_buf_t *b);
void pg_buf_free(pg_buf_t *b);
void pg_buf_put(pg_buf_t *b, const void *data, size_t len);
void pg_buf_put_i32(pg_buf_t *b, int32_t v);
void pg_buf_put_i64(pg_buf_t *b, int64_t v);
/* Starts a one-dimensional array of n elements of type elem_oid (empty when n == 0). */
void pg_buf_array_begin(pg_buf_t *b, uint32_t elem_oid, size_t n, bool has_nulls);
/* One array element: len bytes, or NULL when data is NULL. */
void pg_buf_array_elem(pg_buf_t *b, const void *data, size_t len);

/* Decoding binary results. */
int64_t pg_get_i64(const PGresult *res, int row, int col);

/* Fills *ev from one row of a binary-format events query whose columns are position, event_id,
 * entity_id, version, topic, stored_at, payload, metadata (the order every event read selects).
 * ev must be zeroed; its strings and bytes point into res. */
void pg_get_event(const PGresult *res, int row, evs_event_t *ev);
int32_t pg_get_i32(const PGresult *res, int row, int col);

/* True when res failed with an error that says the database cannot serve now (connection lost,
 * shutting down, out of resources, serialization failure): the client should retry. */
bool pg_result_is_transient(const PGresult *res);

#endif
