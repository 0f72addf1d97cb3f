//! The sender's metrics through the [`metrics`] facade (see the table in
//! the crate docs). Handles are taken from the recorder installed when the
//! sender is created.

use metrics::{counter, gauge, histogram, Counter, Gauge, Histogram};

/// Metric names, as documented in the crate docs.
pub(crate) mod names {
    pub(crate) const SENT: &str = "mq_sender_sent_total";
    pub(crate) const CONFIRMED: &str = "mq_sender_confirmed_total";
    pub(crate) const DUPLICATES: &str = "mq_sender_duplicates_total";
    pub(crate) const RETRANSMITTED: &str = "mq_sender_retransmitted_total";
    pub(crate) const FAILED: &str = "mq_sender_failed_total";
    pub(crate) const REJECTED: &str = "mq_sender_rejected_total";
    pub(crate) const RECONNECTS: &str = "mq_sender_reconnects_total";
    pub(crate) const IN_FLIGHT: &str = "mq_sender_in_flight";
    pub(crate) const CONFIRM_LATENCY: &str = "mq_sender_confirm_latency_seconds";
}

pub(crate) struct Metrics {
    pub(crate) sent: Counter,
    pub(crate) confirmed: Counter,
    pub(crate) duplicates: Counter,
    pub(crate) retransmitted: Counter,
    pub(crate) failed: Counter,
    pub(crate) rejected: Counter,
    pub(crate) reconnects: Counter,
    pub(crate) in_flight: Gauge,
    pub(crate) confirm_latency: Histogram,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        metrics::describe_counter!(names::SENT, "Messages accepted by the sender");
        metrics::describe_counter!(
            names::CONFIRMED,
            "Messages confirmed by the broker (Stored or Duplicate)"
        );
        metrics::describe_counter!(
            names::DUPLICATES,
            "Of the confirmed, those answered Duplicate"
        );
        metrics::describe_counter!(names::RETRANSMITTED, "Transmissions after the first");
        metrics::describe_counter!(
            names::FAILED,
            "Messages that ended in an error other than Rejected"
        );
        metrics::describe_counter!(names::REJECTED, "Messages the broker rejected");
        metrics::describe_counter!(
            names::RECONNECTS,
            "Successful reconnections after a lost connection"
        );
        metrics::describe_gauge!(names::IN_FLIGHT, "Messages accepted and not yet resolved");
        metrics::describe_histogram!(
            names::CONFIRM_LATENCY,
            metrics::Unit::Seconds,
            "From acceptance by the driver to the broker's confirm"
        );
        Self {
            sent: counter!(names::SENT),
            confirmed: counter!(names::CONFIRMED),
            duplicates: counter!(names::DUPLICATES),
            retransmitted: counter!(names::RETRANSMITTED),
            failed: counter!(names::FAILED),
            rejected: counter!(names::REJECTED),
            reconnects: counter!(names::RECONNECTS),
            in_flight: gauge!(names::IN_FLIGHT),
            confirm_latency: histogram!(names::CONFIRM_LATENCY),
        }
    }

    /// A message reached the driver: counted as sent and in flight.
    pub(crate) fn accepted(&self) {
        self.sent.increment(1);
        self.in_flight.increment(1.0);
    }
}
