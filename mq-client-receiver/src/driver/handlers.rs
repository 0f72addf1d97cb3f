//! [`Handlers`]: the handler calls in flight, run inside the driver's own
//! task instead of a tokio task each.
//!
//! A task per delivery cost about 3,500 instructions per message (spawn,
//! `JoinSet` bookkeeping, the join handle, one more wake-up and a cross-task
//! hand-over), a fifth of the whole delivery path (docs/BENCHMARKS.md,
//! round 2). Here each call is a future in a `FuturesUnordered` the driver
//! polls in its `select!`; at most `limit` (`max_concurrency`) run at once,
//! the rest wait in arrival order. A panic, in `on_message` or in its
//! future, becomes an `Err` (so the delivery is nacked), as before.
//!
//! The trade-off: handler futures share the driver's task, so a handler
//! that blocks its thread (CPU-bound work, blocking I/O) stalls the
//! connection too; such a handler should move the work to
//! `tokio::task::spawn_blocking` (documented on [`crate::RecvCallback`]).

use std::collections::VecDeque;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use mq_protocol::MessageId;

use crate::delivery::Delivery;
use crate::error::HandlerError;
use crate::handler::{panicked, RecvCallback};
use crate::stats::Counters;

/// A finished handler call: the delivery's ID, the core's token, the result.
pub(crate) type Done = (MessageId, u64, Result<(), HandlerError>);

/// One handler call in flight.
struct Running {
    id: MessageId,
    token: u64,
    start: Instant,
    span: tracing::Span,
    fut: BoxFuture<'static, Result<(), HandlerError>>,
}

impl Future for Running {
    type Output = (Done, Instant);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let _in_span = this.span.enter();
        let r = match std::panic::catch_unwind(AssertUnwindSafe(|| this.fut.as_mut().poll(cx))) {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(r)) => r,
            Err(p) => Err(panicked(p)),
        };
        Poll::Ready(((this.id, this.token, r), this.start))
    }
}

/// A delivery waiting for a free slot.
struct Queued {
    delivery: Delivery,
    token: u64,
    span: tracing::Span,
}

/// The handler calls of one receiver, at most `limit` at a time.
pub(crate) struct Handlers {
    handler: Arc<dyn RecvCallback>,
    limit: usize,
    /// Started, not polled yet: the first poll happens in [`Self::poll_next`]
    /// with the driver's context, and only a call still pending then moves
    /// to `running` (most handlers finish on their first poll, and skip the
    /// `FuturesUnordered` node, its atomics and its allocation).
    fresh: VecDeque<Running>,
    running: FuturesUnordered<Running>,
    /// Waiting for a slot; non-empty only while `fresh` + `running` is full.
    queued: VecDeque<Queued>,
    counters: Arc<Counters>,
}

impl Handlers {
    /// `limit` is at least 1 (the config validates `max_concurrency`).
    pub(crate) fn new(
        handler: Arc<dyn RecvCallback>,
        limit: usize,
        counters: Arc<Counters>,
    ) -> Self {
        Self {
            handler,
            limit: limit.max(1),
            fresh: VecDeque::new(),
            running: FuturesUnordered::new(),
            queued: VecDeque::new(),
            counters,
        }
    }

    /// No call running or waiting.
    pub(crate) fn is_empty(&self) -> bool {
        self.fresh.is_empty() && self.running.is_empty() && self.queued.is_empty()
    }

    /// Calls running (at most the limit).
    #[cfg(test)]
    pub(crate) fn running(&self) -> usize {
        self.fresh.len() + self.running.len()
    }

    /// Calls the handler for `delivery` now, or once a slot is free.
    pub(crate) fn push(&mut self, delivery: Delivery, token: u64, span: tracing::Span) {
        if self.fresh.len() + self.running.len() < self.limit {
            self.start(delivery, token, span);
        } else {
            self.queued.push_back(Queued {
                delivery,
                token,
                span,
            });
        }
    }

    fn start(&mut self, delivery: Delivery, token: u64, span: tracing::Span) {
        let id = delivery.id();
        let start = Instant::now();
        let handler = &*self.handler;
        let made = {
            let _in_span = span.enter();
            std::panic::catch_unwind(AssertUnwindSafe(|| handler.on_message(delivery)))
        };
        let fut = made.unwrap_or_else(|p| {
            let e = panicked(p);
            Box::pin(std::future::ready(Err(e)))
        });
        self.fresh.push_back(Running {
            id,
            token,
            start,
            span,
            fut,
        });
    }

    /// The next finished call; `Ready(None)` when none is running.
    /// Starts the next waiting delivery in the freed slot. Cancel safe.
    pub(crate) fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Done>> {
        while let Some(mut r) = self.fresh.pop_front() {
            match Pin::new(&mut r).poll(cx) {
                Poll::Ready(out) => return Poll::Ready(Some(self.finished(out))),
                // `FuturesUnordered` polls it again (a new node is ready),
                // which registers its own waker in place of `cx`'s.
                Poll::Pending => self.running.push(r),
            }
        }
        match self.running.poll_next_unpin(cx) {
            Poll::Ready(Some(out)) => Poll::Ready(Some(self.finished(out))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Records a finished call and gives its slot to the oldest waiting
    /// delivery.
    fn finished(&mut self, (done, start): (Done, Instant)) -> Done {
        self.counters.handler_latency(start.elapsed());
        if let Some(q) = self.queued.pop_front() {
            self.start(q.delivery, q.token, q.span);
        }
        done
    }

    /// Drops every call, running or waiting (shutdown past its deadline).
    pub(crate) fn abort_all(&mut self) {
        self.fresh.clear();
        self.running.clear();
        self.queued.clear();
    }
}

#[cfg(test)]
#[path = "handlers_tests.rs"]
mod tests;
