//! What an operator looks at: read-only views of a running broker (the
//! admin pages and their JSON API are built from these) and the two
//! operator actions on dead letters, requeue and purge.
//!
//! Every view is a snapshot taken under the broker's lock. Building one
//! walks the stored messages (topics, oldest ages) or one topic's groups,
//! so it costs time in the number of stored messages: fine for a page
//! refreshed every few seconds, not for a tight loop.

use std::time::Duration;

use mq_protocol::MessageId;
use tokio::time::Instant;

use crate::{Broker, BrokerStats};

/// The broker at a glance: [`Broker::overview`].
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), mq_broker::BrokerError> {
/// let broker = mq_broker::Broker::start(Default::default()).await?;
/// let o = broker.overview();
/// assert_eq!(o.senders + o.receivers, 0);
/// assert!(o.topics.is_empty());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "admin", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Overview {
    /// Seconds since the broker started (this process).
    pub uptime_secs: u64,
    /// `"memory"` or the data directory of the journal.
    pub storage: String,
    /// Open producer (`Sender` role) connections.
    pub senders: usize,
    /// Open consumer (`Receiver` role) connections.
    pub receivers: usize,
    /// Every topic with stored messages or consumer groups, by name.
    pub topics: Vec<TopicSummary>,
    /// Dead letters held (see [`Broker::dead_letters`]).
    pub dead_letters: usize,
    /// Payload plus header bytes of the dead letters' kept bodies (bounded
    /// by `max_dead_letter_bytes`).
    pub dead_letter_bytes: usize,
    /// Producers remembered by the dedup table.
    pub producers: usize,
    /// Every counter and gauge.
    pub stats: BrokerStats,
}

/// One line of the topic list.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), mq_broker::BrokerError> {
/// let broker = mq_broker::Broker::start(Default::default()).await?;
/// for t in broker.overview().topics {
///     println!("{}: {} stored, {} groups", t.name, t.stored, t.groups);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "admin", derive(serde::Serialize))]
#[non_exhaustive]
pub struct TopicSummary {
    /// The topic.
    pub name: String,
    /// Messages stored on it now.
    pub stored: usize,
    /// Their payload plus header bytes.
    pub stored_bytes: usize,
    /// Consumer groups on it.
    pub groups: usize,
    /// Milliseconds since its oldest stored message landed (or was
    /// recovered by this process); `None` with nothing stored.
    pub oldest_age_ms: Option<u64>,
}

/// One topic in detail: [`Broker::topic`].
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), mq_broker::BrokerError> {
/// let broker = mq_broker::Broker::start(Default::default()).await?;
/// assert!(broker.topic("orders").is_none());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "admin", derive(serde::Serialize))]
#[non_exhaustive]
pub struct TopicView {
    /// Counts for the whole topic.
    pub summary: TopicSummary,
    /// Its groups, by name.
    pub groups: Vec<GroupView>,
}

/// Where one consumer group of a topic stands.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), mq_broker::BrokerError> {
/// let broker = mq_broker::Broker::start(Default::default()).await?;
/// for g in broker.topic("orders").map(|t| t.groups).unwrap_or_default() {
///     println!("{}: {} ready, {} unacked", g.name, g.ready, g.unacked);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "admin", derive(serde::Serialize))]
#[non_exhaustive]
pub struct GroupView {
    /// The group's name.
    pub name: String,
    /// Waiting for their first delivery.
    pub ready: usize,
    /// Delivered, not acked yet.
    pub unacked: usize,
    /// Delivered before and coming back: ready again after a timeout or a
    /// closed connection, or held by a nack delay.
    pub redelivering: usize,
    /// Dead letters of this group held now.
    pub dead_lettered: usize,
    /// Acks accepted in total.
    pub acked_total: u64,
    /// Milliseconds since the oldest message the group still holds landed.
    pub oldest_age_ms: Option<u64>,
    /// Live subscriptions.
    pub members: Vec<MemberView>,
}

/// One member (subscription) of a group.
///
/// # Examples
///
/// ```
/// # fn show(m: mq_broker::MemberView) {
/// println!("connection {} sub {}: credit {}", m.connection, m.sub_id, m.credit);
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "admin", derive(serde::Serialize))]
#[non_exhaustive]
pub struct MemberView {
    /// The broker's connection number.
    pub connection: u64,
    /// The client's `sub_id`.
    pub sub_id: u32,
    /// Deliveries it may still receive.
    pub credit: u32,
    /// Deliveries outstanding with it.
    pub unacked: u32,
}

/// One dead letter with its message, if kept: [`Broker::dead_letters`].
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), mq_broker::BrokerError> {
/// let broker = mq_broker::Broker::start(Default::default()).await?;
/// for d in broker.dead_letters() {
///     println!("{} {}/{}: {}", d.id, d.topic, d.group, d.payload_preview);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "admin", derive(serde::Serialize))]
#[non_exhaustive]
pub struct DeadLetterView {
    /// What [`Broker::requeue_dead`] and [`Broker::purge_dead`] take:
    /// `<message id>/<group number>`, stable while the broker's state is.
    pub key: String,
    /// The message ID (`<16 hex>-<seq>`).
    pub id: String,
    /// Its topic.
    pub topic: String,
    /// The group that gave up on it.
    pub group: String,
    /// Deliveries made to that group.
    pub deliveries: u32,
    /// False when the body was not kept (past `max_dead_letter_bytes`):
    /// the entry can be purged but not requeued.
    pub body_kept: bool,
    /// Headers, values as lossy UTF-8 (empty without a body).
    pub headers: Vec<(String, String)>,
    /// Payload length in bytes (0 without a body).
    pub payload_len: usize,
    /// The first [`PREVIEW_BYTES`] bytes of the payload as lossy UTF-8.
    pub payload_preview: String,
}

/// Bytes of a payload shown in [`DeadLetterView::payload_preview`].
pub const PREVIEW_BYTES: usize = 256;

/// What the dedup table remembers of one producer: [`Broker::producers`].
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), mq_broker::BrokerError> {
/// let broker = mq_broker::Broker::start(Default::default()).await?;
/// assert!(broker.producers().is_empty());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "admin", derive(serde::Serialize))]
#[non_exhaustive]
pub struct ProducerView {
    /// The producer ID, 16 hex digits.
    pub producer: String,
    /// Ranges of sequences remembered (bounded by
    /// `dedup_max_ranges_per_producer`).
    pub ranges: usize,
    /// Sequences remembered in total.
    pub sequences: u64,
    /// The highest sequence landed.
    pub highest_seq: u64,
    /// Bytes of dedup memory its ranges take (16 per range).
    pub memory_bytes: usize,
}

/// Why a dead-letter action did nothing.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), mq_broker::BrokerError> {
/// let broker = mq_broker::Broker::start(Default::default()).await?;
/// let err = broker.purge_dead("nonsense").unwrap_err();
/// assert!(matches!(err, mq_broker::DeadLetterError::BadKey(_)));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeadLetterError {
    /// The key is not `<message id>/<group number>`; use a `key` from
    /// [`Broker::dead_letters`].
    #[error("malformed dead-letter key {0:?}: expected <16 hex>-<seq>/<group number>")]
    BadKey(String),
    /// No such dead letter (already requeued or purged, or evicted from
    /// the bounded list).
    #[error("no dead letter {0}")]
    NotFound(String),
    /// Its body was not kept (past `max_dead_letter_bytes`); it can only be
    /// purged.
    #[error("the body of dead letter {0} was not kept; it can only be purged")]
    BodyNotKept(String),
    /// The store has no room for the message again; retry once consumers
    /// ack.
    #[error("no room to store dead letter {key} again: {reason}")]
    StoreFull {
        /// The dead letter's key.
        key: String,
        /// The store's reason.
        reason: String,
    },
}

/// Parses a [`DeadLetterView::key`].
pub(crate) fn parse_key(key: &str) -> Result<(MessageId, usize), DeadLetterError> {
    let bad = || DeadLetterError::BadKey(key.chars().take(80).collect());
    let (id, g) = key.rsplit_once('/').ok_or_else(bad)?;
    let id: MessageId = id.parse().map_err(|_| bad())?;
    let g: usize = g.parse().map_err(|_| bad())?;
    Ok((id, g))
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Broker {
    /// The broker at a glance: uptime, connections by role, topics,
    /// counters.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), mq_broker::BrokerError> {
    /// let broker = mq_broker::Broker::start(Default::default()).await?;
    /// assert_eq!(broker.overview().storage, "memory");
    /// # Ok(()) }
    /// ```
    pub fn overview(&self) -> Overview {
        let shared = &self.inner.shared;
        let storage = match &shared.config.storage {
            crate::Storage::Disk(d) => d.data_dir.display().to_string(),
            _ => "memory".to_owned(),
        };
        let st = shared.lock();
        let (senders, receivers) = st.core.roles();
        Overview {
            uptime_secs: self.inner.started.elapsed().as_secs(),
            storage,
            senders,
            receivers,
            topics: st.core.topic_summaries(Instant::now()),
            dead_letters: st.core.dead_count(),
            dead_letter_bytes: st.core.dead_body_bytes(),
            producers: st.core.dedup_producers(),
            stats: st.core.stats(),
        }
    }

    /// One topic's groups and members, or `None` if the topic has neither
    /// stored messages nor groups.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), mq_broker::BrokerError> {
    /// let broker = mq_broker::Broker::start(Default::default()).await?;
    /// assert!(broker.topic("nothing-here").is_none());
    /// # Ok(()) }
    /// ```
    pub fn topic(&self, name: &str) -> Option<TopicView> {
        self.inner
            .shared
            .lock()
            .core
            .topic_view(name, Instant::now())
    }

    /// The dead letters held, oldest first (at most `max_dead_letters`),
    /// with headers and a payload preview where the body was kept.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), mq_broker::BrokerError> {
    /// let broker = mq_broker::Broker::start(Default::default()).await?;
    /// assert!(broker.dead_letters().is_empty());
    /// # Ok(()) }
    /// ```
    pub fn dead_letters(&self) -> Vec<DeadLetterView> {
        self.inner.shared.lock().core.dead_views()
    }

    /// Dedup memory per producer, most ranges first.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), mq_broker::BrokerError> {
    /// let broker = mq_broker::Broker::start(Default::default()).await?;
    /// assert!(broker.producers().is_empty());
    /// # Ok(()) }
    /// ```
    pub fn producers(&self) -> Vec<ProducerView> {
        self.inner.shared.lock().core.producer_views()
    }

    /// Gives a dead letter back to its group: the message is stored again
    /// (if no other group still held it) and delivered as new, with its
    /// delivery count reset. With disk storage the requeue is journaled
    /// with the next group commit; a crash before that leaves the message
    /// dead-lettered (nothing is lost; requeue again).
    ///
    /// # Errors
    ///
    /// [`DeadLetterError`]: a malformed or unknown key, a body not kept, or
    /// a full store.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), mq_broker::BrokerError> {
    /// let broker = mq_broker::Broker::start(Default::default()).await?;
    /// for d in broker.dead_letters() {
    ///     broker.requeue_dead(&d.key).ok();
    /// }
    /// # Ok(()) }
    /// ```
    pub fn requeue_dead(&self, key: &str) -> Result<(), DeadLetterError> {
        let (id, g) = parse_key(key)?;
        let shared = &self.inner.shared;
        let mut st = shared.lock();
        let r = st.core.requeue_dead(g, id, Instant::now());
        shared.after_change(&mut st);
        r
    }

    /// Deletes a dead letter and its kept body for good.
    ///
    /// # Errors
    ///
    /// [`DeadLetterError::BadKey`] or [`DeadLetterError::NotFound`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), mq_broker::BrokerError> {
    /// let broker = mq_broker::Broker::start(Default::default()).await?;
    /// let err = broker.purge_dead("0000000000000001-1/0").unwrap_err();
    /// assert!(matches!(err, mq_broker::DeadLetterError::NotFound(_)));
    /// # Ok(()) }
    /// ```
    pub fn purge_dead(&self, key: &str) -> Result<(), DeadLetterError> {
        let (id, g) = parse_key(key)?;
        let shared = &self.inner.shared;
        let mut st = shared.lock();
        let r = st.core.purge_dead(g, id);
        shared.after_change(&mut st);
        r
    }
}
