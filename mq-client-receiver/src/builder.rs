//! [`ReceiverBuilder`]: a [`Receiver`] with non-default parts (dedup store,
//! transport, TLS, where connection events go, more topics).

use std::sync::Arc;

use mq_conn::{Connector, Dialer, Events, SharedConnector, TlsConfig};
use mq_protocol::{Hello, Role};
use rand::rngs::SmallRng;
use rand::SeedableRng;
use tokio::sync::mpsc;

use crate::config::{AckMode, ReceiverConfig};
use crate::conn::connect_round;
use crate::delivery::DeliveryStream;
use crate::driver::{Dispatch, Driver};
use crate::error::ConnectError;
use crate::handler::RecvCallback;
use crate::stats::Counters;
use crate::store::{DedupStore, MemoryDedupStore};
use crate::Receiver;

/// Builds a [`Receiver`] with non-default parts (a shared or persistent
/// dedup store).
///
/// # Examples
///
/// ```no_run
/// use std::sync::Arc;
/// use mq_client_receiver::*;
///
/// # async fn f(config: ReceiverConfig) -> Result<(), ConnectError> {
/// // Keep one store across receiver restarts within the process.
/// let store = Arc::new(MemoryDedupStore::new(config.dedup.clone()));
/// let r = ReceiverBuilder::new(config)
///     .dedup_store(store.clone())
///     .start(|_d: Delivery| async { Ok::<(), HandlerError>(()) })
///     .await?;
/// # drop(r); Ok(()) }
/// ```
#[must_use = "a builder does nothing until .connect() is awaited"]
pub struct ReceiverBuilder {
    config: ReceiverConfig,
    store: Option<Arc<dyn DedupStore>>,
    connector: Option<SharedConnector>,
    tls: Option<TlsConfig>,
    events: Option<Events>,
}

impl std::fmt::Debug for ReceiverBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceiverBuilder")
            .field("config", &self.config)
            .field("custom_store", &self.store.is_some())
            .field("custom_connector", &self.connector.is_some())
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl ReceiverBuilder {
    /// A builder with the in-memory dedup store.
    ///
    /// # Examples
    ///
    /// ```
    /// let b = mq_client_receiver::ReceiverBuilder::new(Default::default());
    /// # drop(b);
    /// ```
    pub fn new(config: ReceiverConfig) -> Self {
        Self {
            config,
            store: None,
            connector: None,
            tls: None,
            events: None,
        }
    }

    /// Uses `store` to remember processed IDs (instead of a new
    /// [`MemoryDedupStore`] sized by `config.dedup`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use mq_client_receiver::{MemoryDedupStore, ReceiverBuilder};
    /// let b = ReceiverBuilder::new(Default::default()).dedup_store(Arc::new(MemoryDedupStore::default()));
    /// # drop(b);
    /// ```
    pub fn dedup_store(mut self, store: Arc<dyn DedupStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Also subscribes to `topic` on the same connection (appends it to
    /// [`ReceiverConfig::topics`]); call it once per extra topic.
    ///
    /// # Examples
    ///
    /// ```
    /// use mq_client_receiver::{ReceiverBuilder, ReceiverConfig};
    /// let config = ReceiverConfig::default().topic("orders");
    /// let b = ReceiverBuilder::new(config).topic("refunds").topic("returns");
    /// # drop(b);
    /// ```
    pub fn topic(mut self, topic: impl Into<String>) -> Self {
        self.config.topics.push(topic.into());
        self
    }

    /// As [`Receiver::connect`].
    ///
    /// # Errors
    ///
    /// As [`Receiver::start`].
    ///
    /// # Cancel safety
    ///
    /// As [`Receiver::start`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(c: mq_client_receiver::ReceiverConfig) -> Result<(), mq_client_receiver::ConnectError> {
    /// use mq_client_receiver::{Delivery, HandlerError, Receiver};
    /// let r = Receiver::builder(c)
    ///     .connect(|_d: Delivery| async { Ok::<(), HandlerError>(()) })
    ///     .await?;
    /// # drop(r); Ok(()) }
    /// ```
    pub async fn connect<H: RecvCallback>(self, handler: H) -> Result<Receiver, ConnectError> {
        let mode = self.config.ack_mode;
        let dispatch = Dispatch::Handler {
            handler: Arc::new(handler),
            max_concurrency: self.config.max_concurrency,
        };
        self.launch(dispatch, mode).await
    }

    /// As [`Receiver::connect_stream`].
    ///
    /// # Errors
    ///
    /// As [`Receiver::start`].
    ///
    /// # Cancel safety
    ///
    /// As [`Receiver::start`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(c: mq_client_receiver::ReceiverConfig) -> Result<(), mq_client_receiver::ConnectError> {
    /// let (r, s) = mq_client_receiver::Receiver::builder(c).connect_stream().await?;
    /// # drop((r, s)); Ok(()) }
    /// ```
    pub async fn connect_stream(self) -> Result<(Receiver, DeliveryStream), ConnectError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let r = self
            .launch(Dispatch::Stream(Some(tx)), AckMode::Manual)
            .await?;
        Ok((r, DeliveryStream { rx }))
    }

    /// Opens connections with `connector` instead of plain TCP (for
    /// example Unix sockets, or an in-memory pipe in tests). With
    /// [`ReceiverBuilder::tls`], TLS runs over it.
    ///
    /// # Examples
    ///
    /// ```
    /// use mq_client_receiver::ReceiverBuilder;
    /// let unix = mq_conn::from_fn(|path: String| async move {
    ///     # #[cfg(unix)] {
    ///     let s = tokio::net::UnixStream::connect(path).await?;
    ///     Ok(Box::new(s) as mq_conn::BoxIo)
    ///     # }
    ///     # #[cfg(not(unix))] { Err(std::io::Error::other("unix only")) }
    /// });
    /// let b = ReceiverBuilder::new(Default::default()).connector(unix);
    /// # drop(b);
    /// ```
    pub fn connector(mut self, connector: impl Connector) -> Self {
        self.connector = Some(Arc::new(connector));
        self
    }

    /// Speaks TLS to the broker (rustls): system roots or a given CA, an
    /// optional client certificate for mutual TLS; the server name is the
    /// address's host unless [`TlsConfig::server_name`] overrides it.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn f() -> Result<(), Box<dyn std::error::Error>> {
    /// use mq_client_receiver::{ReceiverBuilder, TlsConfig};
    /// let tls = TlsConfig::with_ca_pem_file("ca.pem")?;
    /// let b = ReceiverBuilder::new(Default::default()).tls(tls);
    /// # drop(b); Ok(()) }
    /// ```
    pub fn tls(mut self, tls: TlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Emits [`crate::ConnectionEvent`]s on `events` (for example one channel
    /// shared with a sender); see also [`Receiver::events`].
    ///
    /// # Examples
    ///
    /// ```
    /// let events = mq_client_receiver::Events::new(256);
    /// let mut rx = events.subscribe();
    /// let b = mq_client_receiver::ReceiverBuilder::new(Default::default()).events(events);
    /// # drop((b, rx));
    /// ```
    pub fn events(mut self, events: Events) -> Self {
        self.events = Some(events);
        self
    }

    /// As [`Receiver::start`].
    ///
    /// # Errors
    ///
    /// As [`Receiver::start`].
    ///
    /// # Cancel safety
    ///
    /// As [`Receiver::start`].
    ///
    /// # Examples
    ///
    /// See [`ReceiverBuilder`].
    #[deprecated(
        since = "0.1.0",
        note = "renamed to `connect`, the name the sender uses"
    )]
    pub async fn start<H: RecvCallback>(self, handler: H) -> Result<Receiver, ConnectError> {
        self.connect(handler).await
    }

    /// As [`Receiver::stream`].
    ///
    /// # Errors
    ///
    /// As [`Receiver::start`].
    ///
    /// # Cancel safety
    ///
    /// As [`Receiver::start`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(c: mq_client_receiver::ReceiverConfig) -> Result<(), mq_client_receiver::ConnectError> {
    /// let (r, s) = mq_client_receiver::ReceiverBuilder::new(c).connect_stream().await?;
    /// # drop((r, s)); Ok(()) }
    /// ```
    #[deprecated(since = "0.1.0", note = "renamed to `connect_stream`")]
    pub async fn stream(self) -> Result<(Receiver, DeliveryStream), ConnectError> {
        self.connect_stream().await
    }

    async fn launch(self, dispatch: Dispatch, mode: AckMode) -> Result<Receiver, ConnectError> {
        self.config.validate()?;
        let config = Arc::new(self.config);
        let connector = mq_conn::client_transport(self.connector, self.tls.as_ref())?;
        let events = self.events.unwrap_or_default();
        let hello = Hello {
            token: config.auth_token.clone(),
            ..Hello::new(Role::Receiver, config.client_name.clone())
        };
        let dialer = Dialer::new(connector, hello)
            .connect_timeout(config.connect_timeout)
            .max_frame_size(config.max_frame_size)
            .events(events.clone());
        let first = connect_round(config.clone(), dialer.clone(), events.clone()).await?;
        let seed = config.seed.unwrap_or_else(rand::random);
        tracing::info!(seed, topics = ?config.all_topics().collect::<Vec<_>>(), group = %config.group, "receiver started");
        let store = self
            .store
            .unwrap_or_else(|| Arc::new(MemoryDedupStore::new(config.dedup.clone())));
        let counters = Arc::new(Counters::default());
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let driver = Driver {
            config,
            dialer,
            events: events.clone(),
            store: store.clone(),
            counters: counters.clone(),
            events_rx,
            events_tx: events_tx.clone(),
            dispatch,
            mode,
            rng: SmallRng::seed_from_u64(seed),
        };
        let span = tracing::info_span!("receiver", topic = %driver.config.topic, group = %driver.config.group);
        let handle = tokio::spawn(tracing::Instrument::instrument(driver.run(first), span));
        Ok(Receiver {
            events: events_tx,
            conn_events: events,
            counters,
            store,
            driver: Some(handle),
        })
    }
}
