//! The sans-IO in-flight tracker: which messages are unresolved, which
//! attempt each is on, when each must be retransmitted or given up, and what
//! to write next.
//!
//! No socket, no channel, no clock: every input takes `now`, every output is
//! polled (`poll_transmit`, `poll_timeout`, `poll_outcome`), randomness is an
//! injected RNG. The driver feeds it; the tests step it with made-up
//! instants.
//!
//! # Timing rules
//!
//! * Attempt 1 starts at [`Inflight::insert`]. Attempt `n` waits
//!   `retry.delay(n)` for its reply; when that passes, attempt `n + 1` starts
//!   (same ID, `attempt` field `n + 1`), unless `n == max_attempts`: then the
//!   message fails with [`SendError::Timeout`].
//! * The total deadline (`send_timeout` from insert) fails the message
//!   whatever its attempt.
//! * Each message has ONE deadline, the earlier of the two. `poll_timeout`
//!   returns an instant at or before the earliest over all messages (see
//!   "Timers" below: with jitter it can be early, never late), and
//!   `handle_timeout(now)` fires exactly the deadlines at or before `now`.
//! * Deadlines run while disconnected. An attempt started while disconnected
//!   counts; it reaches the wire at the next [`Inflight::on_connected`].
//! * On reconnect every unresolved message is queued at once: an attempt not
//!   yet on the wire goes out under its own number; an attempt that was on
//!   the lost connection is followed by attempt `n + 1` with a fresh deadline.
//!   If `n` was the last allowed it is not written again (a retransmission
//!   always carries a higher attempt number, PROTOCOL.md 5.2): it fails with
//!   `Timeout` at its unchanged deadline, which never claims "not stored".
//! * A transient rejection (`code.is_retryable()`) ends the attempt early: the
//!   next attempt starts after `retry.delay(n)`. A permanent one resolves at
//!   once. After the attempts run out following a transient rejection, the
//!   outcome is [`SendError::Rejected`] with the last code.
//!
//! # Timers
//!
//! Most messages are confirmed on their first attempt, and automatic IDs are
//! numbered in the order they are accepted. So a first attempt in the ring
//! (see [`Slots`]) has no timer of its own: its *first key*,
//! `accepted + min(lowest attempt-1 delay, send_timeout)`, never decreases
//! along the ring, and a cursor over the ring (the lowest slot still timed
//! this way) finds the earliest. Such an entry is "ring-timed"; every other
//! one (later attempts, the side map, an insert that is not the ring's new
//! last slot or was accepted before the last ring-timed one) has an item in
//! a heap keyed by its real deadline ("heap-timed"), and stays heap-timed.
//!
//! The first key is a lower bound of the real deadline (the attempt-1 delay
//! is jittered down by at most `jitter`): when it passes and the real
//! deadline has not, the entry becomes heap-timed with its real deadline.
//! Without jitter the two are equal. Entries leave the ring only through
//! the side map, and each one moved there gets its heap item as it moves.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mq_protocol::{Backoff, ErrorCode, Headers, MessageId, MessageRef, Reply, ReplyStatus};
use rand::Rng;

use crate::message::Wire;
use crate::slots::{Placed, Slots};
use crate::{OutgoingMessage, Receipt, SendError, Topic};

/// The retry rules of the core (a subset of [`crate::SenderConfig`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct CoreConfig {
    pub(crate) retry: Backoff,
    pub(crate) max_attempts: u32,
    pub(crate) send_timeout: Option<Duration>,
    /// The sender's `max_in_flight`: the most sequence numbers the table's
    /// ring spans (see [`Slots`]).
    pub(crate) window: usize,
}

/// The one final outcome of an inserted message, with the caller's data.
#[derive(Debug)]
pub(crate) struct Outcome<T> {
    pub(crate) id: MessageId,
    pub(crate) data: T,
    /// The size of the message's frame (the same on every attempt).
    pub(crate) frame_size: usize,
    /// The error boxed: outcomes are rarely errors, and an unboxed
    /// `SendError` would make every outcome (moved twice) over 100 bytes.
    pub(crate) result: Result<Receipt, Box<SendError>>,
}

/// What a reply did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReplyEffect {
    /// The message is resolved; its outcome is ready in `poll_outcome`.
    Resolved,
    /// A transient rejection; the next attempt waits for its backoff.
    Retrying,
    /// Unknown ID (late reply after the outcome) or a stale rejection.
    Ignored,
}

/// Counters only the core can see.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CoreCounters {
    /// Transmissions after a message's first.
    pub(crate) retransmitted: u64,
    /// Replies for IDs not tracked (already resolved or never sent).
    pub(crate) late_replies: u64,
}

/// One unresolved message. Kept dense: every in-flight message has one
/// (a ring slot, see [`Slots`]), and its size is most of a message's
/// memory cost beyond its payload. The total deadline and the entry's
/// timer key are computed from `accepted` and `retry_at`, not stored, and
/// instants are [`Tick`]s (8 bytes, where an `Instant` takes 16).
#[derive(Debug)]
struct Entry<T> {
    /// What is sent again on every attempt, byte for byte.
    body: Body,
    attempt: u32,
    /// A transmission was handed out before (the next one is a
    /// retransmission).
    transmitted: bool,
    /// The current attempt has been handed to the driver for writing.
    on_wire: bool,
    /// The ID is in the transmit queue for the current attempt.
    queued: bool,
    /// The entry's deadline is (or was) in the timer heap; otherwise it is
    /// ring-timed (module docs, "Timers"). Never goes back to false.
    in_heap: bool,
    accepted: Tick,
    retry_at: Tick,
    data: T,
}

/// The parts of a message an entry keeps: 64 bytes where a `Frame`
/// takes 112. The ID is the table's key and the attempt number the
/// entry's; headers, usually empty, are boxed only when there are some.
/// The topic is the caller's [`Topic`] (a literal stays a reference), and
/// each transmission encodes from borrowed parts ([`MessageRef`]).
#[derive(Debug)]
struct Body {
    topic: Topic,
    headers: Option<Box<Headers>>,
    payload: Bytes,
}

/// The headers of a message without any.
static NO_HEADERS: Headers = Headers::new();

impl Body {
    fn new(msg: Wire) -> Self {
        let headers = (!msg.headers.is_empty()).then(|| Box::new(msg.headers));
        Self {
            topic: msg.topic,
            headers,
            payload: msg.payload,
        }
    }

    /// The `Message` frame of `(id, attempt)`, borrowed.
    fn parts(&self, id: MessageId, attempt: u32) -> MessageRef<'_> {
        MessageRef {
            id,
            attempt,
            topic: &self.topic,
            headers: self.headers.as_deref().unwrap_or(&NO_HEADERS),
            payload: &self.payload,
        }
    }

    fn into_wire(self, id: MessageId) -> Wire {
        Wire {
            id,
            topic: self.topic,
            headers: self.headers.map_or_else(Headers::new, |h| *h),
            payload: self.payload,
        }
    }
}

impl<T> Entry<T> {
    fn set_attempt(&mut self, n: u32) {
        self.attempt = n;
    }

    /// `accepted + send_timeout`, if there is a total deadline.
    fn total_at(&self, cfg: &CoreConfig) -> Option<Tick> {
        cfg.send_timeout
            .map(|d| self.accepted.saturating_add(nanos(d)))
    }

    /// `min(retry_at, total_at)`; the key of this entry's heap item.
    fn deadline(&self, cfg: &CoreConfig) -> Tick {
        self.total_at(cfg)
            .map_or(self.retry_at, |t| t.min(self.retry_at))
    }

    /// The ring-timed key: `min(accepted + first_delay, total_at)`, at or
    /// before [`Entry::deadline`] on attempt 1 (module docs, "Timers").
    fn first_key(&self, cfg: &CoreConfig, first_delay: Tick) -> Tick {
        let r = self.accepted.saturating_add(first_delay);
        self.total_at(cfg).map_or(r, |t| t.min(r))
    }
}

/// Transmit queue capacity kept when it empties (see `trim_transmit`).
const TRANSMIT_KEEP: usize = 1024;

/// An instant as nanoseconds after the core's epoch (the `now` of its first
/// insert). Exact: `Instant` counts nanoseconds, and so does this.
type Tick = u64;

/// A duration in nanoseconds, saturating (584 years).
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The in-flight table. `T` is the caller's per-message data (the driver
/// keeps the completion and flush index there), returned in the outcome.
pub(crate) struct Inflight<T, R> {
    cfg: CoreConfig,
    rng: R,
    entries: Slots<Entry<T>>,
    /// Min-heap of `(deadline, id)` of the heap-timed entries; entries
    /// whose deadline changed since are stale and skipped (lazy deletion),
    /// and the heap is rebuilt when stale ones dominate.
    timers: BinaryHeap<Reverse<(Tick, MessageId)>>,
    /// No ring-timed entry has a lower sequence (module docs, "Timers").
    cursor: u64,
    /// `accepted` of the last entry made ring-timed: a later one must not
    /// be earlier, so first keys never decrease along the ring.
    ring_last: Tick,
    /// The shortest attempt-1 delay any jitter draw gives, in ticks.
    first_delay: Tick,
    /// The last transient rejection of each message that had one, reported
    /// if its attempts run out. Rare: kept here, not in every entry.
    rejections: mq_protocol::hash::FastMap<MessageId, (ErrorCode, String)>,
    /// What [`Tick`]s count from; set by the first insert (no entry, no
    /// tick, before it).
    epoch: Option<Instant>,
    transmit: VecDeque<MessageId>,
    outcomes: VecDeque<Outcome<T>>,
    connected: bool,
    counters: CoreCounters,
}

/// `now` as a [`Tick`] after `epoch` (0 for an earlier instant).
fn tick(epoch: Instant, now: Instant) -> Tick {
    nanos(now.saturating_duration_since(epoch))
}

impl<T, R: Rng> Inflight<T, R> {
    /// An empty, disconnected tracker.
    pub(crate) fn new(cfg: CoreConfig, rng: R) -> Self {
        Self {
            cfg,
            rng,
            entries: Slots::new(cfg.window),
            timers: BinaryHeap::new(),
            cursor: 0,
            ring_last: 0,
            // `delay_with` shrinks as its unit grows, and draws are below 1.
            first_delay: nanos(cfg.retry.delay_with(1, 1.0)),
            rejections: Default::default(),
            epoch: None,
            transmit: VecDeque::new(),
            outcomes: VecDeque::new(),
            connected: false,
            counters: CoreCounters::default(),
        }
    }

    /// Unresolved messages.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is unresolved.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// True when `id` is unresolved.
    #[cfg(test)]
    pub(crate) fn contains(&self, id: MessageId) -> bool {
        self.entries.contains(id)
    }

    /// The core's counters.
    pub(crate) fn counters(&self) -> CoreCounters {
        self.counters
    }

    /// Tracks a new message and starts its attempt 1 (queued for writing if
    /// connected). Its `attempt` field is overwritten.
    ///
    /// Fails, handing both back, if the ID is already unresolved.
    pub(crate) fn insert(&mut self, now: Instant, msg: Wire, data: T) -> Result<(), (Wire, T)> {
        let id = msg.id;
        if self.entries.contains(id) {
            return Err((msg, data));
        }
        // What `arm` and `queue` do for attempt 1, without looking the
        // entry up twice more.
        let epoch = *self.epoch.get_or_insert(now);
        let accepted = tick(epoch, now);
        let retry_at = accepted.saturating_add(nanos(self.cfg.retry.delay_with(1, self.rng.gen())));
        let queued = self.connected;
        let entry = Entry {
            body: Body::new(msg),
            attempt: 1,
            transmitted: false,
            on_wire: false,
            queued,
            in_heap: false,
            accepted,
            retry_at,
            data,
        };
        let (cfg, timers) = (&self.cfg, &mut self.timers);
        let placed = self.entries.insert_with(id, entry, |id, e| {
            // Leaves the ring for the side map: the cursor cannot see it.
            if !e.in_heap {
                e.in_heap = true;
                timers.push(Reverse((e.deadline(cfg), id)));
            }
        });
        let ring_timed = match placed {
            Placed::Alone => true,
            Placed::Back => accepted >= self.ring_last,
            Placed::Inner | Placed::Side => false,
        } && accepted.saturating_add(self.first_delay) <= retry_at;
        if ring_timed {
            self.cursor = match placed {
                Placed::Alone => id.seq,
                _ => self.cursor.min(id.seq),
            };
            self.ring_last = accepted;
        } else if let Some(e) = self.entries.get_mut(id) {
            e.in_heap = true;
            self.timers.push(Reverse((e.deadline(&self.cfg), id)));
        }
        self.compact_timers();
        if queued {
            self.transmit.push_back(id);
        }
        Ok(())
    }

    /// Queues the current attempt for writing if connected.
    fn queue(&mut self, id: MessageId) {
        if !self.connected {
            return;
        }
        if let Some(e) = self.entries.get_mut(id) {
            if !e.queued {
                e.queued = true;
                self.transmit.push_back(id);
            }
        }
    }

    /// Gives back the memory of a transmit queue that a burst grew (16
    /// bytes an ID: messages accepted faster than the socket takes them)
    /// once it is empty, so it is not kept for the life of the sender.
    fn trim_transmit(&mut self) {
        if self.transmit.capacity() > TRANSMIT_KEEP {
            self.transmit.shrink_to(TRANSMIT_KEEP);
        }
    }

    /// Hands the next `Message` frame to write, borrowed from the entry, to
    /// `write` and returns what it returns, or `None` when nothing is
    /// queued. The frame is counted as on the wire from here.
    pub(crate) fn poll_transmit<W>(
        &mut self,
        write: impl FnOnce(MessageRef<'_>) -> W,
    ) -> Option<W> {
        loop {
            let Some(id) = self.transmit.pop_front() else {
                self.trim_transmit();
                return None;
            };
            let Some(e) = self.entries.get_mut(id) else {
                continue;
            };
            if !e.queued {
                continue;
            }
            e.queued = false;
            e.on_wire = true;
            if e.transmitted {
                self.counters.retransmitted += 1;
            }
            e.transmitted = true;
            return Some(write(e.body.parts(id, e.attempt)));
        }
    }

    /// Resolves a message whose attempts or total deadline ran out.
    fn exhausted(&mut self, id: MessageId) {
        let Some(e) = self.entries.get(id) else {
            return;
        };
        let attempts = e.attempt;
        let err = match self.rejections.remove(&id) {
            Some((code, reason)) => SendError::Rejected {
                id,
                code,
                reason,
                attempts,
            },
            None => SendError::Timeout { id, attempts },
        };
        self.resolve(id, Err(err));
    }

    fn resolve(&mut self, id: MessageId, result: Result<Receipt, SendError>) {
        if let Some(e) = self.entries.remove(id) {
            self.forget_rejection(id);
            self.outcomes.push_back(Outcome {
                id,
                frame_size: e.body.parts(id, e.attempt).frame_size(),
                data: e.data,
                result: result.map_err(Box::new),
            });
        }
    }

    fn forget_rejection(&mut self, id: MessageId) {
        if !self.rejections.is_empty() {
            self.rejections.remove(&id);
        }
    }

    /// Applies a broker reply.
    pub(crate) fn handle_reply(&mut self, now: Instant, reply: Reply) -> ReplyEffect {
        let Some(e) = self.entries.get_mut(reply.id) else {
            self.counters.late_replies += 1;
            tracing::debug!(id = %reply.id, attempt = reply.attempt, "reply for an unknown or resolved message; ignored");
            return ReplyEffect::Ignored;
        };
        let id = reply.id;
        match reply.status {
            ReplyStatus::Stored | ReplyStatus::Duplicate => {
                let receipt = Receipt {
                    id,
                    attempts: e.attempt,
                    // In ticks: one clock subtraction, no `Instant` built.
                    elapsed: self.epoch.map_or(Duration::ZERO, |epoch| {
                        Duration::from_nanos(tick(epoch, now).saturating_sub(e.accepted))
                    }),
                    duplicate: reply.status == ReplyStatus::Duplicate,
                };
                self.resolve(id, Ok(receipt));
                ReplyEffect::Resolved
            }
            ReplyStatus::Rejected { code, reason } if !code.is_retryable() => {
                let attempts = e.attempt;
                self.resolve(
                    id,
                    Err(SendError::Rejected {
                        id,
                        code,
                        reason,
                        attempts,
                    }),
                );
                ReplyEffect::Resolved
            }
            ReplyStatus::Rejected { code, reason } => {
                if reply.attempt < e.attempt {
                    // A newer attempt is out with its own timer.
                    return ReplyEffect::Ignored;
                }
                tracing::debug!(id = %id, attempt = e.attempt, %code, "transient rejection; backing off");
                let last = e.attempt >= self.cfg.max_attempts;
                if !last {
                    // Drop a queued copy of this attempt: it was just answered.
                    e.queued = false;
                }
                self.rejections.insert(id, (code, reason));
                if last {
                    self.exhausted(id);
                    return ReplyEffect::Resolved;
                }
                self.arm(id, now);
                ReplyEffect::Retrying
            }
        }
    }

    /// The next outcome, in the order they were decided.
    pub(crate) fn poll_outcome(&mut self) -> Option<Outcome<T>> {
        self.outcomes.pop_front()
    }

    /// The connection is gone: nothing is written until `on_connected`.
    /// Deadlines keep running.
    pub(crate) fn on_disconnect(&mut self) {
        self.connected = false;
        for id in self.transmit.drain(..) {
            if let Some(e) = self.entries.get_mut(id) {
                e.queued = false;
            }
        }
    }

    /// A connection is up: queue every unresolved message (see the module
    /// docs for the attempt numbering), in ID order.
    pub(crate) fn on_connected(&mut self, now: Instant) {
        self.on_disconnect();
        self.connected = true;
        for id in self.entries.ids_sorted() {
            let Some(e) = self.entries.get_mut(id) else {
                continue;
            };
            if e.on_wire {
                if e.attempt >= self.cfg.max_attempts {
                    // Its last attempt went out on the lost connection. A
                    // retransmission must carry a higher attempt number
                    // (PROTOCOL.md 5.2) and none is left: it resolves with
                    // `Timeout` at its deadline, which never claims "not
                    // stored".
                    continue;
                }
                let next = e.attempt + 1;
                e.set_attempt(next);
                e.on_wire = false;
                self.arm(id, now);
            }
            self.queue(id);
        }
    }

    /// Fails one message, e.g. because its frame no longer fits the frame
    /// size of a broker reached after a reconnect. The message is given back.
    pub(crate) fn fail_too_large(&mut self, id: MessageId, max: usize) {
        if let Some(e) = self.entries.remove(id) {
            self.forget_rejection(id);
            let size = e.body.parts(id, e.attempt).frame_size();
            let msg = e.body.into_wire(id);
            self.outcomes.push_back(Outcome {
                id,
                data: e.data,
                frame_size: size,
                result: Err(Box::new(SendError::TooLarge {
                    size,
                    max,
                    message: OutgoingMessage::from_wire(msg, false),
                })),
            });
        }
    }

    /// Resolves every unresolved message with [`SendError::Abandoned`] and
    /// returns their IDs, sorted.
    pub(crate) fn abandon_all(&mut self) -> Vec<MessageId> {
        let ids = self.entries.ids_sorted();
        for &id in &ids {
            if let Some(e) = self.entries.get(id) {
                let attempts = e.attempt;
                self.resolve(id, Err(SendError::Abandoned { id, attempts }));
            }
        }
        self.transmit.clear();
        self.timers.clear();
        self.rejections.clear();
        ids
    }
}

#[path = "inflight_timers.rs"]
mod timers;

#[cfg(test)]
#[path = "inflight_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "inflight_timer_tests.rs"]
mod timer_tests;

#[cfg(test)]
#[path = "inflight_transmit_tests.rs"]
mod transmit_tests;
