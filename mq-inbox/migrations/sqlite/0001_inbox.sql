-- mq-inbox schema version 1 (SQLite).
-- Sequences are stored order-preserving as signed integers:
-- stored = seq - 2^63 (seq XOR the sign bit), so u64 order is i64 order and
-- seq + 1 is stored + 1. Producer ids are stored bit-for-bit as i64.
--
-- One row per producer: the row every mark of that producer updates first,
-- so marks of one producer are serialised by the database.
CREATE TABLE mq_inbox_producers (
    producer    BIGINT PRIMARY KEY,
    last_active BIGINT NOT NULL,            -- unix ms of the last mark
    ranges      BIGINT NOT NULL DEFAULT 0   -- rows in mq_inbox_ranges
);
CREATE INDEX mq_inbox_producers_active ON mq_inbox_producers (last_active);

-- Processed sequences of each producer as disjoint, non-adjacent, inclusive
-- ranges; a contiguous run of any length is one row.
CREATE TABLE mq_inbox_ranges (
    producer  BIGINT NOT NULL,
    start_seq BIGINT NOT NULL,
    end_seq   BIGINT NOT NULL,
    PRIMARY KEY (producer, start_seq)
);

-- Ranges and producers deleted by the retention rule, over all processes.
INSERT INTO mq_inbox_meta (name, value) VALUES ('forgotten', 0);
