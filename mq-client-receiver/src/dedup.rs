//! The sans-IO dedup window: which message IDs this receiver has processed.
//!
//! # Layout
//!
//! * [`DedupWindow`]: per producer, the sequences seen, as sorted disjoint
//!   inclusive ranges; a contiguous run of any length is one range.
//! * A producer's highest range lives inline in its entry of the producer
//!   table (32 bytes a slot: id, last activity, start, end), so a producer
//!   that sends in order costs one slot and nothing else. Its lower ranges
//!   (gaps left by messages not processed here) live in a B-tree in a
//!   second table, only for the producers that have gaps.
//! * Four explicit bounds from [`DedupConfig`]: producers tracked (the least
//!   recently active one is evicted), ranges per producer (its lowest range
//!   is evicted), ranges in total (the lowest range of the least recently
//!   active producer is evicted), idle expiry (a producer not inserted into
//!   for that long is dropped by [`DedupWindow::expire`]).
//! * Least recently active: each entry holds an activity stamp (nanoseconds
//!   since the first `now` seen, bumped to stay unique). Instead of a second
//!   ordered structure costing bytes per producer, the window keeps the
//!   oldest sixteenth of the producers from a scan of the table and refills
//!   it when it runs dry, so finding the victim is amortized O(log n) time
//!   and about one byte per producer.
//!
//! The window never reads a clock: every call that needs time takes `now`.
//!
//! # Memory
//!
//! [`DedupWindow::memory_bytes`] estimates the heap used from the real
//! container capacities; `tests/dedup_memory.rs` checks it against a
//! counting allocator. [`DedupConfig::max_memory_bytes`] is the worst case
//! the bounds allow: about 15 MiB with the defaults (10 000 producers,
//! 262 144 ranges), of which 12 MiB are ranges at [`RANGE_BYTES`] each.
//!
//! # The invariant
//!
//! The window may *forget* (an evicted ID reads as unseen, so a later
//! duplicate reaches the handler), but it never *invents*: `contains(id)` is
//! true only for an ID that was passed to `insert`. Evicting removes whole
//! ranges or whole producers; two ranges are never merged across a gap,
//! because the merged range would claim IDs nobody processed.

use std::collections::{BTreeMap, BinaryHeap};
use std::mem::size_of;
use std::time::Instant;

use mq_protocol::MessageId;

use crate::config::DedupConfig;

use table::{table_bytes, IdState, Table};

/// Estimated bytes of one range stored below a producer's highest range
/// (its key and value and its share of B-tree nodes, nodes at least half
/// full). Measured: about 34 bytes when ranges arrive in order.
pub const RANGE_BYTES: usize = 48;
/// Bytes of one slot of the producer table: the producer id, its activity
/// stamp, its highest range, and the table's control byte. The table keeps
/// between 7/16 and 7/8 of its slots full.
pub const PRODUCER_BYTES: usize = size_of::<(u64, Entry)>() + 1;
/// Bytes of one slot of the table of producers with gaps.
const GAPS_SLOT_BYTES: usize = size_of::<(u64, Gaps)>() + 1;
/// The first leaf of a producer's gap B-tree, allocated whole for one range.
const LEAF_BYTES: usize = 192;

/// The ranges of one producer below its highest: start -> end, inclusive,
/// disjoint, not adjacent, never empty while stored.
type Gaps = BTreeMap<u64, u64>;

/// One tracked producer.
#[derive(Debug)]
struct Entry {
    /// Activity stamp: unique, ordered by activity, the nanoseconds since
    /// `DedupWindow::epoch` of the last insert, bumped by one nanosecond
    /// per earlier insert at the same instant to stay unique (so idle
    /// expiry can come that many nanoseconds late, never early).
    tick: u64,
    /// The highest range, inclusive.
    start: u64,
    end: u64,
}

/// Candidates kept per scan for `producers` producers.
fn victims_per_scan(producers: usize) -> usize {
    (producers / 16).max(producers.min(16))
}

/// The worst-case heap bytes of a window with these bounds (see
/// [`DedupConfig::max_memory_bytes`]).
pub(crate) fn max_memory_bytes(c: &DedupConfig) -> usize {
    let ranges = c.max_ranges.max(1);
    // Every producer holds at least one range, every producer with gaps
    // two; an insert may pass `max_ranges` by one before evicting.
    let producers = c.max_producers.max(1).min(ranges.saturating_add(1));
    let gappy = producers.min(ranges / 2 + 1);
    table_bytes(producers, PRODUCER_BYTES)
        .saturating_add(victims_per_scan(producers).saturating_mul(size_of::<(u64, u64)>()))
        .saturating_add(table_bytes(gappy, GAPS_SLOT_BYTES))
        .saturating_add(gappy.saturating_mul(LEAF_BYTES))
        .saturating_add(ranges.saturating_mul(RANGE_BYTES))
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
    producers: Table<Entry>,
    /// Lower ranges of the producers that have more than one.
    gaps: Table<Gaps>,
    /// (tick, producer) of the oldest producers at the last scan, newest
    /// first. An entry whose producer's tick changed since is stale.
    victims: Vec<(u64, u64)>,
    /// The first `now` seen; ticks count nanoseconds from it.
    epoch: Option<Instant>,
    /// The last tick handed out.
    clock: u64,
    /// No live tick is below this.
    floor: u64,
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
        let hasher = IdState::default();
        Self {
            config,
            producers: Table::new(hasher.clone()),
            gaps: Table::new(hasher),
            victims: Vec::new(),
            epoch: None,
            clock: 0,
            floor: 0,
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
        let Some(e) = self.producers.map.get(&id.producer) else {
            return false;
        };
        if id.seq >= e.start {
            return id.seq <= e.end;
        }
        self.gaps.map.get(&id.producer).is_some_and(|g| {
            g.range(..=id.seq)
                .next_back()
                .is_some_and(|(_, &end)| end >= id.seq)
        })
    }

    /// Records `id` as processed at `now` and marks its producer active.
    /// Returns false if it was already recorded.
    ///
    /// May evict to stay within bounds: the least recently active producer
    /// when a new producer would exceed `max_producers`; the lowest range of
    /// this producer when a new range would exceed `max_ranges_per_producer`
    /// (which can be the range just created, when it is the lowest); the
    /// lowest range of the least recently active producer (the whole
    /// producer if it was its only range) while the ranges of all producers
    /// exceed `max_ranges`. Each eviction is counted in
    /// [`DedupWindow::evictions`].
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
        let ns = self.nanos(now);
        let (p, s) = (id.producer, id.seq);
        if let Some(e) = self.producers.map.get_mut(&p) {
            // Already the most recently active and no later: nothing to bump.
            if e.tick != self.clock || ns > e.tick {
                self.clock = ns.max(self.clock + 1);
                e.tick = self.clock;
            }
            let Some(added) = add(e, &mut self.gaps, p, s) else {
                return false;
            };
            if added > 0 {
                self.ranges += 1;
            } else if added < 0 {
                self.ranges -= 1;
            }
            let max = self.config.max_ranges_per_producer.max(1);
            if self.range_count(p) > max && pop_lowest(&mut self.gaps, p) {
                // Forget the lowest range; never merge across a gap.
                self.ranges -= 1;
                self.evictions += 1;
            }
        } else {
            let max = self.config.max_producers.max(1);
            while self.producers.map.len() >= max && self.evict_lru_producer() {}
            self.clock = ns.max(self.clock + 1);
            let e = Entry {
                tick: self.clock,
                start: s,
                end: s,
            };
            self.producers.insert(p, e);
            self.ranges += 1;
        }
        let max = self.config.max_ranges.max(1);
        while self.ranges > max && self.forget_oldest_range() {}
        true
    }

    /// Drops every producer not inserted into for at least
    /// `idle_expiry` before `now`. Returns how many were dropped (also
    /// counted in [`DedupWindow::evictions`]).
    ///
    /// Cheap when nothing can have expired: the window knows a lower bound
    /// of every producer's last activity.
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
        if self.producers.map.is_empty() {
            return 0;
        }
        let ns = self.nanos(now);
        let idle = u64::try_from(self.config.idle_expiry.as_nanos()).unwrap_or(u64::MAX);
        if ns.saturating_sub(self.floor) < idle {
            return 0;
        }
        let mut dropped = 0;
        while let Some((tick, p)) = self.lru() {
            if ns.saturating_sub(tick) < idle {
                break;
            }
            self.remove_producer(p);
            dropped += 1;
        }
        if dropped > 0 {
            self.producers.shrink();
            self.gaps.shrink();
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
        self.producers.map.len()
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
        if !self.producers.map.contains_key(&producer) {
            return 0;
        }
        1 + self.gaps.map.get(&producer).map_or(0, BTreeMap::len)
    }

    /// Ranges held over all producers (at most `max_ranges`).
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

    /// An estimate of the heap bytes used, from the containers' real
    /// capacities: [`PRODUCER_BYTES`] per slot of the producer table (which
    /// keeps its size after producers leave, until expiry shrinks it), and
    /// for the producers with gaps a slot in a second table, a 192-byte
    /// B-tree leaf and [`RANGE_BYTES`] per range below the highest. It is
    /// at most [`DedupConfig::max_memory_bytes`].
    ///
    /// # Examples
    ///
    /// ```
    /// use mq_client_receiver::dedup::{DedupWindow, PRODUCER_BYTES};
    /// use mq_protocol::MessageId;
    /// let mut w = DedupWindow::new(Default::default());
    /// let now = std::time::Instant::now();
    /// for seq in 0..1_000_000 {
    ///     w.insert(now, MessageId::new(1, seq));
    /// }
    /// // One small table, no per-range cost for a contiguous run.
    /// assert!(w.memory_bytes() <= 4 * PRODUCER_BYTES + 32);
    /// assert!(w.memory_bytes() <= w.config().max_memory_bytes());
    /// ```
    pub fn memory_bytes(&self) -> usize {
        let gap_ranges = self.ranges - self.producers.map.len();
        self.producers.bytes()
            + self.victims.capacity() * size_of::<(u64, u64)>()
            + self.gaps.bytes()
            + self.gaps.map.len() * LEAF_BYTES
            + gap_ranges * RANGE_BYTES
    }

    /// Nanoseconds from one before the first `now` seen (so the first
    /// tick, 1, is exact).
    fn nanos(&mut self, now: Instant) -> u64 {
        let epoch = *self.epoch.get_or_insert(now);
        let ns = now.saturating_duration_since(epoch).as_nanos();
        u64::try_from(ns).unwrap_or(u64::MAX).saturating_add(1)
    }

    /// The least recently active producer and its tick.
    fn lru(&mut self) -> Option<(u64, u64)> {
        loop {
            let Some(&(tick, p)) = self.victims.last() else {
                if self.producers.map.is_empty() {
                    return None;
                }
                self.scan();
                continue;
            };
            // Every producer outside the candidates was newer at the scan,
            // and any touched since is newer still: the oldest untouched
            // candidate is the oldest of all.
            if self.producers.map.get(&p).is_some_and(|e| e.tick == tick) {
                self.floor = tick;
                return Some((tick, p));
            }
            self.victims.pop();
        }
    }

    /// Refills `victims` with the oldest sixteenth of the producers.
    fn scan(&mut self) {
        let k = victims_per_scan(self.producers.map.len());
        let mut heap: BinaryHeap<(u64, u64)> = BinaryHeap::with_capacity(k);
        for (&p, e) in &self.producers.map {
            if heap.len() < k {
                heap.push((e.tick, p));
            } else if let Some(mut top) = heap.peek_mut() {
                if e.tick < top.0 {
                    *top = (e.tick, p);
                }
            }
        }
        let mut v = heap.into_vec();
        v.sort_unstable_by(|a, b| b.cmp(a));
        self.victims = v;
    }

    fn evict_lru_producer(&mut self) -> bool {
        let Some((_, p)) = self.lru() else {
            return false;
        };
        self.remove_producer(p);
        true
    }

    /// Forgets the lowest range of the least recently active producer.
    fn forget_oldest_range(&mut self) -> bool {
        let Some((_, p)) = self.lru() else {
            return false;
        };
        if pop_lowest(&mut self.gaps, p) {
            self.ranges -= 1;
            self.evictions += 1;
        } else {
            // Its only range: forget the producer.
            self.remove_producer(p);
        }
        true
    }

    fn remove_producer(&mut self, p: u64) {
        if self.producers.map.remove(&p).is_some() {
            let gaps = self.gaps.map.remove(&p).map_or(0, |g| g.len());
            self.ranges -= 1 + gaps;
            self.evictions += 1;
        }
        if self.victims.last().is_some_and(|&(_, v)| v == p) {
            self.victims.pop();
        }
    }
}

/// Adds `s` to producer `p`, whose highest range is in `e`. Returns the
/// change in its number of ranges, or `None` if `s` was already there.
fn add(e: &mut Entry, gaps: &mut Table<Gaps>, p: u64, s: u64) -> Option<isize> {
    if s >= e.start {
        if s <= e.end {
            return None;
        }
        // `e.end < s`, so `e.end + 1` cannot overflow.
        if s == e.end + 1 {
            e.end = s;
            return Some(0);
        }
        // A new highest range; the old one goes below.
        match gaps.map.get_mut(&p) {
            Some(g) => {
                g.insert(e.start, e.end);
            }
            None => gaps.insert(p, BTreeMap::from([(e.start, e.end)])),
        }
        (e.start, e.end) = (s, s);
        return Some(1);
    }
    // `s < e.start`, so `s + 1` cannot overflow and `s + 1 <= e.start`.
    let joins_top = s + 1 == e.start;
    let g = gaps.map.get_mut(&p);
    let prev = g
        .as_ref()
        .and_then(|g| g.range(..=s).next_back().map(|(&a, &b)| (a, b)));
    if prev.is_some_and(|(_, end)| end >= s) {
        return None;
    }
    // `prev.end < s`, so `end + 1` cannot overflow.
    let joins_prev = prev
        .filter(|&(_, end)| end + 1 == s)
        .map(|(start, _)| start);
    let Some(g) = g else {
        // No lower ranges.
        if joins_top {
            e.start = s;
            return Some(0);
        }
        gaps.insert(p, BTreeMap::from([(s, s)]));
        return Some(1);
    };
    if joins_top {
        let Some(start) = joins_prev else {
            e.start = s;
            return Some(0);
        };
        g.remove(&start);
        e.start = start;
        if g.is_empty() {
            gaps.map.remove(&p);
        }
        return Some(-1);
    }
    let next = g.get(&(s + 1)).copied();
    match (joins_prev, next) {
        (Some(start), Some(end)) => {
            g.remove(&(s + 1));
            g.insert(start, end);
            Some(-1)
        }
        (Some(start), None) => {
            g.insert(start, s);
            Some(0)
        }
        (None, Some(end)) => {
            g.remove(&(s + 1));
            g.insert(s, end);
            Some(0)
        }
        (None, None) => {
            g.insert(s, s);
            Some(1)
        }
    }
}

/// Drops the lowest range of `p` below its highest. False if it has none.
fn pop_lowest(gaps: &mut Table<Gaps>, p: u64) -> bool {
    let Some(g) = gaps.map.get_mut(&p) else {
        return false;
    };
    g.pop_first();
    if g.is_empty() {
        gaps.map.remove(&p);
    }
    true
}

#[path = "dedup_table.rs"]
mod table;

#[cfg(test)]
#[path = "dedup_tests.rs"]
mod tests;
