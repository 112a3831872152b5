-- 006_event_size.sql: a bound on the size of every event stored, so that a read can tell before
-- it runs whether its byte bound can cut it.
--
-- A read is bounded in bytes as well as in count (server/pg/schema.h, SCHEMA_PAGE): a running
-- sum of the event sizes over the page, a window that costs about a microsecond per row. When
-- limit x (this bound + the daemon's fixed overhead per event) is within the byte bound no page
-- can reach it, so the read skips the window; each read asks this table in the same statement
-- (the same snapshot as the rows it returns).
--
-- max_data_bytes counts an event as the daemon's size does less its fixed overhead: the bytes of
-- entity_id, topic, payload and metadata. Invariant: every event stored is at most that large.
-- It only ever grows (deleted events leave it as it was; a bound too high only takes the window
-- more often), and it starts at 1024 at least. Two ways keep it:
--   - evstored's writer sets evstore.event_size_kept = on in its session and raises it itself,
--     in the append's transaction, when a group holds an event larger than it knows stored;
--   - any other writer (psql, a tool, an evstored older than this migration) fires the trigger
--     below for each event over 1024 bytes, which raises it in that writer's transaction. A
--     smaller event is within the starting value and fires nothing.
-- The append lock is taken first, before the trigger's DDL locks evs_events: an append of a
-- running daemon (which takes the append lock, then inserts) then finishes before, or waits
-- for this migration, and never deadlocks with it; and no append falls between the starting
-- value computed below and the trigger. One row, guarded by the primary key on a constant.
SELECT pg_advisory_xact_lock(7433000002);

CREATE TABLE evs_event_size (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    max_data_bytes bigint NOT NULL CHECK (max_data_bytes >= 1024)
);

CREATE FUNCTION evs_raise_event_size() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    size bigint := octet_length(NEW.entity_id) + octet_length(NEW.topic) +
                   octet_length(NEW.payload) + coalesce(octet_length(NEW.metadata), 0);
BEGIN
    UPDATE evs_event_size SET max_data_bytes = size WHERE max_data_bytes < size;
    RETURN NULL;
END
$$;

CREATE TRIGGER evs_events_size AFTER INSERT OR UPDATE ON evs_events FOR EACH ROW
WHEN (current_setting('evstore.event_size_kept', true) IS DISTINCT FROM 'on'
      AND octet_length(NEW.entity_id) + octet_length(NEW.topic) + octet_length(NEW.payload) +
          coalesce(octet_length(NEW.metadata), 0) > 1024)
EXECUTE FUNCTION evs_raise_event_size();

INSERT INTO evs_event_size (max_data_bytes)
SELECT greatest(1024, coalesce(max(octet_length(entity_id) + octet_length(topic) +
                                   octet_length(payload) + coalesce(octet_length(metadata), 0)), 0))
FROM evs_events;
