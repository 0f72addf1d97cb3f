//! Chained setters of the configs, one per field, so that code outside
//! this crate builds a config from a constructor (the configs are
//! `#[non_exhaustive]`: a new field is not a breaking change).
//!
//! Generated from the field list (one setter per public field, named
//! after it, taking the field's type; `String` fields take
//! `impl Into<String>`).

use std::time::Duration;

use mq_protocol::Backoff;

use crate::config::*;

impl ReceiverConfig {
    /// Sets [`ReceiverConfig::addresses`]: Broker addresses (`host:port`).
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// use mq_client_receiver::ReceiverConfig;
    /// let c = ReceiverConfig::default().addresses(vec!["127.0.0.1:7878".to_owned()]);
    /// assert_eq!(c.addresses, vec!["127.0.0.1:7878".to_owned()]);
    /// ```
    #[must_use]
    pub fn addresses(mut self, addresses: Vec<String>) -> Self {
        self.addresses = addresses;
        self
    }

    /// Sets [`ReceiverConfig::client_name`]: A name for the broker's logs.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// use mq_client_receiver::ReceiverConfig;
    /// let c = ReceiverConfig::default().client_name("orders");
    /// assert_eq!(c.client_name, "orders");
    /// ```
    #[must_use]
    pub fn client_name(mut self, client_name: impl Into<String>) -> Self {
        self.client_name = client_name.into();
        self
    }

    /// Sets [`ReceiverConfig::auth_token`]: Shared-secret token, if the broker requires one.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// use mq_client_receiver::ReceiverConfig;
    /// let c = ReceiverConfig::default().auth_token(Some("s3cr3t".to_owned()));
    /// assert_eq!(c.auth_token, Some("s3cr3t".to_owned()));
    /// ```
    #[must_use]
    pub fn auth_token(mut self, auth_token: Option<String>) -> Self {
        self.auth_token = auth_token;
        self
    }

    /// Sets [`ReceiverConfig::topic`]: Topic to subscribe to.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// use mq_client_receiver::ReceiverConfig;
    /// let c = ReceiverConfig::default().topic("orders");
    /// assert_eq!(c.topic, "orders");
    /// ```
    #[must_use]
    pub fn topic(mut self, topic: impl Into<String>) -> Self {
        self.topic = topic.into();
        self
    }

    /// Sets [`ReceiverConfig::topics`]: More topics to subscribe to on the same connection, in the same `group`: one subscription each (`topic` is `sub_id` 1, these follow as 2, 3, ...
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// use mq_client_receiver::ReceiverConfig;
    /// let c = ReceiverConfig::default().topics(vec!["127.0.0.1:7878".to_owned()]);
    /// assert_eq!(c.topics, vec!["127.0.0.1:7878".to_owned()]);
    /// ```
    #[must_use]
    pub fn topics(mut self, topics: Vec<String>) -> Self {
        self.topics = topics;
        self
    }

    /// Sets [`ReceiverConfig::group`]: Consumer group: members of one group share the topic's messages.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// use mq_client_receiver::ReceiverConfig;
    /// let c = ReceiverConfig::default().group("orders");
    /// assert_eq!(c.group, "orders");
    /// ```
    #[must_use]
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = group.into();
        self
    }

    /// Sets [`ReceiverConfig::prefetch`]: Credit granted to the broker: the most deliveries unsettled at once on the connection.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// use mq_client_receiver::ReceiverConfig;
    /// let c = ReceiverConfig::default().prefetch(7);
    /// assert_eq!(c.prefetch, 7);
    /// ```
    #[must_use]
    pub fn prefetch(mut self, prefetch: u32) -> Self {
        self.prefetch = prefetch;
        self
    }

    /// Sets [`ReceiverConfig::max_concurrency`]: Handler calls running at once.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// use mq_client_receiver::ReceiverConfig;
    /// let c = ReceiverConfig::default().max_concurrency(7);
    /// assert_eq!(c.max_concurrency, 7);
    /// ```
    #[must_use]
    pub fn max_concurrency(mut self, max_concurrency: usize) -> Self {
        self.max_concurrency = max_concurrency;
        self
    }

    /// Sets [`ReceiverConfig::ack_mode`]: Who acks: the receiver from the handler's result, or the user.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// use mq_client_receiver::ReceiverConfig;
    /// let c = ReceiverConfig::default().ack_mode(mq_client_receiver::AckMode::Manual);
    /// assert_eq!(c.ack_mode, mq_client_receiver::AckMode::Manual);
    /// ```
    #[must_use]
    pub fn ack_mode(mut self, ack_mode: AckMode) -> Self {
        self.ack_mode = ack_mode;
        self
    }

    /// Sets [`ReceiverConfig::dedup`]: Bounds of the dedup window.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// use mq_client_receiver::ReceiverConfig;
    /// let c = ReceiverConfig::default().dedup(mq_client_receiver::DedupConfig::default());
    /// assert_eq!(c.dedup, mq_client_receiver::DedupConfig::default());
    /// ```
    #[must_use]
    pub fn dedup(mut self, dedup: DedupConfig) -> Self {
        self.dedup = dedup;
        self
    }

    /// Sets [`ReceiverConfig::reconnect`]: Wait after a failed connect round before the next (a lost connection starts a round at once).
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// use mq_client_receiver::ReceiverConfig;
    /// let c = ReceiverConfig::default().reconnect(mq_protocol::Backoff::default());
    /// assert_eq!(c.reconnect, mq_protocol::Backoff::default());
    /// ```
    #[must_use]
    pub fn reconnect(mut self, reconnect: Backoff) -> Self {
        self.reconnect = reconnect;
        self
    }

    /// Sets [`ReceiverConfig::connect_timeout`]: Bound on connect plus handshake (TLS included) for one address, and again on subscribing.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// use mq_client_receiver::ReceiverConfig;
    /// let c = ReceiverConfig::default().connect_timeout(Duration::from_secs(3));
    /// assert_eq!(c.connect_timeout, Duration::from_secs(3));
    /// ```
    #[must_use]
    pub fn connect_timeout(mut self, connect_timeout: Duration) -> Self {
        self.connect_timeout = connect_timeout;
        self
    }

    /// Sets [`ReceiverConfig::max_frame_size`]: Largest frame accepted from the broker (type byte plus body).
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// use mq_client_receiver::ReceiverConfig;
    /// let c = ReceiverConfig::default().max_frame_size(7);
    /// assert_eq!(c.max_frame_size, 7);
    /// ```
    #[must_use]
    pub fn max_frame_size(mut self, max_frame_size: u32) -> Self {
        self.max_frame_size = max_frame_size;
        self
    }

    /// Sets [`ReceiverConfig::seed`]: Seed for reconnect jitter; `None` draws one from the OS.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// use mq_client_receiver::ReceiverConfig;
    /// let c = ReceiverConfig::default().seed(Some(42));
    /// assert_eq!(c.seed, Some(42));
    /// ```
    #[must_use]
    pub fn seed(mut self, seed: Option<u64>) -> Self {
        self.seed = seed;
        self
    }
}

impl DedupConfig {
    /// Sets [`DedupConfig::max_producers`]: Producers tracked at once; beyond it the least recently active producer is forgotten.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// use mq_client_receiver::DedupConfig;
    /// let c = DedupConfig::default().max_producers(7);
    /// assert_eq!(c.max_producers, 7);
    /// ```
    #[must_use]
    pub fn max_producers(mut self, max_producers: usize) -> Self {
        self.max_producers = max_producers;
        self
    }

    /// Sets [`DedupConfig::max_ranges_per_producer`]: Disjoint sequence ranges kept per producer; beyond it the lowest range is forgotten.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// use mq_client_receiver::DedupConfig;
    /// let c = DedupConfig::default().max_ranges_per_producer(7);
    /// assert_eq!(c.max_ranges_per_producer, 7);
    /// ```
    #[must_use]
    pub fn max_ranges_per_producer(mut self, max_ranges_per_producer: usize) -> Self {
        self.max_ranges_per_producer = max_ranges_per_producer;
        self
    }

    /// Sets [`DedupConfig::max_ranges`]: Disjoint sequence ranges kept over all producers: the bound on memory.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// use mq_client_receiver::DedupConfig;
    /// let c = DedupConfig::default().max_ranges(7);
    /// assert_eq!(c.max_ranges, 7);
    /// ```
    #[must_use]
    pub fn max_ranges(mut self, max_ranges: usize) -> Self {
        self.max_ranges = max_ranges;
        self
    }

    /// Sets [`DedupConfig::idle_expiry`]: A producer not seen for this long is forgotten.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// use mq_client_receiver::DedupConfig;
    /// let c = DedupConfig::default().idle_expiry(Duration::from_secs(3));
    /// assert_eq!(c.idle_expiry, Duration::from_secs(3));
    /// ```
    #[must_use]
    pub fn idle_expiry(mut self, idle_expiry: Duration) -> Self {
        self.idle_expiry = idle_expiry;
        self
    }
}
