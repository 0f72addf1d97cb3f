//! The transactional form: [`Inbox::handler`] wraps a business handler that
//! receives the delivery and an open transaction; the business writes and
//! the inbox mark commit together, then the receiver acks.
//!
//! The steps of one delivery are in the docs of [`Inbox::handler`].

use std::future::Future;
use std::sync::Arc;

use futures::future::BoxFuture;
use mq_client_receiver::{Delivery, HandlerError, RecvCallback};
use mq_protocol::MessageId;
#[cfg(feature = "postgres")]
use sqlx::{PgConnection, Postgres};
use sqlx::{Pool, Transaction};
#[cfg(feature = "sqlite")]
use sqlx::{Sqlite, SqliteConnection};

use crate::error::InboxError;
use crate::inbox::{now_ms, Db, Inbox};
use crate::ranges::{self, MarkOutcome, Marked};

mod sealed {
    pub trait Sealed {}
    #[cfg(feature = "sqlite")]
    impl Sealed for sqlx::Sqlite {}
    #[cfg(feature = "postgres")]
    impl Sealed for sqlx::Postgres {}
}

/// A database the inbox supports: `sqlx::Sqlite` or `sqlx::Postgres`.
/// Sealed; it lets [`Inbox::handler`] and [`Inbox::mark`] take either kind
/// of transaction with the caller's own typed business code.
///
/// # Examples
///
/// ```
/// fn takes<DB: mq_inbox::InboxDatabase>() {}
/// takes::<sqlx::Sqlite>();
/// takes::<sqlx::Postgres>();
/// ```
pub trait InboxDatabase: sqlx::Database + sealed::Sealed {
    /// `"SQLite"` or `"Postgres"`.
    ///
    /// # Examples
    ///
    /// ```
    /// use mq_inbox::InboxDatabase;
    /// assert_eq!(<sqlx::Sqlite as InboxDatabase>::KIND, "SQLite");
    /// ```
    const KIND: &'static str;

    #[doc(hidden)]
    fn pool_of(inbox: &Inbox) -> Option<Pool<Self>>;

    #[doc(hidden)]
    fn begin_write(
        pool: &Pool<Self>,
    ) -> BoxFuture<'_, Result<Transaction<'static, Self>, sqlx::Error>>;

    #[doc(hidden)]
    fn contains_in(
        conn: &mut Self::Connection,
        id: MessageId,
    ) -> BoxFuture<'_, Result<bool, sqlx::Error>>;

    #[doc(hidden)]
    fn mark_in(
        conn: &mut Self::Connection,
        id: MessageId,
        now_ms: i64,
        max_ranges: u64,
    ) -> BoxFuture<'_, Result<MarkOutcome, sqlx::Error>>;
}

#[cfg(feature = "sqlite")]
impl InboxDatabase for Sqlite {
    const KIND: &'static str = "SQLite";

    fn pool_of(inbox: &Inbox) -> Option<Pool<Self>> {
        inbox.sqlite_pool().cloned()
    }

    fn begin_write(
        pool: &Pool<Self>,
    ) -> BoxFuture<'_, Result<Transaction<'static, Self>, sqlx::Error>> {
        Box::pin(pool.begin_with("BEGIN IMMEDIATE"))
    }

    fn contains_in(
        conn: &mut SqliteConnection,
        id: MessageId,
    ) -> BoxFuture<'_, Result<bool, sqlx::Error>> {
        Box::pin(ranges::contains_sqlite(conn, id))
    }

    fn mark_in(
        conn: &mut SqliteConnection,
        id: MessageId,
        now_ms: i64,
        max_ranges: u64,
    ) -> BoxFuture<'_, Result<MarkOutcome, sqlx::Error>> {
        Box::pin(ranges::mark_sqlite(conn, id, now_ms, max_ranges))
    }
}

#[cfg(feature = "postgres")]
impl InboxDatabase for Postgres {
    const KIND: &'static str = "Postgres";

    fn pool_of(inbox: &Inbox) -> Option<Pool<Self>> {
        inbox.pg_pool().cloned()
    }

    fn begin_write(
        pool: &Pool<Self>,
    ) -> BoxFuture<'_, Result<Transaction<'static, Self>, sqlx::Error>> {
        Box::pin(pool.begin())
    }

    fn contains_in(
        conn: &mut PgConnection,
        id: MessageId,
    ) -> BoxFuture<'_, Result<bool, sqlx::Error>> {
        Box::pin(ranges::contains_pg(conn, id))
    }

    fn mark_in(
        conn: &mut PgConnection,
        id: MessageId,
        now_ms: i64,
        max_ranges: u64,
    ) -> BoxFuture<'_, Result<MarkOutcome, sqlx::Error>> {
        Box::pin(ranges::mark_pg(conn, id, now_ms, max_ranges))
    }
}

impl Inbox {
    /// Records `id` as processed inside the caller's transaction; it is
    /// durable when the caller commits. Returns [`Marked::Already`] if a
    /// committed transaction recorded it before: **roll back** the business
    /// writes then (they were applied by that transaction), and ack.
    ///
    /// Use it when you run the transaction yourself (a
    /// [`DeliveryStream`](mq_client_receiver::DeliveryStream) or manual
    /// acks): commit, then ack. [`Inbox::handler`] does all of this.
    ///
    /// The mark locks the producer's row in `mq_inbox_producers` until the
    /// transaction ends, so concurrent marks of the same producer (other
    /// handlers, other processes) wait for each other: keep the transaction
    /// short after marking. On SQLite begin it with `BEGIN IMMEDIATE`.
    ///
    /// # Errors
    ///
    /// [`InboxError::WrongDatabase`] for a transaction on the other kind of
    /// database; [`InboxError::Database`] if a statement failed (roll back).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future leaves the transaction unusable for a consistent
    /// commit; roll it back.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use mq_inbox::{Inbox, Marked};
    /// use mq_protocol::MessageId;
    /// let inbox = Inbox::open("sqlite::memory:", Default::default()).await?;
    /// let pool = inbox.sqlite_pool().unwrap().clone();
    /// let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    /// // ... business writes on &mut *tx ...
    /// assert_eq!(inbox.mark(&mut tx, MessageId::new(7, 1)).await?, Marked::New);
    /// tx.commit().await?;
    /// assert!(inbox.contains(MessageId::new(7, 1)).await?);
    /// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub async fn mark<DB: InboxDatabase>(
        &self,
        tx: &mut Transaction<'_, DB>,
        id: MessageId,
    ) -> Result<Marked, InboxError> {
        self.same_kind::<DB>()?;
        let max = self.inner.config.retention.max_ranges_per_producer;
        let out = DB::mark_in(&mut **tx, id, now_ms(), max).await?;
        if out.forgotten > 0 {
            self.count(|c| &c.forgotten, out.forgotten);
        }
        Ok(out.marked)
    }

    /// True if `id` is recorded as processed (by a committed transaction).
    /// Never true for an ID that was not marked; false for one forgotten
    /// under the retention rule.
    ///
    /// # Errors
    ///
    /// [`InboxError::Database`] if the query failed.
    ///
    /// # Cancel safety
    ///
    /// Read-only; cancelling has no effect.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let inbox = mq_inbox::Inbox::open("sqlite::memory:", Default::default()).await?;
    /// assert!(!inbox.contains(mq_protocol::MessageId::new(1, 1)).await?);
    /// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub async fn contains(&self, id: MessageId) -> Result<bool, InboxError> {
        Ok(match self.db() {
            #[cfg(feature = "sqlite")]
            Db::Sqlite(pool) => ranges::contains_sqlite(&mut *pool.acquire().await?, id).await?,
            #[cfg(feature = "postgres")]
            Db::Postgres(pool) => ranges::contains_pg(&mut *pool.acquire().await?, id).await?,
        })
    }

    /// The ranges recorded for `producer`, lowest first, as inclusive
    /// `(first, last)` sequences.
    ///
    /// # Errors
    ///
    /// [`InboxError::Database`] if the query failed.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let inbox = mq_inbox::Inbox::open("sqlite::memory:", Default::default()).await?;
    /// assert!(inbox.ranges(1).await?.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub async fn ranges(&self, producer: u64) -> Result<Vec<(u64, u64)>, InboxError> {
        Ok(ranges::ranges_of(self.db(), producer).await?)
    }

    /// Wraps `handler` into a [`RecvCallback`] for
    /// `mq_client_receiver::Receiver::start` (in `AckMode::Auto`, the
    /// default): each delivery runs in a transaction with its inbox mark.
    /// See the [crate docs](crate) for what it guarantees.
    ///
    /// `handler` gets the delivery and the open transaction, does its
    /// writes on `&mut *tx`, and returns the transaction to be marked and
    /// committed (or an error, which rolls back and nacks).
    ///
    /// # What happens to one delivery
    ///
    /// 1. Begin a transaction on the inbox's database (`BEGIN IMMEDIATE` on
    ///    SQLite, so a busy database waits instead of failing on upgrade).
    /// 2. If the ID is already in the inbox: roll back, return `Ok` (the
    ///    receiver acks; the business handler is **not** called). This is the
    ///    redelivery of a message whose transaction committed before a crash
    ///    lost its ack.
    /// 3. Call the business handler with the delivery and the transaction. An
    ///    `Err` (or panic) drops the transaction, which rolls it back, and the
    ///    receiver nacks: the message comes back.
    /// 4. Mark the ID in the same transaction. The mark locks the producer's
    ///    row; if a concurrent transaction (another member of the group, after
    ///    a redelivery) committed the same ID meanwhile, the mark finds it:
    ///    roll back everything, return `Ok` (acked, applied once by the other).
    /// 5. Commit, return `Ok`; the receiver acks.
    ///
    /// A crash before the commit leaves nothing: the broker redelivers and the
    /// message is handled. A crash after the commit and before the ack: the
    /// broker redelivers, step 2 finds the ID and acks. A failed commit is
    /// nacked; if it did commit (the reply was lost), step 2 catches the
    /// redelivery.
    ///
    /// # Errors
    ///
    /// [`InboxError::WrongDatabase`] if `DB` is not the inbox's database.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use mq_client_receiver::{Delivery, HandlerError, Receiver, ReceiverConfig};
    /// use sqlx::{Sqlite, Transaction};
    ///
    /// # async fn f(config: ReceiverConfig) -> Result<(), Box<dyn std::error::Error>> {
    /// let inbox = mq_inbox::Inbox::open("sqlite:billing.db", Default::default()).await?;
    /// let handler = inbox.handler(|d: Delivery, mut tx: Transaction<'static, Sqlite>| async move {
    ///     sqlx::query("INSERT INTO charges (order_id) VALUES ($1)")
    ///         .bind(d.payload().to_vec())
    ///         .execute(&mut *tx)
    ///         .await
    ///         .map_err(|e| HandlerError::new(e.to_string()))?;
    ///     Ok(tx)
    /// })?;
    /// let receiver = Receiver::connect(config, handler).await?;
    /// # drop(receiver); Ok(()) }
    /// ```
    pub fn handler<DB, F, Fut>(&self, handler: F) -> Result<TxHandler<DB, F>, InboxError>
    where
        DB: InboxDatabase,
        F: Fn(Delivery, Transaction<'static, DB>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Transaction<'static, DB>, HandlerError>> + Send + 'static,
    {
        self.same_kind::<DB>()?;
        let pool = DB::pool_of(self).ok_or(InboxError::WrongDatabase {
            inbox: self.kind(),
            transaction: DB::KIND,
        })?;
        Ok(TxHandler {
            inbox: self.clone(),
            pool,
            handler: Arc::new(handler),
        })
    }

    fn same_kind<DB: InboxDatabase>(&self) -> Result<(), InboxError> {
        if DB::KIND == self.kind() {
            Ok(())
        } else {
            Err(InboxError::WrongDatabase {
                inbox: self.kind(),
                transaction: DB::KIND,
            })
        }
    }
}

/// The transactional handler made by [`Inbox::handler`]: a
/// [`RecvCallback`] that runs the business handler and the inbox mark in
/// one transaction.
///
/// # Examples
///
/// ```no_run
/// # async fn f(inbox: mq_inbox::Inbox) -> Result<(), mq_inbox::InboxError> {
/// use mq_client_receiver::Delivery;
/// use sqlx::{Postgres, Transaction};
/// let h = inbox.handler(|_d: Delivery, tx: Transaction<'static, Postgres>| async move { Ok(tx) })?;
/// # drop(h); Ok(()) }
/// ```
pub struct TxHandler<DB: InboxDatabase, F> {
    inbox: Inbox,
    pool: Pool<DB>,
    handler: Arc<F>,
}

impl<DB: InboxDatabase, F> std::fmt::Debug for TxHandler<DB, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxHandler")
            .field("inbox", &self.inbox)
            .finish_non_exhaustive()
    }
}

fn db_err(what: &str, e: sqlx::Error) -> HandlerError {
    HandlerError::new(format!("inbox {what} failed: {e}"))
}

impl<DB, F, Fut> RecvCallback for TxHandler<DB, F>
where
    DB: InboxDatabase,
    F: Fn(Delivery, Transaction<'static, DB>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Transaction<'static, DB>, HandlerError>> + Send + 'static,
{
    fn on_message(&self, d: Delivery) -> BoxFuture<'static, Result<(), HandlerError>> {
        let pool = self.pool.clone();
        let handler = self.handler.clone();
        let inbox = self.inbox.clone();
        Box::pin(async move {
            let id = d.id();
            let mut tx = DB::begin_write(&pool)
                .await
                .map_err(|e| db_err("begin", e))?;
            if DB::contains_in(&mut *tx, id)
                .await
                .map_err(|e| db_err("lookup", e))?
            {
                // Committed before a crash lost the ack: ack, do not apply.
                drop(tx);
                inbox.count(|c| &c.found, 1);
                tracing::debug!(%id, "found in the inbox; acking without the handler");
                return Ok(());
            }
            let mut tx = match handler(d, tx).await {
                Ok(tx) => tx,
                Err(e) => {
                    // The transaction was dropped with the error: rolled back.
                    inbox.count(|c| &c.rolled_back, 1);
                    return Err(e);
                }
            };
            let max = inbox.inner.config.retention.max_ranges_per_producer;
            let out = match DB::mark_in(&mut *tx, id, now_ms(), max).await {
                Ok(out) => out,
                Err(e) => {
                    inbox.count(|c| &c.rolled_back, 1);
                    return Err(db_err("mark", e));
                }
            };
            if out.marked == Marked::Already {
                // Another member committed it while this handler ran.
                let _ = tx.rollback().await;
                inbox.count(|c| &c.raced, 1);
                tracing::debug!(%id, "applied concurrently elsewhere; rolled back, acking");
                return Ok(());
            }
            tx.commit().await.map_err(|e| db_err("commit", e))?;
            inbox.count(|c| &c.applied, 1);
            if out.forgotten > 0 {
                inbox.count(|c| &c.forgotten, out.forgotten);
            }
            Ok(())
        })
    }
}
