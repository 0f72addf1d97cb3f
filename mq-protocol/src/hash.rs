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
//! [`IdState`] builds on it for large tables keyed by message ID (the
//! broker's store index, its groups' pending tables): a producer's
//! consecutive IDs take adjacent buckets, so a table larger than the CPU's
//! caches is still walked mostly in cache.
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

/// A `HashMap` keyed by message ID, hashed with [`IdState`]: a producer's
/// consecutive IDs take adjacent buckets.
///
/// # Examples
///
/// ```
/// use mq_protocol::hash::IdMap;
/// use mq_protocol::MessageId;
///
/// let mut index: IdMap<usize> = IdMap::default();
/// for seq in 0..100 {
///     index.insert(MessageId::new(7, seq), seq as usize);
/// }
/// assert_eq!(index.get(&MessageId::new(7, 42)), Some(&42));
/// ```
pub type IdMap<V> = HashMap<crate::MessageId, V, IdState>;

/// IDs per run of adjacent buckets: one hashbrown group of control bytes.
const RUN: u64 = 16;

/// Builds [`IdHasher`]s: the hasher of large tables keyed by
/// [`MessageId`](crate::MessageId), such as the broker's store index.
///
/// A sender numbers its messages 0, 1, 2, ... and a broker looks each one
/// up (is it a duplicate?) and inserts it as it lands. With [`FastState`]
/// every ID goes to a random bucket, so once the table outgrows the CPU's
/// caches every lookup and insert is a cache miss. `IdState` hashes an
/// ID's *run* (its producer and `seq / 16`) with [`FastState`]'s keyed
/// random hash and adds the position in the run: the 16 IDs of a run take
/// adjacent buckets, and the runs land where the keyed hash puts them.
/// Each ID of a run gets a different tag (hashbrown's top 7 bits), so a
/// lookup compares one key, not sixteen.
///
/// Hash flooding: a peer chooses its IDs, but not where a run lands (the
/// keys are random per table), and a run holds at most 16 IDs, so the most
/// it can build is clusters of 16 adjacent entries at random places.
///
/// Keys other than a `MessageId` hash deterministically, only without the
/// locality: use [`FastState`] for them.
///
/// # Examples
///
/// ```
/// use std::hash::BuildHasher;
/// use mq_protocol::hash::IdState;
/// use mq_protocol::MessageId;
///
/// let s = IdState::default();
/// let a = s.hash_one(MessageId::new(1, 32));
/// let b = s.hash_one(MessageId::new(1, 33));
/// // Neighbours: the next bucket (the tag in the top bits differs).
/// assert_eq!((b as u32).wrapping_sub(a as u32), 1);
/// ```
#[derive(Debug, Clone, Default)]
pub struct IdState(FastState);

impl BuildHasher for IdState {
    type Hasher = IdHasher;

    #[inline]
    fn build_hasher(&self) -> IdHasher {
        IdHasher {
            keys: self.0.clone(),
            words: [0; 2],
            n: 0,
        }
    }
}

/// One hash of [`IdState`] in progress. A [`MessageId`](crate::MessageId)'s
/// `Hash` writes the producer, then the sequence, as two `u64`s; more
/// input is folded into the first word.
///
/// # Examples
///
/// ```
/// use std::hash::{BuildHasher, Hasher};
/// let mut h = mq_protocol::hash::IdState::default().build_hasher();
/// h.write_u64(7); // producer
/// h.write_u64(42); // sequence
/// let _ = h.finish();
/// ```
#[derive(Debug, Clone)]
pub struct IdHasher {
    keys: FastState,
    words: [u64; 2],
    n: usize,
}

impl Hasher for IdHasher {
    #[inline]
    fn write_u64(&mut self, i: u64) {
        match self.n {
            0 | 1 => self.words[self.n] = i,
            _ => self.words[0] = self.words[0].rotate_left(5) ^ i,
        }
        self.n += 1;
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(w));
        }
    }

    #[inline]
    fn finish(&self) -> u64 {
        let [producer, seq] = self.words;
        let base = self.keys.hash_one((producer, seq / RUN, self.n));
        let off = seq % RUN;
        // Low bits (the bucket): the run's place plus the offset in it.
        // Top 7 bits (hashbrown's tag): the run's tag with the offset
        // mixed into four of them, a different tag for each ID of a run.
        base.wrapping_add(off) ^ (off << 57)
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

    // IdState

    fn hash(s: &IdState, producer: u64, seq: u64) -> u64 {
        s.hash_one(MessageId::new(producer, seq))
    }

    #[test]
    fn a_runs_ids_take_adjacent_buckets_with_distinct_tags() {
        let s = IdState::default();
        for run in [0u64, 1, 7, 1 << 40] {
            let first = hash(&s, 42, run * RUN);
            let mut tags = std::collections::HashSet::new();
            for off in 0..RUN {
                let h = hash(&s, 42, run * RUN + off);
                // Adjacent buckets for any table of up to 2^32 buckets.
                assert_eq!(
                    (h as u32).wrapping_sub(first as u32),
                    off as u32,
                    "run {run} offset {off}"
                );
                tags.insert(h >> 57);
            }
            assert_eq!(tags.len(), RUN as usize, "tags of run {run}");
        }
    }

    #[test]
    fn runs_and_producers_land_apart() {
        let s = IdState::default();
        // Consecutive runs (and the same run of another producer) do not
        // continue where the last one ended: their places come from the
        // keyed hash. A chance match is about 2^-32 per pair.
        for run in 0..1000u64 {
            let end = hash(&s, 1, run * RUN + RUN - 1) as u32;
            let next = hash(&s, 1, (run + 1) * RUN) as u32;
            assert_ne!(next, end.wrapping_add(1), "run {run}");
            let other = hash(&s, 2, run * RUN) as u32;
            assert_ne!(other, hash(&s, 1, run * RUN) as u32, "run {run}");
        }
    }

    #[test]
    fn id_keys_are_random_per_table() {
        let (a, b) = (IdState::default(), IdState::default());
        assert_ne!(hash(&a, 1, 0), hash(&b, 1, 0));
        // The same table hashes the same ID the same way.
        assert_eq!(hash(&a, 9, 12345), hash(&a, 9, 12345));
    }

    #[test]
    fn id_maps_behave_like_maps() {
        let mut m: IdMap<u64> = IdMap::default();
        for p in 1..=3u64 {
            for s in 0..5000u64 {
                assert_eq!(m.insert(MessageId::new(p, s), p * 10_000 + s), None);
            }
        }
        assert_eq!(m.len(), 15_000);
        for p in 1..=3u64 {
            for s in (0..5000u64).step_by(7) {
                assert_eq!(m.get(&MessageId::new(p, s)), Some(&(p * 10_000 + s)));
            }
        }
        assert_eq!(m.get(&MessageId::new(4, 0)), None);
        assert_eq!(m.remove(&MessageId::new(2, 17)), Some(20_017));
        assert_eq!(m.get(&MessageId::new(2, 17)), None);
        assert_eq!(m.len(), 14_999);
    }

    #[test]
    fn id_state_hashes_other_inputs_deterministically() {
        let s = IdState::default();
        let h = |x: &[u8]| s.hash_one(x);
        assert_eq!(h(b"orders"), h(b"orders"));
        assert_ne!(h(b"orders"), h(b"orderz"));
        // Three words: the third is folded in, not dropped.
        assert_ne!(
            s.hash_one((1u64, 2u64, 3u64)),
            s.hash_one((1u64, 2u64, 4u64))
        );
        // Folded so that no bits are lost, even over a first word of ones.
        assert_ne!(
            s.hash_one((u64::MAX, 2u64, 3u64)),
            s.hash_one((u64::MAX, 2u64, 4u64))
        );
    }
}
