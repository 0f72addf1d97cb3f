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

impl SenderConfig {
    /// Sets [`SenderConfig::addresses`]: Broker addresses (`host:port`), tried in order on connect and on every reconnect round.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// use mq_client_sender::SenderConfig;
    /// let c = SenderConfig::new("127.0.0.1:7878").addresses(vec!["127.0.0.1:7878".to_owned()]);
    /// assert_eq!(c.addresses, vec!["127.0.0.1:7878".to_owned()]);
    /// ```
    #[must_use]
    pub fn addresses(mut self, addresses: Vec<String>) -> Self {
        self.addresses = addresses;
        self
    }

    /// Sets [`SenderConfig::client_name`]: Name sent in the handshake, for the broker's logs.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// use mq_client_sender::SenderConfig;
    /// let c = SenderConfig::new("127.0.0.1:7878").client_name("orders");
    /// assert_eq!(c.client_name, "orders");
    /// ```
    #[must_use]
    pub fn client_name(mut self, client_name: impl Into<String>) -> Self {
        self.client_name = client_name.into();
        self
    }

    /// Sets [`SenderConfig::auth_token`]: Shared-secret token for the handshake.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// use mq_client_sender::SenderConfig;
    /// let c = SenderConfig::new("127.0.0.1:7878").auth_token(Some("s3cr3t".to_owned()));
    /// assert_eq!(c.auth_token, Some("s3cr3t".to_owned()));
    /// ```
    #[must_use]
    pub fn auth_token(mut self, auth_token: Option<String>) -> Self {
        self.auth_token = auth_token;
        self
    }

    /// Sets [`SenderConfig::producer_id`]: Producer id, the high half of every [`mq_protocol::MessageId`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// use mq_client_sender::SenderConfig;
    /// let c = SenderConfig::new("127.0.0.1:7878").producer_id(Some(42));
    /// assert_eq!(c.producer_id, Some(42));
    /// ```
    #[must_use]
    pub fn producer_id(mut self, producer_id: Option<u64>) -> Self {
        self.producer_id = producer_id;
        self
    }

    /// Sets [`SenderConfig::max_in_flight`]: Most messages unresolved at once.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// use mq_client_sender::SenderConfig;
    /// let c = SenderConfig::new("127.0.0.1:7878").max_in_flight(7);
    /// assert_eq!(c.max_in_flight, 7);
    /// ```
    #[must_use]
    pub fn max_in_flight(mut self, max_in_flight: usize) -> Self {
        self.max_in_flight = max_in_flight;
        self
    }

    /// Sets [`SenderConfig::max_in_flight_bytes`]: Most frame bytes unresolved at once.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// use mq_client_sender::SenderConfig;
    /// let c = SenderConfig::new("127.0.0.1:7878").max_in_flight_bytes(7);
    /// assert_eq!(c.max_in_flight_bytes, 7);
    /// ```
    #[must_use]
    pub fn max_in_flight_bytes(mut self, max_in_flight_bytes: usize) -> Self {
        self.max_in_flight_bytes = max_in_flight_bytes;
        self
    }

    /// Sets [`SenderConfig::backpressure`]: What a hand-over does when the window is full.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// use mq_client_sender::SenderConfig;
    /// let c = SenderConfig::new("127.0.0.1:7878").backpressure(mq_client_sender::Backpressure::Fail);
    /// assert_eq!(c.backpressure, mq_client_sender::Backpressure::Fail);
    /// ```
    #[must_use]
    pub fn backpressure(mut self, backpressure: Backpressure) -> Self {
        self.backpressure = backpressure;
        self
    }

    /// Sets [`SenderConfig::retry`]: Reply timeout schedule: attempt `n` waits `retry.delay(n)` for its reply before attempt `n + 1` is sent.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// use mq_client_sender::SenderConfig;
    /// let c = SenderConfig::new("127.0.0.1:7878").retry(mq_protocol::Backoff::default());
    /// assert_eq!(c.retry, mq_protocol::Backoff::default());
    /// ```
    #[must_use]
    pub fn retry(mut self, retry: Backoff) -> Self {
        self.retry = retry;
        self
    }

    /// Sets [`SenderConfig::max_attempts`]: Transmissions per message before it fails with `Timeout`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// use mq_client_sender::SenderConfig;
    /// let c = SenderConfig::new("127.0.0.1:7878").max_attempts(7);
    /// assert_eq!(c.max_attempts, 7);
    /// ```
    #[must_use]
    pub fn max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = max_attempts;
        self
    }

    /// Sets [`SenderConfig::send_timeout`]: Total deadline per message from its acceptance, whatever the attempts.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// use mq_client_sender::SenderConfig;
    /// let c = SenderConfig::new("127.0.0.1:7878").send_timeout(Some(Duration::from_secs(3)));
    /// assert_eq!(c.send_timeout, Some(Duration::from_secs(3)));
    /// ```
    #[must_use]
    pub fn send_timeout(mut self, send_timeout: Option<Duration>) -> Self {
        self.send_timeout = send_timeout;
        self
    }

    /// Sets [`SenderConfig::reconnect`]: Delay between reconnect rounds (each round tries every address once).
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// use mq_client_sender::SenderConfig;
    /// let c = SenderConfig::new("127.0.0.1:7878").reconnect(mq_protocol::Backoff::default());
    /// assert_eq!(c.reconnect, mq_protocol::Backoff::default());
    /// ```
    #[must_use]
    pub fn reconnect(mut self, reconnect: Backoff) -> Self {
        self.reconnect = reconnect;
        self
    }

    /// Sets [`SenderConfig::connect_timeout`]: Bound on TCP connect plus handshake, per address.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// use mq_client_sender::SenderConfig;
    /// let c = SenderConfig::new("127.0.0.1:7878").connect_timeout(Duration::from_secs(3));
    /// assert_eq!(c.connect_timeout, Duration::from_secs(3));
    /// ```
    #[must_use]
    pub fn connect_timeout(mut self, connect_timeout: Duration) -> Self {
        self.connect_timeout = connect_timeout;
        self
    }

    /// Sets [`SenderConfig::max_frame_size`]: Largest frame this side sends or accepts (type byte plus body).
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// use mq_client_sender::SenderConfig;
    /// let c = SenderConfig::new("127.0.0.1:7878").max_frame_size(7);
    /// assert_eq!(c.max_frame_size, 7);
    /// ```
    #[must_use]
    pub fn max_frame_size(mut self, max_frame_size: u32) -> Self {
        self.max_frame_size = max_frame_size;
        self
    }

    /// Sets [`SenderConfig::heartbeat`]: Heartbeat interval: a `Ping` is sent after this much write silence and the connection is considered dead after 3× this of read silence.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// use mq_client_sender::SenderConfig;
    /// let c = SenderConfig::new("127.0.0.1:7878").heartbeat(Some(Duration::from_secs(3)));
    /// assert_eq!(c.heartbeat, Some(Duration::from_secs(3)));
    /// ```
    #[must_use]
    pub fn heartbeat(mut self, heartbeat: Option<Duration>) -> Self {
        self.heartbeat = heartbeat;
        self
    }

    /// Sets [`SenderConfig::seed`]: Seed of the jitter RNG (retry and reconnect delays).
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// use mq_client_sender::SenderConfig;
    /// let c = SenderConfig::new("127.0.0.1:7878").seed(Some(42));
    /// assert_eq!(c.seed, Some(42));
    /// ```
    #[must_use]
    pub fn seed(mut self, seed: Option<u64>) -> Self {
        self.seed = seed;
        self
    }
}
