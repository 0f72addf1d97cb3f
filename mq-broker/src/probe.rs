//! Hooks for measurements outside the crate (the bench's memory figures):
//! the broker's own private structures, driven the way the core drives
//! them. Not part of the API; may change in any release.

use mq_protocol::MessageId;

use crate::dedup::Dedup;

/// The broker's dedup table (the exact type its core keeps), for measuring
/// its memory per producer with a counting allocator.
///
/// # Examples
///
/// ```
/// let mut d = mq_broker::probe::DedupProbe::new(10_000, 1_000);
/// for seq in 1..=100 {
///     d.insert(7, seq);
/// }
/// assert_eq!(d.producers(), 1);
/// assert!(d.contains(7, 50) && !d.contains(7, 101));
/// ```
#[derive(Debug)]
pub struct DedupProbe(Dedup);

impl DedupProbe {
    /// A table with the broker's bounds (`BrokerConfig::dedup_max_producers`
    /// and `dedup_max_ranges_per_producer`).
    ///
    /// # Examples
    ///
    /// See [`DedupProbe`].
    pub fn new(max_producers: usize, max_ranges: usize) -> Self {
        DedupProbe(Dedup::new(max_producers, max_ranges))
    }

    /// Records `producer`'s `seq` as landed, as the core does for a stored
    /// message.
    ///
    /// # Examples
    ///
    /// See [`DedupProbe`].
    pub fn insert(&mut self, producer: u64, seq: u64) {
        self.0.insert(MessageId::new(producer, seq));
    }

    /// True if the table would answer `Duplicate` for this ID.
    ///
    /// # Examples
    ///
    /// See [`DedupProbe`].
    pub fn contains(&self, producer: u64, seq: u64) -> bool {
        self.0.contains(MessageId::new(producer, seq))
    }

    /// Producers tracked.
    ///
    /// # Examples
    ///
    /// See [`DedupProbe`].
    pub fn producers(&self) -> usize {
        self.0.producers()
    }

    /// Heap bytes the table holds, by its own count (the bench checks it
    /// against the counting allocator).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut d = mq_broker::probe::DedupProbe::new(10, 10);
    /// d.insert(1, 1);
    /// assert!(d.memory_bytes() > 0);
    /// ```
    pub fn memory_bytes(&self) -> usize {
        self.0.memory_bytes()
    }

    /// Ranges held over all producers.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut d = mq_broker::probe::DedupProbe::new(10, 10);
    /// d.insert(1, 1);
    /// d.insert(1, 3);
    /// assert_eq!(d.ranges(), 2);
    /// ```
    pub fn ranges(&self) -> usize {
        self.0.export().map(|(_, r)| r.len()).sum()
    }
}
