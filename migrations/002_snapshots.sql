-- 002_snapshots.sql: entity snapshots (put-snapshot, get-snapshot).
--
-- Snapshots are not events: no position, no commit order, no lock. One row per entity and
-- version; a second put at the same version replaces the first. get-snapshot asks for the
-- greatest version <= N of one entity: a backwards range scan of the primary key.
-- delete-entity removes an entity's snapshots in the same transaction as its events.
CREATE TABLE evs_snapshots (
    entity_id  text   NOT NULL,
    version    bigint NOT NULL CHECK (version >= 0),
    topic      text   NOT NULL,
    stored_at  bigint NOT NULL, -- microseconds since the Unix epoch
    payload    bytea  NOT NULL,
    PRIMARY KEY (entity_id, version)
);
