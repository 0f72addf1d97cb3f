//! [`OutboxConfig`]: leases, attempts, backoff, batching and retention.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use mq_protocol::{Backoff, BackoffError};

use crate::admin::FailedRow;

/// The alert called once for every row that becomes failed (status 2).
///
/// It runs on the dispatcher's task right after the row was moved to the
/// failure table, so it should be quick (log, bump a metric, send to a
/// channel) and must not block.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// let alert: mq_outbox::OnFailed = Arc::new(|row: mq_outbox::FailedRow| {
///     eprintln!("outbox row {} failed: {:?}", row.seq, row.last_error);
/// });
/// # let _ = alert;
/// ```
pub type OnFailed = Arc<dyn Fn(FailedRow) + Send + Sync>;

/// What happens to a row once the broker confirmed it.
///
/// # Examples
///
/// ```
/// let mut config = mq_outbox::OutboxConfig::default();
/// config.retention = mq_outbox::Retention::Delete;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Retention {
    /// Keep the row with status 1 (confirmed); remove old ones with
    /// [`Outbox::purge_confirmed`](crate::Outbox::purge_confirmed).
    #[default]
    Keep,
    /// Delete the row as soon as it is confirmed. Sequence numbers are still
    /// never reused (SQLite `AUTOINCREMENT`, Postgres `BIGSERIAL`).
    Delete,
}

/// Settings of an [`Outbox`](crate::Outbox) and its dispatcher.
///
/// Build it from [`Default`] and change fields; [`OutboxConfig::validate`] is
/// called by [`Outbox::open`](crate::Outbox::open).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let mut config = mq_outbox::OutboxConfig::default();
/// config.lease = Duration::from_secs(10);
/// config.max_attempts = 3;
/// assert!(config.validate().is_ok());
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct OutboxConfig {
    /// How long a claim on a row lasts (default 30 s). While a row is
    /// claimed no other dispatcher (in this or another process) sends it;
    /// one attempt is abandoned after 90 % of the lease so that it has
    /// ended before the claim expires. Set it well above the broker's
    /// confirm latency and above the clock skew between hosts.
    pub lease: Duration,
    /// Attempts before a row becomes failed (status 2). Default 5.
    pub max_attempts: u32,
    /// Delay between a failed attempt and the next one, growing with the
    /// attempt number. Default 1 s doubling up to 5 min, 20 % jitter.
    pub backoff: Backoff,
    /// Rows claimed per database round trip. Default 100.
    pub batch_size: u32,
    /// Attempts awaiting a confirm at once, per dispatcher. Default 1000.
    pub max_in_flight: usize,
    /// How often the dispatcher looks for due rows when nothing wakes it
    /// (rows enqueued by other processes, expired leases). Default 1 s.
    pub poll_interval: Duration,
    /// What to do with confirmed rows. Default [`Retention::Keep`].
    pub retention: Retention,
    /// Largest message accepted by `enqueue`, counted like a protocol
    /// `Message` frame (topic, headers, payload and fixed overhead).
    /// Default [`mq_protocol::DEFAULT_MAX_FRAME_SIZE`].
    pub max_message_bytes: usize,
    /// SQLite only: how long a writer waits for the database lock. Default 5 s.
    pub busy_timeout: Duration,
    /// Connections of the pool `Outbox::open` creates from a URL. Default 8.
    pub max_connections: u32,
    /// Seed of the backoff jitter; `None` draws one from the OS.
    pub rng_seed: Option<u64>,
    /// Called for every row that becomes failed. Default: none (failed rows
    /// are still logged with `tracing::error!`).
    pub on_failed: Option<OnFailed>,
    /// Who this process is, for leases: a name that stays the same across
    /// restarts of this producer and is used by no other process running a
    /// dispatcher on the same database at the same time (a host name, a
    /// StatefulSet pod name). It is stored with every claim, so a
    /// dispatcher starting under the same name takes back the rows its
    /// previous run (which is dead: the name is unique among live
    /// processes) had claimed, at once, instead of waiting up to `lease`.
    ///
    /// Default `None`: on SQLite the database file is taken to have a
    /// single producer process (the supported SQLite setup), so leases
    /// from an earlier run are always taken back; if several processes
    /// dispatch from one SQLite file, give each its own `owner`. On
    /// Postgres, `None` means leases cannot be told apart: rows claimed by
    /// a crashed run wait for their lease to expire (logged at start).
    pub owner: Option<String>,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(30),
            max_attempts: 5,
            backoff: Backoff {
                initial: Duration::from_secs(1),
                multiplier: 2.0,
                max: Duration::from_secs(300),
                jitter: 0.2,
            },
            batch_size: 100,
            max_in_flight: 1000,
            poll_interval: Duration::from_secs(1),
            retention: Retention::Keep,
            max_message_bytes: mq_protocol::DEFAULT_MAX_FRAME_SIZE as usize,
            busy_timeout: Duration::from_secs(5),
            max_connections: 8,
            rng_seed: None,
            on_failed: None,
            owner: None,
        }
    }
}

impl fmt::Debug for OutboxConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboxConfig")
            .field("lease", &self.lease)
            .field("max_attempts", &self.max_attempts)
            .field("backoff", &self.backoff)
            .field("batch_size", &self.batch_size)
            .field("max_in_flight", &self.max_in_flight)
            .field("poll_interval", &self.poll_interval)
            .field("retention", &self.retention)
            .field("max_message_bytes", &self.max_message_bytes)
            .field("busy_timeout", &self.busy_timeout)
            .field("max_connections", &self.max_connections)
            .field("rng_seed", &self.rng_seed)
            .field("owner", &self.owner)
            .field(
                "on_failed",
                &self.on_failed.as_ref().map(|_| "Fn(FailedRow)"),
            )
            .finish()
    }
}

impl OutboxConfig {
    /// Sets [`OutboxConfig::on_failed`].
    ///
    /// # Examples
    ///
    /// ```
    /// let config = mq_outbox::OutboxConfig::default()
    ///     .with_on_failed(|row| eprintln!("failed: {}", row.id));
    /// assert!(config.on_failed.is_some());
    /// ```
    pub fn with_on_failed(mut self, f: impl Fn(FailedRow) + Send + Sync + 'static) -> Self {
        self.on_failed = Some(Arc::new(f));
        self
    }

    /// Checks every field.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the field to change.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut config = mq_outbox::OutboxConfig::default();
    /// config.max_attempts = 0;
    /// assert!(matches!(config.validate(), Err(mq_outbox::ConfigError::ZeroMaxAttempts)));
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.lease < Duration::from_millis(10) {
            return Err(ConfigError::LeaseTooShort(self.lease));
        }
        if self.lease > Duration::from_secs(86_400 * 365) {
            return Err(ConfigError::LeaseTooLong(self.lease));
        }
        if self.max_attempts == 0 {
            return Err(ConfigError::ZeroMaxAttempts);
        }
        self.backoff.validate().map_err(ConfigError::Backoff)?;
        if self.batch_size == 0 {
            return Err(ConfigError::Zero("batch_size"));
        }
        if self.max_in_flight == 0 {
            return Err(ConfigError::Zero("max_in_flight"));
        }
        if self.poll_interval.is_zero() {
            return Err(ConfigError::Zero("poll_interval"));
        }
        if self.max_connections == 0 {
            return Err(ConfigError::Zero("max_connections"));
        }
        if self.max_message_bytes <= mq_protocol::MESSAGE_OVERHEAD {
            return Err(ConfigError::Zero("max_message_bytes"));
        }
        if let Some(owner) = &self.owner {
            if owner.is_empty() || owner.len() > MAX_OWNER_LEN {
                return Err(ConfigError::BadOwner(owner.len()));
            }
        }
        Ok(())
    }

    /// How long one attempt may wait for its confirm: 90 % of the lease.
    pub(crate) fn attempt_timeout(&self) -> Duration {
        self.lease.mul_f64(0.9)
    }
}

/// An [`OutboxConfig`] field holds a value the outbox cannot work with.
///
/// # Examples
///
/// ```
/// let mut config = mq_outbox::OutboxConfig::default();
/// config.batch_size = 0;
/// assert_eq!(config.validate().unwrap_err().to_string(),
///            "outbox config: batch_size must be greater than zero");
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `lease` is below 10 ms; raise it above the broker's confirm latency.
    #[error("outbox config: lease {0:?} is too short (minimum 10 ms)")]
    LeaseTooShort(Duration),
    /// `lease` is above one year; nobody would ever retry the row.
    #[error("outbox config: lease {0:?} is too long (maximum one year)")]
    LeaseTooLong(Duration),
    /// `max_attempts` is zero; a row needs at least one attempt.
    #[error("outbox config: max_attempts must be at least 1")]
    ZeroMaxAttempts,
    /// `backoff` is not a valid schedule; see the inner error.
    #[error("outbox config: backoff: {0}")]
    Backoff(#[source] BackoffError),
    /// The named field must be greater than zero.
    #[error("outbox config: {0} must be greater than zero")]
    Zero(&'static str),
    /// `owner` is empty or longer than 255 bytes; use a host or pod name.
    #[error("outbox config: owner is {0} bytes; use 1 to 255 bytes (e.g. the host name)")]
    BadOwner(usize),
}

/// Longest [`OutboxConfig::owner`] accepted.
const MAX_OWNER_LEN: usize = 255;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_bad_fields_are_named() {
        assert!(OutboxConfig::default().validate().is_ok());
        let c = OutboxConfig {
            lease: Duration::from_millis(1),
            ..Default::default()
        };
        assert!(matches!(c.validate(), Err(ConfigError::LeaseTooShort(_))));
        let mut c = OutboxConfig::default();
        c.backoff.jitter = 3.0;
        assert!(matches!(c.validate(), Err(ConfigError::Backoff(_))));
        let c = OutboxConfig {
            poll_interval: Duration::ZERO,
            ..Default::default()
        };
        assert_eq!(c.validate(), Err(ConfigError::Zero("poll_interval")));
        let c = OutboxConfig {
            owner: Some(String::new()),
            ..Default::default()
        };
        assert_eq!(c.validate(), Err(ConfigError::BadOwner(0)));
    }

    #[test]
    fn attempt_ends_before_lease() {
        let c = OutboxConfig::default();
        assert!(c.attempt_timeout() < c.lease);
    }
}
