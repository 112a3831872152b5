/* pg/migrations.c: looking at the schema and applying the embedded migrations on a connection's
 * setup step (see migrations.h).
 *
 * Up to three round trips in ordinary (non-pipeline) mode, because migration files hold several
 * statements and the extended protocol that pipeline mode uses takes one at a time:
 *   1. (applying: BEGIN and the advisory lock;) list the evs_ relations of the schema.
 *   2. when evs_migrations exists, list the applied versions.
 *   3. (applying, something missing:) create evs_migrations if needed, run the missing files with
 *      their evs_migrations rows, COMMIT; (applying, nothing missing:) COMMIT.
 * Any error ends the run with the error, classified (pg_failure_from_result); the caller drops the
 * connection, which rolls the transaction back. */
#include "migrations.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../log.h"
#include "conn.h"
#include "schema.h"

#define MAX_RELATIONS 64
#define RELATION_NAME 64

typedef struct run {
    pg_conn_t *c;
    bool apply;
    void (*done)(void *arg, const migrations_result_t *r);
    void *arg;
    migrations_result_t result;
    bool failed;
    bool *applied;                                /* by index into migrations_embedded */
    int newest;                                   /* the highest version evs_migrations records */
    char relations[MAX_RELATIONS][RELATION_NAME]; /* the evs_ relations that exist */
    int nrelations;
} run_t;

int migrations_latest(void) {
    return migrations_embedded_count ? migrations_embedded[migrations_embedded_count - 1].version
                                     : 0;
}

static void finish(run_t *r) {
    r->result.ok = !r->failed;
    r->done(r->arg, &r->result);
    free(r->applied);
    free(r);
}

/* Ends the run refusing the schema: text says why and what to do. */
static void refuse(run_t *r, const char *text) {
    r->failed = true;
    r->result.refused = true;
    pg_failure_set(&r->result.failure, PG_FAIL_SCHEMA, "%s", text);
    finish(r);
}

/* Notes the first failed statement of the run. A relation or function that already exists when
 * a migration creates it means a half-applied schema. */
static void check_error(run_t *r, PGresult *res) {
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || r->failed) return;
    r->failed = true;
    pg_failure_from_result(&r->result.failure, res);
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    if (state && (strcmp(state, "42P07") == 0 || strcmp(state, "42723") == 0 ||
                  strcmp(state, "42710") == 0)) {
        char text[sizeof r->result.failure.text];
        snprintf(text, sizeof text,
                 "half-applied schema: applying a migration that evs_migrations does not record "
                 "failed: %.300s",
                 r->result.failure.text);
        pg_failure_set(&r->result.failure, PG_FAIL_SCHEMA, "%s", text);
        r->result.refused = true;
    }
}

static bool relation_exists(const run_t *r, const char *name) {
    for (int i = 0; i < r->nrelations; i++)
        if (strcmp(r->relations[i], name) == 0) return true;
    return false;
}

/* Finds, in a migration's SQL, the next table or sequence it creates (CREATE TABLE or CREATE
 * SEQUENCE, with or without IF NOT EXISTS; comments skipped), starting at *p: copies its name
 * into name and returns true, or returns false at the end. */
static bool next_created(const char **p, char name[RELATION_NAME]) {
    const char *s = *p;
    while (*s) {
        if (s[0] == '-' && s[1] == '-') {
            s += strcspn(s, "\n");
            continue;
        }
        size_t skip = 0;
        if (strncasecmp(s, "CREATE TABLE ", 13) == 0)
            skip = 13;
        else if (strncasecmp(s, "CREATE SEQUENCE ", 16) == 0)
            skip = 16;
        if (!skip || (s > *p && (isalnum((unsigned char)s[-1]) || s[-1] == '_'))) {
            s++;
            continue;
        }
        s += skip;
        if (strncasecmp(s, "IF NOT EXISTS ", 14) == 0) s += 14;
        size_t n = 0;
        while ((isalnum((unsigned char)s[n]) || s[n] == '_') && n + 1 < RELATION_NAME) {
            name[n] = (char)tolower((unsigned char)s[n]);
            n++;
        }
        name[n] = '\0';
        s += n;
        *p = s;
        if (n) return true;
    }
    *p = s;
    return false;
}

/* The unit callback of the last round trip (the missing migrations and COMMIT, or COMMIT). */
static void on_commit(void *arg, pg_conn_event_t ev, PGresult *res) {
    run_t *r = arg;
    if (ev == PG_CONN_RESULT) {
        check_error(r, res);
        return;
    }
    if (ev == PG_CONN_LOST && !r->failed) {
        r->failed = true;
        pg_failure_set(&r->result.failure, PG_FAIL_UNREACHABLE,
                       "the connection was lost while applying the migrations");
    }
    if (!r->failed) {
        if (r->result.applied) {
            log_info("pg", "applied %d migration(s); the schema is at version %d",
                     r->result.applied, migrations_latest());
            r->result.version = migrations_latest();
        }
    } else {
        r->result.applied = 0;
    }
    finish(r);
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

/* Sends every migration not applied yet, each followed by its evs_migrations row, and COMMIT
 * (only COMMIT when none is missing). */
static void apply_missing(run_t *r) {
    char *sql = NULL, row[256];
    size_t len = 0, cap = 0;
    int rc = 0;
    if (!relation_exists(r, SCHEMA_MIGRATIONS_TABLE))
        rc = append(&sql, &len, &cap, SCHEMA_SQL_MIGRATIONS_CREATE);
    for (size_t i = 0; i < migrations_embedded_count && rc == 0; i++) {
        const migration_t *m = &migrations_embedded[i];
        if (r->applied[i]) continue;
        snprintf(row, sizeof row, SCHEMA_SQL_MIGRATION_DONE_FMT, m->version, m->name);
        rc = append(&sql, &len, &cap, m->sql) | append(&sql, &len, &cap, row);
        r->result.applied++;
    }
    if (rc == 0) rc = append(&sql, &len, &cap, "COMMIT");
    if (rc != 0 || pg_conn_send_simple(r->c, sql, on_commit, r) != 0) {
        free(sql);
        r->failed = true;
        pg_failure_set(&r->result.failure, PG_FAIL_ERROR, "cannot send the migrations");
        finish(r);
        return;
    }
    free(sql);
}

/* With the applied versions known: refuses a newer or half-applied schema (or, when it must not
 * change it, one that lacks migrations); otherwise applies what is missing. */
static void decide(run_t *r) {
    char text[400];
    int latest = migrations_latest();
    r->result.version = r->newest;
    if (r->newest > latest) {
        snprintf(text, sizeof text,
                 "the schema is newer than this evstored: evs_migrations records migration %d, "
                 "this evstored %s knows migrations up to %d; run an evstored at least as new as "
                 "the one that migrated it (a downgrade needs a restore of a backup taken before "
                 "the upgrade)",
                 r->newest, EVS_VERSION, latest);
        refuse(r, text);
        return;
    }
    const char *first_missing = NULL;
    int nmissing = 0;
    for (size_t i = 0; i < migrations_embedded_count; i++) {
        const migration_t *m = &migrations_embedded[i];
        if (r->applied[i]) continue;
        if (!first_missing) first_missing = m->name;
        nmissing++;
        const char *p = m->sql;
        char name[RELATION_NAME];
        while (next_created(&p, name)) {
            if (!relation_exists(r, name)) continue;
            snprintf(text, sizeof text,
                     "half-applied schema: %s exists but evs_migrations does not record migration "
                     "%s, which creates it; restore a backup, or finish that migration by hand and "
                     "record it in evs_migrations (docs/service.md, \"Schema migrations and "
                     "privileges\")",
                     name, m->name);
            refuse(r, text);
            return;
        }
    }
    if (!r->apply) {
        if (nmissing) {
            snprintf(text, sizeof text,
                     "the schema is behind this evstored: %d migration(s) from %s on are not "
                     "applied (schema at version %d, this evstored needs %d) and migrate = no: run "
                     "evstored --migrate with a role that may change the schema",
                     nmissing, first_missing, r->newest, latest);
            refuse(r, text);
            return;
        }
        finish(r);
        return;
    }
    apply_missing(r);
}

/* The unit callback of the second round trip: records which versions are applied. */
static void on_versions(void *arg, pg_conn_event_t ev, PGresult *res) {
    run_t *r = arg;
    if (ev == PG_CONN_RESULT) {
        check_error(r, res);
        if (PQresultStatus(res) == PGRES_TUPLES_OK && PQnfields(res) == 1) {
            for (int row = 0; row < PQntuples(res); row++) {
                int v = atoi(PQgetvalue(res, row, 0));
                if (v > r->newest) r->newest = v;
                for (size_t i = 0; i < migrations_embedded_count; i++)
                    if (migrations_embedded[i].version == v) r->applied[i] = true;
            }
        }
        return;
    }
    if (ev == PG_CONN_LOST && !r->failed) {
        r->failed = true;
        pg_failure_set(&r->result.failure, PG_FAIL_UNREACHABLE,
                       "the connection was lost while reading evs_migrations");
    }
    if (r->failed) {
        finish(r);
        return;
    }
    decide(r);
}

/* The unit callback of the first round trip: records the evs_ relations, then reads the applied
 * versions (or, without evs_migrations, takes none as applied). */
static void on_relations(void *arg, pg_conn_event_t ev, PGresult *res) {
    run_t *r = arg;
    if (ev == PG_CONN_RESULT) {
        check_error(r, res);
        if (PQresultStatus(res) == PGRES_TUPLES_OK && PQnfields(res) == 1 &&
            strcmp(PQfname(res, 0), "relname") == 0) {
            for (int row = 0; row < PQntuples(res) && r->nrelations < MAX_RELATIONS; row++)
                snprintf(r->relations[r->nrelations++], RELATION_NAME, "%s",
                         PQgetvalue(res, row, 0));
        }
        return;
    }
    if (ev == PG_CONN_LOST && !r->failed) {
        r->failed = true;
        pg_failure_set(&r->result.failure, PG_FAIL_UNREACHABLE,
                       "the connection was lost while reading the schema");
    }
    if (r->failed) {
        finish(r);
        return;
    }
    if (!relation_exists(r, SCHEMA_MIGRATIONS_TABLE)) {
        if (!r->apply && r->nrelations == 0) {
            refuse(r, "the database has no evstore schema and migrate = no: run evstored "
                      "--migrate with a role that may change the schema");
            return;
        }
        decide(r);
        return;
    }
    if (pg_conn_send_simple(r->c, SCHEMA_SQL_MIGRATIONS_LIST, on_versions, r) != 0) {
        r->failed = true;
        pg_failure_set(&r->result.failure, PG_FAIL_ERROR, "cannot send a query");
        finish(r);
    }
}

void migrations_run(pg_conn_t *c, bool apply, void (*done)(void *arg, const migrations_result_t *r),
                    void *arg) {
    run_t *r = calloc(1, sizeof *r);
    if (r) r->applied = calloc(migrations_embedded_count + 1, sizeof *r->applied);
    if (!r || !r->applied) {
        migrations_result_t oom = {.ok = false};
        pg_failure_set(&oom.failure, PG_FAIL_ERROR, "out of memory");
        free(r);
        done(arg, &oom);
        return;
    }
    r->c = c;
    r->apply = apply;
    r->done = done;
    r->arg = arg;
    const char *sql = apply ? SCHEMA_SQL_QUIET SCHEMA_SQL_MIGRATIONS_LOCK SCHEMA_SQL_RELATIONS
                            : SCHEMA_SQL_QUIET SCHEMA_SQL_RELATIONS;
    if (pg_conn_send_simple(c, sql, on_relations, r) != 0) {
        r->failed = true;
        pg_failure_set(&r->result.failure, PG_FAIL_ERROR, "cannot send a query");
        finish(r);
    }
}
