//! The core's one timer queue: redelivery and nack deadlines bucketed by
//! millisecond.
//!
//! Deadlines are rounded *up* to the next whole millisecond after the first
//! deadline's reference instant, so an entry never fires early and at most
//! 1 ms late. Entries are never removed before they fire: an ack leaves its
//! entry behind, recognised as stale by its generation when it fires.
//!
//! The buckets of the next [`NEAR_SPAN`] milliseconds live in a ring indexed
//! by slot, so the push every delivery makes is an index and a `Vec` push
//! (it was an ordered-map search: about 600 instructions of the ~1,900 a
//! delivery cost the core). Deadlines further out, and the rare one earlier
//! than the ring's first bucket, go to an ordered map; firing merges both
//! in slot order.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use mq_protocol::MessageId;
use tokio::time::Instant;

/// Milliseconds the ring covers from its first bucket (about 65 s: every
/// default redelivery delay; longer nack delays go to the ordered map).
const NEAR_SPAN: u64 = 1 << 16;

/// What to look at when a deadline fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) group: usize,
    pub(crate) id: MessageId,
    pub(crate) gen: u32,
}

/// Deadlines in millisecond buckets.
#[derive(Debug, Default)]
pub(crate) struct TimerQueue {
    /// Reference instant of slot 0: the first deadline's `now`.
    base: Option<Instant>,
    /// Slot of `near[0]`. Invariant: `near` is empty or its first bucket is
    /// not (so the first deadline is `head` or the map's first key).
    head: u64,
    near: VecDeque<Vec<Entry>>,
    /// Slots outside `head..head + NEAR_SPAN` when pushed.
    far: BTreeMap<u64, Vec<Entry>>,
    len: usize,
    /// Emptied buckets kept for reuse, so a new bucket does not grow a
    /// fresh `Vec` from nothing.
    spare: Vec<Vec<Entry>>,
}

/// Emptied buckets kept at most.
const SPARE: usize = 64;
/// Largest emptied bucket kept (entries): a burst's bucket is let go.
const SPARE_CAPACITY: usize = 1024;

impl TimerQueue {
    /// Schedules `entry` for `at`; `now` anchors the buckets on first use.
    pub(crate) fn push(&mut self, now: Instant, at: Instant, entry: Entry) {
        let base = *self.base.get_or_insert(now);
        let since = at.saturating_duration_since(base);
        let ms = since.as_nanos().div_ceil(1_000_000);
        let slot = u64::try_from(ms).unwrap_or(u64::MAX);
        self.len += 1;
        if self.near.is_empty() {
            if slot < u64::MAX - NEAR_SPAN {
                self.head = slot;
                let mut v = self.spare.pop().unwrap_or_default();
                v.push(entry);
                self.near.push_back(v);
                return;
            }
        } else if slot >= self.head && slot - self.head < NEAR_SPAN {
            let i = (slot - self.head) as usize;
            if i >= self.near.len() {
                self.near.resize_with(i + 1, Vec::new);
            }
            let bucket = &mut self.near[i];
            if bucket.capacity() == 0 {
                if let Some(v) = self.spare.pop() {
                    *bucket = v;
                }
            }
            bucket.push(entry);
            return;
        }
        self.far.entry(slot).or_default().push(entry);
    }

    /// The earliest deadline (the instant its bucket fires).
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let base = self.base?;
        let near = (!self.near.is_empty()).then_some(self.head);
        let far = self.far.first_key_value().map(|(&s, _)| s);
        let slot = match (near, far) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b)?,
        };
        base.checked_add(Duration::from_millis(slot))
    }

    /// Moves every entry due at `now` into `due`, in deadline order.
    pub(crate) fn pop_due(&mut self, now: Instant, due: &mut Vec<Entry>) {
        let Some(base) = self.base else {
            return;
        };
        let elapsed = now.saturating_duration_since(base).as_millis();
        let elapsed = u64::try_from(elapsed).unwrap_or(u64::MAX);
        loop {
            let near = (!self.near.is_empty()).then_some(self.head);
            let far = self.far.first_key_value().map(|(&s, _)| s);
            // On a tie the map's entries were pushed first.
            let take_far = match (near, far) {
                (_, Some(f)) if f <= elapsed && near.is_none_or(|n| f <= n) => true,
                (Some(n), _) if n <= elapsed => false,
                _ => break,
            };
            let mut v = if take_far {
                self.far.pop_first().map(|(_, v)| v).unwrap_or_default()
            } else {
                let v = self.near.pop_front().unwrap_or_default();
                self.head += 1;
                self.trim();
                v
            };
            self.len -= v.len();
            due.append(&mut v);
            if self.spare.len() < SPARE && (1..=SPARE_CAPACITY).contains(&v.capacity()) {
                self.spare.push(v);
            }
        }
    }

    /// Drops empty buckets at the ring's front (the invariant of `head`).
    fn trim(&mut self) {
        while self.near.front().is_some_and(Vec::is_empty) {
            self.near.pop_front();
            self.head += 1;
        }
    }

    pub(crate) fn clear(&mut self) {
        self.near.clear();
        self.far.clear();
        self.len = 0;
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(seq: u64) -> Entry {
        Entry {
            group: 0,
            id: MessageId::new(0, seq),
            gen: 0,
        }
    }

    #[test]
    fn never_early_at_most_a_millisecond_late() {
        let t0 = Instant::now();
        let mut q = TimerQueue::default();
        q.push(t0, t0 + Duration::from_micros(1500), e(1));
        q.push(t0, t0 + Duration::from_millis(1), e(2));
        assert_eq!(q.next_deadline(), Some(t0 + Duration::from_millis(1)));
        let mut due = Vec::new();
        q.pop_due(t0 + Duration::from_micros(999), &mut due);
        assert!(due.is_empty());
        q.pop_due(t0 + Duration::from_millis(1), &mut due);
        assert_eq!(due, vec![e(2)]);
        q.pop_due(t0 + Duration::from_micros(1999), &mut due);
        assert_eq!(due.len(), 1, "1.5 ms rounds up to 2 ms");
        q.pop_due(t0 + Duration::from_millis(2), &mut due);
        assert_eq!(due, vec![e(2), e(1)]);
        assert_eq!(q.len(), 0);
        assert_eq!(q.next_deadline(), None);
    }

    /// The ordered-map queue this one replaced, as the reference.
    #[derive(Default)]
    struct Model {
        base: Option<Instant>,
        slots: BTreeMap<u64, Vec<Entry>>,
    }

    impl Model {
        fn push(&mut self, now: Instant, at: Instant, entry: Entry) {
            let base = *self.base.get_or_insert(now);
            let ms = at
                .saturating_duration_since(base)
                .as_nanos()
                .div_ceil(1_000_000);
            let slot = u64::try_from(ms).unwrap_or(u64::MAX);
            self.slots.entry(slot).or_default().push(entry);
        }

        fn next_deadline(&self) -> Option<Instant> {
            let (&slot, _) = self.slots.first_key_value()?;
            self.base?.checked_add(Duration::from_millis(slot))
        }

        fn pop_due(&mut self, now: Instant, due: &mut Vec<Entry>) {
            let Some(base) = self.base else { return };
            let elapsed = now.saturating_duration_since(base).as_millis() as u64;
            while let Some(e) = self.slots.first_entry() {
                if *e.key() > elapsed {
                    break;
                }
                due.extend(e.remove());
            }
        }
    }

    /// Random pushes (near, far beyond the ring, and already overdue) and
    /// pops agree with the ordered-map queue: same deadlines, same entries
    /// in the same order.
    #[test]
    fn agrees_with_an_ordered_map() {
        use rand::{Rng, SeedableRng};
        for seed in 0..20u64 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let t0 = Instant::now();
            let (mut q, mut m) = (TimerQueue::default(), Model::default());
            let mut now = t0;
            let mut n = 0u64;
            for _ in 0..3_000 {
                match rng.gen_range(0..10) {
                    0..=5 => {
                        let us = match rng.gen_range(0..10) {
                            0 => rng.gen_range(0..200_000_000u64), // far
                            1 => 0,                                // due now
                            _ => rng.gen_range(0..3_000_000u64),
                        };
                        let at = now + Duration::from_micros(us);
                        // Some pushes use an earlier `now` (an overdue deadline).
                        let at = if rng.gen_bool(0.05) { t0 } else { at };
                        n += 1;
                        q.push(now, at, e(n));
                        m.push(now, at, e(n));
                    }
                    _ => {
                        now += Duration::from_micros(rng.gen_range(0..2_000_000));
                        let (mut a, mut b) = (Vec::new(), Vec::new());
                        q.pop_due(now, &mut a);
                        m.pop_due(now, &mut b);
                        assert_eq!(a, b, "seed {seed}");
                    }
                }
                assert_eq!(q.next_deadline(), m.next_deadline(), "seed {seed}");
                let left: usize = m.slots.values().map(Vec::len).sum();
                assert_eq!(q.len(), left, "seed {seed}");
            }
        }
    }
}
