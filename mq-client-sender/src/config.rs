//! [`SenderConfig`]: every bound and timer of a sender, with documented
//! defaults and a [`SenderConfig::validate`] that says what to change.

use std::time::Duration;

use mq_protocol::{Backoff, DEFAULT_MAX_FRAME_SIZE, MAX_NAME_LEN, MAX_TOKEN_LEN};

use crate::ConfigError;

/// Largest `max_in_flight` accepted (the window semaphore's limit).
pub(crate) const MAX_WINDOW: usize = tokio::sync::Semaphore::MAX_PERMITS;
/// Largest `max_in_flight_bytes` accepted: a `u32` (one acquire per message)
/// and the semaphore's limit.
pub(crate) const MAX_WINDOW_BYTES: usize = if (u32::MAX as usize) < MAX_WINDOW {
    u32::MAX as usize
} else {
    MAX_WINDOW
};
/// Longest duration accepted for any timer (deadlines are computed as
/// `now + d` and must not overflow).
pub(crate) const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);
/// Smallest `max_in_flight_bytes` accepted: one frame of a 1-byte topic and
/// 1-byte payload.
pub(crate) const MIN_WINDOW_BYTES: usize = mq_protocol::MESSAGE_OVERHEAD + 2;

/// What `send` does when the in-flight window (count or bytes) is full.
///
/// # Examples
///
/// ```
/// use mq_client_sender::{Backpressure, SenderConfig};
/// let cfg = SenderConfig::new("127.0.0.1:7878").backpressure(Backpressure::Fail);
/// assert_eq!(cfg.backpressure, Backpressure::Fail);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Backpressure {
    /// The hand-over waits until a slot frees up (default).
    #[default]
    Wait,
    /// The hand-over fails at once with [`crate::SendError::Backpressure`],
    /// giving the message back.
    Fail,
}

/// Configuration of a [`crate::Sender`]. Every field has a documented default
/// ([`SenderConfig::default`]); only `addresses` must be set.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use mq_client_sender::SenderConfig;
///
/// let cfg = SenderConfig::new("127.0.0.1:7878").max_in_flight(256).send_timeout(Some(Duration::from_secs(10)));
/// assert!(cfg.validate().is_ok());
/// ```
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub struct SenderConfig {
    /// Broker addresses (`host:port`), tried in order on connect and on every
    /// reconnect round. Default: empty (must be set).
    pub addresses: Vec<String>,
    /// Name sent in the handshake, for the broker's logs. Default
    /// `"mq-client-sender"`; at most 255 bytes.
    pub client_name: String,
    /// Shared-secret token for the handshake. Default `None`.
    pub auth_token: Option<String>,
    /// Producer id, the high half of every [`mq_protocol::MessageId`]. Default
    /// `None`: a random id per sender, so two senders never share sequence
    /// space. Set a stable one only together with explicit sequences (the
    /// durable outbox does).
    pub producer_id: Option<u64>,
    /// Most messages unresolved at once. Default 1024.
    pub max_in_flight: usize,
    /// Most frame bytes unresolved at once. Default 64 MiB. A single message
    /// larger than this is refused with `TooLarge`.
    pub max_in_flight_bytes: usize,
    /// What a hand-over does when the window is full. Default `Wait`.
    pub backpressure: Backpressure,
    /// Reply timeout schedule: attempt `n` waits `retry.delay(n)` for its
    /// reply before attempt `n + 1` is sent. Default 1 s, ×2, capped at 2 s,
    /// 20 % jitter: a lost frame or reply is retried within 2 s, however
    /// long the message has been waiting.
    ///
    /// The cap is low because a retransmission is cheap (the broker answers
    /// a copy it already stored with `Duplicate`) and a long cap is what
    /// turns a few lost frames into a long stall. Raise `initial` above the
    /// broker's confirm latency under load if retransmissions (see
    /// [`crate::SenderStats::retransmitted`]) happen without lost frames.
    pub retry: Backoff,
    /// Transmissions per message before it fails with `Timeout`. Default
    /// [`SenderConfig::UNLIMITED_ATTEMPTS`]: no count limit, the message is
    /// retried until `send_timeout` (like the Kafka producer, whose
    /// `retries` default is unbounded under a 2-minute `delivery.timeout.ms`).
    /// A small count makes a few unlucky losses in a row a failure of a
    /// message that may well be stored.
    pub max_attempts: u32,
    /// Total deadline per message from its acceptance, whatever the
    /// attempts. Default `Some(120 s)`; `None` leaves only `max_attempts`
    /// (which must then be a real count, see [`SenderConfig::validate`]).
    /// Time spent disconnected counts: this is how long a caller may wait
    /// for an outcome.
    pub send_timeout: Option<Duration>,
    /// Delay between reconnect rounds (each round tries every address once).
    /// Default 100 ms, ×2, capped at 10 s, 20 % jitter.
    pub reconnect: Backoff,
    /// Bound on TCP connect plus handshake, per address. Default 5 s.
    pub connect_timeout: Duration,
    /// Largest frame this side sends or accepts (type byte plus body). The
    /// effective send limit is the smaller of this and the broker's
    /// `Welcome`. Default [`DEFAULT_MAX_FRAME_SIZE`] (1 MiB).
    pub max_frame_size: u32,
    /// Heartbeat interval: a `Ping` is sent after this much write silence and
    /// the connection is considered dead after 3× this of read silence.
    /// Default `None`: follow the broker's `Welcome` (0 there disables it).
    pub heartbeat: Option<Duration>,
    /// Seed of the jitter RNG (retry and reconnect delays). Default `None`:
    /// seeded from the OS. Set it to replay a schedule exactly. The random
    /// producer id never comes from this seed (two senders with the same
    /// seed must not share a producer id).
    pub seed: Option<u64>,
}

/// Prints every field but the auth token, which shows as `"<redacted>"`.
impl std::fmt::Debug for SenderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SenderConfig")
            .field("addresses", &self.addresses)
            .field("client_name", &self.client_name)
            .field(
                "auth_token",
                &self.auth_token.as_ref().map(|_| "<redacted>"),
            )
            .field("producer_id", &self.producer_id)
            .field("max_in_flight", &self.max_in_flight)
            .field("max_in_flight_bytes", &self.max_in_flight_bytes)
            .field("backpressure", &self.backpressure)
            .field("retry", &self.retry)
            .field("max_attempts", &self.max_attempts)
            .field("send_timeout", &self.send_timeout)
            .field("reconnect", &self.reconnect)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_frame_size", &self.max_frame_size)
            .field("heartbeat", &self.heartbeat)
            .field("seed", &self.seed)
            .finish()
    }
}

impl SenderConfig {
    /// The `max_attempts` value meaning "no count limit": a message is
    /// retransmitted until it is confirmed or `send_timeout` passes. It is
    /// the default.
    ///
    /// # Examples
    ///
    /// ```
    /// use mq_client_sender::SenderConfig;
    /// assert_eq!(SenderConfig::default().max_attempts, SenderConfig::UNLIMITED_ATTEMPTS);
    /// ```
    pub const UNLIMITED_ATTEMPTS: u32 = u32::MAX;

    /// The defaults with one broker address.
    ///
    /// # Examples
    ///
    /// ```
    /// let cfg = mq_client_sender::SenderConfig::new("127.0.0.1:7878");
    /// assert_eq!(cfg.addresses, vec!["127.0.0.1:7878".to_string()]);
    /// ```
    pub fn new(address: impl Into<String>) -> Self {
        Self {
            addresses: vec![address.into()],
            ..Self::default()
        }
    }

    /// Checks every field.
    ///
    /// # Errors
    ///
    /// The first [`ConfigError`] found; its message names the field and what
    /// to change.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut cfg = mq_client_sender::SenderConfig::new("127.0.0.1:7878");
    /// cfg.max_attempts = 0;
    /// assert!(cfg.validate().unwrap_err().to_string().contains("max_attempts"));
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.addresses.is_empty() {
            return Err(ConfigError::NoAddresses);
        }
        if let Some(i) = self.addresses.iter().position(|a| a.trim().is_empty()) {
            return Err(ConfigError::EmptyAddress(i));
        }
        if self.client_name.len() > MAX_NAME_LEN {
            return Err(ConfigError::NameTooLong {
                len: self.client_name.len(),
                max: MAX_NAME_LEN,
            });
        }
        if let Some(t) = &self.auth_token {
            if t.len() > MAX_TOKEN_LEN {
                return Err(ConfigError::TokenTooLong {
                    len: t.len(),
                    max: MAX_TOKEN_LEN,
                });
            }
        }
        if self.max_in_flight == 0 || self.max_in_flight > MAX_WINDOW {
            return Err(ConfigError::BadMaxInFlight(self.max_in_flight));
        }
        if self.max_in_flight_bytes < MIN_WINDOW_BYTES
            || self.max_in_flight_bytes > MAX_WINDOW_BYTES
        {
            return Err(ConfigError::BadMaxInFlightBytes(self.max_in_flight_bytes));
        }
        self.retry.validate().map_err(ConfigError::Retry)?;
        self.reconnect.validate().map_err(ConfigError::Reconnect)?;
        if self.max_attempts == 0 {
            return Err(ConfigError::ZeroAttempts);
        }
        if self.send_timeout.is_some_and(|d| d.is_zero()) {
            return Err(ConfigError::ZeroSendTimeout);
        }
        if self.send_timeout.is_none() && self.max_attempts == Self::UNLIMITED_ATTEMPTS {
            return Err(ConfigError::NoSendBound);
        }
        if self.connect_timeout.is_zero() {
            return Err(ConfigError::ZeroConnectTimeout);
        }
        if self.max_frame_size < 64 {
            return Err(ConfigError::FrameSizeTooSmall(self.max_frame_size));
        }
        if self.heartbeat.is_some_and(|d| d.is_zero()) {
            return Err(ConfigError::ZeroHeartbeat);
        }
        let durations = [
            ("retry.max", Some(self.retry.max)),
            ("reconnect.max", Some(self.reconnect.max)),
            ("send_timeout", self.send_timeout),
            ("connect_timeout", Some(self.connect_timeout)),
            ("heartbeat", self.heartbeat),
        ];
        for (field, d) in durations {
            if d.is_some_and(|d| d > MAX_DURATION) {
                return Err(ConfigError::DurationTooLong { field });
            }
        }
        Ok(())
    }
}

impl Default for SenderConfig {
    fn default() -> Self {
        Self {
            addresses: Vec::new(),
            client_name: "mq-client-sender".into(),
            auth_token: None,
            producer_id: None,
            max_in_flight: 1024,
            max_in_flight_bytes: 64 << 20,
            backpressure: Backpressure::Wait,
            retry: Backoff {
                initial: Duration::from_secs(1),
                multiplier: 2.0,
                max: Duration::from_secs(2),
                jitter: 0.2,
            },
            max_attempts: Self::UNLIMITED_ATTEMPTS,
            send_timeout: Some(Duration::from_secs(120)),
            reconnect: Backoff::default(),
            connect_timeout: Duration::from_secs(5),
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            heartbeat: None,
            seed: None,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn debug_never_prints_the_token() {
        let cfg = SenderConfig::default().auth_token(Some("s3cr3t-token".into()));
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("s3cr3t-token"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }

    use super::*;

    #[test]
    fn defaults_need_only_an_address() {
        assert_eq!(
            SenderConfig::default().validate(),
            Err(ConfigError::NoAddresses)
        );
        assert_eq!(SenderConfig::new("a:1").validate(), Ok(()));
    }

    #[test]
    fn every_bad_field_is_named() {
        let ok = SenderConfig::new("a:1");
        let cases: Vec<(SenderConfig, &str)> = vec![
            (
                ok.clone().addresses(vec!["a:1".into(), " ".into()]),
                "addresses[1]",
            ),
            (ok.clone().max_in_flight(0), "max_in_flight"),
            (ok.clone().max_in_flight_bytes(3), "max_in_flight_bytes"),
            (ok.clone().max_attempts(0), "max_attempts"),
            (
                ok.clone().send_timeout(Some(Duration::ZERO)),
                "send_timeout",
            ),
            (ok.clone().send_timeout(None), "send_timeout"),
            (
                ok.clone().connect_timeout(Duration::ZERO),
                "connect_timeout",
            ),
            (ok.clone().max_frame_size(10), "max_frame_size"),
            (ok.clone().heartbeat(Some(Duration::ZERO)), "heartbeat"),
            (ok.clone().heartbeat(Some(Duration::MAX)), "heartbeat"),
            (ok.clone().send_timeout(Some(Duration::MAX)), "send_timeout"),
            (
                ok.clone().retry(Backoff {
                    max: Duration::MAX,
                    ..ok.retry
                }),
                "retry.max",
            ),
            (ok.clone().client_name("x".repeat(300)), "client_name"),
            (
                ok.clone().retry(Backoff {
                    jitter: 3.0,
                    ..ok.retry
                }),
                "retry",
            ),
            (
                ok.clone().reconnect(Backoff {
                    initial: Duration::ZERO,
                    ..ok.reconnect
                }),
                "reconnect",
            ),
        ];
        for (cfg, field) in cases {
            let msg = cfg.validate().expect_err(field).to_string();
            assert!(msg.contains(field), "{msg:?} should name {field}");
        }
    }
}
