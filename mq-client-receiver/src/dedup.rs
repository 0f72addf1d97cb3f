//! The sans-IO dedup window: which message IDs this receiver has processed.
//!
//! # Layout
//!
//! * [`DedupWindow`]: per producer, the sequences seen, as sorted disjoint
//!   inclusive ranges; a contiguous run of any length is one range.
//! * Three explicit bounds from [`DedupConfig`]: producers tracked (the least
//!   recently active one is evicted), ranges per producer (the lowest range is
//!   evicted), idle expiry (a producer not inserted into for that long is
//!   dropped by [`DedupWindow::expire`]).
//!
//! The window never reads a clock: every call that needs time takes `now`.
//!
//! # The invariant
//!
//! The window may *forget* (an evicted ID reads as unseen, so a later
//! duplicate reaches the handler), but it never *invents*: `contains(id)` is
//! true only for an ID that was passed to `insert`. Evicting removes whole
//! ranges or whole producers; two ranges are never merged across a gap,
//! because the merged range would claim IDs nobody processed.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use mq_protocol::MessageId;

use crate::config::DedupConfig;

/// Estimated bytes of one stored range (key, value and B-tree node overhead).
pub const RANGE_BYTES: usize = 48;
/// Estimated bytes of one tracked producer besides its ranges.
pub const PRODUCER_BYTES: usize = 96;

#[derive(Debug)]
struct Producer {
    /// start -> end, both inclusive, disjoint, not adjacent.
    ranges: BTreeMap<u64, u64>,
    last_active: Instant,
    /// Key of this producer in `DedupWindow::lru`.
    tick: u64,
}

/// The set of processed message IDs, bounded, exact within its bounds.
///
/// # Examples
///
/// ```
/// use std::time::Instant;
/// use mq_client_receiver::{DedupConfig, DedupWindow};
/// use mq_protocol::MessageId;
///
/// let mut w = DedupWindow::new(DedupConfig::default());
/// let now = Instant::now();
/// for seq in 0..1000 {
///     w.insert(now, MessageId::new(7, seq));
/// }
/// assert!(w.contains(MessageId::new(7, 999)));
/// assert!(!w.contains(MessageId::new(7, 1000)));
/// assert_eq!(w.range_count(7), 1);
/// ```
#[derive(Debug)]
pub struct DedupWindow {
    config: DedupConfig,
    producers: HashMap<u64, Producer>,
    /// Activity order: tick -> producer id; the first entry is the least
    /// recently active producer.
    lru: BTreeMap<u64, u64>,
    next_tick: u64,
    ranges: usize,
    evictions: u64,
}

impl DedupWindow {
    /// An empty window with the given bounds. Bounds of zero are treated as
    /// one (use [`DedupConfig::validate`] to refuse them instead).
    ///
    /// # Examples
    ///
    /// ```
    /// let w = mq_client_receiver::DedupWindow::new(Default::default());
    /// assert_eq!(w.producer_count(), 0);
    /// ```
    pub fn new(config: DedupConfig) -> Self {
        Self {
            config,
            producers: HashMap::new(),
            lru: BTreeMap::new(),
            next_tick: 0,
            ranges: 0,
            evictions: 0,
        }
    }

    /// The bounds this window enforces.
    ///
    /// # Examples
    ///
    /// ```
    /// let w = mq_client_receiver::DedupWindow::new(Default::default());
    /// assert_eq!(w.config().max_producers, 10_000);
    /// ```
    pub fn config(&self) -> &DedupConfig {
        &self.config
    }

    /// True if `id` was inserted and has not been evicted since.
    ///
    /// Never true for an ID that was not inserted.
    ///
    /// # Examples
    ///
    /// ```
    /// use mq_protocol::MessageId;
    /// let mut w = mq_client_receiver::DedupWindow::new(Default::default());
    /// w.insert(std::time::Instant::now(), MessageId::new(1, 5));
    /// assert!(w.contains(MessageId::new(1, 5)));
    /// assert!(!w.contains(MessageId::new(1, 6)));
    /// ```
    pub fn contains(&self, id: MessageId) -> bool {
        self.producers.get(&id.producer).is_some_and(|p| {
            p.ranges
                .range(..=id.seq)
                .next_back()
                .is_some_and(|(_, &end)| end >= id.seq)
        })
    }

    /// Records `id` as processed at `now` and marks its producer active.
    /// Returns false if it was already recorded.
    ///
    /// May evict to stay within bounds: the least recently active producer
    /// when a new producer would exceed `max_producers`, the lowest range of
    /// this producer when a new range would exceed `max_ranges_per_producer`
    /// (which can be the range just created, when it is the lowest). Each
    /// eviction is counted in [`DedupWindow::evictions`].
    ///
    /// `now` should not go backwards between calls; if it does, idle expiry
    /// only happens later than it would have, never earlier.
    ///
    /// # Examples
    ///
    /// ```
    /// use mq_protocol::MessageId;
    /// let mut w = mq_client_receiver::DedupWindow::new(Default::default());
    /// let now = std::time::Instant::now();
    /// assert!(w.insert(now, MessageId::new(1, 1)));
    /// assert!(!w.insert(now, MessageId::new(1, 1)));
    /// ```
    pub fn insert(&mut self, now: Instant, id: MessageId) -> bool {
        if !self.producers.contains_key(&id.producer) {
            let max = self.config.max_producers.max(1);
            while self.producers.len() >= max {
                let Some((_, victim)) = self.lru.pop_first() else {
                    break;
                };
                if let Some(p) = self.producers.remove(&victim) {
                    self.ranges -= p.ranges.len();
                    self.evictions += 1;
                }
            }
            let tick = self.bump_tick();
            self.lru.insert(tick, id.producer);
            self.producers.insert(
                id.producer,
                Producer {
                    ranges: BTreeMap::new(),
                    last_active: now,
                    tick,
                },
            );
        } else if let Some(p) = self.producers.get_mut(&id.producer) {
            p.last_active = p.last_active.max(now);
            // Already the most recently active: its LRU position is right.
            if p.tick + 1 != self.next_tick {
                self.lru.remove(&p.tick);
                p.tick = self.next_tick;
                self.next_tick += 1;
                self.lru.insert(p.tick, id.producer);
            }
        }
        let max_ranges = self.config.max_ranges_per_producer.max(1);
        let Some(p) = self.producers.get_mut(&id.producer) else {
            return false;
        };
        let s = id.seq;
        let prev = p.ranges.range(..=s).next_back().map(|(&a, &b)| (a, b));
        if let Some((_, end)) = prev {
            if end >= s {
                return false;
            }
        }
        // `prev.end < s`, so `end + 1` cannot overflow.
        let joins_prev = prev
            .filter(|&(_, end)| end + 1 == s)
            .map(|(start, _)| start);
        let next_end = s
            .checked_add(1)
            .and_then(|n| p.ranges.get(&n).copied().map(|e| (n, e)));
        match (joins_prev, next_end) {
            (Some(start), Some((next_start, next_end))) => {
                p.ranges.remove(&next_start);
                p.ranges.insert(start, next_end);
                self.ranges -= 1;
            }
            (Some(start), None) => {
                p.ranges.insert(start, s);
            }
            (None, Some((next_start, next_end))) => {
                p.ranges.remove(&next_start);
                p.ranges.insert(s, next_end);
            }
            (None, None) => {
                p.ranges.insert(s, s);
                self.ranges += 1;
                if p.ranges.len() > max_ranges {
                    // Forget the oldest (lowest) range; never merge across a gap.
                    p.ranges.pop_first();
                    self.ranges -= 1;
                    self.evictions += 1;
                }
            }
        }
        true
    }

    /// Drops every producer not inserted into for at least
    /// `idle_expiry` before `now`. Returns how many were dropped (also
    /// counted in [`DedupWindow::evictions`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use mq_protocol::MessageId;
    /// let mut w = mq_client_receiver::DedupWindow::new(Default::default());
    /// let t0 = Instant::now();
    /// w.insert(t0, MessageId::new(1, 1));
    /// assert_eq!(w.expire(t0 + Duration::from_secs(3600)), 1);
    /// assert!(!w.contains(MessageId::new(1, 1)));
    /// ```
    pub fn expire(&mut self, now: Instant) -> usize {
        let mut dropped = 0;
        while let Some((&tick, &producer)) = self.lru.first_key_value() {
            let expired = self.producers.get(&producer).map_or(true, |p| {
                now.saturating_duration_since(p.last_active) >= self.config.idle_expiry
            });
            if !expired {
                break;
            }
            self.lru.remove(&tick);
            if let Some(p) = self.producers.remove(&producer) {
                self.ranges -= p.ranges.len();
                self.evictions += 1;
                dropped += 1;
            }
        }
        dropped
    }

    /// Evictions so far: producers dropped (bound or idle expiry) plus
    /// ranges dropped. Each one may let a later duplicate reach the handler.
    ///
    /// # Examples
    ///
    /// ```
    /// let w = mq_client_receiver::DedupWindow::new(Default::default());
    /// assert_eq!(w.evictions(), 0);
    /// ```
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// Producers currently tracked (at most `max_producers`).
    ///
    /// # Examples
    ///
    /// ```
    /// let w = mq_client_receiver::DedupWindow::new(Default::default());
    /// assert_eq!(w.producer_count(), 0);
    /// ```
    pub fn producer_count(&self) -> usize {
        self.producers.len()
    }

    /// Ranges held for `producer` (at most `max_ranges_per_producer`).
    ///
    /// # Examples
    ///
    /// ```
    /// let w = mq_client_receiver::DedupWindow::new(Default::default());
    /// assert_eq!(w.range_count(1), 0);
    /// ```
    pub fn range_count(&self, producer: u64) -> usize {
        self.producers.get(&producer).map_or(0, |p| p.ranges.len())
    }

    /// Ranges held over all producers.
    ///
    /// # Examples
    ///
    /// ```
    /// let w = mq_client_receiver::DedupWindow::new(Default::default());
    /// assert_eq!(w.total_ranges(), 0);
    /// ```
    pub fn total_ranges(&self) -> usize {
        self.ranges
    }

    /// An estimate of the heap bytes used: [`PRODUCER_BYTES`] per producer
    /// plus [`RANGE_BYTES`] per range. The worst case is
    /// `max_producers * (PRODUCER_BYTES + max_ranges_per_producer * RANGE_BYTES)`.
    ///
    /// # Examples
    ///
    /// ```
    /// use mq_client_receiver::dedup::{DedupWindow, PRODUCER_BYTES, RANGE_BYTES};
    /// let mut w = DedupWindow::new(Default::default());
    /// w.insert(std::time::Instant::now(), mq_protocol::MessageId::new(1, 1));
    /// assert_eq!(w.memory_bytes(), PRODUCER_BYTES + RANGE_BYTES);
    /// ```
    pub fn memory_bytes(&self) -> usize {
        self.producers.len() * PRODUCER_BYTES + self.ranges * RANGE_BYTES
    }

    fn bump_tick(&mut self) -> u64 {
        let t = self.next_tick;
        self.next_tick += 1;
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;
    use std::time::Duration;

    fn cfg(producers: usize, ranges: usize, idle_secs: u64) -> DedupConfig {
        DedupConfig {
            max_producers: producers,
            max_ranges_per_producer: ranges,
            idle_expiry: Duration::from_secs(idle_secs),
        }
    }

    #[test]
    fn a_million_contiguous_ids_are_one_range() {
        let mut w = DedupWindow::new(DedupConfig::default());
        let now = Instant::now();
        for seq in 0..1_000_000u64 {
            w.insert(now, MessageId::new(3, seq));
        }
        assert_eq!(w.range_count(3), 1);
        assert_eq!(w.total_ranges(), 1);
        assert!(w.contains(MessageId::new(3, 0)));
        assert!(w.contains(MessageId::new(3, 999_999)));
        assert!(!w.contains(MessageId::new(3, 1_000_000)));
        assert_eq!(w.memory_bytes(), PRODUCER_BYTES + RANGE_BYTES);
    }

    #[test]
    fn reverse_and_out_of_order_runs_coalesce() {
        let mut w = DedupWindow::new(DedupConfig::default());
        let now = Instant::now();
        for seq in (0..1000u64).rev() {
            w.insert(now, MessageId::new(1, seq));
        }
        assert_eq!(w.range_count(1), 1);
        // Odd then even: 500 ranges, then one.
        for seq in (2000..3000u64).filter(|s| s % 2 == 1) {
            w.insert(now, MessageId::new(2, seq));
        }
        assert_eq!(w.range_count(2), 500);
        for seq in (2000..3000u64).filter(|s| s % 2 == 0) {
            w.insert(now, MessageId::new(2, seq));
        }
        assert_eq!(w.range_count(2), 1);
    }

    #[test]
    fn range_bound_evicts_lowest_and_never_merges_a_gap() {
        let mut w = DedupWindow::new(cfg(10, 2, 3600));
        let now = Instant::now();
        w.insert(now, MessageId::new(1, 10));
        w.insert(now, MessageId::new(1, 20));
        w.insert(now, MessageId::new(1, 30));
        assert_eq!(w.range_count(1), 2);
        assert!(!w.contains(MessageId::new(1, 10)));
        assert!(w.contains(MessageId::new(1, 20)));
        assert!(w.contains(MessageId::new(1, 30)));
        for seq in 11..30 {
            if seq != 20 {
                assert!(!w.contains(MessageId::new(1, seq)), "invented {seq}");
            }
        }
        assert_eq!(w.evictions(), 1);
    }

    #[test]
    fn producer_bound_evicts_least_recently_active() {
        let mut w = DedupWindow::new(cfg(2, 8, 3600));
        let now = Instant::now();
        w.insert(now, MessageId::new(1, 1));
        w.insert(now, MessageId::new(2, 1));
        w.insert(now, MessageId::new(1, 2)); // 1 is now more recent than 2
        w.insert(now, MessageId::new(3, 1));
        assert!(w.contains(MessageId::new(1, 1)));
        assert!(!w.contains(MessageId::new(2, 1)));
        assert!(w.contains(MessageId::new(3, 1)));
        assert_eq!(w.producer_count(), 2);
        assert_eq!(w.evictions(), 1);
    }

    #[test]
    fn idle_expiry_uses_the_given_clock() {
        let mut w = DedupWindow::new(cfg(10, 8, 60));
        let t0 = Instant::now();
        w.insert(t0, MessageId::new(1, 1));
        w.insert(t0 + Duration::from_secs(30), MessageId::new(2, 1));
        assert_eq!(w.expire(t0 + Duration::from_secs(59)), 0);
        assert_eq!(w.expire(t0 + Duration::from_secs(60)), 1);
        assert!(!w.contains(MessageId::new(1, 1)));
        assert!(w.contains(MessageId::new(2, 1)));
    }

    #[test]
    fn extremes_do_not_overflow() {
        let mut w = DedupWindow::new(DedupConfig::default());
        let now = Instant::now();
        w.insert(now, MessageId::new(u64::MAX, u64::MAX));
        w.insert(now, MessageId::new(u64::MAX, u64::MAX - 1));
        w.insert(now, MessageId::new(u64::MAX, 0));
        assert_eq!(w.range_count(u64::MAX), 2);
        assert!(w.contains(MessageId::new(u64::MAX, u64::MAX - 1)));
        assert!(!w.contains(MessageId::new(u64::MAX, 1)));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u64, u64),
        Advance(u64),
        Expire,
    }

    fn ops(producers: u64, seqs: u64) -> impl Strategy<Value = Vec<Op>> {
        prop::collection::vec(
            prop_oneof![
                8 => (0..producers, 0..seqs).prop_map(|(p, s)| Op::Insert(p, s)),
                1 => (0u64..40).prop_map(Op::Advance),
                1 => Just(Op::Expire),
            ],
            0..300,
        )
    }

    /// Runs `ops`, checking after each step: never a false "seen", bounds
    /// held, and exact agreement with the model while nothing was evicted.
    fn check(config: DedupConfig, ops: &[Op], producers: u64, seqs: u64) {
        let mut w = DedupWindow::new(config.clone());
        let mut model: HashSet<MessageId> = HashSet::new();
        let t0 = Instant::now();
        let mut now = t0;
        for op in ops {
            match *op {
                Op::Insert(p, s) => {
                    let id = MessageId::new(p, s);
                    w.insert(now, id);
                    model.insert(id);
                }
                Op::Advance(secs) => now += Duration::from_secs(secs),
                Op::Expire => {
                    w.expire(now);
                }
            }
            assert!(w.producer_count() <= config.max_producers);
            for p in 0..producers {
                assert!(w.range_count(p) <= config.max_ranges_per_producer);
            }
            let exact = w.evictions() == 0;
            for p in 0..producers {
                for s in 0..seqs {
                    let id = MessageId::new(p, s);
                    let seen = w.contains(id);
                    assert!(!seen || model.contains(&id), "invented {id}");
                    if exact {
                        assert_eq!(seen, model.contains(&id), "forgot {id} without eviction");
                    }
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn never_invents_under_tight_bounds(ops in ops(6, 40), mp in 1usize..4, mr in 1usize..5, idle in 1u64..100) {
            check(cfg(mp, mr, idle), &ops, 6, 40);
        }

        #[test]
        fn exact_within_bounds(ops in ops(4, 64)) {
            // Bounds large enough that nothing is ever evicted.
            let c = cfg(4, 64, 1_000_000);
            check(c, &ops, 4, 64);
        }
    }

    #[test]
    fn exact_within_bounds_has_no_evictions() {
        let mut w = DedupWindow::new(cfg(4, 64, 1_000_000));
        let now = Instant::now();
        for p in 0..4 {
            for s in (0..128).step_by(2) {
                w.insert(now, MessageId::new(p, s));
            }
        }
        assert_eq!(w.evictions(), 0);
        assert_eq!(w.total_ranges(), 4 * 64);
    }
}
