//! The sender half of the reliable-delivery MQ SDK: hand a message over,
//! get exactly one outcome.
//!
//! # Guarantees
//!
//! * **At-least-once on the wire.** An accepted message is transmitted until
//!   the broker answers for its ID or its total deadline (`send_timeout`,
//!   120 s by default) passes, or its attempts run out when `max_attempts`
//!   is set to a finite count (by default it is not). Every retransmission carries
//!   the same [`mq_protocol::MessageId`] and a higher attempt number.
//! * **Exactly one outcome per accepted message**, delivered to its
//!   [`PendingSend`] future or its [`SendCallback`]: a [`Receipt`] (the broker
//!   answered `Stored` or `Duplicate`), [`SendError::Rejected`],
//!   [`SendError::Timeout`] (saying how many attempts were made), or
//!   [`SendError::Abandoned`] when [`Sender::close`] hit its deadline.
//!   Reconnecting never drops a message, and the outcome arrives on the
//!   sender's own timer even if the broker never comes back.
//! * **Where duplicates come from.** If the broker stored a message but its
//!   reply was lost (a network flash, a cut connection), the retransmission
//!   reaches the broker again. The broker answers `Duplicate` and stores it
//!   once, as long as it still remembers the ID: its dedup memory is bounded,
//!   and a message retransmitted after the broker forgot its ID is stored
//!   twice. A `Timeout` does not mean "not stored". Consumers must be
//!   idempotent (the receiver crate dedupes by ID).
//! * **What a `Timeout` means for the caller:** not confirmed within
//!   `send_timeout`. The message may be stored. Send it again with the same
//!   explicit sequence (the broker answers `Duplicate` if it has it), or use
//!   the durable outbox (`mq-outbox`), which keeps the row and sends it
//!   again later under the same ID, so a timeout there only means "sent
//!   later".
//! * **Nothing is buffered silently.** At most `max_in_flight` messages and
//!   `max_in_flight_bytes` frame bytes are unresolved at once; beyond that a
//!   hand-over waits (`Backpressure::Wait`) or fails giving the message back
//!   (`Backpressure::Fail`). A message larger than the frame limit (ours or
//!   the broker's) or breaking the protocol's topic/header limits is refused
//!   before it takes a slot.
//!
//! # Logs
//!
//! The sender logs through [`tracing`] under the target `mq_client_sender`:
//! `warn` once per lost connection and per failed reconnect round, `info`
//! once per (re)connect, `debug` per message that fails or is rejected.
//! Nothing is printed unless the application installs a subscriber, e.g.
//! `tracing_subscriber::fmt().with_env_filter("info").init()`.
//!
//! # Bounds and defaults
//!
//! | bound | default | field |
//! |---|---|---|
//! | messages in flight | 1024 | [`SenderConfig::max_in_flight`] |
//! | frame bytes in flight | 64 MiB | [`SenderConfig::max_in_flight_bytes`] |
//! | frame size | 1 MiB, or the broker's if smaller | [`SenderConfig::max_frame_size`] |
//! | reply timeout of attempt n | `retry.delay(n)`: 1 s, then 2 s, −20 % jitter | [`SenderConfig::retry`] |
//! | attempts | no count limit ([`SenderConfig::UNLIMITED_ATTEMPTS`]) | [`SenderConfig::max_attempts`] |
//! | total deadline (how long a caller may wait for an outcome) | 120 s | [`SenderConfig::send_timeout`] |
//! | reconnect delay | 100 ms ×2 up to 10 s | [`SenderConfig::reconnect`] |
//! | heartbeat | the broker's `Welcome` | [`SenderConfig::heartbeat`] |
//!
//! # Connecting: TLS, other transports, lazy connect, events
//!
//! [`Sender::connect`] connects over TCP and fails if no broker completes
//! the handshake now. [`Sender::builder`] adds [`SenderBuilder::tls`]
//! (rustls: system roots or a CA, optional client certificate),
//! [`SenderBuilder::connector`] (any [`mq_conn::Connector`], e.g. a Unix
//! socket), [`SenderBuilder::lazy_connect`] (create the sender while the
//! broker is unreachable; messages are accepted and their deadlines run)
//! and [`SenderBuilder::events`]. Connection events ([`ConnectionEvent`]:
//! connected, lost, reconnecting, refused) are a broadcast stream,
//! [`Sender::events`]. The connection layer (handshake, heartbeats,
//! reconnect rounds over the addresses with backoff) is [`mq_conn`], shared
//! with the receiver.
//!
//! # Metrics
//!
//! The sender reports through the [`metrics`](https://docs.rs/metrics)
//! facade; install any recorder (Prometheus, OpenTelemetry, ...) *before*
//! creating the sender. Without one, nothing is recorded. The counters
//! agree with [`Sender::stats`] (summed over every sender in the process).
//!
//! | name | kind | meaning | [`SenderStats`] field |
//! |---|---|---|---|
//! | `mq_sender_sent_total` | counter | messages accepted | `sent` |
//! | `mq_sender_confirmed_total` | counter | confirmed (`Stored` or `Duplicate`) | `confirmed` |
//! | `mq_sender_duplicates_total` | counter | of those, answered `Duplicate` | `duplicates` |
//! | `mq_sender_retransmitted_total` | counter | transmissions after the first | `retransmitted` |
//! | `mq_sender_failed_total` | counter | ended in an error other than `Rejected` | `failed` |
//! | `mq_sender_rejected_total` | counter | ended in `Rejected` | `rejected` |
//! | `mq_sender_reconnects_total` | counter | reconnections after a lost connection | `reconnects` |
//! | `mq_sender_in_flight` | gauge | accepted, not yet resolved | `in_flight` |
//! | `mq_sender_confirm_latency_seconds` | histogram | acceptance to confirm, per confirmed message | — |
//!
//! # Tracing spans
//!
//! Besides the logs above, the driver enters a `trace`-level span
//! `mq_send` with field `id` (the message ID) while it accepts and while
//! it resolves a message; [`Sender::send`] runs inside a `debug` span of
//! the same name.
//!
//! # Layout
//!
//! * `config.rs`: [`SenderConfig`] and its validation.
//! * `builder.rs`: [`SenderBuilder`] (transport, TLS, lazy connect, events).
//! * `message.rs`: [`OutgoingMessage`] and [`Receipt`]; `topic.rs`:
//!   [`Topic`], a topic handed over without a copy.
//! * `error.rs`: [`ConfigError`], [`SendError`], [`FlushError`], [`CloseReport`]
//!   ([`ConnectError`] comes from `mq-conn`).
//! * `inflight.rs`: the sans-IO core (one deadline per message,
//!   retransmit and failure rules), stepped with explicit instants.
//! * `slots.rs`: its table, a ring indexed by `seq - base` with a side map
//!   for IDs outside the ring (no key and no spare buckets per message).
//! * `driver/` (`mod.rs`: the loop; `finish.rs`: outcomes and shutdown),
//!   `link.rs`: the one task that owns the connection and the core;
//!   reading, coalesced writing. Dialing, heartbeats and reconnect rounds
//!   are `mq-conn`'s.
//! * `sender.rs`: [`Sender`] and [`PendingSend`].
//! * `callback.rs`: [`SendCallback`] and the callback thread.
//! * `flush.rs`, `stats.rs`, `metrics.rs`: flush barriers, [`SenderStats`],
//!   the metrics above.
//! * Tests (CONTRIBUTING.md, "Where tests live"): the core's rules in
//!   `inflight_tests.rs` and `slots_tests.rs` beside their modules (explicit
//!   instants, proptests); the driver's in `driver_tests.rs` (the duplex-pipe
//!   harness) with `driver_send_tests.rs`, `driver_lazy_tests.rs` and
//!   `driver_window_tests.rs` (paused tokio time); real TCP in `tests/`.
//!
//! # Examples
//!
//! ```no_run
//! use std::time::Duration;
//! use mq_client_sender::{OutgoingMessage, Sender, SenderConfig};
//!
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! let sender = Sender::connect(SenderConfig::new("127.0.0.1:7878")).await?;
//!
//! // Await the confirm.
//! let receipt = sender.send(OutgoingMessage::new("orders", "order 1")).await?;
//! println!("{} stored after {} attempt(s)", receipt.id, receipt.attempts);
//!
//! // Or hand over now, learn the outcome later.
//! let pending = sender.enqueue(OutgoingMessage::new("orders", "order 2")).await?;
//! // Or get a callback.
//! sender
//!     .send_with_callback(OutgoingMessage::new("orders", "order 3"), |outcome: Result<_, _>| {
//!         if let Err(e) = outcome {
//!             eprintln!("order 3: {e}");
//!         }
//!     })
//!     .await?;
//! pending.await?;
//!
//! let report = sender.close(Duration::from_secs(5)).await;
//! assert!(report.unresolved.is_empty());
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

mod builder;
mod callback;
mod completion;
mod config;
mod config_setters;
mod driver;
mod error;
mod flush;
mod inflight;
mod link;
mod message;
mod metrics;
mod sender;
mod slots;
mod stats;
mod topic;

pub use builder::SenderBuilder;
pub use callback::SendCallback;
pub use config::{Backpressure, SenderConfig};
pub use error::{CloseReport, ConfigError, FlushError, SendError};
pub use message::{OutgoingMessage, Receipt};
/// Why a sender could not connect: the one error both clients report
/// (defined in [`mq_conn`]). A [`ConfigError`] comes as
/// [`ConnectError::Config`], reachable with `downcast_ref::<ConfigError>()`.
pub use mq_conn::ConnectError;
/// Connection events ([`Sender::events`]) and TLS settings
/// ([`SenderBuilder::tls`]), from [`mq_conn`].
pub use mq_conn::{ConnectionEvent, Events, TlsConfig, TlsConfigError};
pub use mq_protocol::{Backoff, MessageId};
pub use sender::{PendingSend, Sender};
pub use stats::SenderStats;
pub use topic::Topic;

#[cfg(test)]
mod driver_tests;
