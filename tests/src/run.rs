//! Runs a [`Scenario`]: broker, receiver and sender over loopback TCP.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use mq_client_receiver::{
    DedupConfig, DedupStore, Delivery, HandlerError, MemoryDedupStore, Receiver, ReceiverBuilder,
    ReceiverConfig,
};
use mq_client_sender::{OutgoingMessage, Receipt, SendError, Sender, SenderConfig};
use mq_mock_broker::{BrokerConfig, DirectionFaults, Faults, MockBroker, RestartMode, RoleFilter};
use mq_protocol::Backoff;
use tokio::time::Instant;

use crate::report::{Counts, Report};
use crate::scenario::{Disruption, Scenario};
use crate::tally::{payload, Tally};

const TOPIC: &str = "loop";
const GROUP: &str = "loop-group";

/// Why a run could not be carried out (as opposed to a run whose checks
/// failed, which is a [`Report`] with violations).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HarnessError {
    /// The broker did not start.
    #[error("broker: {0}")]
    Broker(#[from] mq_mock_broker::BrokerError),
    /// The sender could not connect.
    #[error("sender connect: {0}")]
    Sender(#[from] mq_client_sender::ConnectError),
    /// The receiver could not connect.
    #[error("receiver connect: {0}")]
    Receiver(#[from] mq_client_receiver::ConnectError),
    /// A hand-over to the sender failed (it should wait, never fail).
    #[error("hand-over of message {index} failed: {error}")]
    HandOver {
        /// The message's index.
        index: u64,
        /// What the sender said.
        error: String,
    },
}

fn reconnect() -> Backoff {
    Backoff {
        initial: Duration::from_millis(10),
        multiplier: 2.0,
        max: Duration::from_millis(200),
        jitter: 0.2,
    }
}

fn sender_config(s: &Scenario, addr: String, generation: u64) -> SenderConfig {
    SenderConfig {
        max_in_flight: s.window,
        retry: s.retry,
        max_attempts: s.max_attempts,
        send_timeout: None,
        reconnect: reconnect(),
        seed: Some(s.seed.wrapping_add(generation)),
        client_name: format!("{}-sender-{generation}", s.name),
        ..SenderConfig::new(addr)
    }
}

fn receiver_config(s: &Scenario, addr: String) -> ReceiverConfig {
    ReceiverConfig {
        addresses: vec![addr],
        client_name: format!("{}-receiver", s.name),
        topic: TOPIC.into(),
        group: GROUP.into(),
        prefetch: s.prefetch,
        max_concurrency: s.concurrency,
        reconnect: reconnect(),
        seed: Some(s.seed),
        ..ReceiverConfig::default()
    }
}

async fn start_receiver(
    s: &Scenario,
    addr: String,
    store: Arc<dyn DedupStore>,
    tally: Arc<Tally>,
) -> Result<Receiver, HarnessError> {
    let rate = s.handler_error_rate;
    let handler = move |d: Delivery| {
        let tally = tally.clone();
        async move {
            if tally.handler_fails(rate) {
                return Err(HandlerError::new("injected handler failure"));
            }
            tally.handle(d.id(), d.payload());
            Ok(())
        }
    };
    Ok(ReceiverBuilder::new(receiver_config(s, addr))
        .dedup_store(store)
        .start(handler)
        .await?)
}

/// Polls `cond` every few milliseconds until it holds or `timeout` passes.
/// Used only for conditions no component signals (sender counters).
async fn until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while !cond() {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    true
}

/// Runs the scenario and returns what happened; [`Report::violations`] says
/// whether the promises held.
///
/// # Errors
///
/// [`HarnessError`] if a component could not be started.
///
/// # Examples
///
/// ```no_run
/// # async fn f() -> Result<(), mq_e2e::HarnessError> {
/// let report = mq_e2e::run(&mq_e2e::Scenario::new("smoke", 7, 100)).await?;
/// println!("{}", report.summary());
/// # Ok(()) }
/// ```
pub async fn run(s: &Scenario) -> Result<Report, HarnessError> {
    let started = Instant::now();
    let broker = MockBroker::start(BrokerConfig {
        seed: Some(s.seed),
        faults: s.faults,
        redelivery: s.redelivery,
        max_deliveries: 1_000,
        record_landings: s.messages <= 2_000_000,
        ..BrokerConfig::default()
    })
    .await?;
    let addr = broker.addr().to_string();
    let tally = Arc::new(Tally::new(s.messages, s.seed));
    let store: Arc<dyn DedupStore> = Arc::new(MemoryDedupStore::new(DedupConfig::default()));

    let mut receiver = start_receiver(s, addr.clone(), store.clone(), tally.clone()).await?;
    let mut sender = Sender::connect(sender_config(s, addr.clone(), 0)).await?;
    let mut counts = Counts::default();
    let mut partition: Option<(u64, u64)> = None;
    let mut partitions = Vec::new();

    let progress = s
        .progress
        .then(|| spawn_progress(s.messages, tally.clone()));

    for index in 0..s.messages {
        for (_, d) in s.disruptions.iter().filter(|(at, _)| *at == index) {
            match *d {
                Disruption::BrokerRestart => broker.restart(RestartMode::KeepStore).await?,
                Disruption::ReceiverRestart => {
                    counts.add_receiver(&receiver.stats());
                    let _ = receiver.shutdown(Duration::from_secs(10)).await;
                    receiver =
                        start_receiver(s, addr.clone(), store.clone(), tally.clone()).await?;
                }
                Disruption::SenderRestart => {
                    let report = sender.close(Duration::from_secs(60)).await;
                    counts.unresolved_at_close += report.unresolved.len() as u64;
                    counts.add_sender(&sender.stats());
                    counts.sender_generations += 1;
                    sender =
                        Sender::connect(sender_config(s, addr.clone(), counts.sender_generations))
                            .await?;
                }
                Disruption::Partition { messages } => {
                    broker.set_faults(Faults {
                        to_broker: DirectionFaults {
                            drop: 1.0,
                            ..DirectionFaults::default()
                        },
                        roles: RoleFilter::Sender,
                        ..Faults::default()
                    });
                    partition = Some((index, index + messages));
                }
            }
        }
        if let Some((from, to)) = partition {
            if index == to {
                // Everything sent into the partition fails on the sender's
                // own timer; then the network heals.
                let sender_ref = &sender;
                until(s.settle_timeout, || sender_ref.stats().in_flight == 0).await;
                broker.set_faults(s.faults);
                partitions.push((from.saturating_sub(s.window as u64), to));
                partition = None;
            }
        }
        let msg = OutgoingMessage::new(TOPIC, payload(index, s.payload));
        let t = tally.clone();
        sender
            .send_with_callback(msg, move |outcome: Result<Receipt, SendError>| {
                t.record(index, outcome)
            })
            .await
            .map_err(|e| HarnessError::HandOver {
                index,
                error: e.to_string(),
            })?;
    }
    if let Some((from, to)) = partition.take() {
        until(s.settle_timeout, || sender.stats().in_flight == 0).await;
        broker.set_faults(s.faults);
        partitions.push((from.saturating_sub(s.window as u64), to));
    }
    let handed_over = Instant::now();

    // Every outcome, then every stored message acked and deleted.
    let all_resolved = tokio::time::timeout(s.settle_timeout, async {
        loop {
            let notified = tally.resolved_changed.notified();
            if tally.resolved.load(Ordering::SeqCst) >= s.messages {
                break;
            }
            notified.await;
        }
    })
    .await
    .is_ok();
    sender.flush().await;
    let settled = broker
        .wait_for(s.settle_timeout, |b| b.stored_messages == 0)
        .await
        .is_ok();
    let elapsed = started.elapsed();

    let broker_view = broker.inspect();
    counts.add_sender(&sender.stats());
    counts.add_receiver(&receiver.stats());
    let receiver_unsettled = receiver.stats().unsettled;
    let close = sender.close(Duration::from_secs(10)).await;
    counts.unresolved_at_close += close.unresolved.len() as u64;
    let _ = receiver.shutdown(Duration::from_secs(10)).await;
    let broker_stats = broker.stats();
    broker.shutdown().await;
    if let Some(p) = progress {
        p.abort();
        eprintln!();
    }

    Ok(Report::build(
        s,
        &tally,
        counts,
        broker_stats,
        broker_view,
        receiver_unsettled,
        partitions,
        all_resolved,
        settled,
        elapsed,
        handed_over - started,
    ))
}

fn spawn_progress(total: u64, tally: Arc<Tally>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let start = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tick.tick().await;
            let resolved = tally.resolved.load(Ordering::Relaxed);
            let handled = tally.handled.len();
            let secs = start.elapsed().as_secs_f64().max(1e-3);
            eprint!(
                "\r  resolved {resolved}/{total}  handled {handled}  {:.0} msgs/s   ",
                resolved as f64 / secs
            );
        }
    })
}
