//! Snapshots of the broker's state for tests: what is stored, where each
//! group stands, what each subscription holds, what was dead-lettered.

use mq_protocol::MessageId;

/// A snapshot taken by [`Broker::inspect`](crate::Broker::inspect).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), mq_broker::BrokerError> {
/// let broker = mq_broker::Broker::start(Default::default()).await?;
/// let snap = broker.inspect();
/// assert!(snap.stored.is_empty() && snap.dead_letters.is_empty());
/// broker.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Inspection {
    /// Stored messages in landing order.
    pub stored: Vec<StoredInfo>,
    /// Every group, sorted by topic then name.
    pub groups: Vec<GroupInfo>,
    /// Every live subscription, sorted by connection then `sub_id`.
    pub subscriptions: Vec<SubscriptionInfo>,
    /// The most recent dead letters (at most `max_dead_letters`), oldest first.
    pub dead_letters: Vec<DeadLetter>,
    /// Connections open past the handshake.
    pub connections: usize,
    /// Producers tracked by the dedup table.
    pub dedup_producers: usize,
    /// Heap bytes of the dedup table, by its own count (issue 18's broker
    /// dedup memory). Not part of the API.
    #[doc(hidden)]
    pub dedup_bytes: usize,
}

impl Inspection {
    /// True if `id` is stored now.
    ///
    /// # Examples
    ///
    /// ```
    /// let snap = mq_broker::Inspection::default();
    /// assert!(!snap.is_stored(mq_protocol::MessageId::new(1, 1)));
    /// ```
    pub fn is_stored(&self, id: MessageId) -> bool {
        self.stored.iter().any(|s| s.id == id)
    }

    /// The group named `group` on `topic`, if it exists.
    ///
    /// # Examples
    ///
    /// ```
    /// let snap = mq_broker::Inspection::default();
    /// assert!(snap.group("orders", "billing").is_none());
    /// ```
    pub fn group(&self, topic: &str, group: &str) -> Option<&GroupInfo> {
        self.groups
            .iter()
            .find(|g| g.topic == topic && g.group == group)
    }
}

/// One stored message.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), mq_broker::BrokerError> {
/// let broker = mq_broker::Broker::start(Default::default()).await?;
/// for s in broker.inspect().stored {
///     println!("{} on {}: {} bytes", s.id, s.topic, s.payload_len);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoredInfo {
    /// Its ID.
    pub id: MessageId,
    /// Its topic.
    pub topic: String,
    /// Payload length in bytes.
    pub payload_len: usize,
    /// Groups that have not acked (or dead-lettered) it yet.
    pub groups_remaining: u32,
}

/// Where one consumer group stands.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), mq_broker::BrokerError> {
/// let broker = mq_broker::Broker::start(Default::default()).await?;
/// if let Some(g) = broker.inspect().group("orders", "billing") {
///     println!("{} ready, {} unacked", g.ready, g.unacked);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupInfo {
    /// The topic.
    pub topic: String,
    /// The group name.
    pub group: String,
    /// Messages waiting for a member with credit.
    pub ready: usize,
    /// Messages delivered and not yet acked.
    pub unacked: usize,
    /// Messages held back by a nack delay.
    pub waiting: usize,
    /// Live subscriptions in the group.
    pub members: usize,
    /// Acks accepted, in total.
    pub acked_total: u64,
    /// The most recent acked IDs (at most `max_acked_ids_per_group`), oldest first.
    pub acked_ids: Vec<MessageId>,
}

/// One live subscription.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), mq_broker::BrokerError> {
/// let broker = mq_broker::Broker::start(Default::default()).await?;
/// for s in broker.inspect().subscriptions {
///     assert!(s.unacked <= s.max_unacked);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SubscriptionInfo {
    /// The broker's internal connection number.
    pub connection: u64,
    /// The client's `sub_id`.
    pub sub_id: u32,
    /// The topic.
    pub topic: String,
    /// The group.
    pub group: String,
    /// Credit left (deliveries the broker may still send).
    pub credit: u32,
    /// Deliveries outstanding (sent, unacked, not yet timed out).
    pub unacked: u32,
    /// The highest `unacked` ever reached: never above the credit granted.
    pub max_unacked: u32,
}

/// A message a group gave up on after `max_deliveries`.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), mq_broker::BrokerError> {
/// let broker = mq_broker::Broker::start(Default::default()).await?;
/// for d in broker.inspect().dead_letters {
///     println!("{} dead in {}/{} after {}", d.id, d.topic, d.group, d.deliveries);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeadLetter {
    /// The message.
    pub id: MessageId,
    /// Its topic.
    pub topic: String,
    /// The group that never acked it.
    pub group: String,
    /// Deliveries made to that group.
    pub deliveries: u32,
}
