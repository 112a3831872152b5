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
