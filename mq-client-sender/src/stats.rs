//! Counters of a sender: relaxed atomics written by the handle and the
//! driver, read as a [`SenderStats`] snapshot.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A snapshot of a sender's counters since it was connected.
///
/// Every accepted message ends in exactly one of `confirmed`, `rejected` or
/// `failed`, so once the sender is idle
/// `sent == confirmed + rejected + failed` and `in_flight == 0`.
///
/// # Examples
///
/// ```no_run
/// # async fn f(sender: mq_client_sender::Sender) {
/// let s = sender.stats();
/// println!("{} in flight, {} retransmissions, {} reconnects", s.in_flight, s.retransmitted, s.reconnects);
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SenderStats {
    /// Messages accepted (handed over successfully).
    pub sent: u64,
    /// Messages confirmed (`Stored` or `Duplicate`).
    pub confirmed: u64,
    /// Of `confirmed`, those the broker answered `Duplicate`.
    pub duplicates: u64,
    /// Retransmissions (transmissions after the first, over all messages).
    pub retransmitted: u64,
    /// Messages that ended in an error other than `Rejected` (timeouts,
    /// abandoned at close).
    pub failed: u64,
    /// Messages that ended in `Rejected`.
    pub rejected: u64,
    /// Messages accepted and not yet resolved.
    pub in_flight: u64,
    /// Successful reconnections after a lost connection.
    pub reconnects: u64,
    /// Replies for messages this sender no longer tracks (late replies after
    /// a failure, or replies to an older attempt); ignored.
    pub late_replies: u64,
}

/// The live counters behind [`SenderStats`].
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) sent: AtomicU64,
    pub(crate) confirmed: AtomicU64,
    pub(crate) duplicates: AtomicU64,
    pub(crate) retransmitted: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) reconnects: AtomicU64,
    pub(crate) late_replies: AtomicU64,
}

impl Stats {
    pub(crate) fn snapshot(&self) -> SenderStats {
        // Outcomes are counted before they are delivered and `sent` before
        // the hand-over, so a caller that saw an outcome sees it counted.
        let confirmed = self.confirmed.load(Relaxed);
        let failed = self.failed.load(Relaxed);
        let rejected = self.rejected.load(Relaxed);
        let sent = self.sent.load(Relaxed);
        SenderStats {
            sent,
            confirmed,
            duplicates: self.duplicates.load(Relaxed),
            retransmitted: self.retransmitted.load(Relaxed),
            failed,
            rejected,
            in_flight: sent.saturating_sub(confirmed + failed + rejected),
            reconnects: self.reconnects.load(Relaxed),
            late_replies: self.late_replies.load(Relaxed),
        }
    }
}
