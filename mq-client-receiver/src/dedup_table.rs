//! The hash table under the dedup window: keyed by producer id with a
//! seeded one-multiply hash, and sized honestly for
//! [`super::DedupWindow::memory_bytes`].

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::mem::size_of;

/// Control bytes past the last slot plus alignment padding, per table.
pub(super) const TABLE_FIXED_BYTES: usize = 32;

/// Heap bytes of a table whose `capacity()` was `cap`, with slots of
/// `slot` bytes (hashbrown: power-of-two buckets, at most 7/8 full).
pub(super) fn table_bytes(cap: usize, slot: usize) -> usize {
    let buckets = match cap {
        0 => return 0,
        1..=3 => 4,
        4..=7 => 8,
        _ => (cap.saturating_mul(8) / 7).next_power_of_two(),
    };
    buckets
        .saturating_mul(slot)
        .saturating_add(TABLE_FIXED_BYTES)
}

/// A seeded hasher for producer ids: one folded multiply. The seed is
/// random per window, so a peer cannot pick ids that collide.
#[derive(Debug, Clone)]
pub(super) struct IdState {
    seed: u64,
    mul: u64,
}

impl IdState {
    pub(super) fn new() -> Self {
        let s = RandomState::new();
        Self {
            seed: s.hash_one(0x5eed_u64),
            mul: s.hash_one(0x6d75_u64) | 1,
        }
    }
}

impl BuildHasher for IdState {
    type Hasher = IdHasher;
    fn build_hasher(&self) -> IdHasher {
        IdHasher {
            state: self.seed,
            mul: self.mul,
        }
    }
}

#[derive(Debug)]
pub(super) struct IdHasher {
    state: u64,
    mul: u64,
}

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.state
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u64(&mut self, x: u64) {
        let m = u128::from(self.state ^ x) * u128::from(self.mul);
        self.state = (m as u64) ^ ((m >> 64) as u64);
    }
}

/// A hash table keyed by producer id that remembers the capacity it grew
/// to (`capacity()` alone undercounts once removals leave tombstones).
#[derive(Debug)]
pub(super) struct Table<V> {
    pub(super) map: HashMap<u64, V, IdState>,
    cap: usize,
}

impl<V> Table<V> {
    pub(super) fn new(hasher: IdState) -> Self {
        Self {
            map: HashMap::with_hasher(hasher),
            cap: 0,
        }
    }

    pub(super) fn insert(&mut self, k: u64, v: V) {
        self.map.insert(k, v);
        self.cap = self.cap.max(self.map.capacity());
    }

    /// Gives memory back after mass removals.
    pub(super) fn shrink(&mut self) {
        let len = self.map.len();
        if self.cap > 64 && len < self.cap / 4 {
            self.map.shrink_to(len * 2);
            self.cap = self.map.capacity();
        }
    }

    pub(super) fn bytes(&self) -> usize {
        table_bytes(self.cap, size_of::<(u64, V)>() + 1)
    }
}
