-- mq-outbox schema version 2 (PostgreSQL): who holds a row's lease.
-- lease_owner: OutboxConfig::owner of the dispatcher that claimed the row
-- (NULL when unset: such a lease cannot be told apart and waits);
-- lease_instance: a random id of the Outbox::open that claimed it. A
-- dispatcher starting under the same owner but a different instance knows the
-- lease belongs to its own previous run, which is dead, and takes the row
-- back at once instead of waiting for the lease to expire. Both are NULL
-- when no claim is live (new rows, rows backing off after a failed attempt).
ALTER TABLE mq_outbox ADD COLUMN lease_owner TEXT;
ALTER TABLE mq_outbox ADD COLUMN lease_instance BIGINT;
