//! The sans-IO receiver core: credit, the in-progress table, settling and
//! the dedup decision.
//!
//! No socket, no channel, no clock, no store: every input takes `now`, every
//! output is polled ([`RecvCore::poll_transmit`] for frames to write,
//! [`RecvCore::poll_dispatch`] for deliveries to hand to the handler or the
//! stream, [`RecvCore::poll_timeout`] for the next timer). The dedup store is
//! asked by the driver: the core says which ID to look up
//! ([`DeliverStep::Lookup`]) or to mark ([`Settled::Mark`]) and is told the
//! answer ([`RecvCore::on_lookup`], [`RecvCore::on_marked`]), whenever it
//! comes. The driver feeds it; the tests step it with made-up instants.
//!
//! # Rules
//!
//! * Credit: each subscription starts with `prefetch` on a connection; one
//!   credit per charged `Deliver` frame comes back when that delivery is
//!   settled (or acked as a duplicate), batched in `Credit` frames of at
//!   least `prefetch / 4` or after [`CREDIT_FLUSH_DELAY`]. Credit held on an
//!   older connection is never given back on a newer one.
//! * A frame repeating an attempt already seen on this connection is a
//!   transport copy: not charged, ignored ([`recent`]).
//! * A delivery of an ID in progress (looked up, dispatched, or being
//!   marked) is tied to it: no second dispatch, its credit is returned with
//!   the first's settlement.
//! * A delivery of an ID the store remembers is acked at once.
//! * Otherwise it is dispatched once, under a fresh token. Only the current
//!   token of an ID settles it, once: an ack first marks the ID in the store
//!   and is written when the mark is done; a nack is written at once.
//! * A disconnect forgets the connection (credit, queued frames, copies
//!   seen) but never an in-progress ID: its settlement later still records
//!   it (ack) and is written on the new connection if there is one.
//! * Closing: nothing more is dispatched and no credit is given back.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mq_protocol::hash::FastMap;
use mq_protocol::{Ack, Credit, Deliver, Frame, MessageId, Nack};

use crate::config::AckMode;
use crate::delivery::Outcome;
use crate::stats::Counters;

pub(crate) mod recent;

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod tests;

/// Owed credit is sent at the latest this long after it became owed.
pub const CREDIT_FLUSH_DELAY: Duration = Duration::from_millis(10);

/// The rules the core needs from the configuration.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CoreConfig {
    /// Credit per subscription per connection.
    pub prefetch: u32,
    /// Who settles: in `Auto` a handler `Ok` acks.
    pub mode: AckMode,
    /// Subscriptions on every connection, `sub_id` 1 to `subs`.
    pub subs: u32,
}

/// Where an in-progress ID stands.
#[derive(Debug)]
enum Stage {
    /// Waiting for the store's `contains` (the driver holds the delivery
    /// meanwhile and hands it back with the answer).
    Lookup,
    /// With the handler or the stream under `token`.
    Dispatched,
    /// Acked; waiting for the store's `insert` before writing the `Ack`.
    Marking,
}

#[derive(Debug)]
struct Entry {
    token: u64,
    stage: Stage,
    /// The subscription it came on (the `sub_id` of its `Ack`/`Nack`).
    sub: u32,
    /// Connection (epoch) the held credit belongs to.
    epoch: u64,
    /// Charged `Deliver` frames of this ID on that connection.
    credits: u32,
    /// Highest `delivery_attempt` seen on that connection.
    max_attempt: u32,
}

/// What a `Deliver` frame did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum DeliverStep {
    /// Not for this core (disconnected, unknown `sub_id`) or a transport
    /// copy: nothing to do.
    Ignored,
    /// The ID is in progress: tied to it.
    Tied,
    /// Ask the store whether `deliver.id` was processed; answer with
    /// [`RecvCore::on_lookup`], `token` and the delivery (handed back, so
    /// the common ready answer costs no allocation).
    Lookup { token: u64, deliver: Deliver },
}

/// What a settlement did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settled {
    /// Not the current token of an in-progress ID (already settled).
    Stale,
    /// Settled (a nack, or a manual-mode handler `Ok`, which leaves the
    /// delivery to its owner).
    Done,
    /// An ack: record `id` in the store, then call [`RecvCore::on_marked`].
    Mark { id: MessageId },
}

/// A delivery for the handler or the stream, under `token`.
#[derive(Debug)]
pub(crate) struct Dispatch {
    pub deliver: Deliver,
    pub token: u64,
}

/// The receiver's state machine; see the module docs.
pub(crate) struct RecvCore {
    cfg: CoreConfig,
    counters: Arc<Counters>,
    entries: FastMap<MessageId, Entry>,
    next_token: u64,
    /// Current connection; 0 before the first.
    epoch: u64,
    connected: bool,
    closing: bool,
    recent: recent::Recent,
    /// Credit owed per subscription (`sub_id - 1`).
    owed: Vec<u32>,
    flush_at: Option<Instant>,
    transmit: VecDeque<Frame>,
    dispatch: VecDeque<Dispatch>,
}

impl RecvCore {
    /// An empty, disconnected core.
    pub(crate) fn new(cfg: CoreConfig, counters: Arc<Counters>) -> Self {
        let subs = cfg.subs.max(1);
        Self {
            cfg: CoreConfig { subs, ..cfg },
            counters,
            entries: FastMap::default(),
            next_token: 0,
            epoch: 0,
            connected: false,
            closing: false,
            recent: recent::Recent::new(recent_cap(cfg.prefetch, subs)),
            owed: vec![0; subs as usize],
            flush_at: None,
            transmit: VecDeque::new(),
            dispatch: VecDeque::new(),
        }
    }

    /// IDs in progress (looked up, dispatched or being marked).
    pub(crate) fn in_progress(&self) -> usize {
        self.entries.len()
    }

    /// True if `id` is in progress.
    #[cfg(test)]
    pub(crate) fn is_in_progress(&self, id: MessageId) -> bool {
        self.entries.contains_key(&id)
    }

    /// True once [`RecvCore::close`] was called.
    #[cfg(test)]
    pub(crate) fn is_closing(&self) -> bool {
        self.closing
    }

    /// A connection with all subscriptions active: fresh credit, nothing
    /// owed. Returns its epoch.
    pub(crate) fn on_connected(&mut self, _now: Instant) -> u64 {
        if self.epoch > 0 {
            self.counters.reconnected();
        }
        self.epoch += 1;
        self.connected = true;
        self.recent = recent::Recent::new(recent_cap(self.cfg.prefetch, self.cfg.subs));
        self.owed.iter_mut().for_each(|o| *o = 0);
        self.flush_at = None;
        self.transmit.clear();
        self.epoch
    }

    /// The connection is gone: its credit and unwritten frames with it.
    /// In-progress IDs stay.
    pub(crate) fn on_disconnected(&mut self) {
        self.connected = false;
        self.owed.iter_mut().for_each(|o| *o = 0);
        self.flush_at = None;
        self.transmit.clear();
    }

    /// Stop dispatching and giving credit back; dispatches not yet taken
    /// are dropped (left unsettled: the broker returns them).
    pub(crate) fn close(&mut self) {
        self.closing = true;
        self.flush_at = None;
        self.owed.iter_mut().for_each(|o| *o = 0);
        for d in std::mem::take(&mut self.dispatch) {
            self.entries.remove(&d.deliver.id);
        }
        self.counters.set_unsettled(self.entries.len());
    }

    /// A `Deliver` frame read from the current connection.
    pub(crate) fn on_deliver(&mut self, _now: Instant, d: Deliver) -> DeliverStep {
        if !self.connected {
            return DeliverStep::Ignored;
        }
        if d.sub_id == 0 || d.sub_id > self.cfg.subs {
            tracing::debug!(
                sub_id = d.sub_id,
                "delivery for an unknown subscription ignored"
            );
            return DeliverStep::Ignored;
        }
        self.counters.delivered();
        let id = d.id;
        if self.recent.is_copy(id, d.delivery_attempt) {
            // Not charged by the broker: no credit back, nothing to settle.
            self.counters.duplicate();
            tracing::debug!(%id, attempt = d.delivery_attempt, "transport copy ignored");
            return DeliverStep::Ignored;
        }
        if d.delivery_attempt > 1 {
            self.counters.redelivery();
        }
        let epoch = self.epoch;
        if let Some(e) = self.entries.get_mut(&id) {
            self.counters.duplicate();
            tracing::debug!(%id, "duplicate of a delivery in progress");
            if e.epoch != epoch {
                // Credit of the old connection is gone with it.
                e.epoch = epoch;
                e.credits = 1;
                e.sub = d.sub_id;
                e.max_attempt = d.delivery_attempt;
            } else if d.delivery_attempt > e.max_attempt {
                e.credits = e.credits.saturating_add(1);
                e.max_attempt = d.delivery_attempt;
            }
            return DeliverStep::Tied;
        }
        self.next_token += 1;
        let token = self.next_token;
        self.entries.insert(
            id,
            Entry {
                token,
                sub: d.sub_id,
                epoch,
                credits: 1,
                max_attempt: d.delivery_attempt,
                stage: Stage::Lookup,
            },
        );
        self.counters.set_unsettled(self.entries.len());
        DeliverStep::Lookup { token, deliver: d }
    }

    /// The store's answer for a [`DeliverStep::Lookup`].
    pub(crate) fn on_lookup(&mut self, now: Instant, d: Deliver, token: u64, seen: bool) {
        let id = d.id;
        let Some(e) = self.entries.get_mut(&id) else {
            return;
        };
        if e.token != token || !matches!(e.stage, Stage::Lookup) {
            return;
        }
        if seen || self.closing {
            // Seen: acked from dedup. Closing: left unsettled, the broker
            // returns it when the connection closes.
            let Some(e) = self.entries.remove(&id) else {
                return;
            };
            self.counters.set_unsettled(self.entries.len());
            if seen {
                self.counters.duplicate();
                self.counters.acked();
                tracing::debug!(%id, "duplicate of a processed message acked");
                self.ack_and_return(now, id, &e);
            }
            return;
        }
        e.stage = Stage::Dispatched;
        self.counters.handled();
        self.dispatch.push_back(Dispatch { deliver: d, token });
    }

    /// The next delivery to hand to the handler or the stream.
    pub(crate) fn poll_dispatch(&mut self) -> Option<Dispatch> {
        self.dispatch.pop_front()
    }

    /// A handler call under `token` returned (`Err` carries the requested
    /// redelivery delay in ms).
    pub(crate) fn on_handler_done(
        &mut self,
        now: Instant,
        id: MessageId,
        token: u64,
        result: Result<(), u32>,
    ) -> Settled {
        match result {
            Ok(()) if self.cfg.mode == AckMode::Auto => self.settle(now, id, token, Outcome::Ack),
            Ok(()) => Settled::Done,
            Err(delay_ms) => {
                self.counters.handler_error();
                self.settle(now, id, token, Outcome::Nack { delay_ms })
            }
        }
    }

    /// Applies `outcome` if `token` is the current dispatch of `id`.
    pub(crate) fn settle(
        &mut self,
        now: Instant,
        id: MessageId,
        token: u64,
        outcome: Outcome,
    ) -> Settled {
        let Some(e) = self.entries.get_mut(&id) else {
            return Settled::Stale;
        };
        if e.token != token || !matches!(e.stage, Stage::Dispatched) {
            return Settled::Stale;
        }
        match outcome {
            Outcome::Ack => {
                e.stage = Stage::Marking;
                Settled::Mark { id }
            }
            Outcome::Nack { delay_ms } => {
                let Some(e) = self.entries.remove(&id) else {
                    return Settled::Stale;
                };
                self.counters.set_unsettled(self.entries.len());
                self.counters.nacked();
                if self.connected && e.epoch == self.epoch {
                    self.transmit.push_back(Frame::Nack(Nack {
                        sub_id: e.sub,
                        id,
                        delay_ms,
                    }));
                    self.grant(now, e.sub, e.credits);
                }
                Settled::Done
            }
        }
    }

    /// The store recorded `id` (or failed to: it is acked anyway, it was
    /// processed): the `Ack` goes out and the credit comes back.
    pub(crate) fn on_marked(&mut self, now: Instant, id: MessageId) {
        if !matches!(
            self.entries.get(&id).map(|e| &e.stage),
            Some(Stage::Marking)
        ) {
            return;
        }
        let Some(e) = self.entries.remove(&id) else {
            return;
        };
        self.counters.set_unsettled(self.entries.len());
        self.counters.acked();
        self.ack_and_return(now, id, &e);
    }

    fn ack_and_return(&mut self, now: Instant, id: MessageId, e: &Entry) {
        if self.connected {
            // On another connection than the delivery, the broker ignores
            // it or it settles the redelivery: harmless.
            self.transmit
                .push_back(Frame::Ack(Ack { sub_id: e.sub, id }));
            if e.epoch == self.epoch {
                self.grant(now, e.sub, e.credits);
            }
        }
    }

    fn grant(&mut self, now: Instant, sub: u32, n: u32) {
        if self.closing || !self.connected {
            return;
        }
        let Some(owed) = self.owed.get_mut(sub.wrapping_sub(1) as usize) else {
            return;
        };
        *owed = owed.saturating_add(n);
        if *owed >= (self.cfg.prefetch / 4).max(1) {
            let credit = std::mem::take(owed);
            self.transmit.push_back(Frame::Credit(Credit {
                sub_id: sub,
                credit,
            }));
        } else if self.flush_at.is_none() && *owed > 0 {
            self.flush_at = Some(now + CREDIT_FLUSH_DELAY);
        }
    }

    /// When [`RecvCore::handle_timeout`] must run next.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.flush_at
    }

    /// Runs the timers due at `now`: owed credit is written.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if self.flush_at.is_some_and(|t| t <= now) {
            self.flush_at = None;
            for (i, owed) in self.owed.iter_mut().enumerate() {
                if *owed > 0 {
                    let credit = std::mem::take(owed);
                    self.transmit.push_back(Frame::Credit(Credit {
                        sub_id: i as u32 + 1,
                        credit,
                    }));
                }
            }
        }
    }

    /// The next frame to write on the current connection.
    pub(crate) fn poll_transmit(&mut self) -> Option<Frame> {
        self.transmit.pop_front()
    }
}

fn recent_cap(prefetch: u32, subs: u32) -> usize {
    4 * prefetch.max(16) as usize * subs.max(1) as usize
}
