/* pg/migrations.c: applying the embedded migrations on a connection's setup step.
 *
 * Two round trips in ordinary (non-pipeline) mode, because migration files hold several
 * statements and the extended protocol that pipeline mode uses takes one at a time:
 *   1. BEGIN; take the advisory lock; create evs_migrations if missing; list applied versions.
 *   2. the missing files' SQL and their evs_migrations rows, then COMMIT (or just COMMIT).
 * Any error drops the connection, which rolls the transaction back; pg_conn retries later. */
#include "migrations.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../log.h"
#include "conn.h"
#include "schema.h"

typedef struct run {
    pg_conn_t *c;
    void (*done)(void *arg, bool ok);
    void *arg;
    bool failed;
    bool *applied; /* by index into migrations_embedded */
    int napplied_now;
} run_t;

static void finish(run_t *r, bool ok) {
    r->done(r->arg, ok);
    free(r->applied);
    free(r);
}

/* Notes (and logs, the first time) a failed statement of the run. */
static void check_error(run_t *r, PGresult *res) {
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return;
    if (!r->failed) log_error("pg", "migrations failed: %s", PQresultErrorMessage(res));
    r->failed = true;
}

/* The unit callback of the second round trip (the missing migrations and COMMIT): the run ends,
 * successful only when every statement succeeded. */
static void on_commit(void *arg, pg_conn_event_t ev, PGresult *res) {
    run_t *r = arg;
    if (ev == PG_CONN_RESULT) {
        check_error(r, res);
        return;
    }
    if (ev == PG_CONN_END && !r->failed && r->napplied_now)
        log_info("pg", "applied %d migration(s)", r->napplied_now);
    finish(r, ev == PG_CONN_END && !r->failed);
}

/* Appends text to the growable string *buf. 0 or -1. */
static int append(char **buf, size_t *len, size_t *cap, const char *text) {
    size_t n = strlen(text);
    if (*len + n + 1 > *cap) {
        size_t c = *cap ? *cap : 1024;
        while (*len + n + 1 > c)
            c *= 2;
        char *b = realloc(*buf, c);
        if (!b) return -1;
        *buf = b;
        *cap = c;
    }
    memcpy(*buf + *len, text, n + 1);
    *len += n;
    return 0;
}

/* Sends every migration not applied yet, each followed by its evs_migrations row, and COMMIT. */
static void apply_missing(run_t *r) {
    char *sql = NULL, row[256];
    size_t len = 0, cap = 0;
    int rc = 0;
    for (size_t i = 0; i < migrations_embedded_count && rc == 0; i++) {
        const migration_t *m = &migrations_embedded[i];
        if (r->applied[i]) continue;
        snprintf(row, sizeof row, SCHEMA_SQL_MIGRATION_DONE_FMT, m->version, m->name);
        rc = append(&sql, &len, &cap, m->sql) | append(&sql, &len, &cap, row);
        r->napplied_now++;
    }
    if (rc == 0) rc = append(&sql, &len, &cap, "COMMIT");
    if (rc != 0 || pg_conn_send_simple(r->c, sql, on_commit, r) != 0) {
        free(sql);
        finish(r, false);
        return;
    }
    free(sql);
}

/* The unit callback of the first round trip: records which versions are applied, then sends the
 * missing ones, or ends the run on failure. */
static void on_listed(void *arg, pg_conn_event_t ev, PGresult *res) {
    run_t *r = arg;
    if (ev == PG_CONN_RESULT) {
        check_error(r, res);
        if (PQresultStatus(res) == PGRES_TUPLES_OK && PQnfields(res) == 1 &&
            strcmp(PQfname(res, 0), "version") == 0) {
            for (int row = 0; row < PQntuples(res); row++) {
                int v = atoi(PQgetvalue(res, row, 0));
                for (size_t i = 0; i < migrations_embedded_count; i++)
                    if (migrations_embedded[i].version == v) r->applied[i] = true;
            }
        }
        return;
    }
    if (ev == PG_CONN_LOST || r->failed) {
        finish(r, false);
        return;
    }
    apply_missing(r);
}

void migrations_run(pg_conn_t *c, void (*done)(void *arg, bool ok), void *arg) {
    run_t *r = calloc(1, sizeof *r);
    if (r) r->applied = calloc(migrations_embedded_count + 1, sizeof *r->applied);
    if (!r || !r->applied) {
        if (r) free(r);
        done(arg, false);
        return;
    }
    r->c = c;
    r->done = done;
    r->arg = arg;
    if (pg_conn_send_simple(c, SCHEMA_SQL_MIGRATIONS_BEGIN, on_listed, r) != 0) finish(r, false);
}
