//! Many producers' [`Ranges`], bounded: [`DedupTable`].

use std::collections::hash_map::RandomState;
use std::collections::BinaryHeap;
use std::hash::BuildHasher;
use std::mem::size_of;

use hashbrown::HashTable;

use crate::limits::{growth, slot_capacity, victims_per_scan, Limits};
use crate::ranges::{Insert, Ranges, LOWER_FIXED_BYTES, RANGE_BYTES};

/// Bytes of one producer's slot in the dense slot array: its id, its
/// activity stamp and its [`Ranges`] (the highest range inline). The array
/// grows by an eighth at a time, so it is at least 8/9 full after growing.
pub const PRODUCER_BYTES: usize = size_of::<Slot>();
/// Bytes per bucket of the index from producer id to slot: a `u32` slot
/// number and hashbrown's control byte. Buckets are a power of two, at
/// most 7/8 full.
pub const INDEX_BUCKET_BYTES: usize = size_of::<u32>() + 1;

/// One tracked producer.
#[derive(Debug)]
struct Slot {
    producer: u64,
    /// Activity stamp: unique, ordered by activity, the `now` of the last
    /// insert, bumped by one per earlier insert at the same `now`.
    tick: u64,
    ranges: Ranges,
}

/// The seen sequences of many producers, bounded, exact within its bounds.
///
/// Sans-IO: every call that needs time takes `now`, a stamp in any unit
/// (nanoseconds since some epoch, say) that should not go backwards; a
/// caller with no clock can pass 0, and the table orders producers by
/// their last insert alone.
///
/// # Layout
///
/// Producers live in a dense array of [`PRODUCER_BYTES`]-byte slots (id,
/// activity stamp, [`Ranges`] with the highest range inline), found through
/// a hashbrown index of 4-byte slot numbers; removing swaps the last slot
/// in. A producer that sends in order costs its slot and about two to
/// three index buckets, nothing else. Least recently active: instead of an
/// ordered structure costing bytes per producer, the table keeps the
/// oldest sixteenth of the producers from a scan and refills it when it
/// runs dry, so finding the victim is amortized O(log n).
///
/// # The invariant
///
/// It may *forget* (a bound evicts whole ranges or whole producers), but it
/// never *invents*: [`DedupTable::contains`] is true only for a sequence
/// that was inserted.
///
/// # Examples
///
/// ```
/// use mq_dedup::{DedupTable, Limits};
/// let mut t: DedupTable = DedupTable::new(Limits::default());
/// for seq in 0..1000 {
///     t.insert(0, 7, seq);
/// }
/// assert!(t.contains(7, 999) && !t.contains(7, 1000));
/// assert_eq!(t.range_count(7), 1);
/// ```
#[derive(Debug)]
pub struct DedupTable<S = RandomState> {
    limits: Limits,
    hasher: S,
    /// Slot numbers, keyed by the hash of their slot's producer.
    index: HashTable<u32>,
    slots: Vec<Slot>,
    /// (tick, producer) of the oldest producers at the last scan, newest
    /// first. An entry whose producer's tick changed since is stale.
    victims: Vec<(u64, u64)>,
    /// The last tick handed out.
    clock: u64,
    /// No live tick is below this.
    floor: u64,
    ranges: usize,
    /// Producers with ranges below their highest.
    with_lower: usize,
    evictions: u64,
}

impl<S: BuildHasher + Default> DedupTable<S> {
    /// An empty table with these bounds.
    ///
    /// # Examples
    ///
    /// ```
    /// let t: mq_dedup::DedupTable = mq_dedup::DedupTable::new(Default::default());
    /// assert_eq!(t.producer_count(), 0);
    /// ```
    pub fn new(limits: Limits) -> Self {
        Self::with_hasher(limits, S::default())
    }
}

impl<S: BuildHasher> DedupTable<S> {
    /// An empty table with these bounds, hashing producer ids with
    /// `hasher` (use keyed random state where peers choose the ids).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::collections::hash_map::RandomState;
    /// let t = mq_dedup::DedupTable::with_hasher(Default::default(), RandomState::new());
    /// assert_eq!(t.total_ranges(), 0);
    /// ```
    pub fn with_hasher(limits: Limits, hasher: S) -> Self {
        Self {
            limits,
            hasher,
            index: HashTable::new(),
            slots: Vec::new(),
            victims: Vec::new(),
            clock: 0,
            floor: 0,
            ranges: 0,
            with_lower: 0,
            evictions: 0,
        }
    }

    /// The bounds this table enforces.
    ///
    /// # Examples
    ///
    /// ```
    /// let t: mq_dedup::DedupTable = mq_dedup::DedupTable::new(Default::default());
    /// assert_eq!(t.limits().max_producers, 10_000);
    /// ```
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// True if `seq` of `producer` was inserted and not forgotten since.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut t: mq_dedup::DedupTable = mq_dedup::DedupTable::new(Default::default());
    /// t.insert(0, 1, 5);
    /// assert!(t.contains(1, 5) && !t.contains(1, 6) && !t.contains(2, 5));
    /// ```
    pub fn contains(&self, producer: u64, seq: u64) -> bool {
        self.ranges(producer).is_some_and(|r| r.contains(seq))
    }

    /// The ranges held for `producer`.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut t: mq_dedup::DedupTable = mq_dedup::DedupTable::new(Default::default());
    /// t.insert(0, 1, 5);
    /// assert_eq!(t.ranges(1).map(|r| r.highest()), Some((5, 5)));
    /// ```
    pub fn ranges(&self, producer: u64) -> Option<&Ranges> {
        self.find(producer).map(|i| &self.slots[i].ranges)
    }

    /// Records `seq` of `producer` at `now` and marks the producer active.
    /// Returns false if it was already recorded.
    ///
    /// May evict to stay within bounds: the least recently active producer
    /// when a new producer would exceed `max_producers`; this producer's
    /// lowest range when it would have more than `max_ranges_per_producer`
    /// (which can be the range just created, when it is the lowest); the
    /// lowest range of the least recently active producer (the producer,
    /// if it was its only range) while all producers' ranges exceed
    /// `max_ranges`. Each eviction is counted in [`DedupTable::evictions`].
    ///
    /// # Examples
    ///
    /// ```
    /// let mut t: mq_dedup::DedupTable = mq_dedup::DedupTable::new(Default::default());
    /// assert!(t.insert(0, 1, 1));
    /// assert!(!t.insert(0, 1, 1));
    /// ```
    pub fn insert(&mut self, now: u64, producer: u64, seq: u64) -> bool {
        self.insert_with(
            now,
            producer,
            || Ranges::new(seq),
            |r| match r.insert(seq) {
                Insert::Present => None,
                done => Some(done.range_delta()),
            },
        )
    }

    /// Records every sequence of `start..=end` of `producer` at `now`, as
    /// [`DedupTable::insert`] does one; for restoring a checkpoint. Returns
    /// false if nothing was new (or `start > end`).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut t: mq_dedup::DedupTable = mq_dedup::DedupTable::new(Default::default());
    /// assert!(t.insert_range(0, 1, 10, 20));
    /// assert!(t.contains(1, 15) && !t.contains(1, 21));
    /// assert!(!t.insert_range(0, 1, 12, 14));
    /// assert!(!t.insert_range(0, 2, 20, 10));
    /// ```
    pub fn insert_range(&mut self, now: u64, producer: u64, start: u64, end: u64) -> bool {
        let Some(new) = Ranges::from_range(start, end) else {
            return false;
        };
        self.insert_with(now, producer, || new, |r| r.insert_range(start, end))
    }

    /// The common part of the inserts: `new` makes a new producer's
    /// ranges; `add` adds to an existing one's, returning the change in
    /// its number of ranges, or `None` if nothing was new.
    fn insert_with(
        &mut self,
        now: u64,
        producer: u64,
        new: impl FnOnce() -> Ranges,
        add: impl FnOnce(&mut Ranges) -> Option<isize>,
    ) -> bool {
        if let Some(i) = self.find(producer) {
            self.touch(i, now);
            let max = self.limits.max_ranges_per_producer.max(1);
            let slot = &mut self.slots[i];
            let had_lower = slot.ranges.has_lower();
            let Some(delta) = add(&mut slot.ranges) else {
                return false;
            };
            if delta == 0 {
                // A range grew (the common case, IDs in order): the same
                // number of ranges, so no bound can be newly exceeded, and
                // the same lower ranges present or not.
                return true;
            }
            self.ranges = self.ranges.saturating_add_signed(delta);
            while slot.ranges.range_count() > max && slot.ranges.pop_lowest().is_some() {
                // Forget the lowest range; never merge across a gap.
                self.ranges -= 1;
                self.evictions += 1;
            }
            self.with_lower =
                self.with_lower + usize::from(slot.ranges.has_lower()) - usize::from(had_lower);
        } else {
            let max = self.limits.producers();
            while self.slots.len() >= max && self.evict_lru_producer() {}
            let ranges = new();
            self.clock = now.max(self.clock.saturating_add(1));
            self.ranges += ranges.range_count();
            self.with_lower += usize::from(ranges.has_lower());
            let slot = Slot {
                producer,
                tick: self.clock,
                ranges,
            };
            self.push(slot);
        }
        let max = self.limits.max_ranges.max(1);
        while self.ranges > max && self.forget_oldest_range() {}
        true
    }

    /// Forgets every producer not inserted into for at least `idle` before
    /// `now` (same unit as `now`). Returns how many (also counted in
    /// [`DedupTable::evictions`]).
    ///
    /// Cheap when nothing can have expired: the table knows a lower bound
    /// of every producer's last activity.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut t: mq_dedup::DedupTable = mq_dedup::DedupTable::new(Default::default());
    /// t.insert(100, 1, 1);
    /// t.insert(150, 2, 1);
    /// assert_eq!(t.expire(199, 100), 0);
    /// assert_eq!(t.expire(200, 100), 1);
    /// assert!(!t.contains(1, 1) && t.contains(2, 1));
    /// ```
    pub fn expire(&mut self, now: u64, idle: u64) -> usize {
        if self.slots.is_empty() || now.saturating_sub(self.floor) < idle {
            return 0;
        }
        let mut dropped = 0;
        while let Some((tick, p)) = self.lru() {
            if now.saturating_sub(tick) < idle {
                break;
            }
            self.remove(p);
            dropped += 1;
        }
        if dropped > 0 {
            self.shrink();
        }
        dropped
    }

    /// Evictions so far: producers forgotten (a bound or idle expiry) plus
    /// ranges forgotten. Each may let a later duplicate through.
    ///
    /// # Examples
    ///
    /// ```
    /// let t: mq_dedup::DedupTable = mq_dedup::DedupTable::new(Default::default());
    /// assert_eq!(t.evictions(), 0);
    /// ```
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// Producers tracked (at most `max_producers`).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut t: mq_dedup::DedupTable = mq_dedup::DedupTable::new(Default::default());
    /// t.insert(0, 9, 1);
    /// assert_eq!(t.producer_count(), 1);
    /// ```
    pub fn producer_count(&self) -> usize {
        self.slots.len()
    }

    /// Ranges held for `producer` (at most `max_ranges_per_producer`; 0 if
    /// it is not tracked).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut t: mq_dedup::DedupTable = mq_dedup::DedupTable::new(Default::default());
    /// t.insert(0, 1, 1);
    /// t.insert(0, 1, 3);
    /// assert_eq!((t.range_count(1), t.range_count(2)), (2, 0));
    /// ```
    pub fn range_count(&self, producer: u64) -> usize {
        self.ranges(producer).map_or(0, Ranges::range_count)
    }

    /// Ranges held over all producers (at most `max_ranges`).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut t: mq_dedup::DedupTable = mq_dedup::DedupTable::new(Default::default());
    /// t.insert(0, 1, 1);
    /// t.insert(0, 2, 1);
    /// assert_eq!(t.total_ranges(), 2);
    /// ```
    pub fn total_ranges(&self) -> usize {
        self.ranges
    }

    /// Every producer and its ranges, least recently active first (the
    /// order in which re-inserting them restores the same eviction order).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut t: mq_dedup::DedupTable = mq_dedup::DedupTable::new(Default::default());
    /// t.insert(0, 2, 1);
    /// t.insert(0, 1, 1);
    /// let order: Vec<u64> = t.by_activity().into_iter().map(|(p, _)| p).collect();
    /// assert_eq!(order, vec![2, 1]);
    /// ```
    pub fn by_activity(&self) -> Vec<(u64, &Ranges)> {
        let mut v: Vec<&Slot> = self.slots.iter().collect();
        v.sort_unstable_by_key(|s| s.tick);
        v.into_iter().map(|s| (s.producer, &s.ranges)).collect()
    }

    /// The heap bytes used, from the containers' real capacities: the
    /// index's allocation, [`PRODUCER_BYTES`] per slot of the slot array
    /// (which keeps its size after producers leave, until expiry shrinks
    /// it), the scan's candidates, and each producer's
    /// [`Ranges::heap_bytes`]. At most [`Limits::max_memory_bytes`].
    ///
    /// # Examples
    ///
    /// ```
    /// let mut t: mq_dedup::DedupTable = mq_dedup::DedupTable::new(Default::default());
    /// for p in 0..1000 {
    ///     for seq in 0..100 {
    ///         t.insert(0, p, seq);
    ///     }
    /// }
    /// assert!(t.memory_bytes() / 1000 <= 64);
    /// assert!(t.memory_bytes() <= t.limits().max_memory_bytes());
    /// ```
    pub fn memory_bytes(&self) -> usize {
        let lower_ranges = self.ranges - self.slots.len();
        self.index.allocation_size()
            + self.slots.capacity() * PRODUCER_BYTES
            + self.victims.capacity() * size_of::<(u64, u64)>()
            + self.with_lower * LOWER_FIXED_BYTES
            + lower_ranges * RANGE_BYTES
    }

    fn hash(&self, producer: u64) -> u64 {
        self.hasher.hash_one(producer)
    }

    fn find(&self, producer: u64) -> Option<usize> {
        let slots = &self.slots;
        self.index
            .find(self.hash(producer), |&i| {
                slots[i as usize].producer == producer
            })
            .map(|&i| i as usize)
    }

    /// Marks slot `i` active at `now`.
    fn touch(&mut self, i: usize, now: u64) {
        let slot = &mut self.slots[i];
        // Already the most recently active and no later: nothing to bump.
        if slot.tick != self.clock || now > slot.tick {
            self.clock = now.max(self.clock.saturating_add(1));
            slot.tick = self.clock;
        }
    }

    fn push(&mut self, slot: Slot) {
        let len = self.slots.len();
        if len == self.slots.capacity() {
            // An eighth at a time, not doubling: the array is the bulk of a
            // contiguous producer's cost.
            self.slots.reserve_exact(growth(len));
        }
        let hash = self.hash(slot.producer);
        self.slots.push(slot);
        let (slots, hasher) = (&self.slots, &self.hasher);
        // `len < u32::MAX`: `Limits::producers` caps the count.
        self.index.insert_unique(hash, len as u32, |&i| {
            hasher.hash_one(slots[i as usize].producer)
        });
    }

    /// Forgets `producer` and all its ranges.
    fn remove(&mut self, producer: u64) {
        let Some(i) = self.find(producer) else {
            return;
        };
        let hash = self.hash(producer);
        if let Ok(e) = self.index.find_entry(hash, |&j| j as usize == i) {
            e.remove();
        }
        let last = self.slots.len() - 1;
        let slot = self.slots.swap_remove(i);
        if i != last {
            // The last slot moved to `i`: point its index entry there.
            let moved = self.hash(self.slots[i].producer);
            if let Some(j) = self.index.find_mut(moved, |&j| j as usize == last) {
                *j = i as u32;
            }
        }
        self.ranges -= slot.ranges.range_count();
        self.with_lower -= usize::from(slot.ranges.has_lower());
        self.evictions += 1;
        if self.victims.last().is_some_and(|&(_, v)| v == producer) {
            self.victims.pop();
        }
    }

    /// The least recently active producer and its tick.
    fn lru(&mut self) -> Option<(u64, u64)> {
        loop {
            let Some(&(tick, p)) = self.victims.last() else {
                if self.slots.is_empty() {
                    return None;
                }
                self.scan();
                continue;
            };
            // Every producer outside the candidates was newer at the scan,
            // and any touched since is newer still: the oldest untouched
            // candidate is the oldest of all.
            if self.find(p).is_some_and(|i| self.slots[i].tick == tick) {
                self.floor = tick;
                return Some((tick, p));
            }
            self.victims.pop();
        }
    }

    /// Refills `victims` with the oldest sixteenth of the producers.
    fn scan(&mut self) {
        let k = victims_per_scan(self.slots.len());
        let mut heap: BinaryHeap<(u64, u64)> = BinaryHeap::with_capacity(k);
        for s in &self.slots {
            if heap.len() < k {
                heap.push((s.tick, s.producer));
            } else if let Some(mut top) = heap.peek_mut() {
                if s.tick < top.0 {
                    *top = (s.tick, s.producer);
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
        self.remove(p);
        true
    }

    /// Forgets the lowest range of the least recently active producer (the
    /// producer, if it is its only range).
    fn forget_oldest_range(&mut self) -> bool {
        let Some((_, p)) = self.lru() else {
            return false;
        };
        let Some(i) = self.find(p) else {
            return false;
        };
        let slot = &mut self.slots[i];
        let had_lower = slot.ranges.has_lower();
        if slot.ranges.pop_lowest().is_some() {
            self.ranges -= 1;
            self.evictions += 1;
            self.with_lower -= usize::from(had_lower && !slot.ranges.has_lower());
        } else {
            self.remove(p);
        }
        true
    }

    /// Gives memory back after mass removals.
    fn shrink(&mut self) {
        let len = self.slots.len();
        if self.slots.capacity() > 64 && len < self.slots.capacity() / 4 {
            self.slots.shrink_to(slot_capacity(len));
            let (slots, hasher) = (&self.slots, &self.hasher);
            self.index
                .shrink_to(len, |&i| hasher.hash_one(slots[i as usize].producer));
        }
        if self.victims.capacity() > 64 && self.victims.len() < self.victims.capacity() / 4 {
            self.victims.shrink_to(self.victims.len() * 2);
        }
    }
}

#[cfg(test)]
#[path = "table_tests.rs"]
mod tests;
