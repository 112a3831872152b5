-- anchor-64.sql: the statements evstored's writer sends for one group of 64 events on its fast
-- path (server/pg/group_commit.c, send_fast), for pgbench -f: BEGIN, the append lock, the guard
-- (which takes the block of positions), one INSERT of 64 rows, the doorbell and COMMIT, sent in
-- one pipeline (one round trip, as the writer sends them). One client running it in a loop, with
-- no daemon, is what this design can do on this machine: the daemon's 64 x 1 figure over it is
-- the efficiency of everything around the SQL.
--
-- Differences from the daemon, all small: the guard reads the sequence's value itself (the daemon
-- knows it), the INSERT takes the block's last position from currval (which the guard's setval
-- set), the rows are built from generate_series instead of arrays bound as parameters,
-- event ids grow with the position (as the daemon's time-ordered ids do) and pg_notify is the
-- NOTIFY. Entities 'anchor-0' .. 'anchor-4095' take versions in turn; payloads are 100 bytes.
\startpipeline
BEGIN;
SELECT pg_advisory_xact_lock(7433000002);
SELECT evs_append_guard((SELECT last_value FROM evs_position_seq), 64, '{}'::text[], '{}'::uuid[]);
INSERT INTO evs_events (position, event_id, entity_id, version, topic, stored_at, payload, metadata) SELECT p, ('00000000-0000-7000-8000-' || lpad(to_hex(p), 12, '0'))::uuid, 'anchor-' || (p % 4096), p / 4096, 'bench.Appended', 0, decode(repeat('78', 100), 'hex'), NULL FROM generate_series(currval('evs_position_seq') - 63, currval('evs_position_seq')) AS p;
SELECT pg_notify('evstore_events', currval('evs_position_seq')::text);
COMMIT;
\endpipeline
