-- mq-outbox schema version 1 (PostgreSQL).
-- BIGSERIAL: a sequence is never reused; the broker dedupes on
-- (producer id, seq), so a reused seq would be answered "Duplicate" and the
-- new message silently dropped. Gaps (rolled back inserts) are harmless.
CREATE TABLE mq_outbox (
    seq             BIGSERIAL PRIMARY KEY,
    topic           TEXT     NOT NULL,
    headers         BYTEA    NOT NULL,
    payload         BYTEA    NOT NULL,
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
    seq        BIGINT  PRIMARY KEY,
    topic      TEXT    NOT NULL,
    headers    BYTEA   NOT NULL,
    payload    BYTEA   NOT NULL,
    attempts   INTEGER NOT NULL,
    last_error TEXT,
    failed_at  BIGINT  NOT NULL
);
