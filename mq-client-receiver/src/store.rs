//! [`DedupStore`]: where processed IDs are remembered, and the in-memory
//! default [`MemoryDedupStore`] over a [`DedupWindow`].
//!
//! # An async store that never blocks the driver
//!
//! Every method returns a [`StoreFuture`]: either an answer that is already
//! there ([`StoreFuture::ready`], no allocation, what the in-memory store
//! returns) or a boxed `'static` future ([`StoreFuture::new`], what a
//! database store returns). The driver takes a ready answer inline, exactly
//! as a plain function call; a pending one is polled next to the
//! connection, so a slow database never stalls reading frames, credit,
//! heartbeats or other deliveries.
//!
//! While a lookup (`contains`) or a mark (`insert`) of an ID is pending the
//! ID counts as in progress: another delivery of it (a redelivery after a
//! reconnect) is tied to it instead of starting a second handler call. The
//! `Ack` of a delivery is written only after its mark completed, so a
//! durable store has recorded the ID before the broker may delete the
//! message.
//!
//! # Adding a persistent store
//!
//! Implement [`DedupStore`] over a table keyed by `(producer, range start)`
//! (or `(producer, seq)`), and pass it to
//! [`crate::ReceiverBuilder::dedup_store`]. The `mq-inbox` crate does this
//! on SQLite and Postgres. Rules an implementation must keep:
//!
//! * `contains` may answer false for anything (forgetting is safe), but must
//!   never answer true for an ID that was not `insert`ed.
//! * The returned futures must be `'static` (clone a pool handle into them)
//!   and should finish in bounded time: the receiver waits for a pending
//!   mark before acking and for pending calls before shutting down.
//! * Errors are reported as [`StoreError`]: a failed `contains` is treated
//!   as "not seen" (the handler may see a duplicate); a failed `insert` is
//!   logged and the message is still acked (it *was* processed).
//!
//! New methods will only ever be added to the trait with default bodies, so
//! an implementation written today keeps compiling.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use mq_protocol::MessageId;

use crate::config::DedupConfig;
use crate::dedup::DedupWindow;

/// Why a [`DedupStore`] call failed.
///
/// # Examples
///
/// ```
/// let e = mq_client_receiver::StoreError::Backend("disk full".into());
/// assert!(e.to_string().contains("disk full"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backing storage failed; the receiver degrades to "not seen"
    /// (possible duplicate to the handler), never to "seen".
    #[error("dedup store backend failed: {0}")]
    Backend(String),
}

/// The answer of a [`DedupStore`] call: ready now, or a future to await.
///
/// It is a `Future` (await it), and the receiver's driver also asks it
/// without polling whether the answer is already there, so an in-memory
/// store costs neither an allocation nor a trip through the executor.
///
/// # Examples
///
/// ```
/// use mq_client_receiver::StoreFuture;
/// # tokio_test::block_on(async {
/// let now: StoreFuture<bool> = StoreFuture::ready(Ok(true));
/// assert!(now.await.unwrap());
/// let later = StoreFuture::new(async { Ok(false) });
/// assert!(!later.await.unwrap());
/// # });
/// ```
#[must_use = "a store call does nothing until its future is awaited"]
pub struct StoreFuture<T>(Repr<T>);

enum Repr<T> {
    Ready(Option<Result<T, StoreError>>),
    Pending(BoxFuture<'static, Result<T, StoreError>>),
}

impl<T> StoreFuture<T> {
    /// An answer that is already known.
    ///
    /// # Examples
    ///
    /// ```
    /// let f = mq_client_receiver::StoreFuture::ready(Ok(()));
    /// assert!(f.is_ready());
    /// ```
    pub fn ready(result: Result<T, StoreError>) -> Self {
        StoreFuture(Repr::Ready(Some(result)))
    }

    /// An answer that needs I/O: the future runs when the driver (or
    /// whoever awaits it) polls it. It must not borrow the store: clone the
    /// handles it needs into it.
    ///
    /// # Examples
    ///
    /// ```
    /// let f = mq_client_receiver::StoreFuture::new(async { Ok(7) });
    /// assert!(!f.is_ready());
    /// ```
    pub fn new(fut: impl Future<Output = Result<T, StoreError>> + Send + 'static) -> Self {
        StoreFuture(Repr::Pending(Box::pin(fut)))
    }

    /// True if the answer is known without polling.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(mq_client_receiver::StoreFuture::<()>::ready(Ok(())).is_ready());
    /// ```
    pub fn is_ready(&self) -> bool {
        matches!(self.0, Repr::Ready(Some(_)))
    }

    /// The answer if it is already known, else the future itself.
    pub(crate) fn into_ready(self) -> Result<Result<T, StoreError>, Self> {
        match self.0 {
            Repr::Ready(Some(r)) => Ok(r),
            other => Err(StoreFuture(other)),
        }
    }
}

// Nothing is pinned structurally: the ready value is moved out, the pending
// future is already boxed.
impl<T> Unpin for StoreFuture<T> {}

impl<T> Future for StoreFuture<T> {
    type Output = Result<T, StoreError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().0 {
            Repr::Ready(r) => Poll::Ready(
                r.take()
                    .unwrap_or_else(|| Err(StoreError::Backend("polled after completion".into()))),
            ),
            Repr::Pending(f) => f.as_mut().poll(cx),
        }
    }
}

impl<T> std::fmt::Debug for StoreFuture<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.is_ready() {
            "StoreFuture(ready)"
        } else {
            "StoreFuture(pending)"
        })
    }
}

/// Memory of processed message IDs, shared by the driver and possibly by a
/// later receiver (pass the same `Arc` to a restarted receiver and it keeps
/// suppressing duplicates of what the first one processed).
///
/// Every call returns a [`StoreFuture`]; see the [module docs](self) for
/// how the driver runs them without blocking.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use mq_client_receiver::{DedupStore, MemoryDedupStore};
/// use mq_protocol::MessageId;
///
/// # tokio_test::block_on(async {
/// let store: Arc<dyn DedupStore> = Arc::new(MemoryDedupStore::default());
/// store.insert(std::time::Instant::now(), MessageId::new(1, 1)).await?;
/// assert!(store.contains(MessageId::new(1, 1)).await?);
/// # Ok::<(), mq_client_receiver::StoreError>(()) }).unwrap();
/// ```
pub trait DedupStore: Send + Sync + 'static {
    /// True if `id` was recorded as processed. Must never be true for an ID
    /// that was not passed to [`DedupStore::insert`].
    ///
    /// # Errors
    ///
    /// [`StoreError`]; the receiver then treats the ID as not seen.
    fn contains(&self, id: MessageId) -> StoreFuture<bool>;

    /// Records `id` as processed at `now` (the driver's clock). The
    /// receiver acks the message when this completes (with success or not).
    ///
    /// # Errors
    ///
    /// [`StoreError`]; the receiver logs it and still acks.
    fn insert(&self, now: Instant, id: MessageId) -> StoreFuture<()>;

    /// Forgets what the store's retention allows at `now`. Called at least
    /// every [`crate::EXPIRE_INTERVAL`]; the receiver does not wait for it.
    /// Default: nothing.
    ///
    /// # Errors
    ///
    /// [`StoreError`]; the receiver logs it.
    fn expire(&self, now: Instant) -> StoreFuture<()> {
        let _ = now;
        StoreFuture::ready(Ok(()))
    }

    /// Makes earlier inserts durable. Awaited at shutdown. Default: nothing.
    ///
    /// # Errors
    ///
    /// [`StoreError`]; the receiver logs it.
    fn flush(&self) -> StoreFuture<()> {
        StoreFuture::ready(Ok(()))
    }

    /// Entries forgotten so far (each may let a duplicate through).
    /// Default: 0.
    fn evictions(&self) -> u64 {
        0
    }
}

/// The default store: a [`DedupWindow`] behind a mutex. Lost when the process
/// exits, so after a restart duplicates of earlier messages reach the handler.
///
/// # Examples
///
/// ```
/// use mq_client_receiver::{DedupConfig, MemoryDedupStore};
/// let store = MemoryDedupStore::new(DedupConfig::default().max_producers(10));
/// assert_eq!(store.memory_bytes(), 0);
/// ```
#[derive(Debug)]
pub struct MemoryDedupStore {
    window: Mutex<DedupWindow>,
}

impl MemoryDedupStore {
    /// An empty store with the given bounds.
    ///
    /// # Examples
    ///
    /// ```
    /// let s = mq_client_receiver::MemoryDedupStore::new(Default::default());
    /// # let _ = s;
    /// ```
    pub fn new(config: DedupConfig) -> Self {
        Self {
            window: Mutex::new(DedupWindow::new(config)),
        }
    }

    /// The window's memory estimate ([`DedupWindow::memory_bytes`]).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(mq_client_receiver::MemoryDedupStore::default().memory_bytes(), 0);
    /// ```
    pub fn memory_bytes(&self) -> usize {
        self.lock(|w| w.memory_bytes())
    }

    fn lock<T>(&self, f: impl FnOnce(&mut DedupWindow) -> T) -> T {
        // A panic while holding the lock cannot leave the window claiming an
        // unseen ID (every mutation only adds a seen ID or removes entries),
        // so a poisoned lock is safe to keep using.
        let mut g = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut g)
    }
}

impl Default for MemoryDedupStore {
    fn default() -> Self {
        Self::new(DedupConfig::default())
    }
}

impl DedupStore for MemoryDedupStore {
    fn contains(&self, id: MessageId) -> StoreFuture<bool> {
        StoreFuture::ready(Ok(self.lock(|w| w.contains(id))))
    }

    fn insert(&self, now: Instant, id: MessageId) -> StoreFuture<()> {
        self.lock(|w| {
            w.expire(now);
            w.insert(now, id);
        });
        StoreFuture::ready(Ok(()))
    }

    fn expire(&self, now: Instant) -> StoreFuture<()> {
        self.lock(|w| w.expire(now));
        StoreFuture::ready(Ok(()))
    }

    fn evictions(&self) -> u64 {
        self.lock(|w| w.evictions())
    }
}
