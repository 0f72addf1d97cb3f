//! The sans-IO dedup window: which message IDs this receiver has processed.
//!
//! # Layout
//!
//! * [`DedupWindow`]: the workspace's one dedup range-set,
//!   [`mq_dedup::DedupTable`] (shared with the broker), under the bounds of
//!   [`DedupConfig`], keyed with [`mq_protocol::hash::FastState`] (random
//!   keys: peers choose producer ids), and the clock: activity stamps are
//!   nanoseconds since the first `now` seen.
//! * Per producer, the sequences seen are sorted disjoint inclusive ranges
//!   ([`mq_dedup::Ranges`]); a contiguous run of any length is one range,
//!   held inline in the producer's 40-byte slot. Lower ranges (gaps left by
//!   messages not processed here) live in a B-tree only for the producers
//!   that have gaps.
//! * Four explicit bounds: producers tracked (the least recently active one
//!   is evicted), ranges per producer (its lowest range is evicted), ranges
//!   in total (the lowest range of the least recently active producer is
//!   evicted), idle expiry (a producer not inserted into for that long is
//!   dropped by [`DedupWindow::expire`]).
//!
//! The window never reads a clock: every call that needs time takes `now`.
//!
//! # Memory
//!
//! [`DedupWindow::memory_bytes`] is the heap used, from the real container
//! capacities; `tests/dedup_memory.rs` checks it against a counting
//! allocator. A producer that sends in order costs about 40 to 60 bytes.
//! [`DedupConfig::max_memory_bytes`] is the worst case the bounds allow:
//! about 15 MiB with the defaults (10 000 producers, 262 144 ranges), of
//! which 12 MiB are ranges at [`RANGE_BYTES`] each.
//!
//! # The invariant
//!
//! The window may *forget* (an evicted ID reads as unseen, so a later
//! duplicate reaches the handler), but it never *invents*: `contains(id)` is
//! true only for an ID that was passed to `insert`. Evicting removes whole
//! ranges or whole producers; two ranges are never merged across a gap,
//! because the merged range would claim IDs nobody processed.

use std::time::Instant;

use mq_dedup::{DedupTable, Limits};
use mq_protocol::hash::FastState;
use mq_protocol::MessageId;

use crate::config::DedupConfig;

/// Estimated bytes of one range stored below a producer's highest range
/// (its key and value and its share of B-tree nodes, nodes at least half
/// full). Measured: about 34 bytes when ranges arrive in order.
pub const RANGE_BYTES: usize = mq_dedup::RANGE_BYTES;
/// Bytes of one producer's slot: the producer id, its activity stamp and
/// its highest range (inline), and the pointer to its lower ranges. Add
/// [`mq_dedup::INDEX_BUCKET_BYTES`] per bucket of the index (two to three
/// buckets per producer).
pub const PRODUCER_BYTES: usize = mq_dedup::PRODUCER_BYTES;

fn limits(c: &DedupConfig) -> Limits {
    Limits::new(c.max_producers, c.max_ranges_per_producer, c.max_ranges)
}

/// The worst-case heap bytes of a window with these bounds (see
/// [`DedupConfig::max_memory_bytes`]).
pub(crate) fn max_memory_bytes(c: &DedupConfig) -> usize {
    limits(c).max_memory_bytes()
}

/// The set of processed message IDs, bounded, exact within its bounds.
///
/// # Examples
///
/// ```
/// use std::time::Instant;
/// use mq_client_receiver::{DedupConfig, DedupWindow};
/// use mq_protocol::MessageId;
///
/// let mut w = DedupWindow::new(DedupConfig::default());
/// let now = Instant::now();
/// for seq in 0..1000 {
///     w.insert(now, MessageId::new(7, seq));
/// }
/// assert!(w.contains(MessageId::new(7, 999)));
/// assert!(!w.contains(MessageId::new(7, 1000)));
/// assert_eq!(w.range_count(7), 1);
/// ```
#[derive(Debug)]
pub struct DedupWindow {
    config: DedupConfig,
    table: DedupTable<FastState>,
    /// The first `now` seen; stamps count nanoseconds from it.
    epoch: Option<Instant>,
}

impl DedupWindow {
    /// An empty window with the given bounds. Bounds of zero are treated as
    /// one (use [`DedupConfig::validate`] to refuse them instead).
    ///
    /// # Examples
    ///
    /// ```
    /// let w = mq_client_receiver::DedupWindow::new(Default::default());
    /// assert_eq!(w.producer_count(), 0);
    /// ```
    pub fn new(config: DedupConfig) -> Self {
        Self {
            table: DedupTable::with_hasher(limits(&config), FastState::default()),
            config,
            epoch: None,
        }
    }

    /// The bounds this window enforces.
    ///
    /// # Examples
    ///
    /// ```
    /// let w = mq_client_receiver::DedupWindow::new(Default::default());
    /// assert_eq!(w.config().max_producers, 10_000);
    /// ```
    pub fn config(&self) -> &DedupConfig {
        &self.config
    }

    /// True if `id` was inserted and has not been evicted since.
    ///
    /// Never true for an ID that was not inserted.
    ///
    /// # Examples
    ///
    /// ```
    /// use mq_protocol::MessageId;
    /// let mut w = mq_client_receiver::DedupWindow::new(Default::default());
    /// w.insert(std::time::Instant::now(), MessageId::new(1, 5));
    /// assert!(w.contains(MessageId::new(1, 5)));
    /// assert!(!w.contains(MessageId::new(1, 6)));
    /// ```
    pub fn contains(&self, id: MessageId) -> bool {
        self.table.contains(id.producer, id.seq)
    }

    /// Records `id` as processed at `now` and marks its producer active.
    /// Returns false if it was already recorded.
    ///
    /// May evict to stay within bounds: the least recently active producer
    /// when a new producer would exceed `max_producers`; the lowest range of
    /// this producer when a new range would exceed `max_ranges_per_producer`
    /// (which can be the range just created, when it is the lowest); the
    /// lowest range of the least recently active producer (the whole
    /// producer if it was its only range) while the ranges of all producers
    /// exceed `max_ranges`. Each eviction is counted in
    /// [`DedupWindow::evictions`].
    ///
    /// `now` should not go backwards between calls; if it does, idle expiry
    /// only happens later than it would have, never earlier.
    ///
    /// # Examples
    ///
    /// ```
    /// use mq_protocol::MessageId;
    /// let mut w = mq_client_receiver::DedupWindow::new(Default::default());
    /// let now = std::time::Instant::now();
    /// assert!(w.insert(now, MessageId::new(1, 1)));
    /// assert!(!w.insert(now, MessageId::new(1, 1)));
    /// ```
    pub fn insert(&mut self, now: Instant, id: MessageId) -> bool {
        let ns = self.nanos(now);
        self.table.insert(ns, id.producer, id.seq)
    }

    /// Drops every producer not inserted into for at least
    /// `idle_expiry` before `now`. Returns how many were dropped (also
    /// counted in [`DedupWindow::evictions`]).
    ///
    /// Cheap when nothing can have expired: the window knows a lower bound
    /// of every producer's last activity. Activity stamps are nanoseconds,
    /// bumped by one per earlier insert at the same instant to stay unique,
    /// so expiry can come that many nanoseconds late, never early.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use mq_protocol::MessageId;
    /// let mut w = mq_client_receiver::DedupWindow::new(Default::default());
    /// let t0 = Instant::now();
    /// w.insert(t0, MessageId::new(1, 1));
    /// assert_eq!(w.expire(t0 + Duration::from_secs(3600)), 1);
    /// assert!(!w.contains(MessageId::new(1, 1)));
    /// ```
    pub fn expire(&mut self, now: Instant) -> usize {
        if self.table.producer_count() == 0 {
            return 0;
        }
        let ns = self.nanos(now);
        let idle = u64::try_from(self.config.idle_expiry.as_nanos()).unwrap_or(u64::MAX);
        self.table.expire(ns, idle)
    }

    /// Evictions so far: producers dropped (bound or idle expiry) plus
    /// ranges dropped. Each one may let a later duplicate reach the handler.
    ///
    /// # Examples
    ///
    /// ```
    /// let w = mq_client_receiver::DedupWindow::new(Default::default());
    /// assert_eq!(w.evictions(), 0);
    /// ```
    pub fn evictions(&self) -> u64 {
        self.table.evictions()
    }

    /// Producers currently tracked (at most `max_producers`).
    ///
    /// # Examples
    ///
    /// ```
    /// let w = mq_client_receiver::DedupWindow::new(Default::default());
    /// assert_eq!(w.producer_count(), 0);
    /// ```
    pub fn producer_count(&self) -> usize {
        self.table.producer_count()
    }

    /// Ranges held for `producer` (at most `max_ranges_per_producer`).
    ///
    /// # Examples
    ///
    /// ```
    /// let w = mq_client_receiver::DedupWindow::new(Default::default());
    /// assert_eq!(w.range_count(1), 0);
    /// ```
    pub fn range_count(&self, producer: u64) -> usize {
        self.table.range_count(producer)
    }

    /// Ranges held over all producers (at most `max_ranges`).
    ///
    /// # Examples
    ///
    /// ```
    /// let w = mq_client_receiver::DedupWindow::new(Default::default());
    /// assert_eq!(w.total_ranges(), 0);
    /// ```
    pub fn total_ranges(&self) -> usize {
        self.table.total_ranges()
    }

    /// The heap bytes used, from the containers' real capacities:
    /// [`PRODUCER_BYTES`] per slot of the producer array (which keeps its
    /// size after producers leave, until expiry shrinks it), the index's
    /// allocation, and for the producers with gaps a boxed B-tree with its
    /// first leaf and [`RANGE_BYTES`] per range below the highest. It is
    /// at most [`DedupConfig::max_memory_bytes`].
    ///
    /// # Examples
    ///
    /// ```
    /// use mq_client_receiver::dedup::{DedupWindow, PRODUCER_BYTES};
    /// use mq_protocol::MessageId;
    /// let mut w = DedupWindow::new(Default::default());
    /// let now = std::time::Instant::now();
    /// for seq in 0..1_000_000 {
    ///     w.insert(now, MessageId::new(1, seq));
    /// }
    /// // Four slots and a small index; nothing per range.
    /// assert!(w.memory_bytes() <= 4 * PRODUCER_BYTES + 64);
    /// assert!(w.memory_bytes() <= w.config().max_memory_bytes());
    /// ```
    pub fn memory_bytes(&self) -> usize {
        self.table.memory_bytes()
    }

    /// Nanoseconds from one before the first `now` seen (so the first
    /// stamp, 1, is exact).
    fn nanos(&mut self, now: Instant) -> u64 {
        let epoch = *self.epoch.get_or_insert(now);
        let ns = now.saturating_duration_since(epoch).as_nanos();
        u64::try_from(ns).unwrap_or(u64::MAX).saturating_add(1)
    }
}

#[cfg(test)]
#[path = "dedup_tests.rs"]
mod tests;
