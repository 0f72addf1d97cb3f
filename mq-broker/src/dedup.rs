//! Exact, bounded memory of landed message IDs: per producer, the landed
//! sequences as sorted, disjoint ranges.
//!
//! Dedup may forget but never invents: when a bound is hit the table forgets
//! (the lowest range of a producer, or the least recently used producer), so
//! a retransmit of a forgotten ID would be stored a second time (a duplicate
//! the receiver's dedup then absorbs). It never merges ranges across a gap,
//! which would answer `Duplicate` for a message never stored: a loss.

use std::collections::BTreeMap;

use mq_protocol::hash::FastMap;

use mq_protocol::MessageId;

/// One producer's landed sequences.
#[derive(Debug, Default)]
struct Producer {
    /// Sorted, disjoint, non-adjacent inclusive ranges `(start, end)`.
    ranges: Vec<(u64, u64)>,
    /// The LRU tick of the last insert or lookup hit.
    tick: u64,
}

impl Producer {
    fn contains(&self, seq: u64) -> bool {
        // Index of the first range starting after seq.
        let i = self.ranges.partition_point(|&(s, _)| s <= seq);
        i > 0 && self.ranges[i - 1].1 >= seq
    }

    /// Inserts `seq`, merging with adjacent ranges. Returns false if present.
    fn insert(&mut self, seq: u64) -> bool {
        let i = self.ranges.partition_point(|&(s, _)| s <= seq);
        let joins_prev = i > 0
            && self.ranges[i - 1]
                .1
                .checked_add(1)
                .is_some_and(|e| e >= seq);
        if i > 0 && self.ranges[i - 1].1 >= seq {
            return false;
        }
        let joins_next = i < self.ranges.len() && seq.checked_add(1) == Some(self.ranges[i].0);
        match (joins_prev, joins_next) {
            (true, true) => {
                self.ranges[i - 1].1 = self.ranges[i].1;
                self.ranges.remove(i);
            }
            (true, false) => self.ranges[i - 1].1 = seq,
            (false, true) => self.ranges[i].0 = seq,
            (false, false) => self.ranges.insert(i, (seq, seq)),
        }
        true
    }
}

/// The dedup table. Not thread-safe; owned by the broker core.
#[derive(Debug)]
pub(crate) struct Dedup {
    producers: FastMap<u64, Producer>,
    /// The producer of the last insert: already the most recent in `lru`.
    last: Option<u64>,
    /// LRU order: tick -> producer.
    lru: BTreeMap<u64, u64>,
    next_tick: u64,
    max_producers: usize,
    max_ranges: usize,
    /// IDs forgotten because of a bound (ranges or producers evicted).
    pub(crate) evictions: u64,
}

impl Dedup {
    pub(crate) fn new(max_producers: usize, max_ranges: usize) -> Self {
        Self {
            producers: FastMap::default(),
            last: None,
            lru: BTreeMap::new(),
            next_tick: 0,
            max_producers: max_producers.max(1),
            max_ranges: max_ranges.max(1),
            evictions: 0,
        }
    }

    /// True if `id` was recorded and not forgotten since.
    pub(crate) fn contains(&self, id: MessageId) -> bool {
        self.producers
            .get(&id.producer)
            .is_some_and(|p| p.contains(id.seq))
    }

    /// Records `id` as landed.
    pub(crate) fn insert(&mut self, id: MessageId) {
        if self.last == Some(id.producer) {
            if let Some(p) = self.producers.get_mut(&id.producer) {
                p.insert(id.seq);
                if p.ranges.len() > self.max_ranges {
                    p.ranges.remove(0);
                    self.evictions += 1;
                }
                return;
            }
        }
        self.last = Some(id.producer);
        let tick = self.next_tick;
        self.next_tick += 1;
        if !self.producers.contains_key(&id.producer) && self.producers.len() >= self.max_producers
        {
            if let Some((_, victim)) = self.lru.pop_first() {
                // Never the current producer: it is not in the table yet.
                self.producers.remove(&victim);
                self.evictions += 1;
            }
        }
        let p = match self.producers.entry(id.producer) {
            std::collections::hash_map::Entry::Occupied(e) => {
                let p = e.into_mut();
                self.lru.remove(&p.tick);
                p
            }
            std::collections::hash_map::Entry::Vacant(e) => e.insert(Producer::default()),
        };
        p.tick = tick;
        self.lru.insert(tick, id.producer);
        p.insert(id.seq);
        if p.ranges.len() > self.max_ranges {
            p.ranges.remove(0);
            self.evictions += 1;
        }
    }

    /// Every producer's ranges, least recently used first (the order that
    /// [`Dedup::import`] restores).
    pub(crate) fn export(&self) -> impl Iterator<Item = (u64, &[(u64, u64)])> + '_ {
        self.lru
            .values()
            .filter_map(|p| self.producers.get(p).map(|x| (*p, x.ranges.as_slice())))
    }

    /// Restores a producer's ranges (from a checkpoint) as its most recent
    /// state, within the bounds. Ranges are re-inserted one by one so that
    /// a damaged list can never make the table claim more than it lists.
    pub(crate) fn import(&mut self, producer: u64, ranges: &[(u64, u64)]) {
        for &(start, end) in ranges {
            if start > end {
                continue;
            }
            // Insert the two ends, then widen the range between them.
            self.insert(MessageId::new(producer, start));
            if let Some(p) = self.producers.get_mut(&producer) {
                let i = p.ranges.partition_point(|&(s, _)| s <= start);
                if i > 0 && p.ranges[i - 1].1 >= start {
                    let j = i - 1;
                    // Swallow following ranges that the new end covers.
                    let mut hi = p.ranges[j].1.max(end);
                    while j + 1 < p.ranges.len() && p.ranges[j + 1].0 <= hi.saturating_add(1) {
                        hi = hi.max(p.ranges[j + 1].1);
                        p.ranges.remove(j + 1);
                    }
                    p.ranges[j].1 = hi;
                }
            }
        }
    }

    /// Number of producers tracked.
    pub(crate) fn producers(&self) -> usize {
        self.producers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    #[test]
    fn ranges_merge_when_adjacent() {
        let mut d = Dedup::new(10, 10);
        for seq in [1, 3, 2, 5, 4] {
            d.insert(MessageId::new(7, seq));
        }
        assert_eq!(d.producers[&7].ranges, vec![(1, 5)]);
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
        assert_eq!(d.lru.len(), 2);
    }

    #[test]
    fn export_then_import_gives_the_same_answers() {
        let mut d = Dedup::new(10, 10);
        for (p, s) in [(1, 1), (1, 2), (1, 5), (2, 9), (1, 7), (1, 6)] {
            d.insert(MessageId::new(p, s));
        }
        let mut e = Dedup::new(10, 10);
        let exported: Vec<_> = d.export().map(|(p, r)| (p, r.to_vec())).collect();
        for (p, r) in &exported {
            e.import(*p, r);
        }
        for p in 0..3 {
            for s in 0..12 {
                let id = MessageId::new(p, s);
                assert_eq!(d.contains(id), e.contains(id), "{id}");
            }
        }
        assert_eq!(e.producers[&1].ranges, vec![(1, 2), (5, 7)]);
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
                if d.evictions == 0 {
                    for id in &model { prop_assert!(d.contains(*id)); }
                }
            }
        }
    }
}
