//! Retention and administration: [`Inbox::stats`], [`Inbox::compact`],
//! [`Inbox::purge_producer`], [`Inbox::purge_idle`].
//!
//! Every call is one transaction. A purge only ever *forgets* (deletes
//! whole producers' ranges): later duplicates of what it removed reach the
//! handler again; nothing unprocessed is ever reported as processed.

use std::time::Duration;

use crate::error::AdminError;
use crate::inbox::{now_ms, Db, Inbox};
use crate::ranges::to_db_producer;

/// Estimated bytes of one row of `mq_inbox_ranges` or
/// `mq_inbox_producers` with its primary-key index entry (three 8-byte
/// integers twice, plus the engines' row and index overheads: about 30
/// bytes on SQLite, about 70 on Postgres). Used by
/// [`InboxStats::approx_bytes`].
///
/// # Examples
///
/// ```
/// assert!(mq_inbox::ROW_BYTES >= 48);
/// ```
pub const ROW_BYTES: u64 = 80;

/// What the inbox tables hold.
///
/// # Examples
///
/// ```
/// let s = mq_inbox::InboxStats::default();
/// assert_eq!(s.approx_bytes, 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct InboxStats {
    /// Producers tracked (rows of `mq_inbox_producers`).
    pub producers: u64,
    /// Ranges stored (rows of `mq_inbox_ranges`).
    pub ranges: u64,
    /// The most ranges of one producer.
    pub max_ranges_of_a_producer: u64,
    /// `(producers + ranges) × ROW_BYTES`: an estimate of the space used.
    pub approx_bytes: u64,
    /// Ranges and producers deleted by the retention rule, ever, by any
    /// process.
    pub forgotten: u64,
    /// The schema version of the tables.
    pub schema_version: i64,
}

/// What a [`Inbox::compact`] or purge deleted.
///
/// # Examples
///
/// ```
/// assert_eq!(mq_inbox::Purged::default().producers, 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Purged {
    /// Producers deleted (each with all its ranges).
    pub producers: u64,
    /// Ranges deleted.
    pub ranges: u64,
}

macro_rules! stats_in {
    ($pool:expr) => {{
        let (producers, ranges, max): (i64, i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), CAST(COALESCE(SUM(ranges), 0) AS BIGINT), \
             CAST(COALESCE(MAX(ranges), 0) AS BIGINT) FROM mq_inbox_producers",
        )
        .fetch_one($pool)
        .await?;
        let meta: Vec<(String, i64)> = sqlx::query_as(
            "SELECT name, value FROM mq_inbox_meta WHERE name IN ('forgotten', 'schema_version')",
        )
        .fetch_all($pool)
        .await?;
        let get = |n: &str| meta.iter().find(|(k, _)| k == n).map_or(0, |(_, v)| *v);
        let (producers, ranges) = (producers.max(0) as u64, ranges.max(0) as u64);
        InboxStats {
            producers,
            ranges,
            max_ranges_of_a_producer: max.max(0) as u64,
            approx_bytes: (producers + ranges).saturating_mul(ROW_BYTES),
            forgotten: get("forgotten").max(0) as u64,
            schema_version: get("schema_version"),
        }
    }};
}

/// Deletes the producers matching `$cond` (a condition on
/// `mq_inbox_producers` with one parameter, bound to `$arg`), with their
/// ranges, in `$tx`.
macro_rules! purge_in {
    ($tx:expr, $cond:expr, $arg:expr) => {{
        // Deleting the producer rows first takes their locks: a mark in
        // progress commits first, and a mark that comes later finds no
        // ranges (it recreates the producer from empty). Either way the
        // result only forgets, never invents.
        let gone: Vec<i64> = sqlx::query_scalar(&format!(
            "DELETE FROM mq_inbox_producers WHERE {} RETURNING producer",
            $cond
        ))
        .bind($arg)
        .fetch_all(&mut *$tx)
        .await?;
        let mut ranges = 0u64;
        for p in &gone {
            ranges += sqlx::query("DELETE FROM mq_inbox_ranges WHERE producer = $1")
                .bind(*p)
                .execute(&mut *$tx)
                .await?
                .rows_affected();
        }
        let purged = Purged {
            producers: gone.len() as u64,
            ranges,
        };
        if purged.producers + purged.ranges > 0 {
            sqlx::query("UPDATE mq_inbox_meta SET value = value + $1 WHERE name = 'forgotten'")
                .bind((purged.producers + purged.ranges) as i64)
                .execute(&mut *$tx)
                .await?;
        }
        purged
    }};
}

/// Runs `purge_in!` in a write transaction on either database.
macro_rules! purge {
    ($db:expr, $cond:expr, $arg:expr) => {
        match $db {
            #[cfg(feature = "sqlite")]
            Db::Sqlite(pool) => {
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                let p = purge_in!(tx, $cond, $arg);
                tx.commit().await?;
                p
            }
            #[cfg(feature = "postgres")]
            Db::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let p = purge_in!(tx, $cond, $arg);
                tx.commit().await?;
                p
            }
        }
    };
}

impl Inbox {
    /// Counts what the inbox tables hold.
    ///
    /// # Errors
    ///
    /// [`AdminError::Database`] if a query failed.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let inbox = mq_inbox::Inbox::open("sqlite::memory:", Default::default()).await?;
    /// let s = inbox.stats().await?;
    /// assert_eq!((s.producers, s.ranges, s.schema_version), (0, 0, 1));
    /// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub async fn stats(&self) -> Result<InboxStats, AdminError> {
        Ok(match self.db() {
            #[cfg(feature = "sqlite")]
            Db::Sqlite(pool) => stats_in!(pool),
            #[cfg(feature = "postgres")]
            Db::Postgres(pool) => stats_in!(pool),
        })
    }

    /// Applies the retention rule now: deletes producers idle longer than
    /// `retention.idle_expiry`, then the least recently active producers
    /// beyond `retention.max_producers`. (The per-producer range cap is
    /// applied by every mark, and adjacent ranges are merged by every mark,
    /// so ranges are always compact.) The receiver's periodic expiry calls
    /// it at most every `compact_interval` when the inbox is its
    /// [`DedupStore`](mq_client_receiver::DedupStore); with
    /// [`Inbox::handler`] call it yourself (or run `mq-inbox compact`).
    ///
    /// # Errors
    ///
    /// [`AdminError::Database`]; nothing was deleted.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let inbox = mq_inbox::Inbox::open("sqlite::memory:", Default::default()).await?;
    /// assert_eq!(inbox.compact().await?.producers, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub async fn compact(&self) -> Result<Purged, AdminError> {
        let r = &self.inner.config.retention;
        let mut total = self.purge_idle(r.idle_expiry).await?;
        let excess = self
            .stats()
            .await?
            .producers
            .saturating_sub(r.max_producers);
        if excess > 0 {
            let p = purge!(
                self.db(),
                "producer IN (SELECT producer FROM mq_inbox_producers ORDER BY last_active LIMIT $1)",
                i64::try_from(excess).unwrap_or(i64::MAX)
            );
            total.producers += p.producers;
            total.ranges += p.ranges;
        }
        self.count(|c| &c.forgotten, total.producers + total.ranges);
        Ok(total)
    }

    /// Forgets every producer with no mark for at least `idle` (with their
    /// ranges).
    ///
    /// # Errors
    ///
    /// [`AdminError::Database`]; nothing was deleted.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let inbox = mq_inbox::Inbox::open("sqlite::memory:", Default::default()).await?;
    /// inbox.purge_idle(std::time::Duration::from_secs(86_400)).await?;
    /// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub async fn purge_idle(&self, idle: Duration) -> Result<Purged, AdminError> {
        let idle_ms = i64::try_from(idle.as_millis()).unwrap_or(i64::MAX);
        let before = now_ms().saturating_sub(idle_ms);
        Ok(purge!(self.db(), "last_active <= $1", before))
    }

    /// Forgets one producer (all its ranges): for a producer retired for
    /// good, or after restoring a producer's database from a backup.
    ///
    /// # Errors
    ///
    /// [`AdminError::Database`]; nothing was deleted.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let inbox = mq_inbox::Inbox::open("sqlite::memory:", Default::default()).await?;
    /// assert_eq!(inbox.purge_producer(42).await?.producers, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub async fn purge_producer(&self, producer: u64) -> Result<Purged, AdminError> {
        Ok(purge!(self.db(), "producer = $1", to_db_producer(producer)))
    }
}
