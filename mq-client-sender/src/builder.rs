//! [`SenderBuilder`]: how a [`Sender`] connects (transport, TLS, lazily or
//! not) and where its connection events go.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64};
use std::sync::Arc;

use dashmap::DashMap;
use mq_conn::ConnectionEvent;
use mq_conn::{ConnectError, Connector, Dialer, Events, SharedConnector, TlsConfig};
use mq_protocol::{Hello, Role};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::{broadcast, mpsc, Semaphore};

use crate::callback::Callbacks;
use crate::driver::Driver;
use crate::metrics::Metrics;
use crate::sender::Shared;
use crate::stats::Stats;
use crate::{Sender, SenderConfig};

/// Builds a [`Sender`]: its configuration plus how it connects. Made by
/// [`Sender::builder`].
///
/// * [`tls`](SenderBuilder::tls): TLS over the transport (see
///   [`mq_conn::TlsConfig`]).
/// * [`connector`](SenderBuilder::connector): another transport than TCP
///   (a Unix socket, an in-memory pipe); TLS, if set, runs over it.
/// * [`lazy_connect`](SenderBuilder::lazy_connect): return at once and
///   connect in the background.
/// * [`events`](SenderBuilder::events): the channel for
///   [`mq_conn::ConnectionEvent`]s (see also [`Sender::events`]).
///
/// # Examples
///
/// ```no_run
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// use mq_client_sender::{Sender, SenderConfig};
/// use mq_conn::{ConnectionEvent, Events, TlsConfig};
///
/// let events = Events::default();
/// let mut rx = events.subscribe();
/// let sender = Sender::builder(SenderConfig::new("broker.internal:7878"))
///     .tls(TlsConfig::with_ca_pem_file("ca.pem")?.client_cert_files("me.pem", "me-key.pem")?)
///     .events(events)
///     .lazy_connect(true)
///     .connect()
///     .await?;
/// if let Ok(ConnectionEvent::Connected { address }) = rx.recv().await {
///     println!("connected to {address}");
/// }
/// # drop(sender); Ok(()) }
/// ```
#[must_use = "a builder does nothing until .connect() is awaited"]
pub struct SenderBuilder {
    config: SenderConfig,
    connector: Option<SharedConnector>,
    tls: Option<TlsConfig>,
    lazy: bool,
    events: Option<Events>,
}

impl std::fmt::Debug for SenderBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SenderBuilder")
            .field("config", &self.config)
            .field("custom_connector", &self.connector.is_some())
            .field("tls", &self.tls)
            .field("lazy", &self.lazy)
            .finish_non_exhaustive()
    }
}

impl SenderBuilder {
    pub(crate) fn new(config: SenderConfig) -> Self {
        Self {
            config,
            connector: None,
            tls: None,
            lazy: false,
            events: None,
        }
    }

    /// Speak TLS to the broker. The certificate is checked against the
    /// address's host (or the config's server-name override).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn f() -> Result<(), mq_conn::TlsConfigError> {
    /// use mq_client_sender::{Sender, SenderConfig};
    /// let b = Sender::builder(SenderConfig::new("broker:7878"))
    ///     .tls(mq_conn::TlsConfig::system_roots());
    /// # drop(b); Ok(()) }
    /// ```
    pub fn tls(mut self, tls: TlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Open connections with this transport instead of TCP.
    ///
    /// # Examples
    ///
    /// ```
    /// use mq_client_sender::{Sender, SenderConfig};
    /// let b = Sender::builder(SenderConfig::new("127.0.0.1:7878"))
    ///     .connector(mq_conn::TcpConnector::new());
    /// # drop(b);
    /// ```
    pub fn connector(mut self, connector: impl Connector) -> Self {
        self.connector = Some(Arc::new(connector));
        self
    }

    /// With `true`, [`connect`](SenderBuilder::connect) only validates the
    /// configuration and starts the driver, which connects in the
    /// background (reconnect rules apply from the first round). The sender
    /// accepts messages at once; they go out when a connection is up, and
    /// their deadlines (`send_timeout`, `max_attempts`) run from acceptance
    /// whether or not a broker was ever reached: a message that cannot be
    /// confirmed in time ends in [`crate::SendError::Timeout`]. A broker
    /// that refuses the handshake (e.g. a wrong token) is retried like an
    /// unreachable one and shows as
    /// [`mq_conn::ConnectionEvent::Refused`]. Default `false`: `connect`
    /// fails unless a broker completes the handshake now.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use mq_client_sender::{Sender, SenderConfig};
    /// // Nothing listens there; the sender is created anyway.
    /// let sender = Sender::builder(SenderConfig::new("127.0.0.1:9"))
    ///     .lazy_connect(true)
    ///     .connect()
    ///     .await
    ///     .unwrap();
    /// sender.close(std::time::Duration::ZERO).await;
    /// # }
    /// ```
    pub fn lazy_connect(mut self, lazy: bool) -> Self {
        self.lazy = lazy;
        self
    }

    /// Emit connection events on this channel (subscribe to it before
    /// `connect` to see the first `Connected`).
    ///
    /// # Examples
    ///
    /// ```
    /// use mq_client_sender::{Sender, SenderConfig};
    /// let events = mq_conn::Events::default();
    /// let rx = events.subscribe();
    /// let b = Sender::builder(SenderConfig::new("127.0.0.1:7878")).events(events);
    /// # drop((b, rx));
    /// ```
    pub fn events(mut self, events: Events) -> Self {
        self.events = Some(events);
        self
    }

    /// Validates the configuration, connects (unless lazy: see
    /// [`SenderBuilder::lazy_connect`]) and starts the driver task on the
    /// current tokio runtime.
    ///
    /// # Errors
    ///
    /// [`ConnectError::Config`] for an invalid config (its source is a
    /// [`crate::ConfigError`]), [`ConnectError::TlsConfig`] if the TLS
    /// configuration cannot be built; when not lazy also
    /// [`ConnectError::Refused`], [`ConnectError::Tls`],
    /// [`ConnectError::Handshake`] and [`ConnectError::Unreachable`] (see
    /// [`Sender::connect`]).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future before it completes drops any
    /// half-open connection; no task is left behind.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), mq_client_sender::ConnectError> {
    /// use mq_client_sender::{Sender, SenderConfig};
    /// let sender = Sender::builder(SenderConfig::new("127.0.0.1:7878")).connect().await?;
    /// # drop(sender); Ok(()) }
    /// ```
    pub async fn connect(self) -> Result<Sender, ConnectError> {
        self.config.validate()?;
        let cfg = Arc::new(self.config);
        let connector = mq_conn::client_transport(self.connector, self.tls.as_ref())?;
        let events = self.events.unwrap_or_default();
        let hello = Hello {
            token: cfg.auth_token.clone(),
            ..Hello::new(Role::Sender, cfg.client_name.clone())
        };
        let dialer = Dialer::new(connector, hello)
            .connect_timeout(cfg.connect_timeout)
            .max_frame_size(cfg.max_frame_size)
            .events(events.clone());
        let est = if self.lazy {
            None
        } else {
            Some(dialer.connect_round(&cfg.addresses).await?)
        };
        let callbacks = Callbacks::start().map_err(ConnectError::Spawn)?;
        let seed = cfg.seed.unwrap_or_else(rand::random);
        let mut rng = SmallRng::seed_from_u64(seed);
        // Never from `seed`: two senders configured with the same seed must
        // still get different producer ids, or the broker would answer
        // `Duplicate` for the other's messages.
        let producer = cfg.producer_id.unwrap_or_else(rand::random);
        tracing::debug!(seed, producer = %format_args!("{producer:016x}"), lazy = self.lazy, "sender starting");
        let shared = Arc::new(Shared {
            producer,
            next_seq: AtomicU64::new(1),
            count: Arc::new(Semaphore::new(cfg.max_in_flight)),
            bytes: Arc::new(Semaphore::new(cfg.max_in_flight_bytes)),
            explicit: DashMap::new(),
            stats: Stats::default(),
            metrics: Metrics::new(),
            events,
            closed: AtomicBool::new(false),
            finished: AtomicBool::new(false),
            peer_max_frame: AtomicU32::new(cfg.max_frame_size),
            peer_max_message: AtomicU32::new(u32::MAX),
            cfg: cfg.clone(),
        });
        let (tx, rx) = mpsc::unbounded_channel();
        let core_rng = SmallRng::seed_from_u64(rng.gen());
        let reconnect_rng = SmallRng::seed_from_u64(rng.gen());
        let driver = Driver::new(
            shared.clone(),
            cfg,
            rx,
            callbacks,
            dialer,
            core_rng,
            reconnect_rng,
            est,
        );
        tokio::spawn(driver.run());
        Ok(Sender { shared, tx })
    }
}

impl Sender {
    /// A [`SenderBuilder`]: TLS, another transport, lazy connect, an event
    /// channel. `Sender::builder(config).connect()` is [`Sender::connect`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
    /// use mq_client_sender::{Sender, SenderConfig};
    /// let tls = mq_conn::TlsConfig::with_ca_pem_file("ca.pem")?;
    /// let sender = Sender::builder(SenderConfig::new("broker.internal:7878"))
    ///     .tls(tls)
    ///     .lazy_connect(true)
    ///     .connect()
    ///     .await?;
    /// # drop(sender); Ok(()) }
    /// ```
    pub fn builder(config: SenderConfig) -> SenderBuilder {
        SenderBuilder::new(config)
    }

    /// A stream of this sender's [`ConnectionEvent`]s (connected, lost,
    /// reconnecting, refused) from now on. To see the first `Connected` of
    /// a lazy sender, pass your own channel to [`SenderBuilder::events`]
    /// and subscribe before connecting.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(sender: mq_client_sender::Sender) {
    /// let mut events = sender.events();
    /// tokio::spawn(async move {
    ///     while let Ok(e) = events.recv().await {
    ///         eprintln!("connection: {e:?}");
    ///     }
    /// });
    /// # }
    /// ```
    pub fn events(&self) -> broadcast::Receiver<ConnectionEvent> {
        self.shared.events.subscribe()
    }
}

#[cfg(test)]
impl Sender {
    /// The test seam: connect through `connector` (the tests' in-memory
    /// network).
    pub(crate) async fn connect_with(
        config: SenderConfig,
        connector: SharedConnector,
    ) -> Result<Sender, ConnectError> {
        let mut b = Sender::builder(config);
        b.connector = Some(connector);
        b.connect().await
    }
}
