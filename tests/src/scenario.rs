//! What a run does: how many messages, which faults, which disruptions.

use std::time::Duration;

use mq_mock_broker::{DiskStorage, Faults, Storage};
use mq_protocol::Backoff;

/// Something that happens to the loop when message number `at` is about to
/// be handed over.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Disruption {
    /// The broker crashes (every connection cut) and restarts on the same
    /// address, keeping its store (a durable broker's process restart).
    BrokerRestart,
    /// The receiver shuts down and a new one starts with the same dedup
    /// store (a consumer process restart with a persistent dedup store).
    ReceiverRestart,
    /// The sender closes (waiting for every outcome) and a new one connects
    /// with a new random producer id (a producer process restart).
    SenderRestart,
    /// Everything senders send is dropped for the next `messages` messages
    /// (the broker is unreachable); the run then waits until the sender has
    /// nothing in flight, so those messages fail on the sender's own timer,
    /// and the network heals.
    Partition {
        /// Messages sent into the partition.
        messages: u64,
    },
}

/// Which broker a run talks to.
///
/// # Examples
///
/// ```
/// let mut s = mq_e2e::Scenario::new("on-jetstream", 7, 1_000);
/// s.backend = mq_e2e::Backend::JetStream(mq_e2e::JetStreamBackend {
///     nodes: 3,
///     ..Default::default()
/// });
/// assert!(s.is_jetstream());
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Backend {
    /// The in-process broker (`mq_mock_broker::MockBroker`), with the
    /// scenario's [`Scenario::storage`] and its own fault injection.
    Broker,
    /// A JetStream gateway (`mq_broker::Gateway`) on NATS servers the run
    /// starts (`nats-server` from `$NATS_SERVER` or the `PATH`), behind a
    /// frame proxy that applies the scenario's faults. A
    /// [`Disruption::BrokerRestart`] crashes the gateway (its tasks dropped,
    /// its sockets closed) and starts a new one over the same NATS.
    JetStream(JetStreamBackend),
}

/// The NATS side of [`Backend::JetStream`].
///
/// # Examples
///
/// ```
/// let j = mq_e2e::JetStreamBackend::default();
/// assert_eq!(j.nodes, 1);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct JetStreamBackend {
    /// NATS servers: 1 (a single JetStream server, stream R1) or 3 (a
    /// cluster, R3).
    pub nodes: usize,
    /// The consumers' `ack_wait`: how soon a delivery lost with its ack (or
    /// held by a crashed gateway) comes back.
    pub ack_wait: Duration,
}

impl Default for JetStreamBackend {
    /// One node, `ack_wait` 2 s (short, so that lost acks cost the run
    /// little; the gateway's default is 30 s).
    fn default() -> Self {
        Self {
            nodes: 1,
            ack_wait: Duration::from_secs(2),
        }
    }
}

/// The backend a test uses: [`Backend::JetStream`] when
/// `MQ_TEST_STORAGE=jetstream` (with `MQ_TEST_NATS_NODES=3` for a 3-node
/// cluster instead of one server), else [`Backend::Broker`].
///
/// # Examples
///
/// ```
/// let b = mq_e2e::test_backend();
/// # let _ = b;
/// ```
pub fn test_backend() -> Backend {
    match std::env::var("MQ_TEST_STORAGE").as_deref() {
        Ok("jetstream") => {
            let nodes = std::env::var("MQ_TEST_NATS_NODES")
                .ok()
                .and_then(|n| n.trim().parse().ok())
                .filter(|&n| n == 1 || n == 3)
                .unwrap_or(1);
            Backend::JetStream(JetStreamBackend {
                nodes,
                ..JetStreamBackend::default()
            })
        }
        _ => Backend::Broker,
    }
}

/// One run of the whole loop.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Name for the report.
    pub name: String,
    /// Seed of the broker's fault RNG, the sender's and receiver's jitter,
    /// and the handler's error injection.
    pub seed: u64,
    /// Messages to send.
    pub messages: u64,
    /// Payload size in bytes (at least 8: the message's index is in front).
    pub payload: usize,
    /// Sender in-flight window.
    pub window: usize,
    /// Receiver prefetch (credit).
    pub prefetch: u32,
    /// Receiver handler concurrency.
    pub concurrency: usize,
    /// Broker faults for the whole run.
    pub faults: Faults,
    /// Probability that one handler call fails (the message comes back).
    pub handler_error_rate: f64,
    /// Disruptions, by the message index before which they happen.
    pub disruptions: Vec<(u64, Disruption)>,
    /// Sender retry schedule (reply timeout per attempt).
    pub retry: Backoff,
    /// Sender attempts before a message fails.
    pub max_attempts: u32,
    /// Sender total deadline per message.
    pub send_timeout: Option<Duration>,
    /// Reconnect schedule of the sender and the receiver.
    pub reconnect: Backoff,
    /// Broker redelivery schedule.
    pub redelivery: Backoff,
    /// Broker deliveries before a message is dead-lettered.
    pub max_deliveries: u32,
    /// Bound on the whole run once every message is handed over.
    pub settle_timeout: Duration,
    /// Print progress to stderr: a live line on a terminal, a plain line
    /// every few seconds otherwise.
    pub progress: bool,
    /// How to replay this run, for the summary. Default: the chaos suite's
    /// `MQ_CHAOS_SEED=<seed>`.
    pub replay: Option<String>,
    /// The broker's storage. Default: [`test_storage`], memory unless
    /// `MQ_TEST_STORAGE=disk` (CI runs the chaos suite both ways).
    pub storage: Storage,
    /// Everything over TLS: a CA and a server certificate are made for the
    /// run, the broker listens on TLS only, and both clients trust that
    /// CA. Default `false` (plain TCP). With [`Backend::JetStream`] the
    /// gateway listens on TLS only and the fault proxy speaks TLS on both sides.
    pub tls: bool,
    /// The broker: default [`test_backend`].
    pub backend: Backend,
}

/// The storage a test broker uses: `Storage::Memory` (also with
/// `MQ_TEST_STORAGE=jetstream`, see [`test_backend`]), or with
/// `MQ_TEST_STORAGE=disk` the journal in a fresh directory under the system's
/// temporary directory (named after `name`, this process and a counter).
///
/// # Examples
///
/// ```
/// let s = mq_e2e::test_storage("doc");
/// # let _ = s;
/// ```
pub fn test_storage(name: &str) -> Storage {
    match std::env::var("MQ_TEST_STORAGE").as_deref() {
        Ok("disk") => disk_storage(name),
        _ => Storage::Memory,
    }
}

/// The journal in a fresh temporary directory named after `name`.
///
/// # Examples
///
/// ```
/// let s = mq_e2e::disk_storage("doc");
/// assert!(matches!(s, mq_mock_broker::Storage::Disk(_)));
/// ```
pub fn disk_storage(name: &str) -> Storage {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let safe: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let dir = std::env::temp_dir().join(format!(
        "mq-e2e-{safe}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    Storage::Disk(DiskStorage::new(dir))
}

impl Scenario {
    /// A fault-free scenario with test-friendly timers: 50 ms reply and
    /// redelivery timeouts doubling to 500 ms, 40 sender attempts and no
    /// sender deadline, 10 ms reconnects doubling to 200 ms, 1 000
    /// deliveries before a dead letter. [`crate::settings_changed`] lists
    /// every difference from the components' defaults (the report prints
    /// it); [`Scenario::with_defaults`] starts from the defaults instead.
    ///
    /// # Examples
    ///
    /// ```
    /// let s = mq_e2e::Scenario::new("smoke", 1, 100);
    /// assert!(s.disruptions.is_empty());
    /// ```
    pub fn new(name: &str, seed: u64, messages: u64) -> Self {
        let fast = Backoff {
            initial: Duration::from_millis(50),
            multiplier: 2.0,
            max: Duration::from_millis(500),
            jitter: 0.2,
        };
        Self {
            name: name.into(),
            seed,
            messages,
            payload: 64,
            window: 256,
            prefetch: 128,
            concurrency: 32,
            faults: Faults::default(),
            handler_error_rate: 0.0,
            disruptions: Vec::new(),
            retry: fast,
            max_attempts: 40,
            send_timeout: None,
            reconnect: Backoff {
                initial: Duration::from_millis(10),
                multiplier: 2.0,
                max: Duration::from_millis(200),
                jitter: 0.2,
            },
            redelivery: fast,
            max_deliveries: 1_000,
            settle_timeout: Duration::from_secs(120),
            progress: false,
            storage: test_storage(name),
            tls: false,
            backend: test_backend(),
            replay: None,
        }
    }

    /// A fault-free scenario with every timer and bound at the defaults of
    /// `SenderConfig`, `ReceiverConfig` and `BrokerConfig` (what a user
    /// gets). The settle timeout is the sender's `send_timeout` plus the
    /// broker's longest redelivery tail.
    ///
    /// # Examples
    ///
    /// ```
    /// let s = mq_e2e::Scenario::with_defaults("prod-like", 1, 100);
    /// assert!(mq_e2e::settings_changed(&s).iter().all(|l| l.starts_with("seed")));
    /// ```
    pub fn with_defaults(name: &str, seed: u64, messages: u64) -> Self {
        let sender = mq_client_sender::SenderConfig::default();
        let receiver = mq_client_receiver::ReceiverConfig::default();
        let broker = mq_mock_broker::BrokerConfig::default();
        Self {
            window: sender.max_in_flight,
            prefetch: receiver.prefetch,
            concurrency: receiver.max_concurrency,
            retry: sender.retry,
            max_attempts: sender.max_attempts,
            send_timeout: sender.send_timeout,
            reconnect: sender.reconnect,
            redelivery: broker.redelivery,
            max_deliveries: broker.max_deliveries,
            settle_timeout: sender.send_timeout.unwrap_or(Duration::from_secs(120))
                + Duration::from_secs(300),
            ..Self::new(name, seed, messages)
        }
    }

    /// True if the run goes through the JetStream gateway.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut s = mq_e2e::Scenario::new("x", 1, 10);
    /// s.backend = mq_e2e::Backend::Broker;
    /// assert!(!s.is_jetstream());
    /// ```
    pub fn is_jetstream(&self) -> bool {
        matches!(self.backend, Backend::JetStream(_))
    }

    /// True if the scenario makes the broker unreachable at some point, so
    /// that failed sends are expected.
    pub fn has_partition(&self) -> bool {
        self.disruptions
            .iter()
            .any(|(_, d)| matches!(d, Disruption::Partition { .. }))
    }
}

/// The seed to use: `MQ_CHAOS_SEED` from the environment when set (to replay
/// a failure), otherwise a fresh random one. Either way print it.
///
/// # Examples
///
/// ```
/// let seed = mq_e2e::seed_from_env();
/// println!("seed {seed}");
/// ```
pub fn seed_from_env() -> u64 {
    std::env::var("MQ_CHAOS_SEED")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(rand::random)
}
