//! Exact, bounded memory of landed message IDs: per producer, the landed
//! sequences as sorted, disjoint ranges ([`mq_dedup::DedupTable`], the one
//! range-set of the workspace, shared with the receiver).
//!
//! Dedup may forget but never invents: when a bound is hit the table forgets
//! (the lowest range of a producer, or the least recently used producer), so
//! a retransmit of a forgotten ID would be stored a second time (a duplicate
//! the receiver's dedup then absorbs). It never merges ranges across a gap,
//! which would answer `Duplicate` for a message never stored: a loss.

use mq_dedup::{DedupTable, Limits};
use mq_protocol::hash::FastState;
use mq_protocol::MessageId;

/// The dedup table. Not thread-safe; owned by the broker core.
#[derive(Debug)]
pub(crate) struct Dedup {
    /// No clock: the table orders producers by their last insert (every
    /// insert passes `now` 0, and the table's stamps count inserts).
    table: DedupTable<FastState>,
}

impl Dedup {
    pub(crate) fn new(max_producers: usize, max_ranges: usize) -> Self {
        // No bound over all producers: `max_producers * max_ranges` is it.
        let limits = Limits::new(max_producers, max_ranges, usize::MAX);
        Self {
            table: DedupTable::with_hasher(limits, FastState::default()),
        }
    }

    /// True if `id` was recorded and not forgotten since.
    pub(crate) fn contains(&self, id: MessageId) -> bool {
        self.table.contains(id.producer, id.seq)
    }

    /// Records `id` as landed.
    pub(crate) fn insert(&mut self, id: MessageId) {
        self.table.insert(0, id.producer, id.seq);
    }

    /// IDs forgotten because of a bound (ranges or producers evicted).
    pub(crate) fn evictions(&self) -> u64 {
        self.table.evictions()
    }

    /// Every producer's ranges, least recently used first (the order that
    /// [`Dedup::import`] restores).
    pub(crate) fn export(&self) -> impl Iterator<Item = (u64, Vec<(u64, u64)>)> + '_ {
        self.table
            .by_activity()
            .into_iter()
            .map(|(p, r)| (p, r.iter().collect()))
    }

    /// Restores a producer's ranges (from a checkpoint) as its most recent
    /// state, within the bounds. Each range claims exactly its sequences
    /// (an inverted one nothing), so a damaged list can never make the
    /// table claim more than it lists.
    pub(crate) fn import(&mut self, producer: u64, ranges: &[(u64, u64)]) {
        for &(start, end) in ranges {
            self.table.insert_range(0, producer, start, end);
        }
    }

    /// Number of producers tracked.
    pub(crate) fn producers(&self) -> usize {
        self.table.producer_count()
    }

    /// Heap bytes the table holds (mq-dedup's honest count).
    pub(crate) fn memory_bytes(&self) -> usize {
        self.table.memory_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    fn ranges(d: &Dedup, p: u64) -> Vec<(u64, u64)> {
        d.table
            .ranges(p)
            .map(|r| r.iter().collect())
            .unwrap_or_default()
    }

    #[test]
    fn ranges_merge_when_adjacent() {
        let mut d = Dedup::new(10, 10);
        for seq in [1, 3, 2, 5, 4] {
            d.insert(MessageId::new(7, seq));
        }
        assert_eq!(ranges(&d, 7), vec![(1, 5)]);
        assert!(d.contains(MessageId::new(7, 3)));
        assert!(!d.contains(MessageId::new(7, 6)));
        assert!(!d.contains(MessageId::new(8, 3)));
    }

    #[test]
    fn range_bound_forgets_lowest_never_fills_gaps() {
        let mut d = Dedup::new(10, 2);
        for seq in [1, 3, 5] {
            d.insert(MessageId::new(1, seq));
        }
        assert!(!d.contains(MessageId::new(1, 1)), "lowest range forgotten");
        assert!(!d.contains(MessageId::new(1, 2)) && !d.contains(MessageId::new(1, 4)));
        assert!(d.contains(MessageId::new(1, 3)) && d.contains(MessageId::new(1, 5)));
        assert_eq!(d.evictions(), 1);
    }

    #[test]
    fn producer_bound_evicts_least_recently_used() {
        let mut d = Dedup::new(2, 8);
        d.insert(MessageId::new(1, 1));
        d.insert(MessageId::new(2, 1));
        d.insert(MessageId::new(1, 2)); // 1 is now more recent than 2
        d.insert(MessageId::new(3, 1));
        assert_eq!(d.producers(), 2);
        assert!(d.contains(MessageId::new(1, 2)));
        assert!(!d.contains(MessageId::new(2, 1)));
        assert_eq!(d.evictions(), 1);
    }

    #[test]
    fn export_then_import_gives_the_same_answers() {
        let mut d = Dedup::new(10, 10);
        for (p, s) in [(1, 1), (1, 2), (1, 5), (2, 9), (1, 7), (1, 6)] {
            d.insert(MessageId::new(p, s));
        }
        let mut e = Dedup::new(10, 10);
        let exported: Vec<_> = d.export().collect();
        assert_eq!(exported[0].0, 2, "least recently used first");
        for (p, r) in &exported {
            e.import(*p, r);
        }
        for p in 0..3 {
            for s in 0..12 {
                let id = MessageId::new(p, s);
                assert_eq!(d.contains(id), e.contains(id), "{id}");
            }
        }
        assert_eq!(ranges(&e, 1), vec![(1, 2), (5, 7)]);
        // The same eviction order after the restore: 2 goes first.
        e.insert(MessageId::new(3, 1));
        let mut f = Dedup::new(2, 10);
        for (p, r) in &exported {
            f.import(*p, r);
        }
        f.insert(MessageId::new(3, 1));
        assert!(!f.contains(MessageId::new(2, 9)) && f.contains(MessageId::new(1, 1)));
    }

    #[test]
    fn a_damaged_checkpoint_claims_no_more_than_it_lists() {
        let mut d = Dedup::new(10, 10);
        d.import(1, &[(5, 3), (10, 12), (20, 20)]);
        assert!(!d.contains(MessageId::new(1, 4)));
        assert!(d.contains(MessageId::new(1, 11)) && d.contains(MessageId::new(1, 20)));
        assert!(!d.contains(MessageId::new(1, 15)));
    }

    proptest! {
        /// Against a HashSet model: never reports an ID it was not given, and
        /// with no bound hit remembers every one.
        #[test]
        fn never_invents(ops in proptest::collection::vec((0u64..4, 0u64..64), 0..300),
                         max_ranges in 1usize..8, max_producers in 1usize..4) {
            let mut d = Dedup::new(max_producers, max_ranges);
            let mut model = HashSet::new();
            for (p, s) in ops {
                let id = MessageId::new(p, s);
                d.insert(id);
                model.insert(id);
                for p in 0..4 { for s in 0..64 {
                    let id = MessageId::new(p, s);
                    if d.contains(id) { prop_assert!(model.contains(&id)); }
                }}
                if d.evictions() == 0 {
                    for id in &model { prop_assert!(d.contains(*id)); }
                }
            }
        }
    }
}
