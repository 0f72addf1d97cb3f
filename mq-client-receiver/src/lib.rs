//! The receiver half of the reliable-delivery MQ SDK: subscribe to topics
//! as a member of a consumer group, process each message with a handler
//! ([`RecvCallback`]) or a [`DeliveryStream`], and ack it (`SendAck`).
//!
//! # Guarantees
//!
//! * **At-least-once from the broker.** The broker redelivers every message
//!   of the group until it is acked, so nothing is lost; the price is
//!   duplicates on the wire (lost acks, redelivery timers, reconnects).
//! * **Once to the handler, within the dedup bounds.** Processed message IDs
//!   (producer id + sequence) are remembered in a [`DedupStore`] (default:
//!   the in-memory [`DedupWindow`]). A delivery of a remembered ID is acked
//!   without reaching the handler; a delivery of an ID whose handler is still
//!   running does not start a second call and is settled with the first.
//! * **An error never acks.** A handler `Err` or panic nacks the delivery
//!   (with the handler's requested delay, else the broker's schedule) and
//!   does not record it; the message comes back later. Only an `Ok` in
//!   [`AckMode::Auto`], or [`Delivery::ack`] in [`AckMode::Manual`], acks.
//! * **Dedup may forget, never invent.** It never reports "seen" for an ID
//!   that was not processed, so it can never ack an unprocessed message.
//!
//! # Where duplicates can still reach the handler
//!
//! When the dedup store no longer remembers an ID:
//!
//! * a bound was exceeded: more than [`DedupConfig::max_producers`]
//!   producers (the least recently active is forgotten), or more than
//!   [`DedupConfig::max_ranges_per_producer`] gaps in one producer's
//!   sequences (the lowest range is forgotten), or more than
//!   [`DedupConfig::max_ranges`] ranges over all producers (the lowest range
//!   of the least recently active producer is forgotten);
//! * the producer was idle longer than [`DedupConfig::idle_expiry`];
//! * the process restarted with the in-memory store (use a persistent
//!   [`DedupStore`], or share one store between receivers of one process,
//!   via [`ReceiverBuilder::dedup_store`]);
//! * another member of the same group processed it (each receiver
//!   remembers only its own, unless they share a database store);
//! * the process died after the handler's effects and before the ID was
//!   recorded: the broker redelivers, and the handler runs again.
//!
//! The durable inbox (crate `mq-inbox`) closes the last three: its
//! transactional handler commits the handler's database writes and the
//! processed mark together, before the ack; a redelivery of a committed ID
//! is acked without calling the handler, in any process of the group.
//!
//! # Stores that do I/O
//!
//! [`DedupStore`] calls return a [`StoreFuture`]. The in-memory store
//! answers at once (no allocation, no await: as fast as a plain call); a
//! database store returns a future that the driver polls beside the
//! connection, so a slow database delays only the delivery it concerns.
//! While its lookup or mark is pending the ID counts as in progress, and
//! the `Ack` is written after the mark completed.
//!
//! Each forgotten entry is counted in [`ReceiverStats::dedup_evictions`].
//! Handlers that must never repeat a side effect should still be idempotent.
//!
//! # Settling, reconnects and shutdown
//!
//! * In [`AckMode::Manual`] a [`Delivery`] dropped without `ack` or `nack`
//!   is nacked; a handler `Err` nacks a delivery it did not settle.
//! * After a disconnect the receiver starts a connect round at once (every
//!   address once, in order; the rule of [`mq_conn`], shared with the
//!   sender), then after each failed round waits the `reconnect` backoff,
//!   and resubscribes. Connection events ([`Receiver::events`]) say so. The broker returns the deliveries
//!   that were in flight; those already processed are acked from dedup,
//!   those whose handler is still running are settled with that call.
//! * An ack made while disconnected cannot be written; the message is
//!   recorded as processed, and its redelivery is acked from dedup.
//! * [`Receiver::shutdown`] stops dispatching, waits (up to a deadline) for
//!   running handlers, acks their successes and closes; anything else is
//!   redelivered by the broker.
//!
//! # Bounds
//!
//! * `prefetch`: credit given to the broker; at most this many deliveries
//!   unsettled on a connection. Credit returns as deliveries are settled.
//! * `max_concurrency`: handler calls at once (`<= prefetch`).
//! * `max_frame_size`: largest frame accepted from the broker.
//! * dedup memory: at most [`DedupConfig::max_memory_bytes`], about 15 MiB
//!   with the defaults (bounded by [`DedupConfig::max_ranges`], 262 144
//!   ranges over at most 10 000 producers); a producer whose IDs are all
//!   contiguous costs one 40-byte slot and its index entry (at most 64
//!   bytes in all). See [`DedupConfig`] and
//!   [`DedupWindow::memory_bytes`].
//!
//! # Metrics and tracing
//!
//! Every count of [`ReceiverStats`] is also reported through the
//! [`metrics`](https://docs.rs/metrics) facade: install any recorder (a
//! Prometheus or OpenTelemetry exporter) and they appear; without one they
//! cost next to nothing. No labels; the names are constants in [`stats`].
//!
//! | Name | Kind | Same as |
//! |---|---|---|
//! | `mq_receiver_delivered_total` | counter | [`ReceiverStats::delivered`] |
//! | `mq_receiver_handled_total` | counter | [`ReceiverStats::handled`] |
//! | `mq_receiver_duplicates_suppressed_total` | counter | [`ReceiverStats::duplicates_suppressed`] |
//! | `mq_receiver_redeliveries_total` | counter | [`ReceiverStats::redeliveries`] |
//! | `mq_receiver_acked_total` | counter | [`ReceiverStats::acked`] |
//! | `mq_receiver_nacks_total` | counter | [`ReceiverStats::nacked`] |
//! | `mq_receiver_handler_errors_total` | counter | [`ReceiverStats::handler_errors`] |
//! | `mq_receiver_reconnects_total` | counter | [`ReceiverStats::reconnects`] |
//! | `mq_receiver_store_errors_total` | counter | [`ReceiverStats::store_errors`] |
//! | `mq_receiver_unsettled` | gauge | [`ReceiverStats::unsettled`] |
//! | `mq_receiver_handler_latency_seconds` | histogram | handler call time, seconds |
//!
//! Install the recorder before creating the receiver: it registers its
//! metrics once, when it starts. Counters are process-wide: two receivers
//! in one process add up.
//!
//! Tracing: the driver runs in a `receiver` span (topics, group); each
//! handler call runs in a `delivery` span with the message `id`, its
//! `attempt` and `topic`; the driver's events about one message carry its
//! `id`.
//!
//! # Layout
//!
//! * [`config`]: [`ReceiverConfig`], [`DedupConfig`], [`AckMode`].
//! * [`error`]: one error enum per operation.
//! * [`dedup`]: the sans-IO [`DedupWindow`].
//! * [`store`]: the async [`DedupStore`] trait, [`StoreFuture`] and
//!   [`MemoryDedupStore`].
//! * `recv_core`: the sans-IO state machine: credit, in-progress table,
//!   settling, the dedup decision; stepped with explicit instants.
//! * `driver`: the task owning the connection, the handler calls and the
//!   store calls, feeding the core.
//! * [`delivery`]: [`Delivery`] with `ack`/`nack`, [`DeliveryStream`].
//! * [`handler`]: the [`RecvCallback`] trait.
//! * [`stats`]: the [`ReceiverStats`] counters.
//!
//! # Examples
//!
//! ```no_run
//! use mq_client_receiver::{Delivery, HandlerError, Receiver, ReceiverConfig};
//!
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! let config = ReceiverConfig::default().addresses(vec!["127.0.0.1:7000".into()]).topic("orders").group("billing");
//! let receiver = Receiver::start(config, |d: Delivery| async move {
//!     if d.payload().is_empty() {
//!         return Err(HandlerError::new("empty order")); // nacked, comes back
//!     }
//!     Ok(()) // acked and remembered
//! })
//! .await?;
//! receiver.shutdown(std::time::Duration::from_secs(10)).await?;
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

mod builder;
pub mod config;
mod config_setters;
mod conn;
pub mod dedup;
pub mod delivery;
mod driver;
pub mod error;
pub mod handler;
mod receiver;
mod recv_core;
pub mod stats;
pub mod store;

#[cfg(test)]
mod driver_tests;

pub use config::{AckMode, DedupConfig, ReceiverConfig};
pub use dedup::DedupWindow;
pub use delivery::{Delivery, DeliveryStream};
pub use driver::{CREDIT_FLUSH_DELAY, EXPIRE_INTERVAL};
pub use error::{AckError, ConfigError, ConnectError, HandlerError, RecvError};
pub use handler::RecvCallback;
/// The connection layer's parts a receiver is built with
/// ([`ReceiverBuilder::tls`], [`ReceiverBuilder::connector`],
/// [`ReceiverBuilder::events`]), from [`mq_conn`].
pub use mq_conn::{ConnectionEvent, Connector, Events, TlsConfig, TlsConfigError};
pub use receiver::{Receiver, ReceiverBuilder};
pub use stats::ReceiverStats;
pub use store::{DedupStore, MemoryDedupStore, StoreError, StoreFuture};
