/* pg/schema.h: the contract between the C code and the SQL: columns, statements, keys, channel.
 *
 * Every statement the store sends is here, with its text, its prepared name, the types of its
 * parameters and names for the positions of its parameters and result columns; so is the one
 * function that decodes an event row, the advisory lock keys and the notification channel. A
 * change to the schema is one migration (migrations/NNN_name.sql) and this file. The schema
 * itself is described in docs/architecture.md ("Schema and migrations").
 *
 * Positions are 0-based, as libpq counts them: parameter P is $(P+1) in the SQL text. */
#ifndef EVS_PG_SCHEMA_H
#define EVS_PG_SCHEMA_H

#include <libpq-fe.h>

#include "../../proto/codec.h"
#include "../../proto/event.h"

/* ---------------------------------------------------------------- locks and channel */

#define SCHEMA_STR_(x) #x
#define SCHEMA_STR(x) SCHEMA_STR_(x)

/* The advisory lock key of migrations (any daemon, any database user). */
#define SCHEMA_MIGRATIONS_LOCK_KEY 7433000001
/* The advisory lock key every append and delete transaction takes, from before it takes its
 * positions until its COMMIT: positions are then commit-ordered across every daemon. */
#define SCHEMA_APPEND_LOCK_KEY 7433000002

/* The channel every append transaction that wrote events notifies, just before its COMMIT, with
 * the last position it wrote as the payload (a doorbell for every daemon's live feed, never event
 * data). */
#define SCHEMA_NOTIFY_CHANNEL "evstore_events"

/* ---------------------------------------------------------------- evs_events rows */

/* The columns of evs_events in the order every event read selects them. */
#define SCHEMA_EVENT_COLUMNS                                                                       \
    "position, event_id, entity_id, version, topic, stored_at, payload, metadata"
enum schema_event_col {
    SCHEMA_EVENT_POSITION,  /* int8 */
    SCHEMA_EVENT_EVENT_ID,  /* uuid */
    SCHEMA_EVENT_ENTITY_ID, /* text */
    SCHEMA_EVENT_VERSION,   /* int8 */
    SCHEMA_EVENT_TOPIC,     /* text */
    SCHEMA_EVENT_STORED_AT, /* int8, microseconds since the epoch */
    SCHEMA_EVENT_PAYLOAD,   /* bytea */
    SCHEMA_EVENT_METADATA,  /* bytea, may be NULL */
};
#define SCHEMA_SELECT_EVENTS "SELECT " SCHEMA_EVENT_COLUMNS " FROM evs_events WHERE "

/* An event row's size as codec_event_size counts it (octet_length of a stored value reads its
 * length without fetching or decompressing the value). */
#define SCHEMA_EVENT_SIZE                                                                          \
    "(" SCHEMA_STR(                                                                                \
        CODEC_EVENT_OVERHEAD) " + octet_length(entity_id) + octet_length(topic) + "                \
                              "octet_length(payload) + coalesce(octet_length(metadata), 0))"

/* A page of event rows bounded by bytes as well as by count (store_t.page_bytes): the rows of
 * SCHEMA_SELECT_EVENTS where (a condition with its ORDER BY order and LIMIT limit_param, e.g.
 * "entity_id = $1 AND version >= $2 ORDER BY version LIMIT $3"), kept while the rows before take
 * at most the bytes in parameter bytes_param ("$4"), and the first two rows always, so that of
 * the rest only the first row past the bound is kept (it says there is more) and no payload past
 * it is sent.
 *
 * The rows kept are a prefix of the page, so the page is the select's rows under an outer LIMIT:
 * none when limit_param events of the largest size ever stored (migrations/006_event_size.sql)
 * fit in the bound, since no row can then be cut; else the number of rows the bound keeps,
 * counted by a running sum of the sizes over the same rows (a window, about a microsecond a row,
 * that reads no payload). The largest size is read in the statement's own snapshot, and every
 * event a read can see was stored in a transaction that had raised it to at least that event's
 * size, so the bound holds whatever other daemons wrote. The window's subquery runs only when
 * the CASE needs it. */
#define SCHEMA_PAGE(where, order, limit_param, bytes_param)                                        \
    "SELECT " SCHEMA_EVENT_COLUMNS " FROM (" SCHEMA_SELECT_EVENTS where                            \
    ") AS page ORDER BY " order " LIMIT (SELECT CASE WHEN " SCHEMA_PAGE_FITS(                      \
        limit_param,                                                                               \
        bytes_param) " THEN NULL ELSE (SELECT count(*) FROM (SELECT sum(size) OVER w - size AS "   \
                     "bytes_before, "                                                              \
                     "row_number() OVER w AS row FROM (SELECT position, "                          \
                     "version, " SCHEMA_EVENT_SIZE " AS size FROM evs_events WHERE " where         \
                     ") AS sizes WINDOW w AS (ORDER BY " order                                     \
                     " ROWS UNBOUNDED PRECEDING)) AS sized WHERE bytes_before <= " bytes_param     \
                     " OR row <= 2) END)"

/* Whether limit_param events of the largest size ever stored fit in bytes_param (false when
 * unknown). */
#define SCHEMA_PAGE_FITS(limit_param, bytes_param)                                                 \
    "coalesce((SELECT " SCHEMA_STR(CODEC_EVENT_OVERHEAD) " + max_data_bytes FROM "                 \
                                                         "evs_event_size) <= " bytes_param         \
                                                         " / greatest(" limit_param ", 1), false)"

/* Fills *ev from row of a binary-format result whose columns are SCHEMA_EVENT_COLUMNS. ev must be
 * zeroed; its strings and bytes point into res (valid until res is cleared). */
void schema_event_from_row(const PGresult *res, int row, evs_event_t *ev);

/* ---------------------------------------------------------------- prepared statements */

#define SCHEMA_MAX_PARAMS 10

/* One prepared statement: prepared once per connection under name, run in binary. */
typedef struct schema_statement {
    const char *name;
    const char *sql;
    int nparams;
    Oid types[SCHEMA_MAX_PARAMS];
} schema_statement_t;

/* The statements of the reader connections (schema_reads[], indexed by this enum). */
enum schema_read {
    SCHEMA_ENTITY_FWD,         /* one entity's events from a version up */
    SCHEMA_ENTITY_BWD,         /* one entity's events from a version down */
    SCHEMA_BY_ID,              /* one event by id */
    SCHEMA_READ,               /* the global log after a position ... */
    SCHEMA_READ_TOPIC,         /* ... with one topic */
    SCHEMA_READ_TOPICS,        /* ... with one of several topics */
    SCHEMA_READ_PREFIX,        /* ... with an entity id prefix */
    SCHEMA_READ_TOPIC_PREFIX,  /* ... both */
    SCHEMA_READ_TOPICS_PREFIX, /* ... both */
    SCHEMA_PUT_SNAPSHOT,
    SCHEMA_GET_SNAPSHOT,
    SCHEMA_DELETE_SNAPSHOTS, /* an entity's snapshots, not its events */
    SCHEMA_GET_CHECKPOINT,   /* one consumer's checkpoint */
    SCHEMA_CONSUMERS,        /* every consumer, and the head */
    SCHEMA_READ_PARTITION,   /* the global log in one partition, with any filters */
    SCHEMA_LEASE,            /* takes or renews a consumer's lease */
    SCHEMA_LEASE_RELEASE,    /* gives one up */
    SCHEMA_NREADS
};
extern const schema_statement_t schema_reads[SCHEMA_NREADS];

/* Parameters of SCHEMA_ENTITY_FWD/BWD (the byte bound as in SCHEMA_PAGE); results are event
 * rows. */
enum { SCHEMA_ENTITY_P_ID, SCHEMA_ENTITY_P_VERSION, SCHEMA_ENTITY_P_LIMIT, SCHEMA_ENTITY_P_BYTES };
/* Parameter of SCHEMA_BY_ID (uuid); the result is 0 or 1 event row. */
enum { SCHEMA_BY_ID_P_ID };
/* Parameters of SCHEMA_READ*: after, limit and the byte bound (as in SCHEMA_PAGE), then the
 * filters in this order: the topic (text) or the topics (text[]), then the entity id prefix;
 * results are event rows. */
enum { SCHEMA_READ_P_AFTER, SCHEMA_READ_P_LIMIT, SCHEMA_READ_P_BYTES, SCHEMA_READ_P_FILTERS };
/* Parameters of SCHEMA_PUT_SNAPSHOT (no result rows). */
enum {
    SCHEMA_PUT_SNAPSHOT_P_ENTITY,
    SCHEMA_PUT_SNAPSHOT_P_VERSION,
    SCHEMA_PUT_SNAPSHOT_P_TOPIC,
    SCHEMA_PUT_SNAPSHOT_P_PAYLOAD
};
/* Parameters and result columns of SCHEMA_GET_SNAPSHOT (0 or 1 row). */
enum { SCHEMA_GET_SNAPSHOT_P_ENTITY, SCHEMA_GET_SNAPSHOT_P_MAX_VERSION };
enum {
    SCHEMA_SNAPSHOT_VERSION,   /* int8 */
    SCHEMA_SNAPSHOT_TOPIC,     /* text */
    SCHEMA_SNAPSHOT_STORED_AT, /* int8 */
    SCHEMA_SNAPSHOT_PAYLOAD    /* bytea */
};

/* Parameter of SCHEMA_DELETE_SNAPSHOTS (no result rows; the command tag counts the rows). */
enum { SCHEMA_DELETE_SNAPSHOTS_P_ENTITY };
/* SCHEMA_GET_CHECKPOINT: the consumer (text); 0 or 1 row of one column, the position (int8). */
enum { SCHEMA_GET_CHECKPOINT_P_CONSUMER };
/* SCHEMA_CONSUMERS: no parameters; one row per consumer in name order, and one row with a NULL
 * consumer when there is none; every row carries the head. */
enum {
    SCHEMA_CONSUMERS_HEAD,     /* int8: the newest position taken */
    SCHEMA_CONSUMERS_CONSUMER, /* text, NULL: no consumer */
    SCHEMA_CONSUMERS_POSITION, /* int8 */
    SCHEMA_CONSUMERS_ACTIVE    /* bool: its lease is held */
};
/* SCHEMA_LEASE: the consumer (text), the fence to renew (int8, 0: take), the time to live in
 * milliseconds (int8); 0 rows (another holds it) or 1 row of one column, the fence (int8). */
enum { SCHEMA_LEASE_P_CONSUMER, SCHEMA_LEASE_P_FENCE, SCHEMA_LEASE_P_TTL };
/* SCHEMA_LEASE_RELEASE: the consumer (text) and the fence (int8); 0 or 1 row. */
enum { SCHEMA_LEASE_RELEASE_P_CONSUMER, SCHEMA_LEASE_RELEASE_P_FENCE };

/* SCHEMA_READ_PARTITION: after, limit and the byte bound as SCHEMA_READ*, then the topics
 * (text[], empty: every topic), the entity id prefix (text, "": every entity), and the partition:
 * its count n, its index, and 2^64 mod n (the hash is stored as a signed bigint). */
enum {
    SCHEMA_READ_PARTITION_P_TOPICS = SCHEMA_READ_P_FILTERS,
    SCHEMA_READ_PARTITION_P_PREFIX,
    SCHEMA_READ_PARTITION_P_COUNT,
    SCHEMA_READ_PARTITION_P_INDEX,
    SCHEMA_READ_PARTITION_P_WRAP,
    SCHEMA_READ_PARTITION_NPARAMS
};

/* The head, the newest position taken from evs_position_seq (0 before any), as SQL. */
#define SCHEMA_SQL_HEAD_VALUE                                                                      \
    "(SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM evs_position_seq)"

/* The statements of the writer connection's group commit (schema_writes[], by this enum). */
enum schema_write {
    SCHEMA_APPEND_LOCK,  /* takes SCHEMA_APPEND_LOCK_KEY for the transaction */
    SCHEMA_POSITIONS,    /* takes a block of positions */
    SCHEMA_CHECK,        /* latest versions of entities, stored events with given ids */
    SCHEMA_GUARD,        /* the fast path's proof (migrations/003_append_guard.sql) */
    SCHEMA_INSERT,       /* the group's events, as arrays */
    SCHEMA_RAISE_SIZE,   /* raises the largest event size stored (006_event_size.sql) */
    SCHEMA_CKPT_READ,    /* the checkpoints of the group's consumers */
    SCHEMA_CKPT_UPSERT,  /* sets checkpoints */
    SCHEMA_CKPT_DELETE,  /* removes checkpoints */
    SCHEMA_CKPT_ADVANCE, /* the fast path's trackings, proved and written (009_tracking_advance) */
    SCHEMA_NWRITES
};
extern const schema_statement_t schema_writes[SCHEMA_NWRITES];

/* SCHEMA_POSITIONS: the number of positions; the one row's one column is the block's last. */
enum { SCHEMA_POSITIONS_P_COUNT };

/* SCHEMA_CHECK: the group's entities and its client-chosen event ids. Each row is either the
 * latest version of one entity (kind SCHEMA_CHECK_LATEST; version NULL when it has no events) or
 * one stored event with one of the ids (kind SCHEMA_CHECK_STORED_ID). */
enum { SCHEMA_CHECK_P_ENTITIES, SCHEMA_CHECK_P_EVENT_IDS };
enum {
    SCHEMA_CHECK_KIND,     /* int4 */
    SCHEMA_CHECK_ENTITY,   /* text */
    SCHEMA_CHECK_VERSION,  /* int8 */
    SCHEMA_CHECK_EVENT_ID, /* uuid, kind SCHEMA_CHECK_STORED_ID only */
    SCHEMA_CHECK_POSITION  /* int8, kind SCHEMA_CHECK_STORED_ID only */
};
enum { SCHEMA_CHECK_LATEST = 0, SCHEMA_CHECK_STORED_ID = 1 };

/* SCHEMA_GUARD: the sequence's value after our last COMMIT, the number of positions to take, the
 * entities taken for new and the client-chosen event ids. It raises one of these SQLSTATEs (all
 * starting with SCHEMA_GUARD_SQLSTATE_CLASS) before anything is written, or takes the block. */
enum {
    SCHEMA_GUARD_P_LAST_SEQ,
    SCHEMA_GUARD_P_COUNT,
    SCHEMA_GUARD_P_NEW_ENTITIES,
    SCHEMA_GUARD_P_EVENT_IDS,
    SCHEMA_GUARD_NPARAMS
};
#define SCHEMA_GUARD_SQLSTATE_CLASS "EVS0"
#define SCHEMA_GUARD_SEQ_MOVED "EVS01"     /* another writer took positions */
#define SCHEMA_GUARD_ENTITY_EXISTS "EVS02" /* an entity taken for new has events */
#define SCHEMA_GUARD_ID_STORED "EVS03"     /* an event id is already stored */
#define SCHEMA_GUARD_TRACKING "EVS04"      /* a tracked consumer is not as assumed */

/* SCHEMA_CKPT_ADVANCE: one entry per consumer of the group: the lowest position the group tracks
 * for it, its checkpoint once the group commits (-1: the group does not move it), the fence its
 * appends carry (0: none). Raises SCHEMA_GUARD_TRACKING, or returns one row. */
enum {
    SCHEMA_CKPT_ADVANCE_P_CONSUMERS,
    SCHEMA_CKPT_ADVANCE_P_LOWEST,
    SCHEMA_CKPT_ADVANCE_P_POSITIONS,
    SCHEMA_CKPT_ADVANCE_P_FENCES,
    SCHEMA_CKPT_ADVANCE_NPARAMS
};

/* SCHEMA_INSERT: one array per column (stored_at one value for all); no result rows. */
enum {
    SCHEMA_INSERT_P_POSITIONS,  /* int8[] */
    SCHEMA_INSERT_P_EVENT_IDS,  /* uuid[] */
    SCHEMA_INSERT_P_ENTITY_IDS, /* text[] */
    SCHEMA_INSERT_P_VERSIONS,   /* int8[] */
    SCHEMA_INSERT_P_TOPICS,     /* text[] */
    SCHEMA_INSERT_P_STORED_AT,  /* int8 */
    SCHEMA_INSERT_P_PAYLOADS,   /* bytea[] */
    SCHEMA_INSERT_P_METADATA,   /* bytea[], with NULLs */
    SCHEMA_INSERT_P_PARTITIONS, /* int8[]: evs_partition_hash of each entity id */
    SCHEMA_INSERT_NPARAMS
};

/* SCHEMA_RAISE_SIZE: the group's largest event size less CODEC_EVENT_OVERHEAD (int8); no result
 * rows. evs_event_size never holds less than SCHEMA_EVENT_SIZE_FLOOR, so a group whose events are
 * all within it needs no raise. */
#define SCHEMA_EVENT_SIZE_FLOOR 1024
enum { SCHEMA_RAISE_SIZE_P_BYTES };
/* SCHEMA_CKPT_READ: the group's consumers (text[]); a row per stored checkpoint (kind 0, value
 * the position) and per lease (kind 1, value the fence, the row locked FOR SHARE). */
enum { SCHEMA_CKPT_READ_P_CONSUMERS };
enum {
    SCHEMA_CKPT_READ_KIND,     /* int4 */
    SCHEMA_CKPT_READ_CONSUMER, /* text */
    SCHEMA_CKPT_READ_VALUE     /* int8 */
};
/* SCHEMA_CKPT_UPSERT: consumers (text[], distinct) and their positions (int8[]); no rows. */
enum { SCHEMA_CKPT_UPSERT_P_CONSUMERS, SCHEMA_CKPT_UPSERT_P_POSITIONS };
/* SCHEMA_CKPT_DELETE: consumers (text[]); no rows. */
enum { SCHEMA_CKPT_DELETE_P_CONSUMERS };

/* The head instead of SCHEMA_POSITIONS in a group that takes no position (only checkpoints):
 * one row, one int8 column, under the lock. */
#define SCHEMA_SQL_HEAD "SELECT " SCHEMA_SQL_HEAD_VALUE

/* ---------------------------------------------------------------- unprepared statements */

/* Run before preparing the group commit's statements: they only ever use the indexes the
 * migrations create, so a generic plan is as good and is made once. */
#define SCHEMA_SQL_GENERIC_PLANS "SET plan_cache_mode = force_generic_plan"

/* Run with it: the writer keeps evs_event_size itself (SCHEMA_RAISE_SIZE), so the trigger that
 * keeps it for other writers skips its rows (migrations/006_event_size.sql). */
#define SCHEMA_SQL_EVENT_SIZE_KEPT "SET evstore.event_size_kept = on"

/* delete-entity, each with the entity id as $1 (text); then SCHEMA_SQL_TAKE_POSITION, whose one
 * row's one column (text format) is the position it took. */
#define SCHEMA_SQL_DELETE_EVENTS "DELETE FROM evs_events WHERE entity_id = $1"
#define SCHEMA_SQL_DELETE_SNAPSHOTS "DELETE FROM evs_snapshots WHERE entity_id = $1"
#define SCHEMA_SQL_TAKE_POSITION "SELECT nextval('evs_position_seq')"

/* The store's identity (migrations/005_store_id.sql), as text: one row, one column. */
#define SCHEMA_SQL_STORE_ID "SELECT store_id::text FROM evs_store"
/* A new identity for the store (evstored --new-store-id): one row, two columns, the new id and
 * the one it replaced. */
#define SCHEMA_SQL_NEW_STORE_ID_OLD                                                                \
    "WITH old AS (SELECT store_id FROM evs_store) UPDATE evs_store SET store_id = "                \
    "gen_random_uuid() RETURNING store_id::text, (SELECT store_id::text FROM old)"

/* NOTIFY with the last position written (printf format, one long long). */
#define SCHEMA_SQL_NOTIFY_FMT "NOTIFY " SCHEMA_NOTIFY_CHANNEL ", '%lld'"
#define SCHEMA_SQL_LISTEN "LISTEN " SCHEMA_NOTIFY_CHANNEL

/* The live feed: its start query (one row, one int8 column: the highest position stored, 0 when
 * none), and its page read (prepared as "feed_read"; $1 the position after which to read, int8;
 * $2 the byte bound as in SCHEMA_PAGE, int8; results are event rows), with the page size as
 * each of its three printf arguments. */
#define SCHEMA_SQL_MAX_POSITION "SELECT coalesce(max(position), 0)::bigint FROM evs_events"
#define SCHEMA_FEED_READ_NAME "feed_read"
enum { SCHEMA_FEED_READ_P_AFTER, SCHEMA_FEED_READ_P_BYTES, SCHEMA_FEED_READ_NPARAMS };
#define SCHEMA_SQL_FEED_READ_FMT                                                                   \
    SCHEMA_PAGE("position > $1 ORDER BY position LIMIT %d", "position", "%d", "$2")

/* Migrations (pg/migrations.c). The first round trip, in ordinary mode (several statements):
 * when it may change the schema, takes the migration lock for a transaction; then lists the
 * relations whose name starts with evs_ in the schema tables are created in (one column,
 * "relname"). The second lists the applied versions (one column, "version"), when evs_migrations
 * exists. The third creates evs_migrations if it is missing, runs the missing files, records each
 * with SCHEMA_SQL_MIGRATION_DONE_FMT (printf: the version, the name) and commits. */
#define SCHEMA_SQL_QUIET "SET client_min_messages = warning;\n"
#define SCHEMA_SQL_MIGRATIONS_LOCK                                                                 \
    "BEGIN;\nSELECT pg_advisory_xact_lock(" SCHEMA_STR(SCHEMA_MIGRATIONS_LOCK_KEY) ");\n"
#define SCHEMA_SQL_RELATIONS                                                                       \
    "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "              \
    "WHERE n.nspname = current_schema() AND c.relname LIKE 'evs\\_%'"
#define SCHEMA_MIGRATIONS_TABLE "evs_migrations"
#define SCHEMA_SQL_MIGRATIONS_LIST "SELECT version FROM evs_migrations ORDER BY version"
#define SCHEMA_SQL_MIGRATIONS_CREATE                                                               \
    "CREATE TABLE evs_migrations (\n"                                                              \
    "    version integer PRIMARY KEY,\n"                                                           \
    "    name text NOT NULL,\n"                                                                    \
    "    applied_at timestamptz NOT NULL DEFAULT now());\n"
#define SCHEMA_SQL_MIGRATION_DONE_FMT                                                              \
    ";\nINSERT INTO evs_migrations (version, name) VALUES (%d, '%s');\n"

#endif
