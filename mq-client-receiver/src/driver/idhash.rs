//! A fast keyed hasher for the driver's maps keyed by [`MessageId`]
//! (`in_progress`, the recent-copies table).
//!
//! SipHash, the standard library's default, cost about 900 instructions per
//! delivery across these maps (callgrind, mq-bench end to end). This is the
//! "Fx" multiply-rotate hash started from a random per-map key. It is not
//! flooding-proof, but both maps are bounded by the prefetch (a few
//! thousand entries at most), so even keys chosen to collide cost at most a
//! scan of that many entries, never unbounded work.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;

/// Builds [`IdHasher`]s that share one random key.
#[derive(Clone, Debug)]
pub(super) struct IdBuild {
    key: u64,
}

impl IdBuild {
    pub(super) fn new() -> Self {
        Self {
            key: RandomState::new().hash_one(0u64),
        }
    }
}

impl BuildHasher for IdBuild {
    type Hasher = IdHasher;

    fn build_hasher(&self) -> IdHasher {
        IdHasher(self.key)
    }
}

/// One hash in progress; the words of the key are folded in one at a time.
pub(super) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }

    fn write_u64(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(5) ^ x).wrapping_mul(K);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use mq_protocol::MessageId;

    use super::*;

    #[test]
    fn a_map_with_it_behaves_like_any_map() {
        let mut m: HashMap<MessageId, u64, IdBuild> = HashMap::with_hasher(IdBuild::new());
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
}
