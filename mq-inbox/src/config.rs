//! [`InboxConfig`] and the [`Retention`] rule: the only ways the inbox
//! forgets a processed ID.

use std::time::Duration;

/// When the inbox forgets processed IDs. Forgetting is safe (a later
/// duplicate of a forgotten ID reaches the handler again); inventing is
/// not, and no rule here ever makes an unprocessed ID read as processed:
/// each removes whole ranges or whole producers, never merges across a gap.
///
/// # Bounds
///
/// * Rows of `mq_inbox_ranges` per producer: at most
///   `max_ranges_per_producer`, enforced in every mark (the producer's
///   lowest range is deleted, as in the receiver's in-memory window). A
///   producer whose messages are all handled is one row whatever its
///   volume; each gap (a sequence handled by no one here yet, or skipped)
///   costs one more row.
/// * Producers: at most `max_producers` after each [`Inbox::compact`]
///   (the least recently active are deleted), and none idle longer than
///   `idle_expiry`. Between compactions new producers can pass the cap.
/// * So the tables hold at most `max_producers × (1 +
///   max_ranges_per_producer)` rows after a compaction; at about
///   [`ROW_BYTES`](crate::ROW_BYTES) per row with its index entry
///   (defaults: 10 000 × 1 025 rows, about 800 MiB worst case, and 10 000
///   producers sending in order take about 1 MiB).
///
/// [`Inbox::compact`]: crate::Inbox::compact
///
/// # Examples
///
/// ```
/// let r = mq_inbox::Retention::default();
/// assert_eq!(r.max_ranges_per_producer, 1024);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Retention {
    /// Ranges kept per producer; past it the lowest is forgotten. Default
    /// 1024. At least 1.
    pub max_ranges_per_producer: u64,
    /// Producers kept by [`Inbox::compact`](crate::Inbox::compact); the
    /// least recently active beyond it are forgotten. Default 10 000.
    pub max_producers: u64,
    /// A producer with no mark for this long is forgotten by
    /// [`Inbox::compact`](crate::Inbox::compact). Default 7 days: set it
    /// above the longest time the broker can still redeliver a message
    /// (its dead-letter horizon) plus any downtime of this consumer.
    pub idle_expiry: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            max_ranges_per_producer: 1024,
            max_producers: 10_000,
            idle_expiry: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// Settings of an [`Inbox`](crate::Inbox).
///
/// # Examples
///
/// ```
/// let mut c = mq_inbox::InboxConfig::default();
/// c.max_connections = 4;
/// assert!(c.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct InboxConfig {
    /// The retention rule. See [`Retention`].
    pub retention: Retention,
    /// SQLite: how long a writer waits for the database lock before
    /// failing (the handler then nacks and the message comes back).
    /// Default 5 s.
    pub busy_timeout: Duration,
    /// Pool size when opening from a URL. Default 8.
    pub max_connections: u32,
    /// The least time between two retention passes started by the
    /// receiver's periodic expiry ([`mq_client_receiver::DedupStore::expire`]).
    /// Default 60 s.
    pub compact_interval: Duration,
}

impl Default for InboxConfig {
    fn default() -> Self {
        Self {
            retention: Retention::default(),
            busy_timeout: Duration::from_secs(5),
            max_connections: 8,
            compact_interval: Duration::from_secs(60),
        }
    }
}

impl InboxConfig {
    /// Checks every bound is usable.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Zero`] naming the field that is zero.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut c = mq_inbox::InboxConfig::default();
    /// c.retention.max_ranges_per_producer = 0;
    /// assert!(c.validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        let zero = [
            (
                self.retention.max_ranges_per_producer == 0,
                "retention.max_ranges_per_producer",
            ),
            (self.retention.max_producers == 0, "retention.max_producers"),
            (
                self.retention.idle_expiry.is_zero(),
                "retention.idle_expiry",
            ),
            (self.busy_timeout.is_zero(), "busy_timeout"),
            (self.max_connections == 0, "max_connections"),
        ];
        match zero.iter().find(|(z, _)| *z) {
            Some((_, name)) => Err(ConfigError::Zero(name)),
            None => Ok(()),
        }
    }
}

/// An [`InboxConfig`] field is unusable.
///
/// # Examples
///
/// ```
/// let e = mq_inbox::ConfigError::Zero("max_connections");
/// assert!(e.to_string().contains("max_connections"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The named bound is zero; give it a positive value.
    #[error("inbox config: {0} must be positive")]
    Zero(&'static str),
}
