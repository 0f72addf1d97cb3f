//! [`Receiver`], the handle users hold.

use std::sync::Arc;
use std::time::Duration;

use mq_conn::{ConnectionEvent, Events};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;

pub use crate::builder::ReceiverBuilder;
use crate::config::ReceiverConfig;
use crate::delivery::{DeliveryStream, Event};
use crate::error::{ConnectError, RecvError};
use crate::handler::RecvCallback;
use crate::stats::{Counters, ReceiverStats};
use crate::store::DedupStore;

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
/// let config = ReceiverConfig::default().addresses(vec!["127.0.0.1:7000".into()]).topic("orders").group("billing");
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
    pub(crate) events: mpsc::UnboundedSender<Event>,
    pub(crate) conn_events: Events,
    pub(crate) counters: Arc<Counters>,
    pub(crate) store: Arc<dyn DedupStore>,
    pub(crate) driver: Option<JoinHandle<()>>,
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
        ReceiverBuilder::new(config).connect(handler).await
    }

    /// Connects, subscribes and returns the deliveries as a
    /// [`DeliveryStream`], in [`crate::AckMode::Manual`] whatever
    /// `config.ack_mode` says.
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
        ReceiverBuilder::new(config).connect_stream().await
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
    pub async fn close(mut self, deadline: Duration) -> Result<(), RecvError> {
        self.close_inner(deadline).await
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
    /// let r = Receiver::connect(config, |_d: Delivery| async { Ok::<(), HandlerError>(()) }).await?;
    /// # drop(r); Ok(()) }
    /// ```
    #[deprecated(
        since = "0.1.0",
        note = "renamed to `connect`, the name the sender uses"
    )]
    pub async fn start<H: RecvCallback>(
        config: ReceiverConfig,
        handler: H,
    ) -> Result<Receiver, ConnectError> {
        Self::connect(config, handler).await
    }

    /// Connects, subscribes and returns the deliveries as a [`DeliveryStream`],
    /// in [`crate::AckMode::Manual`] whatever `config.ack_mode` says.
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
    /// # drop((receiver, deliveries)); Ok(()) }
    /// ```
    #[deprecated(since = "0.1.0", note = "renamed to `connect_stream`")]
    pub async fn stream(
        config: ReceiverConfig,
    ) -> Result<(Receiver, DeliveryStream), ConnectError> {
        Self::connect_stream(config).await
    }

    /// A stream of what happens to the connection from now on: connected,
    /// lost, reconnecting (after a failed round), refused. Each call is a
    /// new observer; one that falls behind by more than the channel's
    /// capacity (64, or as given to [`ReceiverBuilder::events`]) loses the
    /// oldest events.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(r: &mq_client_receiver::Receiver) {
    /// let mut events = r.events();
    /// while let Ok(e) = events.recv().await {
    ///     println!("connection: {e:?}");
    /// }
    /// # }
    /// ```
    pub fn events(&self) -> broadcast::Receiver<ConnectionEvent> {
        self.conn_events.subscribe()
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
    /// r.close(std::time::Duration::from_secs(30)).await.ok();
    /// # }
    /// ```
    #[deprecated(since = "0.1.0", note = "renamed to `close`, the name the sender uses")]
    pub async fn shutdown(self, deadline: Duration) -> Result<(), RecvError> {
        self.close(deadline).await
    }

    async fn close_inner(&mut self, deadline: Duration) -> Result<(), RecvError> {
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
