//! Exact, bounded dedup of message IDs (producer id + sequence), sans-IO.
//!
//! Both sides of a reliable-delivery broker remember which IDs they have
//! seen: the broker, so a retransmit of a landed message is answered
//! `Duplicate`; the receiver, so a redelivery of a processed message is
//! acked without reaching the handler. This crate is that one memory.
//!
//! # Layout
//!
//! * `ranges.rs`: [`Ranges`], one producer's sequences as sorted,
//!   disjoint, non-adjacent inclusive ranges, the highest inline; the dedup
//!   rule (join only by the one missing sequence, forget whole ranges).
//! * `table.rs`: [`DedupTable`], the ranges of many producers under their
//!   bounds and idle expiry, with [`DedupTable::memory_bytes`] from real
//!   capacities; the eviction rules.
//! * `limits.rs`: [`Limits`] (producers, ranges per producer, ranges in
//!   total) and the worst case they allow, [`Limits::max_memory_bytes`].
//!
//! # The invariant
//!
//! The table may *forget* (an evicted ID reads as unseen, so a later
//! duplicate gets through), but it never *invents*: `contains` is true only
//! for an ID that was inserted. Evicting removes whole ranges or whole
//! producers; two ranges are never merged across a gap, because the merged
//! range would claim IDs nobody saw (for the broker, a message answered
//! `Duplicate` and never stored: a loss).
//!
//! # Examples
//!
//! ```
//! use mq_dedup::{DedupTable, Limits};
//!
//! let mut seen: DedupTable = DedupTable::new(Limits::new(1_000, 64, 10_000));
//! assert!(seen.insert(0, 42, 1));
//! assert!(seen.insert(0, 42, 2));
//! assert!(!seen.insert(0, 42, 1), "a duplicate");
//! assert_eq!(seen.range_count(42), 1);
//! ```

mod limits;
mod ranges;
mod table;

pub use limits::Limits;
pub use ranges::{Insert, Ranges, RANGE_BYTES};
pub use table::{DedupTable, INDEX_BUCKET_BYTES, PRODUCER_BYTES};
