/* pg/conn.c: one asynchronous libpq connection on the loop (see conn.h).
 *
 * States: WAIT (backoff timer before the next attempt) -> CONNECTING (PQconnectPoll steps) ->
 * SETUP (optional, ordinary mode) -> READY (pipeline mode) -> FAILING (teardown scheduled) ->
 * WAIT... and CLOSED at the end. The socket can change during connect (several addresses, SSL
 * fallback), so each connect step closes the poll handle and opens a new one on PQsocket. */
#include "conn.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../log.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000
#define CONNECT_TIMEOUT_MS 10000

enum state { ST_WAIT, ST_CONNECTING, ST_SETUP, ST_READY, ST_FAILING, ST_CLOSED };

typedef struct unit {
    struct unit *next;
    pg_conn_unit_cb cb;
    void *arg;
    bool simple; /* ends at the NULL result (ordinary mode), not at a sync point */
} unit_t;

struct pg_conn {
    uv_loop_t *loop;
    char *conninfo;
    char *name;
    pg_conn_cbs_t cbs;
    void *arg;
    PGconn *pq;
    enum state state;
    bool send_failed;
    bool rejected;               /* the owner rejected the last ready connection (pg_conn_reject) */
    pg_failure_t failure;        /* why it last failed; kind NONE once ready */
    uint64_t attempt_backoff_ms; /* the backoff before the attempt that became ready */
    uv_poll_t *poll;             /* NULL when not watching */
    int poll_events;
    uv_timer_t timer; /* backoff, connect deadline, deferred teardown */
    uint64_t backoff_ms;
    unit_t *head, *tail;
    size_t npending;
    int open_handles; /* freed when this drops to 0 after close */
};

static void start_connect(pg_conn_t *c);
static void teardown(pg_conn_t *c);

/* ---------------------------------------------------------------- handles */

static void maybe_free(pg_conn_t *c) {
    if (c->state != ST_CLOSED || c->open_handles > 0) return;
    free(c->conninfo);
    free(c->name);
    free(c);
}

static void on_poll_closed(uv_handle_t *h) {
    pg_conn_t *c = h->data;
    free(h);
    c->open_handles--;
    maybe_free(c);
}

static void on_timer_closed(uv_handle_t *h) {
    pg_conn_t *c = h->data;
    c->open_handles--;
    maybe_free(c);
}

static void stop_poll(pg_conn_t *c) {
    if (!c->poll) return;
    uv_close((uv_handle_t *)c->poll, on_poll_closed);
    c->poll = NULL;
    c->poll_events = 0;
}

static void on_poll(uv_poll_t *h, int status, int events);

/* Watches the connection's current socket for events, opening a new poll handle when asked
 * (fresh) or when there is none. */
static int watch(pg_conn_t *c, int events, bool fresh) {
    if (fresh) stop_poll(c);
    if (!c->poll) {
        int fd = PQsocket(c->pq);
        if (fd < 0) return -1;
        uv_poll_t *p = malloc(sizeof *p);
        if (!p) return -1;
        if (uv_poll_init(c->loop, p, fd) != 0) {
            free(p);
            return -1;
        }
        p->data = c;
        c->poll = p;
        c->open_handles++;
        c->poll_events = 0;
    }
    if (events != c->poll_events) {
        if (uv_poll_start(c->poll, events, on_poll) != 0) return -1;
        c->poll_events = events;
    }
    return 0;
}

/* ---------------------------------------------------------------- units */

static void push_unit(pg_conn_t *c, unit_t *u) {
    u->next = NULL;
    if (c->tail)
        c->tail->next = u;
    else
        c->head = u;
    c->tail = u;
    c->npending++;
}

static unit_t *pop_unit(pg_conn_t *c) {
    unit_t *u = c->head;
    if (!u) return NULL;
    c->head = u->next;
    if (!c->head) c->tail = NULL;
    c->npending--;
    return u;
}

static void lose_units(pg_conn_t *c) {
    unit_t *u;
    while ((u = pop_unit(c))) {
        u->cb(u->arg, PG_CONN_LOST, NULL);
        free(u);
    }
}

/* ---------------------------------------------------------------- failure and backoff */

static void on_timer(uv_timer_t *t) {
    pg_conn_t *c = t->data;
    switch (c->state) {
    case ST_WAIT:
        start_connect(c);
        break;
    case ST_FAILING:
        teardown(c);
        break;
    case ST_CONNECTING:
    case ST_SETUP:
        pg_conn_fail(c, "connect timed out");
        break;
    default:
        break;
    }
}

/* Drops the PGconn, fails every unit, tells the owner, and schedules the next attempt. */
static void teardown(pg_conn_t *c) {
    stop_poll(c);
    if (c->pq) {
        PQfinish(c->pq);
        c->pq = NULL;
    }
    c->state = ST_WAIT;
    c->send_failed = false;
    lose_units(c);
    uv_timer_start(&c->timer, on_timer, c->backoff_ms, 0);
    c->backoff_ms = c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff_ms * 2;
    if (c->cbs.on_lost) c->cbs.on_lost(c->arg, c);
}

/* Schedules the teardown of a connection that failed (from the loop, never inside a libpq
 * callback). */
static void schedule_teardown(pg_conn_t *c) {
    c->state = ST_FAILING;
    if (c->poll) uv_poll_stop(c->poll), c->poll_events = 0;
    uv_timer_start(&c->timer, on_timer, 0, 0);
}

/* libpq's connect errors start with where it tried ("connection to server at "HOST", port N
 * failed: ") and the server's with its severity ("FATAL:  "): the reason follows them. */
static const char *skip_prefixes(const char *why) {
    const char *failed = strstr(why, " failed: ");
    if (strncmp(why, "connection to server ", 21) == 0 && failed &&
        !memchr(why, '\n', (size_t)(failed - why)))
        why = failed + 9;
    if (strncmp(why, "FATAL:  ", 8) == 0) why += 8;
    if (strncmp(why, "ERROR:  ", 8) == 0) why += 8;
    return why;
}

/* Classifies a failure to connect from libpq's message (a connect error has no SQLSTATE). */
static void classify_connect_error(pg_conn_t *c, const char *why, int len) {
    pg_failure_t *f = &c->failure;
    if (c->pq && PQconnectionNeedsPassword(c->pq))
        pg_failure_set(f, PG_FAIL_AUTH,
                       "no password supplied: the server asks for one, and neither the store URL "
                       "nor PGPASSWORD nor a password file gives one");
    else if (strstr(why, "authentication failed") || strstr(why, "no pg_hba.conf entry") ||
             (strstr(why, "role \"") && strstr(why, "does not exist")) || strstr(why, "password"))
        pg_failure_set(f, PG_FAIL_AUTH, "%.*s", len, why);
    else if (strstr(why, "permission denied"))
        pg_failure_set(f, PG_FAIL_PERMISSION, "%.*s", len, why);
    else if (strstr(why, "database \"") && strstr(why, "does not exist"))
        pg_failure_set(f, PG_FAIL_ERROR, "%.*s", len, why);
    else
        pg_failure_set(f, PG_FAIL_UNREACHABLE, "%.*s", len, why);
}

void pg_conn_fail(pg_conn_t *c, const char *why) {
    if (c->state == ST_FAILING || c->state == ST_CLOSED || c->state == ST_WAIT) return;
    /* libpq's messages run over several lines; the first one says it. A connect error's first
     * line is often only "connection to server at ... failed:", with the reason after it. */
    why = skip_prefixes(why);
    int len = (int)strcspn(why, "\n");
    if (c->state == ST_READY || c->state == ST_SETUP) {
        /* The store's condition reports the outage once; this names the connection. */
        log_info("pg", "%s: connection lost: %.*s", c->name, len, why);
        pg_failure_set(&c->failure, PG_FAIL_UNREACHABLE, "connection lost: %.*s", len, why);
        c->rejected = false;
    } else {
        log_debug("pg", "%s: connect failed: %.*s", c->name, len, why);
        classify_connect_error(c, why, len);
    }
    schedule_teardown(c);
}

void pg_conn_reject(pg_conn_t *c, const pg_failure_t *f) {
    if (c->state == ST_FAILING || c->state == ST_CLOSED || c->state == ST_WAIT) return;
    log_debug("pg", "%s: rejected: %s", c->name, f->text);
    c->failure = *f;
    c->rejected = true;
    /* As a failed attempt: the backoff goes on growing from where it was. */
    if (c->state == ST_READY) c->backoff_ms = c->attempt_backoff_ms;
    schedule_teardown(c);
}

const pg_failure_t *pg_conn_failure(const pg_conn_t *c) {
    return &c->failure;
}

static const char *pq_error(pg_conn_t *c) {
    const char *m = c->pq ? PQerrorMessage(c->pq) : "";
    return m && *m ? m : "unknown error";
}

/* ---------------------------------------------------------------- connecting */

static void notice_processor(void *arg, const char *message) {
    pg_conn_t *c = arg;
    size_t n = strlen(message);
    while (n && message[n - 1] == '\n')
        n--;
    log_debug("pg", "%s: %.*s", c->name, (int)n, message);
}

static void become_ready(pg_conn_t *c) {
    if (PQenterPipelineMode(c->pq) != 1) {
        pg_conn_fail(c, pq_error(c));
        return;
    }
    uv_timer_stop(&c->timer);
    c->state = ST_READY;
    c->attempt_backoff_ms = c->backoff_ms;
    c->backoff_ms = BACKOFF_MIN_MS;
    c->failure.kind = PG_FAIL_NONE;
    c->failure.text[0] = '\0';
    if (watch(c, UV_READABLE, false) != 0) {
        pg_conn_fail(c, "cannot watch the socket");
        return;
    }
    if (c->rejected)
        log_debug("pg", "%s: connected", c->name); /* again, after a rejection */
    else
        log_info("pg", "%s: connected", c->name);
    if (c->cbs.on_ready) c->cbs.on_ready(c->arg, c);
}

/* One PQconnectPoll step; watches for what libpq asks next. */
static void connect_step(pg_conn_t *c, PostgresPollingStatusType st) {
    switch (st) {
    case PGRES_POLLING_OK:
        if (PQsetnonblocking(c->pq, 1) != 0) {
            pg_conn_fail(c, pq_error(c));
            return;
        }
        PQsetNoticeProcessor(c->pq, notice_processor, c);
        if (c->cbs.setup) {
            c->state = ST_SETUP;
            if (watch(c, UV_READABLE, true) != 0) {
                pg_conn_fail(c, "cannot watch the socket");
                return;
            }
            c->cbs.setup(c->arg, c);
        } else {
            if (watch(c, UV_READABLE, true) != 0) {
                pg_conn_fail(c, "cannot watch the socket");
                return;
            }
            become_ready(c);
        }
        return;
    case PGRES_POLLING_READING:
        if (watch(c, UV_READABLE, true) != 0) pg_conn_fail(c, "cannot watch the socket");
        return;
    case PGRES_POLLING_WRITING:
        if (watch(c, UV_WRITABLE, true) != 0) pg_conn_fail(c, "cannot watch the socket");
        return;
    default:
        pg_conn_fail(c, pq_error(c));
        return;
    }
}

static void start_connect(pg_conn_t *c) {
    const char *keys[] = {"dbname", "application_name", NULL};
    const char *vals[] = {c->conninfo,
                          c->cbs.application_name ? c->cbs.application_name : "evstored", NULL};
    c->pq = PQconnectStartParams(keys, vals, 1);
    c->state = ST_CONNECTING;
    uv_timer_start(&c->timer, on_timer, CONNECT_TIMEOUT_MS, 0);
    if (!c->pq || PQstatus(c->pq) == CONNECTION_BAD) {
        pg_conn_fail(c, c->pq ? pq_error(c) : "out of memory");
        return;
    }
    connect_step(c, PGRES_POLLING_WRITING);
}

/* ---------------------------------------------------------------- results */

/* Hands every result that is complete to the unit at the head of the queue. */
static void drain_results(pg_conn_t *c) {
    bool last_null = false;
    while ((c->state == ST_READY || c->state == ST_SETUP) && !PQisBusy(c->pq)) {
        PGresult *res = PQgetResult(c->pq);
        unit_t *u = c->head;
        if (!res) {
            if (u && u->simple) {
                pop_unit(c);
                u->cb(u->arg, PG_CONN_END, NULL);
                free(u);
                continue;
            }
            if (last_null || !u) break;
            last_null = true;
            continue;
        }
        last_null = false;
        if (!u) {
            log_warn("pg", "%s: result with no unit waiting for it (%s)", c->name,
                     PQresStatus(PQresultStatus(res)));
            PQclear(res);
            continue;
        }
        if (PQresultStatus(res) == PGRES_PIPELINE_SYNC) {
            PQclear(res);
            pop_unit(c);
            u->cb(u->arg, PG_CONN_END, NULL);
            free(u);
            continue;
        }
        u->cb(u->arg, PG_CONN_RESULT, res);
        PQclear(res);
    }
    /* Notifications (LISTEN) arrive between results; each is handed over and freed. */
    PGnotify *n;
    while ((c->state == ST_READY || c->state == ST_SETUP) && (n = PQnotifies(c->pq))) {
        if (c->cbs.on_notify) c->cbs.on_notify(c->arg, c, n);
        PQfreemem(n);
    }
    if (c->pq && PQstatus(c->pq) == CONNECTION_BAD) pg_conn_fail(c, pq_error(c));
}

static void flush(pg_conn_t *c) {
    if (c->state != ST_READY && c->state != ST_SETUP) return;
    int r = PQflush(c->pq);
    if (r < 0) {
        pg_conn_fail(c, pq_error(c));
        return;
    }
    if (watch(c, r == 1 ? UV_READABLE | UV_WRITABLE : UV_READABLE, false) != 0)
        pg_conn_fail(c, "cannot watch the socket");
}

static void on_poll(uv_poll_t *h, int status, int events) {
    pg_conn_t *c = h->data;
    if (c->poll != h) return;
    if (c->state == ST_CONNECTING) {
        connect_step(c, PQconnectPoll(c->pq));
        return;
    }
    if (c->state != ST_READY && c->state != ST_SETUP) return;
    if (status < 0) {
        pg_conn_fail(c, PQstatus(c->pq) == CONNECTION_BAD ? pq_error(c) : uv_strerror(status));
        return;
    }
    if (events & UV_READABLE) {
        if (PQconsumeInput(c->pq) == 0) {
            /* Results that were complete before the failure still go to their units. */
            drain_results(c);
            pg_conn_fail(c, pq_error(c));
            return;
        }
        drain_results(c);
    }
    if (events & UV_WRITABLE) flush(c);
}

/* ---------------------------------------------------------------- public */

pg_conn_t *pg_conn_new(uv_loop_t *loop, const char *conninfo, const char *name,
                       const pg_conn_cbs_t *cbs, void *arg) {
    pg_conn_t *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->conninfo = strdup(conninfo);
    c->name = strdup(name);
    if (!c->conninfo || !c->name) {
        free(c->conninfo);
        free(c->name);
        free(c);
        return NULL;
    }
    c->loop = loop;
    c->cbs = *cbs;
    c->arg = arg;
    c->backoff_ms = BACKOFF_MIN_MS;
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    c->open_handles = 1;
    start_connect(c);
    return c;
}

void pg_conn_close(pg_conn_t *c) {
    if (!c) return;
    stop_poll(c);
    if (c->pq) {
        PQfinish(c->pq);
        c->pq = NULL;
    }
    c->state = ST_CLOSED;
    lose_units(c);
    uv_close((uv_handle_t *)&c->timer, on_timer_closed);
}

bool pg_conn_is_ready(const pg_conn_t *c) {
    return c->state == ST_READY;
}
bool pg_conn_is_connecting(const pg_conn_t *c) {
    return c->state == ST_CONNECTING || c->state == ST_SETUP;
}
void *pg_conn_arg(const pg_conn_t *c) {
    return c->arg;
}
const char *pg_conn_name(const pg_conn_t *c) {
    return c->name;
}
size_t pg_conn_pending(const pg_conn_t *c) {
    return c->npending;
}

void pg_conn_send(pg_conn_t *c, const char *sql, int nparams, const Oid *types,
                  const char *const *values, const int *lengths, const int *formats,
                  bool binary_results) {
    if (c->state != ST_READY || c->send_failed) return;
    if (!PQsendQueryParams(c->pq, sql, nparams, types, values, lengths, formats,
                           binary_results ? 1 : 0))
        c->send_failed = true;
}

void pg_conn_prepare(pg_conn_t *c, const char *name, const char *sql, int nparams,
                     const Oid *types) {
    if (c->state != ST_READY || c->send_failed) return;
    if (!PQsendPrepare(c->pq, name, sql, nparams, types)) c->send_failed = true;
}

void pg_conn_send_prepared(pg_conn_t *c, const char *name, int nparams, const char *const *values,
                           const int *lengths, const int *formats, bool binary_results) {
    if (c->state != ST_READY || c->send_failed) return;
    if (!PQsendQueryPrepared(c->pq, name, nparams, values, lengths, formats,
                             binary_results ? 1 : 0))
        c->send_failed = true;
}

int pg_conn_sync(pg_conn_t *c, pg_conn_unit_cb cb, void *arg) {
    if (c->state != ST_READY) {
        c->send_failed = false;
        return -1;
    }
    unit_t *u = malloc(sizeof *u);
    if (!u) {
        c->send_failed = false;
        return -1;
    }
    u->cb = cb;
    u->arg = arg;
    u->simple = false;
    push_unit(c, u);
    if (c->send_failed || PQpipelineSync(c->pq) != 1) {
        pg_conn_fail(c, pq_error(c));
        return 0;
    }
    flush(c);
    return 0;
}

int pg_conn_send_simple(pg_conn_t *c, const char *sql, pg_conn_unit_cb cb, void *arg) {
    if (c->state != ST_SETUP) return -1;
    unit_t *u = malloc(sizeof *u);
    if (!u) return -1;
    if (!PQsendQuery(c->pq, sql)) {
        free(u);
        pg_conn_fail(c, pq_error(c));
        return -1;
    }
    u->cb = cb;
    u->arg = arg;
    u->simple = true;
    push_unit(c, u);
    flush(c);
    return 0;
}

void pg_conn_setup_done(pg_conn_t *c, bool ok) {
    if (c->state != ST_SETUP) return;
    if (!ok) {
        pg_conn_fail(c, "setup failed");
        return;
    }
    become_ready(c);
}

/* ---------------------------------------------------------------- failures */

void pg_failure_set(pg_failure_t *f, pg_failure_kind_t kind, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->text, sizeof f->text, fmt, ap);
    va_end(ap);
    f->kind = kind;
}

void pg_failure_from_result(pg_failure_t *f, const PGresult *res) {
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    if (!msg || !*msg) msg = PQresultErrorMessage(res);
    if (!msg || !*msg) msg = PQresStatus(PQresultStatus(res));
    int len = (int)strcspn(msg, "\n");
    pg_failure_kind_t kind = PG_FAIL_ERROR;
    if (!state || strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0)
        kind = PG_FAIL_UNREACHABLE;
    else if (strncmp(state, "28", 2) == 0)
        kind = PG_FAIL_AUTH;
    else if (strcmp(state, "42501") == 0)
        kind = PG_FAIL_PERMISSION;
    else if (strcmp(state, "42883") == 0 || strcmp(state, "42P01") == 0 ||
             strcmp(state, "3F000") == 0 || strcmp(state, "42703") == 0 ||
             strcmp(state, "42704") == 0)
        kind = PG_FAIL_SCHEMA;
    pg_failure_set(f, kind, "%.*s", len, msg);
}

const char *pg_failure_kind_name(pg_failure_kind_t kind) {
    switch (kind) {
    case PG_FAIL_NONE:
        return "ok";
    case PG_FAIL_UNREACHABLE:
        return "unreachable";
    case PG_FAIL_AUTH:
        return "authentication";
    case PG_FAIL_PERMISSION:
        return "permission";
    case PG_FAIL_SCHEMA:
        return "schema";
    default:
        return "error";
    }
}

bool pg_conn_result_is_transient(const PGresult *res) {
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    if (!state) return true; /* no SQLSTATE: libpq's own error, the connection */
    return strncmp(state, "08", 2) == 0 || strncmp(state, "53", 2) == 0 ||
           strncmp(state, "57", 2) == 0 || strncmp(state, "40", 2) == 0 ||
           strcmp(state, "42P01") == 0 || strncmp(state, "58", 2) == 0;
}
