//! The bounds of a [`DedupTable`](crate::DedupTable), [`Limits`], and the
//! sizes that [`Limits::max_memory_bytes`] adds up.

use std::mem::size_of;

use crate::ranges::{LOWER_FIXED_BYTES, RANGE_BYTES};
use crate::table::PRODUCER_BYTES;

/// The bounds of a [`DedupTable`](crate::DedupTable). A bound of zero is treated as one.
///
/// # Examples
///
/// ```
/// let l = mq_dedup::Limits::new(100, 8, 400);
/// assert_eq!(l.max_producers, 100);
/// assert_eq!(mq_dedup::Limits::default().max_ranges, 262_144);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Producers tracked; past it the least recently active is forgotten.
    /// At most `u32::MAX` are ever tracked.
    pub max_producers: usize,
    /// Ranges of one producer; past it its lowest range is forgotten.
    pub max_ranges_per_producer: usize,
    /// Ranges over all producers; past it the lowest range of the least
    /// recently active producer is forgotten (the producer, if it was its
    /// only range).
    pub max_ranges: usize,
}

impl Limits {
    /// Bounds from the three numbers.
    ///
    /// # Examples
    ///
    /// ```
    /// let l = mq_dedup::Limits::new(10, 2, usize::MAX);
    /// assert_eq!(l.max_ranges_per_producer, 2);
    /// ```
    pub fn new(max_producers: usize, max_ranges_per_producer: usize, max_ranges: usize) -> Self {
        Self {
            max_producers,
            max_ranges_per_producer,
            max_ranges,
        }
    }

    /// The worst-case heap bytes of a table with these bounds, at rest
    /// (between calls): what [`DedupTable::memory_bytes`](crate::DedupTable::memory_bytes) can reach.
    ///
    /// # Examples
    ///
    /// ```
    /// let worst = mq_dedup::Limits::default().max_memory_bytes();
    /// assert!(worst > 14 << 20 && worst <= 16 << 20);
    /// ```
    pub fn max_memory_bytes(&self) -> usize {
        let ranges = self.max_ranges.max(1);
        // Every producer holds at least one range, every one with lower
        // ranges two; an insert may pass `max_ranges` by one.
        let producers = self.producers().min(ranges.saturating_add(1));
        let with_lower = producers.min(ranges / 2 + 1);
        // hashbrown may double the buckets once over what the live
        // entries need, when tombstones fill it.
        index_bytes(producers.saturating_mul(2))
            .saturating_add(slot_capacity(producers).saturating_mul(PRODUCER_BYTES))
            .saturating_add(victims_per_scan(producers).saturating_mul(size_of::<(u64, u64)>()))
            .saturating_add(with_lower.saturating_mul(LOWER_FIXED_BYTES))
            .saturating_add(ranges.saturating_mul(RANGE_BYTES))
    }

    pub(crate) fn producers(&self) -> usize {
        self.max_producers.clamp(1, u32::MAX as usize)
    }
}

impl Default for Limits {
    /// 10 000 producers, 1 024 ranges each, 262 144 in all: at most about
    /// 15 MiB.
    fn default() -> Self {
        Self::new(10_000, 1_024, 262_144)
    }
}

/// Heap bytes of an index with `buckets_for(cap)` buckets.
pub(crate) fn index_bytes(cap: usize) -> usize {
    let buckets = match cap {
        0 => return 0,
        1..=3 => 4,
        4..=7 => 8,
        _ => (cap.saturating_mul(8) / 7).next_power_of_two(),
    };
    // Slot numbers, padded to the control bytes' 16-byte alignment, then a
    // control byte per bucket and a trailing group of 16.
    buckets.saturating_mul(size_of::<u32>()).div_ceil(16) * 16 + buckets.saturating_add(16)
}

/// The slot array's capacity bound for `n` producers.
pub(crate) fn slot_capacity(n: usize) -> usize {
    n.saturating_add(growth(n))
}

/// The slots added when the array is full at `len`.
pub(crate) fn growth(len: usize) -> usize {
    (len / 8).max(4)
}

/// Candidates kept per scan for `producers` producers.
pub(crate) fn victims_per_scan(producers: usize) -> usize {
    (producers / 16).max(producers.min(16))
}
