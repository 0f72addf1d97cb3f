//! [`Outbox::enqueue`]: writing a row inside the caller's transaction, and
//! the stored form of headers.
//!
//! The API is one generic method over the two supported databases (the
//! sealed [`OutboxDatabase`] trait, implemented for `sqlx::Sqlite` and
//! `sqlx::Postgres`). The caller passes its own typed
//! `sqlx::Transaction<'_, Sqlite>` or `Transaction<'_, Postgres>`: no
//! `sqlx::Any` (which would force the caller's business code onto untyped
//! connections), no second method per database.

use bytes::Bytes;
use futures::future::BoxFuture;
use mq_protocol::{Headers, MessageId, MAX_TOPIC_LEN, MESSAGE_OVERHEAD};
use sqlx::Transaction;
#[cfg(feature = "postgres")]
use sqlx::{PgConnection, Postgres};
#[cfg(feature = "sqlite")]
use sqlx::{Sqlite, SqliteConnection};

use crate::error::EnqueueError;
use crate::outbox::{now_ms, Db, Outbox};

mod sealed {
    pub trait Sealed {}
    #[cfg(feature = "sqlite")]
    impl Sealed for sqlx::Sqlite {}
    #[cfg(feature = "postgres")]
    impl Sealed for sqlx::Postgres {}
}

/// A database the outbox supports: `sqlx::Sqlite` or `sqlx::Postgres`.
/// Sealed; it only exists so that [`Outbox::enqueue`] accepts either kind
/// of transaction.
///
/// # Examples
///
/// ```
/// fn takes<DB: mq_outbox::OutboxDatabase>() {}
/// takes::<sqlx::Sqlite>();
/// takes::<sqlx::Postgres>();
/// ```
pub trait OutboxDatabase: sqlx::Database + sealed::Sealed {
    /// `"SQLite"` or `"Postgres"`.
    ///
    /// # Examples
    ///
    /// ```
    /// use mq_outbox::OutboxDatabase;
    /// assert_eq!(<sqlx::Postgres as OutboxDatabase>::KIND, "Postgres");
    /// ```
    const KIND: &'static str;

    /// Inserts one pending row and returns its sequence.
    #[doc(hidden)]
    fn insert_row<'c>(
        conn: &'c mut Self::Connection,
        topic: &'c str,
        headers: Vec<u8>,
        payload: Bytes,
        now: i64,
    ) -> BoxFuture<'c, Result<i64, sqlx::Error>>;
}

const INSERT: &str = "INSERT INTO mq_outbox \
     (topic, headers, payload, status, attempts, next_attempt_at, created_at, updated_at) \
     VALUES ($1, $2, $3, 0, 0, $4, $4, $4) RETURNING seq";

#[cfg(feature = "sqlite")]
impl OutboxDatabase for Sqlite {
    const KIND: &'static str = "SQLite";

    fn insert_row<'c>(
        conn: &'c mut SqliteConnection,
        topic: &'c str,
        headers: Vec<u8>,
        payload: Bytes,
        now: i64,
    ) -> BoxFuture<'c, Result<i64, sqlx::Error>> {
        Box::pin(async move {
            sqlx::query_scalar(INSERT)
                .bind(topic)
                .bind(headers)
                .bind(payload.to_vec())
                .bind(now)
                .fetch_one(conn)
                .await
        })
    }
}

#[cfg(feature = "postgres")]
impl OutboxDatabase for Postgres {
    const KIND: &'static str = "Postgres";

    fn insert_row<'c>(
        conn: &'c mut PgConnection,
        topic: &'c str,
        headers: Vec<u8>,
        payload: Bytes,
        now: i64,
    ) -> BoxFuture<'c, Result<i64, sqlx::Error>> {
        Box::pin(async move {
            sqlx::query_scalar(INSERT)
                .bind(topic)
                .bind(headers)
                .bind(payload.as_ref())
                .bind(now)
                .fetch_one(conn)
                .await
        })
    }
}

impl Outbox {
    /// Adds a message to the outbox as part of the caller's transaction and
    /// returns the [`MessageId`] it will carry on every attempt.
    ///
    /// The row (status 0, pending) becomes visible to dispatchers only when
    /// the caller commits; if the transaction rolls back, nothing is sent.
    /// After committing, call [`Outbox::notify`] so this process's
    /// dispatcher sends it at once. The transaction must be on the same
    /// database as the outbox. On SQLite, begin it with
    /// `pool.begin_with("BEGIN IMMEDIATE")`.
    ///
    /// # Errors
    ///
    /// [`EnqueueError`]: invalid topic or headers, message too large,
    /// transaction on the wrong kind of database, or the insert failed.
    /// The transaction is left open for the caller to roll back.
    ///
    /// # Cancel safety
    ///
    /// Cancelling may leave the row inserted in the still-open
    /// transaction; roll it back (or drop it) if in doubt.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let outbox = mq_outbox::Outbox::open("sqlite::memory:", Default::default()).await?;
    /// let pool = outbox.sqlite_pool().unwrap().clone();
    /// let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    /// // ... business writes on &mut *tx ...
    /// let id = outbox.enqueue(&mut tx, "orders.created", "order 42").await?;
    /// tx.commit().await?;
    /// outbox.notify();
    /// assert_eq!(id.producer, outbox.producer_id());
    /// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub async fn enqueue<DB: OutboxDatabase>(
        &self,
        tx: &mut Transaction<'_, DB>,
        topic: &str,
        payload: impl Into<Bytes>,
    ) -> Result<MessageId, EnqueueError> {
        self.enqueue_with_headers(tx, topic, &Headers::new(), payload)
            .await
    }

    /// [`Outbox::enqueue`] with headers.
    ///
    /// # Errors
    ///
    /// As [`Outbox::enqueue`]; also [`EnqueueError::InvalidHeaders`].
    ///
    /// # Cancel safety
    ///
    /// As [`Outbox::enqueue`].
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let outbox = mq_outbox::Outbox::open("sqlite::memory:", Default::default()).await?;
    /// let mut tx = outbox.sqlite_pool().unwrap().begin().await?;
    /// let mut headers = mq_protocol::Headers::new();
    /// headers.insert("content-type", "application/json");
    /// outbox.enqueue_with_headers(&mut tx, "orders", &headers, "{}").await?;
    /// tx.commit().await?;
    /// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub async fn enqueue_with_headers<DB: OutboxDatabase>(
        &self,
        tx: &mut Transaction<'_, DB>,
        topic: &str,
        headers: &Headers,
        payload: impl Into<Bytes>,
    ) -> Result<MessageId, EnqueueError> {
        let payload = payload.into();
        if topic.is_empty() || topic.len() > MAX_TOPIC_LEN {
            return Err(EnqueueError::InvalidTopic(topic.len()));
        }
        headers.validate().map_err(EnqueueError::InvalidHeaders)?;
        // Wire size of the headers: u16 count, then u16-prefixed keys and values.
        let header_bytes = 2 + 4 * headers.len() + headers.payload_bytes();
        let size = MESSAGE_OVERHEAD + topic.len() + header_bytes + payload.len();
        let max = self.inner.config.max_message_bytes;
        if size > max {
            return Err(EnqueueError::TooLarge { size, max });
        }
        let kind = match self.db() {
            #[cfg(feature = "sqlite")]
            Db::Sqlite(_) => Sqlite::KIND,
            #[cfg(feature = "postgres")]
            Db::Postgres(_) => Postgres::KIND,
        };
        if kind != DB::KIND {
            return Err(EnqueueError::WrongDatabase {
                outbox: kind,
                transaction: DB::KIND,
            });
        }
        let seq =
            DB::insert_row(&mut **tx, topic, encode_headers(headers), payload, now_ms()).await?;
        let seq = u64::try_from(seq).map_err(|_| {
            EnqueueError::Database(sqlx::Error::Protocol(format!(
                "outbox sequence {seq} is negative"
            )))
        })?;
        Ok(MessageId::new(self.producer_id(), seq))
    }
}

/// Stored form of headers: `u16` count, then per entry `u16` key length,
/// key, `u32` value length, value (all big-endian). Empty headers are
/// stored as zero bytes.
pub(crate) fn encode_headers(headers: &Headers) -> Vec<u8> {
    if headers.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(2 + headers.payload_bytes() + 6 * headers.len());
    out.extend_from_slice(&(headers.len() as u16).to_be_bytes());
    for (k, v) in headers.iter() {
        out.extend_from_slice(&(k.len() as u16).to_be_bytes());
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(&(v.len() as u32).to_be_bytes());
        out.extend_from_slice(v);
    }
    out
}

/// Inverse of [`encode_headers`]; `Err` names what is corrupt.
pub(crate) fn decode_headers(mut b: &[u8]) -> Result<Headers, String> {
    fn take<'a>(b: &mut &'a [u8], n: usize, what: &str) -> Result<&'a [u8], String> {
        if b.len() < n {
            return Err(format!("stored headers truncated in {what}"));
        }
        let (head, rest) = b.split_at(n);
        *b = rest;
        Ok(head)
    }
    fn be(bytes: &[u8]) -> usize {
        bytes.iter().fold(0usize, |acc, &x| (acc << 8) | x as usize)
    }
    if b.is_empty() {
        return Ok(Headers::new());
    }
    let count = be(take(&mut b, 2, "count")?);
    let mut entries = Vec::with_capacity(count.min(mq_protocol::MAX_HEADERS));
    for _ in 0..count {
        let klen = be(take(&mut b, 2, "key length")?);
        let key = std::str::from_utf8(take(&mut b, klen, "key")?)
            .map_err(|_| "stored header key is not UTF-8".to_owned())?
            .to_owned();
        let vlen = be(take(&mut b, 4, "value length")?);
        let value = Bytes::copy_from_slice(take(&mut b, vlen, "value")?);
        entries.push((key, value));
    }
    if !b.is_empty() {
        return Err("trailing bytes after stored headers".into());
    }
    Ok(entries.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn headers_round_trip(entries in proptest::collection::vec(("[a-z]{0,8}", proptest::collection::vec(any::<u8>(), 0..16)), 0..8)) {
            let h: Headers = entries.into_iter().map(|(k, v)| (k, Bytes::from(v))).collect();
            prop_assert_eq!(decode_headers(&encode_headers(&h)), Ok(h));
        }

        #[test]
        fn corrupt_headers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_headers(&bytes);
        }
    }
}
