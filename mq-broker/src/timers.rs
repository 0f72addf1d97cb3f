//! The core's one timer queue: redelivery and nack deadlines bucketed by
//! millisecond.
//!
//! Deadlines are rounded *up* to the next whole millisecond after the first
//! deadline's reference instant, so an entry never fires early and at most
//! 1 ms late. Entries are never removed before they fire: an ack leaves its
//! entry behind, recognised as stale by its generation when it fires. With
//! one bucket per millisecond, pushing and firing cost O(1) per entry plus an
//! ordered-map step per bucket, instead of a heap's O(log n) per entry.

use std::collections::BTreeMap;
use std::time::Duration;

use mq_protocol::MessageId;
use tokio::time::Instant;

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
    /// Reference instant of bucket 0: the first deadline's `now`.
    base: Option<Instant>,
    slots: BTreeMap<u64, Vec<Entry>>,
    len: usize,
}

impl TimerQueue {
    /// Schedules `entry` for `at`; `now` anchors the buckets on first use.
    pub(crate) fn push(&mut self, now: Instant, at: Instant, entry: Entry) {
        let base = *self.base.get_or_insert(now);
        let since = at.saturating_duration_since(base);
        let ms = since.as_nanos().div_ceil(1_000_000);
        let slot = u64::try_from(ms).unwrap_or(u64::MAX);
        self.slots.entry(slot).or_default().push(entry);
        self.len += 1;
    }

    /// The earliest deadline (the instant its bucket fires).
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let base = self.base?;
        let (&slot, _) = self.slots.first_key_value()?;
        base.checked_add(Duration::from_millis(slot))
    }

    /// Moves every entry due at `now` into `due`, in deadline order.
    pub(crate) fn pop_due(&mut self, now: Instant, due: &mut Vec<Entry>) {
        let Some(base) = self.base else {
            return;
        };
        let elapsed = now.saturating_duration_since(base).as_millis();
        let elapsed = u64::try_from(elapsed).unwrap_or(u64::MAX);
        while let Some(entry) = self.slots.first_entry() {
            if *entry.key() > elapsed {
                break;
            }
            let v = entry.remove();
            self.len -= v.len();
            due.extend(v);
        }
    }

    pub(crate) fn clear(&mut self) {
        self.slots.clear();
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
}
