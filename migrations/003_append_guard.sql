-- 003_append_guard.sql: the one-round-trip append of a group whose decisions the daemon made
-- from what it already knew (docs/architecture.md, "The fast path").
--
-- evstored keeps, per writer connection, the next version of the entities it has seen, valid as
-- of the value evs_position_seq had after its own last COMMIT. Every transaction that changes
-- evs_events (append and delete-entity, of every daemon) takes pg_advisory_xact_lock(<append
-- key>) and then takes at least one position from the sequence, so under that lock "the
-- sequence still holds the value after my last commit" proves that nobody changed evs_events
-- since. The daemon then decides a group in C without reading anything, and sends BEGIN, the
-- lock, this guard, the INSERT and COMMIT in one pipeline.
--
-- The guard runs under the lock and either takes the group's block of positions (returning its
-- last position, expected_last + n) or raises, which aborts the transaction before anything is
-- written; the daemon rolls back and decides the group again the slow way (reading the latest
-- versions). SQLSTATEs:
--   EVS01  the sequence moved: another writer (or a rolled-back transaction) took positions
--   EVS02  an entity the daemon took for new (it had never seen it) has events
--   EVS03  one of the group's client-chosen event ids is already stored
CREATE FUNCTION evs_append_guard(expected_last bigint, n bigint, new_entities text[],
                                 ids uuid[]) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    last bigint;
    called boolean;
BEGIN
    SELECT last_value, is_called INTO last, called FROM evs_position_seq;
    IF last <> expected_last OR NOT called THEN
        RAISE EXCEPTION 'evstore: the position sequence moved (% -> %)', expected_last, last
            USING ERRCODE = 'EVS01';
    END IF;
    IF cardinality(new_entities) > 0
       AND EXISTS (SELECT 1 FROM evs_events WHERE entity_id = ANY (new_entities)) THEN
        RAISE EXCEPTION 'evstore: an entity taken for new has events' USING ERRCODE = 'EVS02';
    END IF;
    IF cardinality(ids) > 0 AND EXISTS (SELECT 1 FROM evs_events WHERE event_id = ANY (ids)) THEN
        RAISE EXCEPTION 'evstore: an event id is already stored' USING ERRCODE = 'EVS03';
    END IF;
    RETURN setval('evs_position_seq', expected_last + n);
END
$$;
