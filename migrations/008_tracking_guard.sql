-- 008_tracking_guard.sql: the fast path for groups whose appends carry trackings
-- (docs/architecture.md, "Consumers: checkpoints in commit order").
--
-- A group decided from the daemon's cache (003_append_guard.sql) may carry appends with a
-- tracking when the daemon assumes each of their consumers' stored checkpoint is below every
-- position the group tracks for it, and the fences the appends carry are the leases' current
-- ones. This guard proves that assumption under the append lock, where every checkpoint write of
-- every daemon happens, or raises EVS04 before anything is written; the daemon rolls back and
-- decides the group the slow way (reading the checkpoints), so a conflicting tracking still
-- fails only its own request. It locks the consumers' leases FOR SHARE, as the slow path's read
-- does, so a takeover waits for the group in flight.
--   consumers  one entry per consumer of the group
--   positions  the lowest position the group tracks for it
--   fences     the fence its appends carry, 0 when none does
CREATE FUNCTION evs_tracking_guard(consumers text[], positions bigint[], fences bigint[])
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM evs_leases WHERE consumer = ANY (consumers) FOR SHARE;
    IF EXISTS (SELECT 1 FROM unnest(consumers, positions) AS t(consumer, position)
               JOIN evs_checkpoints c USING (consumer) WHERE c.position >= t.position) THEN
        RAISE EXCEPTION 'evstore: a tracked consumer is at or past its tracking'
            USING ERRCODE = 'EVS04';
    END IF;
    IF EXISTS (SELECT 1 FROM unnest(consumers, fences) AS t(consumer, fence)
               WHERE t.fence <> 0 AND NOT EXISTS (SELECT 1 FROM evs_leases l
                   WHERE l.consumer = t.consumer AND l.fence = t.fence)) THEN
        RAISE EXCEPTION 'evstore: a tracked consumer''s lease has another fence'
            USING ERRCODE = 'EVS04';
    END IF;
END
$$;
