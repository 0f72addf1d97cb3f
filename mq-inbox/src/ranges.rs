//! The range store in SQL: looking up and marking one ID, inside a
//! connection or transaction the caller owns.
//!
//! # Layout
//!
//! * Stored form: `producer` as the `u64`'s bits in a `BIGINT`; sequences
//!   order-preserving, `stored = seq XOR 2^63` ([`to_db_seq`]), so the
//!   index on `(producer, start_seq)` sorts as `u64` and `seq + 1` is
//!   `stored + 1`.
//! * `mark_sqlite` / `mark_pg`: one transaction step, the same algorithm
//!   as the receiver's `DedupWindow::insert`: first the producer's row in
//!   `mq_inbox_producers` is upserted, which **locks it** until the
//!   transaction ends (Postgres row lock; SQLite's `BEGIN IMMEDIATE` holds
//!   the database's write lock), so two marks of one producer never
//!   interleave, in one process or several. Then one query reads the range
//!   at or below `seq` and the one starting at `seq + 1`; the ID is already
//!   there, or extends, joins or creates a range. Adjacent ranges are
//!   always merged in the same step (ranges are kept compact; there is
//!   nothing to merge later). Past `max_ranges_per_producer` the lowest
//!   range is deleted (never merged across a gap).
//! * `contains_sqlite` / `contains_pg`: one indexed query, no lock.
//!
//! The SQL is the same text for both databases; a macro instantiates it
//! for each connection type.

use mq_protocol::MessageId;

/// The stored form of a sequence: order-preserving `u64` to `i64`.
///
/// # Examples
///
/// ```
/// use mq_inbox::ranges::{from_db_seq, to_db_seq};
/// assert!(to_db_seq(1) < to_db_seq(2));
/// assert!(to_db_seq(i64::MAX as u64) < to_db_seq(u64::MAX));
/// assert_eq!(from_db_seq(to_db_seq(42)), 42);
/// ```
pub fn to_db_seq(seq: u64) -> i64 {
    (seq ^ (1 << 63)) as i64
}

/// The sequence of a stored value ([`to_db_seq`] reversed).
///
/// # Examples
///
/// ```
/// assert_eq!(mq_inbox::ranges::from_db_seq(i64::MIN), 0);
/// ```
pub fn from_db_seq(v: i64) -> u64 {
    (v as u64) ^ (1 << 63)
}

/// The stored form of a producer id (its bits).
pub(crate) fn to_db_producer(p: u64) -> i64 {
    p as i64
}

/// What a mark found.
///
/// # Examples
///
/// ```
/// assert_ne!(mq_inbox::Marked::New, mq_inbox::Marked::Already);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marked {
    /// The ID was not recorded; it is now (when the transaction commits).
    New,
    /// The ID was already recorded (by an earlier, committed transaction):
    /// the caller should roll back its business writes.
    Already,
}

/// What a mark changed (the answer and the ranges it forgot). Internal to
/// [`InboxDatabase`](crate::InboxDatabase).
#[doc(hidden)]
#[derive(Debug)]
pub struct MarkOutcome {
    pub(crate) marked: Marked,
    pub(crate) forgotten: u64,
}

macro_rules! contains_in {
    ($conn:expr, $id:expr) => {{
        let id: MessageId = $id;
        let s = to_db_seq(id.seq);
        let end: Option<i64> = sqlx::query_scalar(
            "SELECT end_seq FROM mq_inbox_ranges \
             WHERE producer = $1 AND start_seq <= $2 ORDER BY start_seq DESC LIMIT 1",
        )
        .bind(to_db_producer(id.producer))
        .bind(s)
        .fetch_optional(&mut *$conn)
        .await?;
        Ok(end.is_some_and(|e| e >= s))
    }};
}

macro_rules! mark_in {
    ($conn:expr, $id:expr, $now:expr, $max:expr) => {{
        let id: MessageId = $id;
        let now: i64 = $now;
        let max: i64 = i64::try_from($max).unwrap_or(i64::MAX).max(1);
        let p = to_db_producer(id.producer);
        let s = to_db_seq(id.seq);
        // Lock (and create) the producer's row first: every mark of this
        // producer queues here until the holder commits or rolls back.
        let mut ranges: i64 = sqlx::query_scalar(
            "INSERT INTO mq_inbox_producers (producer, last_active, ranges) VALUES ($1, $2, 0) \
             ON CONFLICT (producer) DO UPDATE SET last_active = CASE \
               WHEN excluded.last_active > mq_inbox_producers.last_active \
               THEN excluded.last_active ELSE mq_inbox_producers.last_active END \
             RETURNING ranges",
        )
        .bind(p)
        .bind(now)
        .fetch_one(&mut *$conn)
        .await?;
        // The range starting at s + 1 (if any) and the highest one starting
        // at or below s: the two highest starting at or below s + 1.
        let upto = s.checked_add(1).unwrap_or(s);
        let near: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT start_seq, end_seq FROM mq_inbox_ranges \
             WHERE producer = $1 AND start_seq <= $2 ORDER BY start_seq DESC LIMIT 2",
        )
        .bind(p)
        .bind(upto)
        .fetch_all(&mut *$conn)
        .await?;
        let (next, prev) = match near.as_slice() {
            [a, rest @ ..] if a.0 > s => (Some(*a), rest.first().copied()),
            [a, ..] => (None, Some(*a)),
            [] => (None, None),
        };
        if prev.is_some_and(|(_, end)| end >= s) {
            Ok(MarkOutcome {
                marked: Marked::Already,
                forgotten: 0,
            })
        } else {
            // prev.end < s, so end + 1 cannot overflow.
            let joins_prev = prev.filter(|&(_, end)| end + 1 == s).map(|(start, _)| start);
            let delta: i64 = match (joins_prev, next) {
                (Some(start), Some((next_start, next_end))) => {
                    sqlx::query("DELETE FROM mq_inbox_ranges WHERE producer = $1 AND start_seq = $2")
                        .bind(p)
                        .bind(next_start)
                        .execute(&mut *$conn)
                        .await?;
                    sqlx::query(
                        "UPDATE mq_inbox_ranges SET end_seq = $3 WHERE producer = $1 AND start_seq = $2",
                    )
                    .bind(p)
                    .bind(start)
                    .bind(next_end)
                    .execute(&mut *$conn)
                    .await?;
                    -1
                }
                (Some(start), None) => {
                    sqlx::query(
                        "UPDATE mq_inbox_ranges SET end_seq = $3 WHERE producer = $1 AND start_seq = $2",
                    )
                    .bind(p)
                    .bind(start)
                    .bind(s)
                    .execute(&mut *$conn)
                    .await?;
                    0
                }
                (None, Some((next_start, _))) => {
                    sqlx::query(
                        "UPDATE mq_inbox_ranges SET start_seq = $3 WHERE producer = $1 AND start_seq = $2",
                    )
                    .bind(p)
                    .bind(next_start)
                    .bind(s)
                    .execute(&mut *$conn)
                    .await?;
                    0
                }
                (None, None) => {
                    sqlx::query(
                        "INSERT INTO mq_inbox_ranges (producer, start_seq, end_seq) VALUES ($1, $2, $2)",
                    )
                    .bind(p)
                    .bind(s)
                    .execute(&mut *$conn)
                    .await?;
                    1
                }
            };
            ranges += delta;
            let mut forgotten = 0u64;
            while ranges > max {
                // Retention: forget the lowest range (it is below the
                // highest, since there are at least two).
                sqlx::query(
                    "DELETE FROM mq_inbox_ranges WHERE producer = $1 AND start_seq = \
                     (SELECT MIN(start_seq) FROM mq_inbox_ranges WHERE producer = $1)",
                )
                .bind(p)
                .execute(&mut *$conn)
                .await?;
                ranges -= 1;
                forgotten += 1;
            }
            if delta != 0 || forgotten > 0 {
                sqlx::query("UPDATE mq_inbox_producers SET ranges = $2 WHERE producer = $1")
                    .bind(p)
                    .bind(ranges)
                    .execute(&mut *$conn)
                    .await?;
            }
            if forgotten > 0 {
                sqlx::query(
                    "UPDATE mq_inbox_meta SET value = value + $1 WHERE name = 'forgotten'",
                )
                .bind(forgotten as i64)
                .execute(&mut *$conn)
                .await?;
            }
            Ok(MarkOutcome {
                marked: Marked::New,
                forgotten,
            })
        }
    }};
}

/// Is `id` recorded? (SQLite.)
#[cfg(feature = "sqlite")]
pub(crate) async fn contains_sqlite(
    conn: &mut sqlx::SqliteConnection,
    id: MessageId,
) -> Result<bool, sqlx::Error> {
    contains_in!(conn, id)
}

/// Is `id` recorded? (Postgres.)
#[cfg(feature = "postgres")]
pub(crate) async fn contains_pg(
    conn: &mut sqlx::PgConnection,
    id: MessageId,
) -> Result<bool, sqlx::Error> {
    contains_in!(conn, id)
}

/// Records `id` inside the caller's SQLite transaction (begun with
/// `BEGIN IMMEDIATE`).
#[cfg(feature = "sqlite")]
pub(crate) async fn mark_sqlite(
    conn: &mut sqlx::SqliteConnection,
    id: MessageId,
    now_ms: i64,
    max_ranges: u64,
) -> Result<MarkOutcome, sqlx::Error> {
    mark_in!(conn, id, now_ms, max_ranges)
}

/// Records `id` inside the caller's Postgres transaction.
#[cfg(feature = "postgres")]
pub(crate) async fn mark_pg(
    conn: &mut sqlx::PgConnection,
    id: MessageId,
    now_ms: i64,
    max_ranges: u64,
) -> Result<MarkOutcome, sqlx::Error> {
    mark_in!(conn, id, now_ms, max_ranges)
}

/// The ranges of one producer, lowest first, as `(start, end)` inclusive
/// sequences (for tests and the CLI).
pub(crate) async fn ranges_of(
    db: &crate::inbox::Db,
    producer: u64,
) -> Result<Vec<(u64, u64)>, sqlx::Error> {
    const Q: &str = "SELECT start_seq, end_seq FROM mq_inbox_ranges WHERE producer = $1 \
                     ORDER BY start_seq";
    let rows: Vec<(i64, i64)> = match db {
        #[cfg(feature = "sqlite")]
        crate::inbox::Db::Sqlite(pool) => {
            sqlx::query_as(Q)
                .bind(to_db_producer(producer))
                .fetch_all(pool)
                .await?
        }
        #[cfg(feature = "postgres")]
        crate::inbox::Db::Postgres(pool) => {
            sqlx::query_as(Q)
                .bind(to_db_producer(producer))
                .fetch_all(pool)
                .await?
        }
    };
    Ok(rows
        .into_iter()
        .map(|(a, b)| (from_db_seq(a), from_db_seq(b)))
        .collect())
}
