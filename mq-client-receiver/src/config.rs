//! [`ReceiverConfig`] and [`DedupConfig`]: every bound of the receiver,
//! with defaults and validation.

use std::time::Duration;

use mq_protocol::{Backoff, DEFAULT_MAX_FRAME_SIZE, MAX_NAME_LEN, MAX_TOKEN_LEN, MAX_TOPIC_LEN};

use crate::error::ConfigError;

/// Who settles a delivery.
///
/// # Examples
///
/// ```
/// use mq_client_receiver::{AckMode, ReceiverConfig};
/// let c = ReceiverConfig::default().ack_mode(AckMode::Manual);
/// assert_eq!(c.ack_mode, AckMode::Manual);
/// assert_eq!(AckMode::default(), AckMode::Auto);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum AckMode {
    /// The receiver acks when the handler returns `Ok` and nacks when it
    /// returns `Err` or panics. [`crate::Delivery::ack`] is refused.
    #[default]
    Auto,
    /// The handler or stream consumer calls [`crate::Delivery::ack`] or
    /// [`crate::Delivery::nack`]. A delivery dropped without either is
    /// nacked; a handler `Err` nacks a delivery not yet settled.
    Manual,
}

/// Bounds of the dedup window ([`crate::DedupWindow`]).
///
/// Memory is bounded by `max_ranges` (ranges over all producers) and
/// `max_producers`; [`DedupConfig::max_memory_bytes`] computes the worst
/// case, about 15 MiB with the defaults (262 144 ranges at most 48 bytes
/// each, plus the producer tables), reached only when the ranges are spread
/// over 10 000 producers that all leave gaps. A producer that sends in
/// order and whose messages are all processed here costs one range, kept in
/// its 40-byte slot of the producer table (at most about 57 bytes with the
/// table's free slots and its index), no matter how many messages it sent. Lower the
/// bounds to cap memory; the cost is that more duplicates can reach the
/// handler.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let d = mq_client_receiver::DedupConfig::default().max_producers(100);
/// assert_eq!(d.idle_expiry, Duration::from_secs(3600));
/// assert_eq!(d.max_ranges, 262_144);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DedupConfig {
    /// Producers tracked at once; beyond it the least recently active
    /// producer is forgotten. Default 10 000.
    pub max_producers: usize,
    /// Disjoint sequence ranges kept per producer; beyond it the lowest
    /// range is forgotten. Gaps come from messages still unprocessed or
    /// processed by another group member. Default 1 024.
    pub max_ranges_per_producer: usize,
    /// Disjoint sequence ranges kept over all producers: the bound on
    /// memory. Beyond it the lowest range of the least recently active
    /// producer is forgotten (the producer itself if that was its only
    /// range). Default 262 144 (2^18), a worst case of about 15 MiB.
    pub max_ranges: usize,
    /// A producer not seen for this long is forgotten. Default 1 hour.
    pub idle_expiry: Duration,
}

impl Default for DedupConfig {
    fn default() -> Self {
        Self {
            max_producers: 10_000,
            max_ranges_per_producer: 1_024,
            max_ranges: 262_144,
            idle_expiry: Duration::from_secs(3600),
        }
    }
}

impl DedupConfig {
    /// Checks the bounds.
    ///
    /// # Errors
    ///
    /// [`ConfigError::ZeroBound`] for a zero bound.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut d = mq_client_receiver::DedupConfig::default();
    /// assert!(d.validate().is_ok());
    /// d.max_producers = 0;
    /// assert!(d.validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_producers == 0 {
            return Err(ConfigError::ZeroBound("dedup.max_producers"));
        }
        if self.max_ranges_per_producer == 0 {
            return Err(ConfigError::ZeroBound("dedup.max_ranges_per_producer"));
        }
        if self.max_ranges == 0 {
            return Err(ConfigError::ZeroBound("dedup.max_ranges"));
        }
        if self.idle_expiry.is_zero() {
            return Err(ConfigError::ZeroBound("dedup.idle_expiry"));
        }
        Ok(())
    }

    /// The most heap a [`crate::DedupWindow`] with these bounds uses, by the
    /// same estimate as [`crate::DedupWindow::memory_bytes`]: the producer
    /// table at `max_producers`, and `max_ranges` ranges spread over as many
    /// producers with gaps as possible.
    ///
    /// # Examples
    ///
    /// ```
    /// use mq_client_receiver::DedupConfig;
    /// let worst = DedupConfig::default().max_memory_bytes();
    /// assert!(worst < 16 << 20); // about 15 MiB
    /// let small = DedupConfig::default().max_producers(100).max_ranges(10_000);
    /// assert!(small.max_memory_bytes() < 600 << 10);
    /// ```
    pub fn max_memory_bytes(&self) -> usize {
        crate::dedup::max_memory_bytes(self)
    }
}

/// Everything a [`crate::Receiver`] needs: where, who, what, and its bounds.
///
/// # Examples
///
/// ```
/// use mq_client_receiver::{AckMode, ReceiverConfig};
///
/// let config = ReceiverConfig::default().addresses(vec!["127.0.0.1:7000".into()]).topic("orders").group("billing").prefetch(32).max_concurrency(8).ack_mode(AckMode::Auto);
/// assert!(config.validate().is_ok());
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct ReceiverConfig {
    /// Broker addresses (`host:port`). A connect round tries each once,
    /// in order; the first that completes the handshake wins.
    pub addresses: Vec<String>,
    /// A name for the broker's logs. Default `"mq-client-receiver"`.
    pub client_name: String,
    /// Shared-secret token, if the broker requires one.
    pub auth_token: Option<String>,
    /// Topic to subscribe to.
    pub topic: String,
    /// More topics to subscribe to on the same connection, in the same
    /// `group`: one subscription each (`topic` is `sub_id` 1, these follow
    /// as 2, 3, ... in order), each with its own `prefetch` credit;
    /// [`crate::Delivery::topic`] says which one a message came from.
    /// Default empty. See also [`crate::ReceiverBuilder::topic`].
    pub topics: Vec<String>,
    /// Consumer group: members of one group share the topic's messages.
    pub group: String,
    /// Credit granted to the broker: the most deliveries unsettled at once
    /// on the connection. Default 64.
    pub prefetch: u32,
    /// Handler calls running at once. Default 16; must be at most
    /// `prefetch`. Not used by [`crate::Receiver::stream`], where the
    /// consumer decides and `prefetch` bounds the unsettled deliveries.
    pub max_concurrency: usize,
    /// Who acks: the receiver from the handler's result, or the user.
    pub ack_mode: AckMode,
    /// Bounds of the dedup window.
    pub dedup: DedupConfig,
    /// Wait after a failed connect round before the next (a lost
    /// connection starts a round at once).
    pub reconnect: Backoff,
    /// Bound on connect plus handshake (TLS included) for one address, and
    /// again on subscribing. Default 5 s.
    pub connect_timeout: Duration,
    /// Largest frame accepted from the broker (type byte plus body).
    /// Default [`DEFAULT_MAX_FRAME_SIZE`] (1 MiB).
    pub max_frame_size: u32,
    /// Seed for reconnect jitter; `None` draws one from the OS.
    pub seed: Option<u64>,
}

/// Prints every field but the auth token, which shows as `"<redacted>"`.
impl std::fmt::Debug for ReceiverConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceiverConfig")
            .field("addresses", &self.addresses)
            .field("client_name", &self.client_name)
            .field(
                "auth_token",
                &self.auth_token.as_ref().map(|_| "<redacted>"),
            )
            .field("topic", &self.topic)
            .field("topics", &self.topics)
            .field("group", &self.group)
            .field("prefetch", &self.prefetch)
            .field("max_concurrency", &self.max_concurrency)
            .field("ack_mode", &self.ack_mode)
            .field("dedup", &self.dedup)
            .field("reconnect", &self.reconnect)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_frame_size", &self.max_frame_size)
            .field("seed", &self.seed)
            .finish()
    }
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        Self {
            addresses: Vec::new(),
            client_name: "mq-client-receiver".into(),
            auth_token: None,
            topic: String::new(),
            topics: Vec::new(),
            group: String::new(),
            prefetch: 64,
            max_concurrency: 16,
            ack_mode: AckMode::Auto,
            dedup: DedupConfig::default(),
            reconnect: Backoff::default(),
            connect_timeout: Duration::from_secs(5),
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            seed: None,
        }
    }
}

impl ReceiverConfig {
    /// Every topic subscribed to, in `sub_id` order: `topic`, then
    /// `topics`.
    ///
    /// # Examples
    ///
    /// ```
    /// let c = mq_client_receiver::ReceiverConfig::default().topic("orders").topics(vec!["refunds".into()]);
    /// assert_eq!(c.all_topics().collect::<Vec<_>>(), ["orders", "refunds"]);
    /// ```
    pub fn all_topics(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.topic.as_str()).chain(self.topics.iter().map(String::as_str))
    }

    /// Checks every field and says which to change.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the field.
    ///
    /// # Examples
    ///
    /// ```
    /// use mq_client_receiver::{ConfigError, ReceiverConfig};
    /// let c = ReceiverConfig::default().addresses(vec!["x:1".into()]).topic("t").group("g").prefetch(4).max_concurrency(8);
    /// assert!(matches!(c.validate(), Err(ConfigError::ConcurrencyAbovePrefetch { .. })));
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.addresses.is_empty() {
            return Err(ConfigError::NoAddresses);
        }
        check_name("topic", &self.topic, MAX_TOPIC_LEN)?;
        for (i, t) in self.topics.iter().enumerate() {
            check_name("topics", t, MAX_TOPIC_LEN)?;
            if *t == self.topic || self.topics[..i].contains(t) {
                return Err(ConfigError::DuplicateTopic(t.clone()));
            }
        }
        check_name("group", &self.group, MAX_NAME_LEN)?;
        if self.client_name.len() > MAX_NAME_LEN {
            return Err(ConfigError::TooLong {
                field: "client_name",
                max: MAX_NAME_LEN,
            });
        }
        if self
            .auth_token
            .as_ref()
            .is_some_and(|t| t.len() > MAX_TOKEN_LEN)
        {
            return Err(ConfigError::TooLong {
                field: "auth_token",
                max: MAX_TOKEN_LEN,
            });
        }
        if self.prefetch == 0 {
            return Err(ConfigError::ZeroBound("prefetch"));
        }
        if self.max_concurrency == 0 {
            return Err(ConfigError::ZeroBound("max_concurrency"));
        }
        if self.max_concurrency as u64 > u64::from(self.prefetch) {
            return Err(ConfigError::ConcurrencyAbovePrefetch {
                max_concurrency: self.max_concurrency,
                prefetch: self.prefetch,
            });
        }
        self.dedup.validate()?;
        self.reconnect.validate()?;
        if self.connect_timeout.is_zero() {
            return Err(ConfigError::ZeroBound("connect_timeout"));
        }
        if self.max_frame_size < 64 {
            return Err(ConfigError::FrameSizeTooSmall(self.max_frame_size));
        }
        Ok(())
    }
}

fn check_name(field: &'static str, v: &str, max: usize) -> Result<(), ConfigError> {
    if v.is_empty() {
        return Err(ConfigError::Empty(field));
    }
    if v.len() > max {
        return Err(ConfigError::TooLong { field, max });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn debug_never_prints_the_token() {
        let cfg = ReceiverConfig::default().auth_token(Some("s3cr3t-token".into()));
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("s3cr3t-token"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }

    use super::*;

    fn ok() -> ReceiverConfig {
        ReceiverConfig::default()
            .addresses(vec!["127.0.0.1:1".into()])
            .topic("t")
            .group("g")
    }

    #[test]
    fn defaults_are_the_documented_bounds() {
        let c = ReceiverConfig::default();
        assert_eq!((c.prefetch, c.max_concurrency), (64, 16));
        assert_eq!(c.ack_mode, AckMode::Auto);
        assert_eq!(c.dedup, DedupConfig::default());
        assert!(ok().validate().is_ok());
    }

    #[test]
    fn validation_names_what_to_change() {
        let cases: Vec<(ReceiverConfig, ConfigError)> = vec![
            (ok().addresses(vec![]), ConfigError::NoAddresses),
            (ok().topic(String::new()), ConfigError::Empty("topic")),
            (ok().group(String::new()), ConfigError::Empty("group")),
            (
                ok().topic("x".repeat(MAX_TOPIC_LEN + 1)),
                ConfigError::TooLong {
                    field: "topic",
                    max: MAX_TOPIC_LEN,
                },
            ),
            (ok().prefetch(0), ConfigError::ZeroBound("prefetch")),
            (
                ok().max_concurrency(0),
                ConfigError::ZeroBound("max_concurrency"),
            ),
            (
                ok().prefetch(4).max_concurrency(5),
                ConfigError::ConcurrencyAbovePrefetch {
                    max_concurrency: 5,
                    prefetch: 4,
                },
            ),
            (
                ok().dedup(DedupConfig::default().max_ranges_per_producer(0)),
                ConfigError::ZeroBound("dedup.max_ranges_per_producer"),
            ),
            (
                ok().dedup(DedupConfig::default().max_ranges(0)),
                ConfigError::ZeroBound("dedup.max_ranges"),
            ),
            (
                ok().connect_timeout(Duration::ZERO),
                ConfigError::ZeroBound("connect_timeout"),
            ),
            (ok().max_frame_size(10), ConfigError::FrameSizeTooSmall(10)),
        ];
        for (c, want) in cases {
            assert_eq!(c.validate(), Err(want));
        }
        let mut c = ok();
        c.reconnect.jitter = 3.0;
        assert!(matches!(c.validate(), Err(ConfigError::Reconnect(_))));
    }
}
