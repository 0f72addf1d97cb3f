//! Errors of starting, restarting and waiting on a broker.

use std::net::SocketAddr;
use std::time::Duration;

use crate::{BrokerStats, ConfigError};

/// Why the broker could not start or restart.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use mq_mock_broker::{BrokerConfig, BrokerError, MockBroker};
/// let bad = BrokerConfig { max_connections: 0, ..BrokerConfig::default() };
/// assert!(matches!(MockBroker::start(bad).await, Err(BrokerError::Config(_))));
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// The configuration is invalid; the inner error names the field to fix.
    #[error("invalid broker configuration: {0}")]
    Config(#[from] ConfigError),
    /// The listen address could not be bound (in use, no permission, or, on
    /// restart, taken by someone else meanwhile). Pick another address.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The broker was shut down; start a new one.
    #[error("the broker has been shut down")]
    ShutDown,
}

/// [`MockBroker::wait_for`](crate::MockBroker::wait_for) timed out; carries
/// the counters as they were, to explain the failure.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), mq_mock_broker::BrokerError> {
/// use std::time::Duration;
/// let broker = mq_mock_broker::MockBroker::start(Default::default()).await?;
/// let err = broker.wait_for(Duration::from_millis(1), |s| s.messages_stored > 0).await.unwrap_err();
/// assert_eq!(err.last.messages_stored, 0);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[error("condition not met within {waited:?}; last stats: {last:?}")]
#[non_exhaustive]
pub struct WaitTimeout {
    /// How long was waited.
    pub waited: Duration,
    /// The counters at the deadline.
    pub last: BrokerStats,
}
