-- 007_consumers.sql: durable consumers (docs/protocol.md, "Consumers").
--
-- A consumer's checkpoint is the last position of the global log it has processed. Every write
-- of a checkpoint (the checkpoint and delete-checkpoint operations, an append with a tracking)
-- happens inside a group commit transaction, under the append lock: it is read and decided
-- under the lock and written in the same transaction as the events it goes with, so a tracking
-- and the events commit together or not at all, and two daemons can never both accept the same
-- position for one consumer (docs/architecture.md, "Consumers").
CREATE TABLE evs_checkpoints (
    consumer text PRIMARY KEY,
    position bigint NOT NULL CHECK (position >= 0),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Partitions: an event is in partition i of n when the FNV-1a 64 hash of its entity id's bytes,
-- taken as an unsigned 64-bit number, is i modulo n (docs/protocol.md, "Partitions"). The hash
-- is stored with each event (as a bigint holding the same 64 bits), so that a partitioned read
-- filters in the query and every page it returns is full while matching events remain. The
-- daemon computes it in C for the events it inserts; evs_fnv1a64 is the same function in SQL,
-- for the events stored before this migration (and for anyone who inserts by hand).
CREATE FUNCTION evs_fnv1a64(s text) RETURNS bigint
LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
    b bytea := textsend(s);
    h numeric := 14695981039346656037;
    low int;
BEGIN
    FOR i IN 0 .. length(b) - 1 LOOP
        low := mod(h, 256)::int;
        h := h - low + (low # get_byte(b, i));
        h := mod(h * 1099511628211, 18446744073709551616);
    END LOOP;
    IF h >= 9223372036854775808 THEN
        h := h - 18446744073709551616;
    END IF;
    RETURN h::bigint;
END
$$;
ALTER TABLE evs_events ADD COLUMN partition_hash bigint;
UPDATE evs_events SET partition_hash = evs_fnv1a64(entity_id);
ALTER TABLE evs_events ALTER COLUMN partition_hash SET NOT NULL;
-- Rows inserted without the hash (by hand, or by a writer that predates this migration) get it
-- here; the daemon's own INSERT gives it, so the trigger's condition spares it the function.
CREATE FUNCTION evs_events_partition_hash() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.partition_hash := evs_fnv1a64(NEW.entity_id);
    RETURN NEW;
END
$$;
CREATE TRIGGER evs_events_partition_hash BEFORE INSERT ON evs_events FOR EACH ROW
    WHEN (NEW.partition_hash IS NULL) EXECUTE FUNCTION evs_events_partition_hash();

-- Leases: at most one subscription holds a consumer at a time, across every daemon. A lease
-- expires unless its holder renews it (a daemon that dies loses it after its time to live), and
-- every taking of it increases fence, the fencing number: a holder that lost its lease and
-- still writes a checkpoint carries an old fence, which the group commit refuses (it reads the
-- fences of the group's consumers under the append lock, FOR SHARE, so a takeover waits for the
-- group in flight). A released lease expires at once; its row stays, so that fence never goes
-- back.
CREATE TABLE evs_leases (
    consumer text PRIMARY KEY,
    fence bigint NOT NULL,
    expires_at timestamptz NOT NULL
);
