/* pg/store.h: the PostgreSQL store.
 *
 * One writer connection runs the migrations at connect and then the group commits
 * (group_commit.h); two reader connections serve get-by-entity, get-by-id, read (get-by-topic,
 * read-all, subscription catch-up) and snapshots, so reads never queue behind writes. Every
 * connection is a pg_conn: non-blocking, pipelined, reconnecting with backoff. While no
 * connection can serve, requests fail with EVS_EUNAVAILABLE (those that arrive during a
 * connection attempt wait for it); every request has the store's deadline. docs/architecture.md
 * explains the design. */
#ifndef EVS_PG_STORE_H
#define EVS_PG_STORE_H

#include <uv.h>

#include "../store.h"

/* Opens a PostgreSQL store on conninfo (a libpq URI or key=value string) and starts connecting
 * on loop; returns at once. NULL with err set when conninfo cannot be parsed or memory is short.
 * Free it with s->ops->free(s), then run the loop until its handles are closed. */
store_t *pg_store_open(const char *conninfo, uv_loop_t *loop, codec_error_t *err);

#endif
