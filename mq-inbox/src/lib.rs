//! A durable inbox: the consumer-side twin of `mq-outbox`. A handler's
//! database writes and the "processed" mark of the message commit in one
//! transaction, so a consumer crash never applies a message twice.
//!
//! Outbox + broker dedup + inbox: committed once at the producer, stored
//! once at the broker, applied once at the consumer.
//!
//! # Guarantees
//!
//! With the **transactional handler** ([`Inbox::handler`]):
//!
//! * **Applied once.** A message's business writes commit only together
//!   with its ID in the inbox tables. A redelivery of a committed ID
//!   (after a crash before the ack, a lost ack, a reconnect, or to another
//!   member of the group) is found in the inbox and acked without calling
//!   the handler.
//! * **Nothing lost.** The receiver acks only after the commit. A crash
//!   before the commit leaves no trace; the broker redelivers and the
//!   handler runs. A handler error rolls the transaction back and nacks.
//! * **Several consumers, one database.** Members of one group sharing a
//!   Postgres inbox are settled by the database, not by timing: each mark
//!   locks its producer's row in `mq_inbox_producers` until commit, so of
//!   two transactions racing on one ID the second finds it marked, rolls
//!   back its writes and acks.
//! * **Forgets, never invents.** Processed IDs are kept as exact ranges of
//!   sequences per producer (like the receiver's in-memory window), and an
//!   ID reads as processed only if a committed transaction marked it.
//!   IDs are forgotten only by the [`Retention`] rule (a range cap per
//!   producer, idle producers, a producer cap) or an explicit purge; a
//!   duplicate of a forgotten ID reaches the handler again.
//!
//! With the **non-transactional form** ([`Inbox::dedup_store`], any
//! handler): the mark is committed after the handler returns, then the
//! message is acked. A crash between the handler's effects and the mark's
//! commit makes the handler run again; see [`InboxStore`].
//!
//! What it does not promise: effects outside the transaction (an e-mail,
//! an HTTP call) are not rolled back, so such effects can repeat when a
//! transaction fails after them. Ordering is the broker's.
//!
//! # Tables
//!
//! `mq_inbox_producers` (one row per producer: last activity, number of
//! ranges; the row a mark locks), `mq_inbox_ranges` (`producer`,
//! `start_seq`, `end_seq`, inclusive, disjoint, non-adjacent) and
//! `mq_inbox_meta` (schema version, `forgotten` counter). Sequences are
//! stored order-preserving as `seq XOR 2^63` (see [`ranges::to_db_seq`]).
//! Bounds in rows and bytes: see [`Retention`].
//!
//! # Usage
//!
//! ```no_run
//! use mq_client_receiver::{Delivery, HandlerError, Receiver, ReceiverConfig};
//! use sqlx::{Sqlite, Transaction};
//!
//! # async fn f(config: ReceiverConfig) -> Result<(), Box<dyn std::error::Error>> {
//! let inbox = mq_inbox::Inbox::open("sqlite:billing.db", Default::default()).await?;
//! let handler = inbox.handler(|d: Delivery, mut tx: Transaction<'static, Sqlite>| async move {
//!     sqlx::query("INSERT INTO charges (body) VALUES ($1)")
//!         .bind(d.payload().to_vec())
//!         .execute(&mut *tx)
//!         .await
//!         .map_err(|e| HandlerError::new(e.to_string()))?; // rolled back, nacked
//!     Ok(tx) // marked, committed, then acked
//! })?;
//! let receiver = Receiver::connect(config, handler).await?;
//! # receiver.shutdown(std::time::Duration::from_secs(10)).await?; Ok(()) }
//! ```
//!
//! # Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `sqlite` | on | SQLite (sqlx's `sqlite`): `sqlite:` URLs, `SqlitePool`, `sqlx::Sqlite` transactions |
//! | `postgres` | on | PostgreSQL (sqlx's `postgres`): `postgres://` URLs, `PgPool`, `sqlx::Postgres` transactions |
//!
//! At least one database is needed (the crate refuses to compile without
//! one). A library that uses only one says so, for example
//! `mq-inbox = { version = "0.1", default-features = false, features = ["sqlite"] }`,
//! and does not compile the other. A URL of a kind left out is refused
//! with `OpenError::UnsupportedUrl`. The other default features are
//! `cli` (the `mq-inbox` binary).
//!
//! # Layout
//!
//! * [`config`]: [`InboxConfig`], [`Retention`], [`ConfigError`].
//! * `schema`: embedded migrations (`migrations/sqlite`,
//!   `migrations/postgres`) and the schema version; opening, the SQLite
//!   pragma check and applying migrations are `mq-db`'s (shared with
//!   mq-outbox).
//! * `inbox`: [`Inbox::open`], pools, counters.
//! * [`ranges`]: the range algorithm in SQL (lookup and mark).
//! * `handler`: the transactional form, [`Inbox::handler`],
//!   [`TxHandler`], [`Inbox::mark`].
//! * `store`: the non-transactional form, [`InboxStore`].
//! * `admin`: [`Inbox::stats`], [`Inbox::compact`], purges.
//! * `bin/mq-inbox.rs`: the admin command line.
#![warn(missing_docs)]

#[cfg(not(any(feature = "sqlite", feature = "postgres")))]
compile_error!(
    "mq-inbox needs a database: enable its `sqlite` or `postgres` feature (or both, the default)"
);

mod admin;
pub mod config;
mod error;
mod handler;
mod inbox;
pub mod ranges;
mod schema;
mod store;

pub use admin::{InboxStats, Purged, ROW_BYTES};
pub use config::{ConfigError, InboxConfig, Retention};
pub use error::{AdminError, InboxError, OpenError};
pub use handler::{InboxDatabase, TxHandler};
pub use inbox::{Inbox, InboxCounters, OpenTarget};
pub use ranges::Marked;
pub use schema::SCHEMA_VERSION;
pub use store::InboxStore;
