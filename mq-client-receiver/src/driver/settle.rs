//! The bookkeeping half of the driver: what happens to a delivery, from
//! `Deliver` (dedup check, dispatch) to its settlement (store, `Ack`/`Nack`,
//! credit back). No I/O here: frames go to the outbox.

use futures::FutureExt;
use mq_protocol::{Ack, Deliver, Frame, MessageId, Nack};
use tokio::time::Instant;
use tracing::Instrument;

use super::{
    flush_credit, Dispatch, InFlight, Shutdown, State, StoreDone, CREDIT_FLUSH_DELAY, MARKING,
};
use crate::config::AckMode;
use crate::conn::SUB_ID;
use crate::delivery::{delay_ms, Delivery, Event, Outcome};
use crate::error::HandlerError;
use crate::handler::call;
use crate::stats::bump;
use crate::store::StoreError;

impl State {
    pub(super) fn on_deliver(&mut self, d: Deliver) {
        let Some(l) = self.live.as_mut() else {
            return;
        };
        let epoch = l.epoch;
        if d.sub_id != SUB_ID {
            tracing::debug!(
                sub_id = d.sub_id,
                "delivery for an unknown subscription ignored"
            );
            return;
        }
        let c = &self.d.counters;
        bump(&c.delivered);
        let id = d.id;
        if l.recent.is_copy(id, d.delivery_attempt) {
            // Not charged by the broker: no credit back, nothing to settle
            // (the original is settled or being handled).
            bump(&c.duplicates_suppressed);
            tracing::debug!(%id, attempt = d.delivery_attempt, "transport copy ignored");
            return;
        }
        if let Some(f) = self.in_progress.get_mut(&id) {
            // Tied to the running call: settled (and credit returned) with it.
            bump(&c.duplicates_suppressed);
            tracing::debug!(%id, "duplicate of a delivery still being handled");
            if f.epoch != epoch {
                f.epoch = epoch;
                f.credits = 1;
                f.max_attempt = d.delivery_attempt;
            } else if d.delivery_attempt > f.max_attempt {
                f.credits = f.credits.saturating_add(1);
                f.max_attempt = d.delivery_attempt;
            }
            return;
        }
        let seen = match self.d.store.contains(id).into_ready() {
            Ok(r) => self.seen(id, r),
            Err(fut) => {
                // The store does I/O: hold the ID as in progress (so a
                // redelivery is tied to it) and decide when it answers.
                self.next_token += 1;
                let token = self.next_token;
                self.in_progress.insert(
                    id,
                    InFlight {
                        token,
                        epoch,
                        credits: 1,
                        max_attempt: d.delivery_attempt,
                    },
                );
                c.set_unsettled(self.in_progress.len());
                let d = Box::new(d);
                self.store_ops
                    .push(Box::pin(fut.map(move |result| StoreDone::Lookup {
                        d,
                        token,
                        result,
                    })));
                return;
            }
        };
        if seen {
            self.ack_duplicate(id);
            self.grant(1);
            return;
        }
        if self.shutdown.is_some() {
            // Left unsettled: the broker returns it when we close.
            return;
        }
        self.next_token += 1;
        let token = self.next_token;
        self.in_progress.insert(
            id,
            InFlight {
                token,
                epoch,
                credits: 1,
                max_attempt: d.delivery_attempt,
            },
        );
        self.dispatch(d, token);
    }

    /// The answer of a lookup, errors read as "not seen".
    fn seen(&self, id: MessageId, r: Result<bool, StoreError>) -> bool {
        r.unwrap_or_else(|e| {
            bump(&self.d.counters.store_errors);
            tracing::warn!(%id, error = %e, "dedup lookup failed; treating as unseen");
            false
        })
    }

    fn ack_duplicate(&mut self, id: MessageId) {
        let c = &self.d.counters;
        bump(&c.duplicates_suppressed);
        bump(&c.acked);
        tracing::debug!(%id, "duplicate of a processed message acked");
        if self.live.is_some() {
            self.outbox.push(Frame::Ack(Ack { sub_id: SUB_ID, id }));
        }
    }

    /// A store call that was pending finished.
    pub(super) fn on_store_done(&mut self, done: StoreDone) {
        match done {
            StoreDone::Lookup { d, token, result } => {
                let id = d.id;
                if self.in_progress.get(&id).map(|f| f.token) != Some(token) {
                    return;
                }
                let seen = self.seen(id, result);
                if seen || self.shutdown.is_some() {
                    // Seen: acked from dedup. Shutting down: left unsettled,
                    // the broker returns it when we close.
                    let Some(f) = self.in_progress.remove(&id) else {
                        return;
                    };
                    self.d.counters.set_unsettled(self.in_progress.len());
                    if seen {
                        self.ack_duplicate(id);
                        if self.live.as_ref().is_some_and(|l| l.epoch == f.epoch) {
                            self.grant(f.credits);
                        }
                    }
                    return;
                }
                self.dispatch(*d, token);
            }
            StoreDone::Marked { id, result } => {
                if self.in_progress.get(&id).map(|f| f.token) != Some(MARKING) {
                    return;
                }
                if let Err(e) = result {
                    bump(&self.d.counters.store_errors);
                    tracing::warn!(%id, error = %e, "dedup insert failed; acking anyway");
                }
                if let Some(f) = self.in_progress.remove(&id) {
                    self.d.counters.set_unsettled(self.in_progress.len());
                    self.acked(id, f);
                }
            }
            StoreDone::Expired(r) => {
                self.expiring = false;
                if let Err(e) = r {
                    bump(&self.d.counters.store_errors);
                    tracing::warn!(error = %e, "dedup store expiry failed");
                }
            }
        }
    }

    /// Hands a delivery held in `in_progress` under `token` to the handler
    /// or the stream.
    fn dispatch(&mut self, d: Deliver, token: u64) {
        let id = d.id;
        let c = &self.d.counters;
        bump(&c.handled);
        c.set_unsettled(self.in_progress.len());
        let span = tracing::info_span!("delivery", %id, attempt = d.delivery_attempt);
        let delivery = Delivery::new(d, self.d.mode, token, self.d.events_tx.clone());
        match &mut self.d.dispatch {
            Dispatch::Handler { handler, sem } => {
                let handler = handler.clone();
                let sem = sem.clone();
                self.tasks.spawn(
                    async move {
                        let result = match sem.acquire_owned().await {
                            Ok(_permit) => call(&*handler, delivery).await,
                            Err(_) => Err(HandlerError::new("receiver closing")),
                        };
                        (id, token, result)
                    }
                    .instrument(span),
                );
            }
            Dispatch::Stream(tx) => {
                // If the stream is gone the delivery comes back here and its
                // drop nacks it.
                if let Some(tx) = tx {
                    let _ = tx.send(delivery);
                }
            }
        }
    }

    pub(super) fn on_task(&mut self, id: MessageId, token: u64, result: Result<(), HandlerError>) {
        match result {
            Ok(()) => {
                if self.d.mode == AckMode::Auto {
                    self.settle(id, token, Outcome::Ack);
                }
            }
            Err(e) => {
                bump(&self.d.counters.handler_errors);
                tracing::warn!(%id, error = %e, "handler failed; nacking");
                self.settle(
                    id,
                    token,
                    Outcome::Nack {
                        delay_ms: delay_ms(e.delay()),
                    },
                );
            }
        }
    }

    pub(super) fn on_event(&mut self, ev: Event) {
        match ev {
            Event::Settle {
                id,
                token,
                outcome,
                reply,
            } => {
                let r = if self.settle(id, token, outcome) {
                    Ok(())
                } else {
                    Err(crate::AckError::AlreadySettled)
                };
                if let Some(reply) = reply {
                    let _ = reply.send(r);
                }
            }
            Event::Shutdown { deadline, reply } => {
                if let Some(sd) = &mut self.shutdown {
                    // A second request: keep the earlier deadline, answer both.
                    sd.deadline = sd.deadline.min(Instant::now() + deadline);
                    let _ = reply.send(Ok(()));
                    return;
                }
                tracing::info!(?deadline, "shutting down");
                self.shutdown = Some(Shutdown {
                    deadline: Instant::now() + deadline,
                    reply: Some(reply),
                });
                self.reconnect_at = None;
                self.connecting = None;
                if let Dispatch::Stream(tx) = &mut self.d.dispatch {
                    tx.take();
                }
            }
        }
    }

    /// Applies `outcome` if `token` is the current dispatch of `id`.
    pub(super) fn settle(&mut self, id: MessageId, token: u64, outcome: Outcome) -> bool {
        let Some(f) = self.in_progress.get_mut(&id) else {
            return false;
        };
        if f.token != token || token == MARKING {
            return false;
        }
        if outcome == Outcome::Ack {
            let now = Instant::now().into_std();
            match self.d.store.insert(now, id).into_ready() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    bump(&self.d.counters.store_errors);
                    tracing::warn!(%id, error = %e, "dedup insert failed; acking anyway");
                }
                Err(fut) => {
                    // Ack once the mark is written; until then the ID stays
                    // in progress so a redelivery waits with it.
                    f.token = MARKING;
                    self.store_ops.push(Box::pin(
                        fut.map(move |result| StoreDone::Marked { id, result }),
                    ));
                    return true;
                }
            }
        }
        let Some(f) = self.in_progress.remove(&id) else {
            return false;
        };
        self.d.counters.set_unsettled(self.in_progress.len());
        match outcome {
            Outcome::Ack => self.acked(id, f),
            Outcome::Nack { delay_ms } => {
                bump(&self.d.counters.nacked);
                let same_conn = self.live.as_ref().is_some_and(|l| l.epoch == f.epoch);
                if same_conn {
                    self.outbox.push(Frame::Nack(Nack {
                        sub_id: SUB_ID,
                        id,
                        delay_ms,
                    }));
                    self.grant(f.credits);
                }
            }
        }
        true
    }

    /// Writes the `Ack` of a recorded ID and gives its credit back.
    fn acked(&mut self, id: MessageId, f: InFlight) {
        bump(&self.d.counters.acked);
        if self.live.is_some() {
            // On another connection than the delivery, the broker ignores
            // it or it settles the redelivery: harmless.
            self.outbox.push(Frame::Ack(Ack { sub_id: SUB_ID, id }));
        }
        if self.live.as_ref().is_some_and(|l| l.epoch == f.epoch) {
            self.grant(f.credits);
        }
    }

    pub(super) fn grant(&mut self, n: u32) {
        if self.shutdown.is_some() {
            return;
        }
        let threshold = (self.d.config.prefetch / 4).max(1);
        if let Some(l) = &mut self.live {
            l.owed = l.owed.saturating_add(n);
            if l.owed >= threshold {
                flush_credit(l, &mut self.outbox);
            } else if l.flush_at.is_none() && l.owed > 0 {
                l.flush_at = Some(Instant::now() + CREDIT_FLUSH_DELAY);
            }
        }
    }
}
