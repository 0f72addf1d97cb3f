//! The MQ broker in memory, for tests, examples and local development: the
//! same broker as [`mq_broker`] (one protocol core, one server), with its
//! storage in RAM, its fault injection and its inspection API.
//!
//! Everything here is a re-export: [`MockBroker`] *is* [`mq_broker::Broker`]
//! started with [`Storage::Memory`] (the default
//! of [`BrokerConfig`]). There is no second broker to drift from the real
//! one; the production binary `mq-broker --data-dir DIR` runs the same code
//! with its journal on disk.
//!
//! # What "stored" means here
//!
//! In RAM: a process exit loses everything. [`MockBroker::restart`] with
//! [`RestartMode::KeepStore`] simulates a durable broker's restart;
//! [`RestartMode::LoseStore`] one that lost its disk. Use `mq-broker` for
//! messages that must survive the process.
//!
//! Fault injection ([`Faults`]), inspection ([`MockBroker::inspect`],
//! [`MockBroker::wait_for`]) and paused-time use
//! ([`MockBroker::start_in_memory`]) are documented on [`mq_broker`].
//!
//! # Examples
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), mq_mock_broker::BrokerError> {
//! use mq_mock_broker::{BrokerConfig, Faults, MockBroker};
//!
//! let broker = MockBroker::start(BrokerConfig {
//!     faults: Faults::none().drop_reply_after_store(0.1),
//!     seed: Some(42),
//!     ..BrokerConfig::default()
//! })
//! .await?;
//! println!("broker on {}", broker.addr());
//! broker.shutdown().await;
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

pub use mq_broker::{
    BrokerConfig, BrokerError, BrokerStats, ConfigError, DeadLetter, DirectionFaults, DiskStorage,
    Faults, GroupInfo, Inspection, RestartMode, RoleFilter, Storage, StoredInfo, SubscriptionInfo,
    TlsConfig, WaitTimeout,
};

/// The in-memory broker: [`mq_broker::Broker`] under the name tests and
/// examples know it by.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), mq_mock_broker::BrokerError> {
/// let broker = mq_mock_broker::MockBroker::start(Default::default()).await?;
/// assert_eq!(broker.stats().connections_open, 0);
/// # Ok(()) }
/// ```
pub type MockBroker = mq_broker::Broker;
