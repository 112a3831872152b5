/* pg/migrations.h: the schema migrations built into the daemon, and running them.
 *
 * migrations/NNN_name.sql are embedded at build time (scripts/embed-migrations.sh generates
 * $(BUILD)/gen/migrations_sql.c). At connect, the writer connection applies the missing ones in
 * version order inside one transaction, under a transaction-level advisory lock
 * (SCHEMA_MIGRATIONS_LOCK_KEY, schema.h) so that two daemons starting at once do not race, and
 * records each in evs_migrations. Already applied: a lock, one SELECT, a COMMIT. */
#ifndef EVS_PG_MIGRATIONS_H
#define EVS_PG_MIGRATIONS_H

#include <stdbool.h>
#include <stddef.h>

typedef struct migration {
    int version;
    const char *name; /* the file name without .sql */
    const char *sql;
} migration_t;

/* Defined by the generated file, sorted by version. */
extern const migration_t migrations_embedded[];
extern const size_t migrations_embedded_count;

struct pg_conn;

/* Runs the embedded migrations on c, which must be in its setup step, then calls
 * done(arg, ok) exactly once (ok: the schema is up to date). Logs what it applied. */
void migrations_run(struct pg_conn *c, void (*done)(void *arg, bool ok), void *arg);

#endif
