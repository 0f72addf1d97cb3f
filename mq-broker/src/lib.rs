//! The MQ broker: one protocol core (the sans-IO state machine of both
//! halves of PROTOCOL.md) served over TCP, with its storage behind a seam:
//!
//! * [`Storage::Memory`] (the default): stored messages live in RAM. Fast and
//!   deterministic, with fault injection and inspection: what
//!   `mq-mock-broker` re-exports for tests, examples and local development.
//! * [`Storage::Disk`]: a journal in a data directory. `Stored` means the
//!   message's record is on stable storage (fdatasync), and the broker
//!   recovers everything after a crash or restart. This is what the
//!   `mq-broker` binary runs: `mq-broker --data-dir /var/lib/mq`.
//! * [`Gateway`] (feature `jetstream`, on by default): no storage of its
//!   own; a stateless gateway on a NATS JetStream cluster, started with
//!   [`Gateway::start`] or `mq-broker --backend jetstream --nats URL,...`.
//!   Its mapping onto JetStream and every difference from the single node
//!   are in the `jetstream` module's docs (`src/jetstream/mod.rs`) and
//!   PROTOCOL.md §11.
//!
//! Start it inside a test on `127.0.0.1:0` ([`Broker::start`]), without any
//! socket for paused-time tests ([`Broker::start_in_memory`] and
//! [`Broker::connect_duplex`]), or run a binary.
//!
//! # Durability (disk storage)
//!
//! * **Stored means on disk.** `Reply(Stored)` is sent only after the
//!   message's record is covered by an fdatasync of the journal (and, for a
//!   new segment file, an fsync of the directory). A `Duplicate` for an
//!   original not yet durable waits for it too. A message is delivered to a
//!   group only once durable.
//! * **Group commit.** One writer thread takes every record appended since
//!   its last write, writes them with one `write` and one fdatasync, and
//!   releases the batch's replies and deliveries together; under load many
//!   messages share one fdatasync. A failed write (a full disk) answers new
//!   messages `STORE_FULL` (transient) and retries; a failed fdatasync stops
//!   the broker ([`Broker::fatal_error`]): the kernel may have dropped the
//!   pages, so nothing more may be reported durable.
//! * **Acks, deliveries, dead letters and group creations are journaled**
//!   without waiting for the disk: losing one in a crash costs a
//!   redelivery, never a message.
//! * **Recovery** replays the newest complete checkpoint and the records
//!   after it through the same core code: stored messages, each group's
//!   acked set and delivery counts, dead letters and the dedup ranges come
//!   back (a retransmission of an ID stored before the restart is still
//!   answered `Duplicate`). Deliveries outstanding or waiting for a nack
//!   delay at the crash are ready again at once, their delivery counts kept.
//!   Every record has a CRC-32; a torn last write is cut at the last good
//!   record; damage to data that was synced refuses to start, naming the
//!   file and offset, unless [`DiskStorage::repair`] is set.
//! * **Space.** Checkpoints write the live state into a new segment and
//!   delete the older ones, once the log since the last checkpoint outgrew
//!   the live state or the journal holds more than twice the live state
//!   plus a segment. [`DiskStorage::max_disk_bytes`] refuses new messages
//!   (`STORE_FULL`) past a hard limit. Stored messages are also kept in RAM
//!   (bounded by `max_stored_bytes`): the disk is for durability, reads
//!   never touch it.
//! * **One broker per directory**: a lock on `DIR/LOCK`
//!   ([`BrokerError::Locked`]).
//!
//! The journal's format and the reasoning behind each rule are in the
//! `journal` module's source (`src/journal/`).
//!
//! # What it guarantees
//!
//! * **Land before reply.** `Reply { Stored }` is sent only after the message
//!   is in the store (visible to [`Broker::inspect`]) and, with disk
//!   storage, durable.
//! * **A stored message is never overwritten.** A `Message` whose ID is
//!   still stored is answered `Duplicate`, even if dedup forgot the ID.
//! * **Retransmits are not stored twice.** A `Message` whose ID was already
//!   landed is answered `Duplicate` (the original outcome) and not stored
//!   again, even after it was acked and deleted: dedup memory outlives the
//!   message. Rejected messages are not remembered, so a retransmit is
//!   judged afresh.
//! * **At-least-once delivery.** A message is delivered to every consumer
//!   group of its topic and redelivered with exponential backoff until the
//!   group acks it, or dead-lettered after `max_deliveries`. It is deleted
//!   only once every group acked (or dead-lettered) it.
//! * **Never dropped silently.** Past a limit a new message is rejected with
//!   a code (`STORE_FULL`, transient; `MESSAGE_TOO_LARGE`, `INVALID_TOPIC`,
//!   `INVALID_HEADERS`, permanent; the connection stays open). Unparseable
//!   input closes only the offending connection, with a `Close` frame
//!   carrying the reason.
//!
//! # What it does not
//!
//! * **In memory, a process exit loses everything.** [`Broker::restart`]
//!   with [`RestartMode::KeepStore`] simulates a durable broker's restart
//!   (with disk storage it really recovers from the journal);
//!   [`RestartMode::LoseStore`] one that lost its disk.
//! * **Duplicates reach receivers.** A delivery is repeated when its ack is
//!   lost or late, when its receiver disconnects before acking, and when
//!   dedup forgot an ID (below). Receivers must dedupe by message ID.
//! * **No ordering promise** across redeliveries, members of a group, or
//!   delay faults. Within a group, first deliveries go out in landing order;
//!   a message coming back (timeout, nack, disconnect) goes to the front.
//!
//! # Consumer groups
//!
//! A group is created by its first `Subscribe` naming `(topic, group)` and
//! lives until a `LoseStore` restart. A new group receives every message
//! still stored on its topic, then every later one: a message published
//! before anyone subscribed is kept until a group takes and acks it (it is
//! never lost for lack of subscribers). Members of one group share its
//! messages round robin among those with credit; every group gets every
//! message. Each `Deliver` uses one credit of its subscription; `Credit`
//! adds (saturating). Unacked deliveries of a closed connection go back to
//! the front of their group's queue at once.
//!
//! Redelivery: delivery attempt `n` unacked is put back at the front of the
//! ready queue `redelivery.delay(n)` after it was sent (jitter from the
//! seeded RNG) and delivered again with `delivery_attempt = n + 1`. A `Nack`
//! puts it back after `delay_ms`, or after `redelivery.delay(n)` when
//! `delay_ms` is 0. A message whose delivery ends unacked after
//! `max_deliveries` deliveries goes to the dead-letter list instead.
//! Acks of IDs not outstanding with that subscription are ignored and
//! counted (`acks_ignored`).
//!
//! # TLS
//!
//! `BrokerConfig::tls` adds a TLS listener ([`TlsConfig`]: certificate
//! chain and key from PEM, an optional client CA for mutual TLS, its own
//! address, and TLS-only mode without the plaintext listener). Read its
//! address back with [`Broker::tls_addr`]. Each connection's TLS handshake
//! runs in that connection's task within `handshake_timeout`; a failed one
//! closes that connection only and is counted
//! (`BrokerStats::tls_handshake_failures`). rustls with the `ring`
//! provider, TLS 1.2 and 1.3, no ALPN (PROTOCOL.md §2.2a).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use mq_broker::{Broker, BrokerConfig, TlsConfig};
//!
//! // A self-signed certificate for the test (rcgen); real ones come from
//! // files: TlsConfig::from_pem_files("server.pem", "server.key", None).
//! let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])?;
//! let tls = TlsConfig::from_pem(
//!     cert.cert.pem().as_bytes(),
//!     cert.signing_key.serialize_pem().as_bytes(),
//!     None, // or Some(client_ca_pem) for mutual TLS
//! )?
//! .tls_only(true);
//! let broker = Broker::start(BrokerConfig { tls: Some(tls), ..Default::default() }).await?;
//! assert_eq!(broker.tls_addr(), Some(broker.addr())); // TLS only
//! broker.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # Bounds
//!
//! Every bound is a field of [`BrokerConfig`]:
//!
//! * `max_connections`: a `Hello` past it gets `Refuse { TOO_MANY_CONNECTIONS }`
//!   (a TCP connection is accepted long enough to read its `Hello`, at most
//!   `handshake_timeout`).
//! * `max_frame_size`: a larger length prefix closes the connection with
//!   `FRAME_TOO_LARGE` before anything is allocated.
//! * `max_message_size`, `max_stored_messages`, `max_stored_bytes`: rejections
//!   as above.
//! * `dedup_max_producers`, `dedup_max_ranges_per_producer`: dedup remembers
//!   landed sequences exactly, as ranges per producer. Past a bound it
//!   *forgets* (the least recently used producer, or a producer's lowest
//!   range); a retransmit of a forgotten ID is then stored a second time (a
//!   duplicate, never a loss). It never claims an ID it did not land.
//! * `max_dead_letters`, `max_acked_ids_per_group`: how much history
//!   [`Broker::inspect`] keeps; the counters stay exact.
//! * `max_output_bytes`: frames queued for one connection. When full the
//!   broker stops reading from it and delivers nothing to it until it
//!   drained below half (PROTOCOL.md §7.1); a connection whose writes make
//!   no progress for three heartbeat intervals (30 s with heartbeats off) is
//!   dropped.
//! * `max_subscriptions_per_connection`, `max_groups_per_topic`,
//!   `max_topics`: past them a `Subscribe` gets `SubscribeError(LIMIT_REACHED)`.
//! * `max_nack_delay`: a longer `Nack.delay_ms` waits this long.
//! * Message-level limits (topic, headers, size) answer `Rejected` with a
//!   permanent code and keep the connection; only bytes that cannot be
//!   parsed close it.
//! * Timers: redelivery and nack deadlines fire at most 1 ms late, never
//!   early; one timer task serves them all.
//!
//! # Faults
//!
//! [`Faults`] drop, duplicate or delay data frames in either direction, drop
//! only the replies to landed messages (the seed's "network flash"), or cut
//! connections after N frames or at random, per connection role, all from
//! one RNG seeded by `BrokerConfig::seed` (printed at start; read it back
//! with [`Broker::seed`]). [`Broker::crash`] closes every connection
//! at once. Faults can be changed at run time with [`Broker::set_faults`].
//!
//! # Layout
//!
//! * `config`: [`BrokerConfig`], [`Faults`] and validation.
//! * `dedup`: the bounded, exact per-producer range table.
//! * `store`: landed messages, limits and the landing log.
//! * `groups`: per-group queues, pending states and subscriptions.
//! * `core`: the sans-IO state machine of both halves (`core/deliver.rs`
//!   is the second half; `core/persist.rs` replays and checkpoints it),
//!   stepped with an explicit `now`.
//! * `journal`: the disk storage: record format, segments on a `Disk`
//!   (the real one, or a simulated one for power-loss tests), the
//!   group-commit writer thread. `durable`: wiring it into a broker.
//! * `timers`: the one timer queue (millisecond buckets) of redeliveries.
//! * internal maps use `mq_protocol::hash::FastMap` (aHash with random keys).
//! * `faults`: fault decisions; `state`: core plus writers plus faults under
//!   one lock.
//! * `conn`: one connection's handshake, reader and writer.
//! * `tls`: [`TlsConfig`] and the per-connection TLS handshake.
//! * `server`: [`Broker`], the accept loop and the timer task.
//! * `inspect`, `stats`: what tests can look at.
//!
//! # Examples
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use futures::{SinkExt, StreamExt};
//! use mq_broker::{BrokerConfig, Broker};
//! use mq_protocol::{Codec, Frame, Hello, Message, MessageId, ReplyStatus, Role};
//! use tokio_util::codec::Framed;
//!
//! let broker = Broker::start(BrokerConfig::default()).await?;
//! let tcp = tokio::net::TcpStream::connect(broker.addr()).await?;
//! let mut conn = Framed::new(tcp, Codec::default());
//! conn.send(Frame::Hello(Hello::new(Role::Sender, "doc"))).await?;
//! assert!(matches!(conn.next().await, Some(Ok(Frame::Welcome(_)))));
//!
//! let id = MessageId::new(1, 1);
//! let msg = Message { id, attempt: 1, topic: "orders".into(),
//!                     headers: Default::default(), payload: "hi".into() };
//! conn.send(Frame::Message(msg)).await?;
//! match conn.next().await {
//!     Some(Ok(Frame::Reply(r))) => assert_eq!(r.status, ReplyStatus::Stored),
//!     other => panic!("unexpected {other:?}"),
//! }
//! assert!(broker.inspect().is_stored(id));
//! broker.shutdown().await;
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

#[cfg(feature = "admin")]
pub mod admin;
mod config;
mod conn;
mod core;
mod dedup;
mod disk_check;
mod durable;
mod error;
mod faults;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
mod groups;
mod idle;
mod inspect;
#[cfg(feature = "jetstream")]
mod jetstream;
mod journal;
mod limits;
#[doc(hidden)]
pub mod probe;
#[cfg(feature = "signals")]
#[doc(hidden)]
pub mod process;
mod server;
mod state;
mod stats;
mod store;
mod timers;
mod tls;
mod topic;
mod views;

pub use config::{
    BrokerConfig, ConfigError, DirectionFaults, DiskStorage, Faults, RoleFilter, Storage,
};
pub use disk_check::{check_disk, DiskCheck, DiskCheckError, DiskCheckReport};
pub use error::{BrokerError, WaitTimeout};
pub use inspect::{DeadLetter, GroupInfo, Inspection, StoredInfo, SubscriptionInfo};
#[cfg(feature = "jetstream")]
pub use jetstream::{Gateway, GatewayError, GatewayStats, JetStreamConfig};
pub use server::{Broker, RestartMode};
pub use stats::BrokerStats;
pub use tls::TlsConfig;
pub use views::{
    DeadLetterError, DeadLetterView, GroupView, MemberView, Overview, ProducerView, TopicSummary,
    TopicView, PREVIEW_BYTES,
};
