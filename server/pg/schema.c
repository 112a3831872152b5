/* pg/schema.c: the text of every prepared statement, and decoding an event row (see schema.h). */
#include "schema.h"

#include <string.h>

#include "wire.h"

/* ---------------------------------------------------------------- event rows */

void schema_event_from_row(const PGresult *res, int row, evs_event_t *ev) {
    ev->position = (uint64_t)pg_wire_get_i64(res, row, SCHEMA_EVENT_POSITION);
    memcpy(ev->event_id, PQgetvalue(res, row, SCHEMA_EVENT_EVENT_ID), 16);
    ev->entity_id = PQgetvalue(res, row, SCHEMA_EVENT_ENTITY_ID);
    ev->version = (uint64_t)pg_wire_get_i64(res, row, SCHEMA_EVENT_VERSION);
    ev->topic = PQgetvalue(res, row, SCHEMA_EVENT_TOPIC);
    ev->timestamp = pg_wire_get_i64(res, row, SCHEMA_EVENT_STORED_AT);
    ev->payload = (uint8_t *)PQgetvalue(res, row, SCHEMA_EVENT_PAYLOAD);
    ev->payload_len = (size_t)PQgetlength(res, row, SCHEMA_EVENT_PAYLOAD);
    if (!PQgetisnull(res, row, SCHEMA_EVENT_METADATA)) {
        ev->metadata = (uint8_t *)PQgetvalue(res, row, SCHEMA_EVENT_METADATA);
        ev->metadata_len = (size_t)PQgetlength(res, row, SCHEMA_EVENT_METADATA);
    }
    ev->has_event_id = ev->has_version = 1;
}

/* ---------------------------------------------------------------- reader statements */

const schema_statement_t schema_reads[SCHEMA_NREADS] = {
    [SCHEMA_ENTITY_FWD] = {"q_entity_fwd",
                           SCHEMA_PAGE("entity_id = $1 AND version >= $2 "
                                       "ORDER BY version LIMIT $3",
                                       "version", "$3", "$4"),
                           4,
                           {PG_TEXTOID, PG_INT8OID, PG_INT8OID, PG_INT8OID}},
    [SCHEMA_ENTITY_BWD] = {"q_entity_bwd",
                           SCHEMA_PAGE("entity_id = $1 AND version <= $2 "
                                       "ORDER BY version DESC LIMIT $3",
                                       "version DESC", "$3", "$4"),
                           4,
                           {PG_TEXTOID, PG_INT8OID, PG_INT8OID, PG_INT8OID}},
    [SCHEMA_BY_ID] = {"q_by_id", SCHEMA_SELECT_EVENTS "event_id = $1", 1, {PG_UUIDOID}},
    [SCHEMA_READ] = {"q_read",
                     SCHEMA_PAGE("position > $1 ORDER BY position LIMIT $2", "position", "$2",
                                 "$3"),
                     3,
                     {PG_INT8OID, PG_INT8OID, PG_INT8OID}},
    [SCHEMA_READ_TOPIC] = {"q_read_topic",
                           SCHEMA_PAGE("position > $1 AND topic = $4 ORDER BY position LIMIT $2",
                                       "position", "$2", "$3"),
                           4,
                           {PG_INT8OID, PG_INT8OID, PG_INT8OID, PG_TEXTOID}},
    [SCHEMA_READ_TOPICS] = {"q_read_topics",
                            SCHEMA_PAGE("position > $1 AND topic = ANY($4) "
                                        "ORDER BY position LIMIT $2",
                                        "position", "$2", "$3"),
                            4,
                            {PG_INT8OID, PG_INT8OID, PG_INT8OID, PG_TEXTARRAYOID}},
    [SCHEMA_READ_PREFIX] = {"q_read_prefix",
                            SCHEMA_PAGE("position > $1 AND starts_with(entity_id, $4) "
                                        "ORDER BY position LIMIT $2",
                                        "position", "$2", "$3"),
                            4,
                            {PG_INT8OID, PG_INT8OID, PG_INT8OID, PG_TEXTOID}},
    [SCHEMA_READ_TOPIC_PREFIX] = {"q_read_topic_prefix",
                                  SCHEMA_PAGE("position > $1 AND topic = $4 AND "
                                              "starts_with(entity_id, $5) ORDER BY position "
                                              "LIMIT $2",
                                              "position", "$2", "$3"),
                                  5,
                                  {PG_INT8OID, PG_INT8OID, PG_INT8OID, PG_TEXTOID, PG_TEXTOID}},
    [SCHEMA_READ_TOPICS_PREFIX] = {"q_read_topics_prefix",
                                   SCHEMA_PAGE("position > $1 AND topic = ANY($4) AND "
                                               "starts_with(entity_id, $5) ORDER BY position "
                                               "LIMIT $2",
                                               "position", "$2", "$3"),
                                   5,
                                   {PG_INT8OID, PG_INT8OID, PG_INT8OID, PG_TEXTARRAYOID,
                                    PG_TEXTOID}},
    [SCHEMA_PUT_SNAPSHOT] = {"q_put_snapshot",
                             "INSERT INTO evs_snapshots (entity_id, version, topic, stored_at, "
                             "payload) VALUES ($1, $2, $3, (extract(epoch from clock_timestamp()) "
                             "* 1000000)::bigint, $4) ON CONFLICT (entity_id, version) DO UPDATE "
                             "SET topic = excluded.topic, stored_at = excluded.stored_at, "
                             "payload = excluded.payload",
                             4,
                             {PG_TEXTOID, PG_INT8OID, PG_TEXTOID, PG_BYTEAOID}},
    [SCHEMA_GET_SNAPSHOT] = {"q_get_snapshot",
                             "SELECT version, topic, stored_at, payload FROM evs_snapshots "
                             "WHERE entity_id = $1 AND version <= $2 ORDER BY version DESC LIMIT 1",
                             2,
                             {PG_TEXTOID, PG_INT8OID}},
    [SCHEMA_DELETE_SNAPSHOTS] = {"q_delete_snapshots",
                                 SCHEMA_SQL_DELETE_SNAPSHOTS,
                                 1,
                                 {PG_TEXTOID}},
    [SCHEMA_GET_CHECKPOINT] = {"q_get_checkpoint",
                               "SELECT position FROM evs_checkpoints WHERE consumer = $1",
                               1,
                               {PG_TEXTOID}},
    [SCHEMA_CONSUMERS] = {"q_consumers",
                          "SELECT " SCHEMA_SQL_HEAD_VALUE ", c.consumer, c.position, "
                          "coalesce((SELECT expires_at > clock_timestamp() FROM evs_leases AS l "
                          "WHERE l.consumer = c.consumer), false) FROM "
                          "(SELECT 1) AS one LEFT JOIN evs_checkpoints AS c ON true "
                          "ORDER BY c.consumer COLLATE \"C\"",
                          0,
                          {0}},
    [SCHEMA_READ_PARTITION] = {"q_read_partition",
                               SCHEMA_PAGE("position > $1 AND (cardinality($4::text[]) = 0 OR "
                                           "topic = ANY($4)) AND starts_with(entity_id, $5) AND "
                                           "(partition_hash % $6 + $6 + CASE WHEN partition_hash "
                                           "< 0 THEN $8 ELSE 0 END) % $6 = $7 "
                                           "ORDER BY position LIMIT $2",
                                           "position", "$2", "$3"),
                               SCHEMA_READ_PARTITION_NPARAMS,
                               {PG_INT8OID, PG_INT8OID, PG_INT8OID, PG_TEXTARRAYOID, PG_TEXTOID,
                                PG_INT8OID, PG_INT8OID, PG_INT8OID}},
    [SCHEMA_LEASE] = {"q_lease",
                      "INSERT INTO evs_leases AS l (consumer, fence, expires_at) VALUES ($1, 1, "
                      "clock_timestamp() + $3 * interval '1 millisecond') ON CONFLICT (consumer) "
                      "DO UPDATE SET fence = CASE WHEN $2 = 0 THEN l.fence + 1 ELSE l.fence END, "
                      "expires_at = excluded.expires_at WHERE ($2 = 0 AND l.expires_at < "
                      "clock_timestamp()) OR ($2 <> 0 AND l.fence = $2) RETURNING l.fence",
                      3,
                      {PG_TEXTOID, PG_INT8OID, PG_INT8OID}},
    [SCHEMA_LEASE_RELEASE] = {"q_lease_release",
                              "UPDATE evs_leases SET expires_at = '-infinity' WHERE consumer = $1 "
                              "AND fence = $2 RETURNING fence",
                              2,
                              {PG_TEXTOID, PG_INT8OID}},
};

/* ---------------------------------------------------------------- writer statements */

const schema_statement_t schema_writes[SCHEMA_NWRITES] = {
    [SCHEMA_APPEND_LOCK] = {"gc_lock",
                            "SELECT pg_advisory_xact_lock(" SCHEMA_STR(SCHEMA_APPEND_LOCK_KEY) ")",
                            0,
                            {0}},
    [SCHEMA_POSITIONS] = {"gc_positions",
                          "SELECT setval('evs_position_seq', nextval('evs_position_seq') + $1 - 1)",
                          1,
                          {PG_INT8OID}},
    [SCHEMA_CHECK] =
        {"gc_check",
         "SELECT 0::int4, e, (SELECT max(version) FROM evs_events WHERE entity_id = e), "
         "NULL::uuid, NULL::bigint FROM unnest($1::text[]) AS u(e) "
         "UNION ALL "
         "SELECT 1, entity_id, version, event_id, position FROM evs_events "
         "WHERE event_id = ANY($2::uuid[])",
         2,
         {PG_TEXTARRAYOID, PG_UUIDARRAYOID}},
    [SCHEMA_GUARD] = {"gc_guard",
                      "SELECT evs_append_guard($1, $2, $3, $4)",
                      4,
                      {PG_INT8OID, PG_INT8OID, PG_TEXTARRAYOID, PG_UUIDARRAYOID}},
    [SCHEMA_INSERT] = {"gc_insert",
                       "INSERT INTO evs_events (position, event_id, entity_id, version, topic, "
                       "stored_at, payload, metadata, partition_hash) SELECT p, i, e, v, t, $6, "
                       "d, m, h FROM unnest($1::bigint[], $2::uuid[], $3::text[], $4::bigint[], "
                       "$5::text[], $7::bytea[], $8::bytea[], $9::bigint[]) "
                       "AS u(p, i, e, v, t, d, m, h)",
                       SCHEMA_INSERT_NPARAMS,
                       {PG_INT8ARRAYOID, PG_UUIDARRAYOID, PG_TEXTARRAYOID, PG_INT8ARRAYOID,
                        PG_TEXTARRAYOID, PG_INT8OID, PG_BYTEAARRAYOID, PG_BYTEAARRAYOID,
                        PG_INT8ARRAYOID}},
    [SCHEMA_RAISE_SIZE] =
        {"gc_raise_size",
         "UPDATE evs_event_size SET max_data_bytes = $1 WHERE max_data_bytes < $1",
         1,
         {PG_INT8OID}},
    [SCHEMA_CKPT_READ] = {"gc_ckpt_read",
                          "SELECT 0, consumer, position FROM evs_checkpoints "
                          "WHERE consumer = ANY($1::text[]) UNION ALL SELECT 1, consumer, fence "
                          "FROM (SELECT consumer, fence FROM evs_leases WHERE consumer = "
                          "ANY($1::text[]) FOR SHARE) AS l",
                          1,
                          {PG_TEXTARRAYOID}},
    [SCHEMA_CKPT_UPSERT] = {"gc_ckpt_upsert",
                            "INSERT INTO evs_checkpoints (consumer, position) "
                            "SELECT * FROM unnest($1::text[], $2::bigint[]) "
                            "ON CONFLICT (consumer) DO UPDATE SET position = excluded.position, "
                            "updated_at = now()",
                            2,
                            {PG_TEXTARRAYOID, PG_INT8ARRAYOID}},
    [SCHEMA_CKPT_DELETE] = {"gc_ckpt_delete",
                            "DELETE FROM evs_checkpoints WHERE consumer = ANY($1::text[])",
                            1,
                            {PG_TEXTARRAYOID}},
    [SCHEMA_CKPT_ADVANCE] = {"gc_ckpt_advance",
                             "SELECT evs_tracking_advance($1, $2, $3, $4)",
                             SCHEMA_CKPT_ADVANCE_NPARAMS,
                             {PG_TEXTARRAYOID, PG_INT8ARRAYOID, PG_INT8ARRAYOID, PG_INT8ARRAYOID}},
};
