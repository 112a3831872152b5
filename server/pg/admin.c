/* pg/admin.c: one-shot administration of the database (see admin.h). */
#include "admin.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "conn.h"
#include "migrations.h"
#include "schema.h"

typedef struct admin {
    pg_conn_t *c;
    bool migrate; /* else: a new store id */
    bool done;
    int status;
    char *msg;
    size_t len;
} admin_t;

/* Ends the work with status and the message, and closes the connection (the loop then ends). */
static void finish(admin_t *a, int status, const char *fmt, const char *text, const char *more) {
    if (a->done) return;
    a->done = true;
    a->status = status;
    snprintf(a->msg, a->len, fmt, text, more);
    pg_conn_close(a->c);
}

static void fail_with(admin_t *a, const char *doing, const pg_failure_t *f) {
    char text[600];
    snprintf(text, sizeof text, "%s (%s)", f->text, pg_failure_kind_name(f->kind));
    finish(a, -1, "%s: %s", doing, text);
}

static void on_migrated(void *arg, const migrations_result_t *r) {
    admin_t *a = arg;
    char text[64];
    if (!r->ok) {
        fail_with(a, "migrating", &r->failure);
        return;
    }
    if (r->applied) {
        snprintf(text, sizeof text, "%d migration(s)", r->applied);
        char version[32];
        snprintf(version, sizeof version, "%d", r->version);
        finish(a, 0, "applied %s; the schema is at version %s", text, version);
    } else {
        snprintf(text, sizeof text, "%d", r->version);
        finish(a, 0, "the schema is up to date at version %s%s", text, "; nothing applied");
    }
}

static void on_new_id(void *arg, pg_conn_event_t ev, PGresult *res) {
    admin_t *a = arg;
    if (ev == PG_CONN_RESULT) {
        if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 && PQnfields(res) == 2) {
            finish(a, 0, "the store's identity is now %s (it was %s)", PQgetvalue(res, 0, 0),
                   PQgetvalue(res, 0, 1));
        } else {
            pg_failure_t f;
            pg_failure_from_result(&f, res);
            if (PQresultStatus(res) == PGRES_TUPLES_OK)
                pg_failure_set(&f, PG_FAIL_SCHEMA, "evs_store does not hold one row");
            fail_with(a, "setting a new store identity (run evstored --migrate first?)", &f);
        }
        return;
    }
    if (!a->done) finish(a, -1, "%s%s", "setting a new store identity: no result", "");
}

/* Connected: the work runs in the setup step (ordinary mode). */
static void on_setup(void *arg, pg_conn_t *c) {
    admin_t *a = arg;
    if (a->migrate)
        migrations_run(c, true, on_migrated, a);
    else if (pg_conn_send_simple(c, SCHEMA_SQL_NEW_STORE_ID_OLD, on_new_id, a) != 0)
        finish(a, -1, "%s%s", "cannot send the query", "");
}

/* The connection failed: no retry. */
static void on_lost(void *arg, pg_conn_t *c) {
    admin_t *a = arg;
    fail_with(a, "connecting to PostgreSQL", pg_conn_failure(c));
}

static void on_ready(void *arg, pg_conn_t *c) {
    (void)arg, (void)c;
}

static int run(const char *conninfo, bool migrate, char *msg, size_t len) {
    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0) {
        snprintf(msg, len, "cannot start an event loop");
        return -1;
    }
    admin_t a = {.migrate = migrate, .msg = msg, .len = len};
    static const pg_conn_cbs_t cbs = {.setup = on_setup,
                                      .on_ready = on_ready,
                                      .on_lost = on_lost,
                                      .application_name = "evstored-admin"};
    a.c = pg_conn_new(&loop, conninfo, "admin", &cbs, &a);
    if (!a.c) {
        snprintf(msg, len, "out of memory");
        a.status = -1;
    } else {
        uv_run(&loop, UV_RUN_DEFAULT);
    }
    uv_loop_close(&loop);
    return a.status;
}

int pg_admin_migrate(const char *conninfo, char *msg, size_t len) {
    return run(conninfo, true, msg, len);
}

int pg_admin_new_store_id(const char *conninfo, char *msg, size_t len) {
    return run(conninfo, false, msg, len);
}
