-- 009_tracking_advance.sql: the fast path for groups whose appends carry trackings, in one
-- statement (docs/architecture.md, "Consumers: checkpoints in commit order").
--
-- 008's evs_tracking_guard proved the fast path's assumption (each tracked consumer's stored
-- checkpoint is below every position the group tracks for it, and the fences the appends carry
-- are the leases' current ones) and the group then wrote the checkpoints with a second statement,
-- an upsert: two passes over the same rows. evs_tracking_advance does both in one pass: it moves
-- each consumer the group moves only where its stored checkpoint is below the lowest position
-- the group tracks for it, inserts the consumers that have none, and raises EVS04 when any
-- consumer was not as assumed; the daemon rolls the group back and decides it the slow way
-- (reading the checkpoints), so a conflicting tracking still fails only its own request. It runs
-- under the append lock, where every checkpoint write of every daemon happens, before the append
-- guard (a refused group takes no positions), and locks the consumers' leases FOR SHARE, as the
-- slow path's read does, so a takeover waits for the group in flight.
--   consumers  one entry per consumer of the group
--   lowest     the lowest position the group tracks for it
--   positions  its checkpoint once the group commits, or -1 when the group does not move it (its
--              tracked appends were all refused for another reason): then it is only checked
--   fences     the fence its appends carry, 0 when none does
CREATE FUNCTION evs_tracking_advance(consumers text[], lowest bigint[], positions bigint[],
                                     fences bigint[])
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    moving bigint := (SELECT count(*) FROM unnest(positions) AS p WHERE p >= 0);
    updated bigint;
    inserted bigint := 0;
BEGIN
    PERFORM 1 FROM evs_leases WHERE consumer = ANY (consumers) FOR SHARE;
    IF EXISTS (SELECT 1 FROM unnest(consumers, fences) AS t(consumer, fence)
               WHERE t.fence <> 0 AND NOT EXISTS (SELECT 1 FROM evs_leases l
                   WHERE l.consumer = t.consumer AND l.fence = t.fence)) THEN
        RAISE EXCEPTION 'evstore: a tracked consumer''s lease has another fence'
            USING ERRCODE = 'EVS04';
    END IF;
    UPDATE evs_checkpoints AS c SET position = t.position, updated_at = now()
        FROM unnest(consumers, lowest, positions) AS t(consumer, low, position)
        WHERE c.consumer = t.consumer AND t.position >= 0 AND c.position < t.low;
    GET DIAGNOSTICS updated = ROW_COUNT;
    IF updated < moving THEN
        -- The consumers not moved have no checkpoint yet, or one at or past their tracking.
        INSERT INTO evs_checkpoints (consumer, position)
            SELECT t.consumer, t.position FROM unnest(consumers, positions) AS t(consumer, position)
            WHERE t.position >= 0
            ON CONFLICT (consumer) DO NOTHING;
        GET DIAGNOSTICS inserted = ROW_COUNT;
    END IF;
    IF updated + inserted < moving OR (-1 = ANY (positions) AND EXISTS (
           SELECT 1 FROM unnest(consumers, lowest, positions) AS t(consumer, low, position)
           JOIN evs_checkpoints c USING (consumer) WHERE t.position < 0 AND c.position >= t.low))
    THEN
        RAISE EXCEPTION 'evstore: a tracked consumer is at or past its tracking'
            USING ERRCODE = 'EVS04';
    END IF;
END
$$;

-- The guard of 008 and the upsert after it are no longer sent by the daemon.
DROP FUNCTION IF EXISTS evs_tracking_guard(text[], bigint[], bigint[]);
