//! The in-flight core's table: a ring of slots indexed by `seq - base`,
//! with a side map for the IDs that do not fit it.
//!
//! A sender numbers its automatic messages 1, 2, 3, ... under one producer
//! id, and they mostly resolve in the order they were sent, so the live
//! IDs form a nearly contiguous run. A ring of `Option<V>` holds that run
//! without a key per entry and without a hash table's spare buckets: the
//! slot of `seq` is `ring[seq - base]`, and resolved slots at the front are
//! popped (`base` moves up).
//!
//! What does not fit goes to a hash map (`side`): an ID of another producer
//! or below `base`, and the stragglers. The ring never spans more than
//! `max_span` sequence numbers (the sender's `max_in_flight`): an insert
//! that would stretch it further first moves the oldest live slots to the
//! side map. So its memory is bounded by the window even when one old
//! message keeps retransmitting while thousands behind it are confirmed,
//! and each entry moves to the side map at most once (amortised O(1)).
//!
//! The ring grows by doubling, capped at `max_span` slots, so a full window
//! takes exactly `max_span` slots.

use std::collections::VecDeque;

use mq_protocol::MessageId;

type IdMap<V> = mq_protocol::hash::FastMap<MessageId, V>;

/// Where [`Slots::insert_with`] put an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placed {
    /// The ring's only live entry.
    Alone,
    /// The ring's last slot, after other live ones: every other ID in the
    /// ring is lower.
    Back,
    /// A ring slot before other live ones.
    Inner,
    /// The side map.
    Side,
}

/// Live entries keyed by [`MessageId`] (see the module docs).
#[derive(Debug)]
pub(crate) struct Slots<V> {
    /// The producer of every ID in the ring.
    producer: u64,
    /// The sequence number of `ring[0]`.
    base: u64,
    /// Never starts or ends with `None`.
    ring: VecDeque<Option<V>>,
    /// `Some` slots in `ring`.
    in_ring: usize,
    side: IdMap<V>,
    /// Most sequence numbers the ring spans.
    max_span: usize,
}

impl<V> Slots<V> {
    /// An empty table whose ring spans at most `max_span` (at least 1)
    /// sequence numbers.
    pub(crate) fn new(max_span: usize) -> Self {
        Self {
            producer: 0,
            base: 0,
            ring: VecDeque::new(),
            in_ring: 0,
            side: IdMap::default(),
            max_span: max_span.max(1),
        }
    }

    /// Live entries.
    pub(crate) fn len(&self) -> usize {
        self.in_ring + self.side.len()
    }

    /// True when nothing is live.
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The ring index of `id`, if `id` falls inside the ring.
    fn index(&self, id: MessageId) -> Option<usize> {
        if id.producer != self.producer {
            return None;
        }
        let i = usize::try_from(id.seq.checked_sub(self.base)?).ok()?;
        (i < self.ring.len()).then_some(i)
    }

    /// True when `id` is live.
    pub(crate) fn contains(&self, id: MessageId) -> bool {
        self.get(id).is_some()
    }

    /// The entry of `id`.
    pub(crate) fn get(&self, id: MessageId) -> Option<&V> {
        if let Some(i) = self.live_index(id) {
            return self.ring[i].as_ref();
        }
        self.side_get(id)
    }

    /// The entry of `id`, mutably.
    pub(crate) fn get_mut(&mut self, id: MessageId) -> Option<&mut V> {
        if let Some(i) = self.live_index(id) {
            return self.ring[i].as_mut();
        }
        if self.side.is_empty() {
            return None;
        }
        self.side.get_mut(&id)
    }

    /// The ring index of `id` if its slot there is live. An ID inside the
    /// ring's range may still live in the side map: it went there before
    /// the ring was re-based around it.
    fn live_index(&self, id: MessageId) -> Option<usize> {
        self.index(id).filter(|&i| self.ring[i].is_some())
    }

    fn side_get(&self, id: MessageId) -> Option<&V> {
        if self.side.is_empty() {
            return None;
        }
        self.side.get(&id)
    }

    /// Adds `v` under `id`, which must not be live (the caller checks
    /// with [`Slots::contains`]; a live entry would be overwritten).
    #[cfg(test)]
    pub(crate) fn insert(&mut self, id: MessageId, v: V) -> Placed {
        self.insert_with(id, v, |_, _| {})
    }

    /// [`Slots::insert`], calling `evicted` on each live entry the insert
    /// moves from the ring to the side map (to make room), before it moves.
    /// Returns where `v` went.
    pub(crate) fn insert_with(
        &mut self,
        id: MessageId,
        v: V,
        evicted: impl FnMut(MessageId, &mut V),
    ) -> Placed {
        debug_assert!(!self.contains(id), "{id} is live");
        if self.ring.is_empty() {
            self.producer = id.producer;
            self.base = id.seq;
        }
        let Some(i) = self.place(id, evicted) else {
            self.side.insert(id, v);
            return Placed::Side;
        };
        if i == self.ring.len() {
            self.push_empty();
        }
        self.in_ring += 1;
        self.ring[i] = Some(v);
        if i + 1 < self.ring.len() {
            Placed::Inner
        } else if self.in_ring == 1 {
            Placed::Alone
        } else {
            Placed::Back
        }
    }

    /// Makes room in the ring for `id` and returns its index there, or
    /// `None` if it belongs in the side map. `id` is not live.
    fn place(&mut self, id: MessageId, evicted: impl FnMut(MessageId, &mut V)) -> Option<usize> {
        if id.producer != self.producer || id.seq < self.base {
            return None;
        }
        let mut i = usize::try_from(id.seq - self.base).unwrap_or(usize::MAX);
        if i >= self.max_span {
            // Slide the ring up: the oldest live slots go to the side map.
            let shift = i - (self.max_span - 1);
            if shift >= self.ring.len() {
                self.evict(self.ring.len(), evicted);
                self.base = id.seq;
                return Some(self.open_gap(0));
            }
            self.evict(shift, evicted);
            i = usize::try_from(id.seq - self.base).unwrap_or(usize::MAX);
        }
        Some(self.open_gap(i))
    }

    /// Pads the ring with empty slots up to index `i` (exclusive) and
    /// returns `i`.
    fn open_gap(&mut self, i: usize) -> usize {
        while self.ring.len() < i {
            self.push_empty();
        }
        i
    }

    /// Appends an empty slot, growing the ring by doubling but never past
    /// `max_span` slots (a full window takes exactly that many).
    fn push_empty(&mut self) {
        if self.ring.len() == self.ring.capacity() {
            let cap = (self.ring.capacity() * 2).max(8).min(self.max_span);
            let more = cap.saturating_sub(self.ring.len()).max(1);
            self.ring.reserve_exact(more);
        }
        self.ring.push_back(None);
    }

    /// Moves the first `n` slots out of the ring (live ones to the side
    /// map), then trims empty slots at the front.
    fn evict(&mut self, n: usize, mut evicted: impl FnMut(MessageId, &mut V)) {
        for _ in 0..n {
            let seq = self.base;
            if let Some(Some(mut v)) = self.ring.pop_front() {
                self.in_ring -= 1;
                let id = MessageId::new(self.producer, seq);
                evicted(id, &mut v);
                self.side.insert(id, v);
            }
            // Wraps only past the last possible sequence, where the caller
            // resets `base`.
            self.base = self.base.wrapping_add(1);
        }
        self.trim();
    }

    /// Pops empty slots at both ends.
    fn trim(&mut self) {
        // Counted, then dropped in place: popping one by one would move
        // each (entry-sized) slot out first.
        let empty = self.ring.iter().take_while(|s| s.is_none()).count();
        if empty > 0 {
            self.ring.drain(..empty);
            // Wraps only when the ring empties at the last sequence; an
            // empty ring takes its `base` from the next insert.
            self.base = self.base.wrapping_add(empty as u64);
        }
        while let Some(None) = self.ring.back() {
            self.ring.pop_back();
        }
    }

    /// Removes and returns the entry of `id`.
    pub(crate) fn remove(&mut self, id: MessageId) -> Option<V> {
        if let Some(i) = self.live_index(id) {
            let v = self.ring[i].take();
            self.in_ring -= 1;
            self.trim();
            return v;
        }
        if self.side.is_empty() {
            return None;
        }
        self.side.remove(&id)
    }

    /// The first live ring entry at or after sequence `from` for which
    /// `pred` holds, with the sequence a later search may start from (the
    /// entry's own, or the ring's end if none). The ring scan behind a
    /// cursor: each slot is passed over once if the cursor only moves up.
    pub(crate) fn first_in_ring(
        &self,
        from: u64,
        mut pred: impl FnMut(&V) -> bool,
    ) -> (u64, Option<(MessageId, &V)>) {
        let start = from.max(self.base);
        let skip = usize::try_from(start - self.base).unwrap_or(usize::MAX);
        if skip >= self.ring.len() {
            return (start, None);
        }
        for (i, slot) in self.ring.range(skip..).enumerate() {
            if let Some(v) = slot.as_ref().filter(|v| pred(v)) {
                let seq = start.wrapping_add(i as u64);
                return (seq, Some((MessageId::new(self.producer, seq), v)));
            }
        }
        (self.base.wrapping_add(self.ring.len() as u64), None)
    }

    /// Every live entry, ring first (in ID order), then the side map (in
    /// no order).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (MessageId, &V)> {
        let (producer, base) = (self.producer, self.base);
        self.ring
            .iter()
            .enumerate()
            .filter_map(move |(i, v)| {
                let seq = base.wrapping_add(i as u64);
                Some((MessageId::new(producer, seq), v.as_ref()?))
            })
            .chain(self.side.iter().map(|(id, v)| (*id, v)))
    }

    /// Every live ID, sorted.
    pub(crate) fn ids_sorted(&self) -> Vec<MessageId> {
        let mut ids: Vec<MessageId> = self.iter().map(|(id, _)| id).collect();
        ids.sort_unstable();
        ids
    }

    /// Slots the ring has allocated (for the density test).
    #[cfg(test)]
    pub(crate) fn ring_capacity(&self) -> usize {
        self.ring.capacity()
    }

    /// Entries in the side map (for the tests).
    #[cfg(test)]
    pub(crate) fn side_len(&self) -> usize {
        self.side.len()
    }
}

#[cfg(test)]
#[path = "slots_tests.rs"]
mod tests;
