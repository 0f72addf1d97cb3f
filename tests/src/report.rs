//! What a run observed, and the checks of the SDK's promises.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::Duration;

use mq_client_receiver::ReceiverStats;
use mq_client_sender::SenderStats;
use mq_protocol::MessageId;

use crate::scenario::Scenario;
use crate::tally::{Outcome, Tally};

/// Counters summed over every sender and receiver instance of a run.
#[derive(Debug, Clone, Default)]
pub(crate) struct Counts {
    pub retransmitted: u64,
    pub sender_reconnects: u64,
    pub late_replies: u64,
    pub sender_generations: u64,
    pub unresolved_at_close: u64,
    pub delivered: u64,
    pub duplicates_suppressed: u64,
    pub handler_errors: u64,
    pub receiver_reconnects: u64,
    pub flush_failures: Vec<String>,
}

impl Counts {
    pub fn add_sender(&mut self, s: &SenderStats) {
        self.retransmitted += s.retransmitted;
        self.sender_reconnects += s.reconnects;
        self.late_replies += s.late_replies;
    }

    pub fn add_receiver(&mut self, r: &ReceiverStats) {
        self.delivered += r.delivered;
        self.duplicates_suppressed += r.duplicates_suppressed;
        self.handler_errors += r.handler_errors;
        self.receiver_reconnects += r.reconnects;
    }
}

/// What the broker under test holds and counted at the end of a run.
#[derive(Debug, Clone, Default)]
pub(crate) struct BrokerEnd {
    /// Messages still stored.
    pub stored: u64,
    /// Messages dead-lettered.
    pub dead_lettered: u64,
    /// Deliveries after the first, when the broker counts them.
    pub redeliveries: u64,
    /// Every `Deliver` sent, when the broker counts only that (the
    /// gateway): redeliveries are then this minus the distinct messages
    /// handled (each was delivered once first).
    pub deliveries_sent: Option<u64>,
    /// Messages answered `Duplicate`.
    pub duplicates_answered: u64,
    /// Groups (consumers) with deliveries left, one line each.
    pub leftovers: Vec<String>,
    /// What the summary should say about the backend (not violations).
    pub notes: Vec<String>,
}

/// The result of one [`crate::run`].
#[derive(Debug, Clone)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// The seed (see `replay`).
    pub seed: u64,
    /// Messages handed to the sender.
    pub sent: u64,
    /// Sends confirmed by the broker.
    pub confirmed: u64,
    /// Confirms that were `Duplicate` answers (reply lost, retransmit landed first copy).
    pub confirmed_as_duplicate: u64,
    /// Sends that failed.
    pub failed: u64,
    /// The longest time from hand-over to confirm, and that message's
    /// attempts: how long the worst stall lasted.
    pub slowest_confirm: (Duration, u32),
    /// Retransmissions by the sender(s).
    pub retransmitted: u64,
    /// Successful handler calls.
    pub handler_calls: u64,
    /// Distinct messages handled.
    pub distinct_handled: u64,
    /// Deliveries the receiver(s) took from the wire.
    pub delivered: u64,
    /// Deliveries the receiver's dedup kept from the handler.
    pub duplicates_suppressed: u64,
    /// Handler calls that failed (injected) and were redelivered.
    pub handler_errors: u64,
    /// Redeliveries by the broker.
    pub redeliveries: u64,
    /// Retransmits the broker answered `Duplicate`.
    pub duplicates_answered: u64,
    /// Reconnects of senders and receivers.
    pub reconnects: u64,
    /// Wall time of the whole run.
    pub elapsed: Duration,
    /// Wall time until the last hand-over.
    pub handover_elapsed: Duration,
    /// Confirmed messages that never reached the handler.
    pub lost: Vec<MessageId>,
    /// Messages handled more than once.
    pub handled_twice: Vec<MessageId>,
    /// Everything else that broke a promise, one line each.
    pub other: Vec<String>,
    /// Settings the run changed from the components' defaults
    /// ([`crate::settings_changed`]).
    pub settings: Vec<String>,
    /// How to replay the run.
    pub replay: String,
    /// About the broker under test (the JetStream backend's set-up and its
    /// fault proxy's counts), one line each.
    pub notes: Vec<String>,
}

impl Report {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn build(
        s: &Scenario,
        tally: &Tally,
        counts: Counts,
        broker: BrokerEnd,
        receiver_unsettled: u64,
        partitions: Vec<(u64, u64)>,
        all_resolved: bool,
        settled: bool,
        elapsed: Duration,
        handover_elapsed: Duration,
    ) -> Self {
        let mut other = Vec::new();
        let mut lost = Vec::new();
        let mut handled_twice = Vec::new();
        let (mut confirmed, mut dup, mut failed) = (0, 0, 0);
        let mut slowest = (Duration::ZERO, 0);

        for (i, c) in tally.calls.iter().enumerate() {
            let n = c.load(Ordering::SeqCst);
            if n != 1 {
                other.push(format!("message #{i}: {n} outcomes (expected exactly 1)"));
            }
        }
        for entry in tally.outcomes.iter() {
            let (index, outcome) = (*entry.key(), entry.value());
            match outcome {
                Outcome::Confirmed(r) => {
                    confirmed += 1;
                    if r.elapsed > slowest.0 {
                        slowest = (r.elapsed, r.attempts);
                    }
                    dup += u64::from(r.duplicate);
                    match tally.handled.get(&r.id).map(|h| *h) {
                        None => lost.push(r.id),
                        Some((_, payload_index)) if payload_index != index => other.push(format!(
                            "message #{index} ({}) was handled with the payload of #{payload_index}",
                            r.id
                        )),
                        Some(_) => {}
                    }
                }
                Outcome::Failed(why, is_timeout) => {
                    failed += 1;
                    let explained = *is_timeout
                        && partitions
                            .iter()
                            .any(|&(from, to)| index >= from && index < to);
                    if !explained {
                        other.push(format!("message #{index} failed unexplained: {why}"));
                    }
                }
            }
        }
        for h in tally.handled.iter() {
            if h.value().0 > 1 {
                handled_twice.push(*h.key());
            }
        }
        let bad = tally.bad_payloads.load(Ordering::SeqCst);
        if bad > 0 {
            other.push(format!("{bad} deliveries had a malformed payload"));
        }
        if !all_resolved {
            other.push("not every send resolved within the settle timeout".into());
        }
        if !settled || broker.stored != 0 {
            other.push(format!(
                "broker still stores {} message(s) after the run",
                broker.stored
            ));
        }
        if broker.dead_lettered != 0 {
            other.push(format!(
                "broker dead-lettered {} message(s)",
                broker.dead_lettered
            ));
        }
        other.extend(broker.leftovers.iter().cloned());
        if receiver_unsettled != 0 {
            other.push(format!(
                "receiver holds {receiver_unsettled} unsettled deliveries"
            ));
        }
        for e in &counts.flush_failures {
            other.push(format!("sender flush failed: {e}"));
        }
        if counts.unresolved_at_close != 0 {
            other.push(format!(
                "{} message(s) unresolved when a sender closed",
                counts.unresolved_at_close
            ));
        }
        lost.sort();
        handled_twice.sort();
        Self {
            scenario: s.name.clone(),
            seed: s.seed,
            sent: s.messages,
            confirmed,
            confirmed_as_duplicate: dup,
            failed,
            slowest_confirm: slowest,
            retransmitted: counts.retransmitted,
            handler_calls: tally.handler_calls.load(Ordering::SeqCst),
            distinct_handled: tally.handled.len() as u64,
            delivered: counts.delivered,
            duplicates_suppressed: counts.duplicates_suppressed,
            handler_errors: counts.handler_errors,
            redeliveries: broker.deliveries_sent.map_or(broker.redeliveries, |d| {
                d.saturating_sub(tally.handled.len() as u64)
            }),
            duplicates_answered: broker.duplicates_answered,
            reconnects: counts.sender_reconnects + counts.receiver_reconnects,
            elapsed,
            handover_elapsed,
            lost,
            handled_twice,
            other,
            settings: crate::settings_changed(s),
            replay: s
                .replay
                .clone()
                .unwrap_or_else(|| format!("MQ_CHAOS_SEED={}", s.seed)),
            notes: broker.notes,
        }
    }

    /// Every broken promise, one line each; empty when the run was clean.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), mq_e2e::HarnessError> {
    /// let r = mq_e2e::run(&mq_e2e::Scenario::new("x", 1, 10)).await?;
    /// assert!(r.violations().is_empty());
    /// # Ok(()) }
    /// ```
    pub fn violations(&self) -> Vec<String> {
        let mut v = Vec::new();
        if !self.lost.is_empty() {
            v.push(format!(
                "{} confirmed message(s) never reached the handler, e.g. {}",
                self.lost.len(),
                self.lost[0]
            ));
        }
        if !self.handled_twice.is_empty() {
            v.push(format!(
                "{} message(s) handled more than once, e.g. {}",
                self.handled_twice.len(),
                self.handled_twice[0]
            ));
        }
        v.extend(self.other.iter().take(20).cloned());
        v
    }

    /// Messages per second over the whole run.
    pub fn rate(&self) -> f64 {
        self.sent as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// A human-readable summary, with the seed.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), mq_e2e::HarnessError> {
    /// println!("{}", mq_e2e::run(&mq_e2e::Scenario::new("x", 1, 10)).await?.summary());
    /// # Ok(()) }
    /// ```
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "scenario {} (seed {}; replay with {})",
            self.scenario, self.seed, self.replay
        );
        let _ = writeln!(s, "  settings changed from the defaults:");
        for line in &self.settings {
            let _ = writeln!(s, "    {line}");
        }
        let _ = writeln!(s, "  sent                  {:>10}", self.sent);
        let _ = writeln!(
            s,
            "  confirmed             {:>10}  ({} answered Duplicate after a lost reply)",
            self.confirmed, self.confirmed_as_duplicate
        );
        let _ = writeln!(s, "  failed                {:>10}", self.failed);
        let _ = writeln!(
            s,
            "  slowest confirm       {:>10.2?}  (after {} attempt(s))",
            self.slowest_confirm.0, self.slowest_confirm.1
        );
        let _ = writeln!(s, "  retransmitted         {:>10}", self.retransmitted);
        let _ = writeln!(
            s,
            "  delivered (wire)      {:>10}  ({} redeliveries by the broker)",
            self.delivered, self.redeliveries
        );
        let _ = writeln!(
            s,
            "  handled               {:>10}  ({} distinct)",
            self.handler_calls, self.distinct_handled
        );
        let _ = writeln!(
            s,
            "  duplicates suppressed {:>10}",
            self.duplicates_suppressed
        );
        let _ = writeln!(s, "  handler errors        {:>10}", self.handler_errors);
        let _ = writeln!(s, "  reconnects            {:>10}", self.reconnects);
        let _ = writeln!(s, "  lost                  {:>10}", self.lost.len());
        let _ = writeln!(
            s,
            "  handled twice         {:>10}",
            self.handled_twice.len()
        );
        let _ = writeln!(
            s,
            "  elapsed               {:>10.2?}  ({:.0} msgs/s)",
            self.elapsed,
            self.rate()
        );
        for n in &self.notes {
            let _ = writeln!(s, "  note: {n}");
        }
        for v in self.violations() {
            let _ = writeln!(s, "  VIOLATION: {v}");
        }
        s
    }
}
