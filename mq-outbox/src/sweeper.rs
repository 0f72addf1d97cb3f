//! The sweeper's SQL: claiming rows that are due (new, or whose lease or
//! backoff expired) and moving rows that used up their attempts to the
//! failure table, with the alert.
//!
//! A claim is one short write transaction and holds no lock afterwards:
//! `attempts = attempts + 1` (counted at claim time, so an attempt cut short
//! by a crash still counts) and `next_attempt_at = now + lease`. Until that
//! lease expires no other dispatcher, in this or another process, claims the
//! row. On Postgres the candidate rows are picked with
//! `FOR UPDATE SKIP LOCKED`, so concurrent claimers never wait for each
//! other and never get the same row; on SQLite `BEGIN IMMEDIATE` serialises
//! claimers.

use crate::admin::{failed_row, FailedTuple, FAILED_COLUMNS};
use crate::outbox::{read_conn, write_tx, Db, Outbox};

/// A claimed row: `(seq, topic, headers, payload, attempts)`.
pub(crate) type ClaimedTuple = (i64, String, Vec<u8>, Vec<u8>, i32);

/// Copies row `$seq` (just set to status 2) into the failure table and
/// returns the copy.
macro_rules! copy_failed {
    ($tx:ident, $seq:expr, $now:expr) => {{
        let sql = format!(
            "INSERT INTO mq_outbox_failed ({FAILED_COLUMNS}) \
             SELECT seq, topic, headers, payload, attempts, last_error, $1 \
             FROM mq_outbox WHERE seq = $2 \
             ON CONFLICT (seq) DO UPDATE SET attempts = excluded.attempts, \
             last_error = excluded.last_error, failed_at = excluded.failed_at \
             RETURNING {FAILED_COLUMNS}"
        );
        let t: FailedTuple = sqlx::query_as(&sql)
            .bind($now)
            .bind($seq)
            .fetch_one(&mut *$tx)
            .await?;
        t
    }};
}

/// Claims up to `limit` due rows, oldest first, recording this outbox's
/// owner and instance with the lease.
pub(crate) async fn claim(
    outbox: &Outbox,
    limit: u32,
    lease_until: i64,
    now: i64,
) -> Result<Vec<ClaimedTuple>, sqlx::Error> {
    let max_attempts = i32::try_from(outbox.config().max_attempts).unwrap_or(i32::MAX);
    let mut rows: Vec<ClaimedTuple> = write_tx!(outbox.db(), |tx, lock| {
        let sql = format!(
            "UPDATE mq_outbox SET attempts = attempts + 1, next_attempt_at = $1, updated_at = $2, \
             lease_owner = $5, lease_instance = $6 \
             WHERE seq IN (SELECT seq FROM mq_outbox WHERE status = 0 AND attempts < $3 \
             AND (attempts = 0 OR next_attempt_at <= $2) ORDER BY seq LIMIT $4{lock}) \
             RETURNING seq, topic, headers, payload, attempts"
        );
        sqlx::query_as(&sql)
            .bind(lease_until)
            .bind(now)
            .bind(max_attempts)
            .bind(i64::from(limit))
            .bind(outbox.inner.owner.as_deref())
            .bind(outbox.inner.instance)
            .fetch_all(&mut *tx)
            .await?
    });
    rows.sort_unstable_by_key(|r| r.0);
    Ok(rows)
}

/// Makes due at once every pending row whose live lease was taken by an
/// earlier run of this owner (same owner, another instance): that run is
/// dead, since an owner name is unique among live processes. Returns how
/// many rows were taken back. Nothing when the owner is unknown.
pub(crate) async fn take_back_own_leases(outbox: &Outbox, now: i64) -> Result<u64, sqlx::Error> {
    let Some(owner) = outbox.inner.owner.as_deref() else {
        return Ok(0);
    };
    let n = write_tx!(outbox.db(), |tx, _lock| {
        sqlx::query(
            "UPDATE mq_outbox SET next_attempt_at = $1, lease_owner = NULL, lease_instance = NULL \
             WHERE status = 0 AND lease_owner = $2 AND lease_instance <> $3 \
             AND next_attempt_at > $1",
        )
        .bind(now)
        .bind(owner)
        .bind(outbox.inner.instance)
        .execute(&mut *tx)
        .await?
        .rows_affected()
    });
    Ok(n)
}

/// Pending rows that are not due because someone else's lease (another
/// dispatcher, or an earlier run that cannot be identified) is live:
/// `(rows, earliest expiry, latest expiry)` in unix ms.
pub(crate) async fn leased_elsewhere(
    outbox: &Outbox,
    now: i64,
) -> Result<(i64, Option<i64>, Option<i64>), sqlx::Error> {
    let row: (i64, Option<i64>, Option<i64>) = read_conn!(outbox.db(), |conn| {
        sqlx::query_as(
            "SELECT COUNT(*), MIN(next_attempt_at), MAX(next_attempt_at) FROM mq_outbox \
             WHERE status = 0 AND attempts > 0 AND next_attempt_at > $1 \
             AND (lease_instance IS NULL OR lease_instance <> $2) \
             AND (lease_instance IS NOT NULL OR last_error IS NULL)",
        )
        .bind(now)
        .bind(outbox.inner.instance)
        .fetch_one(&mut *conn)
        .await?
    });
    Ok(row)
}

/// Moves up to `limit` pending rows whose last attempt's lease or backoff
/// expired and that have no attempts left to the failure table.
pub(crate) async fn fail_exhausted(
    outbox: &Outbox,
    now: i64,
    limit: u32,
) -> Result<Vec<FailedTuple>, sqlx::Error> {
    let max_attempts = i32::try_from(outbox.config().max_attempts).unwrap_or(i32::MAX);
    let failed = write_tx!(outbox.db(), |tx, lock| {
        let sql = format!(
            "UPDATE mq_outbox SET status = 2, updated_at = $1 \
             WHERE seq IN (SELECT seq FROM mq_outbox WHERE status = 0 AND attempts >= $2 \
             AND next_attempt_at <= $1 ORDER BY seq LIMIT $3{lock}) RETURNING seq"
        );
        let seqs: Vec<i64> = sqlx::query_scalar(&sql)
            .bind(now)
            .bind(max_attempts)
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await?;
        let mut out = Vec::with_capacity(seqs.len());
        for seq in seqs {
            out.push(copy_failed!(tx, seq, now));
        }
        out
    });
    Ok(failed)
}

/// Marks one claimed row failed with `error`, if it is still pending under
/// this claim (`attempts` unchanged). Returns the failure-table copy.
pub(crate) async fn fail_row(
    db: &Db,
    seq: i64,
    attempts: i32,
    error: &str,
    now: i64,
) -> Result<Option<FailedTuple>, sqlx::Error> {
    let row = write_tx!(db, |tx, _lock| {
        let r = sqlx::query(
            "UPDATE mq_outbox SET status = 2, last_error = $1, updated_at = $2 \
             WHERE seq = $3 AND status = 0 AND attempts = $4",
        )
        .bind(error)
        .bind(now)
        .bind(seq)
        .bind(attempts)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() == 1 {
            Some(copy_failed!(tx, seq, now))
        } else {
            None
        }
    });
    Ok(row)
}

/// Logs each newly failed row and calls the `on_failed` alert.
pub(crate) fn alert(outbox: &Outbox, rows: Vec<FailedTuple>) {
    if rows.is_empty() {
        return;
    }
    for t in rows {
        let seq = t.0;
        match failed_row(outbox.producer_id(), t) {
            Ok(row) => {
                tracing::error!(id = %row.id, topic = %row.topic, attempts = row.attempts,
                    last_error = row.last_error.as_deref().unwrap_or("lease expired"),
                    "outbox row failed; waiting for a person (mq-outbox requeue)");
                if let Some(f) = &outbox.config().on_failed {
                    f(row);
                }
            }
            Err(e) => tracing::error!(seq, error = %e, "outbox row failed and is corrupt"),
        }
    }
    outbox.settled();
}

/// One sweep: fail exhausted rows (in batches) and alert.
pub(crate) async fn sweep(outbox: &Outbox, now: i64) -> Result<usize, sqlx::Error> {
    let limit = outbox.config().batch_size;
    let mut total = 0;
    loop {
        let rows = fail_exhausted(outbox, now, limit).await?;
        let n = rows.len();
        total += n;
        alert(outbox, rows);
        if n < limit as usize {
            return Ok(total);
        }
    }
}
