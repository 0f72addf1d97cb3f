//! A durable outbox: messages are written to a database table in the same
//! transaction as the business data they describe, then sent to the broker
//! by a dispatcher that survives crashes and restarts.
//!
//! # Guarantees
//!
//! * **A committed row is sent at least once until it is confirmed or
//!   marked failed.** A row enqueued in a transaction that commits is
//!   pending (status 0) until the broker confirms it (status 1) or it runs
//!   out of attempts or is rejected permanently (status 2, copied to the
//!   failure table `mq_outbox_failed`, the `on_failed` alert is called, and
//!   a person can requeue it). A process crash at any point only delays it:
//!   the restarted process takes back its previous run's claims (leases)
//!   at once where it can tell they are its own (always for the single
//!   producer of an SQLite file; on Postgres when
//!   [`OutboxConfig::owner`] is set), and otherwise any dispatcher re-sends
//!   the row when its lease expires (logged at start, with when).
//! * **A sender `Timeout` means "sent later".** The sender gives up on a
//!   message after its `send_timeout` (capped at 80 % of the lease by
//!   [`connect_sender`]); the row stays pending and is sent again after
//!   `backoff`, under the same message ID, so the broker answers
//!   `Duplicate` if the first copy was stored.
//! * **A rolled-back transaction sends nothing.** The row is part of the
//!   caller's transaction; dispatchers only see committed rows.
//! * **A row is never sent by two dispatchers at once**, in one process or
//!   several sharing a Postgres table: a dispatcher claims rows in a short
//!   transaction (`FOR UPDATE SKIP LOCKED` on Postgres, `BEGIN IMMEDIATE`
//!   on SQLite) by setting a lease (`next_attempt_at = now + lease`), and
//!   abandons its attempt after 90 % of the lease. No lock is held while
//!   waiting for the broker. Hosts sharing a database need synchronised
//!   clocks (the lease is wall-clock time); keep the lease far above the skew.
//! * **Duplicates at the broker are avoided by reusing the message ID.**
//!   Every row's [`MessageId`](mq_protocol::MessageId) is the outbox's
//!   stable producer id (drawn once, stored in `mq_outbox_meta`) plus the
//!   row's sequence, which is never reused. A re-send after a crash or a lost
//!   confirm carries the same ID and the broker answers "Duplicate" instead
//!   of storing it twice. Consumers should still be idempotent (the
//!   receiver dedupes by ID too).
//!
//! What it does not promise: ordering between rows (retries may overtake),
//! or delivery of rows nobody requeues after they failed.
//!
//! # Timing
//!
//! A claim sets `attempts = attempts + 1` (counted at claim time, so an
//! attempt cut short by a crash still counts) and `next_attempt_at = now +
//! lease`. When an attempt ends without a confirm, the row is due again
//! after `backoff.delay(attempts)` (exponential, with jitter); when its
//! dispatcher died, after the lease. A row whose `max_attempts`-th attempt
//! failed (or whose last lease expired) becomes failed. New rows are
//! claimable at once; [`Outbox::notify`] wakes this process's dispatcher,
//! other processes find them within `poll_interval`.
//!
//! # Bounds and timings
//!
//! | what | default | field |
//! |---|---|---|
//! | claim (lease) on a row | 30 s; one attempt is abandoned after 90 % of it | [`OutboxConfig::lease`] |
//! | attempts before a row fails (status 2) | 5 | [`OutboxConfig::max_attempts`] |
//! | delay after a failed attempt | 1 s ×2 up to 5 min, −20 % jitter | [`OutboxConfig::backoff`] |
//! | rows claimed per round trip | 100 | [`OutboxConfig::batch_size`] |
//! | attempts awaiting a confirm, per dispatcher | 1000 | [`OutboxConfig::max_in_flight`] |
//! | look for due rows without a notify | every 1 s | [`OutboxConfig::poll_interval`] |
//! | message size | 1 MiB (frame size) | [`OutboxConfig::max_message_bytes`] |
//! | SQLite lock wait | 5 s | [`OutboxConfig::busy_timeout`] |
//! | pool connections | 8 | [`OutboxConfig::max_connections`] |
//! | restart of the same producer | leases of its previous run taken back at once (SQLite: always; Postgres: with `owner`) | [`OutboxConfig::owner`] |
//!
//! # Logs
//!
//! Through [`tracing`], target `mq_outbox`: `info` at dispatcher start for
//! leases taken back and for rows waiting on someone else's lease; `warn`
//! for database errors (retried); `error` for every row that becomes
//! failed; `debug` per failed attempt.
//!
//! # Tables
//!
//! `mq_outbox` (the rows, status 0/1/2, and who holds each live lease:
//! `lease_owner`, `lease_instance`), `mq_outbox_failed` (copies of
//! failed rows with `last_error` and `failed_at`) and `mq_outbox_meta`
//! (schema version, producer id). Several independent outboxes in one
//! Postgres database need separate schemas (`search_path`).
//!
//! **Restoring a backup** rewinds the row sequence, so new rows would reuse
//! IDs the broker already holds and be answered "Duplicate" (dropped).
//! After a restore, delete the `producer_id` row of `mq_outbox_meta`
//! before the next open: a new producer id is drawn and pending rows are
//! re-sent under new IDs (consumers may then see duplicates, never losses).
//!
//! # Without the outbox
//!
//! A plain `send` after (or before) a database commit loses messages when
//! the process dies between the two: commit then crash before `send` and
//! the business change happened but no message is ever sent; `send` then a
//! failed commit and a message describes a change that never happened.
//! The sender's own retries live in memory and die with the process.
//!
//! # Usage
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use mq_outbox::{Outbox, OutboxConfig};
//! use mq_client_sender::SenderConfig;
//!
//! let outbox = Outbox::open("sqlite:orders.db", OutboxConfig::default()).await?;
//! let sender = mq_outbox::connect_sender(&outbox, SenderConfig::new("127.0.0.1:7878")).await?;
//! let dispatcher = outbox.dispatcher(sender).spawn();
//!
//! let pool = outbox.sqlite_pool().ok_or("not sqlite")?.clone();
//! let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
//! sqlx::query("INSERT INTO orders (id) VALUES (42)").execute(&mut *tx).await?;
//! outbox.enqueue(&mut tx, "orders.created", "order 42").await?;
//! tx.commit().await?;
//! outbox.notify(); // send now rather than at the next poll
//!
//! dispatcher.shutdown().await;
//! # Ok(()) }
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
//! `mq-outbox = { version = "0.1", default-features = false, features = ["sqlite"] }`,
//! and does not compile the other. A URL of a kind left out is refused
//! with `OpenError::UnsupportedUrl`. The other default features are
//! `cli` (the `mq-outbox` binary) and `web` (its `serve` page).
//!
//! # Layout
//!
//! * [`config`]: [`OutboxConfig`], [`Retention`], [`ConfigError`].
//! * `schema`: embedded migrations (`migrations/sqlite`, `migrations/postgres`),
//!   the schema version and the producer id; opening, the SQLite pragma
//!   check and applying migrations are `mq-db`'s (shared with mq-inbox).
//! * `outbox`: [`Outbox::open`], [`Outbox::notify`].
//! * `enqueue`: [`Outbox::enqueue`] inside the caller's transaction.
//! * `dispatcher`: [`Dispatch`], [`Dispatcher`], [`DispatcherHandle`].
//! * `sweeper`: claims of due rows, exhausted rows to the failure table.
//! * `admin`: [`Outbox::list_failed`], [`Outbox::requeue`],
//!   [`Outbox::purge_confirmed`], [`Outbox::stats`], [`Outbox::wait_for`].
//! * `sender`: [`Dispatch`] for `mq_client_sender::Sender`.
//! * [`web`] (feature `web`): the failed rows in a browser, on
//!   `mq-admin-web` (the broker's admin pages' shared parts).
//! * `bin/mq-outbox.rs`: the admin command line.
//!
//! # Why sqlx
//!
//! One async API for SQLite and Postgres with typed transactions the caller
//! already uses for business data, and migrations embedded in the binary.
#![warn(missing_docs)]

#[cfg(not(any(feature = "sqlite", feature = "postgres")))]
compile_error!(
    "mq-outbox needs a database: enable its `sqlite` or `postgres` feature (or both, the default)"
);

mod admin;
pub mod config;
mod dispatcher;
mod enqueue;
mod error;
mod outbox;
mod schema;
mod sender;
mod sweeper;
#[cfg(feature = "web")]
pub mod web;

pub use admin::{FailedRow, OutboxStats};
pub use config::{ConfigError, OnFailed, OutboxConfig, Retention};
pub use dispatcher::{Dispatch, Dispatcher, DispatcherHandle};
pub use enqueue::OutboxDatabase;
pub use error::{AdminError, DispatchError, EnqueueError, OpenError};
pub use outbox::{OpenTarget, Outbox};
pub use schema::SCHEMA_VERSION;
pub use sender::connect_sender;
/// The `sqlx` this crate is built with (0.8, features `runtime-tokio`,
/// and the `sqlite` / `postgres` features this crate was built with), so that the transactions you pass to
/// [`Outbox::enqueue`] are of the same `sqlx`. Use it as `mq_outbox::sqlx`,
/// or depend on `sqlx = { version = "0.8", default-features = false,
/// features = ["runtime-tokio", "sqlite"] }` (add `"postgres"` for
/// Postgres) yourself; a different `sqlx` major version does not work.
///
/// # Examples
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use mq_outbox::sqlx;
/// let outbox = mq_outbox::Outbox::open("sqlite::memory:", Default::default()).await?;
/// let pool: &sqlx::SqlitePool = outbox.sqlite_pool().ok_or("not sqlite")?;
/// let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
/// outbox.enqueue(&mut tx, "orders", "order 1").await?;
/// tx.commit().await?;
/// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
/// ```
pub use sqlx;
