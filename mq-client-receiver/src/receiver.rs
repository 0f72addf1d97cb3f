//! [`Receiver`], the handle users hold, and [`ReceiverBuilder`].

use std::sync::Arc;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::SeedableRng;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::JoinHandle;

use crate::config::{AckMode, ReceiverConfig};
use crate::conn::{establish, tcp_connector, Conn, Connector};
use crate::delivery::{DeliveryStream, Event};
use crate::driver::{Dispatch, Driver};
use crate::error::{ConnectError, RecvError};
use crate::handler::RecvCallback;
use crate::stats::{Counters, ReceiverStats};
use crate::store::{DedupStore, MemoryDedupStore};

/// A running subscription. The driver task runs by itself; this handle reads
/// counters and shuts it down. Dropping it without [`Receiver::shutdown`]
/// stops at once: running handlers are aborted and not acked (the broker
/// redelivers their messages).
///
/// # Examples
///
/// ```no_run
/// use mq_client_receiver::{Delivery, HandlerError, Receiver, ReceiverConfig};
///
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// let config = ReceiverConfig {
///     addresses: vec!["127.0.0.1:7000".into()],
///     topic: "orders".into(),
///     group: "billing".into(),
///     ..Default::default()
/// };
/// let receiver = Receiver::start(config, |d: Delivery| async move {
///     println!("got {}", d.id());
///     Ok::<(), HandlerError>(())
/// })
/// .await?;
/// // ...
/// receiver.shutdown(std::time::Duration::from_secs(10)).await?;
/// # Ok(()) }
/// ```
pub struct Receiver {
    events: mpsc::UnboundedSender<Event>,
    counters: Arc<Counters>,
    store: Arc<dyn DedupStore>,
    driver: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Receiver {
    /// Connects, subscribes and starts calling `handler` for each message:
    /// the same as [`Receiver::start`], under the name the sender uses
    /// (`Sender::connect`).
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
    /// # use mq_client_receiver::*;
    /// # async fn f(config: ReceiverConfig) -> Result<(), ConnectError> {
    /// let r = Receiver::connect(config, |d: Delivery| async move {
    ///     let _n: u64 = std::str::from_utf8(d.payload())?.parse()?; // `?` nacks
    ///     Ok(())
    /// })
    /// .await?;
    /// r.close(std::time::Duration::from_secs(10)).await.ok();
    /// # Ok(()) }
    /// ```
    pub async fn connect<H: RecvCallback>(
        config: ReceiverConfig,
        handler: H,
    ) -> Result<Receiver, ConnectError> {
        ReceiverBuilder::new(config).start(handler).await
    }

    /// Connects, subscribes and returns the deliveries as a
    /// [`DeliveryStream`]: the same as [`Receiver::stream`].
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
    /// # use mq_client_receiver::*;
    /// # async fn f(config: ReceiverConfig) -> Result<(), ConnectError> {
    /// let (receiver, mut deliveries) = Receiver::connect_stream(config).await?;
    /// while let Some(d) = deliveries.recv().await {
    ///     d.ack().await.ok();
    /// }
    /// # drop(receiver); Ok(()) }
    /// ```
    pub async fn connect_stream(
        config: ReceiverConfig,
    ) -> Result<(Receiver, DeliveryStream), ConnectError> {
        ReceiverBuilder::new(config).stream().await
    }

    /// A builder for a receiver with non-default parts; the same as
    /// [`ReceiverBuilder::new`].
    ///
    /// # Examples
    ///
    /// ```
    /// let b = mq_client_receiver::Receiver::builder(Default::default()).topic("refunds");
    /// # drop(b);
    /// ```
    pub fn builder(config: ReceiverConfig) -> ReceiverBuilder {
        ReceiverBuilder::new(config)
    }

    /// Stops, waiting up to `deadline` for running handlers: the same as
    /// [`Receiver::shutdown`], under the name the sender uses.
    ///
    /// # Errors
    ///
    /// As [`Receiver::shutdown`].
    ///
    /// # Cancel safety
    ///
    /// As [`Receiver::shutdown`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(r: mq_client_receiver::Receiver) {
    /// r.close(std::time::Duration::from_secs(30)).await.ok();
    /// # }
    /// ```
    pub async fn close(self, deadline: Duration) -> Result<(), RecvError> {
        self.shutdown(deadline).await
    }

    /// Connects, subscribes and starts calling `handler` for each message,
    /// with the in-memory dedup store. See [`ReceiverBuilder`] for a shared
    /// or persistent store.
    ///
    /// Tries each address once; afterwards the receiver reconnects by itself
    /// with `config.reconnect` backoff until shut down.
    ///
    /// # Errors
    ///
    /// [`ConnectError`] if the config is invalid or no address accepted the
    /// subscription (the error of the last address).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it resolves closes any connection it made;
    /// nothing has been delivered yet.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use mq_client_receiver::*;
    /// # async fn f(config: ReceiverConfig) -> Result<(), ConnectError> {
    /// let r = Receiver::start(config, |_d: Delivery| async { Ok::<(), HandlerError>(()) }).await?;
    /// # drop(r); Ok(()) }
    /// ```
    pub async fn start<H: RecvCallback>(
        config: ReceiverConfig,
        handler: H,
    ) -> Result<Receiver, ConnectError> {
        ReceiverBuilder::new(config).start(handler).await
    }

    /// Connects, subscribes and returns the deliveries as a [`DeliveryStream`],
    /// in [`AckMode::Manual`] whatever `config.ack_mode` says.
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
    /// # use mq_client_receiver::*;
    /// # async fn f(config: ReceiverConfig) -> Result<(), ConnectError> {
    /// let (receiver, mut deliveries) = Receiver::stream(config).await?;
    /// # drop((receiver, deliveries)); Ok(()) }
    /// ```
    pub async fn stream(
        config: ReceiverConfig,
    ) -> Result<(Receiver, DeliveryStream), ConnectError> {
        ReceiverBuilder::new(config).stream().await
    }

    /// A snapshot of the counters.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn f(r: &mq_client_receiver::Receiver) {
    /// let s = r.stats();
    /// println!("{} handled, {} duplicates", s.handled, s.duplicates_suppressed);
    /// # }
    /// ```
    pub fn stats(&self) -> ReceiverStats {
        self.counters.snapshot(self.store.evictions())
    }

    /// Stops taking deliveries, waits up to `deadline` for running handler
    /// calls (or unsettled stream deliveries), acks their successes, sends
    /// `Close` and stops. Deliveries not dispatched are left to the broker,
    /// which redelivers them when the connection closes.
    ///
    /// # Errors
    ///
    /// [`RecvError::ShutdownTimeout`] if deliveries were still unsettled at
    /// the deadline (they are not acked and come back from the broker);
    /// [`RecvError::DriverFailed`] if the driver task died.
    ///
    /// # Cancel safety
    ///
    /// Once polled, the shutdown proceeds even if this future is dropped.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(r: mq_client_receiver::Receiver) {
    /// r.shutdown(std::time::Duration::from_secs(30)).await.ok();
    /// # }
    /// ```
    pub async fn shutdown(mut self, deadline: Duration) -> Result<(), RecvError> {
        let (reply, rx) = oneshot::channel();
        let _ = self.events.send(Event::Shutdown { deadline, reply });
        let result = rx.await;
        let joined = match self.driver.take() {
            Some(h) => h.await.map_err(|e| e.to_string()),
            None => Ok(()),
        };
        match (result, joined) {
            (Ok(r), _) => r,
            (Err(_), Err(e)) => Err(RecvError::DriverFailed(e)),
            (Err(_), Ok(())) => Err(RecvError::DriverFailed(
                "driver ended without a reply".into(),
            )),
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if self.driver.is_some() {
            let (reply, _rx) = oneshot::channel();
            let _ = self.events.send(Event::Shutdown {
                deadline: Duration::ZERO,
                reply,
            });
        }
    }
}

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
pub struct ReceiverBuilder {
    config: ReceiverConfig,
    store: Option<Arc<dyn DedupStore>>,
    connector: Option<Connector>,
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
    /// let config = ReceiverConfig { topic: "orders".into(), ..Default::default() };
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
        self.start(handler).await
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
        self.stream().await
    }

    #[cfg(test)]
    pub(crate) fn connector(mut self, c: Connector) -> Self {
        self.connector = Some(c);
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
    pub async fn start<H: RecvCallback>(self, handler: H) -> Result<Receiver, ConnectError> {
        let sem = Arc::new(Semaphore::new(self.config.max_concurrency));
        let mode = self.config.ack_mode;
        let dispatch = Dispatch::Handler {
            handler: Arc::new(handler),
            sem,
        };
        self.launch(dispatch, mode).await
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
    /// let (r, s) = mq_client_receiver::ReceiverBuilder::new(c).stream().await?;
    /// # drop((r, s)); Ok(()) }
    /// ```
    pub async fn stream(self) -> Result<(Receiver, DeliveryStream), ConnectError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let r = self
            .launch(Dispatch::Stream(Some(tx)), AckMode::Manual)
            .await?;
        Ok((r, DeliveryStream { rx }))
    }

    async fn launch(self, dispatch: Dispatch, mode: AckMode) -> Result<Receiver, ConnectError> {
        self.config.validate()?;
        let config = Arc::new(self.config);
        let connector = self.connector.unwrap_or_else(tcp_connector);
        let (first, addr_idx) = first_connection(&config, &connector).await?;
        let seed = config.seed.unwrap_or_else(rand::random);
        tracing::info!(seed, topics = ?config.all_topics().collect::<Vec<_>>(), group = %config.group, "receiver started");
        let store = self
            .store
            .unwrap_or_else(|| Arc::new(MemoryDedupStore::new(config.dedup.clone())));
        let counters = Arc::new(Counters::default());
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let driver = Driver {
            config,
            connector,
            store: store.clone(),
            counters: counters.clone(),
            events_rx,
            events_tx: events_tx.clone(),
            dispatch,
            mode,
            rng: SmallRng::seed_from_u64(seed),
            addr_idx,
        };
        let span = tracing::info_span!("receiver", topic = %driver.config.topic, group = %driver.config.group);
        let handle = tokio::spawn(tracing::Instrument::instrument(driver.run(first), span));
        Ok(Receiver {
            events: events_tx,
            counters,
            store,
            driver: Some(handle),
        })
    }
}

async fn first_connection(
    config: &Arc<ReceiverConfig>,
    connector: &Connector,
) -> Result<(Conn, usize), ConnectError> {
    let mut last = ConnectError::Closed;
    for (i, addr) in config.addresses.iter().enumerate() {
        match establish(config.clone(), connector.clone(), addr.clone()).await {
            Ok(c) => return Ok((c, i)),
            Err(e) => {
                tracing::warn!(%addr, error = %e, "connect failed");
                last = e;
            }
        }
    }
    Err(last)
}
