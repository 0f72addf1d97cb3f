//! [`DedupStore`]: where processed IDs are remembered, and the in-memory
//! default [`MemoryDedupStore`] over a [`DedupWindow`].
//!
//! # Adding a persistent store
//!
//! Implement [`DedupStore`] over a table keyed by `(producer, range start)`
//! (or `(producer, seq)`), and pass it to
//! [`crate::ReceiverBuilder::dedup_store`]. Rules an implementation must keep:
//!
//! * `contains` may answer false for anything (forgetting is safe), but must
//!   never answer true for an ID that was not `insert`ed.
//! * The driver calls the methods inline on its task, once per delivery and
//!   once per ack; keep them quick (an in-process cache in front of the
//!   database, writes batched and made durable in `flush`).
//! * Errors are reported as [`StoreError`]: a failed `contains` is treated
//!   as "not seen" (the handler may see a duplicate); a failed `insert` is
//!   logged and the message is still acked (it *was* processed).
//!
//! New methods will only ever be added to the trait with default bodies, so
//! an implementation written today keeps compiling.

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

/// Memory of processed message IDs, shared by the driver and possibly by a
/// later receiver (pass the same `Arc` to a restarted receiver and it keeps
/// suppressing duplicates of what the first one processed).
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use mq_client_receiver::{DedupStore, MemoryDedupStore};
/// use mq_protocol::MessageId;
///
/// let store: Arc<dyn DedupStore> = Arc::new(MemoryDedupStore::default());
/// store.insert(std::time::Instant::now(), MessageId::new(1, 1)).unwrap();
/// assert!(store.contains(MessageId::new(1, 1)).unwrap());
/// ```
pub trait DedupStore: Send + Sync + 'static {
    /// True if `id` was recorded as processed. Must never be true for an ID
    /// that was not passed to [`DedupStore::insert`].
    ///
    /// # Errors
    ///
    /// [`StoreError`]; the receiver then treats the ID as not seen.
    fn contains(&self, id: MessageId) -> Result<bool, StoreError>;

    /// Records `id` as processed at `now` (the driver's clock).
    ///
    /// # Errors
    ///
    /// [`StoreError`]; the receiver logs it and still acks.
    fn insert(&self, now: Instant, id: MessageId) -> Result<(), StoreError>;

    /// Forgets what the store's idle expiry allows at `now`. Default: nothing.
    ///
    /// # Errors
    ///
    /// [`StoreError`]; the receiver logs it.
    fn expire(&self, now: Instant) -> Result<(), StoreError> {
        let _ = now;
        Ok(())
    }

    /// Makes earlier inserts durable. Called at shutdown. Default: nothing.
    ///
    /// # Errors
    ///
    /// [`StoreError`]; the receiver logs it.
    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
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
/// let store = MemoryDedupStore::new(DedupConfig { max_producers: 10, ..Default::default() });
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
    fn contains(&self, id: MessageId) -> Result<bool, StoreError> {
        Ok(self.lock(|w| w.contains(id)))
    }

    fn insert(&self, now: Instant, id: MessageId) -> Result<(), StoreError> {
        self.lock(|w| {
            w.expire(now);
            w.insert(now, id);
        });
        Ok(())
    }

    fn expire(&self, now: Instant) -> Result<(), StoreError> {
        self.lock(|w| w.expire(now));
        Ok(())
    }

    fn evictions(&self) -> u64 {
        self.lock(|w| w.evictions())
    }
}
