//! Looking at and repairing the outbox: failed rows, requeue, purge, counts.
//! The `mq-outbox` binary is a thin command line over these calls.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use mq_protocol::{Headers, MessageId};

use crate::enqueue::decode_headers;
use crate::error::AdminError;
use crate::outbox::{now_ms, read_conn, write_tx, Outbox};

/// A row that used up its attempts (or was rejected permanently), as kept
/// in the failure table `mq_outbox_failed`. Passed to the
/// [`OnFailed`](crate::OnFailed) alert and returned by
/// [`Outbox::list_failed`].
///
/// # Examples
///
/// ```
/// # fn show(row: mq_outbox::FailedRow) {
/// println!("{} on {} failed after {} attempts: {}", row.id, row.topic,
///          row.attempts, row.last_error.as_deref().unwrap_or("lease expired"));
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FailedRow {
    /// The row's sequence in `mq_outbox`; what [`Outbox::requeue`] takes.
    pub seq: u64,
    /// The message ID every attempt carried.
    pub id: MessageId,
    /// Destination topic.
    pub topic: String,
    /// Headers.
    pub headers: Headers,
    /// Payload.
    pub payload: Bytes,
    /// Attempts made.
    pub attempts: u32,
    /// The last error reported by the dispatcher, if any (`None` when the
    /// last attempt's lease simply expired, e.g. after a crash).
    pub last_error: Option<String>,
    /// When the row became failed.
    pub failed_at: SystemTime,
}

/// Row counts by status.
///
/// # Examples
///
/// ```
/// let s = mq_outbox::OutboxStats::default();
/// assert_eq!(s.pending + s.confirmed + s.failed, 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OutboxStats {
    /// Status 0: waiting for a confirm (new, in flight or backing off).
    pub pending: u64,
    /// Status 1: confirmed and kept ([`Retention::Keep`](crate::Retention)).
    pub confirmed: u64,
    /// Status 2: failed; waiting for a person.
    pub failed: u64,
}

/// The columns of `mq_outbox_failed`, in [`FAILED_COLUMNS`] order.
pub(crate) type FailedTuple = (i64, String, Vec<u8>, Vec<u8>, i32, Option<String>, i64);

pub(crate) const FAILED_COLUMNS: &str =
    "seq, topic, headers, payload, attempts, last_error, failed_at";

pub(crate) fn failed_row(producer: u64, t: FailedTuple) -> Result<FailedRow, AdminError> {
    let (seq, topic, headers, payload, attempts, last_error, failed_at) = t;
    let corrupt = |reason: String| AdminError::CorruptRow { seq, reason };
    let useq = u64::try_from(seq).map_err(|_| corrupt("negative sequence".into()))?;
    Ok(FailedRow {
        seq: useq,
        id: MessageId::new(producer, useq),
        topic,
        headers: decode_headers(&headers).map_err(corrupt)?,
        payload: Bytes::from(payload),
        attempts: u32::try_from(attempts).unwrap_or(0),
        last_error,
        failed_at: UNIX_EPOCH + Duration::from_millis(u64::try_from(failed_at).unwrap_or(0)),
    })
}

impl Outbox {
    /// Every row in the failure table, oldest sequence first.
    ///
    /// # Errors
    ///
    /// [`AdminError::Database`], or [`AdminError::CorruptRow`] for a row
    /// whose stored headers cannot be decoded.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let outbox = mq_outbox::Outbox::open("sqlite::memory:", Default::default()).await?;
    /// for row in outbox.list_failed().await? {
    ///     println!("{} {} {:?}", row.seq, row.topic, row.last_error);
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub async fn list_failed(&self) -> Result<Vec<FailedRow>, AdminError> {
        let sql = format!("SELECT {FAILED_COLUMNS} FROM mq_outbox_failed ORDER BY seq");
        let rows: Vec<FailedTuple> = read_conn!(self.db(), |conn| {
            sqlx::query_as(&sql).fetch_all(&mut *conn).await?
        });
        rows.into_iter()
            .map(|t| failed_row(self.producer_id(), t))
            .collect()
    }

    /// Puts failed rows back to pending (status 0, attempts 0, due now),
    /// removes them from the failure table and wakes this process's
    /// dispatchers. They are re-sent with their original
    /// [`MessageId`]. Returns the sequences that were requeued; sequences
    /// that are not failed rows are ignored.
    ///
    /// # Errors
    ///
    /// [`AdminError::Database`]; then nothing was requeued.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let outbox = mq_outbox::Outbox::open("sqlite::memory:", Default::default()).await?;
    /// let done = outbox.requeue(&[1, 2, 3]).await?;
    /// assert!(done.is_empty()); // nothing had failed
    /// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub async fn requeue(&self, seqs: &[u64]) -> Result<Vec<u64>, AdminError> {
        let now = now_ms();
        let done = write_tx!(self.db(), |tx, _lock| {
            let mut done = Vec::new();
            for &seq in seqs {
                let Ok(s) = i64::try_from(seq) else { continue };
                let r = sqlx::query(
                    "UPDATE mq_outbox SET status = 0, attempts = 0, next_attempt_at = $1, \
                     updated_at = $1, last_error = NULL WHERE seq = $2 AND status = 2",
                )
                .bind(now)
                .bind(s)
                .execute(&mut *tx)
                .await?;
                if r.rows_affected() == 1 {
                    sqlx::query("DELETE FROM mq_outbox_failed WHERE seq = $1")
                        .bind(s)
                        .execute(&mut *tx)
                        .await?;
                    done.push(seq);
                }
            }
            done
        });
        if !done.is_empty() {
            tracing::info!(count = done.len(), "outbox rows requeued");
            self.notify();
        }
        Ok(done)
    }

    /// Deletes failed rows (status 2) for good, from the outbox and the
    /// failure table: the messages are given up on. Returns the sequences
    /// deleted; sequences that are not failed rows are ignored.
    ///
    /// # Errors
    ///
    /// [`AdminError::Database`]; then nothing was deleted.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let outbox = mq_outbox::Outbox::open("sqlite::memory:", Default::default()).await?;
    /// assert!(outbox.purge_failed(&[1]).await?.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub async fn purge_failed(&self, seqs: &[u64]) -> Result<Vec<u64>, AdminError> {
        let done = write_tx!(self.db(), |tx, _lock| {
            let mut done = Vec::new();
            for &seq in seqs {
                let Ok(s) = i64::try_from(seq) else { continue };
                let r = sqlx::query("DELETE FROM mq_outbox WHERE seq = $1 AND status = 2")
                    .bind(s)
                    .execute(&mut *tx)
                    .await?;
                if r.rows_affected() == 1 {
                    sqlx::query("DELETE FROM mq_outbox_failed WHERE seq = $1")
                        .bind(s)
                        .execute(&mut *tx)
                        .await?;
                    done.push(seq);
                }
            }
            done
        });
        if !done.is_empty() {
            tracing::info!(count = done.len(), "failed outbox rows purged");
        }
        Ok(done)
    }

    /// How long the oldest pending row (status 0) has waited since it was
    /// enqueued; `None` when nothing is pending.
    ///
    /// # Errors
    ///
    /// [`AdminError::Database`].
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let outbox = mq_outbox::Outbox::open("sqlite::memory:", Default::default()).await?;
    /// assert_eq!(outbox.oldest_pending_age().await?, None);
    /// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub async fn oldest_pending_age(&self) -> Result<Option<Duration>, AdminError> {
        let sql = "SELECT MIN(created_at) FROM mq_outbox WHERE status = 0";
        let oldest: Option<i64> = read_conn!(self.db(), |conn| {
            sqlx::query_scalar(sql).fetch_one(&mut *conn).await?
        });
        Ok(oldest
            .map(|t| Duration::from_millis(u64::try_from(now_ms().saturating_sub(t)).unwrap_or(0))))
    }

    /// Deletes confirmed rows (status 1) last updated more than
    /// `older_than` ago; returns how many. Pending and failed rows are
    /// never touched. Sequence numbers are not reused afterwards.
    ///
    /// # Errors
    ///
    /// [`AdminError::Database`]; then nothing was deleted.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use std::time::Duration;
    /// let outbox = mq_outbox::Outbox::open("sqlite::memory:", Default::default()).await?;
    /// let n = outbox.purge_confirmed(Duration::from_secs(7 * 86_400)).await?;
    /// assert_eq!(n, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub async fn purge_confirmed(&self, older_than: Duration) -> Result<u64, AdminError> {
        let cutoff =
            now_ms().saturating_sub(i64::try_from(older_than.as_millis()).unwrap_or(i64::MAX));
        let n = write_tx!(self.db(), |tx, _lock| {
            sqlx::query("DELETE FROM mq_outbox WHERE status = 1 AND updated_at < $1")
                .bind(cutoff)
                .execute(&mut *tx)
                .await?
                .rows_affected()
        });
        Ok(n)
    }

    /// Counts rows by status.
    ///
    /// # Errors
    ///
    /// [`AdminError::Database`].
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let outbox = mq_outbox::Outbox::open("sqlite::memory:", Default::default()).await?;
    /// assert_eq!(outbox.stats().await?, mq_outbox::OutboxStats::default());
    /// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub async fn stats(&self) -> Result<OutboxStats, AdminError> {
        let sql = "SELECT status, COUNT(*) FROM mq_outbox GROUP BY status";
        let rows: Vec<(i16, i64)> = read_conn!(self.db(), |conn| {
            sqlx::query_as(sql).fetch_all(&mut *conn).await?
        });
        let mut s = OutboxStats::default();
        for (status, n) in rows {
            let n = u64::try_from(n).unwrap_or(0);
            match status {
                0 => s.pending = n,
                1 => s.confirmed = n,
                2 => s.failed = n,
                _ => {}
            }
        }
        Ok(s)
    }

    /// Waits until `pred` holds for the row counts, re-checking whenever a
    /// dispatcher of this process confirms or fails rows, and every
    /// `poll_interval` (for other processes). Returns the counts that
    /// satisfied `pred`. Useful for graceful shutdown ("until nothing is
    /// pending") and tests.
    ///
    /// # Errors
    ///
    /// [`AdminError::Timeout`] after `timeout`, or [`AdminError::Database`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use std::time::Duration;
    /// let outbox = mq_outbox::Outbox::open("sqlite::memory:", Default::default()).await?;
    /// let s = outbox.wait_for(Duration::from_secs(5), |s| s.pending == 0).await?;
    /// assert_eq!(s.pending, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub async fn wait_for(
        &self,
        timeout: Duration,
        mut pred: impl FnMut(&OutboxStats) -> bool,
    ) -> Result<OutboxStats, AdminError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut settled = self.inner.settled.subscribe();
        loop {
            settled.borrow_and_update();
            let s = self.stats().await?;
            if pred(&s) {
                return Ok(s);
            }
            let poll = tokio::time::Instant::now() + self.inner.config.poll_interval;
            tokio::select! {
                _ = settled.changed() => {}
                _ = tokio::time::sleep_until(poll.min(deadline)) => {}
            }
            if tokio::time::Instant::now() >= deadline {
                let s = self.stats().await?;
                return if pred(&s) {
                    Ok(s)
                } else {
                    Err(AdminError::Timeout)
                };
            }
        }
    }
}
