//! Counters of a receiver: [`ReceiverStats`] snapshots of shared atomics.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of a receiver's counters since it started.
///
/// `delivered = handled + duplicates_suppressed + dropped at shutdown`.
///
/// # Examples
///
/// ```
/// let s = mq_client_receiver::ReceiverStats::default();
/// assert_eq!(s.delivered, 0);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReceiverStats {
    /// `Deliver` frames received, duplicates included.
    pub delivered: u64,
    /// Deliveries passed to the handler or the stream.
    pub handled: u64,
    /// Deliveries not passed on: already processed (acked at once) or the
    /// same ID is still being handled (settled with it).
    pub duplicates_suppressed: u64,
    /// Acks issued: messages recorded as processed (the ack frame is written
    /// when connected; otherwise the redelivery is acked by dedup), plus
    /// deliveries of already-processed messages acked from dedup.
    pub acked: u64,
    /// Deliveries nacked (handler error, panic, manual nack, drop).
    pub nacked: u64,
    /// Handler calls that returned `Err` or panicked.
    pub handler_errors: u64,
    /// Successful reconnects after the first connection.
    pub reconnects: u64,
    /// Entries the dedup store forgot (bounds or idle expiry).
    pub dedup_evictions: u64,
    /// Dedup store calls that failed.
    pub store_errors: u64,
    /// Gauge: deliveries handed to the handler or stream and not settled.
    pub unsettled: u64,
    /// The highest `unsettled` ever reached (at most `prefetch` plus what
    /// was still running across a reconnect).
    pub max_unsettled: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub delivered: AtomicU64,
    pub handled: AtomicU64,
    pub duplicates_suppressed: AtomicU64,
    pub acked: AtomicU64,
    pub nacked: AtomicU64,
    pub handler_errors: AtomicU64,
    pub reconnects: AtomicU64,
    pub store_errors: AtomicU64,
    pub unsettled: AtomicU64,
    pub max_unsettled: AtomicU64,
}

pub(crate) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    pub(crate) fn delivered(&self) {
        bump(&self.delivered);
    }

    pub(crate) fn handled(&self) {
        bump(&self.handled);
    }

    pub(crate) fn duplicate(&self) {
        bump(&self.duplicates_suppressed);
    }

    pub(crate) fn acked(&self) {
        bump(&self.acked);
    }

    pub(crate) fn nacked(&self) {
        bump(&self.nacked);
    }

    pub(crate) fn handler_error(&self) {
        bump(&self.handler_errors);
    }

    pub(crate) fn reconnected(&self) {
        bump(&self.reconnects);
    }

    pub(crate) fn store_error(&self) {
        bump(&self.store_errors);
    }

    pub(crate) fn set_unsettled(&self, n: usize) {
        let n = n as u64;
        self.unsettled.store(n, Ordering::Relaxed);
        self.max_unsettled.fetch_max(n, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self, dedup_evictions: u64) -> ReceiverStats {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ReceiverStats {
            delivered: g(&self.delivered),
            handled: g(&self.handled),
            duplicates_suppressed: g(&self.duplicates_suppressed),
            acked: g(&self.acked),
            nacked: g(&self.nacked),
            handler_errors: g(&self.handler_errors),
            reconnects: g(&self.reconnects),
            dedup_evictions,
            store_errors: g(&self.store_errors),
            unsettled: g(&self.unsettled),
            max_unsettled: g(&self.max_unsettled),
        }
    }
}
