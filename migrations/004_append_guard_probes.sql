-- 004_append_guard_probes.sql: evs_append_guard (003) looks each entity and event id up with
-- its own index probe.
--
-- 003 asked "EXISTS (SELECT 1 FROM evs_events WHERE entity_id = ANY (new_entities))". The writer
-- plans generically (plan_cache_mode = force_generic_plan, which PL/pgSQL's plans follow too),
-- and a generic plan made while evs_events is empty is a sequential scan that compares every row
-- with every array element; it stays cached as the table grows, and a group of 500 unseen
-- entities then held the append lock for seconds. Each probe below is a single-row lookup in a
-- unique index (the same shape as the slow path's check), which every plan uses.
CREATE OR REPLACE FUNCTION evs_append_guard(expected_last bigint, n bigint, new_entities text[],
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
    IF cardinality(new_entities) > 0 AND EXISTS (
            SELECT 1 FROM unnest(new_entities) AS u(e)
            WHERE (SELECT max(version) FROM evs_events WHERE entity_id = u.e) IS NOT NULL) THEN
        RAISE EXCEPTION 'evstore: an entity taken for new has events' USING ERRCODE = 'EVS02';
    END IF;
    IF cardinality(ids) > 0 AND EXISTS (
            SELECT 1 FROM unnest(ids) AS u(i)
            WHERE (SELECT position FROM evs_events WHERE event_id = u.i) IS NOT NULL) THEN
        RAISE EXCEPTION 'evstore: an event id is already stored' USING ERRCODE = 'EVS03';
    END IF;
    RETURN setval('evs_position_seq', expected_last + n);
END
$$;
