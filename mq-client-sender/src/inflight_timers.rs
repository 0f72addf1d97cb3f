//! The in-flight core's timers: the heap of heap-timed entries and the
//! cursor over the ring's first attempts (see the parent's module docs,
//! "Timers"), and what firing one does.

use std::cmp::Reverse;
use std::time::{Duration, Instant};

use mq_protocol::MessageId;
use rand::Rng;

use super::{nanos, tick, Inflight, Tick};

/// Where the next timer comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Heap,
    Ring,
}

impl<T, R: Rng> Inflight<T, R> {
    /// Sets the retry deadline of the current attempt to
    /// `now + retry.delay(attempt)` and (re)arms the entry's one timer.
    pub(super) fn arm(&mut self, id: MessageId, now: Instant) {
        let Some(e) = self.entries.get_mut(id) else {
            return;
        };
        let now = self.epoch.map_or(0, |epoch| tick(epoch, now));
        e.retry_at =
            now.saturating_add(nanos(self.cfg.retry.delay_with(e.attempt, self.rng.gen())));
        e.in_heap = true;
        let deadline = e.deadline(&self.cfg);
        self.timers.push(Reverse((deadline, id)));
        self.compact_timers();
    }

    pub(super) fn compact_timers(&mut self) {
        if self.timers.len() > 1024 && self.timers.len() > 4 * self.entries.len() {
            self.timers = self
                .entries
                .iter()
                .filter(|(_, e)| e.in_heap)
                .map(|(id, e)| Reverse((e.deadline(&self.cfg), id)))
                .collect();
        }
    }

    /// An instant at or before the earliest deadline of any unresolved
    /// message (exactly it without jitter; see the module docs, "Timers"):
    /// call [`Inflight::handle_timeout`] then.
    pub(crate) fn poll_timeout(&mut self) -> Option<Instant> {
        let epoch = self.epoch?;
        self.next_timer()
            .map(|(t, _, _)| epoch + Duration::from_nanos(t))
    }

    /// The earliest timer: the live heap top (stale items dropped) or the
    /// first key of the first ring-timed entry, whichever is earlier.
    fn next_timer(&mut self) -> Option<(Tick, MessageId, Source)> {
        let heap = loop {
            let Some(Reverse((t, id))) = self.timers.peek().copied() else {
                break None;
            };
            match self.entries.get(id) {
                Some(e) if e.in_heap && e.deadline(&self.cfg) == t => break Some((t, id)),
                _ => {
                    self.timers.pop();
                }
            }
        };
        let (cfg, first_delay) = (&self.cfg, self.first_delay);
        let (cursor, ring) = self.entries.first_in_ring(self.cursor, |e| !e.in_heap);
        self.cursor = cursor;
        let ring = ring.map(|(id, e)| (e.first_key(cfg, first_delay), id));
        match (heap, ring) {
            (Some(h), Some(r)) if r < h => Some((r.0, r.1, Source::Ring)),
            (Some(h), _) => Some((h.0, h.1, Source::Heap)),
            (None, r) => r.map(|(t, id)| (t, id, Source::Ring)),
        }
    }

    /// Fires every deadline at or before `now`: retransmissions and failures.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        let Some(epoch) = self.epoch else {
            return;
        };
        // An instant before the epoch is before every deadline.
        let now_tick = tick(epoch, now);
        while let Some((t, id, source)) = self.next_timer() {
            if t > now_tick || now < epoch {
                break;
            }
            if source == Source::Heap {
                self.timers.pop();
                self.expire(id, now, now_tick);
                continue;
            }
            let Some(e) = self.entries.get_mut(id) else {
                break;
            };
            let deadline = e.deadline(&self.cfg);
            if deadline <= now_tick {
                // `expire` resolves it or arms its next attempt (heap-timed).
                self.expire(id, now, now_tick);
            } else {
                // Its first key passed, its jittered deadline not yet.
                e.in_heap = true;
                self.timers.push(Reverse((deadline, id)));
            }
        }
    }

    fn expire(&mut self, id: MessageId, now: Instant, now_tick: Tick) {
        let Some(e) = self.entries.get_mut(id) else {
            return;
        };
        let total_passed = e.total_at(&self.cfg).is_some_and(|t| t <= now_tick);
        if total_passed || e.attempt >= self.cfg.max_attempts {
            tracing::debug!(id = %id, attempts = e.attempt, total_passed, "giving up");
            self.exhausted(id);
            return;
        }
        let next = e.attempt + 1;
        e.set_attempt(next);
        e.on_wire = false;
        tracing::debug!(id = %id, attempt = next, connected = self.connected, "no reply; next attempt");
        self.arm(id, now);
        self.queue(id);
    }
}
