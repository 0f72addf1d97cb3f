//! The hash table under the dedup window: keyed by producer id with a
//! seeded one-multiply hash, and sized honestly for
//! [`super::DedupWindow::memory_bytes`].

use std::collections::HashMap;
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

/// The hasher of the producer table: `mq_protocol::hash::FastState` (aHash
/// with random keys), so a peer cannot pick producer ids that collide.
pub(super) type IdState = mq_protocol::hash::FastState;

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
