//! The driver's last steps for a message and for itself: outcomes to
//! their futures or callbacks (with stats and metrics), and shutdown.

use std::time::Duration;

use mq_protocol::{ErrorCode, MessageId};
use tokio::time::Instant;

use super::{done, window_bytes, Command, Completion, Driver, Permits, ReleaseOnDrop, Ticket};
use crate::callback::Job;
use crate::inflight::Outcome;
use crate::{CloseReport, Receipt, SendError};

impl Driver {
    // ----- outcomes -----

    pub(super) fn deliver_outcomes(&mut self) {
        // Counters first, so a caller woken by an outcome sees them.
        let stats = &self.shared.stats;
        let c = self.core.counters();
        use std::sync::atomic::Ordering::Relaxed;
        let before = stats.retransmitted.swap(c.retransmitted, Relaxed);
        self.shared
            .metrics
            .retransmitted
            .increment(c.retransmitted.saturating_sub(before));
        stats.late_replies.store(c.late_replies, Relaxed);
        while let Some(Outcome {
            id,
            data,
            frame_size,
            result,
        }) = self.core.poll_outcome()
        {
            self.complete(id, data, window_bytes(frame_size), result);
        }
        for tx in self.flush.ready() {
            self.callbacks.push(Job::Notify(Box::new(move || {
                let _ = tx.send(());
            })));
        }
        std::mem::take(&mut self.released).release(&self.shared);
    }

    pub(super) fn complete(
        &mut self,
        id: MessageId,
        ticket: Ticket,
        bytes: u32,
        result: Result<Receipt, Box<SendError>>,
    ) {
        use std::sync::atomic::Ordering::Relaxed;
        let _span = tracing::trace_span!("mq_send", id = %id).entered();
        let stats = &self.shared.stats;
        let metrics = &self.shared.metrics;
        metrics.in_flight.decrement(1.0);
        match &result {
            Ok(r) => {
                stats.confirmed.fetch_add(1, Relaxed);
                metrics.confirmed.increment(1);
                // The core measured it from acceptance to this turn's reply.
                metrics.confirm_latency.record(r.elapsed);
                if r.duplicate {
                    stats.duplicates.fetch_add(1, Relaxed);
                    metrics.duplicates.increment(1);
                }
                tracing::trace!(id = %id, attempts = r.attempts, duplicate = r.duplicate, "confirmed");
            }
            Err(e) if matches!(**e, SendError::Rejected { .. }) => {
                stats.rejected.fetch_add(1, Relaxed);
                metrics.rejected.increment(1);
                tracing::debug!(id = %id, error = %e, "rejected");
            }
            Err(e) => {
                stats.failed.fetch_add(1, Relaxed);
                metrics.failed.increment(1);
                tracing::debug!(id = %id, error = %e, "failed");
            }
        }
        if ticket.explicit() {
            self.shared.explicit.remove(&id);
        }
        self.flush.resolve(ticket.index());
        let permits = Permits::one(bytes);
        match ticket.into_completion() {
            Completion::Future(tx) => {
                // A dropped PendingSend is fine: the outcome is counted above.
                tx.send(done(result));
                self.released.merge(permits);
            }
            Completion::Callback(cb) => self.callbacks.push(Job::Call {
                cb: *cb,
                outcome: result.map_err(|e| *e),
                release: Box::new(ReleaseOnDrop {
                    shared: self.shared.clone(),
                    permits,
                }),
            }),
        }
    }

    // ----- shutdown -----

    pub(super) fn close_finished(&mut self, now: Instant) -> bool {
        let Some(c) = &self.closing else {
            return false;
        };
        let past_deadline = c.deadline.is_some_and(|d| d <= now);
        // With handles alive, messages may still be in the channel; they are
        // drained (and abandoned) in `shutdown` after the channel is closed.
        self.core.is_empty() && (past_deadline || !self.rx_open || self.rx.is_empty())
    }

    pub(super) async fn shutdown(mut self) {
        self.shared.set_driver_closed();
        let now = Instant::now();
        let mut unresolved = self.core.abandon_all();
        self.deliver_outcomes();
        self.rx.close();
        let mut replies = match self.closing.take() {
            Some(c) => {
                unresolved.extend(c.abandoned);
                (c.started, c.replies)
            }
            None => (now, Vec::new()),
        };
        while let Ok(cmd) = self.rx.try_recv() {
            match cmd {
                Command::Send { msg, ticket } => {
                    let id = msg.id;
                    self.shared.metrics.accepted();
                    unresolved.push(id);
                    let err = SendError::Abandoned { id, attempts: 0 };
                    let bytes = window_bytes(msg.frame_size());
                    self.complete(id, ticket, bytes, Err(Box::new(err)));
                }
                Command::Flush(tx) => self.flush.wait(tx),
                Command::Close { reply, .. } => replies.1.push(reply),
            }
        }
        self.deliver_outcomes();
        unresolved.sort_unstable();
        let waiters = self.flush.take_all();
        let report = CloseReport {
            unresolved,
            elapsed: now.saturating_duration_since(replies.0),
        };
        let reply_list = replies.1;
        self.callbacks.push(Job::Notify(Box::new(move || {
            for tx in waiters {
                let _ = tx.send(());
            }
            for tx in reply_list {
                let _ = tx.send(report.clone());
            }
        })));
        self.goodbye(ErrorCode::NORMAL, "sender closed");
        if let Some(w) = self.writer.take() {
            w.drain(Duration::from_secs(1)).await;
        }
        tracing::info!("sender driver stopped");
    }
}
