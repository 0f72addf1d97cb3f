//! One error type per operation: [`ConfigError`] (validation),
//! [`crate::ConnectError`] (`Sender::connect`, from `mq-conn`) and [`SendError`] (hand-over and
//! outcome of one message).

use std::time::Duration;

use mq_protocol::{BackoffError, ErrorCode, MessageId};

use crate::OutgoingMessage;

/// A [`crate::SenderConfig`] field that cannot work. The message names the
/// field and what to change.
///
/// # Examples
///
/// ```
/// use mq_client_sender::{ConfigError, SenderConfig};
/// let err = SenderConfig::default().validate().unwrap_err();
/// assert_eq!(err, ConfigError::NoAddresses);
/// println!("{err}"); // says what to change
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `addresses` is empty: add at least one `host:port`.
    #[error("addresses is empty: add at least one broker address such as \"127.0.0.1:7878\"")]
    NoAddresses,
    /// One address is an empty string: remove it or fill in `host:port`.
    #[error("addresses[{0}] is empty: use \"host:port\"")]
    EmptyAddress(usize),
    /// `client_name` is longer than the protocol allows: shorten it.
    #[error("client_name is {len} bytes; shorten it to at most {max}")]
    NameTooLong {
        /// Its length.
        len: usize,
        /// The protocol limit.
        max: usize,
    },
    /// `auth_token` is longer than the protocol allows: use a shorter token.
    #[error("auth_token is {len} bytes; the protocol allows at most {max}")]
    TokenTooLong {
        /// Its length.
        len: usize,
        /// The protocol limit.
        max: usize,
    },
    /// `max_in_flight` is 0 or too large: use a value such as 1024.
    #[error("max_in_flight is {0}; use a value between 1 and {max}", max = crate::config::MAX_WINDOW)]
    BadMaxInFlight(usize),
    /// `max_in_flight_bytes` cannot hold one message or exceeds `u32::MAX`
    /// (or the platform's semaphore limit):
    /// use a value such as 64 MiB.
    #[error("max_in_flight_bytes is {0}; use a value between {min} and {max} (e.g. 64 MiB)",
            min = crate::config::MIN_WINDOW_BYTES, max = crate::config::MAX_WINDOW_BYTES)]
    BadMaxInFlightBytes(usize),
    /// `retry` is not a valid schedule; fix the named field.
    #[error("retry backoff: {0}")]
    Retry(#[source] BackoffError),
    /// `reconnect` is not a valid schedule; fix the named field.
    #[error("reconnect backoff: {0}")]
    Reconnect(#[source] BackoffError),
    /// `max_attempts` is 0: use at least 1 (1 = never retransmit).
    #[error("max_attempts is 0; use at least 1 (1 means no retransmission)")]
    ZeroAttempts,
    /// `send_timeout` is `Some(0)`: use `None` for no total deadline, or a
    /// positive duration.
    #[error("send_timeout is zero; use None for no total deadline or a positive duration")]
    ZeroSendTimeout,
    /// `send_timeout` is `None` and `max_attempts` is
    /// [`crate::SenderConfig::UNLIMITED_ATTEMPTS`]: nothing would ever end
    /// an unconfirmed message. Set a `send_timeout` (default 120 s) or a
    /// finite `max_attempts`.
    #[error("send_timeout is None and max_attempts is unlimited, so a message could wait forever; set send_timeout (e.g. 120 s) or a finite max_attempts")]
    NoSendBound,
    /// `connect_timeout` is zero: use a positive duration such as 5 s.
    #[error("connect_timeout is zero; use a positive duration such as 5 s")]
    ZeroConnectTimeout,
    /// `max_frame_size` is below 64 bytes: raise it (default 1 MiB).
    #[error("max_frame_size is {0}; use at least 64 (default 1 MiB)")]
    FrameSizeTooSmall(u32),
    /// `heartbeat` is `Some(0)`: use `None` to follow the broker, or a positive duration.
    #[error("heartbeat is zero; use None to follow the broker's interval, or a positive duration")]
    ZeroHeartbeat,
    /// A duration is longer than a year; use a shorter one (or `None` where
    /// the field allows it).
    #[error("{field} is longer than a year; use a shorter duration")]
    DurationTooLong {
        /// The field.
        field: &'static str,
    },
}

/// An invalid configuration is a [`mq_conn::ConnectError::Config`]
/// whose source is the [`ConfigError`], so `config.validate()?` works in a
/// function returning [`crate::ConnectError`].
///
/// # Examples
///
/// ```
/// use mq_client_sender::{ConfigError, ConnectError, SenderConfig};
/// let e: ConnectError = SenderConfig::default().validate().unwrap_err().into();
/// assert!(matches!(&e, ConnectError::Config(s)
///     if s.downcast_ref::<ConfigError>() == Some(&ConfigError::NoAddresses)));
/// ```
impl From<ConfigError> for mq_conn::ConnectError {
    fn from(e: ConfigError) -> Self {
        mq_conn::ConnectError::config(e)
    }
}

/// Why a message was not handed over, or why it ended without a confirm.
///
/// Hand-over errors (`Backpressure`, `Closed`, `TooLarge`, `InvalidMessage`,
/// `AlreadyInFlight`) happen before the message is accepted: it was never
/// sent and is given back. Outcome errors (`Timeout`, `Rejected`,
/// `Abandoned`, `DriverStopped`) are the one final outcome of an accepted
/// message; [`SendError::id`] names it.
///
/// # Examples
///
/// ```no_run
/// # async fn f(sender: mq_client_sender::Sender) {
/// use mq_client_sender::{OutgoingMessage, SendError};
/// match sender.send(OutgoingMessage::new("t", "x")).await {
///     Ok(receipt) => println!("{} stored", receipt.id),
///     Err(SendError::Backpressure(msg)) => { /* window full: retry `msg` later */ }
///     Err(e) if e.is_retryable() => eprintln!("may succeed later: {e}"),
///     Err(e) => eprintln!("the message must change: {e}"),
/// }
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The in-flight window is full and `backpressure` is `Fail`. Send the
    /// returned message again later, or use `Backpressure::Wait`.
    #[error("in-flight window full (backpressure = Fail); the message was not sent")]
    Backpressure(OutgoingMessage),
    /// The sender is closed (or closing). The message was not sent; send it
    /// through another sender.
    #[error("sender is closed; the message was not sent")]
    Closed(OutgoingMessage),
    /// The message's frame would exceed the frame size limit or the whole
    /// in-flight byte window. Split the payload or raise the limits.
    #[error("message frame of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Frame size of the message (type byte plus body), or its payload
        /// plus header bytes when the broker's announced
        /// `max_message_size` is what it breaks.
        size: usize,
        /// The limit broken: the smaller of our `max_frame_size`, the
        /// broker's (minus 4 when the broker announces `max_message_size`,
        /// PROTOCOL.md §3.2) and the byte window; or the broker's
        /// `max_message_size`.
        max: usize,
        /// The message, given back.
        message: OutgoingMessage,
    },
    /// The topic or headers break a protocol limit. Fix the message.
    #[error("invalid message: {reason}")]
    InvalidMessage {
        /// What is wrong.
        reason: String,
        /// The message, given back.
        message: OutgoingMessage,
    },
    /// A message with this explicit sequence is still unresolved in this
    /// sender. Wait for its outcome instead of sending it twice.
    #[error("message {id} is already in flight in this sender")]
    AlreadyInFlight {
        /// The ID in flight.
        id: MessageId,
        /// The second copy, given back.
        message: OutgoingMessage,
    },
    /// No confirm within `send_timeout` (or after `attempts` transmissions
    /// when `max_attempts` is finite).
    ///
    /// For the caller this means **not confirmed**, not "not stored": the
    /// broker may have stored the message and lost only its reply, or be
    /// unreachable. Treat the message as "unknown": send it again with the
    /// same explicit sequence ([`crate::OutgoingMessage::sequence`]) and the
    /// broker answers `Duplicate` if it has it, or let the durable outbox
    /// (`mq-outbox`) do that for you: it keeps the row pending and sends it
    /// again later under the same ID.
    #[error("message {id} not confirmed after {attempts} attempt(s) (or its send_timeout passed)")]
    Timeout {
        /// The message.
        id: MessageId,
        /// Attempts counted before giving up.
        attempts: u32,
    },
    /// The broker refused the message. A permanent code (`!is_retryable()`)
    /// means sending it again cannot help; a transient code here means the
    /// retries were used up while the broker kept refusing.
    #[error("message {id} rejected by the broker after {attempts} attempt(s): {code}: {reason}")]
    Rejected {
        /// The message.
        id: MessageId,
        /// Why, as a code.
        code: ErrorCode,
        /// Why, for a person.
        reason: String,
        /// Attempts counted.
        attempts: u32,
    },
    /// `close()` reached its deadline before this message was confirmed. It
    /// may or may not be stored; it is listed in the close report.
    #[error("message {id} unresolved when the sender closed (after {attempts} attempt(s))")]
    Abandoned {
        /// The message.
        id: MessageId,
        /// Attempts counted.
        attempts: u32,
    },
    /// The sender's driver task stopped without deciding (a panic or a
    /// dropped runtime). The message may or may not be stored.
    #[error("sender driver stopped before message {id} was resolved")]
    DriverStopped {
        /// The message.
        id: MessageId,
    },
}

impl SendError {
    /// The ID of the message this error is about, when it has one (hand-over
    /// errors before an ID was chosen have none).
    ///
    /// # Examples
    ///
    /// ```
    /// use mq_client_sender::SendError;
    /// use mq_protocol::MessageId;
    /// let e = SendError::Timeout { id: MessageId::new(1, 2), attempts: 5 };
    /// assert_eq!(e.id(), Some(MessageId::new(1, 2)));
    /// ```
    pub fn id(&self) -> Option<MessageId> {
        match self {
            SendError::AlreadyInFlight { id, .. }
            | SendError::Timeout { id, .. }
            | SendError::Rejected { id, .. }
            | SendError::Abandoned { id, .. }
            | SendError::DriverStopped { id } => Some(*id),
            _ => None,
        }
    }

    /// The message given back by a failed hand-over, if this is one.
    ///
    /// # Examples
    ///
    /// ```
    /// use mq_client_sender::{OutgoingMessage, SendError};
    /// let e = SendError::Backpressure(OutgoingMessage::new("t", "x"));
    /// assert_eq!(e.into_message().unwrap().topic(), "t");
    /// ```
    pub fn into_message(self) -> Option<OutgoingMessage> {
        match self {
            SendError::Backpressure(m) | SendError::Closed(m) => Some(m),
            SendError::TooLarge { message, .. }
            | SendError::InvalidMessage { message, .. }
            | SendError::AlreadyInFlight { message, .. } => Some(message),
            _ => None,
        }
    }

    /// True when retrying the same message later may succeed (backpressure,
    /// timeouts, transient rejections); false when the message itself must
    /// change (too large, invalid, permanent rejection).
    ///
    /// # Examples
    ///
    /// ```
    /// use mq_client_sender::SendError;
    /// use mq_protocol::MessageId;
    /// assert!(SendError::Timeout { id: MessageId::new(1, 1), attempts: 3 }.is_retryable());
    /// ```
    pub fn is_retryable(&self) -> bool {
        match self {
            SendError::TooLarge { .. } | SendError::InvalidMessage { .. } => false,
            SendError::Rejected { code, .. } => code.is_retryable(),
            _ => true,
        }
    }
}

/// Why [`crate::Sender::flush`] could not confirm that every earlier
/// message has its outcome.
///
/// # Examples
///
/// ```no_run
/// # async fn f(sender: mq_client_sender::Sender) {
/// use mq_client_sender::FlushError;
/// match sender.flush().await {
///     Ok(()) => println!("every earlier message has its outcome"),
///     Err(FlushError::DriverStopped) => eprintln!("sender died; outcomes unknown"),
///     Err(e) => eprintln!("{e}"),
/// }
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FlushError {
    /// The sender's driver task stopped without a close (a panic, or the
    /// tokio runtime shutting down), so some outcomes may never be
    /// decided. Messages not confirmed may or may not be stored; connect a
    /// new sender and send them again (the outbox does this by itself).
    #[error("sender driver stopped before every earlier message had its outcome")]
    DriverStopped,
}

/// What [`crate::Sender::close`] could not finish.
///
/// # Examples
///
/// ```no_run
/// # async fn f(sender: mq_client_sender::Sender) {
/// let report = sender.close(std::time::Duration::from_secs(5)).await;
/// for id in &report.unresolved {
///     eprintln!("{id} was not confirmed before close");
/// }
/// # }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CloseReport {
    /// Messages still unconfirmed at the deadline; each got
    /// [`SendError::Abandoned`] as its outcome. They may or may not be stored.
    pub unresolved: Vec<MessageId>,
    /// Time spent flushing.
    pub elapsed: Duration,
}
