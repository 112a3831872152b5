/* pg/store_priv.h: what pg/store.c (writes, connections, open and free) and pg/reads.c (the
 * reads on the reader connections) share: the store itself, and the read side's entry points
 * that the store's op table names. */
#ifndef EVS_PG_STORE_PRIV_H
#define EVS_PG_STORE_PRIV_H

#include "../store.h"
#include "conn.h"
#include "feed.h"
#include "group_commit.h"
#include "op.h"

#define NREADERS 2

/* The error of a request that finds no usable connection while the store's condition gives no
 * reason (starting, or a connection being verified). */
#define NOT_CONNECTED "PostgreSQL is not connected yet; the daemon keeps retrying, retry later"

typedef struct pg_store pg_store_t;

struct pg_store {
    store_t base;
    pg_conn_t *writer;
    pg_conn_t *readers[NREADERS];
    bool prepared[NREADERS];      /* the reader's statements are prepared (or queued to be) */
    bool reader_ok[NREADERS];     /* ... and PostgreSQL said they were */
    bool reader_failed[NREADERS]; /* ... or said they could not be */
    bool writer_ok;               /* the writer ran the migrations and prepared its statements */
    bool writer_refused;          /* the writer's last failure was a schema the daemon refuses */
    /* The last write (group commit) or read that failed for want of a privilege or because of
     * the schema, until one succeeds (kind PG_FAIL_NONE: none). */
    pg_failure_t write_failure, read_failure;
    /* What failed: the GC_WROTE_* bits of the write, the schema_reads index of the read. A
     * success clears the failure only when it did as much (a write that wrote at least those
     * bits, a read of the same statement), so that mixed traffic does not flip the condition. */
    unsigned write_failure_wrote;
    int read_failure_query;
    group_commit_t *gc;
    pg_feed_t *feed; /* every committed event to the commit listener, from every daemon */
    bool migrated;   /* the schema is known to be up to date */
    op_list_t ops;   /* unanswered ops by deadline */
    op_t *parked;
    size_t next_reader;
};

/* Computes the store's condition again from its connections (store_set_condition). */
void pg_store_update_condition(pg_store_t *s);

/* A read of schema_reads[query] ended: res is its failed result, or NULL when it succeeded. A
 * failure for want of a privilege or because of the schema makes the store's condition down
 * until a read of the same statement succeeds. */
void pg_store_read_outcome(pg_store_t *s, int query, const PGresult *res);

/* Sends the reads that waited for a reader, now that one may be ready. */
void pg_store_pump_parked(pg_store_t *s);

void pg_store_get_by_entity(store_t *base, const char *entity_id, uint64_t from_version,
                            uint32_t limit, bool backwards, store_events_cb cb, void *arg);
void pg_store_get_by_id(store_t *base, const uint8_t event_id[16], store_events_cb cb, void *arg);
void pg_store_read(store_t *base, const store_read_t *q, store_events_cb cb, void *arg);
void pg_store_put_snapshot(store_t *base, const store_snapshot_t *snap, store_count_cb cb,
                           void *arg);
void pg_store_get_snapshot(store_t *base, const char *entity_id, uint64_t max_version,
                           store_snapshot_cb cb, void *arg);
void pg_store_delete_snapshots(store_t *base, const char *entity_id, store_count_cb cb, void *arg);
void pg_store_lease(store_t *base, const char *consumer, uint64_t fence, uint32_t ttl_ms,
                    store_lease_cb cb, void *arg);
void pg_store_lease_release(store_t *base, const char *consumer, uint64_t fence, store_count_cb cb,
                            void *arg);
void pg_store_get_checkpoint(store_t *base, const char *consumer, store_position_cb cb, void *arg);
void pg_store_consumers(store_t *base, store_consumers_cb cb, void *arg);

#endif
