-- mq-outbox schema version 1 (SQLite).
-- AUTOINCREMENT: a sequence is never reused, even after the newest row is
-- deleted; the broker dedupes on (producer id, seq), so a reused seq would be
-- answered "Duplicate" and the new message silently dropped.
CREATE TABLE mq_outbox (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    topic           TEXT     NOT NULL,
    headers         BLOB     NOT NULL,
    payload         BLOB     NOT NULL,
    status          SMALLINT NOT NULL DEFAULT 0,   -- 0 pending, 1 confirmed, 2 failed
    attempts        INTEGER  NOT NULL DEFAULT 0,   -- counted when claimed
    next_attempt_at BIGINT   NOT NULL,             -- unix ms; the claim's lease
    created_at      BIGINT   NOT NULL,
    updated_at      BIGINT   NOT NULL,
    last_error      TEXT
);
CREATE INDEX mq_outbox_status_seq ON mq_outbox (status, seq);
CREATE INDEX mq_outbox_status_updated ON mq_outbox (status, updated_at);

CREATE TABLE mq_outbox_failed (
    seq        INTEGER PRIMARY KEY,
    topic      TEXT    NOT NULL,
    headers    BLOB    NOT NULL,
    payload    BLOB    NOT NULL,
    attempts   INTEGER NOT NULL,
    last_error TEXT,
    failed_at  BIGINT  NOT NULL
);
