//! A fast, non-cryptographic hasher for the broker's internal maps (keys
//! are message IDs, producer IDs and topic names).
//!
//! SipHash, the standard library's default, showed up at several percent of
//! the publish path. This broker is for tests and development, so resistance
//! to hash flooding by a hostile peer is traded for speed.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// The `rustc`-style "Fx" hash: rotate, xor, multiply per word.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FxHasher {
    hash: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

/// A `HashMap` with [`FxHasher`].
pub(crate) type FxHashMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

#[cfg(test)]
mod tests {
    use super::*;
    use mq_protocol::MessageId;

    #[test]
    fn map_works_and_spreads_ids() {
        let mut m: FxHashMap<MessageId, u64> = FxHashMap::default();
        for seq in 0..10_000 {
            m.insert(MessageId::new(1, seq), seq);
        }
        assert_eq!(m.len(), 10_000);
        assert_eq!(m.get(&MessageId::new(1, 4242)), Some(&4242));
        let mut a = FxHasher::default();
        a.write(b"orders");
        let mut b = FxHasher::default();
        b.write(b"orderz");
        assert_ne!(a.finish(), b.finish());
    }
}
