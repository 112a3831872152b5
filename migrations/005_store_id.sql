-- 005_store_id.sql: the store's identity, a UUID made once, when the schema is created (or, on a
-- database made before this migration, when it is first applied; the events already stored keep
-- their positions).
--
-- Clients remember the store_id that ping and subscribe return together with the positions they
-- have read. A position means nothing in another store: a client that resumes "after 2" against
-- a store whose id differs (a database recreated, a daemon pointed elsewhere) starts from that
-- store's beginning instead of skipping its first events. One row, guarded by the primary key on
-- a constant, so that no second identity can ever be inserted.
CREATE TABLE evs_store (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    store_id uuid NOT NULL
);
INSERT INTO evs_store (store_id) VALUES (gen_random_uuid());
