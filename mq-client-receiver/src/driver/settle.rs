//! The driver's glue between the core and the outside: store calls for the
//! core's lookups and marks, handler tasks and stream sends for its
//! dispatches, events from delivery handles.

use futures::FutureExt;
use mq_protocol::{Deliver, MessageId};
use tokio::time::Instant;

use super::{Dispatch, Shutdown, State, StoreDone};
use crate::delivery::{delay_ms, Delivery, Event};
use crate::error::HandlerError;
use crate::recv_core::{DeliverStep, Settled};
use crate::store::StoreError;

impl State {
    /// A `Deliver` frame read at `now`.
    pub(super) fn on_deliver(&mut self, d: Deliver, now: std::time::Instant) {
        let DeliverStep::Lookup { token, deliver } = self.core.on_deliver(now, d) else {
            return;
        };
        let id = deliver.id;
        match self.d.store.contains(id).into_ready() {
            Ok(r) => {
                let seen = self.seen(id, r);
                self.core.on_lookup(now, deliver, token, seen);
            }
            Err(fut) => {
                // The store does I/O: the core holds the ID as in progress
                // (so a redelivery is tied to it) until it answers.
                let d = Box::new(deliver);
                self.store_ops
                    .push(Box::pin(fut.map(move |result| StoreDone::Lookup {
                        d,
                        token,
                        result,
                    })));
            }
        }
    }

    /// The answer of a lookup, errors read as "not seen".
    fn seen(&self, id: MessageId, r: Result<bool, StoreError>) -> bool {
        r.unwrap_or_else(|e| {
            self.d.counters.store_error();
            tracing::warn!(%id, error = %e, "dedup lookup failed; treating as unseen");
            false
        })
    }

    /// A store call that was pending finished.
    pub(super) fn on_store_done(&mut self, done: StoreDone) {
        let now = Instant::now().into_std();
        match done {
            StoreDone::Lookup { d, token, result } => {
                let seen = self.seen(d.id, result);
                self.core.on_lookup(now, *d, token, seen);
            }
            StoreDone::Marked { id, result } => {
                if let Err(e) = result {
                    self.d.counters.store_error();
                    tracing::warn!(%id, error = %e, "dedup insert failed; acking anyway");
                }
                self.core.on_marked(now, id);
            }
            StoreDone::Expired(r) => {
                self.expiring = false;
                if let Err(e) = r {
                    self.d.counters.store_error();
                    tracing::warn!(error = %e, "dedup store expiry failed");
                }
            }
        }
    }

    /// Carries out what the core asked for: dispatches go to the handler
    /// or the stream, frames to the outbox.
    pub(super) fn pump(&mut self) {
        while let Some(dsp) = self.core.poll_dispatch() {
            self.dispatch(dsp.deliver, dsp.token);
        }
        while let Some(f) = self.core.poll_transmit() {
            if self.live.is_some() {
                self.outbox.push(f);
            }
        }
    }

    /// Hands a delivery to the handler or the stream.
    fn dispatch(&mut self, d: Deliver, token: u64) {
        let id = d.id;
        let span = tracing::info_span!(
            "delivery",
            %id,
            attempt = d.delivery_attempt,
            topic = %d.topic
        );
        let delivery = Delivery::new(d, self.d.mode, token, self.d.events_tx.clone());
        if let Some(h) = &mut self.handlers {
            h.push(delivery, token, span);
            return;
        }
        // If the stream is gone the delivery comes back here and its drop
        // nacks it.
        if let Dispatch::Stream(Some(tx)) = &self.d.dispatch {
            let _ = tx.send(delivery);
        }
    }

    /// An ack the core settled: record the ID, then let the `Ack` go.
    fn settled(&mut self, s: Settled, now: std::time::Instant) {
        let Settled::Mark { id } = s else {
            return;
        };
        match self.d.store.insert(now, id).into_ready() {
            Ok(r) => {
                if let Err(e) = r {
                    self.d.counters.store_error();
                    tracing::warn!(%id, error = %e, "dedup insert failed; acking anyway");
                }
                self.core.on_marked(now, id);
            }
            Err(fut) => {
                // Ack once the mark is written; until then the ID stays in
                // progress so a redelivery waits with it.
                self.store_ops.push(Box::pin(
                    fut.map(move |result| StoreDone::Marked { id, result }),
                ));
            }
        }
    }

    pub(super) fn on_task(&mut self, id: MessageId, token: u64, result: Result<(), HandlerError>) {
        let result = result.map_err(|e| {
            tracing::warn!(%id, error = %e, "handler failed; nacking");
            delay_ms(e.delay())
        });
        let now = Instant::now().into_std();
        let s = self.core.on_handler_done(now, id, token, result);
        self.settled(s, now);
    }

    pub(super) fn on_event(&mut self, ev: Event) {
        match ev {
            Event::Settle {
                id,
                token,
                outcome,
                reply,
            } => {
                let now = Instant::now().into_std();
                let s = self.core.settle(now, id, token, outcome);
                let r = if s == Settled::Stale {
                    Err(crate::AckError::AlreadySettled)
                } else {
                    Ok(())
                };
                self.settled(s, now);
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
                self.core.close();
                self.reconnect = mq_conn::Reconnect::new(self.d.config.reconnect);
                self.connecting = None;
                if let Dispatch::Stream(tx) = &mut self.d.dispatch {
                    tx.take();
                }
            }
        }
    }
}
