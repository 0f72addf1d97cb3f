//! The non-transactional form: [`InboxStore`], a
//! [`DedupStore`](mq_client_receiver::DedupStore) on the inbox tables for
//! [`ReceiverBuilder::dedup_store`](mq_client_receiver::ReceiverBuilder::dedup_store).
//!
//! The receiver looks each delivery up in the database (without blocking
//! its driver), calls the handler for an unseen one, and after the handler
//! returns `Ok` marks the ID in its own short transaction and then acks.
//!
//! # The crash window
//!
//! The handler's effects and the mark are two commits. A crash (or a
//! failed mark) **after the handler's effects and before the mark
//! commits** leaves the message unmarked and unacked: the broker
//! redelivers it and the handler runs again. Use it for handlers whose
//! effects are idempotent or outside the database; when the effects are
//! rows in the same database, use [`Inbox::handler`] instead, which has no
//! such window. A crash after the mark and before the ack is safe: the
//! redelivery is found and acked without calling the handler.

use std::sync::atomic::Ordering;
use std::time::Instant;

use mq_client_receiver::{DedupStore, StoreError, StoreFuture};
use mq_protocol::MessageId;

use crate::inbox::{now_ms, Db, Inbox};
use crate::ranges;

/// A [`DedupStore`] on the inbox tables: durable, shared by every receiver
/// (and process) using the same database. Made by [`Inbox::dedup_store`].
///
/// # Examples
///
/// ```no_run
/// use std::sync::Arc;
/// use mq_client_receiver::{Delivery, HandlerError, ReceiverBuilder, ReceiverConfig};
///
/// # async fn f(config: ReceiverConfig) -> Result<(), Box<dyn std::error::Error>> {
/// let inbox = mq_inbox::Inbox::open("sqlite:consumer.db", Default::default()).await?;
/// let receiver = ReceiverBuilder::new(config)
///     .dedup_store(Arc::new(inbox.dedup_store()))
///     .start(|d: Delivery| async move {
///         println!("{}", d.id()); // idempotent effects only: see the crash window
///         Ok::<(), HandlerError>(())
///     })
///     .await?;
/// # drop(receiver); Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct InboxStore {
    inbox: Inbox,
}

impl Inbox {
    /// The inbox as a receiver [`DedupStore`] (the non-transactional form;
    /// see [`InboxStore`] for its crash window).
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use mq_client_receiver::DedupStore;
    /// use mq_protocol::MessageId;
    /// let inbox = mq_inbox::Inbox::open("sqlite::memory:", Default::default()).await.unwrap();
    /// let store = inbox.dedup_store();
    /// store.insert(std::time::Instant::now(), MessageId::new(3, 9)).await.unwrap();
    /// assert!(store.contains(MessageId::new(3, 9)).await.unwrap());
    /// # });
    /// ```
    pub fn dedup_store(&self) -> InboxStore {
        InboxStore {
            inbox: self.clone(),
        }
    }
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl DedupStore for InboxStore {
    fn contains(&self, id: MessageId) -> StoreFuture<bool> {
        let inbox = self.inbox.clone();
        StoreFuture::new(async move { inbox.contains(id).await.map_err(backend) })
    }

    fn insert(&self, _now: Instant, id: MessageId) -> StoreFuture<()> {
        let inbox = self.inbox.clone();
        StoreFuture::new(async move {
            let max = inbox.inner.config.retention.max_ranges_per_producer;
            let out = match inbox.db() {
                #[cfg(feature = "sqlite")]
                Db::Sqlite(pool) => {
                    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(backend)?;
                    let out = ranges::mark_sqlite(&mut tx, id, now_ms(), max)
                        .await
                        .map_err(backend)?;
                    tx.commit().await.map_err(backend)?;
                    out
                }
                #[cfg(feature = "postgres")]
                Db::Postgres(pool) => {
                    let mut tx = pool.begin().await.map_err(backend)?;
                    let out = ranges::mark_pg(&mut tx, id, now_ms(), max)
                        .await
                        .map_err(backend)?;
                    tx.commit().await.map_err(backend)?;
                    out
                }
            };
            if out.marked == ranges::Marked::New {
                inbox.count(|c| &c.applied, 1);
            }
            if out.forgotten > 0 {
                inbox.count(|c| &c.forgotten, out.forgotten);
            }
            Ok(())
        })
    }

    fn expire(&self, _now: Instant) -> StoreFuture<()> {
        let inner = &self.inbox.inner;
        let now = now_ms() as u64;
        let every = u64::try_from(inner.config.compact_interval.as_millis()).unwrap_or(u64::MAX);
        let last = inner.last_compact.load(Ordering::Relaxed);
        if now.saturating_sub(last) < every
            || inner
                .last_compact
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return StoreFuture::ready(Ok(()));
        }
        let inbox = self.inbox.clone();
        StoreFuture::new(async move {
            inbox.compact().await.map_err(backend)?;
            Ok(())
        })
    }

    fn evictions(&self) -> u64 {
        self.inbox.counters().forgotten
    }
}
