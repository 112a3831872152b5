/* pg/admin.h: one-shot administration of a PostgreSQL store's database, for evstored's
 * --migrate and --new-store-id (store.h: store_migrate, store_new_id).
 *
 * Each opens one connection on a loop of its own (the same pg_conn and migrations the daemon
 * uses), does its work, and returns: no retry, so that a script learns at once what is wrong. */
#ifndef EVS_PG_ADMIN_H
#define EVS_PG_ADMIN_H

#include <stddef.h>

/* Applies the embedded migrations. 0 with what was done in msg, or -1 with why not. */
int pg_admin_migrate(const char *conninfo, char *msg, size_t len);

/* Gives the store a new random identity (evs_store.store_id): clients that resume by position
 * notice it and start again. 0 with the old and new identities in msg, or -1 with why not. */
int pg_admin_new_store_id(const char *conninfo, char *msg, size_t len);

#endif
