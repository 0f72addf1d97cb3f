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
/// use mq_broker::{BrokerConfig, BrokerError, Broker};
/// let bad = BrokerConfig { max_connections: 0, ..BrokerConfig::default() };
/// assert!(matches!(Broker::start(bad).await, Err(BrokerError::Config(_))));
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
    /// The data directory could not be created, opened or locked.
    #[error("data directory {}: {source}", dir.display())]
    Storage {
        /// The directory.
        dir: std::path::PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// Another broker (or another `Broker` in this process) holds the data
    /// directory. Stop it, or give this one its own `--data-dir`.
    #[error("data directory {} is in use by another broker (its LOCK file is held)", dir.display())]
    Locked {
        /// The directory.
        dir: std::path::PathBuf,
    },
    /// The journal could not be recovered (corruption before its last
    /// write, or an I/O error); the reason names the file and offset and
    /// what to do (`--repair`).
    #[error("journal in {}: {reason}", dir.display())]
    Journal {
        /// The directory.
        dir: std::path::PathBuf,
        /// What is wrong and where.
        reason: String,
    },
    /// The broker was shut down; start a new one.
    #[error("the broker has been shut down")]
    ShutDown,
}

/// [`Broker::wait_for`](crate::Broker::wait_for) timed out; carries
/// the counters as they were, to explain the failure.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), mq_broker::BrokerError> {
/// use std::time::Duration;
/// let broker = mq_broker::Broker::start(Default::default()).await?;
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
