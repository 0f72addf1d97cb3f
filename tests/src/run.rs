//! Runs a [`Scenario`]: broker, receiver and sender over loopback TCP.

use std::io::IsTerminal;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use mq_client_receiver::{
    DedupConfig, DedupStore, Delivery, HandlerError, MemoryDedupStore, Receiver, ReceiverBuilder,
    ReceiverConfig,
};
use mq_client_sender::{OutgoingMessage, Receipt, SendError, Sender, SenderConfig};
use mq_mock_broker::{BrokerConfig, DirectionFaults, Faults, RoleFilter};
use tokio::time::Instant;

use crate::backend::UnderTest;
use crate::report::{Counts, Report};
use crate::scenario::{Backend, Disruption, Scenario};
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
    /// The run's TLS certificates could not be made or loaded.
    #[error("TLS set-up: {0}")]
    Tls(String),
    /// The NATS server(s) of [`Backend::JetStream`] did not start or answer.
    #[error("NATS: {0}")]
    Nats(String),
    /// The JetStream gateway (or the fault proxy in front of it) did not
    /// start.
    #[error("gateway: {0}")]
    Gateway(String),
    /// The sender could not connect.
    #[error("sender connect: {0}")]
    Sender(#[from] mq_client_sender::ConnectError),
    /// The receiver could not connect.
    #[error("receiver connect: {0}")]
    /// (Since issue 15 both clients report `mq_conn::ConnectError`, so
    /// this variant is built explicitly, not `#[from]`.)
    Receiver(mq_client_receiver::ConnectError),
    /// A hand-over to the sender failed (it should wait, never fail).
    #[error("hand-over of message {index} failed: {error}")]
    HandOver {
        /// The message's index.
        index: u64,
        /// What the sender said.
        error: String,
    },
}

fn sender_config(s: &Scenario, addr: String, generation: u64) -> SenderConfig {
    SenderConfig::new(addr)
        .max_in_flight(s.window)
        .retry(s.retry)
        .max_attempts(s.max_attempts)
        .send_timeout(s.send_timeout)
        .reconnect(s.reconnect)
        .seed(Some(s.seed.wrapping_add(generation)))
        .client_name(format!("{}-sender-{generation}", s.name))
}

fn receiver_config(s: &Scenario, addr: String) -> ReceiverConfig {
    ReceiverConfig::default()
        .addresses(vec![addr])
        .client_name(format!("{}-receiver", s.name))
        .topic(TOPIC)
        .group(GROUP)
        .prefetch(s.prefetch)
        .max_concurrency(s.concurrency)
        .reconnect(s.reconnect)
        .seed(Some(s.seed))
}

fn broker_config(s: &Scenario) -> BrokerConfig {
    BrokerConfig {
        seed: Some(s.seed),
        faults: s.faults,
        redelivery: s.redelivery,
        max_deliveries: s.max_deliveries,
        record_landings: s.messages <= 2_000_000,
        storage: s.storage.clone(),
        ..BrokerConfig::default()
    }
}

/// Every setting a run of `s` changes from the defaults of `SenderConfig`,
/// `ReceiverConfig` and `BrokerConfig`, one line each (`field value
/// (default value)`), plus one line for the seed. Faults are not listed:
/// they are the point of a scenario, and [`crate::Report::summary`] shows
/// their effects. Client names and addresses are not listed either.
///
/// # Examples
///
/// ```
/// let s = mq_e2e::Scenario::new("smoke", 1, 100);
/// for line in mq_e2e::settings_changed(&s) {
///     println!("{line}");
/// }
/// ```
pub fn settings_changed(s: &Scenario) -> Vec<String> {
    fn diff<T: PartialEq + std::fmt::Debug>(out: &mut Vec<String>, name: &str, v: T, d: T) {
        if v != d {
            out.push(format!("{name} {v:?} (default {d:?})"));
        }
    }
    let mut out = vec![format!(
        "seed {}: broker faults and redelivery jitter, sender and receiver jitter (default: from the OS)",
        s.seed
    )];
    if let Backend::JetStream(j) = &s.backend {
        out.push(format!(
            "backend JetStream gateway on {} NATS node(s), ack_wait {:?}, faults applied by a frame proxy (default: the in-process broker)",
            j.nodes, j.ack_wait
        ));
    }
    if s.tls {
        out.push(
            "transport TLS only, with a CA and server certificate made for this run (default plain TCP)"
                .into(),
        );
    }
    let (sc, sd) = (sender_config(s, String::new(), 0), SenderConfig::default());
    diff(
        &mut out,
        "sender.max_in_flight",
        sc.max_in_flight,
        sd.max_in_flight,
    );
    diff(&mut out, "sender.retry", sc.retry, sd.retry);
    diff(
        &mut out,
        "sender.max_attempts",
        sc.max_attempts,
        sd.max_attempts,
    );
    diff(
        &mut out,
        "sender.send_timeout",
        sc.send_timeout,
        sd.send_timeout,
    );
    diff(&mut out, "sender.reconnect", sc.reconnect, sd.reconnect);
    let (rc, rd) = (receiver_config(s, String::new()), ReceiverConfig::default());
    diff(&mut out, "receiver.prefetch", rc.prefetch, rd.prefetch);
    diff(
        &mut out,
        "receiver.max_concurrency",
        rc.max_concurrency,
        rd.max_concurrency,
    );
    diff(&mut out, "receiver.reconnect", rc.reconnect, rd.reconnect);
    let (bc, bd) = (broker_config(s), BrokerConfig::default());
    diff(&mut out, "broker.redelivery", bc.redelivery, bd.redelivery);
    diff(
        &mut out,
        "broker.max_deliveries",
        bc.max_deliveries,
        bd.max_deliveries,
    );
    if let (Backend::Broker, mq_mock_broker::Storage::Disk(d)) = (&s.backend, &bc.storage) {
        out.push(format!(
            "broker.storage  disk journal in {} (default memory)",
            d.data_dir.display()
        ));
    }
    diff(
        &mut out,
        "broker.record_landings",
        bc.record_landings,
        bd.record_landings,
    );
    out
}

/// The run's certificates when the scenario is over TLS.
pub(crate) struct Pki {
    /// The broker's (or gateway's) TLS-only listener.
    pub broker: mq_mock_broker::TlsConfig,
    /// The clients' (and the JetStream fault proxy's, towards the gateway).
    pub client: mq_conn::TlsConfig,
    /// The JetStream fault proxy's listener, with the same certificate.
    pub proxy: std::sync::Arc<mq_conn::rustls::ServerConfig>,
}

impl Pki {
    fn new(s: &Scenario) -> Result<Option<Pki>, HarnessError> {
        if !s.tls {
            return Ok(None);
        }
        let tls = |e: &dyn std::fmt::Display| HarnessError::Tls(e.to_string());
        let pki = mq_conn::testing::TestPki::generate().map_err(|e| tls(&e))?;
        let broker = mq_mock_broker::TlsConfig::from_pem(
            pki.server_cert_pem.as_bytes(),
            pki.server_key_pem.as_bytes(),
            None,
        )
        .map_err(|e| tls(&e))?
        .tls_only(true);
        let client = pki.client_tls().map_err(|e| tls(&e))?;
        let proxy = pki.server_config(false).map_err(|e| tls(&e))?;
        Ok(Some(Pki {
            broker,
            client,
            proxy,
        }))
    }
}

async fn connect_sender(config: SenderConfig, pki: Option<&Pki>) -> Result<Sender, HarnessError> {
    let mut attempt = 1;
    loop {
        let mut b = Sender::builder(config.clone());
        if let Some(p) = pki {
            b = b.tls(p.client.clone());
        }
        match b.connect().await {
            Ok(sender) => return Ok(sender),
            Err(e) if attempt >= CONNECT_ATTEMPTS => return Err(e.into()),
            Err(_) => attempt += 1,
        }
        tokio::time::sleep(config.reconnect.initial).await;
    }
}

async fn start_receiver(
    s: &Scenario,
    addr: String,
    store: Arc<dyn DedupStore>,
    tally: Arc<Tally>,
    pki: Option<&Pki>,
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
    // A fault may cut the very first connection (the SDK then returns the
    // error instead of reconnecting): an application would start it again,
    // so does the harness, a few times.
    let mut attempt = 1;
    loop {
        let mut b =
            ReceiverBuilder::new(receiver_config(s, addr.clone())).dedup_store(store.clone());
        if let Some(p) = pki {
            b = b.tls(p.client.clone());
        }
        match b.connect(handler.clone()).await {
            Ok(r) => return Ok(r),
            Err(e) if attempt >= CONNECT_ATTEMPTS => return Err(HarnessError::Receiver(e)),
            Err(_) => attempt += 1,
        }
        tokio::time::sleep(s.reconnect.initial).await;
    }
}

/// Attempts at a client's first connection (see `start_receiver`).
const CONNECT_ATTEMPTS: u32 = 5;

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
    let pki = Pki::new(s)?;
    let mut broker = UnderTest::start(
        &s.backend,
        BrokerConfig {
            tls: pki.as_ref().map(|p| p.broker.clone()),
            ..broker_config(s)
        },
        s.faults,
        s.seed,
        pki.as_ref(),
    )
    .await?;
    // In TLS-only mode the one listener is the TLS one.
    let addr = broker.addr();
    let pki = pki.as_ref();
    let tally = Arc::new(Tally::new(s.messages, s.seed));
    let store: Arc<dyn DedupStore> = Arc::new(MemoryDedupStore::new(DedupConfig::default()));

    let mut receiver = start_receiver(s, addr.clone(), store.clone(), tally.clone(), pki).await?;
    let mut sender = connect_sender(sender_config(s, addr.clone(), 0), pki).await?;
    let mut counts = Counts::default();
    let mut partition: Option<(u64, u64)> = None;
    let mut partitions = Vec::new();

    let progress = s
        .progress
        .then(|| spawn_progress(s.messages, tally.clone()));

    for index in 0..s.messages {
        for (_, d) in s.disruptions.iter().filter(|(at, _)| *at == index) {
            match *d {
                Disruption::BrokerRestart => broker.restart().await?,
                Disruption::ReceiverRestart => {
                    counts.add_receiver(&receiver.stats());
                    let _ = receiver.close(Duration::from_secs(10)).await;
                    receiver =
                        start_receiver(s, addr.clone(), store.clone(), tally.clone(), pki).await?;
                }
                Disruption::SenderRestart => {
                    let report = sender.close(Duration::from_secs(60)).await;
                    counts.unresolved_at_close += report.unresolved.len() as u64;
                    counts.add_sender(&sender.stats());
                    counts.sender_generations += 1;
                    sender = connect_sender(
                        sender_config(s, addr.clone(), counts.sender_generations),
                        pki,
                    )
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
    if let Err(e) = sender.flush().await {
        counts.flush_failures.push(e.to_string());
    }
    let settled = broker.settle(s.settle_timeout).await;
    let elapsed = started.elapsed();

    let broker_end = broker.observe().await;
    counts.add_sender(&sender.stats());
    counts.add_receiver(&receiver.stats());
    let receiver_unsettled = receiver.stats().unsettled;
    let close = sender.close(Duration::from_secs(10)).await;
    counts.unresolved_at_close += close.unresolved.len() as u64;
    let _ = receiver.close(Duration::from_secs(10)).await;
    broker.shutdown().await;
    if let Some(p) = progress {
        p.abort();
        if std::io::stderr().is_terminal() {
            eprintln!();
        }
    }

    Ok(Report::build(
        s,
        &tally,
        counts,
        broker_end,
        receiver_unsettled,
        partitions,
        all_resolved,
        settled,
        elapsed,
        handed_over - started,
    ))
}

/// Progress on stderr: a line rewritten in place (`\r`) every 250 ms on a
/// terminal; a plain line every 5 s otherwise (a file or a CI log gets
/// whole lines, no carriage returns).
fn spawn_progress(total: u64, tally: Arc<Tally>) -> tokio::task::JoinHandle<()> {
    let terminal = std::io::stderr().is_terminal();
    let every = if terminal {
        Duration::from_millis(250)
    } else {
        Duration::from_secs(5)
    };
    tokio::spawn(async move {
        let start = Instant::now();
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            let resolved = tally.resolved.load(Ordering::Relaxed);
            let handled = tally.handled.len();
            let secs = start.elapsed().as_secs_f64().max(1e-3);
            let line = format!(
                "  resolved {resolved}/{total}  handled {handled}  {:.0} msgs/s",
                resolved as f64 / secs
            );
            if terminal {
                eprint!("\r{line}   ");
            } else {
                eprintln!("{line}");
            }
        }
    })
}
