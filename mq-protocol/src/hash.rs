//! One fast hasher for the tables every side keys by message ID, producer
//! ID or name: the sender's in-flight table, the receiver's dedup window and
//! driver maps, the broker's store, groups and dedup.
//!
//! SipHash, the standard library's default, cost several percent of the hot
//! paths (see docs/BENCHMARKS.md). [`FastState`] is aHash (the maintained
//! `ahash` crate) with keys drawn at random per map from a per-process
//! random source, so a peer choosing message IDs cannot precompute keys that
//! share a bucket (hash flooding): it replaced a hand-written folded
//! multiply with one 64-bit seed and a fixed multiplier, which had no
//! published analysis of its resistance. The newtype keeps `ahash` out of
//! this crate's public API. `cargo bench -p mq-protocol --bench hash`
//! compares the three (aHash, the old folded multiply, SipHash) in one run;
//! docs/BENCHMARKS.md has the figures. It is not a cryptographic hash.
//!
//! # Examples
//!
//! ```
//! use mq_protocol::hash::FastMap;
//! use mq_protocol::MessageId;
//!
//! let mut in_flight: FastMap<MessageId, &str> = FastMap::default();
//! in_flight.insert(MessageId::new(1, 7), "order 7");
//! assert_eq!(in_flight.get(&MessageId::new(1, 7)), Some(&"order 7"));
//! ```

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

/// A `HashMap` hashed with [`FastState`].
pub type FastMap<K, V> = HashMap<K, V, FastState>;

/// Builds [`FastHasher`]s sharing one set of random keys.
///
/// # Examples
///
/// ```
/// use std::hash::BuildHasher;
/// let s = mq_protocol::hash::FastState::default();
/// assert_eq!(s.hash_one(42u64), s.hash_one(42u64));
/// ```
#[derive(Debug, Clone)]
pub struct FastState(ahash::RandomState);

impl Default for FastState {
    /// Fresh random keys (aHash's `RandomState::new`).
    fn default() -> Self {
        Self(ahash::RandomState::new())
    }
}

impl BuildHasher for FastState {
    type Hasher = FastHasher;

    #[inline]
    fn build_hasher(&self) -> FastHasher {
        FastHasher(self.0.build_hasher())
    }
}

/// One hash in progress (see the [module docs](self)).
///
/// # Examples
///
/// ```
/// use std::hash::{BuildHasher, Hasher};
/// let mut h = mq_protocol::hash::FastState::default().build_hasher();
/// h.write(b"orders");
/// let _ = h.finish();
/// ```
#[derive(Debug, Clone)]
pub struct FastHasher(ahash::AHasher);

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        self.0.write(bytes);
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.0.write_u8(i);
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.0.write_u32(i);
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.0.write_u64(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.0.write_usize(i);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MessageId;

    #[test]
    fn maps_behave_like_maps() {
        let mut m: FastMap<MessageId, u64> = FastMap::default();
        for p in 1..=3 {
            for s in 0..1000 {
                m.insert(MessageId::new(p, s), p * 10_000 + s);
            }
        }
        assert_eq!(m.len(), 3000);
        assert_eq!(m.get(&MessageId::new(2, 999)), Some(&20_999));
        assert_eq!(m.remove(&MessageId::new(3, 0)), Some(30_000));
        assert!(!m.contains_key(&MessageId::new(3, 0)));
    }

    #[test]
    fn keys_differ_between_maps() {
        // Two maps hash the same ID differently: keys are random per map,
        // so a colliding set found against one map does not carry over.
        let id = MessageId::new(1, 2);
        let differ =
            (0..8).any(|_| FastState::default().hash_one(id) != FastState::default().hash_one(id));
        assert!(differ);
    }

    #[test]
    fn high_bits_reach_the_low_bits() {
        // Keys differing only in their top byte must not share their low
        // bits, or a table would put them all in one bucket (a random
        // function averages ~162 distinct low bytes of 256, sd about 5;
        // 130 is six deviations below).
        for _ in 0..200 {
            let s = FastState::default();
            let lows: std::collections::HashSet<u64> =
                (0..256u64).map(|i| s.hash_one(i << 56) & 0xff).collect();
            assert!(lows.len() > 130, "only {} distinct low bytes", lows.len());
        }
    }

    #[test]
    fn strings_of_different_lengths_differ() {
        let s = FastState::default();
        assert_ne!(s.hash_one("orders"), s.hash_one("orderz"));
        assert_ne!(s.hash_one(&b"ab"[..]), s.hash_one(&b"ab\0"[..]));
    }
}
