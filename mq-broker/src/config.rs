//! The broker's configuration: addresses, limits, timing and faults, with
//! defaults and validation.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use mq_protocol::{Backoff, BackoffError, DEFAULT_MAX_FRAME_SIZE, MAX_NAME_LEN};

/// Everything a [`Broker`](crate::Broker) can be told at start.
///
/// Every bound of the broker is a field here; nothing else grows without a
/// limit except the replies queued for a peer that sends but never reads
/// (see the crate docs).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use mq_broker::BrokerConfig;
///
/// let config = BrokerConfig {
///     max_deliveries: 3,
///     heartbeat: Duration::from_secs(1),
///     ..BrokerConfig::default()
/// };
/// assert!(config.validate().is_ok());
/// ```
#[derive(Clone)]
pub struct BrokerConfig {
    /// Address to listen on. Default `127.0.0.1:0` (an ephemeral port; read it
    /// back with [`Broker::addr`](crate::Broker::addr)).
    pub listen: SocketAddr,
    /// Name sent in `Welcome`. Default `"mq-broker"`.
    pub server_name: String,
    /// Largest frame (type byte plus body) accepted or sent. A larger length
    /// prefix closes the connection with `FRAME_TOO_LARGE`.
    /// Default [`DEFAULT_MAX_FRAME_SIZE`] (1 MiB). At least 64.
    pub max_frame_size: u32,
    /// Largest payload plus header bytes of one message; a larger message is
    /// rejected with `MESSAGE_TOO_LARGE` (permanent). Default 1 MiB. A message
    /// whose `Deliver` frame would not fit in `max_frame_size` (a `Message`
    /// frame above `max_frame_size - 4`) is rejected too. Announced to
    /// clients in `Welcome.max_message_size` (at most `u32::MAX`).
    pub max_message_size: usize,
    /// Heartbeat interval advertised in `Welcome`. The broker sends `Ping`
    /// after this long without sending anything and drops a peer silent for
    /// three intervals. Default 5 s. Zero disables heartbeats (PROTOCOL.md
    /// §7): no `Ping`s, no silence timeout; a peer whose writes make no
    /// progress is still dropped after 30 s.
    pub heartbeat: Duration,
    /// Time a new connection has to send `Hello`; past it the broker sends
    /// `Close(HANDSHAKE_TIMEOUT)` and closes. Default 10 s.
    pub handshake_timeout: Duration,
    /// If set, `Hello` must carry exactly this token or is refused with
    /// `UNAUTHORIZED` (compared in constant time). Default `None`. `Debug`
    /// prints `Some("<redacted>")`, never the token.
    pub auth_token: Option<String>,
    /// Most connections open at once (past the handshake); one more is
    /// refused with `TOO_MANY_CONNECTIONS`. Default 1024.
    pub max_connections: usize,
    /// Most messages stored at once; past it a message is rejected with
    /// `STORE_FULL` (transient). Default 1 000 000.
    pub max_stored_messages: usize,
    /// Most payload plus header bytes stored at once; past it a message is
    /// rejected with `STORE_FULL` (transient). Default 1 GiB.
    pub max_stored_bytes: usize,
    /// Redelivery schedule: delivery attempt `n` unacked is redelivered
    /// `redelivery.delay(n)` after it was sent. Default 1 s doubling to 30 s,
    /// 20 % jitter.
    pub redelivery: Backoff,
    /// Deliveries of one message to one group without an ack before it is
    /// dead-lettered. Default 10. At least 1.
    pub max_deliveries: u32,
    /// Producers whose landed sequences are remembered for dedup; the least
    /// recently used producer is forgotten past it. Default 10 000.
    pub dedup_max_producers: usize,
    /// Ranges of landed sequences remembered per producer; the lowest range is
    /// forgotten past it. Default 1024.
    pub dedup_max_ranges_per_producer: usize,
    /// Dead letters kept for inspection (the count is exact regardless).
    /// Default 10 000.
    pub max_dead_letters: usize,
    /// Payload plus header bytes of dead-lettered messages kept so an
    /// operator can requeue them (the admin page, `Broker::requeue_dead`);
    /// past it the oldest dead letters lose their bodies (they can still be
    /// purged). Default 64 MiB.
    pub max_dead_letter_bytes: usize,
    /// Acked IDs kept per group for inspection (the count is exact
    /// regardless). Default 100 000.
    pub max_acked_ids_per_group: usize,
    /// Keep the per-ID landing log behind
    /// [`Broker::landed_count`](crate::Broker::landed_count). It grows
    /// by one entry per distinct message ever landed: turn it off for long
    /// benchmarks. Default `true`.
    pub record_landings: bool,
    /// Seed of the one RNG behind every fault and the redelivery jitter.
    /// `None` draws a random seed; either way it is logged and printed.
    pub seed: Option<u64>,
    /// Faults injected from the start; change them later with
    /// [`Broker::set_faults`](crate::Broker::set_faults). Default none.
    pub faults: Faults,
    /// Where stored messages live: in memory (default; lost with the
    /// process) or in a journal on disk (`Stored` means fdatasynced).
    pub storage: Storage,
    /// Bytes queued for one connection's writer (each frame's wire size plus
    /// its in-memory overhead) before the broker stops reading from that
    /// connection and stops delivering to it, until the queue drains below
    /// half (PROTOCOL.md §7.1). Default 4 MiB; at least `max_frame_size + 64`.
    pub max_output_bytes: usize,
    /// Longest redelivery delay a `Nack` can ask for; a larger `delay_ms`
    /// waits this long. Default 15 minutes. The delay belongs to the group:
    /// it keeps running when the receiver that nacked reconnects.
    pub max_nack_delay: Duration,
    /// Most subscriptions on one connection; one more gets
    /// `SubscribeError(LIMIT_REACHED)`. Default 1024.
    pub max_subscriptions_per_connection: usize,
    /// Most consumer groups of one topic (groups live until a `LoseStore`
    /// restart); a `Subscribe` creating one more gets
    /// `SubscribeError(LIMIT_REACHED)`. Default 64.
    pub max_groups_per_topic: usize,
    /// Most topics that have consumer groups; a `Subscribe` creating the
    /// first group of one more topic gets `SubscribeError(LIMIT_REACHED)`.
    /// Default 100 000.
    pub max_topics: usize,
    /// TLS: a second listener (or the only one, with
    /// [`TlsConfig::tls_only`](crate::TlsConfig::tls_only)) whose
    /// connections start with a TLS handshake, bounded by
    /// `handshake_timeout`. Default `None`: plaintext only.
    pub tls: Option<crate::TlsConfig>,
}

/// Prints every field but the auth token, which shows as `"<redacted>"`.
impl std::fmt::Debug for BrokerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerConfig")
            .field("listen", &self.listen)
            .field("server_name", &self.server_name)
            .field("max_frame_size", &self.max_frame_size)
            .field("max_message_size", &self.max_message_size)
            .field("heartbeat", &self.heartbeat)
            .field("handshake_timeout", &self.handshake_timeout)
            .field(
                "auth_token",
                &self.auth_token.as_ref().map(|_| "<redacted>"),
            )
            .field("max_connections", &self.max_connections)
            .field("max_stored_messages", &self.max_stored_messages)
            .field("max_stored_bytes", &self.max_stored_bytes)
            .field("redelivery", &self.redelivery)
            .field("max_deliveries", &self.max_deliveries)
            .field("dedup_max_producers", &self.dedup_max_producers)
            .field(
                "dedup_max_ranges_per_producer",
                &self.dedup_max_ranges_per_producer,
            )
            .field("max_dead_letters", &self.max_dead_letters)
            .field("max_acked_ids_per_group", &self.max_acked_ids_per_group)
            .field("record_landings", &self.record_landings)
            .field("seed", &self.seed)
            .field("faults", &self.faults)
            .field("storage", &self.storage)
            .field("max_output_bytes", &self.max_output_bytes)
            .field("max_nack_delay", &self.max_nack_delay)
            .field(
                "max_subscriptions_per_connection",
                &self.max_subscriptions_per_connection,
            )
            .field("max_groups_per_topic", &self.max_groups_per_topic)
            .field("max_topics", &self.max_topics)
            .field("tls", &self.tls)
            .finish()
    }
}

/// Where a broker keeps stored messages.
///
/// # Examples
///
/// ```
/// use mq_broker::{BrokerConfig, DiskStorage, Storage};
/// let config = BrokerConfig {
///     storage: Storage::Disk(DiskStorage::new("/var/lib/mq")),
///     ..BrokerConfig::default()
/// };
/// assert!(matches!(config.storage, Storage::Disk(_)));
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub enum Storage {
    /// In RAM: fast and deterministic, for tests and development. A process
    /// exit loses every stored message.
    #[default]
    Memory,
    /// A journal in a directory: `Reply(Stored)` only after the message's
    /// record is fdatasynced; recovered at start. Messages are also kept in
    /// RAM (bounded by `max_stored_bytes`): the disk is for durability.
    Disk(DiskStorage),
}

/// The disk storage's settings.
///
/// # Examples
///
/// ```
/// let d = mq_broker::DiskStorage::new("/var/lib/mq").segment_size(16 << 20);
/// assert_eq!(d.data_dir.to_str(), Some("/var/lib/mq"));
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct DiskStorage {
    /// The data directory (created if missing; locked while the broker runs).
    pub data_dir: PathBuf,
    /// A segment file is rolled before it would pass this size, and a
    /// checkpoint is written once this many bytes (and more than the
    /// stored messages take) were journaled since the last one. Default
    /// 64 MiB; at least twice the largest frame.
    pub segment_size: u64,
    /// New messages are refused with `STORE_FULL` (transient) while the
    /// journal holds this many bytes. Default: `None`, meaning
    /// 2 × `max_stored_bytes` + 4 × `segment_size` (a checkpoint keeps the
    /// journal near the stored bytes plus two segments).
    pub max_disk_bytes: Option<u64>,
    /// Skip corrupt ranges found at start (their messages are lost) instead
    /// of refusing to start. A torn last write is always truncated.
    pub repair: bool,
}

impl DiskStorage {
    /// Disk storage in `data_dir` with the default sizes.
    ///
    /// # Examples
    ///
    /// ```
    /// let d = mq_broker::DiskStorage::new("data");
    /// assert_eq!(d.segment_size, 64 << 20);
    /// ```
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            segment_size: 64 << 20,
            max_disk_bytes: None,
            repair: false,
        }
    }

    /// Sets [`DiskStorage::segment_size`].
    ///
    /// # Examples
    ///
    /// ```
    /// let d = mq_broker::DiskStorage::new("data").segment_size(1 << 20);
    /// assert_eq!(d.segment_size, 1 << 20);
    /// ```
    pub fn segment_size(mut self, bytes: u64) -> Self {
        self.segment_size = bytes;
        self
    }

    /// Sets [`DiskStorage::max_disk_bytes`].
    ///
    /// # Examples
    ///
    /// ```
    /// let d = mq_broker::DiskStorage::new("data").max_disk_bytes(1 << 30);
    /// assert_eq!(d.max_disk_bytes, Some(1 << 30));
    /// ```
    pub fn max_disk_bytes(mut self, bytes: u64) -> Self {
        self.max_disk_bytes = Some(bytes);
        self
    }

    /// Sets [`DiskStorage::repair`].
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(mq_broker::DiskStorage::new("data").repair(true).repair);
    /// ```
    pub fn repair(mut self, repair: bool) -> Self {
        self.repair = repair;
        self
    }
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            server_name: "mq-broker".into(),
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            max_message_size: DEFAULT_MAX_FRAME_SIZE as usize,
            heartbeat: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(10),
            auth_token: None,
            max_connections: 1024,
            max_stored_messages: 1_000_000,
            max_stored_bytes: 1 << 30,
            redelivery: Backoff {
                initial: Duration::from_secs(1),
                multiplier: 2.0,
                max: Duration::from_secs(30),
                jitter: 0.2,
            },
            max_deliveries: 10,
            dedup_max_producers: 10_000,
            dedup_max_ranges_per_producer: 1024,
            max_dead_letters: 10_000,
            max_dead_letter_bytes: 64 << 20,
            max_acked_ids_per_group: 100_000,
            record_landings: true,
            seed: None,
            faults: Faults::default(),
            storage: Storage::Memory,
            max_output_bytes: 4 << 20,
            max_nack_delay: Duration::from_secs(15 * 60),
            max_subscriptions_per_connection: 1024,
            max_groups_per_topic: 64,
            max_topics: 100_000,
            tls: None,
        }
    }
}

/// A [`BrokerConfig`] or [`Faults`] field that cannot work.
///
/// # Examples
///
/// ```
/// use mq_broker::{BrokerConfig, ConfigError};
/// let c = BrokerConfig { max_deliveries: 0, ..BrokerConfig::default() };
/// assert_eq!(c.validate(), Err(ConfigError::TooSmall { field: "max_deliveries", min: 1 }));
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A size or count is zero or too small; raise it to at least `min`.
    #[error("{field} must be at least {min}")]
    TooSmall {
        /// The field.
        field: &'static str,
        /// The smallest accepted value.
        min: u64,
    },
    /// A duration is zero or too long: heartbeat, handshake timeout and
    /// redelivery cap must lie between 1 ms and `u32::MAX` ms (about 49
    /// days), a fault's `max_delay` at most one hour.
    #[error("{field} is out of range (see the field's documentation)")]
    BadDuration {
        /// The field.
        field: &'static str,
    },
    /// A probability is not within 0.0..=1.0.
    #[error("{field} must be a probability within 0.0..=1.0, got {value}")]
    BadProbability {
        /// The field.
        field: &'static str,
        /// The value given.
        value: f64,
    },
    /// `server_name` is longer than the protocol's name limit.
    #[error("server_name is {0} bytes; the limit is 255")]
    ServerNameTooLong(usize),
    /// The redelivery backoff is invalid; the inner error names the field.
    #[error("redelivery: {0}")]
    Redelivery(#[from] BackoffError),
    /// A TLS certificate, key or client-CA input is unusable: which one,
    /// its file (when read from one) and what is wrong.
    #[error("{what}{}: {reason}", crate::tls::file_suffix(file))]
    Tls {
        /// `"TLS certificate"`, `"TLS private key"` or `"TLS client CA"`.
        what: &'static str,
        /// The file, if it came from one.
        file: Option<PathBuf>,
        /// What is wrong with it.
        reason: String,
    },
}

impl BrokerConfig {
    /// Checks every field.
    ///
    /// # Errors
    ///
    /// The first [`ConfigError`] found, naming the field to change.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut c = mq_broker::BrokerConfig::default();
    /// c.max_connections = 0;
    /// assert!(c.validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        let min = |field, v: u64, min: u64| {
            if v < min {
                Err(ConfigError::TooSmall { field, min })
            } else {
                Ok(())
            }
        };
        min("max_frame_size", u64::from(self.max_frame_size), 64)?;
        min("max_message_size", self.max_message_size as u64, 1)?;
        min("max_connections", self.max_connections as u64, 1)?;
        min("max_stored_messages", self.max_stored_messages as u64, 1)?;
        min("max_stored_bytes", self.max_stored_bytes as u64, 1)?;
        min("max_deliveries", u64::from(self.max_deliveries), 1)?;
        min("dedup_max_producers", self.dedup_max_producers as u64, 1)?;
        min(
            "dedup_max_ranges_per_producer",
            self.dedup_max_ranges_per_producer as u64,
            1,
        )?;
        min(
            "max_output_bytes",
            self.max_output_bytes as u64,
            u64::from(self.max_frame_size) + 64,
        )?;
        min(
            "max_subscriptions_per_connection",
            self.max_subscriptions_per_connection as u64,
            1,
        )?;
        min("max_groups_per_topic", self.max_groups_per_topic as u64, 1)?;
        min("max_topics", self.max_topics as u64, 1)?;
        for (field, d, zero_ok) in [
            ("heartbeat", self.heartbeat, true),
            ("handshake_timeout", self.handshake_timeout, false),
            ("max_nack_delay", self.max_nack_delay, false),
        ] {
            let too_small = d < Duration::from_millis(1) && !(zero_ok && d.is_zero());
            if too_small || d.as_millis() > u128::from(u32::MAX) {
                return Err(ConfigError::BadDuration { field });
            }
        }
        if self.server_name.len() > MAX_NAME_LEN {
            return Err(ConfigError::ServerNameTooLong(self.server_name.len()));
        }
        self.redelivery.validate()?;
        if self.redelivery.max.as_millis() > u128::from(u32::MAX) {
            return Err(ConfigError::BadDuration {
                field: "redelivery.max",
            });
        }
        if let Storage::Disk(d) = &self.storage {
            min(
                "storage.segment_size",
                d.segment_size,
                2 * u64::from(self.max_frame_size) + 64,
            )?;
            if let Some(max) = d.max_disk_bytes {
                min("storage.max_disk_bytes", max, 2 * d.segment_size)?;
            }
        }
        self.faults.validate()
    }
}

/// Longest accepted `max_delay` of a delay fault.
pub(crate) const MAX_FAULT_DELAY: Duration = Duration::from_secs(3600);

/// Which connections a fault applies to, by the role their `Hello` named.
///
/// # Examples
///
/// ```
/// use mq_broker::{Faults, RoleFilter};
/// let only_senders = Faults { drop_reply_after_store: 0.2, roles: RoleFilter::Sender, ..Faults::default() };
/// assert_eq!(Faults::default().roles, RoleFilter::Both);
/// # let _ = only_senders;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RoleFilter {
    /// Only sender connections.
    Sender,
    /// Only receiver connections.
    Receiver,
    /// Every connection.
    #[default]
    Both,
}

impl RoleFilter {
    /// True if a connection of `role` is affected.
    ///
    /// # Examples
    ///
    /// ```
    /// use mq_broker::RoleFilter;
    /// use mq_protocol::Role;
    /// assert!(RoleFilter::Both.matches(Role::Sender));
    /// assert!(!RoleFilter::Receiver.matches(Role::Sender));
    /// ```
    pub fn matches(self, role: mq_protocol::Role) -> bool {
        use mq_protocol::Role;
        match self {
            RoleFilter::Both => true,
            RoleFilter::Sender => role == Role::Sender,
            RoleFilter::Receiver => role == Role::Receiver,
        }
    }
}

/// Faults applied to frames travelling one way.
///
/// Only *data* frames are subject to them: `Message`, `Reply`, `Deliver`,
/// `Ack` and `Nack`, whose loss the protocol's timers recover from. The
/// handshake, `Subscribe`/`SubscribeOk`, `Credit`, `Ping`/`Pong` and `Close`
/// are never dropped, duplicated or delayed (losing a `Credit` would stall a
/// consumer for ever, which no timer can detect).
///
/// # Examples
///
/// ```
/// use mq_broker::DirectionFaults;
/// let lossy = DirectionFaults { drop: 0.1, ..DirectionFaults::default() };
/// assert_eq!(lossy.duplicate, 0.0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DirectionFaults {
    /// Probability that a data frame is discarded.
    pub drop: f64,
    /// Probability that a data frame is processed (or written) twice.
    pub duplicate: f64,
    /// Probability that a data frame is held back for a random time up to
    /// `max_delay` (frames may be reordered).
    pub delay: f64,
    /// Longest hold of a delayed frame. Default 100 ms, at most one hour.
    pub max_delay: Duration,
}

impl Default for DirectionFaults {
    fn default() -> Self {
        Self {
            drop: 0.0,
            duplicate: 0.0,
            delay: 0.0,
            max_delay: Duration::from_millis(100),
        }
    }
}

/// Fault injection, all driven by the broker's one seeded RNG.
///
/// `Faults::default()` injects nothing.
///
/// # Examples
///
/// ```
/// use mq_broker::{Faults, RoleFilter};
/// // The seed's "network flash": the broker stores, the reply is lost.
/// let faults = Faults { drop_reply_after_store: 0.5, roles: RoleFilter::Sender, ..Faults::default() };
/// assert!(faults.validate().is_ok());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Faults {
    /// Faults on frames read from peers (applied after decoding, before
    /// processing).
    pub to_broker: DirectionFaults,
    /// Faults on frames the broker sends (applied before writing).
    pub from_broker: DirectionFaults,
    /// Probability that the `Reply` to a landed message (`Stored` or
    /// `Duplicate`) is not sent. The message stays landed.
    pub drop_reply_after_store: f64,
    /// Cut (abruptly close, without `Close`) a connection after it has sent
    /// this many frames past the handshake.
    pub cut_after_frames: Option<u64>,
    /// Probability of cutting a connection after each frame it sends.
    pub cut_probability: f64,
    /// Which connections all of the above apply to.
    pub roles: RoleFilter,
}

impl Faults {
    /// No faults (the default); chain the methods below to add some. They
    /// mirror the `mq-mock-broker` flags of the same names.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use mq_broker::Faults;
    /// // --drop 0.05 --duplicate 0.05 --delay 0.05 --max-delay-ms 50 --drop-reply-after-store 0.1
    /// let f = Faults::none()
    ///     .drop(0.05)
    ///     .duplicate(0.05)
    ///     .delay(0.05, Duration::from_millis(50))
    ///     .drop_reply_after_store(0.1);
    /// assert_eq!(f.to_broker.drop, 0.05);
    /// assert_eq!(f.from_broker.duplicate, 0.05);
    /// assert!(f.validate().is_ok());
    /// ```
    pub fn none() -> Self {
        Self::default()
    }

    /// `--drop P`: each data frame is discarded with probability `p`, both
    /// directions.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(mq_broker::Faults::none().drop(0.1).from_broker.drop, 0.1);
    /// ```
    pub fn drop(mut self, p: f64) -> Self {
        self.to_broker.drop = p;
        self.from_broker.drop = p;
        self
    }

    /// `--duplicate P`: each data frame is processed or written twice with
    /// probability `p`, both directions.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(mq_broker::Faults::none().duplicate(0.1).to_broker.duplicate, 0.1);
    /// ```
    pub fn duplicate(mut self, p: f64) -> Self {
        self.to_broker.duplicate = p;
        self.from_broker.duplicate = p;
        self
    }

    /// `--delay P --max-delay-ms M`: each data frame is held back with
    /// probability `p` for up to `max`, both directions.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let f = mq_broker::Faults::none().delay(0.2, Duration::from_millis(30));
    /// assert_eq!(f.to_broker.max_delay, Duration::from_millis(30));
    /// ```
    pub fn delay(mut self, p: f64, max: Duration) -> Self {
        for d in [&mut self.to_broker, &mut self.from_broker] {
            d.delay = p;
            d.max_delay = max;
        }
        self
    }

    /// `--drop-reply-after-store P`: the reply to a landed message is lost
    /// with probability `p` (the seed's "network flash").
    ///
    /// # Examples
    ///
    /// ```
    /// let f = mq_broker::Faults::none().drop_reply_after_store(0.1);
    /// assert_eq!(f.drop_reply_after_store, 0.1);
    /// ```
    pub fn drop_reply_after_store(mut self, p: f64) -> Self {
        self.drop_reply_after_store = p;
        self
    }

    /// `--cut-after-frames N`: each connection is cut after it sent `n`
    /// frames.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(mq_broker::Faults::none().cut_after_frames(100).cut_after_frames, Some(100));
    /// ```
    pub fn cut_after_frames(mut self, n: u64) -> Self {
        self.cut_after_frames = Some(n);
        self
    }

    /// `--cut-probability P`: a connection is cut after each frame it sends
    /// with probability `p`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(mq_broker::Faults::none().cut_probability(0.01).cut_probability, 0.01);
    /// ```
    pub fn cut_probability(mut self, p: f64) -> Self {
        self.cut_probability = p;
        self
    }

    /// `--fault-roles`: which connections the faults apply to.
    ///
    /// # Examples
    ///
    /// ```
    /// use mq_broker::{Faults, RoleFilter};
    /// assert_eq!(Faults::none().roles(RoleFilter::Sender).roles, RoleFilter::Sender);
    /// ```
    pub fn roles(mut self, roles: RoleFilter) -> Self {
        self.roles = roles;
        self
    }

    /// Checks that every probability is within `0.0..=1.0`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::BadProbability`] naming the field.
    ///
    /// # Examples
    ///
    /// ```
    /// let f = mq_broker::Faults { cut_probability: 1.5, ..Default::default() };
    /// assert!(f.validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        let checks = [
            ("to_broker.drop", self.to_broker.drop),
            ("to_broker.duplicate", self.to_broker.duplicate),
            ("to_broker.delay", self.to_broker.delay),
            ("from_broker.drop", self.from_broker.drop),
            ("from_broker.duplicate", self.from_broker.duplicate),
            ("from_broker.delay", self.from_broker.delay),
            ("drop_reply_after_store", self.drop_reply_after_store),
            ("cut_probability", self.cut_probability),
        ];
        for (field, value) in checks {
            if !(0.0..=1.0).contains(&value) {
                return Err(ConfigError::BadProbability { field, value });
            }
        }
        for (field, d) in [
            ("to_broker.max_delay", self.to_broker.max_delay),
            ("from_broker.max_delay", self.from_broker.max_delay),
        ] {
            if d > MAX_FAULT_DELAY {
                return Err(ConfigError::BadDuration { field });
            }
        }
        Ok(())
    }

    /// True if no fault is configured (the fast path skips the RNG).
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(mq_broker::Faults::default().is_none());
    /// ```
    pub fn is_none(&self) -> bool {
        *self
            == Faults {
                roles: self.roles,
                to_broker: DirectionFaults {
                    max_delay: self.to_broker.max_delay,
                    ..DirectionFaults::default()
                },
                from_broker: DirectionFaults {
                    max_delay: self.from_broker.max_delay,
                    ..DirectionFaults::default()
                },
                ..Faults::default()
            }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_the_token() {
        let cfg = BrokerConfig {
            auth_token: Some("s3cr3t-token".into()),
            ..BrokerConfig::default()
        };
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("s3cr3t-token"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn heartbeat_zero_is_valid_and_other_bounds_are_checked() {
        let zero = BrokerConfig {
            heartbeat: Duration::ZERO,
            ..BrokerConfig::default()
        };
        assert_eq!(zero.validate(), Ok(()));
        let small = BrokerConfig {
            max_output_bytes: 1000,
            ..BrokerConfig::default()
        };
        assert!(small.validate().is_err());
        let no_nack = BrokerConfig {
            max_nack_delay: Duration::ZERO,
            ..BrokerConfig::default()
        };
        assert!(no_nack.validate().is_err());
    }
}
