//! A connection's output queue, bounded as PROTOCOL.md §7.1 says: every
//! frame handed to the writer counts its wire size plus its in-memory
//! overhead until written. While the queue holds `max_output_bytes` the
//! reader reads nothing (the peer meets TCP backpressure) and the
//! connection's subscriptions deliver nothing, until it drained below
//! half. The writer drops a connection whose writes make no progress for
//! three heartbeat intervals (30 s with heartbeats off).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use mq_protocol::Frame;
use tokio::sync::{mpsc, Notify};

use super::{bump, Shared};
use crate::core::out_cost;

/// The queue's byte count, shared by every sender and the writer.
pub(crate) struct Queue {
    bytes: AtomicUsize,
    max: usize,
    drained: Notify,
}

impl Queue {
    /// The writer wrote frames of `cost` bytes.
    pub(crate) fn written(&self, cost: usize) {
        let before = self.bytes.fetch_sub(cost, Ordering::AcqRel);
        let now = before.saturating_sub(cost);
        if now < self.max / 2 {
            self.drained.notify_waiters();
        }
    }
}

/// What the reader, `publish` and `consume` hand the writer.
#[derive(Clone)]
pub(crate) struct Out {
    tx: mpsc::UnboundedSender<Frame>,
    queue: Arc<Queue>,
    shared: Arc<Shared>,
}

impl Out {
    /// A queue of at most `max` bytes (a soft bound: a frame is always
    /// accepted, the producers stop once it is reached), its writer's end
    /// and its byte count.
    pub(crate) fn new(
        shared: Arc<Shared>,
        max: usize,
    ) -> (Out, mpsc::UnboundedReceiver<Frame>, Arc<Queue>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let queue = Arc::new(Queue {
            bytes: AtomicUsize::new(0),
            max,
            drained: Notify::new(),
        });
        let out = Out {
            tx,
            queue: queue.clone(),
            shared,
        };
        (out, rx, queue)
    }

    /// Queues `f` for the writer; `Err` if the connection is gone.
    pub(crate) fn send(&self, f: Frame) -> Result<(), Frame> {
        let cost = out_cost(&f);
        let before = self.queue.bytes.fetch_add(cost, Ordering::AcqRel);
        if before < self.queue.max && before + cost >= self.queue.max {
            bump(&self.shared.counters.output_full);
        }
        self.tx.send(f).map_err(|e| {
            self.queue.bytes.fetch_sub(cost, Ordering::AcqRel);
            e.0
        })
    }

    /// True while the queue holds its bound: read and deliver nothing.
    pub(crate) fn is_full(&self) -> bool {
        self.queue.bytes.load(Ordering::Acquire) >= self.queue.max
    }

    /// Resolves once the queue drained below half its bound.
    pub(crate) async fn room(&self) {
        loop {
            let drained = self.queue.drained.notified();
            if self.queue.bytes.load(Ordering::Acquire) < self.queue.max / 2 {
                return;
            }
            drained.await;
        }
    }
}
