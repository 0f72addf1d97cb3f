//! Counters of a receiver: [`ReceiverStats`] snapshots of shared atomics,
//! and the same counts through the [`metrics`] facade under the names
//! below (see the crate docs for the table).

use std::sync::atomic::{AtomicU64, Ordering};

/// Counter: `Deliver` frames received ([`ReceiverStats::delivered`]).
///
/// # Examples
///
/// ```
/// assert_eq!(mq_client_receiver::stats::DELIVERED_TOTAL, "mq_receiver_delivered_total");
/// ```
pub const DELIVERED_TOTAL: &str = "mq_receiver_delivered_total";

/// Counter: deliveries passed to the handler or stream ([`ReceiverStats::handled`]).
///
/// # Examples
///
/// ```
/// assert_eq!(mq_client_receiver::stats::HANDLED_TOTAL, "mq_receiver_handled_total");
/// ```
pub const HANDLED_TOTAL: &str = "mq_receiver_handled_total";

/// Counter: duplicates not passed on ([`ReceiverStats::duplicates_suppressed`]).
///
/// # Examples
///
/// ```
/// assert_eq!(mq_client_receiver::stats::DUPLICATES_SUPPRESSED_TOTAL, "mq_receiver_duplicates_suppressed_total");
/// ```
pub const DUPLICATES_SUPPRESSED_TOTAL: &str = "mq_receiver_duplicates_suppressed_total";

/// Counter: deliveries with `delivery_attempt > 1` ([`ReceiverStats::redeliveries`]).
///
/// # Examples
///
/// ```
/// assert_eq!(mq_client_receiver::stats::REDELIVERIES_TOTAL, "mq_receiver_redeliveries_total");
/// ```
pub const REDELIVERIES_TOTAL: &str = "mq_receiver_redeliveries_total";

/// Counter: acks issued ([`ReceiverStats::acked`]).
///
/// # Examples
///
/// ```
/// assert_eq!(mq_client_receiver::stats::ACKED_TOTAL, "mq_receiver_acked_total");
/// ```
pub const ACKED_TOTAL: &str = "mq_receiver_acked_total";

/// Counter: nacks issued ([`ReceiverStats::nacked`]).
///
/// # Examples
///
/// ```
/// assert_eq!(mq_client_receiver::stats::NACKS_TOTAL, "mq_receiver_nacks_total");
/// ```
pub const NACKS_TOTAL: &str = "mq_receiver_nacks_total";

/// Counter: handler calls that failed or panicked ([`ReceiverStats::handler_errors`]).
///
/// # Examples
///
/// ```
/// assert_eq!(mq_client_receiver::stats::HANDLER_ERRORS_TOTAL, "mq_receiver_handler_errors_total");
/// ```
pub const HANDLER_ERRORS_TOTAL: &str = "mq_receiver_handler_errors_total";

/// Counter: reconnects after the first connection ([`ReceiverStats::reconnects`]).
///
/// # Examples
///
/// ```
/// assert_eq!(mq_client_receiver::stats::RECONNECTS_TOTAL, "mq_receiver_reconnects_total");
/// ```
pub const RECONNECTS_TOTAL: &str = "mq_receiver_reconnects_total";

/// Counter: failed dedup store calls ([`ReceiverStats::store_errors`]).
///
/// # Examples
///
/// ```
/// assert_eq!(mq_client_receiver::stats::STORE_ERRORS_TOTAL, "mq_receiver_store_errors_total");
/// ```
pub const STORE_ERRORS_TOTAL: &str = "mq_receiver_store_errors_total";

/// Gauge: deliveries in progress ([`ReceiverStats::unsettled`]).
///
/// # Examples
///
/// ```
/// assert_eq!(mq_client_receiver::stats::UNSETTLED, "mq_receiver_unsettled");
/// ```
pub const UNSETTLED: &str = "mq_receiver_unsettled";

/// Histogram: seconds a handler call took (from its start, after waiting
/// for a concurrency slot, to its result).
///
/// # Examples
///
/// ```
/// assert_eq!(mq_client_receiver::stats::HANDLER_LATENCY_SECONDS, "mq_receiver_handler_latency_seconds");
/// ```
pub const HANDLER_LATENCY_SECONDS: &str = "mq_receiver_handler_latency_seconds";

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
    /// Charged deliveries with `delivery_attempt > 1` (the broker sent the
    /// message again: a nack, a lost ack, a redelivery timer, a reconnect).
    pub redeliveries: u64,
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

/// The `metrics` handles, registered once (with the recorder installed
/// when the receiver is created), so counting costs no key lookup.
#[derive(Debug)]
struct Handles {
    delivered: metrics::Counter,
    handled: metrics::Counter,
    duplicates_suppressed: metrics::Counter,
    acked: metrics::Counter,
    nacked: metrics::Counter,
    redeliveries: metrics::Counter,
    handler_errors: metrics::Counter,
    reconnects: metrics::Counter,
    store_errors: metrics::Counter,
    unsettled: metrics::Gauge,
    handler_latency: metrics::Histogram,
}

impl Handles {
    fn register() -> Self {
        Self {
            delivered: metrics::counter!(DELIVERED_TOTAL),
            handled: metrics::counter!(HANDLED_TOTAL),
            duplicates_suppressed: metrics::counter!(DUPLICATES_SUPPRESSED_TOTAL),
            acked: metrics::counter!(ACKED_TOTAL),
            nacked: metrics::counter!(NACKS_TOTAL),
            redeliveries: metrics::counter!(REDELIVERIES_TOTAL),
            handler_errors: metrics::counter!(HANDLER_ERRORS_TOTAL),
            reconnects: metrics::counter!(RECONNECTS_TOTAL),
            store_errors: metrics::counter!(STORE_ERRORS_TOTAL),
            unsettled: metrics::gauge!(UNSETTLED),
            handler_latency: metrics::histogram!(HANDLER_LATENCY_SECONDS),
        }
    }
}

#[derive(Debug)]
pub(crate) struct Counters {
    pub delivered: AtomicU64,
    pub handled: AtomicU64,
    pub duplicates_suppressed: AtomicU64,
    pub acked: AtomicU64,
    pub nacked: AtomicU64,
    pub redeliveries: AtomicU64,
    pub handler_errors: AtomicU64,
    pub reconnects: AtomicU64,
    pub store_errors: AtomicU64,
    pub unsettled: AtomicU64,
    pub max_unsettled: AtomicU64,
    m: Handles,
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            delivered: AtomicU64::new(0),
            handled: AtomicU64::new(0),
            duplicates_suppressed: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            nacked: AtomicU64::new(0),
            redeliveries: AtomicU64::new(0),
            handler_errors: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            store_errors: AtomicU64::new(0),
            unsettled: AtomicU64::new(0),
            max_unsettled: AtomicU64::new(0),
            m: Handles::register(),
        }
    }
}

fn bump(c: &AtomicU64, m: &metrics::Counter) {
    c.fetch_add(1, Ordering::Relaxed);
    m.increment(1);
}

impl Counters {
    pub(crate) fn delivered(&self) {
        bump(&self.delivered, &self.m.delivered);
    }

    pub(crate) fn handled(&self) {
        bump(&self.handled, &self.m.handled);
    }

    pub(crate) fn duplicate(&self) {
        bump(&self.duplicates_suppressed, &self.m.duplicates_suppressed);
    }

    pub(crate) fn acked(&self) {
        bump(&self.acked, &self.m.acked);
    }

    pub(crate) fn nacked(&self) {
        bump(&self.nacked, &self.m.nacked);
    }

    pub(crate) fn handler_error(&self) {
        bump(&self.handler_errors, &self.m.handler_errors);
    }

    pub(crate) fn reconnected(&self) {
        bump(&self.reconnects, &self.m.reconnects);
    }

    pub(crate) fn redelivery(&self) {
        bump(&self.redeliveries, &self.m.redeliveries);
    }

    pub(crate) fn handler_latency(&self, d: std::time::Duration) {
        self.m.handler_latency.record(d.as_secs_f64());
    }

    pub(crate) fn store_error(&self) {
        bump(&self.store_errors, &self.m.store_errors);
    }

    pub(crate) fn set_unsettled(&self, n: usize) {
        let n = n as u64;
        self.unsettled.store(n, Ordering::Relaxed);
        self.m.unsettled.set(n as f64);
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
            redeliveries: g(&self.redeliveries),
            handler_errors: g(&self.handler_errors),
            reconnects: g(&self.reconnects),
            dedup_evictions,
            store_errors: g(&self.store_errors),
            unsettled: g(&self.unsettled),
            max_unsettled: g(&self.max_unsettled),
        }
    }
}
