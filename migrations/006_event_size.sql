-- 006_event_size.sql: the size of the largest event ever stored, so that a read can tell before
-- it runs whether its byte bound can cut it.
--
-- A read is bounded in bytes as well as in count (docs/architecture.md, "Reads"): a running
-- sum of the event sizes over the page, a window that costs about a microsecond per row. When
-- limit x (the largest event size) is within the byte bound no page can reach the bound, so the
-- read takes the plain plan instead; each read asks this table in the same statement (the same
-- snapshot as the rows it returns), so it never trusts a value older than the events it reads.
--
-- max_data_bytes counts an event as the daemon's size does less its fixed overhead: the bytes of
-- entity_id, topic, payload and metadata. It only ever grows (a deleted entity's events leave it
-- as it was; a bound that is too high only takes the windowed plan more often). Every append
-- transaction whose group holds an event larger than the writer last saw raises it, under the
-- append lock and in the same transaction as the events; the value below is computed under the
-- append lock too, so no append of a daemon that maintains it falls between. One row, guarded by
-- the primary key on a constant.
CREATE TABLE evs_event_size (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    max_data_bytes bigint NOT NULL CHECK (max_data_bytes >= 0)
);
SELECT pg_advisory_xact_lock(7433000002);
INSERT INTO evs_event_size (max_data_bytes)
SELECT coalesce(max(octet_length(entity_id) + octet_length(topic) + octet_length(payload) +
                    coalesce(octet_length(metadata), 0)), 0)
FROM evs_events;
