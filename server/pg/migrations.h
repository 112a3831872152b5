/* pg/migrations.h: the schema migrations built into the daemon, and running or checking them.
 *
 * migrations/NNN_name.sql are embedded at build time (scripts/embed-migrations.sh generates
 * $(BUILD)/gen/migrations_sql.c). At connect, the writer connection looks at the schema and,
 * unless told never to change it (the option migrate = no), applies the missing migrations in
 * version order inside one transaction, under a transaction-level advisory lock
 * (SCHEMA_MIGRATIONS_LOCK_KEY, schema.h) so that two daemons starting at once do not race, and
 * records each in evs_migrations. Already applied: a lock, two SELECTs, a COMMIT.
 *
 * A schema this daemon cannot use is refused rather than changed: one that records a migration
 * newer than any it knows (a downgrade), or a half-applied one (a table that a migration not
 * recorded in evs_migrations creates already exists), or, with migrate = no, one that lacks
 * migrations. */
#ifndef EVS_PG_MIGRATIONS_H
#define EVS_PG_MIGRATIONS_H

#include <stdbool.h>
#include <stddef.h>

#include "conn.h"

typedef struct migration {
    int version;
    const char *name; /* the file name without .sql */
    const char *sql;
} migration_t;

/* Defined by the generated file, sorted by version. */
extern const migration_t migrations_embedded[];
extern const size_t migrations_embedded_count;

/* How a run ended. */
typedef struct migrations_result {
    bool ok;              /* the schema is the one this daemon needs */
    bool refused;         /* not ok because of the schema itself (newer, half-applied, behind
                             with migrate = no): retrying will not help until someone acts */
    pg_failure_t failure; /* why not ok */
    int applied;          /* migrations applied by this run */
    int version;          /* the highest migration recorded now (0: none) */
} migrations_result_t;

/* Looks at the schema on c, which must be in its setup step, and applies the missing embedded
 * migrations when apply is true; then calls done(arg, result) exactly once (result valid during
 * the call). Logs what it applied. */
void migrations_run(pg_conn_t *c, bool apply, void (*done)(void *arg, const migrations_result_t *r),
                    void *arg);

/* The highest embedded migration's version. */
int migrations_latest(void);

#endif
