-- 001_events.sql: the events table, its position sequence and its indexes.
--
-- Every append transaction of every evstored takes pg_advisory_xact_lock(<evstore append key>)
-- before it takes positions, so positions are handed out and committed in the same order across
-- any number of daemons on this database (docs/architecture.md). Positions come from a
-- sequence (not max(position) + 1) so that the positions of deleted events are never reused.
CREATE SEQUENCE evs_position_seq AS bigint;

CREATE TABLE evs_events (
    -- The global position: > 0, increasing in commit order, gaps allowed. The primary key is
    -- the index of read-all (position > $after ORDER BY position LIMIT n) and of subscription
    -- catch-up. Assigned by the daemon from evs_position_seq under the append lock, so no default.
    position   bigint      NOT NULL PRIMARY KEY,
    -- uuid: 16 bytes instead of 37 of text; unique because an event id names one event for good
    -- (get-by-id and the idempotent-retry check look it up).
    event_id   uuid        NOT NULL UNIQUE,
    -- text rather than varchar(255): the daemon checks the 1..255-byte UTF-8 rule itself.
    entity_id  text        NOT NULL,
    version    bigint      NOT NULL CHECK (version >= 0),
    topic      text        NOT NULL,
    -- Microseconds since the Unix epoch, exactly as the protocol returns it: no conversion on
    -- the way in or out.
    stored_at  bigint      NOT NULL,
    payload    bytea       NOT NULL,
    -- One msgpack map as raw bytes, NULL when the event has none.
    metadata   bytea,
    -- get-by-entity (forwards and backwards) and the "latest version of this entity" lookup of
    -- every append are range scans of this index; it also rejects a second event at a version.
    CONSTRAINT evs_events_entity_version UNIQUE (entity_id, version)
);

-- get-by-topic: position > $after for one topic, in position order.
CREATE INDEX evs_events_topic_position ON evs_events (topic, position);
