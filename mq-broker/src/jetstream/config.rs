//! [`JetStreamConfig`]: the NATS side of a gateway.

use std::time::Duration;

/// Settings of the JetStream backend: where the cluster is and how the
/// gateway lays out its streams and consumers. The protocol side (listen
/// address, frame size, heartbeat, token, `max_deliveries`, redelivery
/// backoff for `Nack(0)`) comes from the [`BrokerConfig`](crate::BrokerConfig)
/// given next to it.
///
/// Several gateways given the same `stream` and `subject_prefix` serve the
/// same messages: they keep no state of their own.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let js = mq_broker::JetStreamConfig::new(["nats://h1:4222", "nats://h2:4222"])
///     .replicas(3)
///     .duplicate_window(Duration::from_secs(600));
/// assert_eq!(js.servers.len(), 2);
/// assert!(js.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct JetStreamConfig {
    /// NATS server URLs (`nats://host:port`); the client connects to one
    /// and fails over to the others (and to servers the cluster announces).
    pub servers: Vec<String>,
    /// Name of the message stream. Default `MQ`; its dead letters go to
    /// `{stream}_DLQ`.
    pub stream: String,
    /// First token of every subject. Default `mq`: messages on
    /// `mq.t.{topic}`, dead letters on `mq.dlq.{group}.{topic}`.
    pub subject_prefix: String,
    /// Replicas of each stream (and consumer). Default 3 (R3, survives one
    /// node); 1 for a single NATS server.
    pub replicas: usize,
    /// JetStream's dedup window: a retransmission within it is answered
    /// `Duplicate`. Must exceed `sender_send_timeout`. Default 10 minutes.
    pub duplicate_window: Duration,
    /// The longest `send_timeout` of the senders that use this gateway
    /// (the SDK's default is 120 s): a sender retransmits for that long, so
    /// `duplicate_window` must be longer. Checked at start.
    pub sender_send_timeout: Duration,
    /// Delivered and not acked for this long (a gateway crash, a silent
    /// receiver), a message is redelivered by JetStream. Default 30 s.
    pub ack_wait: Duration,
    /// Most deliveries outstanding per group across all gateways (the
    /// consumer's `max_ack_pending`). Default 10 000.
    pub max_ack_pending: i64,
    /// Most messages in the stream; past it `STORE_FULL`. Default -1
    /// (no limit).
    pub max_messages: i64,
    /// Most bytes in the stream; past it `STORE_FULL`. Default -1.
    pub max_bytes: i64,
    /// Longest wait for a PubAck before the message is answered `BUSY`
    /// (transient; the sender retransmits). Default 10 s.
    pub publish_timeout: Duration,
    /// Longest wait for the first connection to NATS at start. Default 10 s.
    pub connect_timeout: Duration,
    /// How long one pull request waits for messages. Default 2 s.
    pub pull_expires: Duration,
}

impl JetStreamConfig {
    /// Defaults, with these servers.
    ///
    /// # Examples
    ///
    /// ```
    /// let js = mq_broker::JetStreamConfig::new(["nats://127.0.0.1:4222"]);
    /// assert_eq!(js.replicas, 3);
    /// ```
    pub fn new<S: Into<String>>(servers: impl IntoIterator<Item = S>) -> Self {
        JetStreamConfig {
            servers: servers.into_iter().map(Into::into).collect(),
            stream: "MQ".into(),
            subject_prefix: "mq".into(),
            replicas: 3,
            duplicate_window: Duration::from_secs(600),
            sender_send_timeout: Duration::from_secs(120),
            ack_wait: Duration::from_secs(30),
            max_ack_pending: 10_000,
            max_messages: -1,
            max_bytes: -1,
            publish_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            pull_expires: Duration::from_secs(2),
        }
    }

    /// Sets [`replicas`](Self::replicas).
    ///
    /// # Examples
    ///
    /// ```
    /// let js = mq_broker::JetStreamConfig::new(["nats://127.0.0.1:4222"]).replicas(1);
    /// assert_eq!(js.replicas, 1);
    /// ```
    pub fn replicas(mut self, n: usize) -> Self {
        self.replicas = n;
        self
    }

    /// Sets [`duplicate_window`](Self::duplicate_window).
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// let js = mq_broker::JetStreamConfig::new(["nats://127.0.0.1:4222"])
    ///     .duplicate_window(Duration::from_secs(300));
    /// assert_eq!(js.duplicate_window, Duration::from_secs(300));
    /// ```
    pub fn duplicate_window(mut self, d: Duration) -> Self {
        self.duplicate_window = d;
        self
    }

    /// Sets [`ack_wait`](Self::ack_wait).
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// let js = mq_broker::JetStreamConfig::new(["nats://127.0.0.1:4222"])
    ///     .ack_wait(Duration::from_secs(5));
    /// assert_eq!(js.ack_wait, Duration::from_secs(5));
    /// ```
    pub fn ack_wait(mut self, d: Duration) -> Self {
        self.ack_wait = d;
        self
    }

    /// Sets [`stream`](Self::stream) and [`subject_prefix`](Self::subject_prefix):
    /// gateways with different names share nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// let js = mq_broker::JetStreamConfig::new(["nats://127.0.0.1:4222"]).names("T1", "t1");
    /// assert_eq!((js.stream.as_str(), js.subject_prefix.as_str()), ("T1", "t1"));
    /// ```
    pub fn names(mut self, stream: impl Into<String>, subject_prefix: impl Into<String>) -> Self {
        self.stream = stream.into();
        self.subject_prefix = subject_prefix.into();
        self
    }

    /// Checks the settings that do not need the cluster.
    ///
    /// # Errors
    ///
    /// A sentence naming the setting: no servers, zero replicas (or more
    /// than 5, JetStream's limit), a `duplicate_window` not longer than
    /// `sender_send_timeout`, a stream name or prefix NATS would refuse,
    /// a zero `ack_wait`, `publish_timeout` or `pull_expires`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// let js = mq_broker::JetStreamConfig::new(["nats://127.0.0.1:4222"])
    ///     .duplicate_window(Duration::from_secs(120));
    /// assert!(js.validate().unwrap_err().contains("duplicate_window"));
    /// ```
    pub fn validate(&self) -> Result<(), String> {
        if self.servers.is_empty() {
            return Err("jetstream: give at least one NATS server URL".into());
        }
        if !(1..=5).contains(&self.replicas) {
            return Err(format!(
                "jetstream: replicas must be 1..=5, not {}",
                self.replicas
            ));
        }
        if self.duplicate_window <= self.sender_send_timeout {
            return Err(format!(
                "jetstream: duplicate_window ({:?}) must exceed the senders' send_timeout \
                 ({:?}): a retransmission after the window would be stored twice",
                self.duplicate_window, self.sender_send_timeout
            ));
        }
        let name_ok = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if !name_ok(&self.stream) || !name_ok(&self.subject_prefix) {
            return Err(format!(
                "jetstream: stream {:?} and subject prefix {:?} must be non-empty ASCII \
                 letters, digits, '-' or '_'",
                self.stream, self.subject_prefix
            ));
        }
        if self.ack_wait.is_zero() || self.publish_timeout.is_zero() || self.pull_expires.is_zero()
        {
            return Err("jetstream: ack_wait, publish_timeout and pull_expires must be > 0".into());
        }
        if self.max_ack_pending == 0 {
            return Err("jetstream: max_ack_pending must not be 0 (-1 for no limit)".into());
        }
        Ok(())
    }

    pub(crate) fn dead_letter_stream(&self) -> String {
        format!("{}_DLQ", self.stream)
    }
}
