//! A new user's first hour with the SDK, kept as a template to copy: an
//! order service that publishes `orders` (plainly, or through the durable
//! outbox) and a billing service that consumes them. Written from the
//! README and the crates' docs only; `tests/faults.rs` runs both against
//! the in-process mock broker with the README's suggested faults.
//!
//! # Layout
//!
//! * [`place_orders`]: the producer, with a [`Sender`] at its default
//!   settings; reports confirmed and failed orders.
//! * [`start_billing`]: the consumer, a [`Receiver`] whose handler bills
//!   each order once.
//! * [`Shop`]: the producer again, crash-safe: the order row and its
//!   message commit in one SQLite transaction (the durable outbox).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use mq_client_receiver::{Delivery, HandlerError, Receiver, ReceiverConfig};
use mq_client_sender::{OutgoingMessage, Receipt, SendError, Sender, SenderConfig};
use mq_outbox::sqlx::{self, SqlitePool};
use mq_outbox::{DispatcherHandle, Outbox, OutboxConfig};

/// The topic orders are published on.
///
/// # Examples
///
/// ```
/// assert_eq!(first_hour::TOPIC, "orders");
/// ```
pub const TOPIC: &str = "orders";

/// What [`place_orders`] observed.
///
/// # Examples
///
/// ```
/// let r = first_hour::OrderReport::default();
/// assert!(r.failed.is_empty());
/// ```
#[derive(Debug, Default)]
pub struct OrderReport {
    /// Orders the broker confirmed (stored).
    pub confirmed: Vec<Receipt>,
    /// Orders that ended without a confirm, with why. A `Timeout` here is
    /// "not confirmed", not "not stored".
    pub failed: Vec<(u32, SendError)>,
}

/// Publishes orders `0..count` as `"order N"` and waits for every outcome.
///
/// # Errors
///
/// A hand-over error (the sender closed); per-order outcomes are in the
/// report.
///
/// # Examples
///
/// ```no_run
/// async fn produce() -> Result<(), Box<dyn std::error::Error>> {
///     let sender = mq_client_sender::Sender::connect(
///         mq_client_sender::SenderConfig::new("127.0.0.1:7878"),
///     )
///     .await?;
///     let report = first_hour::place_orders(&sender, 100).await?;
///     println!("{} confirmed, {} failed", report.confirmed.len(), report.failed.len());
///     Ok(())
/// }
/// ```
pub async fn place_orders(sender: &Sender, count: u32) -> Result<OrderReport, SendError> {
    let mut pending = Vec::new();
    for n in 0..count {
        let msg = OutgoingMessage::new(TOPIC, format!("order {n}"));
        pending.push((n, sender.enqueue(msg).await?));
    }
    let mut report = OrderReport::default();
    for (n, p) in pending {
        match p.await {
            Ok(receipt) => report.confirmed.push(receipt),
            Err(e) => report.failed.push((n, e)),
        }
    }
    Ok(report)
}

/// Connects a sender with the default settings to `broker`.
///
/// # Errors
///
/// The broker is unreachable or refused the handshake.
///
/// # Examples
///
/// ```no_run
/// async fn f() -> Result<(), mq_client_sender::ConnectError> {
///     let sender = first_hour::connect_sender("127.0.0.1:7878").await?;
///     sender.close(std::time::Duration::from_secs(5)).await;
///     Ok(())
/// }
/// ```
pub async fn connect_sender(broker: &str) -> Result<Sender, mq_client_sender::ConnectError> {
    Sender::connect(SenderConfig::new(broker)).await
}

/// How many times each order was billed, by payload.
///
/// # Examples
///
/// ```
/// let billed = first_hour::Billed::default();
/// assert!(billed.lock().map(|b| b.is_empty()).unwrap_or(false));
/// ```
pub type Billed = Arc<Mutex<HashMap<String, u32>>>;

/// Starts the billing consumer (group `billing`): every order reaches the
/// handler once, even when the broker delivers it twice.
///
/// # Errors
///
/// The broker is unreachable or refused the handshake.
///
/// # Examples
///
/// ```no_run
/// async fn consume() -> Result<(), Box<dyn std::error::Error>> {
///     let billed = first_hour::Billed::default();
///     let receiver = first_hour::start_billing("127.0.0.1:7878", billed.clone()).await?;
///     receiver.shutdown(std::time::Duration::from_secs(5)).await?;
///     Ok(())
/// }
/// ```
pub async fn start_billing(
    broker: &str,
    billed: Billed,
) -> Result<Receiver, mq_client_receiver::ConnectError> {
    let config = ReceiverConfig::default()
        .addresses(vec![broker.to_owned()])
        .topic(TOPIC)
        .group("billing");
    Receiver::connect(config, move |d: Delivery| {
        let billed = billed.clone();
        async move {
            let order = String::from_utf8(d.payload().to_vec())
                .map_err(|_| HandlerError::new("order is not UTF-8"))?;
            let mut billed = billed
                .lock()
                .map_err(|_| HandlerError::new("billing ledger poisoned"))?;
            *billed.entry(order).or_default() += 1;
            Ok::<(), HandlerError>(())
        }
    })
    .await
}

/// Why a [`Shop`] operation failed.
///
/// # Examples
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let err = first_hour::Shop::open("mysql://nope").await.unwrap_err();
/// assert!(matches!(err, first_hour::ShopError::Open(_)));
/// # });
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShopError {
    /// The outbox could not be opened.
    #[error(transparent)]
    Open(#[from] mq_outbox::OpenError),
    /// The order or its message could not be written.
    #[error(transparent)]
    Enqueue(#[from] mq_outbox::EnqueueError),
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// The sender for the dispatcher could not connect.
    #[error(transparent)]
    Connect(#[from] mq_client_sender::ConnectError),
}

/// The order service with the durable outbox: an order and its message are
/// committed together, and sent (again, after a crash) until confirmed.
///
/// # Examples
///
/// ```no_run
/// async fn shop() -> Result<(), first_hour::ShopError> {
///     let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "sqlite:shop.db".into());
///     let shop = first_hour::Shop::open(&url).await?;
///     let dispatcher = shop.start_dispatching("127.0.0.1:7878").await?;
///     shop.place_order(42).await?;
///     dispatcher.shutdown().await;
///     Ok(())
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Shop {
    outbox: Outbox,
    pool: SqlitePool,
}

impl Shop {
    /// Opens (or creates) the shop's SQLite database with its `orders`
    /// table and the outbox tables.
    ///
    /// # Errors
    ///
    /// [`ShopError::Open`] or [`ShopError::Database`].
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let url = String::from("sqlite::memory:");
    /// let _shop = first_hour::Shop::open(&url).await?;
    /// # Ok::<(), first_hour::ShopError>(()) }).unwrap();
    /// ```
    pub async fn open(database_url: &str) -> Result<Shop, ShopError> {
        let outbox = Outbox::open(database_url, OutboxConfig::default()).await?;
        let pool = outbox
            .sqlite_pool()
            .ok_or_else(|| sqlx::Error::Configuration("the shop needs SQLite".into()))?
            .clone();
        sqlx::query("CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY)")
            .execute(&pool)
            .await?;
        Ok(Shop { outbox, pool })
    }

    /// Records order `id` and its `orders` message in one transaction.
    ///
    /// # Errors
    ///
    /// The database refused the write (nothing is committed then).
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let shop = first_hour::Shop::open(&"sqlite::memory:".to_string()).await?;
    /// shop.place_order(42).await?;
    /// assert_eq!(shop.outbox().stats().await.map(|s| s.pending).ok(), Some(1));
    /// # Ok::<(), first_hour::ShopError>(()) }).unwrap();
    /// ```
    pub async fn place_order(&self, id: i64) -> Result<(), ShopError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query("INSERT INTO orders (id) VALUES ($1)")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        self.outbox
            .enqueue(&mut tx, TOPIC, format!("order {id}"))
            .await?;
        tx.commit().await?;
        self.outbox.notify();
        Ok(())
    }

    /// Starts sending the outbox's rows to `broker`.
    ///
    /// # Errors
    ///
    /// [`ShopError::Connect`] if the broker is unreachable.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// async fn f(shop: first_hour::Shop) -> Result<(), first_hour::ShopError> {
    ///     let dispatcher = shop.start_dispatching("127.0.0.1:7878").await?;
    ///     dispatcher.shutdown().await;
    ///     Ok(())
    /// }
    /// ```
    pub async fn start_dispatching(&self, broker: &str) -> Result<DispatcherHandle, ShopError> {
        let sender = mq_outbox::connect_sender(&self.outbox, SenderConfig::new(broker)).await?;
        Ok(self.outbox.dispatcher(sender).spawn())
    }

    /// The outbox, for its counts and admin calls.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let shop = first_hour::Shop::open(&"sqlite::memory:".to_string()).await?;
    /// println!("{:?}", shop.outbox().stats().await);
    /// # Ok::<(), first_hour::ShopError>(()) }).unwrap();
    /// ```
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }
}
